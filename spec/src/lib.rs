//! What a user writes, and what a valid one is: lab files (`validate`: the
//! one name rule and the lab checks the coordinator and `ctl lab check`
//! share), experiment files (`experiment`: the spec, the parser with
//! line-precise errors, run records), the units both write durations and
//! sizes in, and MACs and CIDRs (`addr`).

pub mod addr;
pub mod experiment;
pub mod units;
pub mod validate;
