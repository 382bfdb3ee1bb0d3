//! Switch networks: a hub of their members on one host, beside rewrite
//! networks that stay exactly as they were.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::sim::{Body, Packet, Sim};
use super::tests::{arp_request, build, ip_packet, names, plan, tag_variants};
use super::*;
use crate::addr::Mac;
use crate::keys::KeyRange;
use crate::model::{NetKind, PortKind, Topology};
use crate::mutate::{self, NetworkSpec, PortSpec};
use crate::record::Op;

fn keys() -> KeyRange {
    KeyRange("100.64.0.0/16".parse().unwrap())
}

fn apply(topo: &mut Topology, ops: Vec<Op>) {
    ops.iter().for_each(|op| topo.apply(op));
}

fn network(topo: &mut Topology, tenant: &str, name: &str, cidr: &str, kind: NetKind) {
    if !topo.tenants.contains_key(tenant) {
        apply(topo, mutate::create_tenant(topo, tenant).unwrap());
    }
    let id = topo.networks.keys().max().map_or(1, |m| m + 1);
    let spec = NetworkSpec {
        tenant,
        name,
        cidr,
        kind,
    };
    apply(topo, mutate::create_network_of(topo, &spec, id).unwrap());
}

fn port(topo: &mut Topology, tenant: &str, net: &str, name: &str, host: &str, i: u8) {
    let cidr = topo.network_by_name(tenant, net).unwrap().cidr;
    let ip = Ipv4Addr::from(u32::from(cidr.addr) + u32::from(i));
    let spec = PortSpec {
        name,
        tenant,
        network: net,
        host,
        mac: &format!("02:5e:00:00:{:02x}:{i:02x}", cidr.addr.octets()[2]),
        ip: &ip.to_string(),
        kind: PortKind::Vm,
    };
    apply(topo, mutate::create_port(topo, &keys(), &spec).unwrap());
}

fn hosts(n: u8) -> Topology {
    let mut topo = Topology::default();
    for h in 0..n {
        let mac = format!("0a:00:00:00:00:{h:02x}");
        let ops = mutate::put_host(&topo, &format!("h{h}"), "up0", &mac, (0, 0)).unwrap();
        apply(&mut topo, ops);
    }
    topo
}

/// Lab "lab": lan (rewrite) r0, r2 on h0 and r1 on h1; tunnel (switch)
/// s0, s1, s2 on h0.
fn nested_lab() -> Topology {
    let mut topo = hosts(2);
    network(&mut topo, "lab", "lan", "10.0.0.0/24", NetKind::Rewrite);
    network(&mut topo, "lab", "tunnel", "10.9.0.0/24", NetKind::Switch);
    for (i, (name, host)) in [("r0", "h0"), ("r1", "h1"), ("r2", "h0")].into_iter().enumerate() {
        port(&mut topo, "lab", "lan", name, host, i as u8 + 1);
    }
    for (i, name) in ["s0", "s1", "s2"].into_iter().enumerate() {
        port(&mut topo, "lab", "tunnel", name, "h0", i as u8 + 1);
    }
    topo
}

/// What an inner dclab and its nodes put on a tunnel network: host MACs
/// and mapping keys, ARP for other addresses, broadcasts, other ethertypes.
fn inner_frames(topo: &Topology, from: &str) -> Vec<Packet> {
    let me = &topo.ports[from];
    let inner_host = Mac([0x0a, 0x11, 0, 0, 0, 1]);
    let wire = Packet {
        eth_src: inner_host,
        eth_dst: Mac([0x0a, 0x11, 0, 0, 0, 2]),
        vlans: vec![],
        body: Body::Ip {
            src: "100.64.0.7".parse().unwrap(),
            dst: "100.64.0.9".parse().unwrap(),
        },
    };
    let other = |ethertype| Packet {
        body: Body::Other { ethertype },
        ..wire.clone()
    };
    vec![
        wire.clone(),
        ip_packet(topo, from, "192.168.77.2".parse().unwrap()),
        ip_packet(topo, from, Ipv4Addr::BROADCAST),
        arp_request(
            inner_host,
            "192.168.77.1".parse().unwrap(),
            "192.168.77.2".parse().unwrap(),
        ),
        arp_request(me.mac, me.ip, "10.9.0.2".parse().unwrap()),
        other(0x86dd),
        other(0x88cc),
    ]
}

fn switch_members(topo: &Topology, net: &str) -> BTreeSet<String> {
    let id = topo.network_by_name("lab", net).unwrap().id;
    topo.ports_of_net(id).map(|p| p.name.clone()).collect()
}

#[test]
fn a_switch_member_reaches_every_other_member_unchanged_and_nothing_else() {
    let topo = nested_lab();
    let mut sim = Sim::new(&topo);
    let members = switch_members(&topo, "tunnel");
    for from in &members {
        let others: BTreeSet<String> = members.iter().filter(|m| *m != from).cloned().collect();
        for frame in inner_frames(&topo, from) {
            let got = sim.send(from, frame.clone());
            assert_eq!(names(&got), others, "{from}: {frame:?}");
            assert_eq!(got.len(), others.len(), "duplicate copies");
            assert!(got.iter().all(|d| d.packet == frame), "rewritten: {got:?}");
            for vlans in tag_variants() {
                let tagged = Packet {
                    vlans,
                    ..frame.clone()
                };
                assert!(sim.send(from, tagged).is_empty(), "a tagged frame was carried");
            }
        }
    }
    assert!(
        sim.wire.is_empty(),
        "a switch network's frame crossed the wire: {:?}",
        sim.wire
    );
}

#[test]
fn nothing_reaches_a_switch_member_from_other_networks_or_the_wire() {
    let topo = nested_lab();
    let mut sim = Sim::new(&topo);
    let members = switch_members(&topo, "tunnel");
    let tunnel_ips: Vec<Ipv4Addr> = members.iter().map(|m| topo.ports[m].ip).collect();
    for from in ["r0", "r1", "r2"] {
        for dst in tunnel_ips
            .iter()
            .copied()
            .chain(["10.9.0.255".parse().unwrap(), Ipv4Addr::BROADCAST])
        {
            let got = names(&sim.send(from, ip_packet(&topo, from, dst)));
            assert!(got.is_disjoint(&members), "{from} -> {dst} reached {got:?}");
            let me = &topo.ports[from];
            assert!(
                sim.send(from, arp_request(me.mac, me.ip, dst)).is_empty(),
                "ARP for {dst} answered"
            );
        }
    }
    // Frames on the wire addressed with a member's key or the network's
    // broadcast key, as if from r1's host.
    let id = topo.network_by_name("lab", "tunnel").unwrap().id;
    let (h0, h1) = (topo.hosts["h0"].mac, topo.hosts["h1"].mac);
    let bkey = topo.bkeys[&("h0".to_string(), id)];
    for dst in members.iter().map(|m| topo.ports[m].key).chain([bkey]) {
        let pkt = Packet {
            eth_src: h1,
            eth_dst: h0,
            vlans: vec![],
            body: Body::Ip {
                src: topo.ports["r1"].key,
                dst,
            },
        };
        assert!(
            sim.arrive_from_wire("h0", pkt).is_empty(),
            "the wire reached a member via {dst}"
        );
    }
}

#[test]
fn rewrite_members_of_the_same_lab_are_unaffected() {
    let topo = nested_lab();
    let mut sim = Sim::new(&topo);
    let lan = ["r0", "r1", "r2"];
    for from in lan {
        for to in lan.iter().filter(|t| **t != from) {
            let q = &topo.ports[*to];
            let got = sim.send(from, ip_packet(&topo, from, q.ip));
            assert_eq!(names(&got), BTreeSet::from([to.to_string()]), "{from} -> {to}");
            assert_eq!(
                got[0].packet.body,
                Body::Ip {
                    src: topo.ports[from].ip,
                    dst: q.ip
                }
            );
            let me = &topo.ports[from];
            let answer = sim.send(from, arp_request(me.mac, me.ip, q.ip));
            assert!(
                matches!(&answer[..], [d] if d.port == from && d.packet.eth_src == q.mac),
                "{answer:?}"
            );
        }
        let want: BTreeSet<String> = lan
            .iter()
            .filter(|t| **t != from)
            .map(|t| t.to_string())
            .collect();
        assert_eq!(
            names(&sim.send(from, ip_packet(&topo, from, Ipv4Addr::BROADCAST))),
            want
        );
    }
    // The switch network adds flows only for its members, in classify.
    let flows = compile_host(&topo, "h0");
    let names_switch_port = |f: &&Flow| {
        let text = format!("{} {}", f.match_text(), f.actions_text());
        ["s0", "s1", "s2"]
            .iter()
            .any(|s| text.contains(&format!("port:{s}}}")))
    };
    let hub: Vec<&Flow> = flows.iter().filter(names_switch_port).collect();
    assert_eq!(hub.len(), 3, "{hub:?}");
    assert!(hub
        .iter()
        .all(|f| f.table == T_CLASSIFY && f.priority == hub::HUB_PRIORITY));
}

#[test]
fn a_lone_member_has_a_drop_flow() {
    let mut topo = hosts(1);
    network(&mut topo, "lab", "tunnel", "10.9.0.0/24", NetKind::Switch);
    port(&mut topo, "lab", "tunnel", "s0", "h0", 1);
    let flows = compile_host(&topo, "h0");
    let hub: Vec<&Flow> = flows
        .iter()
        .filter(|f| f.table == T_CLASSIFY && f.priority == hub::HUB_PRIORITY)
        .collect();
    assert_eq!(hub.len(), 1, "{hub:?}");
    assert_eq!(hub[0].match_text(), "in_port=${port:s0}");
    assert_eq!(hub[0].actions_text(), "drop");
    let frames = inner_frames(&topo, "s0");
    let mut sim = Sim::new(&topo);
    assert!(frames.into_iter().all(|f| sim.send("s0", f).is_empty()));
}

#[test]
fn a_partition_on_a_switch_network_cuts_only_the_pairs_across() {
    let topo = nested_lab();
    let id = topo.network_by_name("lab", "tunnel").unwrap().id;
    let (a, b) = (
        BTreeSet::from(["s0".to_string()]),
        BTreeSet::from(["s1".to_string()]),
    );
    let cut = partition(&topo, &[id], &a, &b);
    let mut sim = Sim::new(&topo);
    for (host, flows) in &cut {
        sim.add_flows(host, flows);
    }
    let reach = |sim: &mut Sim, from: &str| names(&sim.send(from, inner_frames(&topo, from)[0].clone()));
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(reach(&mut sim, "s0"), set(&["s2"]));
    assert_eq!(reach(&mut sim, "s1"), set(&["s2"]));
    assert_eq!(reach(&mut sim, "s2"), set(&["s0", "s1"]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Random rewrite topologies (overlapping addresses, several tenants)
    /// with a switch network of t0 on one host: its members reach exactly
    /// each other, nobody else reaches them, and every rewrite port still
    /// reaches exactly its own network's owner.
    #[test]
    fn switch_networks_stay_apart_from_everything_else(
        (hosts, plan) in plan(),
        home in 0u8..4,
        count in 1u8..5,
    ) {
        let mut topo = build(hosts, &plan);
        let home = format!("h{}", home % hosts);
        network(&mut topo, "t0", "sw", "10.0.9.0/24", NetKind::Switch);
        let members: BTreeSet<String> = (0..count).map(|i| format!("s{i}")).collect();
        for (i, m) in members.iter().enumerate() {
            port(&mut topo, "t0", "sw", m, &home, i as u8 + 1);
        }
        let mut sim = Sim::new(&topo);
        for m in &members {
            let others: BTreeSet<String> = members.iter().filter(|o| *o != m).cloned().collect();
            for frame in inner_frames(&topo, m) {
                prop_assert_eq!(names(&sim.send(m, frame)), others.clone());
            }
        }
        prop_assert!(sim.wire.is_empty());
        let targets: BTreeSet<Ipv4Addr> = topo.ports.values().map(|q| q.ip).chain([Ipv4Addr::BROADCAST]).collect();
        for p in topo.ports.values().filter(|p| !members.contains(&p.name)) {
            for &dst in &targets {
                let got = names(&sim.send(&p.name, ip_packet(&topo, &p.name, dst)));
                prop_assert!(got.is_disjoint(&members), "{} -> {} reached {:?}", p.name, dst, got);
                if dst != Ipv4Addr::BROADCAST {
                    let want: BTreeSet<String> = topo.ports_of_net(p.net)
                        .filter(|q| q.ip == dst && q.name != p.name)
                        .map(|q| q.name.clone()).collect();
                    prop_assert_eq!(got, want, "{} -> {}", p.name, dst);
                }
            }
        }
    }
}

/// The hub flow of `member` as the rule hub publishes it for `host`.
fn published_hub(state: &crate::coordinator::Coordinator, host: &str, member: &str) -> String {
    let rules = state.rules.current(host);
    let flow = rules
        .flows()
        .find(|f| f.table == T_CLASSIFY && f.match_text() == format!("in_port=${{port:{member}}}"))
        .unwrap_or_else(|| panic!("no hub flow for {member}"));
    flow.actions_text()
}

#[test]
fn a_member_joining_or_leaving_recompiles_the_other_members_flows() {
    let dir = tempfile::tempdir().unwrap();
    let state = crate::coordinator::Coordinator::open(dir.path(), keys()).unwrap();
    for (h, mac) in [("h1", "0a:00:00:00:00:01"), ("h2", "0a:00:00:00:00:02")] {
        state
            .store
            .mutate(|v| mutate::put_host(v.topo, h, "up0", mac, (0, 0)))
            .unwrap();
    }
    state
        .store
        .mutate(|v| mutate::create_tenant(v.topo, "lab"))
        .unwrap();
    let tunnel = NetworkSpec {
        tenant: "lab",
        name: "tunnel",
        cidr: "10.9.0.0/24",
        kind: NetKind::Switch,
    };
    state
        .store
        .mutate(|v| mutate::create_network_of(v.topo, &tunnel, v.next_net_id))
        .unwrap();
    let spec = |name: &'static str, host: &'static str, i: u8| PortSpec {
        name,
        tenant: "lab",
        network: "tunnel",
        host,
        mac: Box::leak(format!("02:5e:00:00:00:{i:02x}").into_boxed_str()),
        ip: Box::leak(format!("10.9.0.{i}").into_boxed_str()),
        kind: PortKind::Vm,
    };
    let create = |name, host, i| {
        state
            .store
            .mutate(|v| mutate::create_port(v.topo, v.keys, &spec(name, host, i)))
    };
    let same_as_full_compile = || {
        let topo = state.store.read(|t| t.clone());
        assert_eq!(state.rules.current("h1").sorted(), compile_host(&topo, "h1"));
    };
    create("s1", "h1", 1).unwrap();
    create("s2", "h1", 2).unwrap();
    assert_eq!(published_hub(&state, "h1", "s1"), "output:${port:s2}");
    create("s3", "h1", 3).unwrap();
    assert_eq!(
        published_hub(&state, "h1", "s1"),
        "output:${port:s2},output:${port:s3}"
    );
    same_as_full_compile();
    state.store.mutate(|v| mutate::delete_port(v.topo, "s2")).unwrap();
    assert_eq!(published_hub(&state, "h1", "s1"), "output:${port:s3}");
    assert_eq!(published_hub(&state, "h1", "s3"), "output:${port:s1}");
    same_as_full_compile();

    // The network lives on h1: a port on h2 is refused, alone or in a batch.
    let revision = state.store.revision();
    let err = create("s4", "h2", 4).unwrap_err();
    assert!(
        matches!(err, dclab_proto::ApiError::FailedPrecondition(_)),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "network tunnel of tenant lab is a switch network on host h1; its ports cannot be on host h2"
    );
    state.store.mutate(|v| mutate::delete_port(v.topo, "s1")).unwrap();
    state.store.mutate(|v| mutate::delete_port(v.topo, "s3")).unwrap();
    let batch = [spec("s5", "h2", 5), spec("s6", "h1", 6)];
    let err = state
        .store
        .mutate(|v| mutate::create_ports(v.topo, v.keys, &batch))
        .unwrap_err();
    assert!(err.to_string().contains("switch network on host h2"), "{err}");
    assert!(state.store.revision() > revision);
    // Empty again, it may move to another host.
    create("s7", "h2", 7).unwrap();
    assert_eq!(published_hub(&state, "h2", "s7"), "drop");
    assert!(state
        .rules
        .current("h1")
        .flows()
        .all(|f| !f.actions_text().contains("port:s")));
}
