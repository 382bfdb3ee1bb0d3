//! `ctl bench`: benchmarks that print figures side by side with their
//! references, in one run.

pub mod dataplane;
