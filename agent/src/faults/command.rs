//! Command faults: a command run in each target node, and the one that
//! undoes it (process signals, disk/CPU/memory stress, a memcached flush;
//! the coordinator writes both).

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::v1;
use serde::{Deserialize, Serialize};

use super::target::unexpected;
use super::{ActsOn, Applied, FaultKind, Heal, On};
use crate::exec_output::{CommandOutput, MAX_KEPT};
use crate::libvirt::VmState;
use crate::nodes::driver::{key, NodeError, NodeResult};
use crate::nodes::Context;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The command that undoes a command fault in its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub lab: String,
    pub node: String,
    pub heal: String,
}

impl FaultKind for v1::CommandFault {
    const NAME: &'static str = "command";
    const ACTS_ON: ActsOn = ActsOn::Nodes;

    async fn apply(self, ctx: Arc<Context>, on: On, lease: v1::Lease) -> NodeResult<()> {
        let On::Node(node) = on else {
            return Err(unexpected(Self::NAME));
        };
        let c = self;
        if c.apply.trim().is_empty() || c.apply.contains('\n') || c.heal.contains('\n') {
            return Err(NodeError::Invalid(
                "a command fault is one line to apply and one to heal".into(),
            ));
        }
        ctx.blocking(move |ctx| {
            if !c.heal.is_empty() {
                let applied = Applied::Command(Held {
                    lab: node.lab.clone(),
                    node: node.name.clone(),
                    heal: c.heal.clone(),
                });
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
}

impl Heal for Held {
    const KIND: &'static str = "command";

    fn node(&self) -> Option<(&str, &str)> {
        Some((&self.lab, &self.node))
    }

    async fn heal(&self, ctx: &Arc<Context>, _lease: &str) -> NodeResult<()> {
        let Some(n) = ctx.desired_node(&self.lab, &self.node) else {
            return Ok(());
        };
        // One exec at a time per node: a VM's console takes one client.
        let _console = ctx.exec_locks.get(&key(&n)).lock_owned().await;
        let heal = self.heal.clone();
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
