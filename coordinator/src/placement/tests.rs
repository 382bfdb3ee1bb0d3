use std::collections::BTreeSet;

use super::*;

fn host(h: &str, vcpus: u32, memory_mib: u64) -> Capacity {
    Capacity {
        host: h.into(),
        vcpus,
        memory_mib,
    }
}

fn node(n: &str, vcpus: u32, memory_mib: u64, pin: Option<&str>) -> Demand {
    Demand {
        node: n.into(),
        vcpus,
        memory_mib,
        pin: pin.map(String::from),
    }
}

#[test]
fn pins_are_kept_and_the_rest_spread_largest_first() {
    let hosts = [host("h1", 4, 4096), host("h2", 4, 4096)];
    let nodes = [
        node("controller", 2, 2048, None),
        node("compute1", 1, 1024, None),
        node("compute2", 1, 1024, None),
        node("cache", 1, 512, Some("h1")),
    ];
    let placed = place(&nodes, &hosts).unwrap();
    assert_eq!(placed["cache"], "h1");
    // h2 has the most free memory once cache is on h1.
    assert_eq!(placed["controller"], "h2");
    assert_eq!(placed["compute1"], "h1");
    assert_eq!(placed["compute2"], "h1");
    assert_eq!(place(&nodes, &hosts).unwrap(), placed, "deterministic");
}

#[test]
fn refusals_name_the_node_and_the_free_capacity() {
    let hosts = [host("h1", 2, 1024), host("h2", 1, 4096)];
    let err = place(&[node("big", 2, 2048, None)], &hosts).unwrap_err();
    assert!(matches!(err, ApiError::ResourceExhausted(_)));
    assert_eq!(
        err.to_string(),
        "node big needs 2 vCPUs and 2048 MiB and does not fit on any host (free: h1: 2 vCPUs, 1024 MiB; h2: 1 vCPUs, 4096 MiB)"
    );
    let err = place(&[node("a", 1, 2048, Some("h1"))], &hosts).unwrap_err();
    assert!(
        err.to_string()
            .contains("on its pinned host h1 (free: h1: 2 vCPUs, 1024 MiB)"),
        "{err}"
    );
    let err = place(&[node("a", 1, 64, Some("h9"))], &hosts).unwrap_err();
    assert_eq!(
        err,
        not_found("node a is pinned to host h9, which is not registered")
    );
}

#[test]
fn capacity_is_never_overcommitted() {
    let hosts = [host("h1", 2, 1000), host("h2", 2, 1000)];
    let nodes: Vec<Demand> = (0..4).map(|i| node(&format!("n{i}"), 1, 500, None)).collect();
    let placed = place(&nodes, &hosts).unwrap();
    assert_eq!(placed.values().filter(|h| *h == "h1").count(), 2);
    let fifth = [nodes.clone(), vec![node("n4", 1, 1, None)]].concat();
    assert!(place(&fifth, &hosts).is_err(), "no CPU left for a fifth node");
}

fn switch(network: &str, nodes: &[&str], placed: &[(&str, &str)]) -> Together {
    Together {
        network: network.into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
        placed: placed
            .iter()
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect(),
    }
}

#[test]
fn switch_members_go_with_their_pinned_member() {
    let hosts = [host("h1", 8, 8192), host("h2", 8, 8192)];
    let nodes = [
        node("compute1", 1, 1024, None),
        node("compute2", 1, 1024, None),
        node("network", 1, 1024, Some("h2")),
        node("controller", 2, 2048, None),
    ];
    let groups = [switch("tunnel", &["compute1", "compute2", "network"], &[])];
    let placed = place_together(&nodes, &hosts, &groups).unwrap();
    for n in ["compute1", "compute2", "network"] {
        assert_eq!(placed[n], "h2", "{n}");
    }
    assert_eq!(placed["controller"], "h1", "the rest still spreads");
}

#[test]
fn unpinned_switch_members_share_the_host_with_most_room_that_fits_them_all() {
    // Alone, a would go to h3 (most memory); together they need 3 vCPUs.
    let hosts = [host("h1", 8, 3000), host("h2", 8, 2500), host("h3", 1, 9000)];
    let nodes = [
        node("a", 1, 1000, None),
        node("b", 1, 1000, None),
        node("c", 1, 200, None),
    ];
    // a and b share s1, b and c share s2: one unit through b.
    let groups = [switch("s1", &["a", "b"], &[]), switch("s2", &["b", "c"], &[])];
    let placed = place_together(&nodes, &hosts, &groups).unwrap();
    assert_eq!(
        placed.values().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"h1".to_string()])
    );
    let small = [host("h1", 8, 1500), host("h2", 8, 1500)];
    let err = place_together(&nodes, &small, &groups).unwrap_err();
    assert!(matches!(err, ApiError::ResourceExhausted(_)));
    assert_eq!(
        err.to_string(),
        "nodes a, b, c of switch networks s1, s2 need 3 vCPUs and 2200 MiB on one host and no single host \
         has that free (free: h1: 8 vCPUs, 1500 MiB; h2: 8 vCPUs, 1500 MiB)"
    );
}

#[test]
fn switch_members_join_the_host_their_network_already_runs_on() {
    let hosts = [host("h1", 8, 8192), host("h2", 8, 1024)];
    let nodes = [node("new", 1, 512, None)];
    let groups = [switch("tunnel", &["new"], &[("old", "h2")])];
    assert_eq!(place_together(&nodes, &hosts, &groups).unwrap()["new"], "h2");
    let big = [node("new", 1, 2048, None)];
    let err = place_together(&big, &hosts, &groups).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node new of switch network tunnel needs 1 vCPUs and 2048 MiB on one host and host h2, \
         which the network is held to, has less free (free: h2: 8 vCPUs, 1024 MiB)"
    );
}

#[test]
fn switch_members_held_to_two_hosts_are_refused_naming_nodes_network_and_hosts() {
    let hosts = [host("h1", 8, 8192), host("h2", 8, 8192)];
    let nodes = [
        node("a", 1, 256, Some("h1")),
        node("b", 1, 256, None),
        node("c", 1, 256, Some("h2")),
    ];
    let groups = [switch("s1", &["a", "b"], &[]), switch("s2", &["b", "c"], &[])];
    let err = place_together(&nodes, &hosts, &groups).unwrap_err();
    assert_eq!(
        err,
        dclab_proto::error::invalid(
            "switch networks s1, s2 must be on one host, but node a is pinned to h1 and node c is pinned to h2"
        )
    );
    let running = [switch("s1", &["a"], &[("old", "h2")])];
    let err = place_together(&nodes[..1], &hosts, &running).unwrap_err();
    assert_eq!(
        err,
        dclab_proto::error::precondition(
            "switch network s1 must be on one host, but node old runs on h2 and node a is pinned to h1"
        )
    );
}
