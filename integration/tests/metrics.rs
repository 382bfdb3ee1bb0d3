//! Prometheus metrics of a real local cluster (mutual TLS on gRPC, plain
//! HTTP on the metrics ports): both endpoints are scraped before and after
//! ports are added, and what changed is what the cluster did — the object
//! count at once, the applied version once the agent acknowledged, a port
//! with no interface counted as unattached on its host.

use std::time::{Duration, Instant};

use dclab_integration::api::Api;
use dclab_integration::scrape::{sample, scrape};
use dclab_integration::{cluster, InstanceSpec};
use dclab_proto::v1;

/// Scrapes `url` until `done` holds for the page, or fails with the last.
fn scrape_until(url: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = scrape(url);
        if done(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within 20 s; last page of {url}:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const PORTS: &str = "dclab_coordinator_objects{kind=\"port\"}";
const DESIRED_H1: &str = "dclab_coordinator_host_desired_version{host=\"h1\"}";
const APPLIED_H1: &str = "dclab_coordinator_host_applied_version{host=\"h1\"}";
const ACKS: &str = "dclab_coordinator_ack_latency_seconds_count";

#[test]
fn scrapes_follow_a_port_from_its_creation_to_the_agents_ack() {
    let mut c = cluster("mx", 2, false);
    let status = c.status();
    let coordinator = status
        .coordinator_metrics
        .clone()
        .expect("ctl local up starts the coordinator with metrics");
    let h1 = status.hosts[0].agent_metrics.clone().expect("and every agent");
    let h2 = status.hosts[1].agent_metrics.clone().expect("and every agent");
    let api = Api::connect(&c.client_config().unwrap());
    api.tenant("t");
    api.network("t", "net", "10.0.0.0/24");
    api.wait_converged(Duration::from_secs(20));

    let before = scrape(&coordinator);
    assert_eq!(sample(&before, "dclab_coordinator_hosts_connected"), 2.0);
    assert_eq!(sample(&before, "dclab_coordinator_objects{kind=\"host\"}"), 2.0);
    assert_eq!(
        sample(&before, "dclab_coordinator_objects{kind=\"network\"}"),
        1.0
    );
    assert!(sample(&before, "dclab_coordinator_store_size_bytes") > 0.0);
    let ports = sample(&before, PORTS);
    let acks = sample(&before, ACKS);
    let agent_before = scrape(&h1);
    assert_eq!(sample(&agent_before, "dclab_agent_info{host=\"h1\"}"), 1.0);
    assert_eq!(
        sample(&agent_before, "dclab_agent_applied_version"),
        sample(&before, APPLIED_H1)
    );

    // An instance on h1: its port counts at once; the new version is
    // applied and acknowledged by h1's agent.
    c.add_instance(&InstanceSpec::vm("vm1", "h1", "t", "net", "10.0.0.1/24"))
        .unwrap();
    let counted = scrape(&coordinator);
    assert_eq!(sample(&counted, PORTS), ports + 1.0);
    let desired = sample(&counted, DESIRED_H1);
    assert!(desired > sample(&before, DESIRED_H1), "{counted}");
    let acked = scrape_until(&coordinator, "h1 acknowledges the new version", |p| {
        sample(p, APPLIED_H1) == desired
    });
    assert!(sample(&acked, ACKS) > acks, "{acked}");
    let agent = scrape_until(&h1, "h1's agent reports the version", |p| {
        sample(p, "dclab_agent_applied_version") == desired
    });
    let flows = api.hosts().into_iter().find(|h| h.id == "h1").unwrap().flow_count;
    assert_eq!(sample(&agent, "dclab_agent_flows_installed"), f64::from(flows));
    assert_eq!(sample(&agent, "dclab_agent_ports_unattached"), 0.0);
    assert!(sample(&agent, "dclab_agent_reconcile_duration_seconds_count") >= 1.0);
    assert_eq!(sample(&agent, "dclab_agent_faults_active"), 0.0);

    // A port placed on h2 with no interface there: unattached on h2.
    api.call(|mut c| async move {
        c.create_port(v1::CreatePortRequest {
            name: "ghost".into(),
            tenant: "t".into(),
            network: "net".into(),
            host: "h2".into(),
            mac: "02:00:00:00:00:99".into(),
            ip: "10.0.0.99".into(),
            kind: v1::PortKind::Vm.into(),
        })
        .await
    })
    .unwrap();
    assert_eq!(sample(&scrape(&coordinator), PORTS), ports + 2.0);
    scrape_until(&h2, "h2's agent counts the port without an interface", |p| {
        sample(p, "dclab_agent_ports_unattached") == 1.0
    });
}
