//! A libvirtd for tests: the running one if there is one, else one this
//! test starts (with virtlogd) and stops again by pid.

pub use dclab_ctl::local::libvirtd::Libvirtd as Daemons;

/// libvirtd for a test; a missing one fails the test with what to install.
pub struct Libvirtd(pub Daemons);

impl Libvirtd {
    pub fn ensure() -> Libvirtd {
        Libvirtd(Daemons::ensure().unwrap_or_else(|e| panic!("{e:#}")))
    }

    /// libvirtd that can also run container nodes.
    pub fn ensure_containers() -> Libvirtd {
        let libvirtd = Libvirtd::ensure();
        libvirtd.0.check_containers().unwrap_or_else(|e| panic!("{e:#}"));
        libvirtd
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
