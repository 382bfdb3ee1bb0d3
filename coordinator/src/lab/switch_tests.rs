//! Labs with switch networks: every member on one host, whatever the pins
//! and the free memory say elsewhere.

use dclab_proto::v1;
use dclab_proto::ApiError;

use super::tests::{node, spec, state, up};
use super::Labs;
use crate::model::NetKind;

/// `nodes` (name, memory, pin) on lan and on the switch network tunnel.
fn with_tunnel(nodes: &[(&str, u64, &str)], lan_only: &[&str]) -> v1::LabSpec {
    let mut nodes: Vec<v1::NodeSpec> = nodes
        .iter()
        .map(|(n, mib, pin)| {
            let mut spec = node(n, *mib, pin, "");
            spec.interfaces.push(v1::InterfaceSpec {
                network: "tunnel".into(),
                ip: String::new(),
            });
            spec
        })
        .collect();
    nodes.extend(lan_only.iter().map(|n| node(n, 256, "", "")));
    let mut lab = spec("nest", nodes);
    lab.networks.push(v1::LabNetwork {
        name: "tunnel".into(),
        cidr: "10.9.0.0/24".into(),
        kind: v1::NetworkKind::Switch.into(),
    });
    lab
}

fn hosts_of(state: &Labs, nodes: &[&str]) -> Vec<String> {
    state.store.read(|t| {
        let lab = &t.labs["nest"];
        nodes.iter().map(|n| lab.node(n).unwrap().host.clone()).collect()
    })
}

#[test]
fn switch_members_follow_their_pinned_member_and_later_ones_join_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    // h1 has more room for b; the tunnel holds it with a on h2.
    let first = with_tunnel(&[("a", 256, "h2"), ("b", 256, "")], &["c"]);
    let changes = up(&state, &first).unwrap();
    assert!(
        changes.contains(&"added network tunnel (10.9.0.0/24, switch)".to_string()),
        "{changes:?}"
    );
    assert_eq!(hosts_of(&state, &["a", "b", "c"]), ["h2", "h2", "h1"]);
    state.store.read(|t| {
        let tunnel = t.network_by_name("nest", "tunnel").unwrap();
        assert_eq!(tunnel.kind, NetKind::Switch);
        assert_eq!(t.network_by_name("nest", "lan").unwrap().kind, NetKind::Rewrite);
        assert_eq!(t.labs["nest"].networks[1].kind, NetKind::Switch);
        // Members keep their model addresses (nodes configure them).
        assert_eq!(t.ports["nest.b.1"].ip.to_string(), "10.9.0.2");
    });

    // A new member goes where the network already is, not where the room is.
    let second = with_tunnel(&[("a", 256, "h2"), ("b", 256, ""), ("d", 256, "")], &["c"]);
    up(&state, &second).unwrap();
    assert_eq!(hosts_of(&state, &["a", "b", "d"]), ["h2", "h2", "h2"]);
}

#[test]
fn switch_members_that_cannot_share_a_host_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let revision = state.store.revision();
    let split = with_tunnel(&[("a", 256, "h1"), ("b", 256, "h2")], &[]);
    let err = up(&state, &split).unwrap_err();
    assert!(matches!(err, ApiError::InvalidArgument(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "lab nest: nodes a (host h1) and b (host h2) are on switch network tunnel, which lives on one host; pin them to the same host"
    );
    // Each host offers 2048 MiB: two 1536 MiB members fit no single one.
    let big = with_tunnel(&[("a", 1536, ""), ("b", 1536, "")], &[]);
    let err = up(&state, &big).unwrap_err();
    assert!(matches!(err, ApiError::ResourceExhausted(_)), "{err}");
    assert!(
        err.to_string()
            .contains("nodes a, b of switch network tunnel need 2 vCPUs and 3072 MiB on one host and no single host has that free"),
        "{err}"
    );
    assert_eq!(state.store.revision(), revision);
}

#[test]
fn a_network_cannot_change_kind_under_a_running_lab() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let lab = with_tunnel(&[("a", 256, "")], &[]);
    up(&state, &lab).unwrap();
    let mut rewrite = lab.clone();
    rewrite.networks[1].kind = v1::NetworkKind::Rewrite.into();
    let err = up(&state, &rewrite).unwrap_err();
    assert!(matches!(err, ApiError::FailedPrecondition(_)), "{err}");
    assert!(
        err.to_string()
            .contains("network tunnel changes kind from switch to rewrite; run `ctl lab down nest` first"),
        "{err}"
    );
}
