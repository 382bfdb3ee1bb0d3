//! The coordinator's state: the topology in memory, sled underneath, and the
//! rule hub that agents watch. All mutations go through `mutate`, one at a
//! time: validate, write durably, apply in memory, publish rules.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use dclab_proto::ApiError;

use crate::keys::KeyRange;
use crate::model::{NetId, Topology};
use crate::mutate::Ops;
use crate::record::{Op, Record, RecordKey};
use crate::rules::RuleHub;
use crate::store::{Store, StoreError};

pub struct State {
    inner: Mutex<Inner>,
    pub hub: Arc<RuleHub>,
}

struct Inner {
    topo: Topology,
    store: Store,
    keys: KeyRange,
    revision: u64,
    next_net_id: NetId,
}

/// What a mutation function gets to look at.
pub struct View<'a> {
    pub topo: &'a Topology,
    pub keys: &'a KeyRange,
    pub next_net_id: NetId,
}

impl State {
    pub fn open(dir: &Path, keys: KeyRange) -> Result<State, StoreError> {
        let store = Store::open(dir)?;
        let loaded = store.load()?;
        let hub = Arc::new(RuleHub::default());
        let all: BTreeSet<String> = loaded.topo.hosts.keys().cloned().collect();
        hub.publish(&loaded.topo, &all, loaded.revision);
        let inner = Inner {
            topo: loaded.topo,
            store,
            keys,
            revision: loaded.revision,
            next_net_id: loaded.next_net_id,
        };
        Ok(State {
            inner: Mutex::new(inner),
            hub,
        })
    }

    pub fn read<R>(&self, f: impl FnOnce(&Topology) -> R) -> R {
        f(&self.inner.lock().unwrap().topo)
    }

    pub fn revision(&self) -> u64 {
        self.inner.lock().unwrap().revision
    }

    pub fn size_on_disk(&self) -> u64 {
        self.inner.lock().unwrap().store.size_on_disk()
    }

    /// Validates with `f`, then commits its ops durably and publishes the
    /// affected hosts' rules. Returns the ops applied (empty: nothing changed).
    pub fn mutate(&self, f: impl FnOnce(&View) -> Ops) -> Result<Vec<Op>, ApiError> {
        let mut inner = self.inner.lock().unwrap();
        let ops = f(&View {
            topo: &inner.topo,
            keys: &inner.keys,
            next_net_id: inner.next_net_id,
        })?;
        if ops.is_empty() {
            return Ok(ops);
        }
        let revision = inner.revision + 1;
        let next_net_id = next_net_id(inner.next_net_id, &ops);
        let mut affected = affected_hosts(&inner.topo, &ops);
        inner.store.commit(&ops, revision, next_net_id)?;
        for op in &ops {
            inner.topo.apply(op);
        }
        affected.extend(affected_hosts(&inner.topo, &ops));
        inner.revision = revision;
        inner.next_net_id = next_net_id;
        self.hub.publish(&inner.topo, &affected, revision);
        Ok(ops)
    }
}

fn next_net_id(current: NetId, ops: &[Op]) -> NetId {
    let used = ops.iter().filter_map(|op| match op {
        Op::Put(Record::Network(n)) => Some(n.id + 1),
        _ => None,
    });
    used.fold(current, NetId::max)
}

/// Hosts whose flows may change with `ops`, as seen in `topo`. Called
/// before and after applying, so members joining and leaving both count.
fn affected_hosts(topo: &Topology, ops: &[Op]) -> BTreeSet<String> {
    let mut hosts = BTreeSet::new();
    let mut nets = BTreeSet::new();
    for op in ops {
        match op {
            Op::Put(Record::Port(p)) => {
                hosts.insert(p.host.clone());
                nets.insert(p.net);
            }
            Op::Delete(RecordKey::Port(name)) => {
                if let Some(p) = topo.ports.get(name) {
                    hosts.insert(p.host.clone());
                    nets.insert(p.net);
                }
            }
            Op::Put(Record::BroadcastKey { host, net, .. })
            | Op::Delete(RecordKey::BroadcastKey(host, net)) => {
                hosts.insert(host.clone());
                nets.insert(*net);
            }
            Op::Put(Record::Host(h)) => {
                hosts.insert(h.id.clone());
                nets.extend(topo.nets_on_host(&h.id));
            }
            Op::Delete(RecordKey::Host(id)) => {
                hosts.insert(id.clone());
            }
            _ => {}
        }
    }
    for net in nets {
        hosts.extend(topo.hosts_of_net(net));
    }
    hosts
}
