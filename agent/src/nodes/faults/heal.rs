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

use super::{net, Applied, COMMAND_TIMEOUT, FLOWS_INSTALL_TIMEOUT};
use crate::exec_output::{CommandOutput, MAX_KEPT};
use crate::libvirt::VmState;
use crate::nodes::driver::{key, NodeError, NodeResult};
use crate::nodes::leases::now_ms;
use crate::nodes::ops::{apply as node_apply, NodeAction, Outcome};
use crate::nodes::Context;

/// Ends lease `id` and heals its faults now; a lease this agent does not
/// hold is healed already. A fault that does not heal is retried, and the
/// outcome says so.
pub async fn heal_lease(ctx: &Arc<Context>, id: &str) -> Outcome {
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
pub fn spawn_due(ctx: &Arc<Context>) {
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
pub async fn sweep(ctx: &Arc<Context>) {
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
        match heal(ctx, id, fault).await {
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
                describe(&fault),
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

fn describe(fault: &Applied) -> String {
    match fault.node() {
        node if node.is_empty() => fault.kind().to_string(),
        node => format!("{} on node {node}", fault.kind()),
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

async fn heal(ctx: &Arc<Context>, lease: &str, applied: &Applied) -> NodeResult<()> {
    let here = |lab: &str, node: &str| ctx.desired_node(lab, node);
    match applied {
        Applied::Power { lab, node } => {
            let Some(n) = here(lab, node) else {
                return Ok(());
            };
            let lock = ctx.locks.get(&key(&n));
            let _guard = lock.lock_owned().await;
            let lease = lease.to_string();
            let probe = n.clone();
            ctx.blocking(move |ctx| node_apply(ctx, &probe, &NodeAction::Resume(lease)))
                .await?;
            net::replug(ctx, &n).await
        }
        Applied::LinkCut { lab, node, tap } => {
            if here(lab, node).is_none() {
                ctx.taps.release_fault(tap);
                return Ok(());
            }
            net::link_restore(ctx, tap).await
        }
        // With its node gone this still stops the relay and removes its
        // veth; the tap's absence is no failure.
        Applied::Netem { tap, port, relay, .. } => net::netem_heal(ctx, lease, tap, port, relay).await,
        Applied::Flows { .. } => match ctx.fault_flows.remove(lease) {
            Some(generation)
                if !ctx
                    .fault_flows
                    .wait_installed(generation, FLOWS_INSTALL_TIMEOUT)
                    .await =>
            {
                Err(NodeError::Failed(anyhow::anyhow!(
                    "the fault's flows were not removed from OvS within {FLOWS_INSTALL_TIMEOUT:?}"
                )))
            }
            _ => Ok(()),
        },
        Applied::Command { lab, node, heal } => {
            let Some(n) = here(lab, node) else {
                return Ok(());
            };
            // One exec at a time per node: a VM's console takes one client.
            let _console = ctx.exec_locks.get(&key(&n)).lock_owned().await;
            let heal = heal.clone();
            ctx.blocking(move |ctx| {
                let driver = ctx.drivers.for_node(&n)?;
                // Off or frozen, it cannot run the heal: said plainly, not
                // after a console's timeout.
                let state = driver.state(&n)?;
                if state != Some(VmState::Running) {
                    let state = state.map_or("not defined".into(), |s| format!("{s:?}").to_lowercase());
                    return Err(NodeError::Failed(anyhow::anyhow!(
                        "node {} is {state}, not running: {heal:?} cannot run in it yet",
                        n.name
                    )));
                }
                let mut output = CommandOutput::kept(MAX_KEPT);
                let code = driver.exec(&n, &heal, COMMAND_TIMEOUT, &mut output)?;
                if code != 0 {
                    return Err(NodeError::Failed(anyhow::anyhow!(
                        "{heal:?} exited {code}: {}",
                        output.text().trim()
                    )));
                }
                Ok(())
            })
            .await
        }
    }
}
