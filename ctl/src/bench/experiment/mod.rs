//! `ctl bench experiment`: the experiment engine on a two-node micro-VM
//! lab over 2 simulated hosts of this machine. Three figures against the
//! goals of issue 10: how long a fault takes from issue to effect, how soon
//! an agent heals a fault whose lease lapsed (the coordinator killed), and
//! how closely a probe's downtime matches the true outage, which a wire
//! capture on the host's uplink measures independently.

mod files;
mod wire;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::client::Operator;
use anyhow::{bail, Context};
use dclab_proto::v1;
use dclab_spec::experiment::record::{EventKind, RunRecord};
use serde_json::json;
use tonic::Streaming;

use super::quantile;
use crate::lab::remote::{status_error, wait_ready, Client};
use crate::local::libvirtd::Libvirtd;
use crate::local::{Cluster, UpOptions};
use crate::output::{print, Format};

#[derive(clap::Args, Debug)]
pub struct ExperimentBenchArgs {
    /// Rounds of applying and healing each timed fault kind.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Coordinator kills, each leaving a freeze for the agent to heal.
    #[arg(long, default_value_t = 5)]
    pub expiries: usize,
    /// Outages per kind (power-off/start, freeze/resume) measured both ways.
    #[arg(long, default_value_t = 3)]
    pub outages: usize,
}

const NAME: &str = "bexp";
const LAB: &str = "bench";
const DOMAIN: &str = "dclab.bench.a";
const EFFECT_GOAL_MS: f64 = 50.0;
const EXPIRY_GOAL_MS: f64 = 1000.0;
const PROBE_INTERVAL_MS: u64 = 100;
const OUTAGE_HOLD_S: u32 = 3;
const LEASE_S: u32 = 3;

pub fn run(args: ExperimentBenchArgs, format: Format) -> anyhow::Result<()> {
    if args.rounds == 0 || args.expiries == 0 || args.outages == 0 {
        bail!("--rounds, --expiries and --outages must be at least 1");
    }
    let _libvirtd = Libvirtd::ensure()?;
    let mut cluster = Cluster::up(&UpOptions::new(NAME, 2)).context("bringing up the local setup")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(measure(&mut cluster, &args));
    Cluster::down(NAME)?;
    let rows = result?;
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!(
            "lab of 2 micro-VMs (TCG) on 2 simulated hosts; {} rounds of {} fault kinds, {} lease expiries, {} outages per kind\n",
            args.rounds,
            files::TIMED.len(),
            args.expiries,
            args.outages
        );
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| vec![r.metric.clone(), format!("{:.1} ms", r.ms), r.reference.clone()])
        .collect();
    let json = serde_json::Value::Array(
        rows.iter()
            .map(|r| json!({"metric": r.metric, "ms": r.ms, "reference": r.reference}))
            .collect(),
    );
    print(format, &["metric", "value", "goal / reference"], &table, json);
    Ok(())
}

struct Row {
    metric: String,
    ms: f64,
    reference: String,
}

fn row(metric: impl Into<String>, ms: f64, reference: impl Into<String>) -> Row {
    Row {
        metric: metric.into(),
        ms,
        reference: reference.into(),
    }
}

async fn measure(cluster: &mut Cluster, args: &ExperimentBenchArgs) -> anyhow::Result<Vec<Row>> {
    let mut c = connect(cluster).await?;
    c.apply_lab(v1::ApplyLabRequest {
        spec: Some(lab_spec()),
    })
    .await
    .map_err(status_error)?;
    wait_ready(&mut c, LAB, Duration::from_secs(600)).await?;
    for node in ["a", "b"] {
        exec(&mut c, node, "true").await?;
    }
    let mut rows = effect_rows(&mut c, args.rounds).await?;
    rows.extend(outage_rows(cluster, &mut c, args.outages).await?);
    rows.extend(expiry_rows(cluster, args.expiries).await?);
    Ok(rows)
}

async fn connect(cluster: &Cluster) -> anyhow::Result<Client> {
    Ok(Operator::new(cluster.client_config()?.connect().await?))
}

fn lab_spec() -> v1::LabSpec {
    let node = |name: &str, host: &str, ip: &str| v1::NodeSpec {
        name: name.into(),
        role: "node".into(),
        vcpus: 1,
        memory_mib: 192,
        image: "micro".into(),
        disks_mib: vec![],
        host: host.into(),
        interfaces: vec![v1::InterfaceSpec {
            network: "lan".into(),
            ip: ip.into(),
        }],
        kind: v1::NodeKind::Vm.into(),
    };
    v1::LabSpec {
        name: LAB.into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.0.0.0/24".into(),
            kind: v1::NetworkKind::Rewrite.into(),
        }],
        nodes: vec![node("a", "h1", "10.0.0.1"), node("b", "h2", "10.0.0.2")],
        ssh_keys: vec![],
    }
}

async fn exec(c: &mut Client, node: &str, command: &str) -> anyhow::Result<()> {
    let req = v1::ExecNodeRequest {
        lab: LAB.into(),
        node: node.into(),
        command: command.into(),
        timeout_ms: 120_000,
    };
    let out = c.exec_node(req).await.map_err(status_error)?.into_inner();
    if out.exit_code != 0 {
        bail!(
            "node {node} answered {command:?} with {}: {}",
            out.exit_code,
            out.output
        );
    }
    Ok(())
}

async fn start(c: &mut Client, name: &str, text: String) -> anyhow::Result<Streaming<v1::RunEvent>> {
    let req = v1::RunExperimentRequest {
        file_name: format!("{name}.toml"),
        file_text: text,
        lab: LAB.into(),
        dry_run: false,
        seed: 1,
        yes: true,
    };
    Ok(c.run_experiment(req).await.map_err(status_error)?.into_inner())
}

/// Runs an experiment to its end; its record, which must have passed.
async fn run_to_end(c: &mut Client, name: &str, text: String) -> anyhow::Result<RunRecord> {
    let mut events = start(c, name, text).await?;
    while let Some(event) = events.message().await.map_err(status_error)? {
        if event.done {
            let record: RunRecord = serde_json::from_str(&event.record_json)?;
            if record.verdict.exit_code() != 0 {
                bail!(
                    "run {name} ended {}: {:?}",
                    record.verdict.name(),
                    record.findings
                );
            }
            return Ok(record);
        }
    }
    bail!("the coordinator ended run {name}'s stream early")
}

/// Issue-to-effect times of the run's faults, ms, by fault kind. A fault
/// on several hosts (a partition) is in effect when the slowest host says so.
fn effects(record: &RunRecord) -> BTreeMap<String, Vec<f64>> {
    // One event per host, all with the fault's text ("KIND ID on ...").
    let mut per_fault: BTreeMap<&str, u64> = BTreeMap::new();
    for e in record.timeline.iter().filter(|e| e.kind == EventKind::Fault) {
        if let Some(us) = e.effect_us {
            let slowest = per_fault.entry(e.what.as_str()).or_default();
            *slowest = (*slowest).max(us);
        }
    }
    let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (what, us) in per_fault {
        let kind = what.split_whitespace().next().unwrap_or_default();
        by_kind
            .entry(kind.to_string())
            .or_default()
            .push(us as f64 / 1000.0);
    }
    by_kind
}

async fn effect_rows(c: &mut Client, rounds: usize) -> anyhow::Result<Vec<Row>> {
    eprintln!(
        "bench: {rounds} rounds of {} fault kinds applied and healed",
        files::TIMED.len()
    );
    let record = run_to_end(c, "bench-effect", files::effect(rounds)).await?;
    let by_kind = effects(&record);
    let all: Vec<f64> = by_kind.values().flatten().copied().collect();
    if all.is_empty() {
        bail!("the run recorded no fault timings");
    }
    let mut rows = vec![row(
        format!("fault issued -> in effect, p50 of {} faults", all.len()),
        quantile(&all, 0.5),
        format!("goal <= {EFFECT_GOAL_MS:.0} ms"),
    )];
    for (kind, times) in &by_kind {
        rows.push(row(
            format!(
                "  {kind}: p50 (p95 {:.1} ms, max {:.1} ms)",
                quantile(times, 0.95),
                quantile(times, 1.0)
            ),
            quantile(times, 0.5),
            "-",
        ));
    }
    Ok(rows)
}

async fn outage_rows(cluster: &Cluster, c: &mut Client, outages: usize) -> anyhow::Result<Vec<Row>> {
    let mut rows = vec![];
    let mut power_off_effects = vec![];
    for fault in ["power-off", "freeze"] {
        let mut errors = vec![];
        let mut truths = vec![];
        for round in 0..outages {
            eprintln!("bench: {fault} outage {} of {outages}", round + 1);
            let capture = wire::Capture::start(&cluster.host_netns("h1"), crate::local::UPLINK)?;
            let text = files::outage(fault, OUTAGE_HOLD_S, PROBE_INTERVAL_MS);
            let record = run_to_end(c, &format!("bench-outage-{fault}"), text).await;
            let replies = capture.stop();
            let record = record?;
            let truth = wire::longest_silence_ms(&replies)
                .with_context(|| format!("the capture saw {} echo replies from a", replies.len()))?;
            let probe = record.probes.first().context("the run has no probe result")?;
            let measured = probe
                .downtime_ms
                .with_context(|| format!("the probe saw no downtime: {:?}", probe.error))?
                as f64;
            errors.push((measured - truth).abs());
            truths.push(truth);
            if fault == "power-off" {
                power_off_effects.extend(effects(&record).remove("power-off").unwrap_or_default());
            }
        }
        rows.push(row(
            format!(
                "downtime error, {fault}/{}: max |probe - wire| of {outages} (outage ~{:.0} ms)",
                if fault == "power-off" { "start" } else { "resume" },
                quantile(&truths, 0.5)
            ),
            quantile(&errors, 1.0),
            format!("goal <= {} ms (2 probe intervals)", 2 * PROBE_INTERVAL_MS),
        ));
    }
    if !power_off_effects.is_empty() {
        rows.push(row(
            format!(
                "  power-off issued -> off in libvirt (guest paused at once first): p50 of {}",
                power_off_effects.len()
            ),
            quantile(&power_off_effects, 0.5),
            "-",
        ));
    }
    Ok(rows)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn domain_state() -> String {
    let out = std::process::Command::new("virsh")
        .args(["-c", "qemu:///system", "domstate", DOMAIN])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The expiry of the fault lease h1's agent holds, from its lease file.
fn fault_lease_expiry(cluster: &Cluster) -> anyhow::Result<u64> {
    let path = cluster.host_dir("h1").join("agent/leases.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let leases: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    leases
        .iter()
        .find(|l| l["faults"].as_array().is_some_and(|f| !f.is_empty()))
        .and_then(|l| l["expires_unix_ms"].as_u64())
        .with_context(|| format!("no fault lease in {}", path.display()))
}

async fn expiry_rows(cluster: &mut Cluster, expiries: usize) -> anyhow::Result<Vec<Row>> {
    let mut lags = vec![];
    for round in 0..expiries {
        eprintln!(
            "bench: lease expiry {} of {expiries} (coordinator killed)",
            round + 1
        );
        let mut c = connect(cluster).await?;
        let mut events = start_when_agents_are_back(&mut c).await?;
        loop {
            let event = events.message().await.map_err(status_error)?;
            let event = event.context("the run ended before its freeze")?;
            if event.line.contains("fault held") {
                break;
            }
            if event.done {
                bail!("the run ended before its freeze: {}", event.line);
            }
        }
        if domain_state() != "paused" {
            bail!("{DOMAIN} is not paused after the freeze");
        }
        cluster.kill_coordinator(libc::SIGKILL)?;
        // No renewals from here on: the last expiry written is final.
        let expires = fault_lease_expiry(cluster)?;
        let deadline = Instant::now() + Duration::from_secs(u64::from(LEASE_S) + 10);
        while domain_state() != "running" {
            if Instant::now() > deadline {
                bail!("{DOMAIN} was not resumed within {LEASE_S} s + 10 s of the coordinator's death");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        lags.push(now_ms().saturating_sub(expires) as f64);
        drop(events);
        cluster.start_coordinator()?;
    }
    Ok(vec![row(
        format!(
            "lease expiry -> node running again: median of {expiries} (max {:.0} ms)",
            quantile(&lags, 1.0)
        ),
        quantile(&lags, 0.5),
        format!("goal <= {EXPIRY_GOAL_MS:.0} ms; seen by polling libvirt (~20 ms a poll)"),
    )])
}

/// Starts the held freeze, retrying while the agents have not yet
/// reconnected to a restarted coordinator (a run refuses to start before).
async fn start_when_agents_are_back(c: &mut Client) -> anyhow::Result<Streaming<v1::RunEvent>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match start(c, "bench-lease", files::held(LEASE_S)).await {
            Err(e) if format!("{e:#}").contains("not connected") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}
