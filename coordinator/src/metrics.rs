//! The coordinator's Prometheus metrics. Gauges are read from the state at
//! every scrape, so they cannot drift from it; the histograms are the
//! rule hub's own, observed where compiles and acks happen.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::coordinator::Coordinator;
use crate::experiment::Runs;
use crate::nodes::hub::NodeHub;
use crate::rules::RuleHub;
use crate::state::State;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    store: Arc<State>,
    rules: Arc<RuleHub>,
    runs: Arc<Runs>,
    nodes: Arc<NodeHub>,
    registry: Registry,
    revision: Gauge,
    objects: Family<Labels, Gauge>,
    hosts_connected: Gauge,
    desired: Family<Labels, Gauge>,
    applied: Family<Labels, Gauge>,
    store_size: Gauge<u64, AtomicU64>,
    runs_active: Gauge,
    faults_active: Gauge,
    faults_awaiting_heal: Gauge,
}

impl Metrics {
    /// Reads the store, the rule hub, the runs and the node hub.
    pub fn new(parts: &Coordinator) -> Metrics {
        let mut registry = Registry::with_prefix("dclab_coordinator");
        let m = Metrics {
            store: parts.store.clone(),
            rules: parts.rules.clone(),
            runs: parts.runs.clone(),
            nodes: parts.nodes.clone(),
            revision: Gauge::default(),
            objects: Family::default(),
            hosts_connected: Gauge::default(),
            desired: Family::default(),
            applied: Family::default(),
            store_size: Gauge::default(),
            runs_active: Gauge::default(),
            faults_active: Gauge::default(),
            faults_awaiting_heal: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "revision",
            "The store's revision: one more per committed change",
            m.revision.clone(),
        );
        registry.register("objects", "Objects in the topology, by kind", m.objects.clone());
        registry.register(
            "hosts_connected",
            "Hosts whose agent has a rule stream open",
            m.hosts_connected.clone(),
        );
        registry.register(
            "host_desired_version",
            "The rule version computed for each host",
            m.desired.clone(),
        );
        registry.register(
            "host_applied_version",
            "The rule version each host's agent last acknowledged",
            m.applied.clone(),
        );
        registry.register_with_unit(
            "ack_latency",
            "From pushing a host's rules to its agent's acknowledgement",
            Unit::Seconds,
            m.rules.timings.ack_latency.clone(),
        );
        registry.register_with_unit(
            "compile_duration",
            "Rule compilation of one change, every host it touches",
            Unit::Seconds,
            m.rules.timings.compile.clone(),
        );
        registry.register_with_unit(
            "store_size",
            "sled's size on disk",
            Unit::Bytes,
            m.store_size.clone(),
        );
        registry.register(
            "experiment_runs_active",
            "Experiment runs under way",
            m.runs_active.clone(),
        );
        registry.register(
            "faults_active",
            "Faults applied by runs under way and not healed yet",
            m.faults_active.clone(),
        );
        registry.register(
            "faults_awaiting_heal",
            "Faults whose heal failed and that agents retry, as the connected agents last reported",
            m.faults_awaiting_heal.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The page a scrape gets, read from the state now.
    pub fn render(&self) -> String {
        self.refresh();
        let mut page = String::new();
        encode(&mut page, &self.registry).expect("writing to a String cannot fail");
        page
    }

    fn refresh(&self) {
        let (revision, counts, hosts) = {
            let revision = self.store.revision();
            self.store.read(|t| {
                let counts = [
                    ("host", t.hosts.len()),
                    ("tenant", t.tenants.len()),
                    ("network", t.networks.len()),
                    ("port", t.ports.len()),
                    ("lab", t.labs.len()),
                    ("snapshot", t.snapshots.len()),
                ];
                (revision, counts, t.hosts.keys().cloned().collect::<Vec<_>>())
            })
        };
        self.revision.set(revision as i64);
        for (kind, n) in counts {
            self.objects
                .get_or_create(&vec![("kind", kind.to_string())])
                .set(n as i64);
        }
        // Hosts deleted since the last scrape must not linger.
        self.desired.clear();
        self.applied.clear();
        let mut connected = 0;
        for host in hosts {
            let label = vec![("host", host.clone())];
            let status = self.rules.status(&host);
            connected += i64::from(status.watchers > 0);
            self.desired
                .get_or_create(&label)
                .set(self.rules.current(&host).version as i64);
            self.applied
                .get_or_create(&label)
                .set(status.applied_version as i64);
        }
        self.hosts_connected.set(connected);
        self.store_size.set(self.store.size_on_disk());
        self.runs_active.set(self.runs.active_count() as i64);
        self.faults_active.set(self.runs.faults_active() as i64);
        self.faults_awaiting_heal
            .set(self.nodes.pending_heal_count() as i64);
    }
}

#[cfg(test)]
mod tests;
