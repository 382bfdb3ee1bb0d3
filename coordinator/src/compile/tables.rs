//! One function per table of the pipeline described in `compile`.

use std::collections::BTreeSet;

use super::flow::{Action as A, Flow, Match as M, PortRef};
use super::*;
use crate::model::{Host, NetId, Network, Port, PortKind, Topology};

const BROADCAST_MAC: crate::addr::Mac = crate::addr::Mac([0xff; 6]);
const LIMITED_BROADCAST: std::net::Ipv4Addr = std::net::Ipv4Addr::BROADCAST;

pub struct Ctx<'a> {
    topo: &'a Topology,
    host: &'a Host,
    nets: BTreeSet<NetId>,
}

fn port(p: &Port) -> PortRef {
    PortRef::Port(p.name.clone())
}

impl<'a> Ctx<'a> {
    pub fn new(topo: &'a Topology, host: &'a Host) -> Self {
        let nets = topo.nets_on_host(&host.id);
        Ctx { topo, host, nets }
    }

    pub fn all(&self) -> Vec<Flow> {
        let mut flows = self.defaults();
        for p in self.topo.ports_on_host(&self.host.id) {
            self.classify(p, &mut flows);
            self.ingress_dst(p, &mut flows);
        }
        for &id in &self.nets {
            let net = &self.topo.networks[&id];
            self.arp(net, &mut flows);
            self.egress(net, &mut flows);
            self.ingress_net(net, &mut flows);
        }
        flows
    }

    fn local(&self, p: &Port) -> bool {
        p.host == self.host.id
    }

    fn host_mac(&self, id: &str) -> crate::addr::Mac {
        self.topo.hosts[id].mac
    }

    /// Table-miss drops everywhere; uplink traffic enters ingress; source
    /// rewrite toward the uplink.
    fn defaults(&self) -> Vec<Flow> {
        let mut flows: Vec<Flow> = [
            T_CLASSIFY,
            T_EGRESS,
            T_EGRESS_SRC,
            T_ARP,
            T_INGRESS,
            T_INGRESS_SRC,
            T_DELIVER,
        ]
        .into_iter()
        .map(|t| Flow::new(t, 0, vec![], vec![A::Drop]))
        .collect();
        flows.push(Flow::new(
            T_CLASSIFY,
            200,
            vec![M::InPort(PortRef::Uplink)],
            vec![A::Goto(T_INGRESS)],
        ));
        flows.push(Flow::new(
            T_EGRESS_SRC,
            100,
            vec![M::Ip, M::Reg(REG_ROUTER, 0)],
            vec![
                A::KeyToIpSrc,
                A::SetEthSrc(self.host.mac),
                A::Output(PortRef::Uplink),
            ],
        ));
        flows.push(Flow::new(
            T_EGRESS_SRC,
            100,
            vec![M::Ip, M::Reg(REG_ROUTER, 1)],
            vec![A::Output(PortRef::Uplink)],
        ));
        flows.push(Flow::new(T_DELIVER, 50, vec![], vec![A::OutputReg3]));
        flows
    }

    /// Table 0: a local port may send only with its own MAC and IP. A router
    /// forwards for outside parties, so it may use any source IP outside its
    /// network, but not another address inside it.
    fn classify(&self, p: &Port, flows: &mut Vec<Flow>) {
        let in_port = M::InPort(port(p));
        let set_net = A::SetReg(REG_NET, p.net);
        flows.push(Flow::new(
            T_CLASSIFY,
            100,
            vec![
                M::Arp,
                in_port.clone(),
                M::EthSrc(p.mac),
                M::ArpSpa(p.ip),
                M::ArpSha(p.mac),
            ],
            vec![set_net.clone(), A::Goto(T_ARP)],
        ));
        let mut own_ip = vec![set_net.clone(), A::SetReg(REG_KEY, u32::from(p.key))];
        if p.kind == PortKind::Router {
            own_ip.push(A::SetReg(REG_ROUTER, 1));
        }
        own_ip.push(A::Goto(T_EGRESS));
        flows.push(Flow::new(
            T_CLASSIFY,
            100,
            vec![M::Ip, in_port.clone(), M::EthSrc(p.mac), M::IpSrc(p.ip)],
            own_ip,
        ));
        if p.kind == PortKind::Router {
            // Linux routers also use outside addresses as ARP sender IP.
            let cidr = self.topo.networks[&p.net].cidr;
            let ip = vec![M::Ip, in_port.clone(), M::EthSrc(p.mac)];
            let arp = vec![M::Arp, in_port, M::EthSrc(p.mac), M::ArpSha(p.mac)];
            flows.push(Flow::new(
                T_CLASSIFY,
                90,
                [ip.clone(), vec![M::IpSrcNet(cidr)]].concat(),
                vec![A::Drop],
            ));
            flows.push(Flow::new(
                T_CLASSIFY,
                90,
                [arp.clone(), vec![M::ArpSpaNet(cidr)]].concat(),
                vec![A::Drop],
            ));
            let outside = vec![set_net.clone(), A::SetReg(REG_ROUTER, 1), A::Goto(T_EGRESS)];
            flows.push(Flow::new(T_CLASSIFY, 80, ip, outside));
            flows.push(Flow::new(T_CLASSIFY, 80, arp, vec![set_net, A::Goto(T_ARP)]));
        }
    }

    /// Table 20: answer every ARP request for an address of the network.
    fn arp(&self, net: &Network, flows: &mut Vec<Flow>) {
        for q in self.topo.ports_of_net(net.id) {
            flows.push(Flow::new(
                T_ARP,
                100,
                vec![M::Arp, M::Reg(REG_NET, net.id), M::ArpOp(1), M::ArpTpa(q.ip)],
                vec![A::ArpReply { mac: q.mac, ip: q.ip }],
            ));
        }
    }

    /// Table 10: forward by destination within the network.
    fn egress(&self, net: &Network, flows: &mut Vec<Flow>) {
        let in_net = |extra: Vec<M>| [vec![M::Ip, M::Reg(REG_NET, net.id)], extra].concat();
        for q in self.topo.ports_of_net(net.id) {
            let actions = if self.local(q) {
                vec![A::Output(port(q))]
            } else {
                vec![
                    A::SetEthDst(self.host_mac(&q.host)),
                    A::SetIpDst(q.key),
                    A::Goto(T_EGRESS_SRC),
                ]
            };
            flows.push(Flow::new(T_EGRESS, 100, in_net(vec![M::IpDst(q.ip)]), actions));
            if q.kind == PortKind::Router {
                // Next hop for outside addresses: the router side stays as is.
                let actions = if self.local(q) {
                    vec![A::Output(port(q))]
                } else {
                    vec![A::Goto(T_EGRESS_SRC)]
                };
                flows.push(Flow::new(T_EGRESS, 50, in_net(vec![M::EthDst(q.mac)]), actions));
            }
        }
        let fanout = self.broadcast_fanout(net);
        for dst in [net.cidr.broadcast(), LIMITED_BROADCAST] {
            flows.push(Flow::new(
                T_EGRESS,
                100,
                in_net(vec![M::IpDst(dst)]),
                fanout.clone(),
            ));
        }
    }

    /// Local copies first (unmodified), then one rewritten unicast copy per
    /// remote host with members of the network.
    fn broadcast_fanout(&self, net: &Network) -> Vec<A> {
        let mut actions = self.local_outputs(net.id);
        for host in self.topo.hosts_of_net(net.id) {
            if host == self.host.id {
                continue;
            }
            let bkey = self.topo.bkeys[&(host.clone(), net.id)];
            actions.extend([
                A::SetEthDst(self.host_mac(&host)),
                A::SetIpDst(bkey),
                A::Resubmit(T_EGRESS_SRC),
            ]);
        }
        actions
    }

    fn local_outputs(&self, net: NetId) -> Vec<A> {
        self.topo
            .ports_of_net(net)
            .filter(|q| self.local(q))
            .map(|q| A::Output(port(q)))
            .collect()
    }

    /// Table 30, per local port: restore the destination from its key; for a
    /// router, accept traffic addressed to its MAC (outside destinations).
    fn ingress_dst(&self, q: &Port, flows: &mut Vec<Flow>) {
        let note = vec![
            A::SetReg(REG_NET, q.net),
            A::SetRegPort(REG_OUT, port(q)),
            A::Goto(T_INGRESS_SRC),
        ];
        let restore = [vec![A::SetEthDst(q.mac), A::SetIpDst(q.ip)], note.clone()].concat();
        flows.push(Flow::new(
            T_INGRESS,
            100,
            vec![M::Ip, M::EthDst(self.host.mac), M::IpDst(q.key)],
            restore,
        ));
        if q.kind == PortKind::Router {
            flows.push(Flow::new(T_INGRESS, 50, vec![M::Ip, M::EthDst(q.mac)], note));
        }
    }

    /// Tables 30-32, per local network: broadcast key, source restore for
    /// every remote member, local broadcast delivery.
    fn ingress_net(&self, net: &Network, flows: &mut Vec<Flow>) {
        let bkey = self.topo.bkeys[&(self.host.id.clone(), net.id)];
        flows.push(Flow::new(
            T_INGRESS,
            100,
            vec![M::Ip, M::EthDst(self.host.mac), M::IpDst(bkey)],
            vec![
                A::SetEthDst(BROADCAST_MAC),
                A::SetIpDst(net.cidr.broadcast()),
                A::SetReg(REG_NET, net.id),
                A::SetReg(REG_BCAST, 1),
                A::Goto(T_INGRESS_SRC),
            ],
        ));
        for p in self.topo.ports_of_net(net.id).filter(|p| !self.local(p)) {
            let base = vec![M::Ip, M::Reg(REG_NET, net.id)];
            let (matches, mut actions) = match p.kind {
                PortKind::Vm => (
                    [base, vec![M::EthSrc(self.host_mac(&p.host)), M::IpSrc(p.key)]].concat(),
                    vec![A::SetEthSrc(p.mac), A::SetIpSrc(p.ip)],
                ),
                PortKind::Router => ([base, vec![M::EthSrc(p.mac)]].concat(), vec![]),
            };
            actions.push(A::Goto(T_DELIVER));
            flows.push(Flow::new(T_INGRESS_SRC, 100, matches, actions));
        }
        flows.push(Flow::new(
            T_DELIVER,
            100,
            vec![M::Reg(REG_NET, net.id), M::Reg(REG_BCAST, 1)],
            self.local_outputs(net.id),
        ));
    }
}
