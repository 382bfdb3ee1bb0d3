//! Lab nodes on their hosts, as the agents run them: the node hub (each
//! host's desired node set, operations sent on its node stream and their
//! results, what agents report), claims that keep two operations off one
//! lab, fault and snapshot leases with their renewals, the operations'
//! builders, and `fanout`: one operation to every host, every answer awaited. Below labs and experiments, above the model: the store
//! publishes node sets here.

pub mod claims;
pub mod fanout;
pub mod hub;
pub mod lease;
pub mod ops;

#[cfg(test)]
mod hub_tests;
