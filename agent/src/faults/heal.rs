//! Healing. A lease ends (HEAL, a lapse, or found by the agent at start)
//! and its faults are undone, last applied first; each one leaves the
//! lease file only once its heal succeeded. One that fails stays: it is
//! reported to the coordinator with the node states, counted in the
//! metrics, and tried again after 1 s, 2 s, 4 s ... then every 30 s, until
//! it succeeds or its node is no longer on this host. A node the
//! coordinator no longer places here was removed (its lab taken down or
//! moved) with its domain, overlay and taps: nothing of it is left to
//! heal. That is decided only once this host's node set has arrived.

use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;
use tracing::{info, warn};

use super::net;
use crate::nodes::leases::now_ms;
use crate::nodes::ops::Outcome;
use crate::nodes::Context;

/// Ends lease `id` and heals its faults now; a lease this agent does not
/// hold is healed already. A fault that does not heal is retried, and the
/// outcome says so.
pub(crate) async fn heal_lease(ctx: &Arc<Context>, id: &str) -> Outcome {
    let to_heal = ctx.leases.end(id);
    ctx.wake.notify_one();
    ctx.heals_changed.notify_one();
    if !to_heal {
        return Outcome::default();
    }
    let busy = ctx.heal_locks.get(&id.to_string()).lock_owned().await;
    attempt(ctx, id, busy).await
}

/// Starts an attempt for every ended lease whose next one is due, unless
/// one is under way already.
pub(crate) fn spawn_due(ctx: &Arc<Context>) {
    for id in ctx.leases.due(now_ms()) {
        let Ok(busy) = ctx.heal_locks.get(&id).try_lock_owned() else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            attempt(&ctx, &id, busy).await;
        });
    }
}

/// What is left of a lease file no copy of which could be read: the taps
/// of this host's nodes that a cut left down or a netem relay holds.
pub(crate) async fn sweep(ctx: &Arc<Context>) {
    let nodes = ctx
        .desired
        .borrow()
        .as_ref()
        .map(|set| set.nodes.clone())
        .unwrap_or_default();
    let restored = net::sweep(ctx, &nodes).await;
    warn!(
        restored,
        "the lease file was unreadable: restored the taps a fault had left down or relayed"
    );
}

/// One attempt at every fault of ended lease `id`, while `busy` keeps
/// other attempts at it away.
async fn attempt(ctx: &Arc<Context>, id: &str, busy: OwnedMutexGuard<()>) -> Outcome {
    node_set_known(ctx).await;
    let Some(lease) = ctx.leases.get(id).filter(|l| l.healing.is_some()) else {
        return Outcome::default();
    };
    let mut failed = Vec::new();
    for fault in lease.faults.iter().rev() {
        match fault.heal(ctx, id).await {
            Ok(()) => ctx.leases.healed(id, fault),
            Err(e) => failed.push((fault.clone(), e)),
        }
    }
    ctx.wake.notify_one();
    if failed.is_empty() {
        info!(lease = id, faults = lease.faults.len(), "faults healed");
        ctx.heals_changed.notify_one();
        drop(busy);
        ctx.heal_locks.forget(&id.to_string());
        return Outcome::default();
    }
    ctx.metrics.heal_failures.inc_by(failed.len() as u64);
    let errors = failed.iter().map(|(f, e)| (f.clone(), e.to_string())).collect();
    let now = now_ms();
    let healing = ctx.leases.heal_failed(id, errors, now).unwrap_or_default();
    ctx.heals_changed.notify_one();
    let retry_s = healing.next_unix_ms.saturating_sub(now).div_ceil(1000);
    let failures = failed
        .into_iter()
        .map(|(fault, e)| {
            warn!(lease = id, fault = fault.kind(), node = %fault.node(), attempt = healing.failed_attempts,
                retry_s, error = %e, "heal failed; retrying");
            let message = format!(
                "heal of {} failed (attempt {}): {e}; the agent retries in {retry_s} s, and on until it succeeds",
                fault.describe(),
                healing.failed_attempts
            );
            (e.kind(), message)
        })
        .collect();
    Outcome {
        failures,
        ..Outcome::default()
    }
}

/// Waits for this host's first node set: which nodes are here decides
/// what is left to heal.
async fn node_set_known(ctx: &Context) {
    let mut sets = ctx.desired.clone();
    while sets.borrow_and_update().is_none() {
        if sets.changed().await.is_err() {
            return;
        }
    }
}
