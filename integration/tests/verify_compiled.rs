//! `ctl verify isolation`'s checker on flows the real compiler makes for
//! random topologies with overlapping addresses, rendered as agents
//! install them: it finds nothing wrong with them, and it finds (and
//! names) every kind of leak put into them by hand.

use std::collections::BTreeMap;

use dclab_coordinator::compile::compile_host;
use dclab_coordinator::keys::KeyRange;
use dclab_coordinator::model::{NetKind, PortKind, Topology};
use dclab_coordinator::mutate::{self, PortSpec};
use dclab_ctl::trace::Topo;
use dclab_ctl::verify::{self, Checker, Kind};
use dclab_proto::v1;
use proptest::prelude::*;

/// The compiler's own property tests plan topologies the same way.
#[path = "../../coordinator/src/compile/topology_plan.rs"]
mod topology_plan;
use topology_plan::{build as topology, PortPlan};

/// What ctl would fetch from the coordinator, and what agents would dump.
fn deployment(topo: &Topology) -> (Topo, Vec<v1::FlowDump>) {
    let hosts: Vec<v1::Host> = topo
        .hosts
        .values()
        .map(|h| v1::Host {
            id: h.id.clone(),
            mac: h.mac.to_string(),
            ..Default::default()
        })
        .collect();
    let networks: Vec<v1::Network> = topo
        .networks
        .values()
        .map(|n| v1::Network {
            tenant: n.tenant.clone(),
            name: n.name.clone(),
            cidr: n.cidr.to_string(),
            id: n.id,
            port_count: 0,
            kind: n.kind.to_wire().into(),
        })
        .collect();
    let ports: Vec<v1::Port> = topo
        .ports
        .values()
        .map(|p| {
            let net = &topo.networks[&p.net];
            v1::Port {
                name: p.name.clone(),
                tenant: net.tenant.clone(),
                network: net.name.clone(),
                host: p.host.clone(),
                mac: p.mac.to_string(),
                ip: p.ip.to_string(),
                kind: match p.kind {
                    PortKind::Vm => v1::PortKind::Vm,
                    PortKind::Router => v1::PortKind::Router,
                }
                .into(),
                key: p.key.to_string(),
            }
        })
        .collect();
    let dumps = hosts
        .iter()
        .map(|h| {
            let flows: Vec<v1::Flow> = compile_host(topo, &h.id)
                .iter()
                .map(|f| v1::Flow {
                    table: u32::from(f.table),
                    priority: u32::from(f.priority),
                    r#match: f.match_text(),
                    actions: f.actions_text(),
                })
                .collect();
            verify::simulated_dump(h, &ports, &flows)
        })
        .collect();
    (
        Topo {
            hosts,
            ports,
            networks,
        },
        dumps,
    )
}

/// Kinds of violation found, each with the flows it names.
fn violations(topo: &Topo, dumps: &[v1::FlowDump]) -> BTreeMap<Kind, Vec<String>> {
    let (net, intent, report) = verify::build(topo, dumps).unwrap();
    let mut checker = Checker {
        net: &net,
        intent: &intent,
        report,
    };
    for p in 0..intent.ports.len() {
        checker.check_port(p);
    }
    let mut out: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for v in checker.report.violations.values() {
        out.entry(v.kind).or_default().extend(v.flows.iter().cloned());
    }
    out
}

fn plan() -> impl Strategy<Value = (u8, Vec<PortPlan>)> {
    topology_plan::plan(2..5, 2..14)
}

/// The OpenFlow port `simulated_dump` gave a dclab port.
fn ofport(dump: &v1::FlowDump, port: &str) -> u32 {
    dump.ports
        .iter()
        .find(|p| p.iface_id == port)
        .map(|p| p.ofport)
        .unwrap()
}

fn add_flow(dumps: &mut [v1::FlowDump], host: &str, line: &str) {
    let dump = dumps.iter_mut().find(|d| d.host == host).unwrap();
    dump.flows.push_str(line);
    dump.flows.push('\n');
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn compiled_flows_pass_and_every_leak_is_named((hosts, plan) in plan()) {
        let topo = topology(hosts, &plan);
        let (view, dumps) = deployment(&topo);
        let clean = violations(&view, &dumps);
        prop_assert!(clean.is_empty(), "violations in compiled flows: {clean:#?}");

        // Two ports of different networks: a hand-added flow joins them.
        let pairs: Vec<(&v1::Port, &v1::Port)> = view.ports.iter()
            .flat_map(|a| view.ports.iter().map(move |b| (a, b)))
            .filter(|(a, b)| (a.tenant.as_str(), a.network.as_str()) != (b.tenant.as_str(), b.network.as_str()) && a.host == b.host)
            .collect();
        if let Some((a, b)) = pairs.first() {
            let dump = dumps.iter().find(|d| d.host == a.host).unwrap();
            let leak = format!("table=0,priority=500,in_port={},actions=output:{}", ofport(dump, &a.name), ofport(dump, &b.name));
            let mut leaky = dumps.clone();
            add_flow(&mut leaky, &a.host, &leak);
            let found = violations(&view, &leaky);
            let named = found.get(&Kind::CrossNetworkDelivery).is_some_and(|f| f.iter().any(|l| l.contains(&leak)));
            prop_assert!(named, "the cross-network flow was not named: {found:#?}");
        }

        // Without the VLAN drop, a tagged frame reaches the wire or a port.
        let mut untagged = dumps.clone();
        for d in &mut untagged {
            d.flows = d.flows.lines().filter(|l| !l.contains("vlan_tci")).map(|l| format!("{l}\n")).collect();
        }
        let some_port = view.ports.iter().any(|p| view.ports.iter().any(|q| q.name != p.name && q.tenant == p.tenant && q.network == p.network));
        if some_port {
            let found = violations(&view, &untagged);
            prop_assert!(found.contains_key(&Kind::ForgedFrameDelivered), "tagged frames were not caught: {found:#?}");
        }

        // A port whose classify flows are gone cannot reach its peers.
        if let Some(p) = view.ports.iter().find(|p| view.ports.iter().any(|q| q.name != p.name && q.tenant == p.tenant && q.network == p.network)) {
            let dump = dumps.iter().find(|d| d.host == p.host).unwrap();
            let in_port = format!("in_port={},", ofport(dump, &p.name));
            let mut cut = dumps.clone();
            for d in cut.iter_mut().filter(|d| d.host == p.host) {
                d.flows = d.flows.lines().filter(|l| !(l.contains("table=0,") && l.contains(&in_port))).map(|l| format!("{l}\n")).collect();
            }
            let found = violations(&view, &cut);
            prop_assert!(found.contains_key(&Kind::UnreachablePair), "an isolated port went unnoticed: {found:#?}");
        }
    }
}

/// A source left unrewritten, an ARP answer for a stranger and a flow the
/// interpreter cannot follow are each reported.
#[test]
fn wire_leaks_wrong_answers_and_unknown_actions_are_reported() {
    let topo = topology(
        2,
        &[(0, 0, 0, 1, false), (0, 0, 1, 2, false), (1, 0, 0, 1, false)],
    );
    let (view, dumps) = deployment(&topo);
    assert!(violations(&view, &dumps).is_empty());
    let p0 = ofport(dumps.iter().find(|d| d.host == "h0").unwrap(), "p0");
    let mut raw = dumps.clone();
    add_flow(&mut raw, "h0", "table=11,priority=300,ip,actions=output:1");
    assert!(violations(&view, &raw).contains_key(&Kind::TenantHeaderOnTheWire));
    let mut arp = dumps.clone();
    let reply = "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:02:00:00:00:00:09->eth_src,set_field:2->arp_op,IN_PORT";
    add_flow(
        &mut arp,
        "h0",
        &format!("table=20,priority=300,arp,arp_tpa=10.0.0.9,arp_op=1,actions={reply}"),
    );
    assert!(violations(&view, &arp).contains_key(&Kind::ArpNotAnswered));
    let mut odd = dumps.clone();
    add_flow(
        &mut odd,
        "h0",
        &format!("table=0,priority=500,in_port={p0},actions=ct(commit)"),
    );
    let found = violations(&view, &odd);
    assert!(
        found[&Kind::UninterpretableFlow]
            .iter()
            .any(|f| f.contains("ct(commit)")),
        "{found:#?}"
    );
}

/// A switch network of t0 with `count` members on `host`.
fn add_switch(topo: &mut Topology, host: &str, count: u8) {
    let keys = KeyRange("100.64.0.0/16".parse().unwrap());
    let id = topo.networks.keys().max().map_or(1, |m| m + 1);
    if !topo.tenants.contains_key("t0") {
        let ops = mutate::create_tenant(topo, "t0").unwrap();
        ops.iter().for_each(|op| topo.apply(op));
    }
    let net = mutate::NetworkSpec {
        tenant: "t0",
        name: "sw",
        cidr: "10.0.9.0/24",
        kind: NetKind::Switch,
    };
    let ops = mutate::create_network_of(topo, &net, id).unwrap();
    ops.iter().for_each(|op| topo.apply(op));
    for i in 1..=count {
        let spec = PortSpec {
            name: &format!("s{i}"),
            tenant: "t0",
            network: "sw",
            host,
            mac: &format!("02:5e:00:00:09:{i:02x}"),
            ip: &format!("10.0.9.{i}"),
            kind: PortKind::Vm,
        };
        let ops = mutate::create_port(topo, &keys, &spec).unwrap();
        ops.iter().for_each(|op| topo.apply(op));
    }
}

/// A switch network's members reaching each other with any addresses is
/// its intent, not a leak; a hub flow into another network, or a member
/// left out, is reported.
#[test]
fn switch_network_members_are_judged_as_a_hub() {
    let mut topo = topology(
        2,
        &[(0, 0, 0, 1, false), (0, 0, 1, 2, false), (1, 0, 0, 1, false)],
    );
    add_switch(&mut topo, "h0", 3);
    let (view, dumps) = deployment(&topo);
    let clean = violations(&view, &dumps);
    assert!(clean.is_empty(), "violations in compiled flows: {clean:#?}");
    let h0 = dumps.iter().find(|d| d.host == "h0").unwrap();
    let (s1, s2, p0) = (ofport(h0, "s1"), ofport(h0, "s2"), ofport(h0, "p0"));
    let mut into_lan = dumps.clone();
    add_flow(
        &mut into_lan,
        "h0",
        &format!("table=0,priority=500,in_port={s1},actions=output:{s2},output:{p0}"),
    );
    assert!(violations(&view, &into_lan).contains_key(&Kind::CrossNetworkDelivery));
    let mut short = dumps.clone();
    add_flow(
        &mut short,
        "h0",
        &format!("table=0,priority=500,in_port={s1},actions=output:{s2}"),
    );
    assert!(violations(&view, &short).contains_key(&Kind::HubWrong));
}
