//! Reconciles the desired flows into the bridge: on every change of the
//! desired set or of the attached ports, render and, if the result differs
//! from what was applied, replace the bridge's flows in one bundle. Then
//! acknowledge the version to the coordinator.

use std::collections::BTreeMap;
use std::time::Duration;

use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::AckRequest;
use std::sync::Arc;

use dclab_proto::net::Channel;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::desired::Desired;
use crate::joined_down::JoinedDown;
use crate::ovs::{Interface, Ovs, OvsError};
use crate::render::{render, PortMap};

/// How often attached ports are looked at when the interface monitor has
/// said nothing: a safety net, not the way changes are noticed.
const PORT_POLL: Duration = Duration::from_secs(10);
/// How often the bridge is re-checked against the last applied text, to
/// repair flows changed behind the agent's back.
const REVERIFY: Duration = Duration::from_secs(60);

pub struct Reconciler {
    pub ovs: Ovs,
    pub host_id: String,
    pub uplink: String,
    /// ovs-vswitchd's namespace when it is not the agent's (`--vm-netns`).
    pub ovs_netns: Option<String>,
    /// Taps a fault holds down: never brought up by `JoinedDown`.
    pub faulted_taps: crate::nodes::FaultedTaps,
    pub channel: Channel,
    /// Flows faults add above the pipeline (partitions).
    pub fault_flows: Arc<crate::fault_flows::FaultFlows>,
    pub metrics: Arc<crate::metrics::AgentMetrics>,
}

struct Applied {
    text: String,
    flows: u32,
    missing: u32,
    /// What the text was rendered from: epoch, version, attached ports,
    /// fault flows' generation.
    inputs: (u64, u64, PortMap, u64),
    /// What the coordinator was last told: epoch, version, missing ports.
    acked: Option<(u64, u64, u32)>,
    at: tokio::time::Instant,
}

impl Reconciler {
    pub async fn run(self, mut desired: watch::Receiver<Option<Desired>>, stop: CancellationToken) {
        let mut applied: Option<Applied> = None;
        let mut joined = JoinedDown::new(self.ovs_netns.clone(), self.faulted_taps.clone());
        let ports_changed = Arc::new(Notify::new());
        let monitor = tokio::spawn(crate::monitor::watch_interfaces(
            self.ovs.db.clone(),
            ports_changed.clone(),
        ));
        // The monitor is an ovsdb-client child: it ends with the loop.
        let _monitor = AbortOnDrop(monitor);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = desired.changed() => if changed.is_err() { return },
                _ = ports_changed.notified() => {}
                _ = self.fault_flows.changed.notified() => {}
                _ = tokio::time::sleep(PORT_POLL) => {}
            }
            // Before any desired state too: a device's flags are not the
            // coordinator's business.
            let ifaces = self.ovs.interfaces().await;
            if let Ok(ifaces) = &ifaces {
                joined.repair(&self.host_id, &self.uplink, ifaces).await;
            }
            let Some(want) = desired.borrow_and_update().clone() else {
                continue;
            };
            let started = std::time::Instant::now();
            let stepped = self.step(&want, &mut applied, ifaces).await;
            self.metrics
                .reconcile_duration
                .observe(started.elapsed().as_secs_f64());
            if let Err(err) = stepped {
                warn!(host = %self.host_id, error = %err, "reconcile failed, will retry");
            }
        }
    }

    async fn step(
        &self,
        want: &Desired,
        applied: &mut Option<Applied>,
        ifaces: Result<Vec<Interface>, OvsError>,
    ) -> anyhow::Result<()> {
        let ports = port_map(&self.uplink, &ifaces?);
        let (extra, generation) = self.fault_flows.all();
        let inputs = (want.epoch, want.version, ports, generation);
        // Nothing changed since the last render: only re-verify now and then.
        let fresh = applied
            .as_ref()
            .is_some_and(|a| a.inputs == inputs && a.at.elapsed() < REVERIFY);
        if !fresh {
            let rendered = render(want.flows.iter().chain(extra.iter()), &inputs.2);
            let changed = applied.as_ref().is_none_or(|a| a.text != rendered.text);
            let file = tempfile::Builder::new().prefix("dclab-flows").tempfile()?;
            std::fs::write(file.path(), &rendered.text)?;
            if let Err(e) = self.ovs.replace_flows(&file.path().to_string_lossy()).await {
                self.metrics.bundle_failures.inc();
                return Err(e.into());
            }
            let faults_moved = applied.as_ref().is_none_or(|a| a.inputs.3 != generation);
            if faults_moved && generation > 0 {
                // Packets of flows the datapath has cached take the old
                // path until revalidated, which `revalidator/wait` showed
                // to take about 500 ms (a revalidator round). Purging the
                // cache instead sends the next packets up to be translated
                // by the new flows at once, at the cost of one upcall per
                // flow on this host.
                self.ovs.appctl(&["revalidator/purge"]).await?;
            }
            self.fault_flows.installed(generation);
            if changed {
                let first = applied.is_none();
                info!(host = %self.host_id, version = want.version, flows = rendered.flows, first, "flows applied");
            } else {
                debug!(host = %self.host_id, "flows re-verified");
            }
            if !rendered.missing.is_empty() {
                info!(host = %self.host_id, ports = ?rendered.missing, "waiting for ports to be attached");
            }
            self.metrics.flows_installed.set(rendered.flows as i64);
            self.metrics.ports_unattached.set(rendered.missing.len() as i64);
            let acked = applied.as_ref().and_then(|a| a.acked);
            *applied = Some(Applied {
                text: rendered.text,
                flows: rendered.flows as u32,
                missing: rendered.missing.len() as u32,
                inputs,
                acked,
                at: tokio::time::Instant::now(),
            });
        }
        let a = applied.as_mut().expect("set above");
        let report = (want.epoch, want.version, a.missing);
        if a.acked != Some(report) {
            self.ack(want.version, a.flows, a.missing).await?;
            a.acked = Some(report);
            self.metrics.applied_version.set(want.version as i64);
        }
        Ok(())
    }

    async fn ack(&self, version: u64, flow_count: u32, missing_ports: u32) -> Result<(), tonic::Status> {
        let mut client = AgentControlClient::new(self.channel.clone());
        client
            .ack(AckRequest {
                host_id: self.host_id.clone(),
                version,
                flow_count,
                missing_ports,
            })
            .await?;
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// OvS ports by the topology port they carry: `external_ids:iface-id` as
/// OpenStack and libvirt set it, else the interface name.
pub fn port_map(uplink: &str, ifaces: &[Interface]) -> PortMap {
    let mut ports = BTreeMap::new();
    let mut uplink_port = None;
    for iface in ifaces.iter().filter(|i| i.ofport > 0) {
        if iface.name == uplink {
            uplink_port = Some(iface.ofport);
            continue;
        }
        ports.insert(
            iface.iface_id.clone().unwrap_or_else(|| iface.name.clone()),
            iface.ofport,
        );
    }
    PortMap {
        uplink: uplink_port,
        ports,
    }
}
