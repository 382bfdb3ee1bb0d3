//! Profiling aid: builds a synthetic topology in-process and compiles every
//! host, printing the time. `cargo run --release --example compile_scale -- 3000 60000`
//! (the benchmark with the real process is `ctl bench control-plane`).

use std::collections::BTreeSet;
use std::time::Instant;

use dclab_coordinator::keys::KeyRange;
use dclab_coordinator::model::{PortKind, Topology};
use dclab_coordinator::mutate::{self, PortSpec};
use dclab_coordinator::rules::{Dirty, RuleHub};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (hosts, ports) = (
        args.first().copied().unwrap_or(1000),
        args.get(1).copied().unwrap_or(20_000),
    );
    let mut topo = Topology::default();
    let keys = KeyRange("100.64.0.0/16".parse().unwrap());
    let apply = |topo: &mut Topology, ops: Vec<dclab_coordinator::record::Op>| {
        ops.iter().for_each(|op| topo.apply(op))
    };
    for h in 0..hosts {
        let ops = mutate::put_host(
            &topo,
            &format!("h{h}"),
            "up0",
            &format!("0a:00:00:00:{:02x}:{:02x}", h / 256, h % 256),
            (0, 0),
        )
        .unwrap();
        apply(&mut topo, ops);
    }
    let mut seed = 12345u64;
    let mut rand = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut placed, mut tenant, mut next_id) = (0, 0, 1);
    while placed < ports {
        let size = (5 + rand(36)).min(ports - placed);
        let t = format!("t{tenant}");
        let ops = mutate::create_tenant(&topo, &t).unwrap();
        apply(&mut topo, ops);
        let ops = mutate::create_network(&topo, &t, "net", "10.0.0.0/22", next_id).unwrap();
        apply(&mut topo, ops);
        next_id += 1;
        let names: Vec<(String, String, String, String)> = (0..size)
            .map(|i| {
                let g = placed + i;
                (
                    format!("{t}-p{i}"),
                    format!("h{}", rand(hosts)),
                    format!("02:d0:00:{:02x}:{:02x}:{:02x}", g >> 16, (g >> 8) & 255, g & 255),
                    format!("10.0.{}.{}", i / 250, 1 + i % 250),
                )
            })
            .collect();
        let specs: Vec<PortSpec> = names
            .iter()
            .map(|(n, h, m, ip)| PortSpec {
                name: n,
                tenant: &t,
                network: "net",
                host: h,
                mac: m,
                ip,
                kind: PortKind::Vm,
            })
            .collect();
        let ops = mutate::create_ports(&topo, &keys, &specs).unwrap();
        apply(&mut topo, ops);
        placed += size;
        tenant += 1;
    }
    let hub = RuleHub::default();
    let started = Instant::now();
    hub.publish(&topo, &Dirty::everything(&topo), 1);
    let stats = hub.last_compile();
    let all: BTreeSet<&String> = topo.hosts.keys().collect();
    println!(
        "{hosts} hosts, {ports} ports: {} flows compiled in {:?} ({} hosts)",
        stats.flows,
        started.elapsed(),
        all.len()
    );
}
