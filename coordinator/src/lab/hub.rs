//! The coordinator's side of the node streams: each host's desired lab
//! nodes on a watch channel, operations sent to the connected agent and
//! matched with their results, and the node states agents report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use dclab_proto::error::unavailable;
use dclab_proto::v1;
use dclab_proto::ApiError;
use tokio::sync::{mpsc, oneshot, watch};

use super::model::{NodeKind, APT_CACHE_ROLE};
use crate::model::Topology;

/// A host's desired nodes, and the revision at which they last changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostNodes {
    pub version: u64,
    pub nodes: Vec<v1::DesiredNode>,
}

/// What an agent last reported.
#[derive(Debug, Clone, Default)]
pub struct HostReport {
    pub version: u64,
    /// (lab, node) → (state, error)
    pub nodes: HashMap<(String, String), (v1::NodeState, String)>,
}

struct Connection {
    id: u64,
    ops: mpsc::Sender<v1::Operation>,
}

#[derive(Default)]
struct Inner {
    sets: BTreeMap<String, watch::Sender<HostNodes>>,
    connections: HashMap<String, Connection>,
    pending: HashMap<u64, (String, oneshot::Sender<v1::OperationResult>)>,
    reports: HashMap<String, HostReport>,
    /// Labs with a snapshot operation under way.
    busy: HashSet<String>,
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

pub fn nic(n: &super::model::Nic) -> v1::NodeNic {
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
        let mut inner = self.inner.lock().unwrap();
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
        let mut inner = self.inner.lock().unwrap();
        inner
            .sets
            .entry(host.to_string())
            .or_insert_with(|| watch::channel(HostNodes::default()).0)
            .subscribe()
    }

    /// The version of `host`'s node set: reports older than it are stale.
    pub fn set_version(&self, host: &str) -> u64 {
        self.inner.lock().unwrap().set_version(host)
    }

    /// Registers a node stream of `host`; operations go to the newest one.
    pub fn connect(&self, host: &str, ops: mpsc::Sender<v1::Operation>) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.connections.insert(host.to_string(), Connection { id, ops });
        id
    }

    /// The stream `id` of `host` ended: operations waiting on it fail.
    /// Whether the agent of `host` has its operation stream open now.
    pub fn is_connected(&self, host: &str) -> bool {
        self.inner.lock().unwrap().connections.contains_key(host)
    }

    pub fn disconnect(&self, host: &str, id: u64) {
        let mut inner = self.inner.lock().unwrap();
        if inner.connections.get(host).is_some_and(|c| c.id == id) {
            inner.connections.remove(host);
            inner.pending.retain(|_, (h, _)| h != host);
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
        let mut inner = self.inner.lock().unwrap();
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
            },
        );
    }

    /// What `host` reported for a node, if the report is not stale.
    pub fn node_state(&self, host: &str, lab: &str, node: &str) -> (v1::NodeState, String) {
        let inner = self.inner.lock().unwrap();
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
        let mut inner = self.inner.lock().unwrap();
        if inner.pending.get(&result.id).is_some_and(|(h, _)| h == host) {
            let (_, tx) = inner.pending.remove(&result.id).expect("just checked");
            let _ = tx.send(result);
        }
    }

    /// Sends `op` to the agent of `host` and waits for its result.
    pub async fn run(
        &self,
        host: &str,
        mut op: v1::Operation,
        timeout: Duration,
    ) -> Result<v1::OperationResult, ApiError> {
        let (tx, rx) = oneshot::channel();
        let sender = {
            let mut inner = self.inner.lock().unwrap();
            let Some(conn) = inner.connections.get(host) else {
                return Err(unavailable(format!("the agent of host {host} is not connected")));
            };
            let sender = conn.ops.clone();
            inner.next_id += 1;
            op.id = inner.next_id;
            inner.pending.insert(op.id, (host.to_string(), tx));
            sender
        };
        let id = op.id;
        if sender.send(op).await.is_err() {
            self.inner.lock().unwrap().pending.remove(&id);
            return Err(unavailable(format!("the agent of host {host} disconnected")));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(_)) => Err(unavailable(format!(
                "the agent of host {host} disconnected during the operation"
            ))),
            Err(_) => {
                self.inner.lock().unwrap().pending.remove(&id);
                Err(unavailable(format!(
                    "the agent of host {host} did not answer within {} s",
                    timeout.as_secs()
                )))
            }
        }
    }

    /// Marks `lab` busy for the guard's lifetime; None if it already is.
    pub fn claim<'a>(&'a self, lab: &str) -> Option<LabClaim<'a>> {
        let mut inner = self.inner.lock().unwrap();
        inner.busy.insert(lab.to_string()).then(|| LabClaim {
            hub: self,
            lab: lab.to_string(),
        })
    }

    pub fn is_busy(&self, lab: &str) -> bool {
        self.inner.lock().unwrap().busy.contains(lab)
    }
}

pub struct LabClaim<'a> {
    hub: &'a NodeHub,
    lab: String,
}

impl Drop for LabClaim<'_> {
    fn drop(&mut self) {
        self.hub.inner.lock().unwrap().busy.remove(&self.lab);
    }
}

impl NodeHub {
    /// What `host` reported killing of `lab`'s removed nodes since the last
    /// call; forgotten once taken.
    pub fn take_leftovers(&self, host: &str, lab: &str) -> Vec<v1::NodeLeftovers> {
        let mut inner = self.inner.lock().unwrap();
        inner
            .leftovers
            .remove(&(host.to_string(), lab.to_string()))
            .unwrap_or_default()
    }

    /// The agent of `host` has reconciled its current set and runs none of
    /// `lab`'s nodes.
    pub fn host_clear_of(&self, host: &str, lab: &str) -> bool {
        let inner = self.inner.lock().unwrap();
        let version = inner.set_version(host);
        inner
            .reports
            .get(host)
            .is_some_and(|r| r.version >= version && !r.nodes.keys().any(|(l, _)| l == lab))
    }
}
