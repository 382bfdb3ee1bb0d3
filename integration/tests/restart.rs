//! Crashes and restarts: the dataplane keeps forwarding, state survives,
//! agents and coordinator converge again with no manual step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dclab_integration::api::Api;
use dclab_integration::world::{ping_counts, World};
use dclab_integration::InstanceSpec;
use dclab_proto::v1;

const SIGKILL: i32 = 9;

/// ping at a 10 ms interval from vm1 (h1) to vm2 (h2), in the background.
fn start_ping(w: &World, count: u32) -> std::process::Child {
    let count = count.to_string();
    let argv = ["ping", "-q", "-i", "0.01", "-W", "1", "-c", &count, "10.0.0.2"];
    w.spawn_in(&w.ns("vm1"), &argv).expect("ping starts")
}

fn finish_ping(child: std::process::Child) -> (u32, u32) {
    let out = child.wait_with_output().expect("ping ends");
    ping_counts(&String::from_utf8_lossy(&out.stdout))
}

fn port_view(api: &Api) -> BTreeSet<(String, String, String, String)> {
    api.ports()
        .into_iter()
        .map(|p| (p.name, p.host, p.ip, p.key))
        .collect()
}

#[test]
fn coordinator_crash_keeps_traffic_and_restart_restores_state() {
    let mut w = World::paper("rc");
    let before = port_view(&w.api);
    let ping = start_ping(&w, 600);
    std::thread::sleep(Duration::from_millis(800));
    w.kill_coordinator(SIGKILL).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    w.start_coordinator().unwrap();
    let (sent, received) = finish_ping(ping);
    println!("ping every 10 ms across a coordinator kill -9: {received}/{sent} received");
    assert_eq!(
        (sent, received),
        (600, 600),
        "packets lost while the coordinator was down"
    );

    let api = Api::connect(&w.client_config().unwrap());
    assert_eq!(
        port_view(&api),
        before,
        "ports or mapping keys changed across the restart"
    );
    api.wait_converged(Duration::from_secs(20));
    // The restarted coordinator still drives the agents: a new port works.
    let spec = InstanceSpec::vm("vm7", "h3", "a", "net", "10.0.0.7/24");
    w.add_instance(&spec).unwrap();
    api.wait_converged(Duration::from_secs(20));
    assert!(
        w.run("vm1", &["ping", "-c", "1", "-W", "2", "10.0.0.7"]).0,
        "new port unreachable after restart"
    );
}

/// (table, priority, match) → seconds the flow has been installed.
fn flow_ages(w: &World, host: &str) -> BTreeMap<String, f64> {
    let dump = w.ofctl(host, &["dump-flows"]).unwrap();
    dump.lines()
        .filter(|l| l.contains("cookie=0xdc1ab"))
        .map(|l| {
            let age = l
                .split("duration=")
                .nth(1)
                .and_then(|d| d.split('s').next())
                .unwrap();
            let key: Vec<&str> = l
                .split(", ")
                .filter(|f| !f.starts_with(" cookie") && !f.starts_with("duration") && !f.starts_with("n_"))
                .collect();
            (key.join(","), age.parse().unwrap())
        })
        .collect()
}

#[test]
fn agent_kill_and_restart_loses_no_ping_and_touches_no_flow() {
    let mut w = World::paper("ra");
    let ages_before = flow_ages(&w, "h1");
    assert!(!ages_before.is_empty());
    let marked = Instant::now();
    let ping = start_ping(&w, 500);
    std::thread::sleep(Duration::from_millis(500));
    w.kill_agent("h1", SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    w.start_agent("h1").unwrap();
    w.api.wait_converged(Duration::from_secs(20));
    let (sent, received) = finish_ping(ping);
    println!("ping every 10 ms across an agent kill -9 and restart: {received}/{sent} received");
    assert_eq!(
        (sent, received),
        (500, 500),
        "packets lost across the agent restart"
    );

    let ages_after = flow_ages(&w, "h1");
    assert_eq!(
        ages_after.keys().collect::<Vec<_>>(),
        ages_before.keys().collect::<Vec<_>>(),
        "the restarted agent changed the flow set"
    );
    let elapsed = marked.elapsed().as_secs_f64();
    for (flow, age) in &ages_after {
        assert!(
            *age + 0.5 >= elapsed,
            "flow was reinstalled by the restarted agent ({age}s old): {flow}"
        );
    }
}

#[test]
fn coordinator_crash_during_writes_leaves_consistent_state() {
    let mut w = World::paper("rw");
    let config = w.client_config().unwrap();
    // A writer creating ports as fast as it can while the coordinator dies.
    let writer = std::thread::spawn(move || {
        let api = Api::connect(&config);
        let mut created = 0;
        for i in 0..400u32 {
            let req = v1::CreatePortRequest {
                name: format!("burst{i}"),
                tenant: "b".into(),
                network: "net".into(),
                host: format!("h{}", i % 3 + 1),
                mac: format!("02:bb:00:00:{:02x}:{:02x}", i / 256, i % 256),
                ip: format!("10.0.0.{}", 10 + i % 240),
                kind: v1::PortKind::Vm.into(),
            };
            match api.call(|mut c| async move { c.create_port(req).await }) {
                Ok(_) => created += 1,
                Err(status) if status.code() == tonic::Code::AlreadyExists => {}
                Err(_) => break,
            }
        }
        created
    });
    std::thread::sleep(Duration::from_millis(300));
    w.kill_coordinator(SIGKILL).unwrap();
    let acknowledged = writer.join().unwrap();
    w.start_coordinator().unwrap();
    let api = Api::connect(&w.client_config().unwrap());
    let ports = api.ports();
    let burst = ports.iter().filter(|p| p.name.starts_with("burst")).count();
    println!("{acknowledged} creates acknowledged before the kill; {burst} burst ports after restart");
    assert!(burst >= acknowledged, "an acknowledged create was lost");
    assert!(burst <= acknowledged + 1, "more ports than creates in flight");
    let mut keys = BTreeSet::new();
    for p in &ports {
        assert!(
            keys.insert((p.host.clone(), p.key.clone())),
            "mapping key {} reused on {}",
            p.key,
            p.host
        );
    }
    for host in ["h1", "h2", "h3"] {
        let host = host.to_string();
        api.call(|mut c| async move { c.get_rules(v1::GetRulesRequest { host }).await })
            .expect("rules compile after the crash");
    }
    // Burst ports have no interface, so only "applied" can be reached.
    api.wait_applied(Duration::from_secs(30));
}
