//! Model → protocol messages.

use dclab_proto::v1;

use crate::compile::Flow;
use crate::model::{Host, Network, Port, PortKind, Topology};
use crate::rules::RuleHub;

pub fn flow(f: &Flow) -> v1::Flow {
    v1::Flow {
        table: f.table.into(),
        priority: f.priority.into(),
        r#match: f.match_text(),
        actions: f.actions_text(),
    }
}

pub fn kind(k: PortKind) -> v1::PortKind {
    match k {
        PortKind::Vm => v1::PortKind::Vm,
        PortKind::Router => v1::PortKind::Router,
    }
}

/// A port with its network's names (the store never holds a port whose
/// network is gone; were it so, the names would be empty, not a panic).
pub fn port(topo: &Topology, p: &Port) -> v1::Port {
    let net = topo.networks.get(&p.net);
    v1::Port {
        name: p.name.clone(),
        tenant: net.map(|n| n.tenant.clone()).unwrap_or_default(),
        network: net.map(|n| n.name.clone()).unwrap_or_default(),
        host: p.host.clone(),
        mac: p.mac.to_string(),
        ip: p.ip.to_string(),
        kind: kind(p.kind).into(),
        key: p.key.to_string(),
    }
}

pub fn host(topo: &Topology, hub: &RuleHub, h: &Host) -> v1::Host {
    let id = h.id.as_str();
    let status = hub.status(id);
    v1::Host {
        id: h.id.clone(),
        uplink: h.uplink.clone(),
        mac: h.mac.to_string(),
        desired_version: hub.current(id).version,
        applied_version: status.applied_version,
        flow_count: status.flow_count,
        connected: status.watchers > 0,
        port_count: topo.host_ports.get(id).map_or(0, |p| p.len() as u32),
        missing_ports: status.missing_ports,
        acks: status.acks,
        vcpus: h.vcpus,
        memory_mib: h.memory_mib,
    }
}

pub fn network(topo: &Topology, n: &Network) -> v1::Network {
    let id = n.id;
    v1::Network {
        tenant: n.tenant.clone(),
        name: n.name.clone(),
        cidr: n.cidr.to_string(),
        id: n.id,
        port_count: topo.members.get(&id).map_or(0, |m| m.len() as u32),
        kind: n.kind.to_wire().into(),
    }
}
