//! Runs the coordinator's operations on this host's nodes: each node on
//! its own blocking thread (libvirt calls block), all nodes of an
//! operation at once, answered with one `ReportOperation`.
//!
//! Operations take the node locks in the order they arrive, before the
//! next operation is looked at, so PAUSE → SNAPSHOT → RESUME on one node
//! run in that order even though each runs in its own task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dclab_proto::net::Channel;
use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::{DesiredNode, Operation, OperationKind, OperationResult};
use tokio::sync::mpsc;
use tracing::{info, warn, Instrument};

use super::layout::{domain_name, NodeKey};
use super::taps::TapView;
use super::Context;
use crate::libvirt::VmState;

mod exec;

/// How long a guest gets to power off before the plug is pulled.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(channel: Channel, ctx: Arc<Context>, mut ops: mpsc::UnboundedReceiver<Operation>) {
    let client = AgentControlClient::new(channel);
    while let Some(op) = ops.recv().await {
        let started = Instant::now();
        let kind = OperationKind::try_from(op.kind).unwrap_or(OperationKind::Unspecified);
        let (known, unknown) = split_nodes(&ctx, &op);
        info!(id = op.id, kind = kind.as_str_name(), lab = %op.lab, nodes = ?op.nodes, "operation");
        // A child of the coordinator's span that sent it, when traced.
        let span = tracing::info_span!("operation", host = %ctx.host_id, kind = kind.as_str_name(), lab = %op.lab, nodes = ?op.nodes);
        dclab_proto::telemetry::adopt(&span, &op.traceparent);
        let (ctx, client) = (ctx.clone(), client.clone());
        if kind == OperationKind::Exec {
            let work = async move {
                let result = exec::run(&ctx, &op, known, unknown).await;
                answer(client, &ctx.host_id, op.id, started, result).await;
            };
            tokio::spawn(work.instrument(span));
            continue;
        }
        let mut guards = Vec::with_capacity(known.len());
        for node in &known {
            let key = (node.lab.clone(), node.name.clone());
            guards.push(ctx.locks.get(&key).lock_owned().await);
        }
        let work = async move {
            let failures = run_on_nodes(&ctx, kind, &op, known, unknown).await;
            drop(guards);
            let result = Outcome {
                failures,
                ..Outcome::default()
            };
            answer(client, &ctx.host_id, op.id, started, result).await;
        };
        tokio::spawn(work.instrument(span));
    }
}

/// What an operation came to: failures name each node and why.
#[derive(Debug, Default)]
pub struct Outcome {
    pub failures: Vec<String>,
    pub exit_code: i32,
    pub output: String,
}

/// The operation's nodes this host runs (each once) and an error for
/// every other one.
fn split_nodes(ctx: &Context, op: &Operation) -> (Vec<DesiredNode>, Vec<String>) {
    let mut known: Vec<DesiredNode> = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in &op.nodes {
        if !seen.insert(name) {
            continue;
        }
        match ctx.desired_node(&op.lab, name) {
            Some(node) => known.push(node),
            None => unknown.push(not_here(&op.lab, name, &ctx.host_id)),
        }
    }
    (known, unknown)
}

pub fn not_here(lab: &str, node: &str, host: &str) -> String {
    format!("node {node} of lab {lab} is not on host {host}")
}

async fn run_on_nodes(
    ctx: &Arc<Context>,
    kind: OperationKind,
    op: &Operation,
    known: Vec<DesiredNode>,
    mut failures: Vec<String>,
) -> Vec<String> {
    if matches!(kind, OperationKind::Unspecified | OperationKind::Exec) {
        failures.push(format!(
            "operation kind {} is unknown to the agent of host {}; upgrade the agent",
            op.kind, ctx.host_id
        ));
        return failures;
    }
    let tasks: Vec<_> = known
        .into_iter()
        .map(|node| {
            let (ctx, snapshot) = (ctx.clone(), op.snapshot.clone());
            tokio::spawn(async move {
                let name = node.name.clone();
                (name, on_node(&ctx, kind, node, snapshot).await)
            })
        })
        .collect();
    for task in tasks {
        match task.await {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => failures.push(format!("node {name}: {e:#}")),
            Err(e) => failures.push(format!("a node task failed: {e}")),
        }
    }
    failures
}

async fn on_node(
    ctx: &Arc<Context>,
    kind: OperationKind,
    node: DesiredNode,
    snapshot: String,
) -> anyhow::Result<()> {
    let key = (node.lab.clone(), node.name.clone());
    let grace = shutdown_grace(&node);
    ctx.blocking(move |ctx| apply(ctx, &key, kind, &snapshot, grace))
        .await?;
    let may_restart = matches!(kind, OperationKind::Resume | OperationKind::Revert);
    if may_restart && !node.nics.is_empty() {
        // Starting (or reverting into) a stopped domain makes new taps:
        // plug them now rather than on the next reconcile pass.
        let domain = domain_name(&node.lab, &node.name);
        let state = ctx
            .blocking(move |ctx| Ok(ctx.libvirt.get()?.state(&domain)?))
            .await?;
        if matches!(state, Some(VmState::Running | VmState::Paused)) {
            let view = TapView::fetch(ctx.taps.ovs()).await?;
            ctx.taps.plug(&node.nics, &view).await?;
        }
    }
    Ok(())
}

/// One operation on one node's domain, with its hold bookkeeping. Blocks.
/// How long a node gets to power off. A micro-VM ignores ACPI and writes its
/// disk synchronously, so it is stopped at once with nothing lost.
fn shutdown_grace(node: &DesiredNode) -> Duration {
    if node.image == super::spec::MICRO_IMAGE {
        Duration::ZERO
    } else {
        SHUTDOWN_GRACE
    }
}

fn apply(
    ctx: &Context,
    key: &NodeKey,
    kind: OperationKind,
    snapshot: &str,
    grace: Duration,
) -> anyhow::Result<()> {
    let hv = ctx.libvirt.get()?;
    let domain = domain_name(&key.0, &key.1);
    let needs_snapshot = matches!(
        kind,
        OperationKind::Snapshot | OperationKind::Revert | OperationKind::DeleteSnapshot
    );
    if needs_snapshot && snapshot.is_empty() {
        anyhow::bail!("the {} operation names no snapshot", kind.as_str_name());
    }
    let state = || -> anyhow::Result<VmState> {
        hv.state(&domain)?.ok_or_else(|| {
            anyhow::anyhow!("domain {domain} is not defined yet (is the node still being created?)")
        })
    };
    match kind {
        OperationKind::Pause => {
            ctx.holds.hold(key);
            // Paused or off is still enough for a consistent snapshot.
            if state()? == VmState::Running {
                hv.pause(&domain)?;
            }
        }
        OperationKind::Resume => {
            // Released first: should this fail, the reconciler keeps trying.
            ctx.holds.release(key);
            match state()? {
                VmState::Paused => hv.resume(&domain)?,
                VmState::Off => hv.start(&domain)?,
                VmState::Running | VmState::Other => {}
            }
        }
        OperationKind::Snapshot => {
            state()?;
            // The coordinator's records decide which snapshots exist: one
            // left here under the same name (the lab changed since, and
            // its snapshots were dropped) is stale.
            if hv.has_snapshot(&domain, snapshot)? {
                hv.delete_snapshot(&domain, snapshot)?;
            }
            hv.snapshot(&domain, snapshot)?;
        }
        OperationKind::Revert => {
            ctx.holds.hold(key);
            state()?;
            hv.revert(&domain, snapshot)?;
        }
        OperationKind::DeleteSnapshot => hv.delete_snapshot(&domain, snapshot)?,
        OperationKind::Shutdown => {
            ctx.holds.hold(key);
            state()?;
            hv.shutdown(&domain, grace)?;
        }
        OperationKind::Exec | OperationKind::Unspecified => {
            anyhow::bail!("{} is not a node state operation", kind.as_str_name())
        }
    }
    Ok(())
}

async fn answer(
    mut client: AgentControlClient<Channel>,
    host_id: &str,
    id: u64,
    started: Instant,
    outcome: Outcome,
) {
    let micros = started.elapsed().as_micros() as u64;
    let ok = outcome.failures.is_empty();
    let error = outcome.failures.join("; ");
    if ok {
        info!(id, ms = micros / 1000, "operation done");
    } else {
        warn!(id, ms = micros / 1000, %error, "operation failed");
    }
    let result = OperationResult {
        host_id: host_id.to_string(),
        id,
        ok,
        error,
        micros,
        exit_code: outcome.exit_code,
        output: outcome.output,
    };
    match tokio::time::timeout(REPORT_TIMEOUT, client.report_operation(result)).await {
        Ok(Ok(_)) => {}
        Ok(Err(status)) => warn!(id, error = %status.message(), "cannot report the operation's result"),
        Err(_) => warn!(id, "reporting the operation's result timed out"),
    }
}

#[cfg(test)]
mod tests;
