//! `ctl bench lab`: a 6-node micro-VM lab on 2 simulated hosts of this
//! machine, timed through the coordinator: lab up, guests answering,
//! whole-lab snapshot create and restore (live and cold), lab down.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dclab_proto::v1::{self, topology_client::TopologyClient};
use serde_json::json;

use crate::lab::remote::{status_error, wait_ready, Client};
use crate::local::libvirtd::Libvirtd;
use crate::local::{Cluster, UpOptions};
use crate::output::{print, Format};

#[derive(clap::Args, Debug)]
pub struct LabBenchArgs {
    /// Nodes in the lab (spread over the 2 hosts).
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Snapshot create/restore rounds; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

const NAME: &str = "blab";
const LAB: &str = "bench";
/// The goal the issue sets, and the one published figure for comparison.
const RESTORE_GOAL_S: f64 = 10.0;
const CONTAINERLAB_RESTORE_S: f64 = 96.0;

pub fn run(args: LabBenchArgs, format: Format) -> anyhow::Result<()> {
    if args.nodes == 0 || args.rounds == 0 {
        bail!("--nodes and --rounds must be at least 1");
    }
    let _libvirtd = Libvirtd::ensure()?;
    let cluster = Cluster::up(&UpOptions::new(NAME, 2)).context("bringing up the local setup")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(measure(&cluster, &args));
    // The lab goes with the cluster: down removes its domains too.
    Cluster::down(NAME)?;
    let rows = result?;
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!(
            "lab of {} micro-VMs (1 vCPU, 192 MiB, TCG) on 2 simulated hosts; median of {} rounds\n",
            args.nodes, args.rounds
        );
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| vec![r.0.to_string(), format!("{:.2} s", r.1), r.2.clone()])
        .collect();
    let json = serde_json::Value::Object(rows.iter().map(|r| (r.0.to_string(), json!(r.1))).collect());
    print(format, &["metric", "seconds", "reference"], &table, json);
    Ok(())
}

fn lab_spec(nodes: usize) -> v1::LabSpec {
    v1::LabSpec {
        name: LAB.into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.0.0.0/24".into(),
        }],
        nodes: (0..nodes)
            .map(|i| v1::NodeSpec {
                name: format!("n{i}"),
                role: "node".into(),
                vcpus: 1,
                memory_mib: 192,
                image: "micro".into(),
                disks_mib: vec![],
                host: String::new(),
                interfaces: vec![v1::InterfaceSpec {
                    network: "lan".into(),
                    ip: String::new(),
                }],
                kind: v1::NodeKind::Vm.into(),
            })
            .collect(),
        ssh_keys: vec![],
    }
}

type Row = (&'static str, f64, String);

async fn measure(cluster: &Cluster, args: &LabBenchArgs) -> anyhow::Result<Vec<Row>> {
    let mut c: Client = TopologyClient::new(cluster.client_config()?.connect().await?);
    let spec = lab_spec(args.nodes);
    let started = Instant::now();
    c.apply_lab(v1::ApplyLabRequest { spec: Some(spec) })
        .await
        .map_err(status_error)?;
    wait_ready(&mut c, LAB, Duration::from_secs(900)).await?;
    let up = started.elapsed().as_secs_f64();
    all_answer(&mut c, args.nodes).await?;
    let answering = started.elapsed().as_secs_f64();
    let mut rows: Vec<Row> = vec![
        ("lab up: nodes running, rules applied", up, "-".into()),
        (
            "lab up: every guest answers on its console",
            answering,
            "-".into(),
        ),
    ];
    for cold in [false, true] {
        let mut creates = vec![];
        let mut restores = vec![];
        for round in 0..args.rounds {
            let name = format!("s{round}{}", if cold { "c" } else { "" });
            let req = v1::SnapshotRequest {
                lab: LAB.into(),
                name: name.clone(),
                cold,
                force: false,
            };
            let s = c
                .create_snapshot(req.clone())
                .await
                .map_err(status_error)?
                .into_inner();
            creates.push(s.micros as f64 / 1e6);
            let r = c
                .restore_snapshot(req.clone())
                .await
                .map_err(status_error)?
                .into_inner();
            restores.push(r.micros as f64 / 1e6);
            c.delete_snapshot(req).await.map_err(status_error)?;
        }
        all_answer(&mut c, args.nodes).await?;
        let kind = if cold { "cold" } else { "live" };
        rows.push((
            if cold {
                "snapshot create (cold)"
            } else {
                "snapshot create (live)"
            },
            median(&mut creates),
            format!("{kind}; all {} nodes, consistent across hosts", args.nodes),
        ));
        rows.push((
            if cold {
                "snapshot restore (cold)"
            } else {
                "snapshot restore (live)"
            },
            median(&mut restores),
            format!(
                "goal <= {RESTORE_GOAL_S:.0} s; containerlab ~{CONTAINERLAB_RESTORE_S:.0} s for one VM node"
            ),
        ));
    }
    let started = Instant::now();
    let down = c
        .delete_lab(v1::DeleteLabRequest { name: LAB.into() })
        .await
        .map_err(status_error)?
        .into_inner();
    if !down.pending_hosts.is_empty() {
        bail!("hosts {:?} did not confirm the lab's removal", down.pending_hosts);
    }
    rows.push((
        "lab down: every node removed",
        started.elapsed().as_secs_f64(),
        "-".into(),
    ));
    Ok(rows)
}

/// Every node's guest runs a command over its console.
async fn all_answer(c: &mut Client, nodes: usize) -> anyhow::Result<()> {
    for i in 0..nodes {
        let req = v1::ExecNodeRequest {
            lab: LAB.into(),
            node: format!("n{i}"),
            command: "true".into(),
            timeout_ms: 120_000,
        };
        let out = c.exec_node(req).await.map_err(status_error)?.into_inner();
        if out.exit_code != 0 {
            bail!("node n{i} answered `true` with {}: {}", out.exit_code, out.output);
        }
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
