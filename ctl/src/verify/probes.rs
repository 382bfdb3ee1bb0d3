//! The frames a tenant could send, and what must become of each. Every
//! attached port sends: a frame to each member of its network, an ARP
//! request for each, both broadcasts, a frame to any address at all (the
//! destination left open, under every destination MAC the flows tell
//! apart), and forged frames (another's MAC or IP, another tenant's
//! identity, VLAN headers, forged ARP, other ethertypes). What comes out
//! is judged against the topology.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Serialize;

use super::exec::{Hit, Leaf, Net, Pkt};
use super::intent::Intent;
use super::ofp::{Field, REGS};
use super::ranges::Ranges;

/// dclab's cookie: flows without it were not installed by dclab.
pub const DCLAB_COOKIE: u64 = 0xdc1ab;
pub(super) const BROADCAST_MAC: u64 = 0xffff_ffff_ffff;
/// Addresses no flow names (RFC 7042 documentation MACs, made local).
const UNKNOWN_DST_MAC: u64 = 0x0200_5e00_5301;
pub(super) const FORGED_MAC: u64 = 0x0200_5e00_5302;
const OUTSIDE_IP: u64 = 0xcb00_7107; // 203.0.113.7
const ETH_IP: u64 = 0x0800;
const ETH_ARP: u64 = 0x0806;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    CrossNetworkDelivery,
    ForgedFrameDelivered,
    UnreachablePair,
    Misdelivery,
    SourceNotRestored,
    TenantHeaderOnTheWire,
    ArpNotAnswered,
    BroadcastWrong,
    HubWrong,
    SentToController,
    Loop,
    DeliveredOutsideDclab,
    UninterpretableFlow,
    DisagreesWithOvs,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::CrossNetworkDelivery => "delivery across networks",
            Kind::ForgedFrameDelivered => "forged frame delivered",
            Kind::UnreachablePair => "same-network pair cannot reach",
            Kind::Misdelivery => "delivered to the wrong member",
            Kind::SourceNotRestored => "source not restored",
            Kind::TenantHeaderOnTheWire => "tenant header on the wire",
            Kind::ArpNotAnswered => "ARP not answered right",
            Kind::BroadcastWrong => "broadcast reaches the wrong set",
            Kind::HubWrong => "switch network frame reaches the wrong set",
            Kind::SentToController => "sent to a controller",
            Kind::Loop => "forwarding loop",
            Kind::DeliveredOutsideDclab => "delivered to a port dclab does not know",
            Kind::UninterpretableFlow => "flow the verifier cannot interpret",
            Kind::DisagreesWithOvs => "interpreter and ofproto/trace disagree",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub kind: Kind,
    pub from: String,
    pub to: String,
    pub detail: String,
    /// The flows the packet went through, `host: flow`; flows without
    /// dclab's cookie first.
    pub flows: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub ports: usize,
    pub unattached: usize,
    pub pairs: usize,
    pub probes: usize,
    pub traces: usize,
    pub forged: usize,
}

#[derive(Default)]
pub struct Report {
    pub violations: BTreeMap<(Kind, String, String), Violation>,
    pub counts: Counts,
}

impl Report {
    pub fn add(&mut self, v: Violation) {
        self.violations
            .entry((v.kind, v.from.clone(), v.to.clone()))
            .or_insert(v);
    }
}

fn ip_text(v: u64) -> String {
    Ipv4Addr::from(v as u32).to_string()
}

/// The flows of a leaf's path, the ones dclab did not install first.
pub fn responsible(net: &Net, leaf: &Leaf) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut foreign = Vec::new();
    let mut ours = Vec::new();
    for (host, hit) in &leaf.path {
        let Hit::Flow(i) = hit else { continue };
        if !seen.insert((*host, *i)) {
            continue;
        }
        let bridge = &net.bridges[*host];
        let flow = &bridge.flows[*i as usize];
        if flow.cookie == DCLAB_COOKIE {
            ours.push(format!("{}: {}", bridge.host, flow.text));
        } else {
            foreign.push(format!("{}: {} [not installed by dclab]", bridge.host, flow.text));
        }
    }
    foreign.extend(ours);
    foreign
}

/// A frame from port `p` as its guest would build it.
pub(super) fn frame(intent: &Intent, p: usize, eth_dst: u64) -> Pkt {
    let port = &intent.ports[p];
    Pkt {
        in_port: port.ofport.unwrap_or(0),
        eth_src: port.mac,
        eth_dst,
        eth_type: ETH_IP,
        vlans: vec![],
        ip_src: port.ip,
        ip_dst: 0,
        ip_proto: 1,
        arp_op: 0,
        arp_spa: 0,
        arp_tpa: 0,
        arp_sha: 0,
        arp_tha: 0,
        tp_dst: 0,
        regs: [0; REGS],
        metadata: 0,
        open: None,
    }
}

pub(super) fn to_any(mut pkt: Pkt) -> Pkt {
    pkt.open = Some((Field::IpDst, Ranges::all()));
    pkt
}

pub(super) fn arp(intent: &Intent, p: usize, tpa: Option<u64>) -> Pkt {
    let port = &intent.ports[p];
    let mut pkt = frame(intent, p, BROADCAST_MAC);
    pkt.eth_type = ETH_ARP;
    pkt.arp_op = 1;
    pkt.arp_sha = port.mac;
    pkt.arp_spa = port.ip;
    match tpa {
        Some(t) => pkt.arp_tpa = t,
        None => pkt.open = Some((Field::ArpTpa, Ranges::all())),
    }
    pkt
}

/// Destination MACs a port's bridge tells apart (it matches them), plus
/// broadcast, one no flow names, and another host's.
fn dst_macs(net: &Net, intent: &Intent, p: usize) -> Vec<u64> {
    let host = intent.ports[p].host;
    let mut macs: BTreeSet<u64> = BTreeSet::from([BROADCAST_MAC, UNKNOWN_DST_MAC]);
    for f in &net.bridges[host].flows {
        for c in &f.conds {
            if c.field == Field::EthDst && c.mask == 0xffff_ffff_ffff {
                macs.insert(c.value);
            }
        }
    }
    if let Some(other) = intent.host_macs.iter().enumerate().find(|(h, _)| *h != host) {
        macs.insert(*other.1);
    }
    macs.into_iter().collect()
}

pub struct Checker<'a> {
    pub net: &'a Net,
    pub intent: &'a Intent,
    pub report: Report,
}

impl<'a> Checker<'a> {
    pub(super) fn send(&mut self, p: usize, pkt: Pkt) -> Vec<Leaf> {
        self.report.counts.probes += 1;
        let leaves = self.net.send(self.intent.ports[p].host, pkt);
        self.report.counts.traces += leaves.len();
        leaves
    }

    pub(super) fn flag(&mut self, kind: Kind, p: usize, to: String, detail: String, leaf: &Leaf) {
        let flows = responsible(self.net, leaf);
        let from = self.intent.describe(p);
        self.report.add(Violation {
            kind,
            from,
            to,
            detail,
            flows,
        });
    }

    /// None when `leaf` delivered to exactly the ports `want`, each once;
    /// else what went wrong.
    pub(super) fn not_exactly(&self, leaf: &Leaf, want: &BTreeSet<usize>, what: &str) -> Option<String> {
        let got: Vec<usize> = leaf
            .deliveries
            .iter()
            .filter_map(|(h, o, _)| self.port_at(*h, *o))
            .collect();
        let got_set: BTreeSet<usize> = got.iter().copied().collect();
        if got_set == *want && got.len() == got_set.len() {
            return None;
        }
        let missing: Vec<&str> = want
            .difference(&got_set)
            .map(|q| self.intent.ports[*q].name.as_str())
            .collect();
        let missing = if missing.is_empty() {
            "none".into()
        } else {
            missing.join(", ")
        };
        Some(format!(
            "{what}: {} copies delivered; missing {missing}",
            got.len()
        ))
    }

    pub(super) fn port_at(&self, host: usize, ofport: u32) -> Option<usize> {
        self.intent.at.get(&(host, ofport)).copied()
    }

    pub(super) fn where_(&self, host: usize, ofport: u32) -> String {
        match self.port_at(host, ofport) {
            Some(q) => self.intent.describe(q),
            None => format!("OpenFlow port {ofport} on {}", self.intent.hosts[host]),
        }
    }

    /// What must hold of every leaf of every probe from `p`.
    pub(super) fn common(&mut self, p: usize, leaf: &Leaf, what: &str) {
        let port = &self.intent.ports[p];
        if leaf.controller {
            self.flag(
                Kind::SentToController,
                p,
                "a controller".into(),
                what.into(),
                leaf,
            );
        }
        if leaf.looped {
            self.flag(Kind::Loop, p, "-".into(), what.into(), leaf);
        }
        for (host, ofport, pkt) in &leaf.deliveries {
            match self.port_at(*host, *ofport) {
                None => {
                    let to = self.where_(*host, *ofport);
                    self.flag(Kind::DeliveredOutsideDclab, p, to, what.into(), leaf);
                }
                Some(q) if self.intent.ports[q].net != port.net => {
                    let to = self.intent.describe(q);
                    self.flag(Kind::CrossNetworkDelivery, p, to, what.into(), leaf);
                }
                Some(q) => {
                    if !pkt.vlans.is_empty() {
                        let to = self.intent.describe(q);
                        self.flag(
                            Kind::ForgedFrameDelivered,
                            p,
                            to,
                            format!("{what}, delivered with a VLAN header"),
                            leaf,
                        );
                    }
                }
            }
        }
        let network = &self.intent.nets[port.net];
        let (routers, members) = (&network.router_macs, &network.member_ips);
        for (host, pkt) in &leaf.wire {
            let mut leak = Vec::new();
            if !pkt.vlans.is_empty() {
                leak.push("a VLAN header".to_string());
            }
            if pkt.eth_type == ETH_ARP {
                leak.push("an ARP frame".to_string());
            }
            // A router's own frames keep its MAC (rewritten on the VM side only).
            let own_router_mac = port.router && pkt.eth_src == port.mac;
            if pkt.eth_src != self.intent.host_macs[*host] && !own_router_mac {
                leak.push(format!("source MAC {}", mac_text(pkt.eth_src)));
            }
            if !self.intent.host_macs.contains(&pkt.eth_dst) && !routers.contains(&pkt.eth_dst) {
                leak.push(format!("destination MAC {}", mac_text(pkt.eth_dst)));
            }
            if pkt.eth_type == ETH_IP {
                if !port.router && pkt.ip_src != port.key {
                    leak.push(format!("source address {}", ip_text(pkt.ip_src)));
                }
                // Traffic for a router keeps its outside destination (the
                // router side is not rewritten); a member's address never.
                let to_router = routers.contains(&pkt.eth_dst);
                match &pkt.open {
                    Some((_, set)) if !to_router => {
                        let sample = set.sample(&[]).map_or("?".into(), ip_text);
                        leak.push(format!("a destination address never rewritten ({sample}, ...)"));
                    }
                    Some((_, set)) => {
                        if let Some(m) = members.iter().find(|m| set.contains(**m)) {
                            leak.push(format!(
                                "member address {} unrewritten toward the router",
                                ip_text(*m)
                            ));
                        }
                    }
                    None if members.contains(&pkt.ip_dst) && !self.intent.keys.contains(&pkt.ip_dst) => {
                        leak.push(format!("destination address {}", ip_text(pkt.ip_dst)));
                    }
                    None => {}
                }
            }
            if !leak.is_empty() {
                let from_host = &self.intent.hosts[*host];
                let detail = format!("{what}: left {from_host} with {}", leak.join(", "));
                self.flag(
                    Kind::TenantHeaderOnTheWire,
                    p,
                    "the physical switch".into(),
                    detail,
                    leaf,
                );
            }
        }
    }

    /// Every probe of port `p`.
    pub fn check_port(&mut self, p: usize) {
        let port = self.intent.ports[p].clone();
        self.report.counts.ports += 1;
        if port.ofport.is_none() {
            self.report.counts.unattached += 1;
            return;
        }
        let members: Vec<usize> = self.intent.nets[port.net]
            .members
            .iter()
            .copied()
            .filter(|q| *q != p)
            .collect();
        if self.intent.nets[port.net].switch {
            return super::hub::check_member(self, p, &members);
        }
        for &q in &members {
            self.reach(p, q);
            self.arp_for(p, q);
        }
        self.broadcasts(p, &members);
        for mac in dst_macs(self.net, self.intent, p) {
            self.any_destination(p, mac);
        }
        self.arp_for_anything(p);
        self.forged(p, &members);
    }

    fn reach(&mut self, p: usize, q: usize) {
        let (src, dst) = (self.intent.ports[p].clone(), self.intent.ports[q].clone());
        if dst.ofport.is_none() {
            return;
        }
        self.report.counts.pairs += 1;
        let mut pkt = frame(self.intent, p, dst.mac);
        pkt.ip_dst = dst.ip;
        let what = format!("IPv4 to {}", ip_text(dst.ip));
        for leaf in self.send(p, pkt) {
            self.common(p, &leaf, &what);
            let to_q: Vec<&Pkt> = leaf
                .deliveries
                .iter()
                .filter(|(h, o, _)| self.port_at(*h, *o) == Some(q))
                .map(|(_, _, k)| k)
                .collect();
            let to = self.intent.describe(q);
            match to_q.as_slice() {
                [] => self.flag(
                    Kind::UnreachablePair,
                    p,
                    to,
                    format!("{what}: not delivered"),
                    &leaf,
                ),
                [k] => {
                    if (k.eth_src, k.ip_src) != (src.mac, src.ip) {
                        let detail = format!(
                            "{what}: arrived from {} {}",
                            mac_text(k.eth_src),
                            ip_text(k.ip_src)
                        );
                        self.flag(Kind::SourceNotRestored, p, to, detail, &leaf);
                    } else if (k.eth_dst, k.ip_dst) != (dst.mac, dst.ip) {
                        let detail = format!(
                            "{what}: arrived for {} {}",
                            mac_text(k.eth_dst),
                            ip_text(k.ip_dst)
                        );
                        self.flag(Kind::Misdelivery, p, to, detail, &leaf);
                    }
                }
                more => {
                    let detail = format!("{what}: delivered {} times", more.len());
                    self.flag(Kind::Misdelivery, p, to, detail, &leaf);
                }
            }
            for (h, o, _) in &leaf.deliveries {
                match self.port_at(*h, *o) {
                    Some(r) if r != q && self.intent.ports[r].net == src.net => {
                        let to = self.intent.describe(r);
                        self.flag(
                            Kind::Misdelivery,
                            p,
                            to,
                            format!("{what}: also delivered here"),
                            &leaf,
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    fn arp_for(&mut self, p: usize, q: usize) {
        let dst = self.intent.ports[q].clone();
        let what = format!("ARP request for {}", ip_text(dst.ip));
        for leaf in self.send(p, arp(self.intent, p, Some(dst.ip))) {
            self.common(p, &leaf, &what);
            let replies: Vec<&Pkt> = leaf
                .deliveries
                .iter()
                .filter(|(h, o, k)| self.port_at(*h, *o) == Some(p) && k.arp_op == 2)
                .map(|(_, _, k)| k)
                .collect();
            let right = matches!(replies.as_slice(), [r] if r.arp_sha == dst.mac && r.arp_spa == dst.ip && r.eth_src == dst.mac);
            if !right || !leaf.wire.is_empty() || leaf.deliveries.len() != 1 {
                let detail = format!(
                    "{what}: {} replies, {} copies delivered, {} on the wire",
                    replies.len(),
                    leaf.deliveries.len(),
                    leaf.wire.len()
                );
                let to = self.intent.describe(q);
                self.flag(Kind::ArpNotAnswered, p, to, detail, &leaf);
            }
        }
    }

    fn arp_for_anything(&mut self, p: usize) {
        let port = self.intent.ports[p].clone();
        let members: BTreeSet<u64> = self.intent.nets[port.net]
            .members
            .iter()
            .map(|m| self.intent.ports[*m].ip)
            .collect();
        for leaf in self.send(p, arp(self.intent, p, None)) {
            self.common(p, &leaf, "ARP request for any address");
            let origin = leaf.origin.clone().unwrap_or_else(Ranges::empty);
            for (h, o, _) in &leaf.deliveries {
                if self.port_at(*h, *o) != Some(p) {
                    let to = self.where_(*h, *o);
                    let detail =
                        "an ARP request went on to another port instead of being answered".to_string();
                    self.flag(Kind::Misdelivery, p, to, detail, &leaf);
                } else if !members.iter().any(|m| origin == Ranges::point(*m)) {
                    let sample = origin.sample(&[]).map_or("?".into(), ip_text);
                    let detail = format!("answered ARP for {sample}, which no member of the network has");
                    self.flag(Kind::ArpNotAnswered, p, "the sender".into(), detail, &leaf);
                }
            }
        }
    }

    fn broadcasts(&mut self, p: usize, members: &[usize]) {
        let port = self.intent.ports[p].clone();
        let cidr = self.intent.nets[port.net].cidr;
        let want: BTreeSet<usize> = members
            .iter()
            .copied()
            .filter(|q| self.intent.ports[*q].ofport.is_some())
            .collect();
        for dst in [u64::from(u32::from(cidr.broadcast())), 0xffff_ffff] {
            let mut pkt = frame(self.intent, p, BROADCAST_MAC);
            pkt.ip_dst = dst;
            let what = format!("broadcast to {}", ip_text(dst));
            for leaf in self.send(p, pkt) {
                self.common(p, &leaf, &what);
                if let Some(detail) = self.not_exactly(&leaf, &want, &what) {
                    self.flag(Kind::BroadcastWrong, p, "the network".into(), detail, &leaf);
                }
            }
        }
    }

    /// A frame to any address: delivered only within the network, and to
    /// a member only for its own address (routers take the rest).
    fn any_destination(&mut self, p: usize, eth_dst: u64) {
        let port = self.intent.ports[p].clone();
        let cidr = self.intent.nets[port.net].cidr;
        let what = format!("IPv4 to any address via {}", mac_text(eth_dst));
        let pkt = to_any(frame(self.intent, p, eth_dst));
        for leaf in self.send(p, pkt) {
            self.common(p, &leaf, &what);
            let origin = leaf.origin.clone().unwrap_or_else(Ranges::empty);
            for (h, o, k) in &leaf.deliveries {
                let Some(q) = self.port_at(*h, *o) else { continue };
                let dst = &self.intent.ports[q];
                if dst.net != port.net || q == p {
                    continue;
                }
                let own = Ranges::point(dst.ip);
                let broadcast = Ranges::point(u64::from(u32::from(cidr.broadcast())));
                let rest = origin
                    .subtract(&own)
                    .subtract(&broadcast)
                    .subtract(&Ranges::point(0xffff_ffff));
                if !dst.router && !rest.is_empty() {
                    let sample = rest.sample(&[]).map_or("?".into(), ip_text);
                    let to = self.intent.describe(q);
                    self.flag(
                        Kind::Misdelivery,
                        p,
                        to,
                        format!("{what}: a packet for {sample} reached it"),
                        &leaf,
                    );
                } else if (k.eth_src, k.ip_src) != (port.mac, port.ip) {
                    let detail = format!(
                        "{what}: arrived from {} {}",
                        mac_text(k.eth_src),
                        ip_text(k.ip_src)
                    );
                    let to = self.intent.describe(q);
                    self.flag(Kind::SourceNotRestored, p, to, detail, &leaf);
                }
            }
        }
    }

    /// Frames the port has no right to send: each must reach nobody.
    fn forged(&mut self, p: usize, members: &[usize]) {
        let port = self.intent.ports[p].clone();
        let cidr = self.intent.nets[port.net].cidr;
        let mut frames: Vec<(String, Pkt)> = Vec::new();
        let any = |pkt: Pkt| to_any(pkt);
        let base = || frame(self.intent, p, BROADCAST_MAC);

        let mut forged_mac = base();
        forged_mac.eth_src = FORGED_MAC;
        frames.push(("a forged source MAC".into(), any(forged_mac)));
        let used: BTreeSet<u64> = self
            .intent
            .ports
            .iter()
            .filter(|q| q.net == port.net)
            .map(|q| q.ip)
            .collect();
        let (first, last) = (
            u64::from(u32::from(cidr.addr)) + 1,
            u64::from(u32::from(cidr.broadcast())),
        );
        let unused = (first..last).find(|a| !used.contains(a));
        let mut src_ips: Vec<(String, u64)> = Vec::new();
        if let Some(q) = members.first() {
            src_ips.push(("another member's address".into(), self.intent.ports[*q].ip));
        }
        if let Some(u) = unused {
            src_ips.push(("an unused address of the network".into(), u));
        }
        if !port.router && !cidr.contains(Ipv4Addr::from(OUTSIDE_IP as u32)) {
            src_ips.push(("an address outside the network".into(), OUTSIDE_IP));
        }
        for (what, ip) in &src_ips {
            let mut pkt = base();
            pkt.ip_src = *ip;
            frames.push((format!("a forged source IP ({what} {})", ip_text(*ip)), any(pkt)));
        }
        if let Some(other) = self.other_tenant(p) {
            let o = self.intent.ports[other].clone();
            let mut pkt = base();
            pkt.eth_src = o.mac;
            pkt.ip_src = o.ip;
            frames.push((
                format!("the identity of {}", self.intent.describe(other)),
                any(pkt),
            ));
        }
        for (what, vlans) in [
            ("an 802.1Q header (VLAN 100)", vec![(0x8100u16, 100u16)]),
            ("a priority tag", vec![(0x8100, 0xa000)]),
            ("802.1ad over 802.1Q", vec![(0x88a8, 200), (0x8100, 100)]),
            ("two 802.1Q headers", vec![(0x8100, 7), (0x8100, 8)]),
        ] {
            let mut pkt = base();
            pkt.vlans = vlans.clone();
            frames.push((format!("own addresses behind {what}"), any(pkt.clone())));
            let mut tagged_arp = arp(self.intent, p, None);
            tagged_arp.vlans = vlans;
            frames.push((format!("an ARP request behind {what}"), tagged_arp));
        }
        for (what, spa) in src_ips
            .iter()
            .filter(|(_, ip)| cidr.contains(Ipv4Addr::from(*ip as u32)))
        {
            let mut pkt = arp(self.intent, p, None);
            pkt.arp_spa = *spa;
            frames.push((format!("ARP claiming {what} {}", ip_text(*spa)), pkt));
        }
        let mut sha = arp(self.intent, p, None);
        sha.arp_sha = FORGED_MAC;
        frames.push(("ARP with a forged sender MAC".into(), sha));
        for (what, eth_type) in [("IPv6", 0x86dd), ("ethertype 0x88b5", 0x88b5)] {
            let mut pkt = base();
            pkt.eth_type = eth_type;
            frames.push((what.into(), pkt));
        }
        for (what, pkt) in frames {
            self.report.counts.forged += 1;
            for leaf in self.send(p, pkt) {
                self.common(p, &leaf, &what);
                if !leaf.wire.is_empty() {
                    let detail = format!("{what}: crossed the physical switch");
                    self.flag(
                        Kind::ForgedFrameDelivered,
                        p,
                        "the physical switch".into(),
                        detail,
                        &leaf,
                    );
                }
                for (h, o, _) in &leaf.deliveries {
                    let to = self.where_(*h, *o);
                    self.flag(
                        Kind::ForgedFrameDelivered,
                        p,
                        to,
                        format!("{what}: delivered"),
                        &leaf,
                    );
                }
            }
        }
    }

    /// A port of another network with another MAC, on the same host if
    /// there is one.
    fn other_tenant(&self, p: usize) -> Option<usize> {
        let port = &self.intent.ports[p];
        // Its MAC must differ: a tenant may use one MAC in two networks.
        let others = || {
            (0..self.intent.ports.len())
                .filter(|q| self.intent.ports[*q].net != port.net && self.intent.ports[*q].mac != port.mac)
        };
        others()
            .find(|q| self.intent.ports[*q].host == port.host)
            .or_else(|| others().next())
    }
}

/// Where the interpreter delivers a plain IPv4 packet from `p` to `q`'s
/// address (the probe the OvS cross-check repeats).
pub fn reach_deliveries(net: &Net, intent: &Intent, p: usize, q: usize) -> BTreeSet<String> {
    let mut pkt = frame(intent, p, intent.ports[q].mac);
    pkt.ip_dst = intent.ports[q].ip;
    net.send(intent.ports[p].host, pkt)
        .iter()
        .flat_map(|leaf| leaf.deliveries.iter())
        .map(|(h, o, _)| match intent.at.get(&(*h, *o)) {
            Some(port) => intent.ports[*port].name.clone(),
            None => format!("OpenFlow port {o} on {}", intent.hosts[*h]),
        })
        .collect()
}

pub fn mac_text(m: u64) -> String {
    let b = m.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}
