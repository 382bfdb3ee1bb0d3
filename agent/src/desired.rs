//! The flow set the coordinator wants on this host, kept up to date from
//! the watch stream's full states and deltas.

use std::collections::BTreeSet;

use dclab_proto::v1;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    pub table: u32,
    pub priority: u32,
    pub matches: String,
    pub actions: String,
}

impl From<v1::Flow> for FlowKey {
    fn from(f: v1::Flow) -> Self {
        FlowKey {
            table: f.table,
            priority: f.priority,
            matches: f.r#match,
            actions: f.actions,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub version: u64,
    /// Counts full states: each one comes from a new watch, perhaps of a
    /// restarted coordinator that must be told again what is applied.
    pub epoch: u64,
    pub flows: BTreeSet<FlowKey>,
}

impl Desired {
    pub fn apply(&mut self, update: v1::RuleUpdate) {
        if update.full {
            self.flows.clear();
            self.epoch += 1;
        }
        for f in update.removed {
            self.flows.remove(&FlowKey::from(f));
        }
        self.flows.extend(update.added.into_iter().map(FlowKey::from));
        self.version = update.version;
    }
}
