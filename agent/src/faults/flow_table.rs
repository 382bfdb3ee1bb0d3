//! Flows that faults add above the pipeline (a partition), by the lease
//! that holds them. The rule reconciler renders them after the
//! coordinator's flows; ending a lease takes its flows out again.
//!
//! A fault is in effect only once OvS forwards by it: the reconciler
//! publishes the generation it installed after the datapath's cached
//! flows were revalidated, and callers wait for theirs.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::desired::FlowKey;

#[derive(Debug)]
pub struct FaultFlows {
    /// The flows by lease, and a generation bumped by every change.
    inner: Mutex<(BTreeMap<String, Vec<FlowKey>>, u64)>,
    /// Wakes the rule reconciler.
    pub changed: Notify,
    /// The generation OvS forwards by.
    in_effect: watch::Sender<u64>,
}

impl Default for FaultFlows {
    fn default() -> Self {
        FaultFlows {
            inner: Mutex::default(),
            changed: Notify::new(),
            in_effect: watch::channel(0).0,
        }
    }
}

impl FaultFlows {
    /// Returns the generation to wait for.
    pub fn insert(&self, lease: &str, flows: Vec<FlowKey>) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.0.insert(lease.to_string(), flows);
        inner.1 += 1;
        self.changed.notify_one();
        inner.1
    }

    /// The generation to wait for when the lease had flows.
    pub fn remove(&self, lease: &str) -> Option<u64> {
        let mut inner = self.inner.lock().unwrap();
        inner.0.remove(lease)?;
        inner.1 += 1;
        self.changed.notify_one();
        Some(inner.1)
    }

    /// Every fault flow now, in lease order, and the generation.
    pub fn all(&self) -> (Vec<FlowKey>, u64) {
        let inner = self.inner.lock().unwrap();
        (inner.0.values().flatten().cloned().collect(), inner.1)
    }

    /// Called by the reconciler once `generation` is installed and the
    /// datapath revalidated.
    pub fn installed(&self, generation: u64) {
        self.in_effect.send_if_modified(|g| {
            let newer = generation > *g;
            if newer {
                *g = generation;
            }
            newer
        });
    }

    /// Waits until `generation` (or a later one) is in effect; false on timeout.
    pub async fn wait_installed(&self, generation: u64, timeout: Duration) -> bool {
        let mut rx = self.in_effect.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|g| *g >= generation))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_returns_once_its_generation_or_a_later_one_is_installed() {
        let flows = FaultFlows::default();
        let first = flows.insert("l1", vec![]);
        let second = flows.insert("l2", vec![]);
        assert!(!flows.wait_installed(first, Duration::from_millis(20)).await);
        flows.installed(second);
        assert!(flows.wait_installed(first, Duration::from_millis(20)).await);
        assert_eq!(flows.remove("nope"), None);
        let third = flows.remove("l1").unwrap();
        assert!(!flows.wait_installed(third, Duration::from_millis(20)).await);
        flows.installed(third);
        assert!(flows.wait_installed(third, Duration::from_millis(20)).await);
    }
}
