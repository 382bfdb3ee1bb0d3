//! libvirtd for the local setup and its tests: the running one if there is
//! one, else one started here (with virtlogd) and stopped again by pid.
//!
//! On hosts with the hybrid cgroup layout (cgroup v1 controllers plus a
//! cgroup2 mount at /sys/fs/cgroup/unified), libvirt 9's LXC driver fails
//! to start containers. libvirtd is then started in a mount namespace of
//! its own without that mount; the host's mounts stay as they are.
//! `scripts/libvirtd.sh` does the same for operators.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};

const UNIFIED: &str = "/sys/fs/cgroup/unified";
const LIBVIRTD_PIDFILE: &str = "/run/libvirtd.pid";

pub struct Libvirtd {
    /// Pids of daemons started here, to stop when done.
    started: Vec<i32>,
}

/// Whether libvirtd answers for both VMs and containers.
pub fn answers() -> bool {
    ["qemu:///system", "lxc:///system"].iter().all(|uri| {
        Command::new("virsh")
            .args(["-c", uri, "version"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn pidfile(path: &str) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

const VIRTLOGD_PIDFILE: &str = "/run/virtlogd.pid";

/// The pid in `path` when that process is alive.
fn live_pid(path: &str) -> Option<i32> {
    // SAFETY: signal 0 only checks that the process exists.
    pidfile(path).filter(|pid| *pid > 0 && unsafe { libc::kill(*pid, 0) } == 0)
}

fn wait_for_answer(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if answers() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `mountinfo` has a cgroup2 mount at /sys/fs/cgroup/unified.
fn has_unified(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let mut halves = line.split(" - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
            return false;
        };
        left.split(' ').nth(4) == Some(UNIFIED) && right.starts_with("cgroup2 ")
    })
}

fn mountinfo(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default()
}

impl Libvirtd {
    /// The running libvirtd, started by someone else: nothing to stop.
    pub fn running() -> Option<Libvirtd> {
        answers().then_some(Libvirtd { started: vec![] })
    }

    /// The running libvirtd, or one started here (with virtlogd), which
    /// dropping the returned value stops. A daemon whose pid file names a
    /// live process is never started again nor counted as started here:
    /// `virsh` failing once on a busy machine must not make a second
    /// daemon, whose pid file would name the first one, and so have the
    /// first one killed when this value drops.
    pub fn ensure() -> anyhow::Result<Libvirtd> {
        if answers() {
            return Ok(Libvirtd { started: vec![] });
        }
        if let Some(pid) = live_pid(LIBVIRTD_PIDFILE) {
            if wait_for_answer(Duration::from_secs(15)) {
                return Ok(Libvirtd { started: vec![] });
            }
            bail!(
                "libvirtd (pid {pid}) runs but does not answer on qemu:///system and lxc:///system; \
                 stop it (kill {pid}) and start it again with scripts/libvirtd.sh"
            );
        }
        let mut daemons = Libvirtd { started: vec![] };
        if live_pid(VIRTLOGD_PIDFILE).is_none() {
            let ok = Command::new("virtlogd")
                .arg("-d")
                .status()
                .is_ok_and(|s| s.success());
            ensure!(
                ok,
                "cannot start virtlogd: install libvirt-daemon-system (scripts/install-deps.sh --vm)"
            );
            std::thread::sleep(Duration::from_millis(300));
            daemons.started.extend(live_pid(VIRTLOGD_PIDFILE));
        }
        let ok = libvirtd_command().status().is_ok_and(|s| s.success());
        ensure!(
            ok,
            "cannot start libvirtd: install libvirt-daemon-system and libvirt-daemon-driver-lxc \
             (scripts/install-deps.sh --vm)"
        );
        std::thread::sleep(Duration::from_millis(300));
        daemons.started.extend(live_pid(LIBVIRTD_PIDFILE));
        if !wait_for_answer(Duration::from_secs(15)) {
            bail!("libvirtd started but does not answer on qemu:///system and lxc:///system");
        }
        Ok(daemons)
    }

    /// Fails, saying what to do, when the running libvirtd cannot start
    /// containers on this host (it sees the cgroup2 mount).
    pub fn check_containers(&self) -> anyhow::Result<()> {
        if !has_unified(&mountinfo("self")) {
            return Ok(());
        }
        let Some(pid) = pidfile(LIBVIRTD_PIDFILE) else {
            bail!("no {LIBVIRTD_PIDFILE}: cannot tell whether libvirtd can start containers");
        };
        ensure!(
            !has_unified(&mountinfo(&pid.to_string())),
            "libvirtd (pid {pid}) sees {UNIFIED}, so its LXC driver cannot start containers on \
             this host: stop it and start it with scripts/libvirtd.sh"
        );
        Ok(())
    }
}

/// `libvirtd -d`, in a mount namespace without the cgroup2 mount on
/// hybrid hosts.
fn libvirtd_command() -> Command {
    if has_unified(&mountinfo("self")) {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("umount {UNIFIED} && exec libvirtd -d"));
        c
    } else {
        let mut c = Command::new("libvirtd");
        c.arg("-d");
        c
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        for pid in self.started.iter().rev() {
            // SAFETY: plain signal to a daemon started here, by its pid.
            unsafe { libc::kill(*pid, libc::SIGTERM) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hybrid_layout_is_told_by_its_cgroup2_mount() {
        let hybrid = "40 30 0:35 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                      41 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert!(has_unified(hybrid));
        let v1 = "40 30 0:35 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert!(!has_unified(v1));
        // Pure cgroup v2 mounts it at /sys/fs/cgroup, which LXC handles.
        let v2 = "40 30 0:35 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw\n";
        assert!(!has_unified(v2));
    }
}
