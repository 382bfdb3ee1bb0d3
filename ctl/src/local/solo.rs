//! A coordinator alone, with no hosts or OvS: the control plane for
//! benchmarks whose agents are simulated.

use anyhow::Context;

use super::cluster::Cluster;
use super::state::{ClusterState, Mode};
use super::up::refuse_if_exists;

impl Cluster {
    /// Starts a coordinator with certificates for an operator and for the
    /// agents of `agent_hosts`; `down` removes it like any cluster.
    pub fn coordinator_only(name: &str, agent_hosts: &[String], insecure: bool) -> anyhow::Result<Cluster> {
        refuse_if_exists(name)?;
        let mut cluster = Cluster {
            state: ClusterState::new(name, Mode::Dclab),
        };
        let built = (|| {
            cluster.save()?;
            if !insecure {
                cluster.issue_certificates_for(agent_hosts)?;
            }
            cluster.start_coordinator().context("starting the coordinator")?;
            cluster.state.complete = true;
            cluster.save()
        })();
        if let Err(err) = built {
            let _ = Cluster::down(name);
            return Err(err.context(format!("coordinator-only cluster {name} failed (cleaned up)")));
        }
        Ok(cluster)
    }

    /// Stops the coordinator (SIGTERM) and starts it again on the same
    /// address and data, as after a crash-free restart.
    pub fn restart_coordinator(&mut self) -> anyhow::Result<()> {
        self.kill_coordinator(libc::SIGTERM)?;
        self.start_coordinator()
    }
}
