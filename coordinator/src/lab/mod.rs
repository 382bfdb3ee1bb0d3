//! Labs: VMs (nodes) on lab networks, placed on hosts and run by their
//! agents. A lab is a tenant, its networks are the tenant's networks and
//! each node interface is a port, so labs are isolated like any tenant.

pub mod apply;
pub mod calls;
pub mod snapshot;
pub mod validate;

use std::sync::Arc;

use crate::nodes::hub::NodeHub;
use crate::rules::RuleHub;
use crate::state::State;

/// What lab calls (apply, delete, status, snapshots, exec) use.
#[derive(Clone)]
pub struct Labs {
    pub store: Arc<State>,
    pub nodes: Arc<NodeHub>,
    /// Whether a lab's ports are applied on their hosts.
    pub rules: Arc<RuleHub>,
}

#[cfg(test)]
mod switch_tests;
#[cfg(test)]
mod tests;
