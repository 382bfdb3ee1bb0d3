//! Random topologies for property tests of the compiled flows: hosts,
//! tenants with overlapping networks, and ports (some routers) spread over
//! the hosts. One file compiled into two test crates, the compiler's own
//! tests (`compile/tests.rs`) and `integration/tests/verify_compiled.rs`
//! (by `#[path]`), so it names the coordinator's types through the
//! including module: `Topology`, `KeyRange`, `PortKind`, `PortSpec`,
//! `mutate` and proptest's prelude must be in scope there.

use super::{mutate, prop, KeyRange, PortKind, PortSpec, Strategy, Topology};

/// One port to create: (tenant, network index, host index, last IP octet, router).
pub type PortPlan = (u8, u8, u8, u8, bool);

/// `hosts` hosts `h0`.., and the plan's ports on them, with their tenants
/// `t<tenant>` and networks `n<net>` (10.0.<net>.0/24 in every tenant).
pub fn build(hosts: u8, plan: &[PortPlan]) -> Topology {
    let mut topo = Topology::default();
    let keys = KeyRange("100.64.0.0/16".parse().unwrap());
    for h in 0..hosts {
        let ops = mutate::put_host(
            &topo,
            &format!("h{h}"),
            "up0",
            &format!("0a:00:00:00:00:{h:02x}"),
            (0, 0),
        )
        .unwrap();
        ops.iter().for_each(|op| topo.apply(op));
    }
    let mut next_id = 1;
    for (i, &(tenant, net, host, octet, router)) in plan.iter().enumerate() {
        let (t, n) = (format!("t{tenant}"), format!("n{net}"));
        if !topo.tenants.contains_key(&t) {
            let ops = mutate::create_tenant(&topo, &t).unwrap();
            ops.iter().for_each(|op| topo.apply(op));
        }
        if topo.network_by_name(&t, &n).is_none() {
            // Every tenant uses the same address blocks: overlap across tenants.
            let ops = mutate::create_network(&topo, &t, &n, &format!("10.0.{net}.0/24"), next_id).unwrap();
            next_id += 1;
            ops.iter().for_each(|op| topo.apply(op));
        }
        let spec = PortSpec {
            name: &format!("p{i}"),
            tenant: &t,
            network: &n,
            host: &format!("h{}", host % hosts),
            mac: &format!("02:00:00:00:{tenant:02x}:{octet:02x}"),
            ip: &format!("10.0.{net}.{octet}"),
            kind: if router { PortKind::Router } else { PortKind::Vm },
        };
        // Duplicates within a network are refused; the plan just skips them.
        if let Ok(ops) = mutate::create_port(&topo, &keys, &spec) {
            ops.iter().for_each(|op| topo.apply(op));
        }
    }
    topo
}

/// Host counts in `hosts` and plans of `ports` ports: up to three tenants,
/// two networks each, four host indexes, five addresses, 15 % routers.
pub fn plan(
    hosts: std::ops::Range<u8>,
    ports: std::ops::Range<usize>,
) -> impl Strategy<Value = (u8, Vec<PortPlan>)> {
    let port = (0u8..3, 0u8..2, 0u8..4, 1u8..6, prop::bool::weighted(0.15));
    (hosts, prop::collection::vec(port, ports))
}
