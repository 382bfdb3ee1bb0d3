//! What a valid request is, in one place: the coordinator refuses what
//! fails here, and ctl checks files with the same functions before sending
//! them, so both give the same verdict.

mod lab;
mod names;

pub use lab::{
    lab, CheckedLab, CheckedNetwork, CheckedNode, LabError, Location, MAX_LAB_NAME, MAX_NODE_NAME,
};
pub use names::{check_name, check_short_name, MAX_NAME};

#[cfg(test)]
mod tests;
