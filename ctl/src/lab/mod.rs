//! Labs: a lab file describes VMs and their networks once; dclab places
//! them on hosts, wires their networks through the isolation rules and
//! snapshots them as a whole.

pub mod check;
pub mod cli;
pub mod file;
pub mod graph;
pub mod install;
pub mod remote;
pub mod show;
#[cfg(test)]
mod tests;
pub mod tunnel;

pub use check::load;
pub use file::LabFileError;
