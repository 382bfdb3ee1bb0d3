//! Flows that faults add above the pipeline (a partition), by the lease
//! that holds them. The rule reconciler renders them after the
//! coordinator's flows; ending a lease takes its flows out again.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::desired::FlowKey;

#[derive(Debug, Default)]
pub struct FaultFlows {
    /// The flows by lease, and a generation bumped by every change.
    inner: Mutex<(BTreeMap<String, Vec<FlowKey>>, u64)>,
    /// Wakes the rule reconciler.
    pub changed: Notify,
}

impl FaultFlows {
    pub fn insert(&self, lease: &str, flows: Vec<FlowKey>) {
        let mut inner = self.inner.lock().unwrap();
        inner.0.insert(lease.to_string(), flows);
        inner.1 += 1;
        self.changed.notify_one();
    }

    /// True when the lease had flows.
    pub fn remove(&self, lease: &str) -> bool {
        let mut inner = self.inner.lock().unwrap();
        let had = inner.0.remove(lease).is_some();
        if had {
            inner.1 += 1;
            self.changed.notify_one();
        }
        had
    }

    /// Every fault flow now, in lease order, and the generation.
    pub fn all(&self) -> (Vec<FlowKey>, u64) {
        let inner = self.inner.lock().unwrap();
        (inner.0.values().flatten().cloned().collect(), inner.1)
    }
}
