//! `ctl bench lab`: a 6-node lab on 2 simulated hosts of this machine,
//! timed through the coordinator: lab up, nodes answering, whole-lab
//! snapshot create and restore (live and cold), lab down. Micro-VMs and
//! container nodes side by side, each in a lab of its own.

use std::time::{Duration, Instant};

use crate::client::Operator;
use anyhow::{bail, Context};
use dclab_proto::v1;
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
    /// Which kind of node: both side by side (default), or one.
    #[arg(long, value_enum, default_value = "both")]
    pub kind: KindArg,
    /// Image of the container nodes: micro (busybox) or debian (systemd; built on first use).
    #[arg(long, default_value = "micro")]
    pub container_image: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindArg {
    Both,
    Vm,
    Container,
}

const NAME: &str = "blab";
const LAB: &str = "bench";
/// The goal the issue sets, and the one published figure for comparison.
const RESTORE_GOAL_S: f64 = 10.0;
/// The container nodes' goal: every node running again after a restore.
const CONTAINER_RESTORE_GOAL_S: f64 = 5.0;
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
    let kinds: Vec<v1::NodeKind> = match args.kind {
        KindArg::Both => vec![v1::NodeKind::Vm, v1::NodeKind::Container],
        KindArg::Vm => vec![v1::NodeKind::Vm],
        KindArg::Container => vec![v1::NodeKind::Container],
    };
    let result = rt.block_on(async {
        let mut all = Vec::new();
        for kind in &kinds {
            all.push(measure(&cluster, &args, *kind).await?);
        }
        anyhow::Ok(all)
    });
    // The lab goes with the cluster: down removes its domains too.
    Cluster::down(NAME)?;
    let columns = result?;
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!(
            "labs of {} nodes (1 vCPU, 192 MiB; micro-VMs under TCG, containers with image {}) on 2 simulated hosts; median of {} rounds\n",
            args.nodes, args.container_image, args.rounds
        );
    }
    let names: Vec<&str> = kinds.iter().map(|k| kind_name(*k)).collect();
    let mut header = vec!["metric"];
    header.extend(&names);
    header.push("reference");
    let table: Vec<Vec<String>> = (0..columns[0].len())
        .map(|i| {
            let mut row = vec![columns[0][i].0.to_string()];
            row.extend(columns.iter().map(|c| format!("{:.2} s", c[i].1)));
            row.push(columns.last().expect("one kind at least")[i].2.clone());
            row
        })
        .collect();
    let json = serde_json::Value::Object(
        names
            .iter()
            .zip(&columns)
            .map(|(kind, rows)| {
                let values = rows.iter().map(|r| (r.0.to_string(), json!(r.1))).collect();
                (kind.to_string(), serde_json::Value::Object(values))
            })
            .collect(),
    );
    print(format, &header, &table, json);
    Ok(())
}

fn kind_name(kind: v1::NodeKind) -> &'static str {
    if kind == v1::NodeKind::Container {
        "container"
    } else {
        "micro-VM"
    }
}

fn lab_name(kind: v1::NodeKind) -> &'static str {
    if kind == v1::NodeKind::Container {
        "benchc"
    } else {
        LAB
    }
}

fn lab_spec(nodes: usize, kind: v1::NodeKind, container_image: &str) -> v1::LabSpec {
    let image = if kind == v1::NodeKind::Container {
        container_image
    } else {
        "micro"
    };
    v1::LabSpec {
        name: lab_name(kind).into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.0.0.0/24".into(),
            kind: v1::NetworkKind::Rewrite.into(),
        }],
        nodes: (0..nodes)
            .map(|i| v1::NodeSpec {
                name: format!("n{i}"),
                role: "node".into(),
                vcpus: 1,
                memory_mib: 192,
                image: image.into(),
                disks_mib: vec![],
                host: String::new(),
                interfaces: vec![v1::InterfaceSpec {
                    network: "lan".into(),
                    ip: String::new(),
                }],
                kind: kind.into(),
            })
            .collect(),
        ssh_keys: vec![],
    }
}

type Row = (&'static str, f64, String);

async fn measure(cluster: &Cluster, args: &LabBenchArgs, kind: v1::NodeKind) -> anyhow::Result<Vec<Row>> {
    let mut c: Client = Operator::new(cluster.client_config()?.connect().await?);
    let spec = lab_spec(args.nodes, kind, &args.container_image);
    let lab = lab_name(kind);
    let systemd = kind == v1::NodeKind::Container && args.container_image != "micro";

    let started = Instant::now();
    c.apply_lab(v1::ApplyLabRequest { spec: Some(spec) })
        .await
        .map_err(status_error)?;
    wait_ready(&mut c, lab, Duration::from_secs(900)).await?;
    let up = started.elapsed().as_secs_f64();
    all_answer(&mut c, lab, args.nodes, systemd).await?;
    let answering = started.elapsed().as_secs_f64();
    let mut rows: Vec<Row> = vec![
        ("lab up: nodes running, rules applied", up, "-".into()),
        ("lab up: every node answers lab exec", answering, "-".into()),
    ];
    for cold in [false, true] {
        let mut creates = vec![];
        let mut restores = vec![];
        for round in 0..args.rounds {
            let name = format!("s{round}{}", if cold { "c" } else { "" });
            let req = v1::SnapshotRequest {
                lab: lab.into(),
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
        all_answer(&mut c, lab, args.nodes, systemd).await?;
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
                "goal <= {RESTORE_GOAL_S:.0} s (VM), <= {CONTAINER_RESTORE_GOAL_S:.0} s (container); containerlab ~{CONTAINERLAB_RESTORE_S:.0} s for one VM node"
            ),
        ));
    }
    let started = Instant::now();
    let down = c
        .delete_lab(v1::DeleteLabRequest { name: lab.into() })
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

/// Every node runs a command (for a Debian container: once systemd is up).
async fn all_answer(c: &mut Client, lab: &str, nodes: usize, systemd: bool) -> anyhow::Result<()> {
    let command = if systemd {
        // Running is not booted: wait for the node's systemd to be up.
        "until [ \"$(systemctl is-system-running --wait 2>/dev/null)\" = running ]; do sleep 0.1; done"
    } else {
        "true"
    };
    for i in 0..nodes {
        let req = v1::ExecNodeRequest {
            lab: lab.into(),
            node: format!("n{i}"),
            command: command.into(),
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
