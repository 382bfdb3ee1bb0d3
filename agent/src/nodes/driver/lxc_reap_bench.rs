//! What reaping costs on this host (`agent bench-reap`, run by `ctl bench
//! reap`): one /proc scan as the host is, the same with `leftovers` more
//! processes, and a reap of those (children of this process that carry a
//! made-up node's `LIBVIRT_LXC_NAME`, as a stopped node's init does).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::{lxc_procs, lxc_reap};

#[derive(Debug, Serialize)]
pub struct ReapBench {
    /// Processes on the host before the bench added any.
    pub processes: usize,
    /// One scan each, in ms.
    pub scan_ms: Vec<f64>,
    pub leftovers: usize,
    pub scan_with_leftovers_ms: Vec<f64>,
    /// The reap of the leftovers: scans, SIGTERM, waiting for them.
    pub reap_ms: f64,
    pub killed: usize,
    /// The reap's waits: for what ends by itself, then after SIGTERM.
    pub settle_ms: u64,
    pub term_grace_ms: u64,
    /// The agent's build: "debug" or "release".
    pub build: &'static str,
}

/// The bench's leftovers; killed when dropped, whatever happened.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run(leftovers: usize, rounds: usize) -> anyhow::Result<ReapBench> {
    let domain = format!("dclab.bench{}.leftover", std::process::id());
    let processes = lxc_procs::scan().procs.len();
    let scan_ms = timed_scans(rounds);
    let mut children = Children(Vec::with_capacity(leftovers));
    for _ in 0..leftovers {
        let child = Command::new("sleep")
            .arg("600")
            .env("LIBVIRT_LXC_NAME", &domain)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting sleep")?;
        children.0.push(child);
    }
    // The environment is the new one once each child has exec'd sleep.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lxc_procs::scan().leftovers(&domain, None).len() < leftovers {
        if Instant::now() > deadline {
            bail!("the {leftovers} leftovers did not all start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let scan_with_leftovers_ms = timed_scans(rounds);
    let started = Instant::now();
    let killed = lxc_reap::reap(&domain, None)?;
    let reap_ms = ms(started.elapsed());
    drop(children);
    Ok(ReapBench {
        processes,
        scan_ms,
        leftovers,
        scan_with_leftovers_ms,
        reap_ms,
        killed,
        settle_ms: lxc_reap::SETTLE.as_millis() as u64,
        term_grace_ms: lxc_reap::TERM_GRACE.as_millis() as u64,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    })
}

fn timed_scans(rounds: usize) -> Vec<f64> {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let host = lxc_procs::scan();
            std::hint::black_box(host.leftovers("dclab.none.none", None));
            ms(started.elapsed())
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
