//! What the agent installs: the symbolic flows rendered for this bridge
//! (`dclab_flows`).

pub use dclab_flows::{render, split_top_level, substitute, PortMap, Rendered, Symbolic, COOKIE};

use crate::desired::FlowKey;

impl Symbolic for FlowKey {
    fn table(&self) -> u32 {
        self.table
    }
    fn priority(&self) -> u32 {
        self.priority
    }
    fn matches(&self) -> &str {
        &self.matches
    }
    fn actions(&self) -> &str {
        &self.actions
    }
}
