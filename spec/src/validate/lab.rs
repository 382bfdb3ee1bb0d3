//! Lab specs: names, sizes, networks and addresses. Each error says where
//! it is (`Location`), so ctl can point at the line of a lab file and the
//! coordinator at the node and field.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use super::names::{check_name, check_short_name};
use crate::addr::Cidr;
use dclab_proto::v1::{LabSpec, NetworkKind, NodeKind, NodeSpec};

/// Port names are `<lab>.<node>.<i>` and must fit 64 bytes.
pub const MAX_LAB_NAME: usize = 24;
pub const MAX_NODE_NAME: usize = 32;
const MAX_NETWORKS: usize = 64;
const MAX_NODES: usize = 500;
const MAX_NICS: usize = 8;
const MAX_DISKS: usize = 8;
const MAX_DISK_MIB: u64 = 4 << 20;
const MAX_VCPUS: u32 = 64;
const MIN_MEMORY_MIB: u64 = 64;
const MAX_MEMORY_MIB: u64 = 1 << 20;
const MAX_SSH_KEY: usize = 16 << 10;
/// A lab network needs room for a few nodes.
const MAX_PREFIX: u8 = 30;

/// Where in a lab spec a problem is; indexes count from 0 in spec order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    LabName,
    Network {
        index: usize,
        field: &'static str,
    },
    Node {
        index: usize,
        field: &'static str,
    },
    Disk {
        node: usize,
        index: usize,
    },
    Interface {
        node: usize,
        index: usize,
        field: &'static str,
    },
    SshKey(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabError {
    pub at: Location,
    /// Names the network or node and the field, e.g. `node a: vcpus 0 must
    /// be between 1 and 64`.
    pub message: String,
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LabError {}

/// What checking adds to the spec: parsed networks and node addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLab {
    /// In spec order.
    pub networks: Vec<CheckedNetwork>,
    pub nodes: Vec<CheckedNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedNetwork {
    pub name: String,
    pub cidr: Cidr,
    pub kind: NetworkKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedNode {
    pub kind: NodeKind,
    /// The fixed address of each interface, None for "pick one".
    pub ips: Vec<Option<Ipv4Addr>>,
}

fn err<T>(at: Location, message: String) -> Result<T, LabError> {
    Err(LabError { at, message })
}

/// Checks the whole spec; the first problem found is the error.
pub fn lab(spec: &LabSpec) -> Result<CheckedLab, LabError> {
    check_short_name("lab", &spec.name, MAX_LAB_NAME).or_else(|m| err(Location::LabName, m))?;
    if spec.networks.len() > MAX_NETWORKS {
        let at = Location::Network {
            index: MAX_NETWORKS,
            field: "name",
        };
        return err(
            at,
            format!(
                "{} networks; a lab has at most {MAX_NETWORKS}",
                spec.networks.len()
            ),
        );
    }
    if spec.nodes.len() > MAX_NODES {
        let at = Location::Node {
            index: MAX_NODES,
            field: "name",
        };
        return err(
            at,
            format!("{} nodes; a lab has at most {MAX_NODES}", spec.nodes.len()),
        );
    }
    let networks = networks(spec)?;
    let by_name: BTreeMap<&str, Cidr> = networks.iter().map(|n| (n.name.as_str(), n.cidr)).collect();
    let mut names = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut nodes = Vec::with_capacity(spec.nodes.len());
    for (index, n) in spec.nodes.iter().enumerate() {
        let at = |field| Location::Node { index, field };
        check_short_name("node", &n.name, MAX_NODE_NAME).or_else(|m| err(at("name"), m))?;
        if !names.insert(n.name.as_str()) {
            return err(at("name"), format!("node {} is defined twice", n.name));
        }
        let kind = node_fields(index, n)?;
        let ips = interfaces(index, n, &by_name, &mut used)?;
        nodes.push(CheckedNode { kind, ips });
    }
    one_host_per_switch(spec, &networks)?;
    for (i, key) in spec.ssh_keys.iter().enumerate() {
        let key = key.trim();
        let typed = ["ssh-", "ecdsa-", "sk-"].iter().any(|p| key.starts_with(p));
        if key.len() > MAX_SSH_KEY || key.contains('\n') || !typed {
            return err(
                Location::SshKey(i),
                format!(
                    "ssh_keys: each entry is one public key line of at most {MAX_SSH_KEY} bytes, like \"ssh-ed25519 AAAA... user@host\""
                ),
            );
        }
    }
    Ok(CheckedLab { networks, nodes })
}

fn networks(spec: &LabSpec) -> Result<Vec<CheckedNetwork>, LabError> {
    let mut out: Vec<CheckedNetwork> = Vec::with_capacity(spec.networks.len());
    for (index, n) in spec.networks.iter().enumerate() {
        let at = |field| Location::Network { index, field };
        check_name("network", &n.name).or_else(|m| err(at("name"), m))?;
        let cidr: Cidr = n.cidr.parse().or_else(|_| {
            err(
                at("cidr"),
                format!(
                    "network {}: cidr {:?} is not an IPv4 network like 10.0.0.0/24",
                    n.name, n.cidr
                ),
            )
        })?;
        if cidr.prefix > MAX_PREFIX {
            return err(
                at("cidr"),
                format!(
                    "network {}: cidr {cidr} leaves no room for nodes; use /{MAX_PREFIX} or shorter",
                    n.name
                ),
            );
        }
        if out.iter().any(|other| other.name == n.name) {
            return err(at("name"), format!("network {} is defined twice", n.name));
        }
        if let Some(other) = out.iter().find(|o| o.cidr.overlaps(&cidr)) {
            return err(
                at("cidr"),
                format!("network {}: cidr {cidr} overlaps network {}", n.name, other.name),
            );
        }
        let Ok(kind) = NetworkKind::try_from(n.kind) else {
            return err(at("kind"), format!("network {}: unknown kind {}", n.name, n.kind));
        };
        out.push(CheckedNetwork {
            name: n.name.clone(),
            cidr,
            kind,
        });
    }
    Ok(out)
}

/// A switch network has no wire between hosts: nodes it joins (also
/// through other switch networks they share) cannot be pinned to two
/// hosts. Placement keeps the unpinned members with them.
fn one_host_per_switch(spec: &LabSpec, networks: &[CheckedNetwork]) -> Result<(), LabError> {
    let switch: BTreeSet<&str> = networks
        .iter()
        .filter(|n| n.kind == NetworkKind::Switch)
        .map(|n| n.name.as_str())
        .collect();
    let on = |i: usize| -> Vec<&str> {
        let ifaces = spec.nodes[i].interfaces.iter().map(|f| f.network.as_str());
        ifaces.filter(|n| switch.contains(n)).collect()
    };
    let mut root: Vec<usize> = (0..spec.nodes.len()).collect();
    fn find(root: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while root[r] != r {
            r = root[r];
        }
        root[i] = r;
        r
    }
    let mut first_on: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..spec.nodes.len() {
        for net in on(i) {
            let j = *first_on.entry(net).or_insert(i);
            let (a, b) = (find(&mut root, j), find(&mut root, i));
            root[b] = a;
        }
    }
    let mut pinned: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        if n.host.is_empty() || on(i).is_empty() {
            continue;
        }
        let r = find(&mut root, i);
        let j = *pinned.entry(r).or_insert(i);
        let first = &spec.nodes[j];
        if first.host == n.host {
            continue;
        }
        // The networks both are on, else every one that joins them.
        let mine = on(i);
        let mut nets: Vec<&str> = on(j).into_iter().filter(|x| mine.contains(x)).collect();
        if nets.is_empty() {
            nets = first_on
                .iter()
                .filter(|(_, k)| find(&mut root, **k) == r)
                .map(|(net, _)| *net)
                .collect();
        }
        let (s, verb) = if nets.len() == 1 {
            ("", "lives")
        } else {
            ("s", "live")
        };
        let message = format!(
            "nodes {} (host {}) and {} (host {}) are on switch network{s} {}, which {verb} on one host; pin them to the same host",
            first.name,
            first.host,
            n.name,
            n.host,
            nets.join(", ")
        );
        let at = Location::Node {
            index: i,
            field: "host",
        };
        return err(at, message);
    }
    Ok(())
}

/// Kind, sizes, image, role, disks and pin of one node.
fn node_fields(index: usize, n: &NodeSpec) -> Result<NodeKind, LabError> {
    let at = |field| Location::Node { index, field };
    let node = &n.name;
    let kind = match NodeKind::try_from(n.kind) {
        Ok(NodeKind::Unspecified | NodeKind::Vm) => NodeKind::Vm,
        Ok(NodeKind::Container) => NodeKind::Container,
        Err(_) => return err(at("kind"), format!("node {node}: unknown kind {}", n.kind)),
    };
    if !(1..=MAX_VCPUS).contains(&n.vcpus) {
        return err(
            at("vcpus"),
            format!("node {node}: vcpus {} must be between 1 and {MAX_VCPUS}", n.vcpus),
        );
    }
    if n.memory_mib < MIN_MEMORY_MIB {
        return err(
            at("memory"),
            format!(
                "node {node}: memory {} MiB is below the minimum of {MIN_MEMORY_MIB} MiB",
                n.memory_mib
            ),
        );
    }
    if n.memory_mib > MAX_MEMORY_MIB {
        return err(
            at("memory"),
            format!("node {node}: memory {} MiB is above 1 TiB", n.memory_mib),
        );
    }
    if n.image.is_empty() {
        return err(
            at("image"),
            format!("node {node}: no image; set image on the node or in [lab]"),
        );
    }
    check_name("image", &n.image).or_else(|m| err(at("image"), format!("node {node}: {m}")))?;
    if !n.role.is_empty() {
        check_name("role", &n.role).or_else(|m| err(at("role"), format!("node {node}: {m}")))?;
    }
    if kind == NodeKind::Container && !n.disks_mib.is_empty() {
        return err(
            at("disks"),
            format!("node {node}: a container has no block devices; drop disks or use kind \"vm\""),
        );
    }
    if n.disks_mib.len() > MAX_DISKS {
        let msg = format!(
            "node {node}: {} disks; the limit is {MAX_DISKS}",
            n.disks_mib.len()
        );
        return err(at("disks"), msg);
    }
    if let Some((i, d)) = n
        .disks_mib
        .iter()
        .enumerate()
        .find(|(_, d)| **d == 0 || **d > MAX_DISK_MIB)
    {
        let msg = format!("node {node}: disk of {d} MiB; sizes go from 1 MiB to 4 TiB");
        return err(
            Location::Disk {
                node: index,
                index: i,
            },
            msg,
        );
    }
    if !n.host.is_empty() {
        check_name("host", &n.host).or_else(|m| err(at("host"), format!("node {node}: {m}")))?;
    }
    Ok(kind)
}

fn interfaces(
    index: usize,
    n: &NodeSpec,
    networks: &BTreeMap<&str, Cidr>,
    used: &mut BTreeSet<(String, Ipv4Addr)>,
) -> Result<Vec<Option<Ipv4Addr>>, LabError> {
    let node = &n.name;
    if n.interfaces.len() > MAX_NICS {
        let at = Location::Node {
            index,
            field: "interfaces",
        };
        return err(
            at,
            format!(
                "node {node}: {} interfaces; the limit is {MAX_NICS}",
                n.interfaces.len()
            ),
        );
    }
    let mut on = BTreeSet::new();
    let mut ips = Vec::with_capacity(n.interfaces.len());
    for (i, iface) in n.interfaces.iter().enumerate() {
        let at = |field| Location::Interface {
            node: index,
            index: i,
            field,
        };
        let net = iface.network.as_str();
        let Some(cidr) = networks.get(net) else {
            let known: Vec<&str> = networks.keys().copied().collect();
            let known = if known.is_empty() {
                "none are defined".to_string()
            } else {
                known.join(", ")
            };
            return err(
                at("network"),
                format!("node {node}: network {net:?} is not defined (networks: {known})"),
            );
        };
        if !on.insert(net) {
            return err(
                at("network"),
                format!("node {node}: two interfaces on network {net}"),
            );
        }
        if iface.ip.is_empty() {
            ips.push(None);
            continue;
        }
        let Ok(ip) = iface.ip.parse::<Ipv4Addr>() else {
            return err(
                at("ip"),
                format!("node {node}: ip {:?} is not an IPv4 address", iface.ip),
            );
        };
        if !cidr.is_host_address(ip) {
            return err(
                at("ip"),
                format!("node {node}: ip {ip} is not a host address of network {net} ({cidr})"),
            );
        }
        if !used.insert((net.to_string(), ip)) {
            return err(
                at("ip"),
                format!("node {node}: ip {ip} is used twice in network {net}"),
            );
        }
        ips.push(Some(ip));
    }
    Ok(ips)
}
