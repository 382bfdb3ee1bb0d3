//! Converges this host's nodes to the desired set: on every new set, when
//! a lease ends, and every 2 s. Each desired node gets its dir, spec.json,
//! files and definition (its driver's work) and, unless a lease holds it,
//! runs; then its taps are plugged. A node dir nobody desires is removed
//! with its node. Then the states go to the coordinator (`ReportNodes`),
//! with the faults still awaiting their heal.
//!
//! Crash safety: spec.json is written before the disks, the disks before
//! the domain; removal goes domain first, dir last. So a node dir without a
//! domain is finished on the next pass, and a domain is never left behind
//! without the dir that says it is ours.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dclab_proto::v1::{DesiredNode, NodeLeftovers, NodeSet, NodeState, NodeStatus};
use dclab_runtime::net::Channel;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::driver::{Leftovers, NodeResult};
use super::layout::{check_name, describe, domain_name, NodeKey};
use super::report::Reporter;
use super::spec::{self, AppliedSpec, Change};
use super::taps::TapView;
use super::Context;
use crate::libvirt::VmState;

const PASS_EVERY: Duration = Duration::from_secs(2);

pub async fn run(
    channel: Channel,
    ctx: Arc<Context>,
    mut sets: watch::Receiver<Option<NodeSet>>,
    stop: CancellationToken,
) {
    let mut reporter = Reporter::new(channel, &ctx.host_id);
    let mut last: BTreeMap<NodeKey, NodeStatus> = BTreeMap::new();
    // The last pass's version and states, sent again when only the faults
    // awaiting heal changed.
    let mut passed: Option<(u64, Vec<NodeStatus>)> = None;
    loop {
        let fresh = tokio::select! {
            _ = stop.cancelled() => return,
            changed = sets.changed() => {
                if changed.is_err() {
                    return;
                }
                true
            }
            _ = ctx.wake.notified() => false,
            _ = ctx.heals_changed.notified() => {
                if let Some((version, report)) = &passed {
                    reporter.send(*version, report.clone(), ctx.leases.pending_heals(), false).await;
                }
                continue;
            }
            _ = tokio::time::sleep(PASS_EVERY) => false,
        };
        let Some(set) = sets.borrow_and_update().clone() else {
            continue;
        };
        // New nodes (and changed ones) arrive with a new set: say they are
        // being created before the slow part starts.
        let creating = if fresh {
            about_to_build(&ctx, &set).await
        } else {
            BTreeSet::new()
        };
        if !creating.is_empty() {
            let interim = statuses(&set, &last, |key| {
                creating
                    .contains(key)
                    .then(|| status(key, NodeState::Creating, String::new()))
            });
            reporter
                .send(set.version, interim, ctx.leases.pending_heals(), true)
                .await;
        }
        let (now, leftovers) = pass(&ctx, &set, &last).await;
        reporter.add_leftovers(leftovers);
        for (key, s) in &now {
            if last.get(key) != Some(s) {
                log_change(key, s);
            }
        }
        last = now;
        let report = statuses(&set, &last, |_| None);
        ctx.metrics
            .nodes_seen(report.iter().map(|s| node_state_name(s.state)));
        passed = Some((set.version, report.clone()));
        reporter
            .send(set.version, report, ctx.leases.pending_heals(), fresh)
            .await;
    }
}

fn status(key: &NodeKey, state: NodeState, error: String) -> NodeStatus {
    NodeStatus {
        lab: key.0.clone(),
        name: key.1.clone(),
        state: state.into(),
        error,
    }
}

/// Every desired node's status, in set order: `pick` first, else the last
/// one known, else CREATING.
fn statuses(
    set: &NodeSet,
    last: &BTreeMap<NodeKey, NodeStatus>,
    pick: impl Fn(&NodeKey) -> Option<NodeStatus>,
) -> Vec<NodeStatus> {
    set.nodes
        .iter()
        .map(|n| {
            let key = (n.lab.clone(), n.name.clone());
            pick(&key)
                .or_else(|| last.get(&key).cloned())
                .unwrap_or_else(|| status(&key, NodeState::Creating, String::new()))
        })
        .collect()
}

fn log_change(key: &NodeKey, s: &NodeStatus) {
    let state = NodeState::try_from(s.state).unwrap_or(NodeState::Unspecified);
    if s.error.is_empty() {
        info!(node = %describe(key), state = state.as_str_name(), "node state");
    } else {
        warn!(node = %describe(key), state = state.as_str_name(), error = %s.error, "node failed");
    }
}

/// Nodes this pass will create or rebuild (no spec.json, a different one,
/// or no root disk yet): reported CREATING before the slow part starts.
async fn about_to_build(ctx: &Arc<Context>, set: &NodeSet) -> BTreeSet<NodeKey> {
    let nodes = set.nodes.clone();
    let found = ctx.blocking(move |ctx| {
        anyhow::Ok(
            nodes
                .iter()
                .filter(|n| {
                    let dir = ctx.layout.node_dir(&n.lab, &n.name);
                    let applied = spec::read(&dir.spec()).ok().flatten();
                    let changed =
                        applied.is_none_or(|a| a.compare(&AppliedSpec::from(*n)) == Change::Rebuild);
                    changed || !dir.root_disk().exists()
                })
                .map(|n| (n.lab.clone(), n.name.clone()))
                .collect(),
        )
    });
    found.await.unwrap_or_default()
}

/// One pass over every desired node (concurrently) and every stray node
/// dir: the states, and what removed nodes left running.
async fn pass(
    ctx: &Arc<Context>,
    set: &NodeSet,
    last: &BTreeMap<NodeKey, NodeStatus>,
) -> (BTreeMap<NodeKey, NodeStatus>, Vec<NodeLeftovers>) {
    let any_nics = set.nodes.iter().any(|n| !n.nics.is_empty());
    let view = match any_nics.then(|| TapView::fetch(ctx.taps.ovs())) {
        None => None,
        Some(fetched) => match fetched.await {
            Ok(view) => Some(Arc::new(view)),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot read links and OvS interfaces");
                None
            }
        },
    };
    let mut tasks = tokio::task::JoinSet::new();
    for node in set.nodes.clone() {
        let (ctx, view) = (ctx.clone(), view.clone());
        tasks.spawn(async move {
            let key = (node.lab.clone(), node.name.clone());
            let outcome = step(&ctx, node, view).await;
            (key, outcome)
        });
    }
    let mut now = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((key, outcome)) = joined else {
            continue;
        };
        let s = match outcome {
            Some(Ok(state)) => state_status(&key, state),
            Some(Err(e)) => status(&key, NodeState::Failed, format!("{}: {e}", describe(&key))),
            // An operation has the node: keep what was last seen.
            None => match last.get(&key) {
                Some(s) => s.clone(),
                None => status(&key, NodeState::Creating, String::new()),
            },
        };
        now.insert(key, s);
    }
    let leftovers = remove_strays(ctx, set).await;
    (now, leftovers)
}

fn state_status(key: &NodeKey, state: VmState) -> NodeStatus {
    match state {
        VmState::Running => status(key, NodeState::Running, String::new()),
        VmState::Paused => status(key, NodeState::Paused, String::new()),
        VmState::Off => status(key, NodeState::Stopped, String::new()),
        VmState::Other => status(
            key,
            NodeState::Failed,
            format!(
                "{}: libvirt reports it neither running, paused nor off (shutting down or crashed); `virsh domstate {}` says more",
                describe(key),
                domain_name(&key.0, &key.1)
            ),
        ),
    }
}

/// Converges one node. None when an operation holds its lock.
async fn step(
    ctx: &Arc<Context>,
    node: DesiredNode,
    view: Option<Arc<TapView>>,
) -> Option<NodeResult<VmState>> {
    let key = (node.lab.clone(), node.name.clone());
    // Outside the lock: the first micro build is slow, and operations
    // waiting for the lock must not wait for it.
    if let Err(e) = provision(ctx, &node).await {
        return Some(Err(e));
    }
    let lock = ctx.locks.get(&key);
    let _guard = lock.try_lock().ok()?;
    Some(converge(ctx, node, view).await)
}

async fn provision(ctx: &Arc<Context>, node: &DesiredNode) -> NodeResult<()> {
    check_name("lab", &node.lab).map_err(super::driver::NodeError::Invalid)?;
    check_name("node", &node.name).map_err(super::driver::NodeError::Invalid)?;
    let node = node.clone();
    ctx.blocking(move |ctx| ctx.drivers.for_node(&node)?.provision(&node))
        .await
}

async fn converge(ctx: &Arc<Context>, node: DesiredNode, view: Option<Arc<TapView>>) -> NodeResult<VmState> {
    let key = (node.lab.clone(), node.name.clone());
    let stale = {
        let node = node.clone();
        ctx.blocking(move |ctx| stale_build(ctx, &node)).await?
    };
    if let Some(old) = stale {
        info!(node = %describe(&key), "node changed (or was left half built); rebuilding it");
        teardown(ctx, &key, old).await?;
        ctx.leases.release("", &key);
    }
    let (before, after) = {
        let node = node.clone();
        ctx.blocking(move |ctx| {
            let held = ctx.leases.is_held(&(node.lab.clone(), node.name.clone()));
            ctx.drivers.for_node(&node)?.converge(&node, held)
        })
        .await?
    };
    if matches!(after, VmState::Running | VmState::Paused) && !node.nics.is_empty() {
        // A qemu started just now has fresh taps the pass's view predates.
        let started = !matches!(before, Some(VmState::Running | VmState::Paused));
        let plugged = match view {
            Some(view) if !started => ctx.taps.plug(&node.nics, &view).await,
            _ => Err(anyhow::anyhow!("no current view of the taps")),
        };
        if plugged.is_err() {
            // The pass's view may predate an operation that restarted qemu
            // and plugged the taps itself: look again before failing.
            let view = TapView::fetch(ctx.taps.ovs()).await?;
            ctx.taps.plug(&node.nics, &view).await?;
        }
    }
    Ok(after)
}

/// Whether the node dir holds something other than the desired node:
/// Some(what was built there, as far as known) to tear down first, None to
/// keep it.
fn stale_build(ctx: &Context, node: &DesiredNode) -> anyhow::Result<Option<DesiredNode>> {
    let dir = ctx.layout.node_dir(&node.lab, &node.name);
    let desired = AppliedSpec::from(node);
    // What is left of a build whose spec is lost: the same node, no taps.
    let unknown = || DesiredNode {
        nics: vec![],
        ..node.clone()
    };
    match spec::read(&dir.spec()) {
        Ok(Some(applied)) => match applied.compare(&desired) {
            Change::Same => Ok(None),
            Change::SpecOnly => spec::write(&dir.spec(), &desired).map(|()| None),
            Change::Rebuild => Ok(Some(applied.into())),
        },
        // A dir without spec.json was cut short before it was written.
        Ok(None) if dir.path.exists() => Ok(Some(unknown())),
        Ok(None) => Ok(None),
        Err(e) => {
            warn!(error = %format!("{e:#}"), "unreadable node spec; rebuilding the node");
            Ok(Some(unknown()))
        }
    }
}

/// The node (its domain with snapshot metadata), then its taps' OvS ports,
/// then the node dir. Stops at the first failure so the dir outlives the
/// domain. Says what of the node outlived libvirt's stop.
async fn teardown(ctx: &Arc<Context>, key: &NodeKey, built: DesiredNode) -> NodeResult<Leftovers> {
    let taps: Vec<String> = built.nics.iter().map(|n| n.tap.clone()).collect();
    let left = ctx
        .blocking(move |ctx| ctx.drivers.for_node(&built)?.remove(&built))
        .await?;
    ctx.taps.unplug(&taps).await?;
    let dir = ctx.layout.node_dir(&key.0, &key.1);
    match std::fs::remove_dir_all(&dir.path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.path.display()))?
        }
        _ => Ok(left),
    }
}

/// Removes node dirs (and their domains) the desired set does not name;
/// returns those whose processes outlived libvirt's stop.
async fn remove_strays(ctx: &Arc<Context>, set: &NodeSet) -> Vec<NodeLeftovers> {
    let desired: BTreeSet<NodeKey> = set
        .nodes
        .iter()
        .map(|n| (n.lab.clone(), n.name.clone()))
        .collect();
    let existing = match ctx.layout.existing_nodes() {
        Ok(existing) => existing,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "cannot scan the lab dir for removed nodes");
            return Vec::new();
        }
    };
    // Independent nodes: removed side by side (each destroy takes a while).
    let mut removals = tokio::task::JoinSet::new();
    for key in existing.into_iter().filter(|k| !desired.contains(k)) {
        removals.spawn(remove_stray(ctx.clone(), key));
    }
    let mut leftovers = Vec::new();
    while let Some(removed) = removals.join_next().await {
        if let Ok(Some((key, Leftovers(processes @ 1..)))) = removed {
            leftovers.push(NodeLeftovers {
                lab: key.0,
                name: key.1,
                processes,
                host: String::new(),
            });
        }
    }
    leftovers
}

/// Removes one node; Some once it is gone, with what it left running.
async fn remove_stray(ctx: Arc<Context>, key: NodeKey) -> Option<(NodeKey, Leftovers)> {
    let lock = ctx.locks.get(&key);
    let Ok(guard) = lock.try_lock() else {
        return None;
    };
    let dir = ctx.layout.node_dir(&key.0, &key.1);
    // Without a readable spec it was a VM (the only kind before specs had one).
    let built = spec::read(&dir.spec())
        .ok()
        .flatten()
        .map(DesiredNode::from)
        .unwrap_or_else(|| DesiredNode {
            lab: key.0.clone(),
            name: key.1.clone(),
            ..DesiredNode::default()
        });
    let removed = match teardown(&ctx, &key, built).await {
        Ok(left) => {
            info!(node = %describe(&key), leftovers = left.0, "node no longer desired here; removed");
            ctx.layout.remove_lab_if_empty(&key.0);
            ctx.leases.release("", &key);
            Some((key.clone(), left))
        }
        Err(e) => {
            warn!(node = %describe(&key), error = %e, "cannot remove node yet");
            None
        }
    };
    drop(guard);
    ctx.locks.forget(&key);
    removed
}

/// A node state as metrics label it.
fn node_state_name(state: i32) -> &'static str {
    match NodeState::try_from(state) {
        Ok(NodeState::Pending) => "pending",
        Ok(NodeState::Creating) => "creating",
        Ok(NodeState::Running) => "running",
        Ok(NodeState::Paused) => "paused",
        Ok(NodeState::Stopped) => "stopped",
        Ok(NodeState::Failed) => "failed",
        Ok(NodeState::Unspecified) | Err(_) => "unknown",
    }
}

#[cfg(test)]
mod tests;
