//! Probes of a switch network's member. Such a network is a hub on one
//! host: what a member sends, whatever its addresses or ethertype, must
//! reach every other attached member once, unchanged, and nothing else;
//! tagged frames reach nobody; nothing crosses the physical switch. That
//! its members reach each other is the intent, not a leak; `common`
//! still flags any delivery into another network.

use std::collections::BTreeSet;

use super::exec::Pkt;
use super::probes::{arp, frame, to_any, Checker, Kind, BROADCAST_MAC, FORGED_MAC};

/// The headers a hub must leave as they were.
fn headers(p: &Pkt) -> (u64, u64, u64, u64, u64, u64, u64) {
    (
        p.eth_src, p.eth_dst, p.eth_type, p.ip_src, p.arp_spa, p.arp_sha, p.arp_op,
    )
}

pub fn check_member(c: &mut Checker, p: usize, members: &[usize]) {
    let want: BTreeSet<usize> = members
        .iter()
        .copied()
        .filter(|q| c.intent.ports[*q].ofport.is_some())
        .collect();
    let mut frames: Vec<(String, Pkt)> = Vec::new();
    for &q in &want {
        let dst = &c.intent.ports[q];
        let mut pkt = frame(c.intent, p, dst.mac);
        pkt.ip_dst = dst.ip;
        frames.push((format!("IPv4 to member {}", c.intent.ports[q].name), pkt));
        c.report.counts.pairs += 1;
    }
    frames.push((
        "IPv4 to any address".into(),
        to_any(frame(c.intent, p, BROADCAST_MAC)),
    ));
    frames.push(("an ARP request for any address".into(), arp(c.intent, p, None)));
    let mut foreign = to_any(frame(c.intent, p, BROADCAST_MAC));
    foreign.eth_src = FORGED_MAC;
    foreign.ip_src = 0x6440_0007; // 100.64.0.7: an inner dclab's key
    frames.push(("another MAC and address".into(), foreign));
    for (what, eth_type) in [("IPv6", 0x86dd), ("ethertype 0x88b5", 0x88b5)] {
        let mut pkt = frame(c.intent, p, BROADCAST_MAC);
        pkt.eth_type = eth_type;
        frames.push((what.into(), pkt));
    }
    for (what, pkt) in frames {
        let mut tagged = pkt.clone();
        tagged.vlans = vec![(0x8100, 100)];
        carried(c, p, &want, &what, pkt);
        c.report.counts.forged += 1;
        for leaf in c.send(p, tagged) {
            c.common(p, &leaf, &what);
            for (h, o, _) in &leaf.deliveries {
                let to = c.where_(*h, *o);
                let detail = format!("{what} behind an 802.1Q header: delivered");
                c.flag(Kind::ForgedFrameDelivered, p, to, detail, &leaf);
            }
        }
    }
}

/// `pkt` from `p` reaches exactly `want`, each once, unchanged, and never
/// the wire.
fn carried(c: &mut Checker, p: usize, want: &BTreeSet<usize>, what: &str, pkt: Pkt) {
    let sent = headers(&pkt);
    for leaf in c.send(p, pkt) {
        c.common(p, &leaf, what);
        if let Some(detail) = c.not_exactly(&leaf, want, what) {
            c.flag(Kind::HubWrong, p, "the switch network".into(), detail, &leaf);
        }
        for (h, o, k) in &leaf.deliveries {
            if headers(k) != sent {
                let to = c.where_(*h, *o);
                c.flag(
                    Kind::HubWrong,
                    p,
                    to,
                    format!("{what}: delivered rewritten"),
                    &leaf,
                );
            }
        }
        if !leaf.wire.is_empty() {
            let detail = format!("{what}: a switch network's frame crossed the physical switch");
            c.flag(
                Kind::TenantHeaderOnTheWire,
                p,
                "the physical switch".into(),
                detail,
                &leaf,
            );
        }
    }
}
