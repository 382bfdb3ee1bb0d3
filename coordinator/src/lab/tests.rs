use dclab_proto::v1;
use dclab_proto::ApiError;

use super::Labs;
use super::{apply, validate};
use crate::keys::KeyRange;
use crate::mutate;

pub(super) fn state(dir: &std::path::Path) -> Labs {
    let state = crate::coordinator::Coordinator::open(dir, KeyRange("100.64.0.0/16".parse().unwrap()))
        .unwrap()
        .labs();
    for (h, mac) in [("h1", "0a:00:00:00:00:01"), ("h2", "0a:00:00:00:00:02")] {
        state
            .store
            .mutate(|v| mutate::put_host(v.topo, h, "up0", mac, (4, 2048)))
            .unwrap();
    }
    state
}

pub(super) fn node(name: &str, memory_mib: u64, pin: &str, ip: &str) -> v1::NodeSpec {
    v1::NodeSpec {
        name: name.into(),
        role: String::new(),
        vcpus: 1,
        memory_mib,
        image: "micro".into(),
        disks_mib: vec![64],
        host: pin.into(),
        interfaces: vec![v1::InterfaceSpec {
            network: "lan".into(),
            ip: ip.into(),
        }],
        kind: v1::NodeKind::Vm.into(),
    }
}

pub(super) fn spec(name: &str, nodes: Vec<v1::NodeSpec>) -> v1::LabSpec {
    v1::LabSpec {
        name: name.into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.0.0.0/24".into(),
            kind: v1::NetworkKind::Rewrite.into(),
        }],
        nodes,
        ssh_keys: vec![],
    }
}

pub(super) fn up(state: &Labs, spec: &v1::LabSpec) -> Result<Vec<String>, ApiError> {
    let checked = validate::check(spec)?;
    let mut changes = vec![];
    state.store.mutate(|v| {
        let applied = apply::apply(v, &spec.name, checked)?;
        changes = applied.changes;
        Ok(applied.ops)
    })?;
    Ok(changes)
}

#[test]
fn a_lab_becomes_tenant_networks_ports_and_node_sets() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let lab = spec(
        "pair",
        vec![node("a", 512, "h1", "10.0.0.1"), node("b", 512, "", "")],
    );
    let changes = up(&state, &lab).unwrap();
    assert_eq!(changes.len(), 3, "{changes:?}");
    state.store.read(|t| {
        assert!(t.tenants.contains_key("pair"));
        assert!(t.network_by_name("pair", "lan").is_some());
        let a = &t.ports["pair.a.0"];
        assert_eq!((a.host.as_str(), a.ip.to_string().as_str()), ("h1", "10.0.0.1"));
        // b goes to h2, which has more free memory, and gets the lowest free address.
        let b = &t.ports["pair.b.0"];
        assert_eq!((b.host.as_str(), b.ip.to_string().as_str()), ("h2", "10.0.0.2"));
    });
    let on_h2 = state.nodes.subscribe("h2").borrow().clone();
    assert_eq!(on_h2.nodes.len(), 1);
    assert_eq!(on_h2.nodes[0].name, "b");
    assert_eq!(on_h2.nodes[0].nics[0].port, "pair.b.0");
    assert!(on_h2.nodes[0].nics[0].tap.len() <= 15);
    assert_eq!(on_h2.version, state.store.revision());

    // The same spec again changes nothing, not even the revision.
    let revision = state.store.revision();
    assert!(up(&state, &lab).unwrap().is_empty());
    assert_eq!(state.store.revision(), revision);
}

#[test]
fn reapply_replaces_changed_nodes_only_and_keeps_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    up(
        &state,
        &spec(
            "l",
            vec![
                node("a", 256, "", ""),
                node("b", 256, "", ""),
                node("c", 256, "", ""),
            ],
        ),
    )
    .unwrap();
    let before = state.store.read(|t| t.labs["l"].clone());
    let h1_version = state.nodes.set_version("h1");
    let changes = up(
        &state,
        &spec("l", vec![node("a", 256, "", ""), node("b", 384, "", "")]),
    )
    .unwrap();
    assert!(
        changes.iter().any(|c| c.starts_with("replaced node b")),
        "{changes:?}"
    );
    assert!(
        changes.iter().any(|c| c.starts_with("removed node c")),
        "{changes:?}"
    );
    assert_eq!(changes.len(), 2, "a is unchanged: {changes:?}");
    let after = state.store.read(|t| t.labs["l"].clone());
    assert_eq!(after.node("a"), before.node("a"));
    assert_eq!(
        after.node("b").unwrap().nics[0].ip,
        before.node("b").unwrap().nics[0].ip
    );
    state.store.read(|t| assert!(!t.ports.contains_key("l.c.0")));
    let a_host = &after.node("a").unwrap().host;
    if a_host == "h1" && before.node("c").unwrap().host != "h1" && after.node("b").unwrap().host != "h1" {
        assert_eq!(
            state.nodes.set_version("h1"),
            h1_version,
            "h1's set did not change"
        );
    }
}

#[test]
fn capacity_counts_other_labs_and_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    up(&state, &spec("one", vec![node("big", 2000, "h1", "")])).unwrap();
    let revision = state.store.revision();
    let err = up(&state, &spec("two", vec![node("x", 100, "h1", "")])).unwrap_err();
    assert!(matches!(err, ApiError::ResourceExhausted(_)), "{err}");
    assert!(
        err.to_string().contains("lab two") && err.to_string().contains("h1"),
        "{err}"
    );
    assert_eq!(state.store.revision(), revision);
    state.store.read(|t| assert!(!t.tenants.contains_key("two")));
    // Same CIDR in another lab on the same host is fine: labs are tenants.
    up(&state, &spec("two", vec![node("x", 100, "h2", "10.0.0.1")])).unwrap();
}

#[test]
fn bad_specs_are_refused_with_the_field_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let mut bad = spec("l", vec![node("a", 256, "", "10.9.0.1")]);
    let err = up(&state, &bad).unwrap_err().to_string();
    assert!(err.contains("node a: ip 10.9.0.1 is not a host address"), "{err}");
    bad.nodes[0].interfaces[0].ip = String::new();
    bad.nodes[0].interfaces[0].network = "wan".into();
    assert!(up(&state, &bad)
        .unwrap_err()
        .to_string()
        .contains("network \"wan\" is not defined"));
    let twice = spec(
        "l",
        vec![node("a", 256, "", "10.0.0.5"), node("b", 256, "", "10.0.0.5")],
    );
    assert!(up(&state, &twice).unwrap_err().to_string().contains("used twice"));
    let long = spec(&"x".repeat(30), vec![]);
    assert!(up(&state, &long).unwrap_err().to_string().contains("limit is 24"));
    state
        .store
        .mutate(|v| mutate::create_tenant(v.topo, "plain"))
        .unwrap();
    let clash = up(&state, &spec("plain", vec![])).unwrap_err();
    assert!(clash.to_string().contains("is not a lab"), "{clash}");
    up(&state, &spec("l", vec![node("a", 256, "", "")])).unwrap();
    let mut moved = spec("l", vec![node("a", 256, "", "")]);
    moved.networks[0].cidr = "10.1.0.0/24".into();
    let err = up(&state, &moved).unwrap_err().to_string();
    assert!(err.contains("changes CIDR") && err.contains("lab down"), "{err}");
}

#[test]
fn delete_removes_everything_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let state = state(dir.path());
        up(
            &state,
            &spec("l", vec![node("a", 256, "h1", ""), node("b", 256, "h1", "")]),
        )
        .unwrap();
        state.store.mutate(|v| apply::delete(v.topo, "l")).unwrap();
        state.store.read(|t| {
            assert!(t.labs.is_empty() && t.ports.is_empty() && t.bkeys.is_empty());
            assert!(t.networks.is_empty() && t.tenants.is_empty());
        });
        assert!(state.nodes.subscribe("h1").borrow().nodes.is_empty());
        up(&state, &spec("k", vec![node("a", 256, "h2", "")])).unwrap();
        let err = state.store.mutate(|v| apply::delete(v.topo, "l")).unwrap_err();
        assert!(err.to_string().contains("lab l does not exist"), "{err}");
    }
    let state = crate::coordinator::Coordinator::open(dir.path(), KeyRange("100.64.0.0/16".parse().unwrap()))
        .unwrap()
        .labs();
    state
        .store
        .read(|t| assert_eq!(t.labs["k"].node("a").unwrap().host, "h2"));
    assert_eq!(
        state.nodes.subscribe("h2").borrow().nodes.len(),
        1,
        "node sets are rebuilt at start"
    );
}

#[test]
fn the_apt_cache_node_is_the_proxy_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let mut cache = node("cache", 256, "h1", "10.0.0.5");
    cache.role = "aptcache".into();
    up(&state, &spec("l", vec![cache, node("a", 256, "h1", "")])).unwrap();
    let nodes = state.nodes.subscribe("h1").borrow().nodes.clone();
    let proxy = |n: &str| nodes.iter().find(|d| d.name == n).unwrap().apt_proxy.clone();
    assert_eq!(proxy("a"), "http://10.0.0.5:3142");
    assert_eq!(proxy("cache"), "");
}

#[tokio::test]
async fn operations_reach_the_connected_agent_and_fail_when_it_leaves() {
    use crate::nodes::hub::NodeHub;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::mpsc;

    let hub = Arc::new(NodeHub::default());
    let pause = v1::operation::Action::Pause(v1::PauseNodes::default());
    let op = crate::nodes::ops::on_nodes("l", vec!["a".into()], pause);
    let err = hub
        .run("h1", op.clone(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("agent of host h1 is not connected"),
        "{err}"
    );

    let (tx, mut rx) = mpsc::channel(4);
    let conn = hub.connect("h1", tx);
    let agent = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let sent = rx.recv().await.unwrap();
            // A result for another host's operation id is ignored.
            hub.complete(
                "h2",
                v1::OperationResult {
                    id: sent.id,
                    ..Default::default()
                },
            );
            hub.complete(
                "h1",
                v1::OperationResult {
                    id: sent.id,
                    ok: true,
                    ..Default::default()
                },
            );
            rx
        })
    };
    let done = hub.run("h1", op.clone(), Duration::from_secs(5)).await.unwrap();
    assert!(done.ok);
    let mut rx = agent.await.unwrap();

    let leaving = {
        let hub = hub.clone();
        tokio::spawn(async move {
            rx.recv().await.unwrap();
            hub.disconnect("h1", conn.0);
        })
    };
    let err = hub.run("h1", op, Duration::from_secs(5)).await.unwrap_err();
    assert!(
        err.to_string().contains("disconnected during the operation"),
        "{err}"
    );
    leaving.await.unwrap();
}

#[test]
fn changing_nodes_drops_the_labs_snapshots() {
    use crate::model::lab::Snapshot;
    use crate::record::{Op, Record};
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    up(&state, &spec("l", vec![node("a", 256, "h1", "")])).unwrap();
    let snap = Snapshot {
        lab: "l".into(),
        name: "initial".into(),
        cold: false,
        created_unix_ms: 0,
        nodes: vec![("a".into(), "h1".into())],
        micros: 0,
        phases: vec![],
    };
    state
        .store
        .mutate(|_| Ok(vec![Op::Put(Record::Snapshot(snap))]))
        .unwrap();
    // SSH keys do not touch the nodes: the snapshot stays.
    let mut keyed = spec("l", vec![node("a", 256, "h1", "")]);
    keyed.ssh_keys = vec!["ssh-ed25519 AAAA k".into()];
    assert_eq!(up(&state, &keyed).unwrap(), ["changed SSH keys"]);
    assert_eq!(state.store.read(|t| t.snapshots.len()), 1);
    let mut grown = keyed.clone();
    grown.nodes[0].memory_mib = 512;
    let changes = up(&state, &grown).unwrap();
    assert!(
        changes.contains(&"dropped snapshots initial (the lab's nodes changed)".to_string()),
        "{changes:?}"
    );
    assert_eq!(state.store.read(|t| t.snapshots.len()), 0);
}

// Multi-threaded: the delete's store write blocks in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_delete_reports_the_leftovers_its_agents_killed() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state(dir.path()));
    let nodes = vec![node("a", 256, "h1", ""), node("b", 256, "h2", "")];
    up(&state, &spec("l", nodes)).unwrap();
    let left = |name: &str, processes| v1::NodeLeftovers {
        lab: "l".into(),
        name: name.into(),
        processes,
        host: String::new(),
    };
    let report = |host: &str, leftovers| v1::NodeReport {
        host_id: host.into(),
        version: state.nodes.set_version(host),
        nodes: vec![],
        leftovers,
        pending_heals: vec![],
    };
    // From a removal before this delete (a re-apply): not this delete's.
    state.nodes.report(report("h1", vec![left("old", 3)]));
    let delete = {
        let state = state.clone();
        tokio::spawn(async move { crate::lab::calls::delete_lab(&state, "l").await })
    };
    for _ in 0..500 {
        if state.nodes.subscribe("h1").borrow().nodes.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!delete.is_finished(), "{:?}", delete.await);
    state.nodes.report(report("h1", vec![left("a", 14)]));
    state.nodes.report(report("h2", vec![]));
    let reply = delete.await.unwrap().unwrap();
    assert!(reply.pending_hosts.is_empty(), "{reply:?}");
    assert_eq!(
        reply.leftovers,
        [v1::NodeLeftovers {
            host: "h1".into(),
            ..left("a", 14)
        }]
    );
    assert!(state.nodes.take_leftovers("h1", "l").is_empty(), "taken once");
}
