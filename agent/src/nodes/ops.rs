//! Runs the coordinator's operations: each node on its own blocking thread
//! (drivers block), all nodes of an operation at once, answered with one
//! `ReportOperation`.
//!
//! Operations take the node locks in the order they arrive, before the
//! next operation is looked at, so PAUSE → SNAPSHOT → RESUME on one node
//! run in that order even though each runs in its own task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::{self, operation::Action, target::Target, DesiredNode, Operation, OperationResult};
use dclab_runtime::net::Channel;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use super::driver::{key, NodeError, NodeResult};
use super::leases;
use super::taps::TapView;
use super::Context;
use crate::libvirt::VmState;

mod bridge;
mod exec;
mod exec_stream;
mod tunnel;

const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What an action does to one node's run state or snapshots.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeAction {
    Pause(v1::Lease),
    Shutdown(v1::Lease),
    /// Releases the lease (an empty id: every lease on the node).
    Resume(String),
    Snapshot(String),
    Revert(String, v1::Lease),
    DeleteSnapshot(String),
}

impl NodeAction {
    /// The node action of `action`; Err for a malformed one, Ok(None) for
    /// actions that are not about run state.
    pub fn from_proto(action: &Action) -> Result<Option<NodeAction>, NodeError> {
        let lease =
            |l: &Option<v1::Lease>| leases::requested(l.as_ref()).cloned().map_err(NodeError::Invalid);
        let snapshot = |s: &str, what: &str| {
            if s.is_empty() {
                Err(NodeError::Invalid(format!(
                    "the {what} operation names no snapshot"
                )))
            } else {
                Ok(s.to_string())
            }
        };
        Ok(Some(match action {
            Action::Pause(p) => NodeAction::Pause(lease(&p.lease)?),
            Action::Shutdown(s) => NodeAction::Shutdown(lease(&s.lease)?),
            Action::Resume(r) => NodeAction::Resume(r.lease_id.clone()),
            Action::Snapshot(s) => NodeAction::Snapshot(snapshot(&s.snapshot, "snapshot")?),
            Action::Revert(r) => NodeAction::Revert(snapshot(&r.snapshot, "revert")?, lease(&r.lease)?),
            Action::DeleteSnapshot(d) => {
                NodeAction::DeleteSnapshot(snapshot(&d.snapshot, "delete snapshot")?)
            }
            Action::Exec(_)
            | Action::Renew(_)
            | Action::Trace(_)
            | Action::DumpFlows(_)
            | Action::Fault(_)
            | Action::Heal(_)
            | Action::OpenTunnel(_) => return Ok(None),
        }))
    }

    /// Starting (or reverting into) a stopped domain makes new taps.
    fn may_restart(&self) -> bool {
        matches!(self, NodeAction::Resume(_) | NodeAction::Revert(..))
    }
}

pub fn action_name(action: Option<&Action>) -> &'static str {
    match action {
        Some(Action::Pause(_)) => "pause",
        Some(Action::Shutdown(_)) => "shutdown",
        Some(Action::Resume(_)) => "resume",
        Some(Action::Snapshot(_)) => "snapshot",
        Some(Action::Revert(_)) => "revert",
        Some(Action::DeleteSnapshot(_)) => "delete_snapshot",
        Some(Action::Exec(_)) => "exec",
        Some(Action::Renew(_)) => "renew",
        Some(Action::Trace(_)) => "trace",
        Some(Action::DumpFlows(_)) => "dump_flows",
        Some(Action::Fault(_)) => "fault",
        Some(Action::Heal(_)) => "heal",
        Some(Action::OpenTunnel(_)) => "open_tunnel",
        None => "unknown",
    }
}

/// What an operation came to: failures name each node and why.
#[derive(Debug, Default)]
pub struct Outcome {
    pub failures: Vec<(v1::OperationError, String)>,
    pub exit_code: i32,
    pub output: String,
    /// Exec: output bytes left out of `output`.
    pub output_dropped_bytes: u64,
    pub detail: Option<v1::operation_result::Detail>,
}

impl Outcome {
    fn failed(kind: v1::OperationError, message: String) -> Outcome {
        Outcome {
            failures: vec![(kind, message)],
            ..Outcome::default()
        }
    }
}

pub async fn run(
    channel: Channel,
    ctx: Arc<Context>,
    mut ops: mpsc::UnboundedReceiver<Operation>,
    stop: CancellationToken,
) {
    let client = AgentControlClient::new(channel);
    let mut running = tokio::task::JoinSet::new();
    loop {
        let op = tokio::select! {
            _ = stop.cancelled() => break,
            op = ops.recv() => match op {
                Some(op) => op,
                None => break,
            },
        };
        while running.try_join_next().is_some() {}
        let started = Instant::now();
        let name = action_name(op.action.as_ref());
        let target = op.target.as_ref().and_then(|t| t.target.clone());
        info!(id = op.id, action = name, target = ?target, "operation");
        // A child of the coordinator's span that sent it, when traced.
        let span = tracing::info_span!("operation", host = %ctx.host_id, action = name, target = ?target);
        dclab_runtime::telemetry::adopt(&span, &op.traceparent);
        let (ctx, client) = (ctx.clone(), client.clone());
        let id = op.id;
        match (target, op.action) {
            (Some(Target::Host(_)), Some(Action::Renew(renew))) => {
                let outcome = renew_leases(&ctx, &renew);
                running.spawn(answer(client, ctx.host_id.clone(), id, started, outcome).instrument(span));
            }
            (target, Some(Action::Fault(af))) => {
                let work = async move {
                    let outcome = crate::faults::apply(&ctx, target, af).await;
                    answer(client, ctx.host_id.clone(), id, started, outcome).await;
                };
                running.spawn(work.instrument(span));
            }
            (_, Some(Action::Heal(h))) => {
                let work = async move {
                    let outcome = crate::faults::heal_lease(&ctx, &h.lease_id).await;
                    answer(client, ctx.host_id.clone(), id, started, outcome).await;
                };
                running.spawn(work.instrument(span));
            }
            (Some(Target::Host(_)), Some(Action::Trace(t))) => {
                let work = async move {
                    let outcome = bridge::trace(&ctx, &t.flow).await;
                    answer(client, ctx.host_id.clone(), id, started, outcome).await;
                };
                running.spawn(work.instrument(span));
            }
            (Some(Target::Host(_)), Some(Action::DumpFlows(_))) => {
                let work = async move {
                    let outcome = bridge::dump(&ctx).await;
                    answer(client, ctx.host_id.clone(), id, started, outcome).await;
                };
                running.spawn(work.instrument(span));
            }
            (Some(Target::Nodes(t)), Some(Action::OpenTunnel(open))) => {
                let node = t.nodes.first().and_then(|n| ctx.desired_node(&t.lab, n));
                let work = async move {
                    let outcome = tunnel::open(&ctx, client.clone(), open, node).await;
                    answer(client, ctx.host_id.clone(), id, started, outcome).await;
                };
                running.spawn(work.instrument(span));
            }
            (Some(Target::Nodes(t)), Some(Action::Exec(exec))) => {
                let (known, unknown) = split_nodes(&ctx, &t);
                let work = async move {
                    let outcome = if exec.stream_id == 0 {
                        exec::run(&ctx, &exec, known, unknown).await
                    } else {
                        exec_stream::run(&ctx, client.clone(), &exec, known, unknown).await
                    };
                    answer(client, ctx.host_id.clone(), id, started, outcome).await;
                };
                running.spawn(work.instrument(span));
            }
            (Some(Target::Nodes(t)), Some(action)) => {
                let action = match NodeAction::from_proto(&action) {
                    Ok(Some(a)) => a,
                    Ok(None) => {
                        let message = format!("action {name} does not act on nodes");
                        let outcome = Outcome::failed(v1::OperationError::Unsupported, message);
                        running.spawn(
                            answer(client, ctx.host_id.clone(), id, started, outcome).instrument(span),
                        );
                        continue;
                    }
                    Err(e) => {
                        let outcome = Outcome::failed(e.kind(), e.to_string());
                        running.spawn(
                            answer(client, ctx.host_id.clone(), id, started, outcome).instrument(span),
                        );
                        continue;
                    }
                };
                let (known, unknown) = split_nodes(&ctx, &t);
                let mut guards = Vec::with_capacity(known.len());
                for node in &known {
                    guards.push(ctx.locks.get(&key(node)).lock_owned().await);
                }
                let work = async move {
                    let failures = run_on_nodes(&ctx, &action, known, unknown).await;
                    drop(guards);
                    let outcome = Outcome {
                        failures,
                        ..Outcome::default()
                    };
                    answer(client, ctx.host_id.clone(), id, started, outcome).await;
                };
                running.spawn(work.instrument(span));
            }
            (target, action) => {
                let message = format!(
                    "the agent of host {} cannot run action {} on target {target:?}; upgrade the agent",
                    ctx.host_id,
                    action_name(action.as_ref()),
                );
                let outcome = Outcome::failed(v1::OperationError::Unsupported, message);
                running.spawn(answer(client, ctx.host_id.clone(), id, started, outcome).instrument(span));
            }
        }
    }
    // Operations under way finish and answer before the agent exits.
    while running.join_next().await.is_some() {}
}

fn renew_leases(ctx: &Context, renew: &v1::RenewLeases) -> Outcome {
    let missing = ctx.leases.renew(&renew.ids, renew.ttl_ms);
    if missing.is_empty() {
        return Outcome::default();
    }
    Outcome::failed(
        v1::OperationError::NotFound,
        format!("host {} holds no lease {}", ctx.host_id, missing.join(", ")),
    )
}

/// The operation's nodes this host runs (each once) and an error for
/// every other one.
fn split_nodes(
    ctx: &Context,
    target: &v1::NodeTarget,
) -> (Vec<DesiredNode>, Vec<(v1::OperationError, String)>) {
    let mut known: Vec<DesiredNode> = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for name in &target.nodes {
        if !seen.insert(name) {
            continue;
        }
        match ctx.desired_node(&target.lab, name) {
            Some(node) => known.push(node),
            None => unknown.push((
                v1::OperationError::NotFound,
                not_here(&target.lab, name, &ctx.host_id),
            )),
        }
    }
    (known, unknown)
}

pub fn not_here(lab: &str, node: &str, host: &str) -> String {
    format!("node {node} of lab {lab} is not on host {host}")
}

async fn run_on_nodes(
    ctx: &Arc<Context>,
    action: &NodeAction,
    known: Vec<DesiredNode>,
    mut failures: Vec<(v1::OperationError, String)>,
) -> Vec<(v1::OperationError, String)> {
    let tasks: Vec<_> = known
        .into_iter()
        .map(|node| {
            let (ctx, action) = (ctx.clone(), action.clone());
            tokio::spawn(async move {
                let name = node.name.clone();
                (name, on_node(&ctx, &action, node).await)
            })
        })
        .collect();
    for task in tasks {
        match task.await {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => failures.push((e.kind(), format!("node {name}: {e}"))),
            Err(e) => failures.push((v1::OperationError::Failed, format!("a node task failed: {e}"))),
        }
    }
    failures
}

async fn on_node(ctx: &Arc<Context>, action: &NodeAction, node: DesiredNode) -> NodeResult<()> {
    {
        let (node, action) = (node.clone(), action.clone());
        ctx.blocking(move |ctx| apply(ctx, &node, &action)).await?;
    }
    if action.may_restart() && !node.nics.is_empty() {
        // Plug fresh taps now rather than on the next reconcile pass.
        let probe = node.clone();
        let state = ctx
            .blocking(move |ctx| ctx.drivers.for_node(&probe)?.state(&probe))
            .await?;
        if matches!(state, Some(VmState::Running | VmState::Paused)) {
            let view = TapView::fetch(ctx.taps.ovs()).await?;
            ctx.taps.plug(&node.nics, &view).await?;
        }
    }
    Ok(())
}

/// One action on one node, with its lease bookkeeping. Blocks.
pub fn apply(ctx: &Context, node: &DesiredNode, action: &NodeAction) -> NodeResult<()> {
    let driver = ctx.drivers.for_node(node)?;
    let key = key(node);
    let defined = || -> NodeResult<VmState> {
        driver.state(node)?.ok_or_else(|| {
            NodeError::NotFound(format!(
                "domain {} is not defined yet (is the node still being created?)",
                super::domain_name(&node.lab, &node.name)
            ))
        })
    };
    match action {
        NodeAction::Pause(lease) => {
            let state = defined()?;
            ctx.leases.hold(lease, &key)?;
            // Paused or off is still enough for a consistent snapshot.
            if state == VmState::Running {
                driver.pause(node)?;
            }
        }
        NodeAction::Shutdown(lease) => {
            defined()?;
            ctx.leases.hold(lease, &key)?;
            driver.shutdown(node)?;
        }
        NodeAction::Resume(lease_id) => {
            // Released first: should this fail, the reconciler keeps trying.
            ctx.leases.release(lease_id, &key);
            if !ctx.leases.is_held(&key) {
                match defined()? {
                    VmState::Paused => driver.resume(node)?,
                    VmState::Off => driver.start(node)?,
                    VmState::Running | VmState::Other => {}
                }
            }
        }
        NodeAction::Snapshot(snapshot) => {
            defined()?;
            driver.snapshot(node, snapshot)?;
        }
        NodeAction::Revert(snapshot, lease) => {
            defined()?;
            ctx.leases.hold(lease, &key)?;
            driver.revert(node, snapshot)?;
        }
        NodeAction::DeleteSnapshot(snapshot) => driver.delete_snapshot(node, snapshot)?,
    }
    Ok(())
}

async fn answer(
    mut client: AgentControlClient<Channel>,
    host_id: String,
    id: u64,
    started: Instant,
    outcome: Outcome,
) {
    let micros = started.elapsed().as_micros() as u64;
    let ok = outcome.failures.is_empty();
    let error_kind = outcome
        .failures
        .first()
        .map_or(v1::OperationError::Unspecified, |(k, _)| *k);
    let error = outcome
        .failures
        .iter()
        .map(|(_, m)| m.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if ok {
        info!(id, ms = micros / 1000, "operation done");
    } else {
        warn!(id, ms = micros / 1000, %error, "operation failed");
    }
    let result = OperationResult {
        host_id,
        id,
        ok,
        error,
        micros,
        exit_code: outcome.exit_code,
        output: outcome.output,
        error_kind: error_kind.into(),
        detail: outcome.detail,
        output_dropped_bytes: outcome.output_dropped_bytes,
    };
    match tokio::time::timeout(REPORT_TIMEOUT, client.report_operation(result)).await {
        Ok(Ok(_)) => {}
        Ok(Err(status)) => warn!(id, error = %status.message(), "cannot report the operation's result"),
        Err(_) => warn!(id, "reporting the operation's result timed out"),
    }
}

#[cfg(test)]
mod tests;
