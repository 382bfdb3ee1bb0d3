use dclab_proto::v1;

use super::{dot, html, svg};

fn node(name: &str, role: &str, host: &str, state: v1::NodeState, nics: &[(&str, &str)]) -> v1::LabNode {
    v1::LabNode {
        spec: Some(v1::NodeSpec {
            name: name.into(),
            role: role.into(),
            kind: v1::NodeKind::Container as i32,
            ..Default::default()
        }),
        host: host.into(),
        nics: nics
            .iter()
            .map(|(net, ip)| v1::NodeNic {
                network: (*net).into(),
                ip: (*ip).into(),
                prefix: 24,
                ..Default::default()
            })
            .collect(),
        state: state as i32,
        error: String::new(),
    }
}

fn lab() -> v1::Lab {
    v1::Lab {
        name: "demo".into(),
        networks: vec![
            v1::LabNetwork {
                name: "mgmt".into(),
                cidr: "10.0.0.0/24".into(),
                kind: 0,
            },
            v1::LabNetwork {
                name: "data".into(),
                cidr: "10.1.0.0/24".into(),
                kind: 0,
            },
        ],
        nodes: vec![
            node(
                "ctl<1>",
                "controller",
                "h1",
                v1::NodeState::Running,
                &[("mgmt", "10.0.0.11"), ("data", "10.1.0.11")],
            ),
            node(
                "cmp1",
                "compute",
                "h2",
                v1::NodeState::Failed,
                &[("mgmt", "10.0.0.31")],
            ),
            node(
                "cmp2",
                "compute",
                "h2",
                v1::NodeState::Running,
                &[("mgmt", "10.0.0.32")],
            ),
        ],
        ..Default::default()
    }
}

#[test]
fn every_node_is_drawn_once_inside_its_host_with_its_addresses() {
    let picture = svg(&lab());
    assert_eq!(picture.matches("class=\"host\"").count(), 2, "{picture}");
    assert_eq!(picture.matches("class=\"node\"").count(), 3, "{picture}");
    for name in [
        "ctl&lt;1&gt;",
        "cmp1",
        "cmp2",
        "10.0.0.11",
        "10.1.0.11",
        "10.0.0.31",
        "host h1",
        "host h2",
    ] {
        assert!(picture.contains(name), "{name} missing: {picture}");
    }
    assert!(!picture.contains("ctl<1>"), "names are escaped: {picture}");
    // mgmt drops into both hosts, data only into h1: three drops, two buses.
    assert_eq!(picture.matches("class=\"net\"").count(), 2, "{picture}");
    assert!(picture.contains("controller · container · running"), "{picture}");
    assert!(picture.contains("compute · container · failed"), "{picture}");
}

#[test]
fn the_page_lists_every_address_for_readers_without_hover() {
    let page = html(&lab());
    assert!(page.starts_with("<!doctype html>"));
    assert!(
        page.contains("<td>mgmt 10.0.0.11/24<br>data 10.1.0.11/24</td>"),
        "{page}"
    );
    assert!(!page.contains("<script"), "the page runs nothing");
}

#[test]
fn dot_has_a_cluster_per_host_and_an_edge_per_interface() {
    let text = dot(&lab());
    assert_eq!(text.matches("subgraph cluster_").count(), 2, "{text}");
    assert_eq!(text.matches(" -- ").count(), 4, "{text}");
    assert!(
        text.contains("\"node ctl<1>\" -- \"net data\" [label=\"10.1.0.11\""),
        "{text}"
    );
}

#[test]
fn an_empty_lab_is_still_a_picture() {
    let empty = v1::Lab {
        name: "none".into(),
        ..Default::default()
    };
    assert!(svg(&empty).ends_with("</svg>"));
    assert!(dot(&empty).ends_with("}\n"));
}
