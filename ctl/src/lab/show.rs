//! How labs and their nodes print: tables for people, JSON for scripts.

use dclab_proto::v1;
use serde_json::{json, Value};

use crate::output::{print, Format};

pub fn state_name(state: i32) -> &'static str {
    match v1::NodeState::try_from(state).unwrap_or(v1::NodeState::Unspecified) {
        v1::NodeState::Pending => "pending",
        v1::NodeState::Creating => "creating",
        v1::NodeState::Running => "running",
        v1::NodeState::Paused => "paused",
        v1::NodeState::Stopped => "stopped",
        v1::NodeState::Failed => "failed",
        v1::NodeState::Unspecified => "unknown",
    }
}

pub fn addresses(node: &v1::LabNode) -> String {
    let addrs: Vec<String> = node
        .nics
        .iter()
        .map(|n| format!("{}={}/{}", n.network, n.ip, n.prefix))
        .collect();
    addrs.join(" ")
}

/// "vm" or "container", as lab files say.
pub fn kind_name(kind: i32) -> &'static str {
    if kind == v1::NodeKind::Container as i32 {
        "container"
    } else {
        "vm"
    }
}

/// "rewrite" or "switch", as lab files say.
pub fn network_kind_name(kind: i32) -> &'static str {
    if kind == v1::NetworkKind::Switch as i32 {
        "switch"
    } else {
        "rewrite"
    }
}

fn node_name(node: &v1::LabNode) -> &str {
    node.spec.as_ref().map_or("", |s| s.name.as_str())
}

pub fn lab_json(lab: &v1::Lab) -> Value {
    let nodes: Vec<Value> = lab
        .nodes
        .iter()
        .map(|n| {
            let spec = n.spec.clone().unwrap_or_default();
            let nics: Vec<Value> = n
                .nics
                .iter()
                .map(|c| json!({"network": c.network, "ip": c.ip, "prefix": c.prefix, "mac": c.mac, "port": c.port, "tap": c.tap}))
                .collect();
            json!({"name": spec.name, "kind": kind_name(spec.kind), "role": spec.role, "host": n.host, "state": state_name(n.state),
                   "error": n.error, "vcpus": spec.vcpus, "memory_mib": spec.memory_mib, "image": spec.image,
                   "interfaces": nics})
        })
        .collect();
    let networks: Vec<Value> = lab
        .networks
        .iter()
        .map(|n| json!({"name": n.name, "cidr": n.cidr, "kind": network_kind_name(n.kind)}))
        .collect();
    json!({"name": lab.name, "ready": lab.ready, "revision": lab.revision, "snapshots": lab.snapshots,
           "networks": networks, "nodes": nodes})
}

/// The lab's networks with their kinds, below a table of nodes.
pub fn print_networks(networks: &[v1::LabNetwork], format: Format) {
    if format != Format::Table || networks.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = networks
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.cidr.clone(),
                network_kind_name(n.kind).to_string(),
            ]
        })
        .collect();
    println!();
    print(format, &["NETWORK", "CIDR", "KIND"], &rows, Value::Null);
}

pub fn print_lab(lab: &v1::Lab, format: Format) {
    let rows: Vec<Vec<String>> = lab
        .nodes
        .iter()
        .map(|n| {
            vec![
                node_name(n).to_string(),
                kind_name(n.spec.as_ref().map_or(0, |s| s.kind)).to_string(),
                n.host.clone(),
                state_name(n.state).to_string(),
                addresses(n),
                n.error.clone(),
            ]
        })
        .collect();
    print(
        format,
        &["NODE", "KIND", "HOST", "STATE", "ADDRESSES", "ERROR"],
        &rows,
        lab_json(lab),
    );
    print_networks(&lab.networks, format);
}

pub fn print_labs(labs: &[v1::Lab], format: Format) {
    let rows: Vec<Vec<String>> = labs
        .iter()
        .map(|l| {
            let running = l
                .nodes
                .iter()
                .filter(|n| n.state == v1::NodeState::Running as i32)
                .count();
            let mut hosts: Vec<&str> = l.nodes.iter().map(|n| n.host.as_str()).collect();
            hosts.sort();
            hosts.dedup();
            vec![
                l.name.clone(),
                l.nodes.len().to_string(),
                running.to_string(),
                hosts.join(","),
                l.snapshots.to_string(),
                if l.ready { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    let json = Value::Array(labs.iter().map(lab_json).collect());
    print(
        format,
        &["LAB", "NODES", "RUNNING", "HOSTS", "SNAPSHOTS", "READY"],
        &rows,
        json,
    );
}
