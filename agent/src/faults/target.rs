//! The coordinator's target of a fault, checked against what the kind acts
//! on and resolved against this host's desired nodes: the one place that
//! knows target shapes, so a kind only says which one it takes.

use std::sync::Arc;

use dclab_proto::v1::{self, target::Target, DesiredNode, NodeNic};

use super::{failed, ActsOn, FaultKind, On};
use crate::nodes::driver::{key, NodeError, NodeResult};
use crate::nodes::ops::{not_here, Outcome};
use crate::nodes::Context;

fn failure(e: &NodeError, what: &str) -> (v1::OperationError, String) {
    (e.kind(), format!("{what}: {e}"))
}

/// Applies `kind` to `target` under `lease`.
pub(super) async fn run<K: FaultKind>(
    ctx: &Arc<Context>,
    target: Option<Target>,
    kind: K,
    lease: v1::Lease,
) -> Outcome {
    match (K::ACTS_ON, target) {
        (ActsOn::Nodes, Some(Target::Nodes(t))) => on_nodes(ctx, &t, kind, lease).await,
        (ActsOn::Interface, Some(Target::Interface(i))) => match interface(ctx, &i) {
            Ok((node, nic)) => {
                let r = kind.apply(ctx.clone(), On::Nic(node, nic), lease).await;
                result(r, &format!("node {}", i.node))
            }
            Err(o) => *o,
        },
        (ActsOn::Host, Some(Target::Host(_))) => {
            let r = kind.apply(ctx.clone(), On::Host, lease).await;
            match r {
                Ok(()) => Outcome::default(),
                Err(e) => failed(e.kind(), e.to_string()),
            }
        }
        (_, target) => failed(
            v1::OperationError::Invalid,
            format!("fault {} cannot act on target {target:?}", K::NAME),
        ),
    }
}

fn result(r: NodeResult<()>, what: &str) -> Outcome {
    match r {
        Ok(()) => Outcome::default(),
        Err(e) => Outcome {
            failures: vec![failure(&e, what)],
            ..Outcome::default()
        },
    }
}

/// The node and its nic on the interface target's network.
fn interface(ctx: &Context, i: &v1::InterfaceTarget) -> Result<(DesiredNode, NodeNic), Box<Outcome>> {
    let Some(node) = ctx.desired_node(&i.lab, &i.node) else {
        return Err(Box::new(failed(
            v1::OperationError::NotFound,
            not_here(&i.lab, &i.node, &ctx.host_id),
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

/// Applies `kind` on every node of the target at once, each under its lock.
async fn on_nodes<K: FaultKind>(
    ctx: &Arc<Context>,
    t: &v1::NodeTarget,
    kind: K,
    lease: v1::Lease,
) -> Outcome {
    let mut failures = Vec::new();
    let mut tasks = Vec::new();
    for name in &t.nodes {
        match ctx.desired_node(&t.lab, name) {
            Some(node) => {
                let lock = ctx.locks.get(&key(&node));
                let work = kind.clone().apply(ctx.clone(), On::Node(node), lease.clone());
                let name = name.clone();
                tasks.push(tokio::spawn(async move {
                    let _guard = lock.lock_owned().await;
                    (name, work.await)
                }));
            }
            None => failures.push((v1::OperationError::NotFound, not_here(&t.lab, name, &ctx.host_id))),
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

/// The resolved target a kind did not ask for: a bug in this crate.
pub(super) fn unexpected(kind: &str) -> NodeError {
    NodeError::Invalid(format!("fault {kind} got a target it does not act on"))
}
