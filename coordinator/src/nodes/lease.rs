//! Leases the coordinator holds on agents: ids unique across restarts, and
//! the renewals that keep leases alive on their hosts while the operation
//! that took them lives (a snapshot, an experiment run). When they are
//! dropped (the operation ended, failed or the coordinator died) renewals
//! stop and the agents let the leases lapse.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dclab_proto::v1;
use parking_lot::Mutex;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use super::hub::NodeHub;
use super::ops;

/// How long a snapshot's hold outlives a coordinator that stopped renewing
/// it: nodes held paused or off come back by themselves this long after
/// the coordinator (or its connection to the host) went away.
pub const SNAPSHOT_LEASE_TTL: Duration = Duration::from_secs(10);

/// Mints lease ids: the coordinator's start time and a counter, so a
/// restarted coordinator never reuses an id an agent still holds.
pub struct LeaseIds {
    epoch_ms: u64,
    next: AtomicU64,
}

impl Default for LeaseIds {
    fn default() -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        LeaseIds {
            epoch_ms,
            next: AtomicU64::new(1),
        }
    }
}

impl LeaseIds {
    /// A new lease, `purpose` readable in agent logs (e.g. `snapshot`).
    pub fn lease(&self, purpose: &str, ttl: Duration) -> v1::Lease {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        v1::Lease {
            id: format!("{purpose}-{:x}-{n}", self.epoch_ms),
            ttl_ms: ttl.as_millis() as u32,
        }
    }
}

/// Leases held on hosts, renewed every third of their TTL until dropped.
/// Each host is renewed on its own: one that does not answer (away, stuck,
/// not reading its stream) misses its renewals and its agent lets the
/// leases lapse, while every other host's renewals go on on time.
pub struct Renewals {
    held: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    task: JoinHandle<()>,
}

impl Renewals {
    pub fn start(hub: Arc<NodeHub>, ttl: Duration) -> Renewals {
        let held: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
        let shared = held.clone();
        let task = tokio::spawn(async move {
            let every = ttl / 3;
            let waiting: Arc<Mutex<HashSet<String>>> = Arc::default();
            // Aborted with this task: no renewal outlives the keeper.
            let mut renewals = JoinSet::new();
            loop {
                tokio::time::sleep(every).await;
                while renewals.try_join_next().is_some() {}
                let now: Vec<(String, Vec<String>)> = shared
                    .lock()
                    .iter()
                    .filter(|(_, ids)| !ids.is_empty())
                    .map(|(h, ids)| (h.clone(), ids.iter().cloned().collect()))
                    .collect();
                for (host, ids) in now {
                    // A host still working on the last renewal gets no second one.
                    if !waiting.lock().insert(host.clone()) {
                        continue;
                    }
                    let (hub, waiting) = (hub.clone(), waiting.clone());
                    renewals.spawn(async move {
                        renew(&hub, &host, ids, ttl).await;
                        waiting.lock().remove(&host);
                    });
                }
            }
        });
        Renewals { held, task }
    }

    /// Renewals of one lease on `hosts`, as a snapshot takes it.
    pub fn of(hub: Arc<NodeHub>, hosts: impl IntoIterator<Item = String>, lease: &v1::Lease) -> Renewals {
        let renewals = Renewals::start(hub, Duration::from_millis(u64::from(lease.ttl_ms)));
        for host in hosts {
            renewals.add(&host, &lease.id);
        }
        renewals
    }

    pub fn add(&self, host: &str, lease: &str) {
        self.held
            .lock()
            .entry(host.to_string())
            .or_default()
            .insert(lease.to_string());
    }

    pub fn remove(&self, host: &str, lease: &str) {
        if let Some(ids) = self.held.lock().get_mut(host) {
            ids.remove(lease);
        }
    }
}

impl Drop for Renewals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One renewal of `ids` on `host`, waited for at most a third of the TTL.
async fn renew(hub: &NodeHub, host: &str, ids: Vec<String>, ttl: Duration) {
    let renew = v1::RenewLeases {
        ids,
        ttl_ms: ttl.as_millis() as u32,
    };
    let op = ops::on_host(v1::operation::Action::Renew(renew.clone()));
    // A host that is away misses renewals; its agent lets the lease lapse,
    // which is the point.
    match hub.run(host, op, ttl / 3).await {
        Ok(r) if r.ok => debug!(host, leases = ?renew.ids, "leases renewed"),
        Ok(r) => warn!(host, leases = ?renew.ids, error = %r.error, "leases not renewed"),
        Err(e) => debug!(host, leases = ?renew.ids, error = %e, "leases not renewed"),
    }
}
