//! The topology: hosts, tenants, networks and ports, with the indices the
//! rule compiler needs; labs and snapshots as stored (`lab`). Plain data;
//! validation lives in `mutate`.

pub mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use dclab_proto::v1;
use serde::{Deserialize, Serialize};

use crate::addr::{Cidr, Mac};
use lab::{Lab, Snapshot};

pub type NetId = u32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub id: String,
    pub uplink: String,
    pub mac: Mac,
    /// Capacity offered to lab nodes; 0 when the agent reported none.
    #[serde(default)]
    pub vcpus: u32,
    #[serde(default)]
    pub memory_mib: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: NetId,
    pub tenant: String,
    pub name: String,
    pub cidr: Cidr,
    #[serde(default)]
    pub kind: NetKind,
}

/// How a network carries its ports' frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    /// The rewrite pipeline. Networks stored before kinds existed are these.
    #[default]
    Rewrite,
    /// A hub on one host: frames go unchanged to the other members, never
    /// to the uplink (see `compile::hub`).
    Switch,
}

impl NetKind {
    /// As lab files write it.
    pub fn name(self) -> &'static str {
        match self {
            NetKind::Rewrite => "rewrite",
            NetKind::Switch => "switch",
        }
    }

    pub fn from_wire(kind: v1::NetworkKind) -> NetKind {
        match kind {
            v1::NetworkKind::Rewrite => NetKind::Rewrite,
            v1::NetworkKind::Switch => NetKind::Switch,
        }
    }

    pub fn to_wire(self) -> v1::NetworkKind {
        match self {
            NetKind::Rewrite => v1::NetworkKind::Rewrite,
            NetKind::Switch => v1::NetworkKind::Switch,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortKind {
    Vm,
    Router,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    pub net: NetId,
    pub host: String,
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub kind: PortKind,
    /// Mapping key: unique among the ports (and broadcast keys) of `host`.
    pub key: Ipv4Addr,
}

/// The whole topology in memory, with indices kept in step by `insert_*`
/// and `remove_*`.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub hosts: BTreeMap<String, Host>,
    pub tenants: BTreeMap<String, Tenant>,
    pub networks: BTreeMap<NetId, Network>,
    pub ports: BTreeMap<String, Port>,
    /// Broadcast key of each (host, network) that has members on the host.
    pub bkeys: BTreeMap<(String, NetId), Ipv4Addr>,
    /// Index: (tenant, network name) → id.
    pub net_ids: BTreeMap<(String, String), NetId>,
    /// Index: network → its ports.
    pub members: BTreeMap<NetId, BTreeSet<String>>,
    /// Index: host → its ports.
    pub host_ports: BTreeMap<String, BTreeSet<String>>,
    pub labs: BTreeMap<String, Lab>,
    /// (lab, name) → snapshot.
    pub snapshots: BTreeMap<(String, String), Snapshot>,
}

impl Topology {
    pub fn insert_network(&mut self, net: Network) {
        self.net_ids
            .insert((net.tenant.clone(), net.name.clone()), net.id);
        self.networks.insert(net.id, net);
    }

    pub fn remove_network(&mut self, id: NetId) {
        if let Some(net) = self.networks.remove(&id) {
            self.net_ids.remove(&(net.tenant, net.name));
            self.members.remove(&id);
        }
    }

    pub fn insert_port(&mut self, port: Port) {
        self.members
            .entry(port.net)
            .or_default()
            .insert(port.name.clone());
        self.host_ports
            .entry(port.host.clone())
            .or_default()
            .insert(port.name.clone());
        self.ports.insert(port.name.clone(), port);
    }

    pub fn remove_port(&mut self, name: &str) -> Option<Port> {
        let port = self.ports.remove(name)?;
        remove_from_index(&mut self.members, &port.net, name);
        remove_from_index(&mut self.host_ports, &port.host, name);
        Some(port)
    }

    pub fn network_by_name(&self, tenant: &str, name: &str) -> Option<&Network> {
        let id = self.net_ids.get(&(tenant.to_string(), name.to_string()))?;
        self.networks.get(id)
    }

    /// Ports of a network, in name order.
    pub fn ports_of_net(&self, net: NetId) -> impl Iterator<Item = &Port> {
        self.members
            .get(&net)
            .into_iter()
            .flatten()
            .map(|name| &self.ports[name])
    }

    /// Ports on a host, in name order.
    pub fn ports_on_host(&self, host: &str) -> impl Iterator<Item = &Port> {
        self.host_ports
            .get(host)
            .into_iter()
            .flatten()
            .map(|name| &self.ports[name])
    }

    /// Networks with at least one port on `host`.
    pub fn nets_on_host(&self, host: &str) -> BTreeSet<NetId> {
        self.ports_on_host(host).map(|p| p.net).collect()
    }

    /// The host of a switch network's members; None while it has none
    /// (or for a rewrite network, which may span hosts).
    pub fn switch_host(&self, net: NetId) -> Option<&str> {
        if self.networks.get(&net)?.kind != NetKind::Switch {
            return None;
        }
        self.ports_of_net(net).next().map(|p| p.host.as_str())
    }

    /// Hosts with at least one port in `net`.
    pub fn hosts_of_net(&self, net: NetId) -> BTreeSet<String> {
        self.ports_of_net(net).map(|p| p.host.clone()).collect()
    }

    /// Every mapping key in use on `host`: its ports' keys and broadcast keys.
    pub fn keys_on_host(&self, host: &str) -> BTreeSet<u32> {
        let ports = self.ports_on_host(host).map(|p| u32::from(p.key));
        let bkeys = self
            .bkeys
            .range((host.to_string(), 0)..=(host.to_string(), NetId::MAX))
            .map(|(_, key)| u32::from(*key));
        ports.chain(bkeys).collect()
    }
}

fn remove_from_index<K: Ord + Clone>(index: &mut BTreeMap<K, BTreeSet<String>>, key: &K, name: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(name);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_stored_without_a_kind_reads_as_rewrite() {
        // As a store written before kinds existed holds it.
        let old = r#"{"id":7,"tenant":"t","name":"lan","cidr":{"addr":"10.0.0.0","prefix":24}}"#;
        let net: Network = serde_json::from_str(old).unwrap();
        assert_eq!(net.kind, NetKind::Rewrite);
        let switch = Network {
            kind: NetKind::Switch,
            ..net
        };
        let text = serde_json::to_string(&switch).unwrap();
        assert!(text.contains(r#""kind":"switch""#), "{text}");
        assert_eq!(serde_json::from_str::<Network>(&text).unwrap(), switch);
    }
}
