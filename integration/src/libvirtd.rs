//! A libvirtd for tests: the running one if there is one, else one this
//! test starts (with virtlogd) and stops again by pid.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Libvirtd {
    /// Pids of daemons this test started, to stop when done.
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
    pub fn ensure() -> Libvirtd {
        if answers() {
            return Libvirtd { started: vec![] };
        }
        let mut started = vec![];
        for (daemon, pidfile_path) in [
            ("virtlogd", "/run/virtlogd.pid"),
            ("libvirtd", "/run/libvirtd.pid"),
        ] {
            let ok = Command::new(daemon).arg("-d").status().is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot start {daemon}: install libvirt-daemon-system (scripts/install-deps.sh --vm)"
            );
            std::thread::sleep(Duration::from_millis(300));
            started.extend(pidfile(pidfile_path));
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while !answers() {
            assert!(
                Instant::now() < deadline,
                "libvirtd started but does not answer on qemu:///system"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Libvirtd { started }
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        for pid in self.started.iter().rev() {
            // SAFETY: plain signal to a daemon this test started.
            unsafe { libc::kill(*pid, libc::SIGTERM) };
        }
    }
}

/// Removes the named domains when dropped, also when a test fails.
pub struct Domains<'a>(pub &'a dclab_agent::libvirt::Hypervisor, pub Vec<String>);

impl Drop for Domains<'_> {
    fn drop(&mut self) {
        for name in &self.1 {
            let _ = self.0.remove(name);
        }
    }
}

/// A temporary directory qemu (running as an unprivileged user) can read.
pub fn vm_dir(prefix: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}
