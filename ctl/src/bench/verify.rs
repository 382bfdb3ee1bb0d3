//! `ctl bench verify`: `ctl verify isolation` at scale. A real coordinator
//! compiles every host's flows for a synthetic topology (simulated agents,
//! no OvS); each host's flows are rendered as its agent would install
//! them, with made-up port numbers, and the verifier checks them all.

use std::time::{Duration, Instant};

use crate::client::Operator;
use anyhow::Context;
use dclab_proto::v1;
use serde::Serialize;
use serde_json::json;

use super::control::agents::SimAgents;
use super::control::measure::{populate, wait_converged};
use super::control::plan::{host_name, plan, Rng};
use crate::local::Cluster;
use crate::output::{print, Format};
use crate::trace::Topo;
use crate::verify::{self, Checker};

#[derive(clap::Args, Debug)]
pub struct VerifyBenchArgs {
    /// Scales as HOSTS:PORTS, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "6:60,100:2000,1000:20000")]
    pub scales: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Row {
    hosts: usize,
    ports: usize,
    networks: usize,
    flows: usize,
    parse_s: f64,
    verify_s: f64,
    probes: usize,
    traces: usize,
    pairs: usize,
    violations: usize,
}

pub async fn run(args: VerifyBenchArgs, format: Format) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for scale in &args.scales {
        let (h, p) = scale
            .split_once(':')
            .and_then(|(h, p)| Some((h.parse::<usize>().ok()?, p.parse::<usize>().ok()?)))
            .filter(|(h, p)| *h > 0 && p >= h)
            .with_context(|| format!("scale {scale:?} is not HOSTS:PORTS with PORTS >= HOSTS"))?;
        rows.push(scale_run(h, p).await?);
    }
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!("ctl verify isolation on compiled flows (real coordinator, simulated agents, no packets)\n");
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("{} / {}", r.hosts, r.ports),
                r.networks.to_string(),
                r.flows.to_string(),
                format!("{:.2} s", r.parse_s),
                format!("{:.2} s", r.verify_s),
                r.probes.to_string(),
                r.traces.to_string(),
                r.pairs.to_string(),
                r.violations.to_string(),
                if r.ports <= 60 {
                    "goal <= 10 s at 60 ports / 6 hosts"
                } else {
                    "-"
                }
                .to_string(),
            ]
        })
        .collect();
    let headers = [
        "hosts / ports",
        "networks",
        "flows",
        "parse",
        "verify",
        "probes",
        "traces",
        "pairs",
        "violations",
        "reference",
    ];
    print(
        format,
        &headers,
        &table,
        json!({"machine": super::machine_line(), "scales": rows}),
    );
    Ok(())
}

async fn scale_run(hosts: usize, ports: usize) -> anyhow::Result<Row> {
    let names: Vec<String> = (0..hosts).map(host_name).collect();
    eprintln!("{hosts} hosts / {ports} ports: starting the coordinator");
    let for_cluster = names.clone();
    let cluster =
        tokio::task::spawn_blocking(move || Cluster::coordinator_only("bvf", &for_cluster, true)).await??;
    let result = measure(&cluster, &names, ports).await;
    let name = cluster.name().to_string();
    tokio::task::spawn_blocking(move || Cluster::down(&name)).await??;
    result
}

async fn measure(cluster: &Cluster, names: &[String], ports: usize) -> anyhow::Result<Row> {
    let url = cluster.coordinator_url().context("coordinator url")?.to_string();
    let configs = names
        .iter()
        .map(|h| {
            Ok((
                h.clone(),
                dclab_runtime::net::ClientConfig::new(url.clone(), None)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut c = Operator::new(cluster.client_config()?.connect().await?).max_decoding_message_size(256 << 20);
    let agents = SimAgents::start(configs);
    let result = async {
        wait_converged(&mut c, Duration::from_secs(120)).await?;
        let mut rng = Rng::new(names.len() as u64 * 7 + ports as u64);
        let tenants = plan(names.len(), ports, &mut rng);
        eprintln!("creating {} tenants and {ports} ports", tenants.len());
        populate(&mut c, &tenants).await?;
        wait_converged(&mut c, Duration::from_secs(600)).await?;
        let topo = Topo::fetch(&mut c).await?;
        let mut dumps = Vec::with_capacity(names.len());
        let mut flows = 0;
        for host in &topo.hosts {
            let rules = c
                .get_rules(v1::GetRulesRequest {
                    host: host.id.clone(),
                })
                .await?
                .into_inner();
            flows += rules.flows.len();
            dumps.push(verify::simulated_dump(host, &topo.ports, &rules.flows));
        }
        eprintln!("verifying {} flows", flows);
        let started = Instant::now();
        let (net, intent, report) = verify::build(&topo, &dumps)?;
        let parse_s = started.elapsed().as_secs_f64();
        let mut checker = Checker {
            net: &net,
            intent: &intent,
            report,
        };
        for p in 0..intent.ports.len() {
            checker.check_port(p);
        }
        let verify_s = started.elapsed().as_secs_f64() - parse_s;
        let r = checker.report;
        anyhow::Ok(Row {
            hosts: names.len(),
            ports,
            networks: topo.networks.len(),
            flows,
            parse_s,
            verify_s,
            probes: r.counts.probes,
            traces: r.counts.traces,
            pairs: r.counts.pairs,
            violations: r.violations.len(),
        })
    }
    .await;
    agents.stop();
    result
}
