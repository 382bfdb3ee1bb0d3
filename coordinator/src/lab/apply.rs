//! ApplyLab and DeleteLab as record writes. A change is worked out on a
//! scratch copy of the topology, op by op, so the existing validation of
//! ports and networks sees the batch's own deletions and creations.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use dclab_proto::error::{exists, invalid, not_found, precondition};
use dclab_proto::ApiError;

use super::validate::Checked;
use crate::addr::Cidr;
use crate::model::lab::{Lab, Nic, Node, NodeSpec};
use crate::model::{NetKind, PortKind, Topology};
use crate::mutate::{self, Ops, PortSpec};
use crate::placement::{self, Capacity, Demand, Together};
use crate::record::{Op, Record, RecordKey};
use crate::state::View;

/// Ops applied to a scratch topology as they are added.
struct Batch {
    scratch: Topology,
    ops: Vec<Op>,
}

impl Batch {
    fn push(&mut self, ops: Ops) -> Result<(), ApiError> {
        for op in ops? {
            self.scratch.apply(&op);
            self.ops.push(op);
        }
        Ok(())
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Stable per interface, locally administered, unicast.
pub fn nic_mac(lab: &str, node: &str, index: usize) -> String {
    let h = fnv1a(&format!("{lab}/{node}/{index}")).to_be_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

/// Interface names are at most 15 bytes: a hash keeps them short and unique.
pub fn nic_tap(lab: &str, node: &str, index: usize) -> String {
    format!("dl{:011x}", fnv1a(&format!("{lab}/{node}/{index}")) >> 20)
}

pub fn nic_port(lab: &str, node: &str, index: usize) -> String {
    format!("{lab}.{node}.{index}")
}

/// What an ApplyLab writes, and a line per change for the operator.
pub struct Applied {
    pub ops: Vec<Op>,
    pub changes: Vec<String>,
}

pub fn apply(view: &View, name: &str, checked: Checked) -> Result<Applied, ApiError> {
    let topo = view.topo;
    let old = topo.labs.get(name);
    if old.is_none() && topo.tenants.contains_key(name) {
        return Err(precondition(format!(
            "tenant {name} exists and is not a lab; choose another lab name"
        )));
    }
    for net in old.map_or(&[][..], |l| &l.networks) {
        if let Some(new) = checked.networks.iter().find(|n| n.name == net.name) {
            if new.cidr != net.cidr {
                return Err(precondition(format!(
                    "lab {name}: network {} changes CIDR from {} to {}; run `ctl lab down {name}` first",
                    net.name, net.cidr, new.cidr
                )));
            }
            if new.kind != net.kind {
                return Err(precondition(format!(
                    "lab {name}: network {} changes kind from {} to {}; run `ctl lab down {name}` first",
                    net.name,
                    net.kind.name(),
                    new.kind.name()
                )));
            }
        }
    }
    // Nodes whose spec is unchanged stay as they are; the rest are placed.
    let old_nodes: BTreeMap<&str, &Node> = old
        .map(|l| l.nodes.iter().map(|n| (n.spec.name.as_str(), n)).collect())
        .unwrap_or_default();
    let kept: BTreeSet<&str> = checked
        .nodes
        .iter()
        .filter(|s| old_nodes.get(s.name.as_str()).is_some_and(|n| n.spec == **s))
        .map(|s| s.name.as_str())
        .collect();
    let to_place: Vec<&NodeSpec> = checked
        .nodes
        .iter()
        .filter(|s| !kept.contains(s.name.as_str()))
        .collect();
    let together = switch_groups(&checked, &old_nodes, &kept);
    let hosts = place(topo, name, &kept, &to_place, &together)?;

    let mut changes = Vec::new();
    let mut batch = Batch {
        scratch: topo.clone(),
        ops: Vec::new(),
    };
    for (node_name, node) in &old_nodes {
        if kept.contains(node_name) {
            continue;
        }
        for nic in &node.nics {
            let ops = mutate::delete_port(&batch.scratch, &nic.port);
            batch.push(ops)?;
        }
        if !checked.nodes.iter().any(|s| s.name == *node_name) {
            changes.push(format!("removed node {node_name} from {}", node.host));
        }
    }
    for net in old.map_or(&[][..], |l| &l.networks) {
        if !checked.networks.iter().any(|n| n.name == net.name) {
            let ops = mutate::delete_network(&batch.scratch, name, &net.name);
            batch.push(ops)?;
            changes.push(format!("removed network {}", net.name));
        }
    }
    if !topo.tenants.contains_key(name) {
        let ops = mutate::create_tenant(&batch.scratch, name);
        batch.push(ops)?;
    }
    let mut next_net_id = view.next_net_id;
    for net in &checked.networks {
        if batch.scratch.network_by_name(name, &net.name).is_none() {
            let spec = mutate::NetworkSpec {
                tenant: name,
                name: &net.name,
                cidr: &net.cidr,
                kind: net.kind,
            };
            let ops = mutate::create_network_of(&batch.scratch, &spec, next_net_id);
            batch.push(ops)?;
            next_net_id += 1;
            let kind = if net.kind == NetKind::Switch {
                ", switch"
            } else {
                ""
            };
            changes.push(format!("added network {} ({}{kind})", net.name, net.cidr));
        }
    }
    let mut addrs = Addresses::new(&checked, &old_nodes, &kept)?;
    let mut nodes = Vec::with_capacity(checked.nodes.len());
    for spec in &checked.nodes {
        if kept.contains(spec.name.as_str()) {
            nodes.push(old_nodes[spec.name.as_str()].clone());
            continue;
        }
        let host = hosts
            .get(&spec.name)
            .cloned()
            .ok_or_else(|| ApiError::Internal(format!("node {} was not placed", spec.name)))?;
        let previous = old_nodes.get(spec.name.as_str()).copied();
        let mut nics = Vec::new();
        for (i, iface) in spec.interfaces.iter().enumerate() {
            let net = batch
                .scratch
                .network_by_name(name, &iface.network)
                .expect("lab networks were created above");
            let prefix = net.cidr.prefix;
            let was = previous
                .and_then(|p| p.nics.iter().find(|n| n.network == iface.network))
                .map(|n| n.ip.as_str());
            let ip = addrs.pick(&iface.network, iface.ip.as_deref(), was, &net.cidr)?;
            let nic = Nic {
                network: iface.network.clone(),
                ip: ip.to_string(),
                prefix,
                mac: nic_mac(name, &spec.name, i),
                port: nic_port(name, &spec.name, i),
                tap: nic_tap(name, &spec.name, i),
            };
            let port = PortSpec {
                name: &nic.port,
                tenant: name,
                network: &nic.network,
                host: &host,
                mac: &nic.mac,
                ip: &nic.ip,
                kind: PortKind::Vm,
            };
            let ops = mutate::create_port(&batch.scratch, view.keys, &port);
            batch
                .push(ops)
                .map_err(|e| e.context(&format!("lab {name}, node {}", spec.name)))?;
            nics.push(nic);
        }
        let verb = if previous.is_some() { "replaced" } else { "added" };
        changes.push(format!("{verb} node {} on {host}", spec.name));
        nodes.push(Node {
            spec: spec.clone(),
            host,
            nics,
        });
    }
    // A snapshot is of the whole lab as it was: once nodes come, go or
    // change, restoring it would be a lab that never existed.
    let nodes_changed = !to_place.is_empty() || old_nodes.len() > kept.len();
    let stale: Vec<&(String, String)> = topo.snapshots.keys().filter(|(l, _)| l == name).collect();
    if nodes_changed && !stale.is_empty() {
        let names: Vec<&str> = stale.iter().map(|(_, s)| s.as_str()).collect();
        changes.push(format!(
            "dropped snapshots {} (the lab's nodes changed)",
            names.join(", ")
        ));
        for (lab, snap) in stale {
            batch
                .ops
                .push(Op::Delete(RecordKey::Snapshot(lab.clone(), snap.clone())));
        }
    }
    if changes.is_empty() && old.is_some_and(|l| l.ssh_keys == checked.ssh_keys) {
        return Ok(Applied {
            ops: vec![],
            changes: vec![],
        });
    }
    if changes.is_empty() {
        changes.push(
            if old.is_some() {
                "changed SSH keys"
            } else {
                "created the lab"
            }
            .into(),
        );
    }
    batch.ops.push(Op::Put(Record::Lab(Lab {
        name: name.to_string(),
        networks: checked.networks,
        nodes,
        ssh_keys: checked.ssh_keys,
        revision: view.revision + 1,
        changes: changes.clone(),
    })));
    Ok(Applied {
        ops: batch.ops,
        changes,
    })
}

/// Per switch network, its nodes to place and its kept nodes with their
/// hosts: all of them must end up on one host.
fn switch_groups(checked: &Checked, old: &BTreeMap<&str, &Node>, kept: &BTreeSet<&str>) -> Vec<Together> {
    let on = |s: &NodeSpec, net: &str| s.interfaces.iter().any(|i| i.network == net);
    checked
        .networks
        .iter()
        .filter(|n| n.kind == NetKind::Switch)
        .map(|net| Together {
            network: net.name.clone(),
            nodes: checked
                .nodes
                .iter()
                .filter(|s| !kept.contains(s.name.as_str()) && on(s, &net.name))
                .map(|s| s.name.clone())
                .collect(),
            placed: kept
                .iter()
                .map(|k| old[k])
                .filter(|n| on(&n.spec, &net.name))
                .map(|n| (n.spec.name.clone(), n.host.clone()))
                .collect(),
        })
        .collect()
}

/// Hosts for the nodes to place, within what every host has free once all
/// other labs' nodes and this lab's kept nodes are counted.
fn place(
    topo: &Topology,
    lab: &str,
    kept: &BTreeSet<&str>,
    to_place: &[&NodeSpec],
    together: &[Together],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut used: BTreeMap<&str, (u32, u64)> = BTreeMap::new();
    for l in topo.labs.values() {
        for n in &l.nodes {
            if l.name == lab && !kept.contains(n.spec.name.as_str()) {
                continue;
            }
            let u = used.entry(n.host.as_str()).or_default();
            u.0 += n.spec.vcpus;
            u.1 += n.spec.memory_mib;
        }
    }
    let free: Vec<Capacity> = topo
        .hosts
        .values()
        .filter(|h| h.vcpus > 0 && h.memory_mib > 0)
        .map(|h| {
            let (c, m) = used.get(h.id.as_str()).copied().unwrap_or_default();
            Capacity {
                host: h.id.clone(),
                vcpus: h.vcpus.saturating_sub(c),
                memory_mib: h.memory_mib.saturating_sub(m),
            }
        })
        .collect();
    let demands: Vec<Demand> = to_place
        .iter()
        .map(|s| Demand {
            node: s.name.clone(),
            vcpus: s.vcpus,
            memory_mib: s.memory_mib,
            pin: s.pin.clone(),
        })
        .collect();
    placement::place_together(&demands, &free, together).map_err(|e| e.context(&format!("lab {lab}")))
}

/// Addresses per lab network: fixed ones from the spec and those of kept
/// nodes are taken; the rest get their old address if free, else the lowest.
struct Addresses {
    used: BTreeMap<String, BTreeSet<Ipv4Addr>>,
}

impl Addresses {
    fn new(checked: &Checked, old: &BTreeMap<&str, &Node>, kept: &BTreeSet<&str>) -> Result<Self, ApiError> {
        let mut used: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        for spec in &checked.nodes {
            for i in &spec.interfaces {
                if let Some(ip) = &i.ip {
                    used.entry(i.network.clone()).or_default().insert(parse(ip)?);
                }
            }
        }
        for name in kept {
            for nic in &old[name].nics {
                let ip = parse(&nic.ip)?;
                let fresh = used.entry(nic.network.clone()).or_default().insert(ip);
                let fixed = old[name]
                    .spec
                    .interfaces
                    .iter()
                    .any(|i| i.ip.as_deref() == Some(&nic.ip));
                if !fresh && !fixed {
                    return Err(exists(format!(
                        "address {ip} in network {} is held by node {name}; pick another fixed address",
                        nic.network
                    )));
                }
            }
        }
        Ok(Addresses { used })
    }

    fn pick(
        &mut self,
        net: &str,
        fixed: Option<&str>,
        was: Option<&str>,
        cidr: &Cidr,
    ) -> Result<Ipv4Addr, ApiError> {
        if let Some(ip) = fixed {
            return parse(ip);
        }
        let used = self.used.entry(net.to_string()).or_default();
        if let Some(ip) = was.map(parse).transpose()?.filter(|ip| !used.contains(ip)) {
            used.insert(ip);
            return Ok(ip);
        }
        let (first, last) = cidr.host_range();
        let ip = (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| invalid(format!("network {net} ({cidr}) has no free address left")))?;
        used.insert(ip);
        Ok(ip)
    }
}

fn parse(ip: &str) -> Result<Ipv4Addr, ApiError> {
    ip.parse()
        .map_err(|_| invalid(format!("malformed IPv4 address {ip:?}")))
}

/// Removes the lab's ports, networks, tenant, snapshots and record.
pub fn delete(topo: &Topology, name: &str) -> Ops {
    let lab = topo
        .labs
        .get(name)
        .ok_or_else(|| not_found(format!("lab {name} does not exist; `ctl lab ls` lists the labs")))?;
    let mut batch = Batch {
        scratch: topo.clone(),
        ops: Vec::new(),
    };
    for nic in lab.nodes.iter().flat_map(|n| &n.nics) {
        if batch.scratch.ports.contains_key(&nic.port) {
            let ops = mutate::delete_port(&batch.scratch, &nic.port);
            batch.push(ops)?;
        }
    }
    for net in &lab.networks {
        if batch.scratch.network_by_name(name, &net.name).is_some() {
            let ops = mutate::delete_network(&batch.scratch, name, &net.name);
            batch.push(ops).map_err(|e| e.context(&format!("lab {name}")))?;
        }
    }
    if batch.scratch.tenants.contains_key(name) {
        let ops = mutate::delete_tenant(&batch.scratch, name);
        batch.push(ops)?;
    }
    for (lab_name, snap) in topo.snapshots.keys() {
        if lab_name == name {
            batch
                .ops
                .push(Op::Delete(RecordKey::Snapshot(lab_name.clone(), snap.clone())));
        }
    }
    batch.ops.push(Op::Delete(RecordKey::Lab(name.to_string())));
    Ok(batch.ops)
}
