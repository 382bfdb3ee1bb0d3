//! One function per table of the pipeline described in `compile`.

use smallvec::smallvec;

use super::flow::{Action as A, Actions, Flow, Match as M, PortRef};
use super::*;
use crate::model::{Host, NetKind, Port, PortKind, Topology};

pub struct Ctx<'a> {
    topo: &'a Topology,
    host: &'a Host,
}

fn port(p: &Port) -> PortRef {
    PortRef::port(&p.name)
}

impl<'a> Ctx<'a> {
    pub fn new(topo: &'a Topology, host: &'a Host) -> Self {
        Ctx { topo, host }
    }

    /// The flows of one part, sorted.
    pub fn part(&self, part: &Part) -> Vec<Flow> {
        let mut flows = Vec::new();
        match part {
            Part::Base => flows = self.defaults(),
            Part::Port(name) => {
                let p = &self.topo.ports[name];
                // A switch network's member has only its network's hub flows.
                if self.topo.networks[&p.net].kind == NetKind::Switch {
                    return flows;
                }
                self.classify(p, &mut flows);
                self.ingress_dst(p, &mut flows);
            }
            Part::Net(id) => {
                return super::netview::net_part(&super::netview::NetView::new(self.topo, *id), &self.host.id)
            }
        }
        flows.sort();
        flows
    }

    /// Table-miss drops everywhere; tagged frames dropped; uplink traffic
    /// enters ingress; source rewrite toward the uplink.
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
        .map(|t| Flow::new(t, 0, smallvec![], smallvec![A::Drop]))
        .collect();
        // No VLAN header enters the pipeline, from a tenant or the wire: a
        // tenant's tag would otherwise cross the physical switch inside the
        // rewritten frame and land in a VLAN of the data center.
        flows.push(Flow::new(
            T_CLASSIFY,
            300,
            smallvec![M::Tagged],
            smallvec![A::Drop],
        ));
        flows.push(Flow::new(
            T_CLASSIFY,
            200,
            smallvec![M::InPort(PortRef::Uplink)],
            smallvec![A::Goto(T_INGRESS)],
        ));
        flows.push(Flow::new(
            T_EGRESS_SRC,
            100,
            smallvec![M::Ip, M::Reg(REG_ROUTER, 0)],
            smallvec![
                A::KeyToIpSrc,
                A::SetEthSrc(self.host.mac),
                A::Output(PortRef::Uplink),
            ],
        ));
        flows.push(Flow::new(
            T_EGRESS_SRC,
            100,
            smallvec![M::Ip, M::Reg(REG_ROUTER, 1)],
            smallvec![A::Output(PortRef::Uplink)],
        ));
        flows.push(Flow::new(T_DELIVER, 50, smallvec![], smallvec![A::OutputReg3]));
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
            smallvec![
                M::Arp,
                in_port.clone(),
                M::EthSrc(p.mac),
                M::ArpSpa(p.ip),
                M::ArpSha(p.mac),
            ],
            smallvec![set_net.clone(), A::Goto(T_ARP)],
        ));
        let mut own_ip = smallvec![set_net.clone(), A::SetReg(REG_KEY, u32::from(p.key))];
        if p.kind == PortKind::Router {
            own_ip.push(A::SetReg(REG_ROUTER, 1));
        }
        own_ip.push(A::Goto(T_EGRESS));
        flows.push(Flow::new(
            T_CLASSIFY,
            100,
            smallvec![M::Ip, in_port.clone(), M::EthSrc(p.mac), M::IpSrc(p.ip)],
            own_ip,
        ));
        if p.kind == PortKind::Router {
            // Linux routers also use outside addresses as ARP sender IP.
            let cidr = self.topo.networks[&p.net].cidr;
            let ip = smallvec![M::Ip, in_port.clone(), M::EthSrc(p.mac)];
            let arp = smallvec![M::Arp, in_port, M::EthSrc(p.mac), M::ArpSha(p.mac)];
            flows.push(Flow::new(
                T_CLASSIFY,
                90,
                ip.iter().cloned().chain([M::IpSrcNet(cidr)]).collect(),
                smallvec![A::Drop],
            ));
            flows.push(Flow::new(
                T_CLASSIFY,
                90,
                arp.iter().cloned().chain([M::ArpSpaNet(cidr)]).collect(),
                smallvec![A::Drop],
            ));
            let outside = smallvec![set_net.clone(), A::SetReg(REG_ROUTER, 1), A::Goto(T_EGRESS)];
            flows.push(Flow::new(T_CLASSIFY, 80, ip, outside));
            flows.push(Flow::new(T_CLASSIFY, 80, arp, smallvec![set_net, A::Goto(T_ARP)]));
        }
    }

    /// Table 30, per local port: restore the destination from its key; for a
    /// router, accept traffic addressed to its MAC (outside destinations).
    fn ingress_dst(&self, q: &Port, flows: &mut Vec<Flow>) {
        let note: Actions = smallvec![
            A::SetReg(REG_NET, q.net),
            A::SetRegPort(REG_OUT, port(q)),
            A::Goto(T_INGRESS_SRC),
        ];
        let restore = [A::SetEthDst(q.mac), A::SetIpDst(q.ip)]
            .into_iter()
            .chain(note.iter().cloned())
            .collect();
        flows.push(Flow::new(
            T_INGRESS,
            100,
            smallvec![M::Ip, M::EthDst(self.host.mac), M::IpDst(q.key)],
            restore,
        ));
        if q.kind == PortKind::Router {
            flows.push(Flow::new(T_INGRESS, 50, smallvec![M::Ip, M::EthDst(q.mac)], note));
        }
    }
}
