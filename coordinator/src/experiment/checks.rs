//! Checks: a command's exit code and output, or reachability between
//! nodes, against an expectation — true now, false now, true within a
//! time, true for a time — with a tolerance of probes that may go the
//! other way.

use std::time::{Duration, Instant};

use dclab_spec::experiment::{Check, CheckWhat, Expect};

use super::act::ActError;
use super::env::{probe_command, Env};
use super::targets::TargetError;
use crate::model::lab::Node;

/// Between probes of "within" and "stays" checks.
const POLL: Duration = Duration::from_millis(300);

/// One check's verdict and what was seen.
pub struct Verdict {
    pub passed: bool,
    pub observed: String,
}

pub fn expected(c: &Check) -> String {
    let tol = if c.tolerance > 0 {
        format!(", {} may differ", c.tolerance)
    } else {
        String::new()
    };
    match c.expect {
        Expect::Holds => format!("holds ({} probes{tol})", c.samples),
        Expect::Fails => format!("fails ({} probes{tol})", c.samples),
        Expect::Within(ms) => format!("holds within {} s", ms as f64 / 1000.0),
        Expect::Stays(ms) => format!("holds for {} s{tol}", ms as f64 / 1000.0),
    }
}

/// Why a check could not be probed (its verdict says so).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Exec(#[from] ActError),
    #[error(transparent)]
    Regex(#[from] regex::Error),
}

/// What one check probes: (source node, shell condition) pairs; each
/// pair must meet the expectation.
fn probes(env: &Env, what: &CheckWhat) -> Result<Vec<(Node, Probe)>, CheckError> {
    match what {
        CheckWhat::Command {
            on,
            run,
            exit,
            output,
        } => {
            let node = env.first(on)?.clone();
            let regex = output.as_ref().map(|o| regex::Regex::new(o)).transpose()?;
            Ok(vec![(
                node,
                Probe::Command {
                    run: env.fill(run),
                    exit: *exit,
                    output: regex,
                },
            )])
        }
        CheckWhat::Reach {
            from,
            to,
            network,
            kind,
        } => {
            let src = env.first(from)?.clone();
            env.nodes(to)
                .iter()
                .map(|dst| {
                    let ip = env.address(&src, dst, network.as_deref())?;
                    Ok((
                        src.clone(),
                        Probe::Reach {
                            condition: probe_command(*kind, &ip),
                            label: format!("{} -> {} ({ip})", src.spec.name, dst.spec.name),
                        },
                    ))
                })
                .collect()
        }
    }
}

enum Probe {
    Command {
        run: String,
        exit: Option<i32>,
        output: Option<regex::Regex>,
    },
    Reach {
        condition: String,
        label: String,
    },
}

/// `n` probes: how many succeeded, and the last output (commands).
async fn sample(env: &Env<'_>, node: &Node, probe: &Probe, n: u32) -> Result<(u32, String), CheckError> {
    match probe {
        Probe::Reach { condition, .. } => {
            // One round trip to the node for all n probes.
            let script = format!("ok=0; for i in $(seq {n}); do {condition} && ok=$((ok+1)); done; echo $ok");
            let timeout = Duration::from_secs(u64::from(n) * 3 + 10);
            let (_, out) = env.exec(node, &script, timeout).await?;
            let ok = out
                .trim()
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0);
            Ok((ok, String::new()))
        }
        Probe::Command { run, exit, output } => {
            let mut ok = 0;
            let mut last = String::new();
            for _ in 0..n {
                let (code, out) = env.exec(node, run, Duration::from_secs(60)).await?;
                let good = exit.is_none_or(|e| e == code) && output.as_ref().is_none_or(|r| r.is_match(&out));
                ok += u32::from(good);
                last = format!("exit {code}, output {:?}", clip(out.trim()));
            }
            Ok((ok, last))
        }
    }
}

fn clip(s: &str) -> String {
    let mut s: String = s.chars().take(300).collect();
    if s.len() == 300 {
        s.push('…');
    }
    s
}

fn label(node: &Node, probe: &Probe) -> String {
    match probe {
        Probe::Reach { label, .. } => label.clone(),
        Probe::Command { run, .. } => format!("{:?} on {}", run, node.spec.name),
    }
}

pub async fn evaluate(env: &Env<'_>, check: &Check) -> Verdict {
    let probes = match probes(env, &check.what) {
        Ok(p) => p,
        Err(e) => {
            return Verdict {
                passed: false,
                observed: e.to_string(),
            }
        }
    };
    let mut passed = true;
    let mut seen = Vec::new();
    for (node, probe) in &probes {
        let (ok, observed) = match one(env, node, probe, check).await {
            Ok(r) => r,
            Err(e) => (false, e.to_string()),
        };
        passed &= ok;
        seen.push(format!("{}: {observed}", label(node, probe)));
    }
    Verdict {
        passed,
        observed: seen.join("; "),
    }
}

async fn one(env: &Env<'_>, node: &Node, probe: &Probe, c: &Check) -> Result<(bool, String), CheckError> {
    let detail = |out: &str| {
        if out.is_empty() {
            String::new()
        } else {
            format!(" (last: {out})")
        }
    };
    match c.expect {
        Expect::Holds | Expect::Fails => {
            let (ok, out) = sample(env, node, probe, c.samples).await?;
            let passed = match c.expect {
                Expect::Holds => c.samples - ok <= c.tolerance,
                _ => ok <= c.tolerance,
            };
            Ok((
                passed,
                format!("{ok} of {} probes succeeded{}", c.samples, detail(&out)),
            ))
        }
        Expect::Within(ms) => {
            let started = Instant::now();
            let deadline = Duration::from_millis(ms);
            let mut tries = 0;
            loop {
                tries += 1;
                let (ok, out) = sample(env, node, probe, 1).await?;
                if ok == 1 {
                    let s = started.elapsed().as_secs_f64();
                    return Ok((
                        true,
                        format!("true after {s:.1} s ({tries} probes){}", detail(&out)),
                    ));
                }
                if started.elapsed() >= deadline {
                    return Ok((
                        false,
                        format!(
                            "still false after {tries} probes in {} s{}",
                            ms / 1000,
                            detail(&out)
                        ),
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Expect::Stays(ms) => {
            let started = Instant::now();
            let (mut tries, mut failed) = (0u32, 0u32);
            let mut last = String::new();
            while started.elapsed() < Duration::from_millis(ms) {
                let (ok, out) = sample(env, node, probe, 1).await?;
                tries += 1;
                failed += 1 - ok;
                last = out;
                tokio::time::sleep(POLL).await;
            }
            Ok((
                failed <= c.tolerance,
                format!(
                    "{failed} of {tries} probes failed over {} s{}",
                    ms / 1000,
                    detail(&last)
                ),
            ))
        }
    }
}
