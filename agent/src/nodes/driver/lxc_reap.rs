//! Kills what a container node left running after libvirt stopped it
//! (see `lxc_procs` for how its processes are known): thawed if frozen,
//! SIGTERM, SIGKILL after a short grace, and waited for. Signals go
//! through pidfds opened while the process is known to be the one the
//! scan saw, so a pid reused meanwhile is never hit.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::lxc_procs::{self, Proc};
use super::{lxc_cgroups, Leftovers, NodeResult};
use crate::libvirt::{Hypervisor, VmState};

/// Every node's domain name starts with it (`layout::domain_name`).
const DOMAIN_PREFIX: &str = "dclab.";

/// How long leftovers get to end on SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long SIGKILLed processes may take to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Scans after a round of kills: what forked meanwhile is found again.
const ROUNDS: usize = 3;
/// How long what was found may take to end by itself before it counts as
/// left over.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Kills what earlier runs of the container `domain` left on the host:
/// libvirt's destroy can report a systemd container off while its init
/// and services live on outside the cgroup libvirt kills by. The run
/// libvirt has under way now, if any, is kept. Logged when it found any.
pub fn node(hv: &Hypervisor, domain: &str) -> NodeResult<Leftovers> {
    let keep = match hv.state(domain)? {
        None | Some(VmState::Off) => None,
        Some(_) => hv.id(domain)?,
    };
    let started = Instant::now();
    let killed = reap(domain, keep)?;
    if killed > 0 {
        tracing::warn!(
            domain,
            killed,
            ms = started.elapsed().as_millis() as u64,
            "leftover processes of the container killed after libvirt stopped it"
        );
    }
    Ok(Leftovers(killed as u32))
}

/// Kills the processes of container nodes whose domain libvirt no longer
/// knows: their agent removed the node, so no agent on the host wants
/// them (a defined domain is its agent's to look after). Connects to
/// libvirt (`hv`) only when some process names a node.
pub fn orphans(
    hv: impl FnOnce() -> NodeResult<std::sync::Arc<Hypervisor>>,
) -> NodeResult<Vec<(String, Leftovers)>> {
    let names = lxc_procs::scan().lxc_names(DOMAIN_PREFIX);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let hv = hv()?;
    let mut reaped = Vec::new();
    for domain in names.into_keys() {
        if hv.state(&domain)?.is_some() {
            continue;
        }
        let killed = reap(&domain, None)?;
        lxc_cgroups::prune(&domain, None);
        if killed > 0 {
            tracing::warn!(
                domain,
                killed,
                "processes of a container no domain stands for any more killed"
            );
            reaped.push((domain, Leftovers(killed as u32)));
        }
    }
    Ok(reaped)
}

/// Kills every process of `domain` but those of its running instance
/// (controller `keep`) and waits until they are gone; returns how many
/// were killed. Fails naming the ones that would not die.
pub fn reap(domain: &str, keep: Option<u32>) -> anyhow::Result<usize> {
    let mut killed = std::collections::HashSet::new();
    for _ in 0..ROUNDS {
        let host = lxc_procs::scan();
        let left = host.leftovers(domain, keep);
        if left.is_empty() {
            return Ok(killed.len());
        }
        // What libvirt's stop killed a moment ago may still be on its way
        // out (a PID namespace is torn down after its init): not counted.
        let alive = wait_exit(
            left.iter().filter_map(|p| open_same(p)).collect(),
            Instant::now() + SETTLE,
        );
        if alive.is_empty() {
            continue;
        }
        killed.extend(alive.iter().map(|t| (t.pid, t.start)));
        thaw(domain, &left);
        let found = alive.len();
        let (termed, stubborn) = kill_and_wait(alive);
        tracing::debug!(
            domain,
            found,
            after_sigterm = termed,
            after_sigkill = stubborn,
            "leftover processes signalled"
        );
    }
    let host = lxc_procs::scan();
    let still: Vec<i32> = host.leftovers(domain, keep).iter().map(|p| p.pid).collect();
    if still.is_empty() {
        return Ok(killed.len());
    }
    bail!(
        "{} processes of container {domain} would not die (pids {still:?})",
        still.len()
    )
}

/// A process to kill, held by a pidfd.
struct Target {
    pid: i32,
    start: u64,
    fd: OwnedFd,
}

/// SIGTERM, then SIGKILL to what is left after the grace; returns once all
/// are gone or `KILL_WAIT` has passed, with how many were still alive
/// after the grace and after SIGKILL.
fn kill_and_wait(targets: Vec<Target>) -> (usize, usize) {
    for t in &targets {
        send(&t.fd, libc::SIGTERM);
    }
    let alive = wait_exit(targets, Instant::now() + TERM_GRACE);
    let termed = alive.len();
    for t in &alive {
        send(&t.fd, libc::SIGKILL);
    }
    (termed, wait_exit(alive, Instant::now() + KILL_WAIT).len())
}

/// A pidfd of the process, if it is still the one scanned (same start
/// time after the fd was opened).
fn open_same(p: &Proc) -> Option<Target> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd this function owns from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let now = lxc_procs::read_proc(p.pid)?;
    (now.start == p.start && !now.zombie).then_some(Target {
        pid: p.pid,
        start: p.start,
        fd,
    })
}

fn send(fd: &OwnedFd, signal: i32) {
    // SAFETY: pidfd_send_signal on a pidfd this process owns; no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Waits until every pidfd reports its process ended or `until`; returns
/// those still alive.
fn wait_exit(mut targets: Vec<Target>, until: Instant) -> Vec<Target> {
    while !targets.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        let mut polls: Vec<libc::pollfd> = targets
            .iter()
            .map(|t| libc::pollfd {
                fd: t.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: polls is a valid array of polls.len() pollfds.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
        let mut i = 0;
        targets.retain(|_| {
            let gone = polls[i].revents != 0;
            i += 1;
            !gone
        });
        if ready == 0 || left.is_zero() {
            break;
        }
    }
    targets
}

/// A frozen process dies of no signal until thawed (cgroup v1 freezer):
/// the domain's own freezer cgroups that froze themselves are thawed.
fn thaw(domain: &str, procs: &[&Proc]) {
    let own_dir = format!("-{domain}.libvirt-lxc");
    let mut done = std::collections::HashSet::new();
    for path in procs.iter().filter_map(|p| p.cgroup("freezer")) {
        let mut prefix = String::new();
        for part in path.split('/').filter(|s| !s.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            if !prefix.contains(&own_dir) || !done.insert(prefix.clone()) {
                continue;
            }
            let dir = format!("/sys/fs/cgroup/freezer{prefix}");
            let frozen = std::fs::read_to_string(format!("{dir}/freezer.self_freezing"))
                .is_ok_and(|s| s.trim() == "1");
            if frozen {
                if let Err(e) = std::fs::write(format!("{dir}/freezer.state"), "THAWED") {
                    tracing::warn!(domain, cgroup = %dir, error = %e, "cannot thaw a leftover's cgroup");
                }
            }
        }
    }
}
