//! An interpreter of compiled tables across hosts joined by a dumb switch,
//! so properties of the compiler can be checked on thousands of topologies.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::flow::{Action, Flow, Match, PortRef};
use super::*;
use crate::addr::Mac;
use crate::model::Topology;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Ip {
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    Arp {
        op: u16,
        sha: Mac,
        spa: Ipv4Addr,
        tha: Mac,
        tpa: Ipv4Addr,
    },
    /// Neither IPv4 nor ARP (IPv6, LLDP, ...): only a switch network
    /// carries it.
    Other {
        ethertype: u16,
    },
}

/// A VLAN header between the MACs and the ethertype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vlan {
    /// 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub tpid: u16,
    /// PCP, DEI and VID; VID 0 is a priority tag.
    pub tci: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub eth_src: Mac,
    pub eth_dst: Mac,
    /// Outermost first.
    pub vlans: Vec<Vlan>,
    pub body: Body,
}

/// Where a packet went: a port, or the wire between hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub port: String,
    pub packet: Packet,
}

pub struct Sim<'a> {
    topo: &'a Topology,
    flows: BTreeMap<String, Vec<Flow>>,
    /// Every packet that crossed the physical switch.
    pub wire: Vec<Packet>,
}

struct Exec {
    pkt: Packet,
    regs: [u32; 8],
    out_port: Option<PortRef>,
    in_port: PortRef,
    outputs: Vec<(PortRef, Packet)>,
}

impl<'a> Sim<'a> {
    pub fn new(topo: &'a Topology) -> Self {
        let flows = topo
            .hosts
            .keys()
            .map(|h| (h.clone(), compile_host(topo, h)))
            .collect();
        Sim {
            topo,
            flows,
            wire: Vec::new(),
        }
    }

    /// Adds flows to `host`'s tables (what an agent merges in for a fault).
    pub fn add_flows(&mut self, host: &str, flows: &[Flow]) {
        self.flows
            .get_mut(host)
            .expect("known host")
            .extend(flows.iter().cloned());
    }

    /// Removes every flow `pred` picks, on every host.
    pub fn remove_flows(&mut self, pred: impl Fn(&Flow) -> bool) {
        for flows in self.flows.values_mut() {
            flows.retain(|f| !pred(f));
        }
    }

    /// Sends `pkt` from local port `from`; returns every port it reached.
    pub fn send(&mut self, from: &str, pkt: Packet) -> Vec<Delivery> {
        let host = self.topo.ports[from].host.clone();
        let mut delivered = Vec::new();
        for (port, pkt) in self.run_host(&host, PortRef::port(from), pkt) {
            match port {
                PortRef::Port(name) => delivered.push(Delivery {
                    port: name.to_string(),
                    packet: pkt,
                }),
                PortRef::Uplink => delivered.extend(self.switch(&host, pkt)),
            }
        }
        delivered
    }

    /// A frame arriving from the physical switch at `host`'s uplink.
    pub fn arrive_from_wire(&self, host: &str, pkt: Packet) -> Vec<Delivery> {
        let mut delivered = Vec::new();
        for (port, out) in self.run_host(host, PortRef::Uplink, pkt) {
            match port {
                PortRef::Port(name) => delivered.push(Delivery {
                    port: name.to_string(),
                    packet: out,
                }),
                PortRef::Uplink => panic!("host {host} sent an ingress packet back to the wire: {out:?}"),
            }
        }
        delivered
    }

    /// The dumb switch: to the host owning eth_dst, else flooded.
    fn switch(&mut self, from_host: &str, pkt: Packet) -> Vec<Delivery> {
        self.wire.push(pkt.clone());
        let owner = self
            .topo
            .hosts
            .values()
            .find(|h| h.mac == pkt.eth_dst)
            .map(|h| h.id.clone());
        let targets: Vec<String> = match owner {
            Some(h) => vec![h],
            None => self
                .topo
                .hosts
                .keys()
                .filter(|h| *h != from_host)
                .cloned()
                .collect(),
        };
        targets
            .iter()
            .flat_map(|host| self.arrive_from_wire(host, pkt.clone()))
            .collect()
    }

    fn run_host(&self, host: &str, in_port: PortRef, pkt: Packet) -> Vec<(PortRef, Packet)> {
        let mut exec = Exec {
            pkt,
            regs: [0; 8],
            out_port: None,
            in_port: in_port.clone(),
            outputs: Vec::new(),
        };
        self.run_table(host, T_CLASSIFY, &mut exec, 0);
        // OvS never outputs to the input port unless told to (IN_PORT).
        exec.outputs
    }

    fn run_table(&self, host: &str, table: u8, exec: &mut Exec, depth: u32) {
        assert!(depth < 16, "resubmit loop on {host}");
        let flows = &self.flows[host];
        let matching: Vec<&Flow> = flows
            .iter()
            .filter(|f| f.table == table && matches(f, exec))
            .collect();
        let Some(top) = matching.iter().map(|f| f.priority).max() else {
            return;
        };
        let best: Vec<&&Flow> = matching.iter().filter(|f| f.priority == top).collect();
        assert_eq!(best.len(), 1, "ambiguous match on {host} table {table}: {best:?}");
        for action in &best[0].actions {
            if self.act(host, action, exec, depth) {
                return;
            }
        }
    }

    /// Executes one action; true when the pipeline moved on (goto).
    fn act(&self, host: &str, action: &Action, exec: &mut Exec, depth: u32) -> bool {
        match action {
            Action::SetReg(r, v) => exec.regs[*r as usize] = *v,
            Action::SetRegPort(_, p) => exec.out_port = Some(p.clone()),
            Action::SetEthSrc(m) => exec.pkt.eth_src = *m,
            Action::SetEthDst(m) => exec.pkt.eth_dst = *m,
            Action::SetIpSrc(ip) => set_ip(&mut exec.pkt, Some(*ip), None),
            Action::SetIpDst(ip) => set_ip(&mut exec.pkt, None, Some(*ip)),
            Action::KeyToIpSrc => set_ip(
                &mut exec.pkt,
                Some(Ipv4Addr::from(exec.regs[REG_KEY as usize])),
                None,
            ),
            Action::ArpReply { mac, ip } => {
                let Body::Arp { sha, spa, .. } = exec.pkt.body.clone() else {
                    panic!("ARP reply on a non-ARP packet")
                };
                let reply = Packet {
                    eth_src: *mac,
                    eth_dst: exec.pkt.eth_src,
                    vlans: exec.pkt.vlans.clone(),
                    body: Body::Arp {
                        op: 2,
                        sha: *mac,
                        spa: *ip,
                        tha: sha,
                        tpa: spa,
                    },
                };
                exec.pkt = reply.clone();
                exec.outputs.push((exec.in_port.clone(), reply));
            }
            Action::Output(p) => output(exec, p.clone()),
            Action::OutputReg3 => {
                let p = exec.out_port.clone().expect("output:reg3 with reg3 unset");
                output(exec, p);
            }
            Action::Goto(t) => {
                self.run_table(host, *t, exec, depth + 1);
                return true;
            }
            Action::Resubmit(t) => self.run_table(host, *t, exec, depth + 1),
            Action::Drop => {}
        }
        false
    }
}

fn output(exec: &mut Exec, port: PortRef) {
    if port != exec.in_port {
        exec.outputs.push((port, exec.pkt.clone()));
    }
}

fn set_ip(pkt: &mut Packet, src: Option<Ipv4Addr>, dst: Option<Ipv4Addr>) {
    let Body::Ip { src: s, dst: d } = &mut pkt.body else {
        panic!("IP rewrite on a non-IP packet")
    };
    *s = src.unwrap_or(*s);
    *d = dst.unwrap_or(*d);
}

/// As OvS parses frames (`vlan-limit` 1): the first VLAN header is the
/// vlan_tci field and the ethertype behind it is dl_type, so a frame with
/// two headers has dl_type 0x8100 and is neither IP nor ARP.
fn matches(flow: &Flow, exec: &Exec) -> bool {
    let pkt = &exec.pkt;
    let typed = pkt.vlans.len() <= 1;
    flow.matches.iter().all(|m| match (m, &pkt.body) {
        (Match::Ip, body) => typed && matches!(body, Body::Ip { .. }),
        (Match::Arp, body) => typed && matches!(body, Body::Arp { .. }),
        (Match::Tagged, _) => !pkt.vlans.is_empty(),
        (Match::InPort(p), _) => *p == exec.in_port,
        (Match::Reg(r, v), _) => exec.regs[*r as usize] == *v,
        (Match::EthSrc(mac), _) => pkt.eth_src == *mac,
        (Match::EthDst(mac), _) => pkt.eth_dst == *mac,
        (Match::IpSrc(ip), Body::Ip { src, .. }) => src == ip,
        (Match::IpSrcNet(cidr), Body::Ip { src, .. }) => cidr.contains(*src),
        (Match::IpDst(ip), Body::Ip { dst, .. }) => dst == ip,
        (Match::ArpOp(op), Body::Arp { op: o, .. }) => o == op,
        (Match::ArpSpa(ip), Body::Arp { spa, .. }) => spa == ip,
        (Match::ArpSpaNet(cidr), Body::Arp { spa, .. }) => cidr.contains(*spa),
        (Match::ArpSha(mac), Body::Arp { sha, .. }) => sha == mac,
        (Match::ArpTpa(ip), Body::Arp { tpa, .. }) => tpa == ip,
        _ => false,
    })
}
