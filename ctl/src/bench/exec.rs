//! `ctl bench exec`: what an endless-output command (`cat /dev/zero`) run
//! through ExecNode costs the agent of its host, for a micro-VM and a
//! container node: the agent's resident memory (VmRSS) before, at its peak
//! while the command runs, and after, and how much output the result kept
//! and says it cut.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Operator;
use anyhow::{bail, Context};
use dclab_proto::v1;
use serde_json::json;

use super::lab::KindArg;
use crate::lab::remote::{status_error, wait_ready, Client};
use crate::local::libvirtd::Libvirtd;
use crate::local::{ClusterGuard, UpOptions};
use crate::output::{print, Format};

#[derive(clap::Args, Debug)]
pub struct ExecBenchArgs {
    /// How long the command runs (its exec timeout).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// The command; it should write output for longer than --seconds.
    #[arg(long, default_value = "cat /dev/zero")]
    pub command: String,
    /// Which kind of node: both side by side (default), or one.
    #[arg(long, value_enum, default_value = "both")]
    pub kind: KindArg,
}

const LAB: &str = "bexec";
/// Issue 23: a container node's agent grew this much in 20 s of `cat /dev/zero`.
const ISSUE_GROWTH_MIB: f64 = 4093.0;
const GOAL_MIB: f64 = 64.0;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

pub fn run(args: ExecBenchArgs, format: Format) -> anyhow::Result<()> {
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    let _libvirtd = Libvirtd::ensure()?;
    let cluster = ClusterGuard::up(&UpOptions::unique("bx", 1)).context("bringing up the local setup")?;
    let agent = cluster.state().hosts[0]
        .agent
        .as_ref()
        .context("the local setup has no agent")?
        .pid;
    let kinds: Vec<v1::NodeKind> = match args.kind {
        KindArg::Both => vec![v1::NodeKind::Vm, v1::NodeKind::Container],
        KindArg::Vm => vec![v1::NodeKind::Vm],
        KindArg::Container => vec![v1::NodeKind::Container],
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let columns = rt.block_on(async {
        let mut c: Client = Operator::new(cluster.client_config()?.connect().await?);
        c.apply_lab(v1::ApplyLabRequest {
            spec: Some(lab_spec(&kinds)),
        })
        .await
        .map_err(status_error)?;
        wait_ready(&mut c, LAB, Duration::from_secs(300)).await?;
        let mut columns = Vec::new();
        for kind in &kinds {
            columns.push(measure(&mut c, agent, *kind, &args).await?);
        }
        anyhow::Ok(columns)
    })?;
    report(&args, &kinds, &columns, format);
    Ok(())
}

fn node_name(kind: v1::NodeKind) -> &'static str {
    if kind == v1::NodeKind::Container {
        "c"
    } else {
        "v"
    }
}

fn kind_name(kind: v1::NodeKind) -> &'static str {
    if kind == v1::NodeKind::Container {
        "container"
    } else {
        "micro-VM"
    }
}

fn lab_spec(kinds: &[v1::NodeKind]) -> v1::LabSpec {
    v1::LabSpec {
        name: LAB.into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.0.0.0/24".into(),
            kind: v1::NetworkKind::Rewrite.into(),
        }],
        nodes: kinds
            .iter()
            .map(|kind| v1::NodeSpec {
                name: node_name(*kind).into(),
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
                kind: (*kind).into(),
            })
            .collect(),
        ssh_keys: vec![],
    }
}

/// One kind's figures.
struct Figures {
    before_mib: f64,
    peak_growth_mib: f64,
    after_growth_mib: f64,
    /// What the result says: the exit code or the error (which says how
    /// much output was cut).
    result: String,
    /// What a reply kept and cut (None: the exec failed; its error says).
    kept_bytes: Option<u64>,
    dropped_bytes: Option<u64>,
}

/// VmRSS of `pid` in MiB.
fn rss_mib(pid: i32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the agent's status (pid {pid})"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in the agent's status")?;
    Ok(kb / 1024.0)
}

async fn exec(
    c: &mut Client,
    node: &str,
    command: &str,
    timeout: Duration,
) -> Result<v1::ExecNodeResponse, tonic::Status> {
    let req = v1::ExecNodeRequest {
        lab: LAB.into(),
        node: node.into(),
        command: command.into(),
        timeout_ms: timeout.as_millis() as u32,
    };
    c.exec_node(req).await.map(|r| r.into_inner())
}

async fn measure(
    c: &mut Client,
    agent: i32,
    kind: v1::NodeKind,
    args: &ExecBenchArgs,
) -> anyhow::Result<Figures> {
    let node = node_name(kind);
    // Running is not booted: the micro-VM answers once its console is up.
    let warm = exec(c, node, "true", Duration::from_secs(120))
        .await
        .map_err(status_error)?;
    if warm.exit_code != 0 {
        bail!("node {node} answered `true` with {}", warm.exit_code);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_mib(agent)?;
    let peak = Arc::new(AtomicU64::new(before.to_bits()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(now) = rss_mib(agent) {
                    let _ = peak.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                        (now > f64::from_bits(p)).then_some(now.to_bits())
                    });
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };
    let started = Instant::now();
    let reply = exec(c, node, &args.command, Duration::from_secs(args.seconds)).await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler does not panic");
    let after = rss_mib(agent)?;
    let (result, kept_bytes, dropped_bytes) = match reply {
        Ok(r) => (
            format!("exit {}", r.exit_code),
            Some(r.output.len() as u64),
            Some(r.output_dropped_bytes),
        ),
        Err(s) => (format!("error: {}", s.message()), None, None),
    };
    eprintln!("{} ({:.1} s): {result}", kind_name(kind), took.as_secs_f64());
    Ok(Figures {
        before_mib: before,
        peak_growth_mib: f64::from_bits(peak.load(Ordering::Relaxed)) - before,
        after_growth_mib: after - before,
        result,
        kept_bytes,
        dropped_bytes,
    })
}

/// "-" for an exec that failed (its error says what was cut).
fn bytes_or_dash(n: Option<u64>) -> String {
    n.map_or("-".into(), |n| format!("{n} B"))
}

fn report(args: &ExecBenchArgs, kinds: &[v1::NodeKind], columns: &[Figures], format: Format) {
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!(
            "`{}` through ExecNode for {} s on one simulated host; the agent's VmRSS sampled every {} ms\n",
            args.command,
            args.seconds,
            SAMPLE_EVERY.as_millis()
        );
    }
    let mut header = vec!["metric"];
    header.extend(kinds.iter().map(|k| kind_name(*k)));
    header.push("reference");
    let row = |metric: &str, cell: &dyn Fn(&Figures) -> String, reference: String| {
        let mut row = vec![metric.to_string()];
        row.extend(columns.iter().map(cell));
        row.push(reference);
        row
    };
    let table = vec![
        row(
            "agent RSS before",
            &|f| format!("{:.1} MiB", f.before_mib),
            "-".into(),
        ),
        row(
            "agent RSS peak growth",
            &|f| format!("{:.1} MiB", f.peak_growth_mib),
            format!("goal < {GOAL_MIB:.0} MiB; issue 23: +{ISSUE_GROWTH_MIB:.0} MiB in 20 s (container)"),
        ),
        row(
            "agent RSS growth after",
            &|f| format!("{:.1} MiB", f.after_growth_mib),
            "-".into(),
        ),
        row(
            "output kept",
            &|f| bytes_or_dash(f.kept_bytes),
            "64 KiB at most".into(),
        ),
        row("output cut", &|f| bytes_or_dash(f.dropped_bytes), "-".into()),
    ];
    let json = serde_json::Value::Object(
        kinds
            .iter()
            .zip(columns)
            .map(|(kind, f)| {
                let value = json!({
                    "rss_before_mib": f.before_mib,
                    "rss_peak_growth_mib": f.peak_growth_mib,
                    "rss_growth_after_mib": f.after_growth_mib,
                    "output_kept_bytes": f.kept_bytes,
                    "output_dropped_bytes": f.dropped_bytes,
                    "result": f.result,
                });
                (kind_name(*kind).to_string(), value)
            })
            .collect(),
    );
    print(format, &header, &table, json);
    if format == Format::Table {
        println!();
        for (kind, f) in kinds.iter().zip(columns) {
            println!("{}: {}", kind_name(*kind), f.result);
        }
    }
}
