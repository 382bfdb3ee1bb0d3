//! Flow faults: flows above the host's pipeline (a partition, computed by
//! the coordinator), held in `flow_table` by the lease; the rule reconciler
//! renders them after the coordinator's flows. In effect once OvS forwards
//! by them, not when they are queued; healed by taking them out again.

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::v1;
use serde::{Deserialize, Serialize};

use super::target::unexpected;
use super::{ActsOn, Applied, FaultKind, Heal, On};
use crate::desired::FlowKey;
use crate::nodes::driver::{NodeError, NodeResult};
use crate::nodes::Context;

/// How long a fault's flows may take to be installed and revalidated.
const FLOWS_INSTALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Flows a lease holds on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub count: usize,
}

impl FaultKind for v1::FlowFault {
    const NAME: &'static str = "flows";
    const ACTS_ON: ActsOn = ActsOn::Host;

    async fn apply(self, ctx: Arc<Context>, on: On, lease: v1::Lease) -> NodeResult<()> {
        let On::Host = on else {
            return Err(unexpected(Self::NAME));
        };
        let flows: Vec<FlowKey> = self.flows.into_iter().map(FlowKey::from).collect();
        let applied = Applied::Flows(Held { count: flows.len() });
        ctx.leases
            .add_fault(&lease, applied)
            .map_err(|e| anyhow::anyhow!("recording the fault: {e:#}"))?;
        install(&ctx, &lease.id, flows).await
    }
}

impl Heal for Held {
    const KIND: &'static str = "flows";

    fn node(&self) -> Option<(&str, &str)> {
        None
    }

    async fn heal(&self, ctx: &Arc<Context>, lease: &str) -> NodeResult<()> {
        uninstall(ctx, lease).await
    }
}

/// Adds `flows` under `key` and waits until OvS forwards by them.
pub(super) async fn install(ctx: &Context, key: &str, flows: Vec<FlowKey>) -> NodeResult<()> {
    let generation = ctx.fault_flows.insert(key, flows);
    if !ctx
        .fault_flows
        .wait_installed(generation, FLOWS_INSTALL_TIMEOUT)
        .await
    {
        return Err(NodeError::Failed(anyhow::anyhow!(
            "the fault's flows were not installed within {FLOWS_INSTALL_TIMEOUT:?}; see the agent's log for why OvS refused them"
        )));
    }
    Ok(())
}

/// Takes the flows under `key` out and waits until OvS no longer forwards
/// by them; none held (a restarted agent's bridge was rewritten without
/// them) is healed already.
pub(super) async fn uninstall(ctx: &Context, key: &str) -> NodeResult<()> {
    match ctx.fault_flows.remove(key) {
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
    }
}
