//! Properties of the compiler, checked by running the compiled tables.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::sim::{Body, Delivery, Packet, Sim, Vlan};
use super::*;
use crate::addr::Mac;
use crate::keys::KeyRange;
use crate::model::{PortKind, Topology};
use crate::mutate::{self, PortSpec};

#[path = "topology_plan.rs"]
mod topology_plan;
pub(super) use topology_plan::build;

pub(super) fn plan() -> impl Strategy<Value = (u8, Vec<topology_plan::PortPlan>)> {
    topology_plan::plan(1..5, 0..14)
}

pub(super) fn ip_packet(topo: &Topology, from: &str, dst: Ipv4Addr) -> Packet {
    let p = &topo.ports[from];
    Packet {
        eth_src: p.mac,
        eth_dst: Mac([2, 0xee, 0, 0, 0, 1]),
        vlans: vec![],
        body: Body::Ip { src: p.ip, dst },
    }
}

pub(super) fn arp_request(mac: Mac, spa: Ipv4Addr, tpa: Ipv4Addr) -> Packet {
    Packet {
        eth_src: mac,
        eth_dst: Mac([0xff; 6]),
        vlans: vec![],
        body: Body::Arp {
            op: 1,
            sha: mac,
            spa,
            tha: Mac([0; 6]),
            tpa,
        },
    }
}

/// 802.1Q VLAN 100, a priority tag (VID 0), 802.1ad over 802.1Q, and two
/// 802.1Q headers.
pub(super) fn tag_variants() -> Vec<Vec<Vlan>> {
    let q = |tci| Vlan { tpid: 0x8100, tci };
    let ad = |tci| Vlan { tpid: 0x88a8, tci };
    vec![
        vec![q(100)],
        vec![q(0x2000)],
        vec![ad(200), q(100)],
        vec![q(7), q(8)],
    ]
}

pub(super) fn names(deliveries: &[Delivery]) -> BTreeSet<String> {
    deliveries.iter().map(|d| d.port.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn unicast_reaches_exactly_the_same_network_owner((hosts, plan) in plan()) {
        let topo = build(hosts, &plan);
        let mut sim = Sim::new(&topo);
        for p in topo.ports.values() {
            let targets: BTreeSet<Ipv4Addr> = topo.ports.values().map(|q| q.ip).collect();
            for dst in targets {
                let got = sim.send(&p.name, ip_packet(&topo, &p.name, dst));
                let want: BTreeSet<String> = topo.ports_of_net(p.net)
                    .filter(|q| q.ip == dst && q.name != p.name)
                    .map(|q| q.name.clone()).collect();
                prop_assert_eq!(names(&got), want, "{} -> {}", p.name, dst);
                for d in &got {
                    let q = &topo.ports[&d.port];
                    prop_assert_eq!(&d.packet.body, &Body::Ip { src: p.ip, dst: q.ip });
                    prop_assert_eq!(d.packet.eth_src, p.mac);
                }
            }
        }
    }

    #[test]
    fn spoofed_sources_reach_nobody((hosts, plan) in plan()) {
        let topo = build(hosts, &plan);
        let mut sim = Sim::new(&topo);
        for p in topo.ports.values() {
            for q in topo.ports.values() {
                let mut forged_mac = ip_packet(&topo, &p.name, q.ip);
                forged_mac.eth_src = Mac([2, 0xbb, 0, 0, 0, 9]);
                prop_assert!(sim.send(&p.name, forged_mac).is_empty());
                if p.kind == PortKind::Vm {
                    let mut forged_ip = ip_packet(&topo, &p.name, q.ip);
                    forged_ip.body = Body::Ip { src: Ipv4Addr::new(10, 0, 0, 250), dst: q.ip };
                    prop_assert!(sim.send(&p.name, forged_ip).is_empty());
                }
            }
        }
    }

    #[test]
    fn vlan_tagged_frames_reach_nobody_and_never_cross_the_wire((hosts, plan) in plan()) {
        let topo = build(hosts, &plan);
        let mut sim = Sim::new(&topo);
        for p in topo.ports.values() {
            let mut frames: Vec<Packet> = topo.ports.values().map(|q| ip_packet(&topo, &p.name, q.ip)).collect();
            frames.push(ip_packet(&topo, &p.name, topo.networks[&p.net].cidr.broadcast()));
            frames.push(arp_request(p.mac, p.ip, Ipv4Addr::new(10, 0, 0, 1)));
            for frame in frames {
                for vlans in tag_variants() {
                    let tagged = Packet { vlans: vlans.clone(), ..frame.clone() };
                    let got = sim.send(&p.name, tagged);
                    prop_assert!(got.is_empty(), "{} {vlans:?}: delivered to {:?}", p.name, names(&got));
                }
            }
        }
        prop_assert!(sim.wire.is_empty(), "a tagged frame crossed the wire: {:?}", sim.wire);
    }

    #[test]
    fn arp_is_answered_locally_from_the_topology((hosts, plan) in plan()) {
        let topo = build(hosts, &plan);
        let mut sim = Sim::new(&topo);
        for p in topo.ports.values() {
            for tpa in (1..7).map(|o| Ipv4Addr::new(10, 0, 0, o)).chain((1..7).map(|o| Ipv4Addr::new(10, 0, 1, o))) {
                let request = Packet {
                    eth_src: p.mac,
                    eth_dst: Mac([0xff; 6]),
                    vlans: vec![],
                    body: Body::Arp { op: 1, sha: p.mac, spa: p.ip, tha: Mac([0; 6]), tpa },
                };
                let got = sim.send(&p.name, request);
                let owner = topo.ports_of_net(p.net).find(|q| q.ip == tpa);
                match owner {
                    Some(q) => {
                        prop_assert_eq!(got.len(), 1);
                        prop_assert_eq!(&got[0].port, &p.name);
                        prop_assert_eq!(got[0].packet.eth_src, q.mac);
                        let is_reply = matches!(got[0].packet.body, Body::Arp { op: 2, sha, spa, .. } if sha == q.mac && spa == tpa);
                        prop_assert!(is_reply);
                    }
                    None => prop_assert!(got.is_empty()),
                }
            }
        }
        prop_assert!(sim.wire.is_empty(), "ARP crossed the wire");
    }

    #[test]
    fn broadcast_reaches_every_other_member((hosts, plan) in plan()) {
        let topo = build(hosts, &plan);
        let mut sim = Sim::new(&topo);
        for p in topo.ports.values() {
            let bcast = topo.networks[&p.net].cidr.broadcast();
            for dst in [bcast, Ipv4Addr::BROADCAST] {
                let got = sim.send(&p.name, ip_packet(&topo, &p.name, dst));
                let want: BTreeSet<String> = topo.ports_of_net(p.net)
                    .filter(|q| q.name != p.name).map(|q| q.name.clone()).collect();
                prop_assert_eq!(names(&got), want.clone());
                prop_assert_eq!(got.len(), want.len(), "duplicate copies");
            }
        }
    }

    #[test]
    fn the_wire_sees_only_host_macs_and_keys((hosts, plan) in plan()) {
        let topo = build(hosts, &plan);
        let mut sim = Sim::new(&topo);
        for p in topo.ports.values().filter(|p| p.kind == PortKind::Vm) {
            for q in topo.ports.values().filter(|q| q.kind == PortKind::Vm) {
                sim.send(&p.name, ip_packet(&topo, &p.name, q.ip));
            }
        }
        let host_macs: BTreeSet<Mac> = topo.hosts.values().map(|h| h.mac).collect();
        let keys: BTreeSet<Ipv4Addr> = topo.ports.values().map(|p| p.key).chain(topo.bkeys.values().copied()).collect();
        for pkt in &sim.wire {
            prop_assert!(host_macs.contains(&pkt.eth_src) && host_macs.contains(&pkt.eth_dst), "{pkt:?}");
            let Body::Ip { src, dst } = pkt.body else { panic!("non-IP on the wire") };
            prop_assert!(keys.contains(&src) && keys.contains(&dst), "{pkt:?}");
        }
    }

    #[test]
    fn keys_are_unique_per_host_and_compile_is_deterministic((hosts, plan) in plan()) {
        let topo = build(hosts, &plan);
        let mut per_host: BTreeMap<&str, Vec<Ipv4Addr>> = BTreeMap::new();
        for p in topo.ports.values() {
            per_host.entry(&p.host).or_default().push(p.key);
        }
        for ((h, _), key) in &topo.bkeys {
            per_host.entry(h).or_default().push(*key);
        }
        for keys in per_host.values() {
            let unique: BTreeSet<_> = keys.iter().collect();
            prop_assert_eq!(unique.len(), keys.len());
        }
        for h in topo.hosts.keys() {
            let flows = compile_host(&topo, h);
            prop_assert_eq!(&flows, &compile_host(&topo.clone(), h));
            let mut unique = flows.clone();
            unique.dedup();
            prop_assert_eq!(unique.len(), flows.len(), "two parts produced the same flow");
        }
    }
}

/// Router ports: traffic with outside addresses crosses hosts rewritten on
/// the VM side only, and reaches the right VM back.
#[test]
fn router_traffic_is_rewritten_on_the_vm_side_only() {
    // p0: VM on h0; p1: router on h1, both in t0/n0.
    let topo = build(2, &[(0, 0, 0, 1, false), (0, 0, 1, 5, true)]);
    let (vm, router) = (&topo.ports["p0"], &topo.ports["p1"]);
    let outside = Ipv4Addr::new(8, 8, 8, 8);
    let mut sim = Sim::new(&topo);
    let mut out = ip_packet(&topo, "p0", outside);
    out.eth_dst = router.mac;
    let got = sim.send("p0", out);
    assert_eq!(names(&got), BTreeSet::from(["p1".to_string()]));
    assert_eq!(
        got[0].packet.body,
        Body::Ip {
            src: vm.ip,
            dst: outside
        }
    );
    let wire = sim.wire.last().unwrap().clone();
    assert_eq!(wire.eth_dst, router.mac, "router side is not rewritten");
    assert_eq!(
        wire.body,
        Body::Ip {
            src: vm.key,
            dst: outside
        }
    );

    let back = Packet {
        eth_src: router.mac,
        eth_dst: vm.mac,
        vlans: vec![],
        body: Body::Ip {
            src: outside,
            dst: vm.ip,
        },
    };
    let got = sim.send("p1", back);
    assert_eq!(names(&got), BTreeSet::from(["p0".to_string()]));
    assert_eq!(
        got[0].packet.body,
        Body::Ip {
            src: outside,
            dst: vm.ip
        }
    );
    assert_eq!(got[0].packet.eth_src, router.mac);

    // The router resolves the VM with an outside address as sender IP.
    let arp = |spa| Packet {
        eth_src: router.mac,
        eth_dst: Mac([0xff; 6]),
        vlans: vec![],
        body: Body::Arp {
            op: 1,
            sha: router.mac,
            spa,
            tha: Mac([0; 6]),
            tpa: vm.ip,
        },
    };
    let got = sim.send("p1", arp(outside));
    assert!(
        matches!(got[..], [ref d] if d.port == "p1" && d.packet.eth_src == vm.mac),
        "{got:?}"
    );
    assert!(
        sim.send("p1", arp(Ipv4Addr::new(10, 0, 0, 9))).is_empty(),
        "router ARP spoofing a VM address"
    );

    // A router may not use another address of its own network.
    let spoof = Packet {
        eth_src: router.mac,
        eth_dst: vm.mac,
        vlans: vec![],
        body: Body::Ip {
            src: Ipv4Addr::new(10, 0, 0, 9),
            dst: vm.ip,
        },
    };
    assert!(sim.send("p1", spoof).is_empty());
}

/// The paper's Table 1 layout: same keys may repeat on different hosts.
#[test]
fn keys_repeat_across_hosts_but_not_within_one() {
    let topo = build(
        2,
        &[
            (0, 0, 0, 1, false),
            (0, 0, 1, 2, false),
            (0, 0, 0, 3, false),
            (0, 0, 1, 4, false),
        ],
    );
    let key = |p: &str| topo.ports[p].key;
    assert_eq!(key("p0"), key("p1"));
    assert_ne!(key("p0"), key("p2"));
}

/// Without its VLAN drop flow the pipeline carried a tagged frame across
/// hosts, tag and all (the hole the drop flow closes): the interpreter sees
/// VLAN headers as OvS does.
#[test]
fn without_the_vlan_drop_a_tagged_frame_crosses_hosts_tagged() {
    let topo = build(2, &[(0, 0, 0, 1, false), (0, 0, 1, 2, false)]);
    let tagged = |sim: &mut Sim| {
        let mut pkt = ip_packet(&topo, "p0", topo.ports["p1"].ip);
        pkt.vlans = vec![Vlan {
            tpid: 0x8100,
            tci: 100,
        }];
        sim.send("p0", pkt)
    };
    let mut sim = Sim::new(&topo);
    assert!(tagged(&mut sim).is_empty());
    let mut leaky = Sim::new(&topo);
    leaky.remove_flows(|f| f.matches.contains(&Match::Tagged));
    let got = tagged(&mut leaky);
    assert_eq!(names(&got), BTreeSet::from(["p1".to_string()]));
    assert_eq!(
        got[0].packet.vlans,
        vec![Vlan {
            tpid: 0x8100,
            tci: 100
        }]
    );
    assert_eq!(leaky.wire[0].vlans.len(), 1, "the tag crossed the wire");
}

/// A partition between two groups of a network cuts unicast, ARP and
/// broadcast between exactly the pairs across the groups, on every host,
/// and leaves every other pair as it was.
#[test]
fn a_partition_cuts_exactly_the_pairs_across_its_groups() {
    proptest!(ProptestConfig::with_cases(200), |((hosts, plan) in plan(), split in 0u8..8)| {
        let topo = build(hosts, &plan);
        let ports: Vec<&crate::model::Port> = topo.ports.values().collect();
        let a: BTreeSet<String> = ports.iter().enumerate().filter(|(i, _)| (*i as u8 + split).is_multiple_of(3)).map(|(_, p)| p.name.clone()).collect();
        let b: BTreeSet<String> = ports.iter().enumerate().filter(|(i, _)| (*i as u8 + split) % 3 == 1).map(|(_, p)| p.name.clone()).collect();
        let nets: Vec<_> = topo.networks.keys().copied().collect();
        let cut = partition(&topo, &nets, &a, &b);
        let mut before = Sim::new(&topo);
        let mut after = Sim::new(&topo);
        for (host, flows) in &cut {
            after.add_flows(host, flows);
        }
        let across = |p: &str, q: &str| (a.contains(p) && b.contains(q)) || (b.contains(p) && a.contains(q));
        for p in topo.ports.values() {
            let dsts: BTreeSet<Ipv4Addr> = topo.ports.values().map(|q| q.ip).collect();
            let bcast = topo.networks[&p.net].cidr.broadcast();
            for dst in dsts.into_iter().chain([bcast, Ipv4Addr::BROADCAST]) {
                let want: BTreeSet<String> = names(&before.send(&p.name, ip_packet(&topo, &p.name, dst)))
                    .into_iter().filter(|q| !across(&p.name, q)).collect();
                let got = names(&after.send(&p.name, ip_packet(&topo, &p.name, dst)));
                prop_assert_eq!(got, want, "{} -> {}", p.name, dst);
            }
            for q in topo.ports_of_net(p.net) {
                let ask = arp_request(p.mac, p.ip, q.ip);
                let answered = !after.send(&p.name, ask.clone()).is_empty();
                let before_answered = !before.send(&p.name, ask).is_empty();
                prop_assert_eq!(answered, before_answered && !across(&p.name, &q.name), "ARP {} for {}", p.name, q.name);
            }
        }
    });
}
