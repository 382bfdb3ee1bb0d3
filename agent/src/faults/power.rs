//! Power faults: off, shutdown and freeze hold the node (the reconciler
//! leaves it off or paused) until healed by starting or resuming it;
//! reboot and reset are instant and leave nothing to heal.

use std::sync::Arc;

use dclab_proto::v1::{self, DesiredNode, PowerAction};
use serde::{Deserialize, Serialize};

use super::target::unexpected;
use super::{net, ActsOn, Applied, FaultKind, Heal, On};
use crate::nodes::driver::{key, NodeError, NodeResult};
use crate::nodes::ops::{apply as node_apply, NodeAction};
use crate::nodes::Context;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Power(pub PowerAction);

/// A node held off, shut down or frozen by the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub lab: String,
    pub node: String,
}

impl FaultKind for Power {
    const NAME: &'static str = "power";
    const ACTS_ON: ActsOn = ActsOn::Nodes;

    async fn apply(self, ctx: Arc<Context>, on: On, lease: v1::Lease) -> NodeResult<()> {
        let On::Node(node) = on else {
            return Err(unexpected(Self::NAME));
        };
        let action = self.0;
        let frozen_answers = ctx.drivers.for_node(&node)?.answers_while_paused();
        power_action(ctx.clone(), node.clone(), action, lease.clone()).await?;
        if action == PowerAction::Freeze && frozen_answers {
            // A frozen container's kernel still answers pings and handshakes;
            // a frozen machine does not. Its links go down with it.
            for nic in &node.nics {
                net::link_cut(&ctx, &node, nic, &lease).await?;
            }
        }
        Ok(())
    }
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
            let applied = Applied::Power(Held {
                lab: node.lab.clone(),
                node: node.name.clone(),
            });
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

impl Heal for Held {
    const KIND: &'static str = "power";

    fn node(&self) -> Option<(&str, &str)> {
        Some((&self.lab, &self.node))
    }

    async fn heal(&self, ctx: &Arc<Context>, lease: &str) -> NodeResult<()> {
        let Some(n) = ctx.desired_node(&self.lab, &self.node) else {
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
}
