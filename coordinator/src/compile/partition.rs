//! A network partition as flows each host adds above its pipeline, so the
//! cut is made by Open vSwitch itself, atomically per host, with nothing
//! in the guests: between the ports of group A and group B of a network,
//! unicast IPv4 and ARP are dropped where they enter (the sender's host),
//! and broadcasts reach only the sender's side. Every other pair is
//! untouched. On a switch network the cut replaces a member's hub flow:
//! its frames go to the members on its side only.

use std::collections::{BTreeMap, BTreeSet};

use smallvec::smallvec;

use super::flow::{Action as A, Actions, Flow, Match as M, PortRef};
use super::hub;
use super::netview::NetView;
use super::*;
use crate::model::{NetId, NetKind, PortKind, Topology};

/// Above every flow of the tables the cut uses (their own flows go up to 100).
pub const PARTITION_PRIORITY: u16 = 200;

const LIMITED_BROADCAST: std::net::Ipv4Addr = std::net::Ipv4Addr::BROADCAST;

/// Per host, the flows that cut the ports in `a` from those in `b` on the
/// given networks. Ports in both groups, or unknown, are ignored.
pub fn partition(
    topo: &Topology,
    nets: &[NetId],
    a: &BTreeSet<String>,
    b: &BTreeSet<String>,
) -> BTreeMap<String, Vec<Flow>> {
    let mut out: BTreeMap<String, Vec<Flow>> = BTreeMap::new();
    for &net in nets.iter().filter(|n| topo.networks.contains_key(n)) {
        let view = NetView::new(topo, net);
        // The ports each member may not reach.
        let peers = |name: &str| -> BTreeSet<&str> {
            let (mine, theirs) = if a.contains(name) && !b.contains(name) {
                (a, b)
            } else if b.contains(name) && !a.contains(name) {
                (b, a)
            } else {
                return BTreeSet::new();
            };
            view.members
                .iter()
                .map(|m| m.port.name.as_str())
                .filter(|n| theirs.contains(*n) && !mine.contains(*n))
                .collect()
        };
        if view.net.kind == NetKind::Switch {
            cut_hub(&view, &peers, &mut out);
            continue;
        }
        for (h, host) in view.hosts.iter().enumerate() {
            let flows = out.entry(host.id.to_string()).or_default();
            let local: Vec<&crate::model::Port> = view
                .members
                .iter()
                .filter(|m| m.host == h)
                .map(|m| m.port)
                .collect();
            for p in &local {
                let cut = peers(&p.name);
                if cut.is_empty() {
                    continue;
                }
                let in_port = M::InPort(PortRef::port(&p.name));
                for q in view.members.iter().filter(|m| cut.contains(m.port.name.as_str())) {
                    flows.push(Flow::new(
                        T_EGRESS,
                        PARTITION_PRIORITY,
                        smallvec![M::Ip, M::Reg(REG_NET, net), in_port.clone(), M::IpDst(q.port.ip)],
                        smallvec![A::Drop],
                    ));
                    flows.push(Flow::new(
                        T_ARP,
                        PARTITION_PRIORITY,
                        smallvec![
                            M::Arp,
                            M::Reg(REG_NET, net),
                            in_port.clone(),
                            M::ArpTpa(q.port.ip)
                        ],
                        smallvec![A::Drop],
                    ));
                }
                // Broadcast from p: local copies to its own side only, and
                // the usual copy to every other host (filtered there).
                let mut fanout: Actions = local
                    .iter()
                    .filter(|l| !cut.contains(l.name.as_str()))
                    .map(|l| A::Output(PortRef::port(&l.name)))
                    .collect();
                for (_, other) in view.hosts.iter().enumerate().filter(|(i, _)| *i != h) {
                    fanout.extend([
                        A::SetEthDst(other.mac),
                        A::SetIpDst(other.bkey),
                        A::Resubmit(T_EGRESS_SRC),
                    ]);
                }
                for dst in [view.net.cidr.broadcast(), LIMITED_BROADCAST] {
                    flows.push(Flow::new(
                        T_EGRESS,
                        PARTITION_PRIORITY,
                        smallvec![M::Ip, M::Reg(REG_NET, net), in_port.clone(), M::IpDst(dst)],
                        fanout.clone(),
                    ));
                }
            }
            // Broadcasts arriving from a remote member: its source restored
            // (a router's is its own), delivered to the local members on its
            // side only.
            for m in view.members.iter().filter(|m| m.host != h) {
                let cut = peers(&m.port.name);
                if !local.iter().any(|l| cut.contains(l.name.as_str())) {
                    continue;
                }
                let outputs = local
                    .iter()
                    .filter(|l| !cut.contains(l.name.as_str()))
                    .map(|l| A::Output(PortRef::port(&l.name)));
                let (source, mut deliver): (M, Actions) = match m.port.kind {
                    PortKind::Vm => (
                        M::IpSrc(m.port.key),
                        smallvec![A::SetEthSrc(m.port.mac), A::SetIpSrc(m.port.ip)],
                    ),
                    PortKind::Router => (M::EthSrc(m.port.mac), smallvec![]),
                };
                deliver.extend(outputs);
                let mut matches = smallvec![M::Ip, M::Reg(REG_NET, net), M::Reg(REG_BCAST, 1)];
                if m.port.kind == PortKind::Vm {
                    matches.push(M::EthSrc(view.hosts[m.host].mac));
                }
                matches.push(source);
                flows.push(Flow::new(T_INGRESS_SRC, PARTITION_PRIORITY, matches, deliver));
            }
        }
    }
    out.retain(|_, flows| !flows.is_empty());
    for flows in out.values_mut() {
        flows.sort();
        flows.dedup();
    }
    out
}

/// A switch network's cut: each member with peers across replaces its hub
/// flow with one to the members on its side.
fn cut_hub<'a>(
    view: &NetView<'a>,
    peers: &dyn Fn(&str) -> BTreeSet<&'a str>,
    out: &mut BTreeMap<String, Vec<Flow>>,
) {
    for host in &view.hosts {
        let members = hub::local_members(view, host.id);
        let flows = out.entry(host.id.to_string()).or_default();
        for p in &members {
            let cut = peers(&p.name);
            if cut.is_empty() {
                continue;
            }
            let kept = members
                .iter()
                .map(|q| q.name.as_str())
                .filter(|q| *q != p.name && !cut.contains(q));
            flows.push(hub::flood(&p.name, kept, PARTITION_PRIORITY));
        }
    }
}
