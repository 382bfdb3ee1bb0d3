//! Removing everything a cluster created. Idempotent and tolerant of a
//! half-built or corrupt state: it also sweeps pidfiles and namespaces by
//! the cluster's prefix. Processes die only by recorded and verified pid.

use std::path::Path;
use std::time::Duration;

use super::cluster::Cluster;
use super::netns;
use super::process::{self, read_pidfile};
use super::state::{cluster_dir, netns_prefix, validate_cluster_name, ClusterState, ProcRecord};

const STOP_GRACE: Duration = Duration::from_secs(3);

impl Cluster {
    /// Removes the cluster `name`; returns what it removed (empty if none).
    pub fn down(name: &str) -> anyhow::Result<Vec<String>> {
        validate_cluster_name(name)?;
        let mut removed = Vec::new();
        let dir = cluster_dir(name);
        let state = ClusterState::load(name).ok();

        if let Some(state) = &state {
            for host in &state.hosts {
                stop(
                    host.agent.as_ref(),
                    &format!("agent of {}", host.id),
                    &mut removed,
                );
            }
            stop(state.coordinator.as_ref(), "coordinator", &mut removed);
        }
        // With the agents gone, lab nodes are removed here: libvirtd is
        // shared by the simulated hosts and outlives the cluster.
        for host_dir in subdirs(&dir) {
            remove_lab_nodes(&host_dir.join("labs"), &mut removed);
        }
        // OvS daemons by their pidfiles too: covers a crash between start
        // and the state save. The pid is still checked against the program.
        for host_dir in subdirs(&dir) {
            let host = host_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            for (file, program) in [("vswitchd.pid", "ovs-vswitchd"), ("ovsdb.pid", "ovsdb-server")] {
                if let Ok(record) = read_pidfile(&host_dir.join(file), program) {
                    stop(Some(&record), &format!("{program} of {host}"), &mut removed);
                }
            }
        }
        if let Some(state) = &state {
            for host in &state.hosts {
                stop(
                    host.vswitchd.as_ref(),
                    &format!("ovs-vswitchd of {}", host.id),
                    &mut removed,
                );
                stop(
                    host.ovsdb.as_ref(),
                    &format!("ovsdb-server of {}", host.id),
                    &mut removed,
                );
            }
        }

        // Instances first, the switch last: deleting a namespace also
        // deletes the veth ends in it, and their peers with them.
        let mut namespaces = netns::list_with_prefix(&netns_prefix(name))?;
        namespaces.sort_by_key(|ns| namespace_rank(name, ns));
        for ns in namespaces {
            match netns::delete(&ns) {
                Ok(()) => removed.push(format!("namespace {ns}")),
                Err(err) => eprintln!("warning: {err:#}"),
            }
        }

        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
            removed.push(format!("directory {}", dir.display()));
        }
        Ok(removed)
    }
}

fn stop(record: Option<&ProcRecord>, what: &str, removed: &mut Vec<String>) {
    if let Some(record) = record {
        if process::stop(record, STOP_GRACE) {
            removed.push(format!("{what} (pid {})", record.pid));
        }
    }
}

/// The lab nodes an agent kept under `labs/<lab>/<node>`, removed by the
/// agent binary's own `cleanup` (it knows what each kind of node is).
fn remove_lab_nodes(labs: &Path, removed: &mut Vec<String>) {
    if subdirs(labs).is_empty() {
        return;
    }
    let agent = match process::find_binary("agent") {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("warning: cannot remove lab nodes under {}: {e:#}", labs.display());
            return;
        }
    };
    let out = std::process::Command::new(agent)
        .arg("cleanup")
        .arg("--lab-dir")
        .arg(labs)
        .output();
    match out {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            removed.extend(
                stdout
                    .lines()
                    .filter_map(|l| l.strip_prefix("removed "))
                    .map(str::to_string),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                eprintln!(
                    "warning: lab nodes under {} not all removed: {}",
                    labs.display(),
                    stderr.trim()
                );
            }
        }
        Err(e) => eprintln!("warning: cannot run the agent's cleanup: {e}"),
    }
}

fn subdirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn namespace_rank(name: &str, ns: &str) -> u8 {
    let rest = &ns[netns_prefix(name).len()..];
    if rest.starts_with("i-") {
        0
    } else if rest == "sw" {
        2
    } else {
        1
    }
}
