//! At agent start, what earlier runs of nodes left on the host is killed:
//! a libvirt destroy that reported a systemd container off while its init
//! lived on, or an agent that died between a stop and its reap. First the
//! desired nodes this agent has a dir for (a run libvirt has under way is
//! kept; nodes no longer desired are removed by the reconciler, whose
//! removal reaps and reports to the lab's delete), then processes of
//! container nodes no libvirt domain stands for any more: their agent
//! removed the domain, so no agent on this host wants them. Processes of
//! other agents' defined domains are theirs to reap.

use std::sync::Arc;

use dclab_proto::v1::NodeKind;
use tracing::warn;

use super::driver::Leftovers;
use super::layout::describe;
use super::Context;

pub async fn at_start(ctx: &Arc<Context>) {
    let nodes = match ctx.layout.existing_nodes() {
        Ok(nodes) => nodes,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "cannot scan the lab dir for leftovers of nodes");
            Vec::new()
        }
    };
    for key in nodes {
        let Some(node) = ctx.desired_node(&key.0, &key.1) else {
            continue;
        };
        let lock = ctx.locks.get(&key);
        let _guard = lock.lock_owned().await;
        match ctx
            .blocking(move |ctx| ctx.drivers.for_node(&node)?.reap(&node))
            .await
        {
            Ok(Leftovers(0)) => {}
            Ok(Leftovers(killed)) => {
                warn!(node = %describe(&key), killed, "processes left by an earlier run of the node killed")
            }
            Err(e) => warn!(node = %describe(&key), error = %e, "cannot look for leftovers of the node"),
        }
    }
    let orphans = ctx
        .blocking(|ctx| ctx.drivers.for_kind(NodeKind::Container)?.reap_orphans())
        .await;
    if let Err(e) = orphans {
        warn!(error = %e, "cannot look for processes of removed container nodes");
    }
}
