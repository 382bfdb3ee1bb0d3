//! Faults, each one a value with an exact inverse: applied by this agent
//! under a lease from the coordinator, and healed when the lease is
//! released, when it lapses (nobody renewed it: the run, its ctl or the
//! coordinator is gone, or this host lost its link to them), or when the
//! agent starts again and finds it. So no fault outlives its run by more
//! than a lease, unless its heal fails: then it is retried until it
//! succeeds.
//!
//! A fault kind is one [`FaultKind`] (what it acts on, how it is applied)
//! and the record it leaves in the lease file, one [`Heal`] (how it is
//! undone, how it is named), in one file per family:
//!
//! - `power`: off, shutdown, freeze hold the node (the reconciler leaves it
//!   off or paused) until healed by starting or resuming it; reboot and
//!   reset are instant.
//! - `net`: a link cut (the host end of the node's interface down) and
//!   netem (the interface behind a user-space impairment relay).
//! - `flows`: flows above the pipeline (a partition), rendered by the rule
//!   reconciler from `flow_table`.
//! - `port_block`: a node's traffic to and from one TCP/UDP port dropped by
//!   flows above the pipeline, like a partition.
//! - `command`: a command in the node and the one that undoes it (process
//!   signals, disk/CPU/memory stress, a memcached flush).
//!
//! `heal` undoes them: a fault leaves the lease file only once its heal
//! succeeded. Adding a kind: its proto message in `Fault`, its file here,
//! one arm in [`apply`] and one variant of [`Applied`].

mod command;
pub mod flow_table;
mod flows;
mod heal;
mod net;
mod port_block;
mod power;
mod target;

pub(crate) use heal::{heal_lease, spawn_due, sweep};
#[cfg(test)]
pub(crate) use {command::Held as CommandHeld, flows::Held as FlowsHeld, net::CutHeld};

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use dclab_proto::v1::{self, fault::Kind, target::Target, DesiredNode, NodeNic, PowerAction};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::nodes::driver::NodeResult;
use crate::nodes::leases::requested;
use crate::nodes::ops::Outcome;
use crate::nodes::Context;

/// What a kind acts on: the coordinator's target must be of this shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActsOn {
    /// Every node of a `NodeTarget`, at once, each under its lock.
    Nodes,
    /// One node's interface on a network (`InterfaceTarget`).
    Interface,
    /// The host itself (`HostTarget`).
    Host,
}

/// One target resolved against this host's desired nodes.
pub(crate) enum On {
    Node(DesiredNode),
    Nic(DesiredNode, NodeNic),
    Host,
}

/// A fault kind as the agent applies it.
pub(crate) trait FaultKind: Clone + Send + Sync + 'static {
    /// Its name in logs, metrics and errors.
    const NAME: &'static str;
    const ACTS_ON: ActsOn;
    /// Applies the fault to `on` under `lease`; records what heals it in
    /// the lease first, so an agent dying right after still heals it.
    fn apply(
        self,
        ctx: Arc<Context>,
        on: On,
        lease: v1::Lease,
    ) -> impl Future<Output = NodeResult<()>> + Send;
}

/// How a fault recorded in the lease file is undone and named.
pub(crate) trait Heal {
    /// The fault's name in metrics and logs.
    const KIND: &'static str;
    /// `(lab, node)` it acts on, or None for faults of the whole host.
    fn node(&self) -> Option<(&str, &str)>;
    /// Undoes it; Ok once nothing of it is left (its node gone included).
    fn heal(&self, ctx: &Arc<Context>, lease: &str) -> impl Future<Output = NodeResult<()>> + Send;
}

/// What a fault changed, kept with its lease so it can be undone even by
/// a restarted agent. The JSON of each record is that of the struct
/// variants the lease file had before (`{"link_cut": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// Off, shut down or frozen: the lease holds the node's run state.
    Power(power::Held),
    LinkCut(net::CutHeld),
    Netem(net::NetemHeld),
    Flows(flows::Held),
    Command(command::Held),
    PortBlock(port_block::Held),
}

/// Calls `$f` on the record inside any variant.
macro_rules! each {
    ($applied:expr, $r:ident => $f:expr) => {
        match $applied {
            Applied::Power($r) => $f,
            Applied::LinkCut($r) => $f,
            Applied::Netem($r) => $f,
            Applied::Flows($r) => $f,
            Applied::Command($r) => $f,
            Applied::PortBlock($r) => $f,
        }
    };
}

fn kind_of<H: Heal>(_: &H) -> &'static str {
    H::KIND
}

impl Applied {
    /// The fault's name in metrics.
    pub fn kind(&self) -> &'static str {
        each!(self, r => kind_of(r))
    }

    /// `lab/node`, or empty for faults that belong to no one node.
    pub fn node(&self) -> String {
        each!(self, r => r.node().map(|(lab, node)| format!("{lab}/{node}")).unwrap_or_default())
    }

    /// "netem on node lab/a", or the kind alone for a host's fault.
    pub fn describe(&self) -> String {
        match self.node() {
            node if node.is_empty() => self.kind().to_string(),
            node => format!("{} on node {node}", self.kind()),
        }
    }

    async fn heal(&self, ctx: &Arc<Context>, lease: &str) -> NodeResult<()> {
        each!(self, r => r.heal(ctx, lease).await)
    }
}

pub(crate) fn failed(kind: v1::OperationError, message: String) -> Outcome {
    Outcome {
        failures: vec![(kind, message)],
        ..Outcome::default()
    }
}

/// Applies `fault` to `target` under `lease`; the outcome's micros (set by
/// the caller) are the time until it is in effect.
pub(crate) async fn apply(ctx: &Arc<Context>, target: Option<Target>, af: v1::ApplyFault) -> Outcome {
    let lease = match requested(af.lease.as_ref()) {
        Ok(l) => l.clone(),
        Err(e) => return failed(v1::OperationError::Invalid, e),
    };
    let Some(kind) = af.fault.and_then(|f| f.kind) else {
        return failed(v1::OperationError::Invalid, "the fault names no kind".into());
    };
    let started = Instant::now();
    let outcome = match kind {
        Kind::Power(p) => {
            let action = PowerAction::try_from(p).unwrap_or(PowerAction::Unspecified);
            target::run(ctx, target, power::Power(action), lease.clone()).await
        }
        Kind::LinkCut(c) => target::run(ctx, target, c, lease.clone()).await,
        Kind::Netem(n) => target::run(ctx, target, n, lease.clone()).await,
        Kind::Flows(f) => target::run(ctx, target, f, lease.clone()).await,
        Kind::Command(c) => target::run(ctx, target, c, lease.clone()).await,
        Kind::PortBlock(p) => target::run(ctx, target, p, lease.clone()).await,
    };
    let ms = started.elapsed().as_millis();
    if outcome.failures.is_empty() {
        info!(lease = %lease.id, ms, "fault applied");
    }
    outcome
}
