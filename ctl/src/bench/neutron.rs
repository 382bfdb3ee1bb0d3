//! `ctl bench neutron`: Neutron port create to "agent applied" on a compute
//! node, in installed OpenStack labs one after another: a lab installed
//! with `neutron_backend = dclab` beside one with Neutron's own agent.
//! The timing runs inside the compute node (playbooks/openstack/files/
//! dclab-neutron-bench, which the identity chapter installs on every node),
//! so no exec round trip is in the figure.

use std::time::Duration;

use anyhow::{bail, Context};
use dclab_proto::v1;
use serde::{Deserialize, Serialize};

use super::quantile;
use crate::lab::remote::{status_error, Client};
use crate::output::{print, Format};

#[derive(clap::Args, Debug)]
pub struct NeutronBenchArgs {
    /// Installed OpenStack labs to measure, in this order (e.g. one with
    /// `--var neutron_backend=dclab`, one without).
    #[arg(required = true)]
    pub labs: Vec<String>,
    /// Ports created, one after another, per lab.
    #[arg(long, default_value_t = 50)]
    pub ports: usize,
    /// The compute node the ports are bound to.
    #[arg(long, default_value = "compute1")]
    pub node: String,
}

/// Installed on every node by the identity chapter, beside dclab-os-check.
const BENCH: &str = "/usr/local/bin/dclab-neutron-bench";
/// Below ExecNode's ceiling; 50 ports take 1 to 3 minutes.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
struct Report {
    backend: String,
    host: String,
    samples: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    create_ms: f64,
    applied_ms: f64,
}

pub async fn run(mut client: Client, args: NeutronBenchArgs, format: Format) -> anyhow::Result<()> {
    if args.ports == 0 || args.ports > 500 {
        bail!("--ports must be between 1 and 500, not {}", args.ports);
    }
    let mut summaries = Vec::new();
    for lab in &args.labs {
        eprintln!(
            "lab {lab}: {} ports bound to {}, one after another",
            args.ports, args.node
        );
        summaries.push(Summary::of(lab, &measure(&mut client, lab, &args).await?));
    }
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!(
            "Neutron port create to agent applied on {}, {} ports per lab\n",
            args.node, args.ports
        );
    }
    let ms = |v: f64| format!("{v:.0} ms");
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            vec![
                s.lab.clone(),
                s.backend.clone(),
                ms(s.create_p50_ms),
                ms(s.applied_p50_ms),
                ms(s.applied_p90_ms),
                ms(s.applied_max_ms),
            ]
        })
        .collect();
    let json = serde_json::to_value(&summaries)?;
    print(
        format,
        &[
            "lab",
            "backend",
            "create p50",
            "applied p50",
            "applied p90",
            "applied max",
        ],
        &rows,
        json,
    );
    Ok(())
}

/// One lab's figures, for the table and for `-o json`.
#[derive(Serialize)]
struct Summary {
    lab: String,
    backend: String,
    host: String,
    ports: usize,
    create_p50_ms: f64,
    applied_p50_ms: f64,
    applied_p90_ms: f64,
    applied_max_ms: f64,
    applied_ms: Vec<f64>,
}

impl Summary {
    fn of(lab: &str, r: &Report) -> Summary {
        let applied: Vec<f64> = r.samples.iter().map(|s| s.applied_ms).collect();
        let created: Vec<f64> = r.samples.iter().map(|s| s.create_ms).collect();
        Summary {
            lab: lab.into(),
            backend: r.backend.clone(),
            host: r.host.clone(),
            ports: r.samples.len(),
            create_p50_ms: quantile(&created, 0.5),
            applied_p50_ms: quantile(&applied, 0.5),
            applied_p90_ms: quantile(&applied, 0.9),
            applied_max_ms: quantile(&applied, 1.0),
            applied_ms: applied,
        }
    }
}

async fn measure(c: &mut Client, lab: &str, args: &NeutronBenchArgs) -> anyhow::Result<Report> {
    let found = format!("test -x {BENCH} && test -s /root/admin-openrc && echo found || echo missing");
    let answer = exec(c, lab, &args.node, &found, Duration::from_secs(30)).await?;
    if answer.trim() != "found" {
        bail!(
            "lab {lab}: node {} has no {BENCH} or no /root/admin-openrc; install OpenStack \
             (again) with this version's playbooks: ctl lab install {lab} --chapters identity",
            args.node
        );
    }
    let command = format!(
        "{BENCH} {} /root/admin-openrc 2>/var/log/dclab-neutron-bench.log; rc=$?; \
         [ $rc = 0 ] || tail -n 20 /var/log/dclab-neutron-bench.log; exit $rc",
        args.ports
    );
    let out = exec(c, lab, &args.node, &command, RUN_TIMEOUT).await?;
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let report: Report = serde_json::from_str(line)
        .with_context(|| format!("lab {lab}: dclab-neutron-bench printed no report: {out}"))?;
    if report.samples.len() != args.ports {
        bail!(
            "lab {lab}: {} of {} ports measured",
            report.samples.len(),
            args.ports
        );
    }
    Ok(report)
}

async fn exec(
    c: &mut Client,
    lab: &str,
    node: &str,
    command: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let reply = c
        .exec_node(v1::ExecNodeRequest {
            lab: lab.into(),
            node: node.into(),
            command: command.into(),
            timeout_ms: u32::try_from(timeout.as_millis()).expect("a few minutes fit"),
        })
        .await
        .map_err(status_error)
        .with_context(|| format!("lab {lab}, node {node}"))?
        .into_inner();
    if reply.exit_code != 0 {
        bail!(
            "lab {lab}, node {node}: exit {}: {}",
            reply.exit_code,
            reply.output.trim()
        );
    }
    Ok(reply.output)
}
