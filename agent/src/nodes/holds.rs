//! Holds and node locks: how operations and the reconciler stay out of
//! each other's way.
//!
//! A hold says "an operation owns this node's run state": the reconciler
//! does not resume or start a held node. Holds are taken by PAUSE,
//! SHUTDOWN and REVERT, released by RESUME, by the node stream dropping
//! (the coordinator that held them is gone) and, as a safety net, after
//! `HOLD_TTL`.
//!
//! A node lock is taken by an operation for the whole of its work on the
//! node and by the reconciler for one node step, so the check "not held,
//! so resume" can never interleave with "hold, then pause".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use super::layout::{describe, NodeKey};

pub const HOLD_TTL: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Holds {
    since: Mutex<HashMap<NodeKey, Instant>>,
}

impl Holds {
    pub fn hold(&self, key: &NodeKey) {
        self.hold_at(key, Instant::now());
    }

    fn hold_at(&self, key: &NodeKey, now: Instant) {
        self.since.lock().unwrap().insert(key.clone(), now);
    }

    pub fn release(&self, key: &NodeKey) {
        self.since.lock().unwrap().remove(key);
    }

    /// Releases every hold; returns how many there were.
    pub fn release_all(&self) -> usize {
        let mut since = self.since.lock().unwrap();
        let n = since.len();
        since.clear();
        n
    }

    pub fn is_held(&self, key: &NodeKey) -> bool {
        self.is_held_at(key, Instant::now())
    }

    fn is_held_at(&self, key: &NodeKey, now: Instant) -> bool {
        let mut since = self.since.lock().unwrap();
        match since.get(key) {
            Some(at) if now.saturating_duration_since(*at) >= HOLD_TTL => {
                since.remove(key);
                warn!(
                    node = %describe(key),
                    "hold expired after {} s without RESUME; the node is resumed",
                    HOLD_TTL.as_secs()
                );
                false
            }
            Some(_) => true,
            None => false,
        }
    }
}

/// One async mutex per node, made on first use.
#[derive(Default)]
pub struct NodeLocks {
    locks: Mutex<HashMap<NodeKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl NodeLocks {
    pub fn get(&self, key: &NodeKey) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap().entry(key.clone()).or_default().clone()
    }

    /// Drops the lock of a removed node unless someone is using it.
    pub fn forget(&self, key: &NodeKey) {
        let mut locks = self.locks.lock().unwrap();
        if locks.get(key).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> NodeKey {
        ("lab".into(), n.into())
    }

    #[test]
    fn holds_are_taken_released_and_expire() {
        let holds = Holds::default();
        let t0 = Instant::now();
        assert!(!holds.is_held_at(&key("a"), t0));
        holds.hold_at(&key("a"), t0);
        holds.hold_at(&key("b"), t0);
        assert!(holds.is_held_at(&key("a"), t0 + Duration::from_secs(599)));
        holds.release(&key("a"));
        assert!(!holds.is_held_at(&key("a"), t0));
        assert!(!holds.is_held_at(&key("b"), t0 + HOLD_TTL), "expired");
        assert!(!holds.is_held_at(&key("b"), t0), "and gone");
        holds.hold(&key("a"));
        holds.hold(&key("c"));
        assert_eq!(holds.release_all(), 2);
        assert!(!holds.is_held(&key("c")));
    }

    #[test]
    fn node_locks_are_shared_per_node() {
        let locks = NodeLocks::default();
        let a = locks.get(&key("a"));
        let guard = a.try_lock().unwrap();
        assert!(locks.get(&key("a")).try_lock().is_err());
        assert!(locks.get(&key("b")).try_lock().is_ok());
        locks.forget(&key("a"));
        assert!(locks.get(&key("a")).try_lock().is_err(), "kept while in use");
        drop(guard);
        drop(a);
        locks.forget(&key("a"));
        assert!(locks.locks.lock().unwrap().get(&key("a")).is_none());
    }
}
