//! libvirtd for the local setup and its tests: the running one if there is
//! one, else one started here (with virtlogd) and stopped again by pid.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};

pub struct Libvirtd {
    /// Pids of daemons started here, to stop when done.
    started: Vec<i32>,
}

fn answers() -> bool {
    Command::new("virsh")
        .args(["-c", "qemu:///system", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn pidfile(path: &str) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Libvirtd {
    pub fn ensure() -> anyhow::Result<Libvirtd> {
        if answers() {
            return Ok(Libvirtd { started: vec![] });
        }
        let mut daemons = Libvirtd { started: vec![] };
        for (daemon, pidfile_path) in [
            ("virtlogd", "/run/virtlogd.pid"),
            ("libvirtd", "/run/libvirtd.pid"),
        ] {
            let ok = Command::new(daemon).arg("-d").status().is_ok_and(|s| s.success());
            ensure!(
                ok,
                "cannot start {daemon}: install libvirt-daemon-system (scripts/install-deps.sh --vm)"
            );
            std::thread::sleep(Duration::from_millis(300));
            daemons.started.extend(pidfile(pidfile_path));
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while !answers() {
            if Instant::now() >= deadline {
                bail!("libvirtd started but does not answer on qemu:///system");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(daemons)
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
