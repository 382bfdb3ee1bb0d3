//! Background probes: a loop in the source node, started when the run
//! starts and read back when it ends. A ping probe is one `ping -i`
//! whose replies are counted by sequence number (sample k was sent at the
//! start plus k intervals); a TCP probe is a loop of connects, each sample
//! stamped with the node's uptime.

use std::time::Duration;

use dclab_spec::experiment::record::ProbeResult;
use dclab_spec::experiment::{Probe, Reach};

use super::act::ActError;
use super::env::{probe_command, Env};
use super::targets::TargetError;
use crate::model::lab::Node;

pub struct Running {
    pub spec: Probe,
    node: Node,
    address: String,
    files: String,
    /// When the probe started, ms after the run started.
    pub started_ms: u64,
    /// The node's uptime (s) when it started, for TCP samples.
    uptime0: f64,
    pub error: Option<String>,
}

const START_TIMEOUT: Duration = Duration::from_secs(20);

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Why a probe did not start.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Exec(#[from] ActError),
    #[error("probe {probe} did not start in {node}: {output}")]
    NotStarted {
        probe: String,
        node: String,
        output: String,
    },
}

pub async fn start(env: &Env<'_>, spec: &Probe, at_ms: impl Fn() -> u64) -> Result<Running, ProbeError> {
    let from = env.first(&spec.from)?.clone();
    let to = env.first(&spec.to)?;
    let address = env.address(&from, to, spec.network.as_deref())?;
    let files = format!("/tmp/dclab-probe-{}-{}", env.tag, spec.name);
    let loop_cmd = match spec.kind {
        Reach::Ping => format!("exec ping -i {} {address}", seconds(spec.interval_ms)),
        Reach::Tcp(_) => {
            let cond = probe_command(spec.kind, &address);
            format!(
                "while :; do if {cond}; then r=1; else r=0; fi; echo \"$(cut -d' ' -f1 /proc/uptime) $r\"; usleep {}; done",
                spec.interval_ms * 1000
            )
        }
    };
    // The shell writes its own pid and then becomes the probe: that pid is
    // what stop signals.
    let script = format!("echo $$ > {files}.pid; {loop_cmd}");
    let command = format!(
        "mkdir -p /tmp; cut -d' ' -f1 /proc/uptime; sh -c '{}' > {files}.log 2>&1 &",
        script.replace('\'', "'\\''")
    );
    let (code, out) = env.exec(&from, &command, START_TIMEOUT).await?;
    if code != 0 {
        return Err(ProbeError::NotStarted {
            probe: spec.name.clone(),
            node: from.spec.name.clone(),
            output: out.trim().to_string(),
        });
    }
    let uptime0 = out
        .trim()
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    Ok(Running {
        spec: spec.clone(),
        node: from,
        address,
        files,
        started_ms: at_ms(),
        uptime0,
        error: None,
    })
}

/// Stops the probe and reads its samples.
pub async fn stop(env: &Env<'_>, p: Running, healed_at_ms: Option<u64>, now_ms: u64) -> ProbeResult {
    let f = &p.files;
    // SIGINT makes ping print how many it sent; the replies give the rest.
    let command = match p.spec.kind {
        Reach::Ping => format!(
            "kill -INT $(cat {f}.pid) 2>/dev/null; usleep 300000; \
             echo sent $(sed -n 's/^\\([0-9]*\\) packets transmitted.*/\\1/p' {f}.log); \
             echo got $(sed -n 's/.*seq=\\([0-9]*\\).*/\\1/p' {f}.log); rm -f {f}.log {f}.pid"
        ),
        Reach::Tcp(_) => format!("kill $(cat {f}.pid) 2>/dev/null; cat {f}.log; rm -f {f}.log {f}.pid"),
    };
    let mut result = ProbeResult {
        name: p.spec.name.clone(),
        from: p.node.spec.name.clone(),
        to: p.spec.to.clone(),
        address: p.address.clone(),
        interval_ms: p.spec.interval_ms,
        samples: vec![],
        downtime_ms: None,
        recovery_ms: None,
        error: p.error.clone(),
    };
    match env.exec(&p.node, &command, Duration::from_secs(30)).await {
        Ok((_, out)) => result.samples = parse(&p, &out, now_ms),
        Err(e) => result.error = Some(format!("reading the probe: {e}")),
    }
    if result.samples.is_empty() && result.error.is_none() {
        result.error = Some("the probe recorded no samples".into());
    }
    result.measure(healed_at_ms);
    result
}

/// `stopped_ms` is when the stop was sent: a guest's timer drifts (an
/// emulated one by several percent), so ping samples are spread evenly
/// between the start and the stop rather than stepped by the interval.
fn parse(p: &Running, out: &str, stopped_ms: u64) -> Vec<(u64, bool)> {
    match p.spec.kind {
        Reach::Ping => {
            let field = |key: &str| out.lines().find_map(|l| l.strip_prefix(key)).unwrap_or("");
            let sent: u64 = field("sent ").trim().parse().unwrap_or(0);
            let got: std::collections::BTreeSet<u64> = field("got ")
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            let span = stopped_ms.saturating_sub(p.started_ms) as f64;
            let step = if sent > 0 {
                span / sent as f64
            } else {
                p.spec.interval_ms as f64
            };
            (0..sent)
                .map(|k| (p.started_ms + (k as f64 * step) as u64, got.contains(&k)))
                .collect()
        }
        Reach::Tcp(_) => out
            .lines()
            .filter_map(|l| {
                let (t, r) = l.trim().split_once(' ')?;
                let t: f64 = t.parse().ok()?;
                let at = p.started_ms as f64 + (t - p.uptime0) * 1000.0;
                Some((at.max(0.0) as u64, r == "1"))
            })
            .collect(),
    }
}
