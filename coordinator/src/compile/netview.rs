//! The flows of one network on one host. A network is resolved once into a
//! `NetView` (its members with their hosts' MACs, its hosts with their
//! broadcast keys) that every host compiling it shares: no name lookups
//! per host.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use smallvec::smallvec;

use super::flow::{Action as A, Actions, Flow, Match as M, Matches, PortRef};
use super::*;
use crate::addr::Mac;
use crate::model::{NetId, NetKind, Network, Port, PortKind, Topology};

const BROADCAST_MAC: Mac = Mac([0xff; 6]);
const LIMITED_BROADCAST: Ipv4Addr = Ipv4Addr::BROADCAST;

pub struct Member<'a> {
    pub port: &'a Port,
    /// Index into `NetView::hosts`.
    pub host: usize,
}

pub struct HostView<'a> {
    pub id: &'a str,
    pub mac: Mac,
    pub bkey: Ipv4Addr,
}

pub struct NetView<'a> {
    pub net: &'a Network,
    pub members: Vec<Member<'a>>,
    /// Hosts with members, sorted by id.
    pub hosts: Vec<HostView<'a>>,
}

impl<'a> NetView<'a> {
    pub fn new(topo: &'a Topology, id: NetId) -> NetView<'a> {
        let ports: Vec<&Port> = topo.ports_of_net(id).collect();
        let mut ids: Vec<&str> = ports.iter().map(|p| p.host.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let hosts: Vec<HostView> = ids
            .iter()
            .map(|h| HostView {
                id: h,
                mac: topo.hosts[*h].mac,
                bkey: topo.bkeys[&(h.to_string(), id)],
            })
            .collect();
        let members = ports
            .into_iter()
            .map(|port| Member {
                port,
                host: ids
                    .binary_search(&port.host.as_str())
                    .expect("member host listed"),
            })
            .collect();
        NetView {
            net: &topo.networks[&id],
            members,
            hosts,
        }
    }
}

/// Views of `nets`, for a batch of host compiles.
pub fn views(topo: &Topology, nets: impl IntoIterator<Item = NetId>) -> HashMap<NetId, NetView<'_>> {
    nets.into_iter().map(|id| (id, NetView::new(topo, id))).collect()
}

fn port(p: &Port) -> PortRef {
    PortRef::port(&p.name)
}

/// ARP answers, forwarding, broadcast fan-out and ingress of network
/// `view` on host `host` (which has members in it); for a switch network,
/// its hub.
pub fn net_part(view: &NetView, host: &str) -> Vec<Flow> {
    if view.net.kind == NetKind::Switch {
        return super::hub::hub_part(view, host);
    }
    let me = view
        .hosts
        .binary_search_by(|h| h.id.cmp(host))
        .expect("host has members in the network");
    let (id, mut flows) = (view.net.id, Vec::with_capacity(view.members.len() * 4 + 4));
    let local = |m: &Member| m.host == me;
    let local_outputs: Actions = view
        .members
        .iter()
        .filter(|m| local(m))
        .map(|m| A::Output(port(m.port)))
        .collect();
    for m in &view.members {
        let q = m.port;
        flows.push(Flow::new(
            T_ARP,
            100,
            smallvec![M::Arp, M::Reg(REG_NET, id), M::ArpOp(1), M::ArpTpa(q.ip)],
            smallvec![A::ArpReply { mac: q.mac, ip: q.ip }],
        ));
        let to_q = if local(m) {
            smallvec![A::Output(port(q))]
        } else {
            smallvec![
                A::SetEthDst(view.hosts[m.host].mac),
                A::SetIpDst(q.key),
                A::Goto(T_EGRESS_SRC)
            ]
        };
        flows.push(Flow::new(
            T_EGRESS,
            100,
            smallvec![M::Ip, M::Reg(REG_NET, id), M::IpDst(q.ip)],
            to_q,
        ));
        if q.kind == PortKind::Router {
            // Next hop for outside addresses: the router side stays as is.
            let via = if local(m) {
                A::Output(port(q))
            } else {
                A::Goto(T_EGRESS_SRC)
            };
            flows.push(Flow::new(
                T_EGRESS,
                50,
                smallvec![M::Ip, M::Reg(REG_NET, id), M::EthDst(q.mac)],
                smallvec![via],
            ));
        }
        if !local(m) {
            flows.push(source_restore(view, m));
        }
    }
    let fanout = broadcast_fanout(view, me, &local_outputs);
    for dst in [view.net.cidr.broadcast(), LIMITED_BROADCAST] {
        flows.push(Flow::new(
            T_EGRESS,
            100,
            smallvec![M::Ip, M::Reg(REG_NET, id), M::IpDst(dst)],
            fanout.clone(),
        ));
    }
    let mine = &view.hosts[me];
    flows.push(Flow::new(
        T_INGRESS,
        100,
        smallvec![M::Ip, M::EthDst(mine.mac), M::IpDst(mine.bkey)],
        smallvec![
            A::SetEthDst(BROADCAST_MAC),
            A::SetIpDst(view.net.cidr.broadcast()),
            A::SetReg(REG_NET, id),
            A::SetReg(REG_BCAST, 1),
            A::Goto(T_INGRESS_SRC),
        ],
    ));
    flows.push(Flow::new(
        T_DELIVER,
        100,
        smallvec![M::Reg(REG_NET, id), M::Reg(REG_BCAST, 1)],
        local_outputs,
    ));
    flows.sort();
    flows
}

/// Table 31: a remote member's (host MAC, key) is restored to its own
/// addresses; a remote router is recognised by its MAC and left as is.
fn source_restore(view: &NetView, m: &Member) -> Flow {
    let (p, id) = (m.port, view.net.id);
    let (matches, actions): (Matches, Actions) = match p.kind {
        PortKind::Vm => (
            smallvec![
                M::Ip,
                M::Reg(REG_NET, id),
                M::EthSrc(view.hosts[m.host].mac),
                M::IpSrc(p.key)
            ],
            smallvec![A::SetEthSrc(p.mac), A::SetIpSrc(p.ip), A::Goto(T_DELIVER)],
        ),
        PortKind::Router => (
            smallvec![M::Ip, M::Reg(REG_NET, id), M::EthSrc(p.mac)],
            smallvec![A::Goto(T_DELIVER)],
        ),
    };
    Flow::new(T_INGRESS_SRC, 100, matches, actions)
}

/// Local copies first (unmodified), then one rewritten unicast copy per
/// remote host with members of the network.
fn broadcast_fanout(view: &NetView, me: usize, local_outputs: &[A]) -> Actions {
    let mut actions = Actions::with_capacity(local_outputs.len() + 3 * view.hosts.len());
    actions.extend(local_outputs.iter().cloned());
    for (_, h) in view.hosts.iter().enumerate().filter(|(i, _)| *i != me) {
        actions.extend([
            A::SetEthDst(h.mac),
            A::SetIpDst(h.bkey),
            A::Resubmit(T_EGRESS_SRC),
        ]);
    }
    actions
}
