//! The store of desired state: the topology in memory, sled underneath,
//! the mapping keys and the revision. All mutations go through `mutate`,
//! one at a time: validate, write durably, apply in memory, then publish to
//! the rule hub (agents' rules) and the node hub (lab nodes per host). The
//! two hubs are handed to the services separately (`coordinator.rs`); the
//! store only publishes to them.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use dclab_proto::ApiError;

use crate::keys::KeyRange;
use crate::model::{NetId, Topology};
use crate::mutate::Ops;
use crate::nodes::hub::NodeHub;
use crate::record::{Op, Record, RecordKey};
use crate::rules::{Dirty, RuleHub};
use crate::store::{Store, StoreError};

pub struct State {
    inner: Mutex<Inner>,
    /// Where a write publishes the rules of the hosts it touched.
    rules: Arc<RuleHub>,
    /// Where a write publishes lab nodes per host.
    nodes: Arc<NodeHub>,
    /// How long loading the store took at start.
    pub load_micros: u64,
}

struct Inner {
    topo: Topology,
    store: Store,
    keys: KeyRange,
    revision: u64,
    next_net_id: NetId,
    /// Set when a commit failed: whether that change reached the disk is
    /// unknown, so no write is taken until a restart reloads the store.
    store_failed: Option<String>,
}

/// What a mutation function gets to look at.
pub struct View<'a> {
    pub topo: &'a Topology,
    pub keys: &'a KeyRange,
    pub next_net_id: NetId,
    /// The revision now; a change is written as revision + 1.
    pub revision: u64,
}

impl State {
    /// Loads the store in `dir` and publishes all it holds to `rules` and
    /// `nodes` (a compile of every host from scratch).
    pub fn open(
        dir: &Path,
        keys: KeyRange,
        rules: Arc<RuleHub>,
        nodes: Arc<NodeHub>,
    ) -> Result<State, StoreError> {
        let started = std::time::Instant::now();
        let store = Store::open(dir)?;
        let loaded = store.load()?;
        let load_micros = started.elapsed().as_micros() as u64;
        rules.publish(&loaded.topo, &Dirty::everything(&loaded.topo), loaded.revision);
        nodes.publish(&loaded.topo, loaded.revision);
        let inner = Inner {
            topo: loaded.topo,
            store,
            keys,
            revision: loaded.revision,
            next_net_id: loaded.next_net_id,
            store_failed: None,
        };
        Ok(State {
            inner: Mutex::new(inner),
            rules,
            nodes,
            load_micros,
        })
    }

    /// The sled tree experiment run records live in.
    pub fn runs_tree(&self) -> Result<sled::Tree, StoreError> {
        self.inner.lock().store.runs_tree()
    }

    pub fn read<R>(&self, f: impl FnOnce(&Topology) -> R) -> R {
        f(&self.inner.lock().topo)
    }

    pub fn revision(&self) -> u64 {
        self.inner.lock().revision
    }

    pub fn size_on_disk(&self) -> u64 {
        self.inner.lock().store.size_on_disk()
    }

    /// Why writes are refused, if a commit failed.
    pub fn store_failed(&self) -> Option<String> {
        self.inner.lock().store_failed.clone()
    }

    /// `mutate` from async code: the write (validation, fsync, compile)
    /// may take a while, so the runtime moves other work off this thread.
    pub fn write(&self, f: impl FnOnce(&View) -> Ops) -> Result<Vec<Op>, ApiError> {
        tokio::task::block_in_place(|| self.mutate(f))
    }

    /// `write`, then `reply` from the topology as this write left it, under
    /// the same lock: a reply describes what this write did, never what a
    /// concurrent one changed after it.
    pub fn write_reply<R>(
        &self,
        f: impl FnOnce(&View) -> Ops,
        reply: impl FnOnce(&Topology, Vec<Op>) -> R,
    ) -> Result<R, ApiError> {
        tokio::task::block_in_place(|| self.mutate_reply(f, reply))
    }

    /// Validates with `f`, then commits its ops durably and publishes the
    /// affected hosts' rules. Returns the ops applied (empty: nothing changed).
    pub fn mutate(&self, f: impl FnOnce(&View) -> Ops) -> Result<Vec<Op>, ApiError> {
        self.mutate_reply(f, |_, ops| ops)
    }

    fn mutate_reply<R>(
        &self,
        f: impl FnOnce(&View) -> Ops,
        reply: impl FnOnce(&Topology, Vec<Op>) -> R,
    ) -> Result<R, ApiError> {
        let mut inner = self.inner.lock();
        if let Some(failed) = &inner.store_failed {
            return Err(ApiError::Unavailable(failed.clone()));
        }
        let ops = f(&View {
            topo: &inner.topo,
            keys: &inner.keys,
            next_net_id: inner.next_net_id,
            revision: inner.revision,
        })?;
        if ops.is_empty() {
            return Ok(reply(&inner.topo, ops));
        }
        let revision = inner.revision + 1;
        let next_net_id = next_net_id(inner.next_net_id, &ops);
        let mut dirty = Dirty::default();
        mark_dirty(&inner.topo, &ops, &mut dirty);
        if let Err(e) = inner.store.commit(&ops, revision, next_net_id) {
            // The batch may or may not be on disk: never say "failed" of a
            // change a restart could bring back. Fence writes instead.
            let fenced = format!(
                "the store failed writing revision {revision} ({e}); whether that change reached the disk \
                 is unknown, so the coordinator takes no more writes: fix the disk and restart it (it then \
                 serves exactly what is on disk, revision {} or {revision})",
                inner.revision
            );
            tracing::error!(revision, error = %e, "store commit failed; writes are refused until a restart");
            inner.store_failed = Some(fenced.clone());
            return Err(ApiError::Unavailable(fenced));
        }
        for op in &ops {
            inner.topo.apply(op);
        }
        mark_dirty(&inner.topo, &ops, &mut dirty);
        inner.revision = revision;
        inner.next_net_id = next_net_id;
        self.rules.publish(&inner.topo, &dirty, revision);
        // Node sets come from lab records only (a host with lab nodes has
        // their ports, so it cannot be deleted under them).
        let nodes_changed = ops
            .iter()
            .any(|op| matches!(op, Op::Put(Record::Lab(_)) | Op::Delete(RecordKey::Lab(_))));
        if nodes_changed {
            self.nodes.publish(&inner.topo, revision);
        }
        Ok(reply(&inner.topo, ops))
    }
}

fn next_net_id(current: NetId, ops: &[Op]) -> NetId {
    let used = ops.iter().filter_map(|op| match op {
        Op::Put(Record::Network(n)) => Some(n.id + 1),
        _ => None,
    });
    used.fold(current, NetId::max)
}

/// What `ops` touch, as seen in `topo`. Called before and after applying,
/// so members joining and leaving both count.
fn mark_dirty(topo: &Topology, ops: &[Op], dirty: &mut Dirty) {
    let port = |dirty: &mut Dirty, name: &str, net: NetId, host: &str| {
        dirty.ports.insert(name.to_string());
        dirty.nets.insert(net);
        dirty.hosts.insert(host.to_string());
    };
    for op in ops {
        match op {
            Op::Put(Record::Port(p)) => port(dirty, &p.name, p.net, &p.host),
            Op::Delete(RecordKey::Port(name)) => {
                if let Some(p) = topo.ports.get(name) {
                    port(dirty, name, p.net, &p.host);
                }
            }
            Op::Put(Record::BroadcastKey { host, net, .. })
            | Op::Delete(RecordKey::BroadcastKey(host, net)) => {
                dirty.hosts.insert(host.clone());
                dirty.nets.insert(*net);
            }
            // Its MAC appears in every part of the host and in the network
            // parts of every host sharing a network with it.
            Op::Put(Record::Host(h)) => {
                dirty.full.insert(h.id.clone());
                dirty.hosts.insert(h.id.clone());
                dirty.nets.extend(topo.nets_on_host(&h.id));
            }
            Op::Delete(RecordKey::Host(id)) => {
                dirty.full.insert(id.clone());
                dirty.hosts.insert(id.clone());
            }
            _ => {}
        }
    }
    for net in &dirty.nets {
        dirty.hosts.extend(topo.hosts_of_net(*net));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PortKind;
    use crate::mutate::{self, PortSpec};

    fn open(dir: &Path, range: &str) -> (State, Arc<RuleHub>) {
        let rules = Arc::new(RuleHub::default());
        let keys = KeyRange(range.parse().unwrap());
        let state = State::open(dir, keys, rules.clone(), Default::default()).unwrap();
        (state, rules)
    }

    fn port<'a>(name: &'a str, net: &'a str, host: &'a str, mac: &'a str, ip: &'a str) -> PortSpec<'a> {
        PortSpec {
            name,
            tenant: "t",
            network: net,
            host,
            mac,
            ip,
            kind: PortKind::Vm,
        }
    }

    fn setup(state: &State) {
        for (h, mac) in [
            ("h1", "0a:00:00:00:00:01"),
            ("h2", "0a:00:00:00:00:02"),
            ("h3", "0a:00:00:00:00:03"),
        ] {
            state
                .mutate(|v| mutate::put_host(v.topo, h, "up0", mac, (4, 4096)))
                .unwrap();
        }
        state.mutate(|v| mutate::create_tenant(v.topo, "t")).unwrap();
        for (n, cidr) in [("a", "10.0.0.0/24"), ("b", "10.1.0.0/24")] {
            state
                .mutate(|v| mutate::create_network(v.topo, "t", n, cidr, v.next_net_id))
                .unwrap();
        }
    }

    #[test]
    fn state_and_keys_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, revision) = {
            let (state, _rules) = open(dir.path(), "100.64.0.0/16");
            setup(&state);
            let spec = port("p1", "a", "h1", "02:00:00:00:00:01", "10.0.0.1");
            state
                .mutate(|v| mutate::create_port(v.topo, v.keys, &spec))
                .unwrap();
            (
                state.read(|t| (t.ports["p1"].key, t.bkeys.clone())),
                state.revision(),
            )
        };
        let (state, rules) = open(dir.path(), "100.64.0.0/16");
        assert_eq!(state.revision(), revision);
        assert_eq!(state.read(|t| (t.ports["p1"].key, t.bkeys.clone())), keys);
        assert_eq!(
            rules.current("h1").sorted(),
            crate::compile::compile_host(&state.read(|t| t.clone()), "h1")
        );
        // Network ids are never reused, even after a restart.
        state
            .mutate(|v| mutate::create_network(v.topo, "t", "c", "10.2.0.0/24", v.next_net_id))
            .unwrap();
        assert_eq!(state.read(|t| t.network_by_name("t", "c").unwrap().id), 3);
    }

    #[test]
    fn deleting_a_port_frees_its_key_and_broadcast_key() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _rules) = open(dir.path(), "100.64.0.0/16");
        setup(&state);
        let spec = port("p1", "a", "h1", "02:00:00:00:00:01", "10.0.0.1");
        state
            .mutate(|v| mutate::create_port(v.topo, v.keys, &spec))
            .unwrap();
        state.mutate(|v| mutate::delete_port(v.topo, "p1")).unwrap();
        assert!(state.read(|t| t.keys_on_host("h1").is_empty()));
        state
            .mutate(|v| mutate::create_port(v.topo, v.keys, &spec))
            .unwrap();
        assert_eq!(state.read(|t| t.ports["p1"].key.to_string()), "100.64.0.2");
    }

    #[test]
    fn exhausted_key_range_is_a_clear_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // A /30 holds two usable keys: one broadcast key and one port.
        let (state, _rules) = open(dir.path(), "100.64.0.0/30");
        setup(&state);
        let first = port("p1", "a", "h1", "02:00:00:00:00:01", "10.0.0.1");
        state
            .mutate(|v| mutate::create_port(v.topo, v.keys, &first))
            .unwrap();
        let revision = state.revision();
        let second = port("p2", "a", "h1", "02:00:00:00:00:02", "10.0.0.2");
        let err = state
            .mutate(|v| mutate::create_port(v.topo, v.keys, &second))
            .unwrap_err();
        assert!(matches!(err, ApiError::ResourceExhausted(_)), "{err}");
        assert!(err.to_string().contains("--key-range"), "{err}");
        assert_eq!(state.revision(), revision);
        assert!(state.read(|t| !t.ports.contains_key("p2")));
        // Another host has its own keys.
        let elsewhere = port("p3", "a", "h2", "02:00:00:00:00:03", "10.0.0.3");
        state
            .mutate(|v| mutate::create_port(v.topo, v.keys, &elsewhere))
            .unwrap();
    }

    #[test]
    fn a_change_wakes_only_the_hosts_it_affects() {
        let dir = tempfile::tempdir().unwrap();
        let (state, rules) = open(dir.path(), "100.64.0.0/16");
        setup(&state);
        let specs = [
            port("a1", "a", "h1", "02:00:00:00:00:01", "10.0.0.1"),
            port("a2", "a", "h2", "02:00:00:00:00:02", "10.0.0.2"),
            port("b3", "b", "h3", "02:00:00:00:00:03", "10.1.0.3"),
        ];
        for spec in &specs {
            state
                .mutate(|v| mutate::create_port(v.topo, v.keys, spec))
                .unwrap();
        }
        let mut watchers: Vec<_> = ["h1", "h2", "h3"].iter().map(|h| rules.subscribe(h)).collect();
        watchers.iter_mut().for_each(|w| {
            w.borrow_and_update();
        });
        let spec = port("a4", "a", "h1", "02:00:00:00:00:04", "10.0.0.4");
        state
            .mutate(|v| mutate::create_port(v.topo, v.keys, &spec))
            .unwrap();
        let woken: Vec<bool> = watchers.iter().map(|w| w.has_changed().unwrap()).collect();
        assert_eq!(woken, [true, true, false], "h3 has no port in network a");
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (state, _rules) = open(dir.path(), "100.64.0.0/16");
        setup(&state);
        let good = port("a1", "a", "h1", "02:00:00:00:00:01", "10.0.0.1");
        let clash = port("a2", "a", "h2", "02:00:00:00:00:02", "10.0.0.1");
        let revision = state.revision();
        let err = state
            .mutate(|v| mutate::create_ports(v.topo, v.keys, &[good, clash]))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("port 2 of 2 (a2): IP 10.0.0.1"),
            "{err}"
        );
        assert_eq!(state.revision(), revision);
        assert!(state.read(|t| t.ports.is_empty() && t.bkeys.is_empty()));
        let batch: Vec<(String, String, String)> = (0..300)
            .map(|i| {
                (
                    format!("p{i}"),
                    format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
                    format!("10.0.{}.{}", i / 250, 1 + i % 250),
                )
            })
            .collect();
        let specs: Vec<PortSpec> = batch
            .iter()
            .map(|(n, m, ip)| port(n, if ip.starts_with("10.0.0.") { "a" } else { "b" }, "h1", m, ip))
            .collect();
        // 10.0.1.x addresses do not fit network b (10.1.0.0/24): refused whole.
        assert!(state
            .mutate(|v| mutate::create_ports(v.topo, v.keys, &specs))
            .is_err());
        assert!(state.read(|t| t.ports.is_empty()));
        let specs: Vec<PortSpec> = specs.into_iter().filter(|p| p.network == "a").collect();
        state
            .mutate(|v| mutate::create_ports(v.topo, v.keys, &specs))
            .unwrap();
        assert_eq!(
            state.read(|t| t.keys_on_host("h1").len()),
            251,
            "250 ports and one broadcast key"
        );
    }

    /// One change of the random sequence below.
    #[derive(Debug, Clone)]
    enum Change {
        AddPort { net: u8, host: u8, octet: u8 },
        DeletePort(usize),
        MoveHostMac { host: u8, mac: u8 },
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (0u8..2, 0u8..3, 1u8..20).prop_map(|(net, host, octet)| Change::AddPort { net, host, octet }),
            2 => (0usize..64).prop_map(Change::DeletePort),
            1 => (0u8..3, 10u8..200).prop_map(|(host, mac)| Change::MoveHostMac { host, mac }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

        /// Recompiling only touched parts always yields what a compile from
        /// scratch gives.
        #[test]
        fn incremental_rules_equal_a_full_compile(changes in proptest::collection::vec(change(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let (state, rules) = open(dir.path(), "100.64.0.0/16");
            setup(&state);
            for (i, c) in changes.iter().enumerate() {
                let _ = match c {
                    Change::AddPort { net, host, octet } => {
                        let (name, mac) = (format!("p{i}"), format!("02:00:00:00:{i:02x}:{octet:02x}"));
                        let (net, ip) = if *net == 0 { ("a", format!("10.0.0.{octet}")) } else { ("b", format!("10.1.0.{octet}")) };
                        let host = format!("h{}", host + 1);
                        let spec = port(&name, net, &host, &mac, &ip);
                        state.mutate(|v| mutate::create_port(v.topo, v.keys, &spec))
                    }
                    Change::DeletePort(n) => {
                        let name = state.read(|t| t.ports.keys().nth(n % t.ports.len().max(1)).cloned());
                        match name {
                            Some(name) => state.mutate(|v| mutate::delete_port(v.topo, &name)),
                            None => Ok(vec![]),
                        }
                    }
                    Change::MoveHostMac { host, mac } => {
                        let (id, mac) = (format!("h{}", host + 1), format!("0a:00:00:00:01:{mac:02x}"));
                        state.mutate(|v| mutate::put_host(v.topo, &id, "up0", &mac, (4, 4096)))
                    }
                };
                let topo = state.read(|t| t.clone());
                for h in topo.hosts.keys() {
                    proptest::prop_assert_eq!(rules.current(h).sorted(), crate::compile::compile_host(&topo, h), "host {} after {:?}", h, c);
                }
            }
        }
    }
}
