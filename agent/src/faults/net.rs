//! Network faults on a node's interface, at the host end of its tap (or
//! veth): a cut takes the host end down, so nothing passes either way;
//! netem moves the interface off the bridge behind a user-space relay
//! (`crate::netem`; this kernel has no sch_netem) whose other end joins the
//! bridge as the same dclab port, so the flows follow it by iface-id.

use std::sync::Arc;

use dclab_proto::v1::{self, DesiredNode, NodeNic};
use serde::{Deserialize, Serialize};

use super::target::unexpected;
use super::{ActsOn, Applied, FaultKind, Heal, On};
use crate::netem::{Netem, Relay};
use crate::nodes::driver::{NodeError, NodeResult};
use crate::nodes::taps::{parse_links, TapView};
use crate::nodes::Context;

/// A tap a cut left down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutHeld {
    pub lab: String,
    pub node: String,
    pub tap: String,
}

/// A tap moved off the bridge behind a relay (`relay`: its veth's ends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetemHeld {
    pub lab: String,
    pub node: String,
    pub tap: String,
    pub port: String,
    pub relay: (String, String),
}

impl FaultKind for v1::LinkCutFault {
    const NAME: &'static str = "link_cut";
    const ACTS_ON: ActsOn = ActsOn::Interface;

    async fn apply(self, ctx: Arc<Context>, on: On, lease: v1::Lease) -> NodeResult<()> {
        let On::Nic(node, nic) = on else {
            return Err(unexpected(Self::NAME));
        };
        link_cut(&ctx, &node, &nic, &lease).await
    }
}

impl Heal for CutHeld {
    const KIND: &'static str = "link_cut";

    fn node(&self) -> Option<(&str, &str)> {
        Some((&self.lab, &self.node))
    }

    async fn heal(&self, ctx: &Arc<Context>, _lease: &str) -> NodeResult<()> {
        if ctx.desired_node(&self.lab, &self.node).is_none() {
            ctx.taps.release_fault(&self.tap);
            return Ok(());
        }
        link_restore(ctx, &self.tap).await
    }
}

impl FaultKind for v1::NetemFault {
    const NAME: &'static str = "netem";
    const ACTS_ON: ActsOn = ActsOn::Interface;

    async fn apply(self, ctx: Arc<Context>, on: On, lease: v1::Lease) -> NodeResult<()> {
        let On::Nic(node, nic) = on else {
            return Err(unexpected(Self::NAME));
        };
        netem(&ctx, &node, &nic, &self, &lease).await
    }
}

impl Heal for NetemHeld {
    const KIND: &'static str = "netem";

    fn node(&self) -> Option<(&str, &str)> {
        Some((&self.lab, &self.node))
    }

    /// With its node gone this still stops the relay and removes its
    /// veth; the tap's absence is no failure.
    async fn heal(&self, ctx: &Arc<Context>, lease: &str) -> NodeResult<()> {
        netem_heal(ctx, lease, &self.tap, &self.port, &self.relay).await
    }
}

fn failed(e: anyhow::Error) -> NodeError {
    NodeError::Failed(e)
}

pub async fn link_cut(
    ctx: &Arc<Context>,
    node: &DesiredNode,
    nic: &NodeNic,
    lease: &v1::Lease,
) -> NodeResult<()> {
    let applied = Applied::LinkCut(CutHeld {
        lab: node.lab.clone(),
        node: node.name.clone(),
        tap: nic.tap.clone(),
    });
    ctx.leases.add_fault(lease, applied)?;
    ctx.taps.hold_for_fault(&nic.tap);
    ctx.taps
        .ip(&["link", "set", &nic.tap, "down"])
        .await
        .map_err(failed)?;
    Ok(())
}

async fn link_restore(ctx: &Arc<Context>, tap: &str) -> NodeResult<()> {
    ctx.taps.release_fault(tap);
    match ctx.taps.ip(&["link", "set", tap, "up"]).await {
        Ok(_) => Ok(()),
        // The tap went with its node (stopped, removed): nothing to restore.
        Err(e) if e.to_string().contains("Cannot find device") => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

/// Interface names for the relay: short, and unique per tap.
fn relay_names(tap: &str) -> (String, String) {
    let mut hash: u32 = 0x811c_9dc5;
    for b in tap.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (format!("dn{hash:08x}a"), format!("dn{hash:08x}b"))
}

async fn netem(
    ctx: &Arc<Context>,
    node: &DesiredNode,
    nic: &NodeNic,
    n: &v1::NetemFault,
    lease: &v1::Lease,
) -> NodeResult<()> {
    let netem = Netem::of(*n);
    netem.validate().map_err(|e| NodeError::Invalid(e.to_string()))?;
    let (a, b) = relay_names(&nic.tap);
    let applied = Applied::Netem(NetemHeld {
        lab: node.lab.clone(),
        node: node.name.clone(),
        tap: nic.tap.clone(),
        port: nic.port.clone(),
        relay: (a.clone(), b.clone()),
    });
    ctx.leases.add_fault(lease, applied)?;
    ctx.taps.hold_for_fault(&nic.tap);
    let taps = &ctx.taps;
    taps.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])
        .await
        .map_err(failed)?;
    for dev in [&a, &b] {
        taps.ip(&["link", "set", dev, "up"]).await.map_err(failed)?;
    }
    // The tap leaves the bridge; the relay's end joins as the same port.
    let br = taps.ovs().bridge.clone();
    taps.ovs()
        .vsctl(&["--if-exists", "del-port", &br, &nic.tap])
        .await
        .map_err(|e| failed(e.into()))?;
    taps.attach(&a, &nic.port).await.map_err(failed)?;
    let netns = taps.netns().map(str::to_string);
    let (tap, peer, out, back) = (nic.tap.clone(), b.clone(), netem, netem);
    let relay = tokio::task::spawn_blocking(move || Relay::start(netns.as_deref(), &tap, &peer, out, back))
        .await
        .map_err(|e| failed(anyhow::anyhow!("the relay task panicked: {e}")))?
        .map_err(|e| failed(e.into()))?;
    ctx.relays.lock().unwrap().insert(lease.id.clone(), relay);
    Ok(())
}

async fn netem_heal(
    ctx: &Arc<Context>,
    lease: &str,
    tap: &str,
    port: &str,
    relay: &(String, String),
) -> NodeResult<()> {
    let running = ctx.relays.lock().unwrap().remove(lease);
    if let Some(r) = running {
        tokio::task::spawn_blocking(move || {
            r.stop();
        })
        .await
        .ok();
    }
    let taps = &ctx.taps;
    let br = taps.ovs().bridge.clone();
    taps.ovs()
        .vsctl(&["--if-exists", "del-port", &br, &relay.0])
        .await
        .map_err(|e| failed(e.into()))?;
    // Deleting one end removes both; gone already is fine.
    let _ = taps.ip(&["link", "del", &relay.0]).await;
    taps.release_fault(tap);
    match taps.attach(tap, port).await {
        Err(e) if e.to_string().contains("Cannot find device") => Ok(()),
        other => other.map_err(failed),
    }
}

/// Plugs the node's taps now (a started node has fresh ones) rather than
/// on the next reconcile pass.
pub async fn replug(ctx: &Arc<Context>, node: &DesiredNode) -> NodeResult<()> {
    if node.nics.is_empty() {
        return Ok(());
    }
    let view = TapView::fetch(ctx.taps.ovs()).await?;
    ctx.taps.plug(&node.nics, &view).await?;
    Ok(())
}

/// Restores every tap of `nodes` that a cut left down or that a netem
/// relay holds, unless a fault of this agent holds it now; returns how
/// many. No healthy node has either: dclab keeps every tap up and on the
/// bridge unless a fault says otherwise.
pub async fn sweep(ctx: &Arc<Context>, nodes: &[DesiredNode]) -> usize {
    let links = match ctx
        .taps
        .ip(&["-j", "link", "show"])
        .await
        .and_then(|j| parse_links(&j))
    {
        Ok(links) => links,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot list the taps to sweep");
            return 0;
        }
    };
    let mut restored = 0;
    for nic in nodes.iter().flat_map(|n| &n.nics) {
        if ctx.taps.is_faulted(&nic.tap) {
            continue;
        }
        let relay = relay_names(&nic.tap);
        let result = if links.contains_key(&relay.0) {
            netem_heal(ctx, "", &nic.tap, &nic.port, &relay).await
        } else if links.get(&nic.tap).is_some_and(|l| !l.up) {
            link_restore(ctx, &nic.tap).await
        } else {
            continue;
        };
        match result {
            Ok(()) => restored += 1,
            Err(e) => tracing::warn!(tap = %nic.tap, error = %e, "cannot restore a tap"),
        }
    }
    restored
}
