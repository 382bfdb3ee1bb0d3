//! A container node's processes as the host sees them, read from /proc
//! on their own (not through the agent's code): libvirt gives the node's
//! init `LIBVIRT_LXC_NAME=<domain>` in its environment, and the node's
//! processes are those in that init's PID namespace.

use std::fs;

/// A process whose environment names the domain (a node's init).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    pub pid: i32,
    pub ppid: i32,
}

fn pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn lxc_name(pid: i32) -> Option<String> {
    let env = fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"LIBVIRT_LXC_NAME="))
        .map(|n| String::from_utf8_lossy(n).into_owned())
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn pidns(pid: i32) -> Option<String> {
    Some(
        fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()?
            .display()
            .to_string(),
    )
}

/// The processes whose environment has `LIBVIRT_LXC_NAME` = `domain`, or
/// starts with `domain` when `prefix` (every node of a lab).
fn named(domain: &str, prefix: bool) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|pid| {
            lxc_name(*pid).is_some_and(|n| {
                if prefix {
                    n.starts_with(domain)
                } else {
                    n == domain
                }
            })
        })
        .collect()
}

/// The node's inits (more than one: an earlier run lives on): processes
/// that name the domain, whose parent does not (an init that just started
/// has children that still carry its environment).
pub fn inits(domain: &str) -> Vec<Init> {
    let named = named(domain, false);
    named
        .iter()
        .filter_map(|pid| {
            Some(Init {
                pid: *pid,
                ppid: ppid(*pid)?,
            })
        })
        .filter(|init| !named.contains(&init.ppid))
        .collect()
}

/// Every process in the PID namespace of a process that names `domain`.
pub fn processes(domain: &str) -> Vec<i32> {
    let namespaces: Vec<String> = named(domain, false).into_iter().filter_map(pidns).collect();
    pids()
        .into_iter()
        .filter(|pid| pidns(*pid).is_some_and(|ns| namespaces.contains(&ns)))
        .collect()
}

/// The process's cgroup in the v1 hierarchy that holds `controller`.
pub fn cgroup(pid: i32, controller: &str) -> Option<String> {
    let table = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    table.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })
}

/// SIGKILLs, when dropped, the init of every node of the lab still on the
/// host (which ends its PID namespace), then removes the cgroup dirs
/// libvirt made for the lab's nodes: what a failed test, or the bug it
/// looks for, left behind.
pub struct KillLeftovers(pub String);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        let part = format!("dclab.{}.", self.0);
        for pid in named(&part, true) {
            // SAFETY: a signal to a process that names one of this test's nodes.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for _ in 0..50 {
            if named(&part, true).is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for dir in cgroup_dirs(&self.0) {
            remove_tree(std::path::Path::new(&dir));
        }
    }
}

/// cgroup dirs libvirt made for the lab's nodes, in every hierarchy.
pub fn cgroup_dirs(lab: &str) -> Vec<String> {
    let part = format!("-dclab.{lab}.");
    fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.flatten()
                .filter_map(|h| fs::read_dir(h.path().join("machine")).ok())
                .flat_map(|m| m.flatten().map(|e| e.path().display().to_string()))
                .filter(|p| p.contains(&part))
                .collect()
        })
        .unwrap_or_default()
}

/// rmdir depth first (a cgroup dir goes once its children have).
fn remove_tree(dir: &std::path::Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        {
            remove_tree(&entry.path());
        }
    }
    let _ = fs::remove_dir(dir);
}
