use super::*;
use dclab_proto::v1::{InterfaceSpec, LabNetwork, LabSpec, NetworkKind, NodeKind, NodeSpec};

fn node(name: &str, nics: &[(&str, &str)]) -> NodeSpec {
    NodeSpec {
        name: name.into(),
        role: "node".into(),
        vcpus: 1,
        memory_mib: 256,
        image: "micro".into(),
        disks_mib: vec![],
        host: String::new(),
        interfaces: nics
            .iter()
            .map(|(network, ip)| InterfaceSpec {
                network: network.to_string(),
                ip: ip.to_string(),
            })
            .collect(),
        kind: NodeKind::Vm.into(),
    }
}

fn spec(nodes: Vec<NodeSpec>) -> LabSpec {
    LabSpec {
        name: "l".into(),
        networks: vec![LabNetwork {
            name: "lan".into(),
            cidr: "10.0.0.0/24".into(),
            kind: NetworkKind::Rewrite.into(),
        }],
        nodes,
        ssh_keys: vec![],
    }
}

#[test]
fn one_name_rule() {
    for good in ["a", "A-1", "x_y.z", &"n".repeat(64)] {
        assert!(check_name("thing", good).is_ok(), "{good}");
    }
    for bad in ["", ".hidden", "-opt", "_x", "a b", "a/b", "ä", &"n".repeat(65)] {
        assert!(check_name("thing", bad).is_err(), "{bad:?} accepted");
    }
    assert!(check_short_name("lab", "a.b", 24)
        .unwrap_err()
        .contains("contains '.'"));
    assert!(check_short_name("lab", &"x".repeat(25), 24)
        .unwrap_err()
        .contains("limit is 24"));
}

#[test]
fn a_valid_lab_gets_its_addresses_and_kinds() {
    let checked = lab(&spec(vec![
        node("a", &[("lan", "10.0.0.5")]),
        node("b", &[("lan", "")]),
    ]))
    .unwrap();
    assert_eq!(checked.networks[0].cidr.to_string(), "10.0.0.0/24");
    assert_eq!(checked.networks[0].kind, NetworkKind::Rewrite);
    assert_eq!(checked.nodes[0].ips, [Some("10.0.0.5".parse().unwrap())]);
    assert_eq!(checked.nodes[1].ips, [None]);
    assert_eq!(checked.nodes[1].kind, NodeKind::Vm);
}

#[test]
fn containers_mix_with_vms_but_have_no_disks() {
    let mut c = node("c", &[("lan", "10.0.0.6")]);
    c.kind = NodeKind::Container.into();
    let checked = lab(&spec(vec![node("a", &[("lan", "")]), c.clone()])).unwrap();
    assert_eq!(checked.nodes[1].kind, NodeKind::Container);
    c.disks_mib = vec![1024];
    let e = lab(&spec(vec![c])).unwrap_err();
    assert_eq!(
        e.at,
        Location::Node {
            index: 0,
            field: "disks"
        }
    );
    assert!(
        e.message.contains("a container has no block devices"),
        "{}",
        e.message
    );
}

#[test]
fn errors_say_where_they_are() {
    let mut bad = node("a", &[("lan", "10.0.1.9")]);
    let e = lab(&spec(vec![bad.clone()])).unwrap_err();
    assert_eq!(
        e.at,
        Location::Interface {
            node: 0,
            index: 0,
            field: "ip"
        }
    );
    assert_eq!(
        e.message,
        "node a: ip 10.0.1.9 is not a host address of network lan (10.0.0.0/24)"
    );
    bad.interfaces[0].ip = String::new();
    bad.vcpus = 65;
    let e = lab(&spec(vec![node("ok", &[]), bad.clone()])).unwrap_err();
    assert_eq!(
        e.at,
        Location::Node {
            index: 1,
            field: "vcpus"
        }
    );
    bad.vcpus = 1;
    bad.disks_mib = vec![10, 0];
    assert_eq!(
        lab(&spec(vec![bad.clone()])).unwrap_err().at,
        Location::Disk { node: 0, index: 1 }
    );
    bad.disks_mib = vec![];
    bad.kind = 7;
    assert_eq!(
        lab(&spec(vec![bad.clone()])).unwrap_err().message,
        "node a: unknown kind 7"
    );
    let twice = lab(&spec(vec![
        node("a", &[("lan", "10.0.0.7")]),
        node("b", &[("lan", "10.0.0.7")]),
    ]))
    .unwrap_err();
    assert_eq!(twice.message, "node b: ip 10.0.0.7 is used twice in network lan");
    let mut overlapping = spec(vec![]);
    overlapping.networks.push(LabNetwork {
        name: "b".into(),
        cidr: "10.0.0.128/25".into(),
        kind: NetworkKind::Rewrite.into(),
    });
    assert_eq!(
        lab(&overlapping).unwrap_err().message,
        "network b: cidr 10.0.0.128/25 overlaps network lan"
    );
}

fn with_switch(nodes: Vec<NodeSpec>) -> LabSpec {
    let mut s = spec(nodes);
    s.networks.push(LabNetwork {
        name: "tunnel".into(),
        cidr: "10.9.0.0/24".into(),
        kind: NetworkKind::Switch.into(),
    });
    s
}

fn pinned(mut n: NodeSpec, host: &str) -> NodeSpec {
    n.host = host.into();
    n
}

#[test]
fn switch_members_pinned_to_two_hosts_are_refused_with_both_named() {
    let ok = with_switch(vec![
        pinned(node("a", &[("tunnel", "")]), "h1"),
        node("b", &[("tunnel", "")]),
        pinned(node("c", &[("tunnel", ""), ("lan", "")]), "h1"),
        // Pins elsewhere are fine for nodes off the switch network.
        pinned(node("d", &[("lan", "")]), "h2"),
    ]);
    let checked = lab(&ok).unwrap();
    assert_eq!(checked.networks[1].kind, NetworkKind::Switch);
    let bad = with_switch(vec![
        pinned(node("a", &[("tunnel", "")]), "h1"),
        node("b", &[("lan", "")]),
        pinned(node("c", &[("lan", ""), ("tunnel", "")]), "h2"),
    ]);
    let e = lab(&bad).unwrap_err();
    assert_eq!(
        e.at,
        Location::Node {
            index: 2,
            field: "host"
        }
    );
    assert_eq!(
        e.message,
        "nodes a (host h1) and c (host h2) are on switch network tunnel, which lives on one host; pin them to the same host"
    );
    // Joined through b, which is on both switch networks.
    let mut joined = with_switch(vec![
        pinned(node("a", &[("tunnel", "")]), "h1"),
        node("b", &[("tunnel", ""), ("lan", "")]),
        pinned(node("c", &[("lan", "")]), "h2"),
    ]);
    joined.networks[0].kind = NetworkKind::Switch.into();
    assert_eq!(
        lab(&joined).unwrap_err().message,
        "nodes a (host h1) and c (host h2) are on switch networks lan, tunnel, which live on one host; pin them to the same host"
    );
    // The same pins on a rewrite network are fine.
    let mut rewrite = bad.clone();
    rewrite.networks[1].kind = NetworkKind::Rewrite.into();
    lab(&rewrite).unwrap();
    let mut unknown = bad;
    unknown.networks[1].kind = 9;
    let e = lab(&unknown).unwrap_err();
    assert_eq!(
        e.at,
        Location::Network {
            index: 1,
            field: "kind"
        }
    );
    assert_eq!(e.message, "network tunnel: unknown kind 9");
}
