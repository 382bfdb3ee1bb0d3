//! Labs as the coordinator stores them: the spec as the operator wrote it,
//! plus what the coordinator decided (host, addresses, MACs, ports, taps).

use serde::{Deserialize, Serialize};

use crate::model::NetKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabNet {
    pub name: String,
    pub cidr: String,
    /// Labs stored before kinds existed have rewrite networks.
    #[serde(default)]
    pub kind: NetKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceSpec {
    pub network: String,
    /// None: the lowest free address, chosen at placement.
    pub ip: Option<String>,
}

/// What runs a node: a libvirt qemu/kvm domain or an LXC container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Labs stored before kinds existed are VMs.
    #[default]
    Vm,
    Container,
}

/// A node as the lab file describes it; two equal specs need no change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    #[serde(default)]
    pub kind: NodeKind,
    pub role: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub image: String,
    pub disks_mib: Vec<u64>,
    pub pin: Option<String>,
    pub interfaces: Vec<IfaceSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    pub network: String,
    pub ip: String,
    pub prefix: u8,
    pub mac: String,
    /// The dclab port (OvS iface-id).
    pub port: String,
    pub tap: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub spec: NodeSpec,
    pub host: String,
    pub nics: Vec<Nic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    pub name: String,
    pub networks: Vec<LabNet>,
    pub nodes: Vec<Node>,
    pub ssh_keys: Vec<String>,
    /// The coordinator revision that last changed the lab.
    pub revision: u64,
    /// What that change did, for `lab up` to show.
    pub changes: Vec<String>,
}

impl Lab {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.spec.name == name)
    }

    /// `http://ADDR:3142` of the lab's apt cache node, if it has one.
    pub fn apt_proxy(&self) -> Option<String> {
        let cache = self.nodes.iter().find(|n| n.spec.role == APT_CACHE_ROLE)?;
        Some(format!("http://{}:3142", cache.nics.first()?.ip))
    }
}

/// The role of a node that runs apt-cacher-ng for its lab.
pub const APT_CACHE_ROLE: &str = "aptcache";

/// A whole-lab snapshot: every node of the lab at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub lab: String,
    pub name: String,
    pub cold: bool,
    pub created_unix_ms: u64,
    /// (node, host) at the time of the snapshot; a restore needs the same.
    pub nodes: Vec<(String, String)>,
    pub micros: u64,
    pub phases: Vec<(String, u64)>,
}

impl Snapshot {
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.nodes.iter().map(|(_, h)| h.clone()).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}
