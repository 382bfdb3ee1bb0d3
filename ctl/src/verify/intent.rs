//! What the topology says should happen: hosts with their MACs and the
//! ports of each network with their addresses, joined to the bridges'
//! port numbers. The flows are judged against this.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use dclab_proto::v1::{self, PortKind};
use dclab_spec::addr::Cidr;

use super::ofp::mac;

#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub tenant: String,
    pub network: String,
    /// Index of its network in `Intent::nets`.
    pub net: usize,
    /// Index of its host's bridge.
    pub host: usize,
    pub mac: u64,
    pub ip: u64,
    pub key: u64,
    pub router: bool,
    /// OpenFlow port on its host's bridge; None while not attached.
    pub ofport: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Net {
    pub tenant: String,
    pub name: String,
    pub cidr: Cidr,
    /// A switch network: a hub of its members on one host, no rewrite.
    pub switch: bool,
    pub members: Vec<usize>,
    /// The members' addresses, and the MACs of its router ports.
    pub member_ips: std::collections::HashSet<u64>,
    pub router_macs: Vec<u64>,
}

pub struct Intent {
    pub hosts: Vec<String>,
    pub host_macs: Vec<u64>,
    pub ports: Vec<Port>,
    pub nets: Vec<Net>,
    /// (bridge, ofport) → port index.
    pub at: HashMap<(usize, u32), usize>,
    /// Every mapping key in use.
    pub keys: std::collections::HashSet<u64>,
}

fn ip(s: &str) -> u64 {
    s.parse::<Ipv4Addr>().map_or(0, |a| u64::from(u32::from(a)))
}

impl Intent {
    /// `ofports` gives each host's (iface-id → OpenFlow port).
    pub fn new(
        hosts: &[v1::Host],
        networks: &[v1::Network],
        ports: &[v1::Port],
        ofports: &[HashMap<String, u32>],
    ) -> anyhow::Result<Intent> {
        let host_index: HashMap<&str, usize> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.id.as_str(), i))
            .collect();
        let mut nets: Vec<Net> = Vec::new();
        let mut net_index: HashMap<(&str, &str), usize> = HashMap::new();
        for n in networks {
            let cidr: Cidr = n.cidr.parse().map_err(anyhow::Error::msg)?;
            net_index.insert((&n.tenant, &n.name), nets.len());
            nets.push(Net {
                tenant: n.tenant.clone(),
                name: n.name.clone(),
                cidr,
                switch: n.kind == v1::NetworkKind::Switch as i32,
                members: vec![],
                member_ips: Default::default(),
                router_macs: vec![],
            });
        }
        let mut out = Vec::new();
        let mut at = HashMap::new();
        for p in ports {
            let (Some(&net), Some(&host)) = (
                net_index.get(&(p.tenant.as_str(), p.network.as_str())),
                host_index.get(p.host.as_str()),
            ) else {
                continue;
            };
            let ofport = ofports.get(host).and_then(|m| m.get(&p.name)).copied();
            let i = out.len();
            if let Some(o) = ofport {
                at.insert((host, o), i);
            }
            nets[net].members.push(i);
            nets[net].member_ips.insert(ip(&p.ip));
            if p.kind == PortKind::Router as i32 {
                nets[net].router_macs.push(mac(&p.mac).unwrap_or(0));
            }
            out.push(Port {
                name: p.name.clone(),
                tenant: p.tenant.clone(),
                network: p.network.clone(),
                net,
                host,
                mac: mac(&p.mac).unwrap_or(0),
                ip: ip(&p.ip),
                key: ip(&p.key),
                router: p.kind == PortKind::Router as i32,
                ofport,
            });
        }
        let keys = out.iter().map(|p| p.key).collect();
        Ok(Intent {
            hosts: hosts.iter().map(|h| h.id.clone()).collect(),
            host_macs: hosts.iter().map(|h| mac(&h.mac).unwrap_or(0)).collect(),
            ports: out,
            nets,
            at,
            keys,
        })
    }

    pub fn describe(&self, p: usize) -> String {
        let port = &self.ports[p];
        format!(
            "{} ({}/{} {} on {})",
            port.name,
            port.tenant,
            port.network,
            Ipv4Addr::from(port.ip as u32),
            self.hosts[port.host]
        )
    }
}
