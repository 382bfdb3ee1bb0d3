//! Node locks: how operations and the reconciler stay out of each other's
//! way. A node lock is taken by an operation for the whole of its work on
//! the node and by the reconciler for one node step, so the check "no
//! lease, so resume" can never interleave with "take the lease, then
//! pause". The same kind of lock keeps two heal attempts of one lease
//! apart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::layout::NodeKey;

/// One async mutex per key, made on first use.
pub struct Locks<K> {
    locks: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

/// By node.
pub type NodeLocks = Locks<NodeKey>;
/// By lease id.
pub type LeaseLocks = Locks<String>;

impl<K> Default for Locks<K> {
    fn default() -> Self {
        Locks {
            locks: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + std::hash::Hash> Locks<K> {
    pub fn get(&self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap().entry(key.clone()).or_default().clone()
    }

    /// Drops the lock of a key no longer used (a removed node, a lease
    /// gone) unless someone is using it.
    pub fn forget(&self, key: &K) {
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
