//! `ctl bench reap`: what the agent's look for a stopped container node's
//! leftover processes costs on this host (docs/containers.md). The agent
//! binary measures (`agent bench-reap`): a /proc scan as the host is, the
//! same with N more processes, and the reap of those N (processes that
//! carry a made-up node's LIBVIRT_LXC_NAME, as a node's init does).

use anyhow::Context;
use serde_json::{json, Value};

use crate::output::{print, Format};

#[derive(clap::Args, Debug)]
pub struct ReapBenchArgs {
    /// Leftover processes to reap.
    #[arg(long, default_value_t = 700)]
    pub leftovers: usize,
    /// Scans timed, with and without the leftovers.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
}

/// How often the agent's node reconciler passes: the rate a scan per stop
/// is held against.
const PASS_MS: f64 = 2000.0;

pub fn run(args: ReapBenchArgs, format: Format) -> anyhow::Result<()> {
    let agent = crate::local::find_binary("agent")?;
    let out = std::process::Command::new(&agent)
        .args(["bench-reap", "--leftovers", &args.leftovers.to_string()])
        .args(["--rounds", &args.rounds.max(1).to_string()])
        .output()
        .with_context(|| format!("cannot run {}", agent.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "agent bench-reap failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let figures: Value = serde_json::from_slice(&out.stdout).context("agent bench-reap printed no JSON")?;
    let samples = |key: &str| -> Vec<f64> {
        figures[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (scan, scan_left) = (samples("scan_ms"), samples("scan_with_leftovers_ms"));
    anyhow::ensure!(
        !scan.is_empty() && !scan_left.is_empty(),
        "no scans timed: {figures}"
    );
    let processes = figures["processes"].as_u64().unwrap_or(0);
    let reap_ms = figures["reap_ms"].as_f64().unwrap_or(0.0);
    let killed = figures["killed"].as_u64().unwrap_or(0);
    let (settle, grace) = (&figures["settle_ms"], &figures["term_grace_ms"]);
    let scan_row = |what: String, s: &[f64]| {
        let p50 = super::quantile(s, 0.5);
        vec![
            what,
            format!("{p50:.1} ms (max {:.1})", super::quantile(s, 1.0)),
            format!(
                "{:.2} % of one reconcile pass ({PASS_MS:.0} ms)",
                100.0 * p50 / PASS_MS
            ),
        ]
    };
    let rows = vec![
        scan_row(format!("/proc scan, {processes} processes"), &scan),
        scan_row(
            format!("/proc scan, {} processes", processes as usize + args.leftovers),
            &scan_left,
        ),
        vec![
            format!("reap of {} leftovers", args.leftovers),
            format!("{reap_ms:.0} ms, {killed} killed"),
            format!(
                "{settle} ms for what ends by itself, then SIGTERM (answered here); SIGKILL after {grace} ms"
            ),
        ],
    ];
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!(
            "finding and killing a stopped container node's leftover processes (once per stop; {} build of the agent)\n",
            figures["build"].as_str().unwrap_or("unknown")
        );
    }
    print(
        format,
        &["what", "measured", "reference"],
        &rows,
        json!({"machine": super::machine_line(), "figures": figures}),
    );
    Ok(())
}
