//! libvirt 9 leaves a stopped container's cgroup directories behind in
//! some hierarchies (and those the node's own systemd made below them):
//! one set per start. The driver removes a stopped node's leftovers.

use std::fs;
use std::path::Path;

const ROOT: &str = "/sys/fs/cgroup";

/// Whether `dir` (a cgroup dir name) is libvirt's for `domain`, and the
/// pid in it: `lxc-<pid>-<domain>.libvirt-lxc`.
fn pid_of(dir: &str, domain: &str) -> Option<u32> {
    instance_of(dir).and_then(|(pid, d)| (d == domain).then_some(pid))
}

/// The instance a libvirt cgroup dir name stands for: (the pid of its
/// controller, the domain).
pub fn instance_of(dir: &str) -> Option<(u32, &str)> {
    let rest = dir.strip_prefix("lxc-")?;
    let (pid, tail) = rest.split_once('-')?;
    Some((pid.parse().ok()?, tail.strip_suffix(".libvirt-lxc")?))
}

/// Removes the domain's cgroup dirs in every hierarchy, but those of the
/// instance whose controller is `keep`. Removing a cgroup that still has
/// tasks fails, so nothing live is touched; failures are left for later.
pub fn prune(domain: &str, keep: Option<u32>) {
    let Ok(hierarchies) = fs::read_dir(ROOT) else {
        return;
    };
    for hierarchy in hierarchies.flatten() {
        let machine = hierarchy.path().join("machine");
        let Ok(entries) = fs::read_dir(&machine) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match pid_of(&name, domain) {
                Some(pid) if Some(pid) != keep => remove_tree(&entry.path()),
                _ => {}
            }
        }
    }
}

/// rmdir depth first: a cgroup dir can only go once its children have.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_domains_own_dirs_are_matched() {
        assert_eq!(
            pid_of("lxc-123-dclab.lab.a.libvirt-lxc", "dclab.lab.a"),
            Some(123)
        );
        assert_eq!(pid_of("lxc-123-dclab.lab.ab.libvirt-lxc", "dclab.lab.a"), None);
        assert_eq!(pid_of("lxc-x-dclab.lab.a.libvirt-lxc", "dclab.lab.a"), None);
        assert_eq!(pid_of("qemu-1-dclab.lab.a.libvirt-qemu", "dclab.lab.a"), None);
    }
}
