//! Leases the coordinator holds on agents: ids unique across restarts, and
//! a keeper that renews a lease on its hosts while the operation that took
//! it lives. When the keeper is dropped (the operation ended, failed or
//! the coordinator died) renewals stop and the agents let the lease lapse.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dclab_proto::v1;
use tokio::task::JoinHandle;
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

/// Renews one lease on a set of hosts every third of its TTL until dropped.
pub struct LeaseKeeper {
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    pub fn start(hub: Arc<NodeHub>, hosts: Vec<String>, lease: v1::Lease) -> LeaseKeeper {
        let ttl = Duration::from_millis(u64::from(lease.ttl_ms));
        let every = ttl / 3;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for host in &hosts {
                    let renew = v1::RenewLeases {
                        ids: vec![lease.id.clone()],
                        ttl_ms: lease.ttl_ms,
                    };
                    let op = ops::on_host(v1::operation::Action::Renew(renew));
                    // A host that is away misses renewals; its agent lets
                    // the lease lapse, which is the point.
                    match hub.run(host, op, every).await {
                        Ok(r) if r.ok => debug!(host, lease = %lease.id, "lease renewed"),
                        Ok(r) => warn!(host, lease = %lease.id, error = %r.error, "lease not renewed"),
                        Err(e) => debug!(host, lease = %lease.id, error = %e, "lease not renewed"),
                    }
                }
            }
        });
        LeaseKeeper { task }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
