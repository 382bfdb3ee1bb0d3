//! The agent's Prometheus metrics: the rule reconciler and the node side
//! record what they did (heal failures among them); leases are read at
//! every scrape, so a lease's age is the age now, and the faults awaiting
//! their heal are those in the lease file now.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::nodes::leases::{now_ms, Leases};

type Labels = Vec<(&'static str, String)>;

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentMetrics")
    }
}

pub struct AgentMetrics {
    registry: Registry,
    pub applied_version: Gauge,
    pub flows_installed: Gauge,
    pub reconcile_duration: Histogram,
    pub bundle_failures: Counter,
    pub ports_unattached: Gauge,
    bridge_repairs: Family<Labels, Counter>,
    lab_nodes: Family<Labels, Gauge>,
    faults_active: Gauge,
    pub heal_failures: Counter,
    faults_awaiting_heal: Gauge,
    lease_age: Family<Labels, Gauge<f64, AtomicU64>>,
    leases: OnceLock<Arc<Leases>>,
}

impl AgentMetrics {
    pub fn new(host_id: &str) -> AgentMetrics {
        let mut registry = Registry::with_prefix("dclab_agent");
        let info: Family<Labels, Gauge> = Family::default();
        info.get_or_create(&vec![("host", host_id.to_string())]).set(1);
        registry.register("info", "The host this agent runs (always 1)", info);
        let m = AgentMetrics {
            registry: Registry::default(),
            applied_version: Gauge::default(),
            flows_installed: Gauge::default(),
            // 1 ms to about 30 s: an ovs-ofctl bundle takes tens of ms.
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            bundle_failures: Counter::default(),
            ports_unattached: Gauge::default(),
            bridge_repairs: Family::default(),
            lab_nodes: Family::default(),
            faults_active: Gauge::default(),
            heal_failures: Counter::default(),
            faults_awaiting_heal: Gauge::default(),
            lease_age: Family::default(),
            leases: OnceLock::new(),
        };
        registry.register(
            "applied_version",
            "The rule version last applied to the bridge and acknowledged",
            m.applied_version.clone(),
        );
        registry.register(
            "flows_installed",
            "OpenFlow rules the agent installed on its bridge",
            m.flows_installed.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "One reconcile of the bridge: render, replace the flows, acknowledge",
            Unit::Seconds,
            m.reconcile_duration.clone(),
        );
        registry.register(
            "bundle_failures",
            "Flow bundles OvS refused or that could not be sent",
            m.bundle_failures.clone(),
        );
        registry.register(
            "ports_unattached",
            "Ports the coordinator placed here with no OvS port yet",
            m.ports_unattached.clone(),
        );
        registry.register(
            "bridge_repairs",
            "Flows reinstalled at once: ovs-vswitchd answered again (reconnected) or the agent's flows were deleted (flows_deleted)",
            m.bridge_repairs.clone(),
        );
        registry.register(
            "lab_nodes",
            "Lab nodes on this host, by state",
            m.lab_nodes.clone(),
        );
        registry.register(
            "faults_active",
            "Faults applied here under leases that have not ended",
            m.faults_active.clone(),
        );
        registry.register(
            "heal_failures",
            "Heals of a fault that failed (each is retried until it succeeds)",
            m.heal_failures.clone(),
        );
        registry.register(
            "faults_awaiting_heal",
            "Faults whose lease ended and whose heal has not succeeded yet",
            m.faults_awaiting_heal.clone(),
        );
        registry.register_with_unit(
            "fault_lease_age",
            "Time since the lease of each active fault was taken or last renewed",
            Unit::Seconds,
            m.lease_age.clone(),
        );
        AgentMetrics { registry, ..m }
    }

    /// The leases the node side keeps, read at every scrape.
    pub(crate) fn watch_leases(&self, leases: Arc<Leases>) {
        let _ = self.leases.set(leases);
    }

    /// The rule reconciler reinstalled the bridge's flows for `reason`.
    pub fn bridge_repaired(&self, reason: &str) {
        self.bridge_repairs
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    /// The node states of the last pass, as reported to the coordinator.
    pub fn nodes_seen<'a>(&self, states: impl Iterator<Item = &'a str>) {
        self.lab_nodes.clear();
        for state in states {
            self.lab_nodes
                .get_or_create(&vec![("state", state.to_string())])
                .inc();
        }
    }

    pub fn render(&self) -> String {
        self.refresh_leases();
        let mut page = String::new();
        encode(&mut page, &self.registry).expect("writing to a String cannot fail");
        page
    }

    fn refresh_leases(&self) {
        self.lease_age.clear();
        let Some(leases) = self.leases.get() else {
            self.faults_active.set(0);
            self.faults_awaiting_heal.set(0);
            return;
        };
        let now = now_ms();
        let mut active = 0;
        let mut awaiting = 0;
        for lease in leases.list() {
            if lease.healing.is_some() {
                awaiting += lease.faults.len() as i64;
                continue;
            }
            if lease.expires_unix_ms <= now {
                continue;
            }
            let age = now.saturating_sub(lease.renewed_unix_ms) as f64 / 1000.0;
            for fault in &lease.faults {
                active += 1;
                let labels = vec![
                    ("lease", lease.id.clone()),
                    ("fault", fault.kind().to_string()),
                    ("node", fault.node()),
                ];
                self.lease_age.get_or_create(&labels).set(age);
            }
        }
        self.faults_active.set(active);
        self.faults_awaiting_heal.set(awaiting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{Applied, CutHeld, FlowsHeld};
    use dclab_proto::v1;

    fn sample(page: &str, key: &str) -> f64 {
        page.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {key:?} in\n{page}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn faults_are_counted_with_their_lease_age_until_the_lease_ends() {
        let metrics = AgentMetrics::new("h1");
        let leases = Arc::new(Leases::in_memory());
        metrics.watch_leases(leases.clone());
        let page = metrics.render();
        assert_eq!(sample(&page, "dclab_agent_info{host=\"h1\"}"), 1.0);
        assert_eq!(sample(&page, "dclab_agent_faults_active"), 0.0);
        assert_eq!(sample(&page, "dclab_agent_bundle_failures_total"), 0.0);

        let lease = v1::Lease {
            id: "r1-cut".into(),
            ttl_ms: 60_000,
        };
        let cut = Applied::LinkCut(CutHeld {
            lab: "l".into(),
            node: "a".into(),
            tap: "dl0".into(),
        });
        leases.add_fault(&lease, cut).unwrap();
        leases
            .add_fault(&lease, Applied::Flows(FlowsHeld { count: 2 }))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let page = metrics.render();
        assert_eq!(sample(&page, "dclab_agent_faults_active"), 2.0);
        let age = sample(
            &page,
            "dclab_agent_fault_lease_age_seconds{lease=\"r1-cut\",fault=\"link_cut\",node=\"l/a\"}",
        );
        assert!((0.02..5.0).contains(&age), "{age}");
        // A renewal makes the lease young again.
        std::thread::sleep(std::time::Duration::from_millis(50));
        leases.renew(&["r1-cut".into()], 60_000);
        let renewed = sample(
            &metrics.render(),
            "dclab_agent_fault_lease_age_seconds{lease=\"r1-cut\",fault=\"flows\",node=\"\"}",
        );
        assert!(renewed < age + 0.05, "{renewed} after renewal, {age} before");

        // Ended: awaiting heal, no longer active, until each one heals.
        assert!(leases.end("r1-cut"));
        let page = metrics.render();
        assert_eq!(sample(&page, "dclab_agent_faults_active"), 0.0);
        assert_eq!(sample(&page, "dclab_agent_faults_awaiting_heal"), 2.0);
        assert!(!page.contains("r1-cut"), "{page}");
        leases.healed("r1-cut", &Applied::Flows(FlowsHeld { count: 2 }));
        metrics.heal_failures.inc();
        let page = metrics.render();
        assert_eq!(sample(&page, "dclab_agent_faults_awaiting_heal"), 1.0);
        assert_eq!(sample(&page, "dclab_agent_heal_failures_total"), 1.0);
    }

    #[test]
    fn node_states_and_reconcile_figures_are_what_was_recorded_last() {
        let metrics = AgentMetrics::new("h1");
        metrics.nodes_seen(["running", "running", "failed"].into_iter());
        metrics.bundle_failures.inc();
        metrics.flows_installed.set(42);
        metrics.reconcile_duration.observe(0.01);
        metrics.bridge_repaired("reconnected");
        metrics.bridge_repaired("reconnected");
        let page = metrics.render();
        assert_eq!(
            sample(&page, "dclab_agent_bridge_repairs_total{reason=\"reconnected\"}"),
            2.0
        );
        assert_eq!(sample(&page, "dclab_agent_lab_nodes{state=\"running\"}"), 2.0);
        assert_eq!(sample(&page, "dclab_agent_lab_nodes{state=\"failed\"}"), 1.0);
        assert_eq!(sample(&page, "dclab_agent_bundle_failures_total"), 1.0);
        assert_eq!(sample(&page, "dclab_agent_flows_installed"), 42.0);
        assert_eq!(sample(&page, "dclab_agent_reconcile_duration_seconds_count"), 1.0);
        metrics.nodes_seen(["stopped"].into_iter());
        let page = metrics.render();
        assert!(!page.contains("state=\"running\""), "{page}");
        assert_eq!(sample(&page, "dclab_agent_lab_nodes{state=\"stopped\"}"), 1.0);
    }
}
