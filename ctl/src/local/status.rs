//! A snapshot of a cluster for `ctl local status`: what was recorded and
//! whether each process still runs.

use serde::Serialize;

use super::cluster::Cluster;
use super::process;
use super::state::{InstanceState, Mode, ProcRecord};

#[derive(Debug, Clone, Serialize)]
pub struct ProcStatus {
    pub program: String,
    pub pid: i32,
    pub alive: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub id: String,
    pub netns: String,
    pub processes: Vec<ProcStatus>,
    pub agent_log: Option<String>,
    pub agent_metrics: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub mode: Mode,
    pub complete: bool,
    pub coordinator_url: Option<String>,
    pub coordinator: Option<ProcStatus>,
    pub coordinator_log: Option<String>,
    pub coordinator_metrics: Option<String>,
    pub hosts: Vec<HostStatus>,
    pub instances: Vec<InstanceState>,
}

fn proc_status(record: &ProcRecord) -> ProcStatus {
    ProcStatus {
        program: record.program.clone(),
        pid: record.pid,
        alive: process::is_alive(record),
    }
}

impl Cluster {
    pub fn status(&self) -> ClusterStatus {
        let state = self.state();
        // Plain clusters run OvS only.
        let daemons = state.mode == Mode::Dclab;
        ClusterStatus {
            name: state.name.clone(),
            mode: state.mode,
            complete: state.complete,
            coordinator_url: state.coordinator_url.clone(),
            coordinator: state.coordinator.as_ref().map(proc_status),
            coordinator_log: daemons.then(|| self.coordinator_log().display().to_string()),
            coordinator_metrics: self.coordinator_metrics_url(),
            hosts: state
                .hosts
                .iter()
                .map(|h| HostStatus {
                    id: h.id.clone(),
                    netns: h.netns.clone(),
                    processes: [&h.ovsdb, &h.vswitchd, &h.agent]
                        .into_iter()
                        .flatten()
                        .map(proc_status)
                        .collect(),
                    agent_log: daemons.then(|| self.agent_log(&h.id).display().to_string()),
                    agent_metrics: self.agent_metrics_url(&h.id),
                })
                .collect(),
            instances: state.instances.clone(),
        }
    }
}
