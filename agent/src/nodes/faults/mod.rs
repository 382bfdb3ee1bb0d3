//! Faults, each one a value with an exact inverse: applied by this agent
//! under a lease from the coordinator, and healed when the lease is
//! released, when it lapses (nobody renewed it: the run, its ctl or the
//! coordinator is gone, or this host lost its link to them), or when the
//! agent starts again and finds it. So no fault outlives its run by more
//! than a lease, unless its heal fails: then it is retried until it
//! succeeds.
//!
//! - power: off, shutdown, freeze hold the node (the reconciler leaves it
//!   off or paused) until healed by starting or resuming it; reboot and
//!   reset are instant.
//! - net: a link cut (the host end of the node's interface down) and netem
//!   (the interface behind a user-space impairment relay).
//! - flows: flows above the pipeline (a partition), rendered by the rule
//!   reconciler.
//! - command: a command in the node and the one that undoes it (process
//!   signals, disk/CPU/memory stress, a memcached flush).
//!
//! `heal` undoes them: a fault leaves the lease file only once its heal
//! succeeded.

mod heal;
mod net;

pub use heal::{heal_lease, spawn_due, sweep};

use std::sync::Arc;
use std::time::{Duration, Instant};

use dclab_proto::v1::{self, fault::Kind, target::Target, DesiredNode, PowerAction};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::driver::{key, NodeError, NodeResult};
use super::leases::requested;
use super::ops::Outcome;
use super::Context;
use crate::desired::FlowKey;
use crate::exec_output::{CommandOutput, MAX_KEPT};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a partition's flows may take to be installed and revalidated.
const FLOWS_INSTALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a fault changed, kept with its lease so it can be undone even by
/// a restarted agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// Off, shut down or frozen: the lease holds the node's run state.
    Power {
        lab: String,
        node: String,
    },
    LinkCut {
        lab: String,
        node: String,
        tap: String,
    },
    Netem {
        lab: String,
        node: String,
        tap: String,
        port: String,
        relay: (String, String),
    },
    Flows {
        count: usize,
    },
    Command {
        lab: String,
        node: String,
        heal: String,
    },
}

impl Applied {
    /// The fault's name in metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Applied::Power { .. } => "power",
            Applied::LinkCut { .. } => "link_cut",
            Applied::Netem { .. } => "netem",
            Applied::Flows { .. } => "flows",
            Applied::Command { .. } => "command",
        }
    }

    /// `lab/node`, or empty for flows that belong to no one node.
    pub fn node(&self) -> String {
        match self {
            Applied::Power { lab, node }
            | Applied::LinkCut { lab, node, .. }
            | Applied::Netem { lab, node, .. }
            | Applied::Command { lab, node, .. } => format!("{lab}/{node}"),
            Applied::Flows { .. } => String::new(),
        }
    }
}

fn failed(kind: v1::OperationError, message: String) -> Outcome {
    Outcome {
        failures: vec![(kind, message)],
        ..Outcome::default()
    }
}

fn failure(e: &NodeError, what: &str) -> (v1::OperationError, String) {
    (e.kind(), format!("{what}: {e}"))
}

/// Applies `fault` to `target` under `lease`; the outcome's micros (set by
/// the caller) are the time until it is in effect.
pub async fn apply(ctx: &Arc<Context>, target: Option<Target>, af: v1::ApplyFault) -> Outcome {
    let lease = match requested(af.lease.as_ref()) {
        Ok(l) => l.clone(),
        Err(e) => return failed(v1::OperationError::Invalid, e),
    };
    let Some(kind) = af.fault.and_then(|f| f.kind) else {
        return failed(v1::OperationError::Invalid, "the fault names no kind".into());
    };
    let started = Instant::now();
    let outcome = match (kind, target) {
        (Kind::Power(p), Some(Target::Nodes(t))) => {
            let action = PowerAction::try_from(p).unwrap_or(PowerAction::Unspecified);
            on_nodes(ctx, &t, |ctx, node| power(ctx, node, action, lease.clone())).await
        }
        (Kind::Command(c), Some(Target::Nodes(t))) => {
            on_nodes(ctx, &t, |ctx, node| command(ctx, node, c.clone(), lease.clone())).await
        }
        (Kind::LinkCut(_), Some(Target::Interface(i))) => match interface(ctx, &i) {
            Ok((node, nic)) => result(net::link_cut(ctx, &node, &nic, &lease).await, &i.node),
            Err(o) => *o,
        },
        (Kind::Netem(n), Some(Target::Interface(i))) => match interface(ctx, &i) {
            Ok((node, nic)) => result(net::netem(ctx, &node, &nic, &n, &lease).await, &i.node),
            Err(o) => *o,
        },
        (Kind::Flows(f), Some(Target::Host(_))) => flows(ctx, f, &lease).await,
        (kind, target) => failed(
            v1::OperationError::Invalid,
            format!("fault {kind:?} cannot act on target {target:?}"),
        ),
    };
    let ms = started.elapsed().as_millis();
    if outcome.failures.is_empty() {
        info!(lease = %lease.id, ms, "fault applied");
    }
    outcome
}

fn result(r: NodeResult<()>, node: &str) -> Outcome {
    match r {
        Ok(()) => Outcome::default(),
        Err(e) => Outcome {
            failures: vec![failure(&e, &format!("node {node}"))],
            ..Outcome::default()
        },
    }
}

/// The node and its nic on the interface target's network.
fn interface(ctx: &Context, i: &v1::InterfaceTarget) -> Result<(DesiredNode, v1::NodeNic), Box<Outcome>> {
    let Some(node) = ctx.desired_node(&i.lab, &i.node) else {
        return Err(Box::new(failed(
            v1::OperationError::NotFound,
            super::ops::not_here(&i.lab, &i.node, &ctx.host_id),
        )));
    };
    match node.nics.iter().find(|n| n.network == i.network) {
        Some(nic) => Ok((node.clone(), nic.clone())),
        None => Err(Box::new(failed(
            v1::OperationError::NotFound,
            format!(
                "node {} of lab {} has no interface on network {}",
                i.node, i.lab, i.network
            ),
        ))),
    }
}

/// Runs `f` on every node of the target at once, each under its lock.
async fn on_nodes<F, Fut>(ctx: &Arc<Context>, t: &v1::NodeTarget, f: F) -> Outcome
where
    F: Fn(Arc<Context>, DesiredNode) -> Fut,
    Fut: std::future::Future<Output = NodeResult<()>> + Send + 'static,
{
    let mut failures = Vec::new();
    let mut tasks = Vec::new();
    for name in &t.nodes {
        match ctx.desired_node(&t.lab, name) {
            Some(node) => {
                let lock = ctx.locks.get(&key(&node));
                let work = f(ctx.clone(), node);
                let name = name.clone();
                tasks.push(tokio::spawn(async move {
                    let _guard = lock.lock_owned().await;
                    (name, work.await)
                }));
            }
            None => failures.push((
                v1::OperationError::NotFound,
                super::ops::not_here(&t.lab, name, &ctx.host_id),
            )),
        }
    }
    for task in tasks {
        match task.await {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => failures.push(failure(&e, &format!("node {name}"))),
            Err(e) => failures.push((v1::OperationError::Failed, format!("a node task failed: {e}"))),
        }
    }
    Outcome {
        failures,
        ..Outcome::default()
    }
}

async fn power(
    ctx: Arc<Context>,
    node: DesiredNode,
    action: PowerAction,
    lease: v1::Lease,
) -> NodeResult<()> {
    let frozen_answers = ctx.drivers.for_node(&node)?.answers_while_paused();
    let (probe, held_lease) = (node.clone(), lease.clone());
    power_action(ctx.clone(), probe, action, held_lease).await?;
    if action == PowerAction::Freeze && frozen_answers {
        // A frozen container's kernel still answers pings and handshakes;
        // a frozen machine does not. Its links go down with it.
        for nic in &node.nics {
            net::link_cut(&ctx, &node, nic, &lease).await?;
        }
    }
    Ok(())
}

async fn power_action(
    ctx: Arc<Context>,
    node: DesiredNode,
    action: PowerAction,
    lease: v1::Lease,
) -> NodeResult<()> {
    ctx.blocking(move |ctx| {
        let driver = ctx.drivers.for_node(&node)?;
        let held = matches!(
            action,
            PowerAction::Off | PowerAction::Shutdown | PowerAction::Freeze
        );
        if held {
            // Recorded first: should the agent die right after, it heals.
            let applied = Applied::Power {
                lab: node.lab.clone(),
                node: node.name.clone(),
            };
            ctx.leases.hold(&lease, &key(&node))?;
            ctx.leases.add_fault(&lease, applied)?;
        }
        match action {
            PowerAction::Off => driver.power_off(&node),
            PowerAction::Shutdown => driver.shutdown(&node),
            PowerAction::Freeze => driver.pause(&node),
            PowerAction::Reboot => driver.reboot(&node),
            PowerAction::Reset => driver.reset(&node),
            PowerAction::Unspecified => Err(NodeError::Invalid("a power fault names no action".into())),
        }
    })
    .await
}

async fn command(
    ctx: Arc<Context>,
    node: DesiredNode,
    c: v1::CommandFault,
    lease: v1::Lease,
) -> NodeResult<()> {
    if c.apply.trim().is_empty() || c.apply.contains('\n') || c.heal.contains('\n') {
        return Err(NodeError::Invalid(
            "a command fault is one line to apply and one to heal".into(),
        ));
    }
    ctx.blocking(move |ctx| {
        if !c.heal.is_empty() {
            let applied = Applied::Command {
                lab: node.lab.clone(),
                node: node.name.clone(),
                heal: c.heal.clone(),
            };
            ctx.leases.add_fault(&lease, applied)?;
        }
        let mut output = CommandOutput::kept(MAX_KEPT);
        let code = ctx
            .drivers
            .for_node(&node)?
            .exec(&node, &c.apply, COMMAND_TIMEOUT, &mut output)?;
        if code != 0 {
            return Err(NodeError::Failed(anyhow::anyhow!(
                "{:?} exited {code}: {}",
                c.apply,
                output.text().trim()
            )));
        }
        Ok(())
    })
    .await
}

/// In effect once OvS forwards by the flows, not when they are queued.
async fn flows(ctx: &Context, f: v1::FlowFault, lease: &v1::Lease) -> Outcome {
    let flows: Vec<FlowKey> = f.flows.into_iter().map(FlowKey::from).collect();
    let applied = Applied::Flows { count: flows.len() };
    if let Err(e) = ctx.leases.add_fault(lease, applied) {
        return failed(v1::OperationError::Failed, format!("recording the fault: {e:#}"));
    }
    let generation = ctx.fault_flows.insert(&lease.id, flows);
    if !ctx
        .fault_flows
        .wait_installed(generation, FLOWS_INSTALL_TIMEOUT)
        .await
    {
        return failed(
            v1::OperationError::Failed,
            format!(
                "the fault's flows were not installed within {FLOWS_INSTALL_TIMEOUT:?}; see the agent's log for why OvS refused them"
            ),
        );
    }
    Outcome::default()
}
