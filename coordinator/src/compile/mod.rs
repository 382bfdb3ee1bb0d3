//! The rule compiler: a pure function from the topology to one host's flows.
//!
//! Pipeline (tables):
//! - 0 classify: any frame with a VLAN header is dropped; traffic from a
//!   local port with its own MAC and IP (ARP too) records its network (reg0)
//!   and mapping key (reg1); uplink traffic goes to ingress; anything else
//!   is dropped (anti-spoofing).
//! - 10 egress: by destination IP within the network: local delivery
//!   unmodified, or destination rewritten to the remote host's MAC and key;
//!   broadcast becomes local copies plus one unicast copy per remote host.
//! - 11 egress source: source rewritten to this host's MAC and the port's key
//!   (VM sources only: router traffic is rewritten on the VM side only).
//! - 20 ARP: requests answered in OvS from the topology.
//! - 30 ingress: destination key (or broadcast key) restored; notes network
//!   and output port.
//! - 31 ingress source: (host MAC, key) of a port of the same network
//!   restored; anything else dropped.
//! - 32 deliver: output, or every local member for broadcast.
//!
//! A switch network's ports skip all of this: one classify flow per member
//! sends its frames unchanged to the network's other members (`hub`).

pub mod flow;
mod hub;
mod netview;
mod partition;
mod tables;

#[cfg(test)]
mod hub_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use crate::model::{NetId, Topology};
pub use flow::{Action, Flow, Match, PortRef};
pub use netview::{views, NetView};
pub use partition::{partition, PARTITION_PRIORITY};

pub const T_CLASSIFY: u8 = 0;
pub const T_EGRESS: u8 = 10;
pub const T_EGRESS_SRC: u8 = 11;
pub const T_ARP: u8 = 20;
pub const T_INGRESS: u8 = 30;
pub const T_INGRESS_SRC: u8 = 31;
pub const T_DELIVER: u8 = 32;

/// Network id of the packet.
pub const REG_NET: u8 = 0;
/// Mapping key of the sending local port.
pub const REG_KEY: u8 = 1;
/// 1 when the sender is a router port.
pub const REG_ROUTER: u8 = 2;
/// OvS port number to deliver to on ingress.
pub const REG_OUT: u8 = 3;
/// 1 when an ingress packet is a broadcast.
pub const REG_BCAST: u8 = 4;

/// A host's flows come in parts that partition them: the base pipeline,
/// one part per local port, one per network with a member on the host. A
/// change recompiles only the parts it touches. A switch network's hub
/// lives in its network part (empty port parts), so a member joining or
/// leaving recompiles the others' outputs with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Base,
    Port(String),
    Net(NetId),
}

/// The parts `host`'s flows consist of now; none for an unknown host.
pub fn parts_of_host(topo: &Topology, host: &str) -> Vec<Part> {
    if !topo.hosts.contains_key(host) {
        return Vec::new();
    }
    let ports = topo.ports_on_host(host).map(|p| Part::Port(p.name.clone()));
    let nets = topo.nets_on_host(host).into_iter().map(Part::Net);
    std::iter::once(Part::Base).chain(ports).chain(nets).collect()
}

/// The flows of one part of `host`, sorted. The part must be one of
/// `parts_of_host(topo, host)`.
pub fn compile_part(topo: &Topology, host: &str, part: &Part) -> Vec<Flow> {
    tables::Ctx::new(topo, &topo.hosts[host]).part(part)
}

/// As `compile_part`, with network parts built from shared views when the
/// view of the part's network is in `views`.
pub fn compile_part_with(
    topo: &Topology,
    host: &str,
    part: &Part,
    views: &std::collections::HashMap<NetId, NetView>,
) -> Vec<Flow> {
    match part {
        Part::Net(id) => match views.get(id) {
            Some(view) => netview::net_part(view, host),
            None => compile_part(topo, host, part),
        },
        _ => compile_part(topo, host, part),
    }
}

/// Every flow `host` needs, sorted. Empty for an unknown host.
pub fn compile_host(topo: &Topology, host: &str) -> Vec<Flow> {
    let mut flows: Vec<Flow> = parts_of_host(topo, host)
        .iter()
        .flat_map(|part| compile_part(topo, host, part))
        .collect();
    flows.sort();
    flows
}
