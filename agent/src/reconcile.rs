//! Reconciles the desired flows into the bridge: on every change of the
//! desired set or of the attached ports, render and, if the result differs
//! from what was applied, replace the bridge's flows in one bundle. Then
//! acknowledge the version to the coordinator. A restarted ovs-vswitchd
//! or flows deleted behind its back (`bridge_watch`) make it reinstall
//! everything at once; the periodic re-verification stays as a backstop.

use std::collections::BTreeMap;
use std::time::Duration;

use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::AckRequest;
use std::sync::Arc;

use dclab_runtime::net::Channel;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::bridge_watch::{watch_bridge, BridgeEvents};
use crate::desired::Desired;
use crate::joined_down::JoinedDown;
use crate::ovs::{Interface, Ovs, OvsError};
use crate::render::{render, PortMap};

/// How often attached ports are looked at when the interface monitor has
/// said nothing: a safety net, not the way changes are noticed.
const PORT_POLL: Duration = Duration::from_secs(10);
/// How often the bridge is re-checked against the last applied text, to
/// repair flows changed behind the agent's back that the bridge watch did
/// not report (a flow modified, the watch turned off).
const REVERIFY: Duration = Duration::from_secs(60);
/// The first retry after a failed step; later ones wait twice as long, up
/// to `PORT_POLL`.
const RETRY_FIRST: Duration = Duration::from_millis(100);

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
    pub fault_flows: Arc<crate::faults::flow_table::FaultFlows>,
    pub metrics: Arc<crate::metrics::AgentMetrics>,
    /// Reinstall at once when ovs-vswitchd restarts or flows are deleted;
    /// off, only the periodic re-verification repairs them.
    pub bridge_watch: bool,
}

/// Why the flows are reinstalled although nothing the agent knows changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    /// The bridge's OpenFlow connection ended and came back: a restarted
    /// ovs-vswitchd starts with no flows.
    Reconnected,
    /// The bridge holds fewer of the agent's flows than after its last apply.
    FlowsDeleted,
}

impl Repair {
    fn reason(self) -> &'static str {
        match self {
            Repair::Reconnected => "reconnected",
            Repair::FlowsDeleted => "flows_deleted",
        }
    }
}

struct Applied {
    text: String,
    flows: u32,
    missing: u32,
    /// What the text was rendered from: epoch, version, attached ports,
    /// fault flows' generation.
    inputs: (u64, u64, PortMap, u64),
    /// The agent's flows the bridge held right after the apply.
    installed: Option<u64>,
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
        // The monitors are children: they end with the loop.
        let _monitor = AbortOnDrop(monitor);
        let bridge = Arc::new(BridgeEvents::default());
        let _bridge_watch = self
            .bridge_watch
            .then(|| AbortOnDrop(tokio::spawn(watch_bridge(self.ovs.clone(), bridge.clone()))));
        // Kept until a step has put the flows in.
        let mut repair = None;
        let mut retry = Retry::default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = desired.changed() => if changed.is_err() { return },
                _ = ports_changed.notified() => {}
                _ = self.fault_flows.changed.notified() => {}
                _ = bridge.notified() => {}
                _ = retry.due() => {}
                _ = tokio::time::sleep(PORT_POLL) => {}
            }
            retry.woken();
            let seen = bridge.take();
            if seen.reconnected {
                repair = Some(Repair::Reconnected);
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
            if seen.deleted && repair.is_none() && self.flows_lost(applied.as_ref()).await {
                repair = Some(Repair::FlowsDeleted);
            }
            let started = std::time::Instant::now();
            let stepped = self.step(&want, &mut applied, ifaces, &mut repair).await;
            self.metrics
                .reconcile_duration
                .observe(started.elapsed().as_secs_f64());
            match stepped {
                Ok(()) => retry.succeeded(),
                Err(err) => {
                    let retry_in = retry.failed();
                    warn!(host = %self.host_id, error = %err, ?retry_in, "reconcile failed, will retry");
                }
            }
        }
    }

    /// Whether the bridge holds fewer of the agent's flows than right after
    /// the last apply: a deletion the agent's own bundle made leaves the
    /// count as it was then.
    async fn flows_lost(&self, applied: Option<&Applied>) -> bool {
        let Some(expected) = applied.map(|a| a.installed) else {
            return false;
        };
        match (expected, self.ovs.flow_count().await) {
            (Some(expected), Ok(now)) => now < expected,
            _ => true,
        }
    }

    async fn step(
        &self,
        want: &Desired,
        applied: &mut Option<Applied>,
        ifaces: Result<Vec<Interface>, OvsError>,
        repair: &mut Option<Repair>,
    ) -> anyhow::Result<()> {
        let ports = port_map(&self.uplink, &ifaces?);
        let (extra, generation) = self.fault_flows.all();
        let inputs = (want.epoch, want.version, ports, generation);
        // Nothing changed since the last render: only re-verify now and then.
        let fresh = repair.is_none()
            && applied
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
            let installed = self.ovs.flow_count().await.ok();
            if let Some(why) = repair.take().filter(|_| applied.is_some()) {
                info!(host = %self.host_id, reason = why.reason(), flows = rendered.flows, "flows reinstalled");
                self.metrics.bridge_repaired(why.reason());
            }
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
                installed,
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

/// When to step again after a failed one, though nothing woke the loop.
#[derive(Default)]
struct Retry {
    at: Option<tokio::time::Instant>,
    wait: Duration,
}

impl Retry {
    async fn due(&self) {
        match self.at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// A wake-up, for whatever reason, is the retry: one at a time.
    fn woken(&mut self) {
        self.at = None;
    }

    fn failed(&mut self) -> Duration {
        self.wait = (self.wait * 2).clamp(RETRY_FIRST, PORT_POLL);
        self.at = Some(tokio::time::Instant::now() + self.wait);
        self.wait
    }

    fn succeeded(&mut self) {
        *self = Retry::default();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_back_off_up_to_the_port_poll_and_start_over_after_a_success() {
        let mut retry = Retry::default();
        let waits: Vec<Duration> = (0..10).map(|_| retry.failed()).collect();
        assert_eq!(waits[0], RETRY_FIRST);
        assert_eq!(waits[1], RETRY_FIRST * 2);
        assert_eq!(waits[9], PORT_POLL);
        retry.succeeded();
        assert!(retry.at.is_none());
        assert_eq!(retry.failed(), RETRY_FIRST);
        // Due once, then not again until the next failure.
        tokio::time::timeout(Duration::from_secs(1), retry.due())
            .await
            .expect("due");
        retry.woken();
        assert!(tokio::time::timeout(Duration::from_millis(200), retry.due())
            .await
            .is_err());
    }
}
