use super::Metrics;
use crate::coordinator::Coordinator;
use crate::keys::KeyRange;
use crate::model::PortKind;
use crate::mutate::{self, PortSpec};

/// The value of the sample `name{labels}` (labels as written, "" for none).
fn sample(page: &str, name: &str, labels: &str) -> f64 {
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    page.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key:?} in\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

fn add_port(state: &Coordinator, name: &str, ip: &str) {
    let spec = PortSpec {
        name,
        tenant: "t",
        network: "a",
        host: "h1",
        mac: "02:00:00:00:00:01",
        ip,
        kind: PortKind::Vm,
    };
    state
        .store
        .mutate(|v| mutate::create_port(v.topo, v.keys, &spec))
        .unwrap();
}

#[test]
fn a_scrape_reads_the_state_and_the_hubs_timings() {
    let dir = tempfile::tempdir().unwrap();
    let state = Coordinator::open(dir.path(), KeyRange("100.64.0.0/16".parse().unwrap())).unwrap();
    state
        .store
        .mutate(|v| mutate::put_host(v.topo, "h1", "up0", "0a:00:00:00:00:01", (4, 4096)))
        .unwrap();
    state
        .store
        .mutate(|v| mutate::create_tenant(v.topo, "t"))
        .unwrap();
    state
        .store
        .mutate(|v| mutate::create_network(v.topo, "t", "a", "10.0.0.0/24", v.next_net_id))
        .unwrap();
    let metrics = Metrics::new(&state);
    let before = metrics.render();
    assert!(before.ends_with("# EOF\n"), "{before}");
    assert_eq!(sample(&before, "dclab_coordinator_objects", "kind=\"port\""), 0.0);
    assert_eq!(sample(&before, "dclab_coordinator_objects", "kind=\"host\""), 1.0);
    assert_eq!(
        sample(&before, "dclab_coordinator_revision", ""),
        state.store.revision() as f64
    );
    assert_eq!(sample(&before, "dclab_coordinator_hosts_connected", ""), 0.0);
    assert!(sample(&before, "dclab_coordinator_store_size_bytes", "") > 0.0);

    // An agent watching h1: a port pushes a version, its ack ends the clock.
    let _watch = state.rules.watching("h1");
    add_port(&state, "p1", "10.0.0.1");
    let desired = state.rules.current("h1").version;
    let page = metrics.render();
    assert_eq!(sample(&page, "dclab_coordinator_objects", "kind=\"port\""), 1.0);
    assert_eq!(sample(&page, "dclab_coordinator_hosts_connected", ""), 1.0);
    assert_eq!(
        sample(&page, "dclab_coordinator_host_desired_version", "host=\"h1\""),
        desired as f64
    );
    assert_eq!(
        sample(&page, "dclab_coordinator_host_applied_version", "host=\"h1\""),
        0.0
    );
    assert_eq!(
        sample(&page, "dclab_coordinator_ack_latency_seconds_count", ""),
        0.0
    );
    state.rules.ack("h1", desired, 10, 0);
    let acked = metrics.render();
    assert_eq!(
        sample(&acked, "dclab_coordinator_host_applied_version", "host=\"h1\""),
        desired as f64
    );
    assert_eq!(
        sample(&acked, "dclab_coordinator_ack_latency_seconds_count", ""),
        1.0
    );
    // Every change compiled once; the first scrape saw the three before.
    let compiles = sample(&acked, "dclab_coordinator_compile_duration_seconds_count", "");
    assert_eq!(
        compiles,
        sample(&before, "dclab_coordinator_compile_duration_seconds_count", "") + 1.0
    );
    assert_eq!(
        sample(&acked, "dclab_coordinator_experiment_runs_active", ""),
        0.0
    );
    assert_eq!(sample(&acked, "dclab_coordinator_faults_active", ""), 0.0);
    assert_eq!(sample(&acked, "dclab_coordinator_faults_awaiting_heal", ""), 0.0);

    // An agent reports a fault whose heal it retries.
    state.nodes.report(dclab_proto::v1::NodeReport {
        host_id: "h1".into(),
        pending_heals: vec![dclab_proto::v1::PendingHeal {
            lease_id: "fault-1".into(),
            fault: "link_cut".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(
        sample(&metrics.render(), "dclab_coordinator_faults_awaiting_heal", ""),
        1.0
    );

    // A deleted host leaves the per-host series.
    state.store.mutate(|v| mutate::delete_port(v.topo, "p1")).unwrap();
    state.store.mutate(|v| mutate::delete_host(v.topo, "h1")).unwrap();
    let gone = metrics.render();
    assert!(!gone.contains("host=\"h1\""), "{gone}");
}

#[test]
fn a_fault_counts_while_its_guard_lives() {
    let dir = tempfile::tempdir().unwrap();
    let state = Coordinator::open(dir.path(), KeyRange("100.64.0.0/16".parse().unwrap())).unwrap();
    let metrics = Metrics::new(&state);
    let fault = state.runs.fault_applied();
    let second = state.runs.fault_applied();
    assert_eq!(
        sample(&metrics.render(), "dclab_coordinator_faults_active", ""),
        2.0
    );
    drop(fault);
    drop(second);
    assert_eq!(
        sample(&metrics.render(), "dclab_coordinator_faults_active", ""),
        0.0
    );
}
