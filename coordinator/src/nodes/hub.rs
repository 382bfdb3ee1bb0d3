//! The coordinator's side of the node streams: each host's desired lab
//! nodes on a watch channel, operations sent to the connected agent and
//! matched with their results, and the node states agents report.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use dclab_proto::error::unavailable;
use dclab_proto::v1;
use dclab_proto::ApiError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::model::lab::{NodeKind, APT_CACHE_ROLE};
use crate::model::Topology;

/// A host's desired nodes, and the revision at which they last changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostNodes {
    pub version: u64,
    pub nodes: Vec<v1::DesiredNode>,
}

/// What an agent last reported.
#[derive(Debug, Clone)]
pub struct HostReport {
    pub version: u64,
    /// (lab, node) → (state, error)
    pub nodes: HashMap<(String, String), (v1::NodeState, String)>,
    /// Faults whose heal has not succeeded yet; the agent retries them.
    pub pending_heals: Vec<v1::PendingHeal>,
    pub at: Instant,
}

struct Connection {
    id: u64,
    ops: mpsc::Sender<v1::Operation>,
    /// Cancelled when a newer stream of the same host replaces this one,
    /// or the coordinator shuts down: the stream then ends.
    end: CancellationToken,
}

/// An operation sent, waiting for its result: the host and the stream it
/// went down.
struct Pending {
    host: String,
    stream: u64,
    result: oneshot::Sender<v1::OperationResult>,
}

#[derive(Default)]
struct Inner {
    sets: BTreeMap<String, watch::Sender<HostNodes>>,
    connections: HashMap<String, Connection>,
    pending: HashMap<u64, Pending>,
    reports: HashMap<String, HostReport>,
    /// The coordinator is shutting down: streams end as they connect.
    closed: bool,
    /// (host, lab) → removed nodes whose processes outlived their stop,
    /// as agents reported them, until a lab delete collects them.
    leftovers: HashMap<(String, String), Vec<v1::NodeLeftovers>>,
    next_id: u64,
}

impl Inner {
    fn set_version(&self, host: &str) -> u64 {
        self.sets.get(host).map_or(0, |tx| tx.borrow().version)
    }
}

#[derive(Default)]
pub struct NodeHub {
    inner: Mutex<Inner>,
    pub lease_ids: super::lease::LeaseIds,
    /// Who holds each lab: a snapshot operation or a run.
    pub claims: std::sync::Arc<super::claims::Claims>,
}

/// The nodes every host runs, as its agent gets them: one pass over the labs.
pub fn desired_by_host(topo: &Topology) -> BTreeMap<String, Vec<v1::DesiredNode>> {
    let mut by_host: BTreeMap<String, Vec<v1::DesiredNode>> = BTreeMap::new();
    for lab in topo.labs.values() {
        let proxy = lab.apt_proxy();
        for n in &lab.nodes {
            let apt_proxy = match (&proxy, n.spec.role == APT_CACHE_ROLE) {
                (Some(p), false) => p.clone(),
                _ => String::new(),
            };
            by_host.entry(n.host.clone()).or_default().push(v1::DesiredNode {
                lab: lab.name.clone(),
                name: n.spec.name.clone(),
                role: n.spec.role.clone(),
                vcpus: n.spec.vcpus,
                memory_mib: n.spec.memory_mib,
                image: n.spec.image.clone(),
                disks_mib: n.spec.disks_mib.clone(),
                nics: n.nics.iter().map(nic).collect(),
                apt_proxy,
                ssh_keys: lab.ssh_keys.clone(),
                kind: match n.spec.kind {
                    NodeKind::Vm => v1::NodeKind::Vm,
                    NodeKind::Container => v1::NodeKind::Container,
                }
                .into(),
            });
        }
    }
    by_host
}

pub fn nic(n: &crate::model::lab::Nic) -> v1::NodeNic {
    v1::NodeNic {
        network: n.network.clone(),
        ip: n.ip.clone(),
        prefix: u32::from(n.prefix),
        mac: n.mac.clone(),
        port: n.port.clone(),
        tap: n.tap.clone(),
    }
}

impl NodeHub {
    /// Recomputes the node sets from the labs; hosts whose set changed get
    /// it with `revision` as its version. Only hosts with nodes, now or
    /// before, are looked at.
    pub fn publish(&self, topo: &Topology, revision: u64) {
        let mut desired = desired_by_host(topo);
        let mut inner = self.inner.lock();
        for (host, tx) in &inner.sets {
            if !tx.borrow().nodes.is_empty() {
                desired.entry(host.clone()).or_default();
            }
        }
        for (host, nodes) in desired {
            let tx = inner
                .sets
                .entry(host)
                .or_insert_with(|| watch::channel(HostNodes::default()).0);
            tx.send_if_modified(|current| {
                if current.nodes == nodes {
                    return false;
                }
                *current = HostNodes {
                    version: revision,
                    nodes,
                };
                true
            });
        }
    }

    pub fn subscribe(&self, host: &str) -> watch::Receiver<HostNodes> {
        let mut inner = self.inner.lock();
        inner
            .sets
            .entry(host.to_string())
            .or_insert_with(|| watch::channel(HostNodes::default()).0)
            .subscribe()
    }

    /// The version of `host`'s node set: reports older than it are stale.
    pub fn set_version(&self, host: &str) -> u64 {
        self.inner.lock().set_version(host)
    }

    /// Registers a node stream of `host`; operations go to the newest one.
    /// An older stream of the host is told to end (the token it holds is
    /// cancelled) and the operations sent down it fail at once, instead of
    /// waiting out their timeouts for answers that may never come.
    pub fn connect(&self, host: &str, ops: mpsc::Sender<v1::Operation>) -> (u64, CancellationToken) {
        let mut inner = self.inner.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        let end = CancellationToken::new();
        if inner.closed {
            end.cancel();
        }
        let conn = Connection {
            id,
            ops,
            end: end.clone(),
        };
        if let Some(old) = inner.connections.insert(host.to_string(), conn) {
            old.end.cancel();
            inner.pending.retain(|_, p| p.stream != old.id);
        }
        (id, end)
    }

    /// Whether `close_all` was called: new streams are refused.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Ends every node stream and fails every operation waiting on one:
    /// the coordinator is shutting down.
    pub fn close_all(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        for conn in inner.connections.values() {
            conn.end.cancel();
        }
        inner.pending.clear();
    }

    /// Whether the agent of `host` has its operation stream open now.
    pub fn is_connected(&self, host: &str) -> bool {
        self.inner.lock().connections.contains_key(host)
    }

    /// The stream `id` of `host` ended: operations waiting on it fail.
    pub fn disconnect(&self, host: &str, id: u64) {
        let mut inner = self.inner.lock();
        inner.pending.retain(|_, p| p.stream != id);
        if inner.connections.get(host).is_some_and(|c| c.id == id) {
            inner.connections.remove(host);
            inner.reports.remove(host);
        }
    }

    pub fn report(&self, r: v1::NodeReport) {
        let nodes = r
            .nodes
            .into_iter()
            .map(|n| {
                let state = v1::NodeState::try_from(n.state).unwrap_or(v1::NodeState::Unspecified);
                ((n.lab, n.name), (state, n.error))
            })
            .collect();
        let mut inner = self.inner.lock();
        for mut left in r.leftovers {
            left.host = r.host_id.clone();
            let key = (r.host_id.clone(), left.lab.clone());
            inner.leftovers.entry(key).or_default().push(left);
        }
        inner.reports.insert(
            r.host_id,
            HostReport {
                version: r.version,
                nodes,
                pending_heals: r.pending_heals,
                at: Instant::now(),
            },
        );
    }

    /// The faults `host`'s agent last said await their heal, and when it
    /// said so; None while it is not connected (or has not reported).
    pub fn pending_heals(&self, host: &str) -> Option<(Instant, Vec<v1::PendingHeal>)> {
        let inner = self.inner.lock();
        let report = inner.reports.get(host)?;
        Some((report.at, report.pending_heals.clone()))
    }

    /// Faults awaiting their heal over every connected host.
    pub fn pending_heal_count(&self) -> usize {
        let inner = self.inner.lock();
        inner.reports.values().map(|r| r.pending_heals.len()).sum()
    }

    /// What `host` reported for a node, if the report is not stale.
    pub fn node_state(&self, host: &str, lab: &str, node: &str) -> (v1::NodeState, String) {
        let inner = self.inner.lock();
        let version = inner.set_version(host);
        let Some(report) = inner.reports.get(host).filter(|r| r.version >= version) else {
            return (v1::NodeState::Pending, String::new());
        };
        report
            .nodes
            .get(&(lab.to_string(), node.to_string()))
            .cloned()
            .unwrap_or((v1::NodeState::Pending, String::new()))
    }

    pub fn complete(&self, host: &str, result: v1::OperationResult) {
        let mut inner = self.inner.lock();
        if inner.pending.get(&result.id).is_some_and(|p| p.host == host) {
            if let Some(p) = inner.pending.remove(&result.id) {
                let _ = p.result.send(result);
            }
        }
    }

    /// Sends `op` to the agent of `host` and waits for its result, both
    /// within `timeout`: an agent that stops reading its stream (stuck, or
    /// its connection wedged) fails this call in time, never its caller's
    /// other hosts.
    pub async fn run(
        &self,
        host: &str,
        mut op: v1::Operation,
        timeout: Duration,
    ) -> Result<v1::OperationResult, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (tx, rx) = oneshot::channel();
        let sender = {
            let mut inner = self.inner.lock();
            let Some(conn) = inner.connections.get(host) else {
                return Err(unavailable(format!("the agent of host {host} is not connected")));
            };
            let (sender, stream) = (conn.ops.clone(), conn.id);
            inner.next_id += 1;
            op.id = inner.next_id;
            let pending = Pending {
                host: host.to_string(),
                stream,
                result: tx,
            };
            inner.pending.insert(op.id, pending);
            sender
        };
        let id = op.id;
        let forget = || {
            self.inner.lock().pending.remove(&id);
        };
        match tokio::time::timeout_at(deadline, sender.send(op)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                forget();
                return Err(unavailable(format!("the agent of host {host} disconnected")));
            }
            Err(_) => {
                forget();
                return Err(unavailable(format!(
                    "the agent of host {host} is not taking operations (its stream is full for {} s); \
                     it may be stuck",
                    timeout.as_secs()
                )));
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(unavailable(format!(
                "the agent of host {host} disconnected during the operation"
            ))),
            Err(_) => {
                forget();
                Err(unavailable(format!(
                    "the agent of host {host} did not answer within {} s",
                    timeout.as_secs()
                )))
            }
        }
    }
}

impl NodeHub {
    /// What `host` reported killing of `lab`'s removed nodes since the last
    /// call; forgotten once taken.
    pub fn take_leftovers(&self, host: &str, lab: &str) -> Vec<v1::NodeLeftovers> {
        let mut inner = self.inner.lock();
        inner
            .leftovers
            .remove(&(host.to_string(), lab.to_string()))
            .unwrap_or_default()
    }

    /// The agent of `host` has reconciled its current set and runs none of
    /// `lab`'s nodes.
    pub fn host_clear_of(&self, host: &str, lab: &str) -> bool {
        let inner = self.inner.lock();
        let version = inner.set_version(host);
        inner
            .reports
            .get(host)
            .is_some_and(|r| r.version >= version && !r.nodes.keys().any(|(l, _)| l == lab))
    }
}
