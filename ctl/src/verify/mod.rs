//! `ctl verify isolation`: proves on a running deployment, without sending
//! a packet to any guest, that the flows OvS really has installed keep
//! tenants apart. Every agent hands over its bridge's flows and port
//! numbers; an interpreter of those flows (`exec`) follows every frame a
//! tenant could send (`probes`) across the hosts, and the topology
//! (`intent`) says what should have happened. A sample of the probes is
//! traced again by OvS itself (`ofproto/trace`) to check the interpreter.

mod exec;
mod hub;
mod intent;
mod ofp;
mod probes;
mod ranges;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use crate::client::Operator;
use dclab_flows::{render, PortMap};
use dclab_proto::v1;
use serde_json::json;

use crate::output::Format;
use crate::trace::{self, Topo, TraceArgs};
pub use exec::{Bridge, Net};
pub use intent::Intent;
pub use probes::{Checker, Kind, Report, Violation};

type Client = Operator;

#[derive(Debug, clap::Subcommand)]
pub enum VerifyCommand {
    /// Check the installed flows of every host against the topology: no delivery across networks,
    /// no forged or VLAN-tagged frame delivered, no tenant header on the physical wire, every pair of
    /// a network reachable, ARP and broadcast right. Exits 1 when anything is wrong.
    Isolation {
        /// Only frames sent by this tenant's ports (they are still followed everywhere).
        #[arg(long)]
        tenant: Option<String>,
        /// How many probes to trace again with OvS's own ofproto/trace, to check the interpreter.
        #[arg(long, default_value_t = 12)]
        crosscheck: usize,
    },
}

pub async fn run(mut client: Client, cmd: VerifyCommand, format: Format) -> anyhow::Result<()> {
    let VerifyCommand::Isolation { tenant, crosscheck } = cmd;
    let started = Instant::now();
    let topo = Topo::fetch(&mut client).await?;
    if let Some(t) = &tenant {
        anyhow::ensure!(
            topo.networks.iter().any(|n| &n.tenant == t),
            "tenant {t:?} has no networks; `ctl tenant ls` lists the tenants"
        );
    }
    let dumps = dump_all(&mut client, &topo.hosts).await?;
    let (net, intent, mut report) = build(&topo, &dumps)?;
    let mut checker = Checker {
        net: &net,
        intent: &intent,
        report: std::mem::take(&mut report),
    };
    for p in 0..intent.ports.len() {
        if tenant.as_ref().is_none_or(|t| &intent.ports[p].tenant == t) {
            checker.check_port(p);
        }
    }
    let mut report = checker.report;
    let checked = crosscheck_with_ovs(
        &mut client,
        &topo,
        &net,
        &intent,
        &mut report,
        crosscheck,
        tenant.as_deref(),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    print(&report, &topo, checked, seconds, format);
    crate::exit_with(if report.violations.is_empty() { 0 } else { 1 })
}

async fn dump_all(client: &mut Client, hosts: &[v1::Host]) -> anyhow::Result<Vec<v1::FlowDump>> {
    let calls = hosts.iter().map(|h| {
        let mut c = client.clone();
        let host = h.id.clone();
        async move {
            c.dump_flows(v1::DumpFlowsRequest { host: host.clone() })
                .await
                .map(|r| r.into_inner())
                .map_err(|s| anyhow::anyhow!("host {host}: {}", s.message()))
        }
    });
    let results = futures::future::join_all(calls).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "cannot read the installed flows of every host, so isolation cannot be verified: {}",
        failed.join("; ")
    );
    Ok(results.into_iter().map(|r| r.expect("checked")).collect())
}

/// The bridges and the intent from the hosts' dumps; flows the
/// interpreter does not understand are violations of their own.
pub fn build(topo: &Topo, dumps: &[v1::FlowDump]) -> anyhow::Result<(Net, Intent, Report)> {
    let mut report = Report::default();
    let mut bridges = Vec::with_capacity(topo.hosts.len());
    let mut ofports = Vec::with_capacity(topo.hosts.len());
    for host in &topo.hosts {
        let empty = v1::FlowDump::default();
        let dump = dumps.iter().find(|d| d.host == host.id).unwrap_or(&empty);
        let (flows, unknown) = ofp::parse_dump(&dump.flows);
        for u in unknown {
            report.add(Violation {
                kind: Kind::UninterpretableFlow,
                from: host.id.clone(),
                to: "-".into(),
                detail: u.why,
                flows: vec![format!("{}: {}", host.id, u.text)],
            });
        }
        let mut ports: Vec<u32> = dump.ports.iter().map(|p| p.ofport).collect();
        ports.push(ofp::LOCAL_PORT);
        let names: HashMap<String, u32> = dump
            .ports
            .iter()
            .map(|p| {
                let name = if p.iface_id.is_empty() {
                    &p.interface
                } else {
                    &p.iface_id
                };
                (name.clone(), p.ofport)
            })
            .collect();
        ofports.push(names);
        let mac = ofp::mac(&host.mac).unwrap_or(0);
        bridges.push(Bridge::new(
            host.id.clone(),
            mac,
            flows,
            dump.uplink_ofport,
            ports,
        ));
    }
    let intent = Intent::new(&topo.hosts, &topo.networks, &topo.ports, &ofports)?;
    Ok((Net::new(bridges), intent, report))
}

/// Traces up to `n` same-network pairs again with OvS itself and compares
/// where the packet ends; returns how many were compared.
async fn crosscheck_with_ovs(
    client: &mut Client,
    topo: &Topo,
    net: &Net,
    intent: &Intent,
    report: &mut Report,
    n: usize,
    tenant: Option<&str>,
) -> anyhow::Result<usize> {
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut seen_hosts = BTreeSet::new();
    for (p, port) in intent.ports.iter().enumerate() {
        if port.ofport.is_none() || tenant.is_some_and(|t| t != port.tenant) {
            continue;
        }
        for &q in &intent.nets[port.net].members {
            // One pair per (source host, destination host) first: spread out.
            if q != p
                && intent.ports[q].ofport.is_some()
                && seen_hosts.insert((port.host, intent.ports[q].host))
            {
                pairs.push((p, q));
            }
        }
    }
    pairs.truncate(n);
    for &(p, q) in &pairs {
        let (src, dst) = (&intent.ports[p], &intent.ports[q]);
        let args = TraceArgs {
            from: src.name.clone(),
            to: std::net::Ipv4Addr::from(dst.ip as u32),
            proto: trace::Proto::Icmp,
            dport: None,
            src_mac: None,
            src_ip: None,
            dst_mac: None,
            vlan: None,
        };
        let packet = trace::packet::first(&topo.ports, &topo.networks, &args)?;
        let by_ovs = trace::follow(client, topo, &topo.hosts[src.host].id, packet).await?;
        let ovs: BTreeSet<String> = by_ovs.endings.iter().filter_map(|e| e.port.clone()).collect();
        let mine: BTreeSet<String> = probes::reach_deliveries(net, intent, p, q);
        if ovs != mine {
            report.add(Violation {
                kind: Kind::DisagreesWithOvs,
                from: intent.describe(p),
                to: intent.describe(q),
                detail: format!("ofproto/trace delivers to {ovs:?}, the interpreter to {mine:?}"),
                flows: vec![],
            });
        }
    }
    Ok(pairs.len())
}

fn print(report: &Report, topo: &Topo, crosschecked: usize, seconds: f64, format: Format) {
    let c = &report.counts;
    let violations: Vec<&Violation> = report.violations.values().collect();
    if format == Format::Json {
        let doc = json!({
            "ok": violations.is_empty(),
            "hosts": topo.hosts.len(),
            "networks": topo.networks.len(),
            "counts": c,
            "crosschecked_with_ovs": crosschecked,
            "seconds": seconds,
            "violations": violations,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("reports serialize")
        );
        return;
    }
    println!(
        "verified {} ports ({} not attached) in {} networks on {} hosts: {} probes, {} traces, {} same-network pairs, {} forged frames; {} cross-checked with ofproto/trace; {:.2} s",
        c.ports,
        c.unattached,
        topo.networks.len(),
        topo.hosts.len(),
        c.probes,
        c.traces,
        c.pairs,
        c.forged,
        crosschecked,
        seconds
    );
    if violations.is_empty() {
        println!("no violations");
        return;
    }
    println!("{} violations:", violations.len());
    for v in violations {
        println!("\n{}: {} -> {}", v.kind.label(), v.from, v.to);
        println!("    {}", v.detail);
        for f in &v.flows {
            println!("    {f}");
        }
    }
}

/// The host's compiled flows as its agent would install them: uplink on
/// OpenFlow port 1, its ports on 2, 3, ... in name order.
pub fn simulated_dump(host: &v1::Host, ports: &[v1::Port], flows: &[v1::Flow]) -> v1::FlowDump {
    let local: Vec<&v1::Port> = ports.iter().filter(|p| p.host == host.id).collect();
    let numbers: BTreeMap<String, i64> = local
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i as i64 + 2))
        .collect();
    let map = PortMap {
        uplink: Some(1),
        ports: numbers.clone(),
    };
    let rendered = render(flows.iter(), &map);
    let mut port_numbers: Vec<v1::PortNumber> = numbers
        .iter()
        .map(|(name, n)| v1::PortNumber {
            ofport: *n as u32,
            interface: format!("i-{name}"),
            iface_id: name.clone(),
        })
        .collect();
    port_numbers.push(v1::PortNumber {
        ofport: 1,
        interface: "up0".into(),
        iface_id: String::new(),
    });
    v1::FlowDump {
        host: host.id.clone(),
        flows: rendered.text,
        ports: port_numbers,
        uplink_ofport: 1,
    }
}
