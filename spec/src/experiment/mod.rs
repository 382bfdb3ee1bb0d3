//! Dependability experiments (the HPI paper, section 5): the file format
//! and its checks, shared by ctl and the coordinator, and the run record
//! both read.

mod parse;
pub mod record;
mod spec;

pub use parse::{line_of, load, parse, FileError};
pub use spec::*;

#[cfg(test)]
mod tests;
