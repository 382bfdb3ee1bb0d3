//! Lab nodes on this host, as the coordinator desires them. Independent of
//! the flow side (a host without libvirtd still forwards).
//!
//! - `driver`: what a node is (a libvirt VM today), behind one trait.
//! - `watch`: the node stream (`WatchNodes`): desired sets into a watch
//!   channel, operations to the executor.
//! - `reconcile`: every 2 s, on a new set or when a lease lapses,
//!   converges each node (files, domain, run state, taps), removes nodes no
//!   longer desired, reports.
//! - `ops`: the coordinator's operations, concurrently across nodes,
//!   answered with `ReportOperation`.
//! - `leases`: what the coordinator imposes (nodes held paused or off,
//!   faults), on disk, ended by release or expiry — never by a dropped
//!   stream; an ended lease's faults stay until healed (`crate::faults`).
//! - `reap`: at start, kills what earlier runs of nodes left on the host
//!   (each stop of a container node reaps as it ends; see `driver`).
//!
//! Files live under `--lab-dir` (see `layout`); the agent only ever removes
//! domains it has a node dir for, since several agents may share a libvirtd.

mod build;
pub mod cleanup;
pub(crate) mod connection;
pub mod driver;
pub mod layout;
pub(crate) mod leases;
pub(crate) mod locks;
pub(crate) mod ops;
mod reap;
mod reconcile;
mod report;
mod rooted;
mod rootfs;
mod spec;
pub(crate) mod taps;
pub use taps::FaultedTaps;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dclab_proto::v1::{DesiredNode, NodeSet};
use dclab_runtime::net::Channel;
use tokio::sync::{mpsc, watch as watch_channel, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ovs::Ovs;

pub use layout::{domain_name, Layout};

/// How often lapsed leases and due heals are looked for.
const LEASE_TICK: Duration = Duration::from_millis(250);

/// How the agent runs lab nodes on this host (the agent's flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub host_id: String,
    pub drivers: driver::DriverConfig,
    /// Where the agent keeps what must survive its restarts (leases).
    pub state_dir: PathBuf,
    /// Namespace of this host's ovs-vswitchd, where taps must go.
    pub vm_netns: Option<String>,
    pub ovs: Ovs,
    /// The bridge's uplink interface (`${uplink}` in traces).
    pub uplink: String,
    /// Flows faults add, shared with the rule reconciler.
    pub fault_flows: Arc<crate::faults::flow_table::FaultFlows>,
    /// Taps faults own, shared with the rule reconciler.
    pub faulted_taps: taps::FaultedTaps,
    pub metrics: Arc<crate::metrics::AgentMetrics>,
}

/// What the watch, the reconciler and the executor share.
pub(crate) struct Context {
    pub(crate) host_id: String,
    pub(crate) uplink: String,
    pub(crate) layout: layout::Layout,
    pub(crate) drivers: driver::Drivers,
    pub(crate) taps: taps::Taps,
    pub(crate) leases: Arc<leases::Leases>,
    /// Taken by operations and reconcile steps (see `locks`).
    pub(crate) locks: locks::NodeLocks,
    /// One exec at a time per micro-VM (a serial console takes one client).
    pub(crate) exec_locks: locks::NodeLocks,
    /// One heal attempt at a time per lease.
    pub(crate) heal_locks: locks::LeaseLocks,
    pub(crate) desired: watch_channel::Receiver<Option<NodeSet>>,
    /// Wakes the reconciler (a lease ended).
    pub(crate) wake: Notify,
    /// The faults awaiting heal changed: the coordinator is told at once.
    pub(crate) heals_changed: Notify,
    pub(crate) fault_flows: Arc<crate::faults::flow_table::FaultFlows>,
    pub(crate) metrics: Arc<crate::metrics::AgentMetrics>,
    /// Netem relays by the lease that holds them.
    pub(crate) relays: std::sync::Mutex<std::collections::HashMap<String, crate::netem::Relay>>,
}

impl Context {
    fn new(
        config: Config,
        leases: leases::Leases,
        desired: watch_channel::Receiver<Option<NodeSet>>,
    ) -> Context {
        let leases = Arc::new(leases);
        config.metrics.watch_leases(leases.clone());
        Context {
            host_id: config.host_id,
            uplink: config.uplink,
            layout: config.drivers.layout.clone(),
            drivers: driver::Drivers::new(config.drivers),
            taps: taps::Taps::new(config.ovs, config.vm_netns, config.faulted_taps),
            leases,
            locks: locks::NodeLocks::default(),
            exec_locks: locks::NodeLocks::default(),
            heal_locks: locks::LeaseLocks::default(),
            desired,
            wake: Notify::new(),
            heals_changed: Notify::new(),
            fault_flows: config.fault_flows,
            metrics: config.metrics,
            relays: Default::default(),
        }
    }

    /// Runs `f` on a blocking thread: libvirt, qemu-img and file work.
    pub(crate) async fn blocking<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<anyhow::Error> + Send + 'static,
        F: FnOnce(&Context) -> Result<T, E> + Send + 'static,
    {
        let ctx = self.clone();
        match tokio::task::spawn_blocking(move || f(&ctx)).await {
            Ok(result) => result,
            Err(e) => Err(anyhow::anyhow!("a node task panicked: {e}").into()),
        }
    }

    /// The node as last desired, if this host runs it.
    pub(crate) fn desired_node(&self, lab: &str, name: &str) -> Option<DesiredNode> {
        let set = self.desired.borrow();
        set.as_ref()?
            .nodes
            .iter()
            .find(|n| n.lab == lab && n.name == name)
            .cloned()
    }
}

/// Runs the node side until `stop` is cancelled: the stream, the executor,
/// the lease clock and the reconciler. Nothing is touched before the first
/// desired set.
pub async fn run(channel: Channel, config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let leases = leases::Leases::open(config.state_dir.join("leases.json"))
        .with_context(|| format!("opening the lease file in {}", config.state_dir.display()))?;
    let held = leases.list();
    if held.iter().any(|l| l.healing.is_none()) {
        info!(
            leases = held.len(),
            "leases taken before the restart are honoured until they end"
        );
    }
    let left: usize = leases.awaiting_heal().iter().map(|l| l.faults.len()).sum();
    if left > 0 {
        warn!(
            faults = left,
            "healing the faults left by the agent's last run once the node set is known"
        );
    }
    let (sets_tx, sets_rx) = watch_channel::channel(None);
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Context::new(config, leases, sets_rx.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch::run(
        channel.clone(),
        ctx.clone(),
        sets_tx,
        ops_tx,
        stop.clone(),
    ));
    tasks.spawn(ops::run(channel.clone(), ctx.clone(), ops_rx, stop.clone()));
    tasks.spawn(lease_clock(ctx.clone(), stop.clone()));
    tasks.spawn(heal_at_stop(ctx.clone(), stop.clone()));
    tasks.spawn(reconcile::run(channel, ctx, sets_rx, stop));
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// When the agent is stopped, every fault it holds is healed at once: an
/// agent stopped for good must not leave a link cut or a process stopped
/// behind. A heal that does not finish within HEAL_AT_STOP stays in the
/// lease file, and the agent's next start heals it. Snapshot holds are
/// left to lapse as they would.
async fn heal_at_stop(ctx: Arc<Context>, stop: CancellationToken) {
    stop.cancelled().await;
    let held: Vec<String> = ctx
        .leases
        .list()
        .into_iter()
        .filter(|l| !l.faults.is_empty())
        .map(|l| l.id)
        .collect();
    if held.is_empty() {
        return;
    }
    info!(leases = held.len(), "agent stopping: healing the faults it holds");
    let mut heals = tokio::task::JoinSet::new();
    for id in held {
        let ctx = ctx.clone();
        heals.spawn(async move { crate::faults::heal_lease(&ctx, &id).await.failures.is_empty() });
    }
    match tokio::time::timeout(HEAL_AT_STOP, heals.join_all()).await {
        Ok(healed) if healed.iter().all(|h| *h) => info!("faults healed"),
        Ok(_) => warn!("some faults did not heal; the agent's next start heals them"),
        Err(_) => warn!(
            "faults not healed within {} s; the agent's next start heals them",
            HEAL_AT_STOP.as_secs()
        ),
    }
}

/// How long a stopping agent gives the heals of its faults.
const HEAL_AT_STOP: Duration = Duration::from_secs(3);

/// Ends lapsed leases (waking the reconciler to bring their nodes back)
/// and starts the heals that are due. Heals wait for the first node set,
/// which says which nodes are here: a heal may run a command in one, and a
/// node not in the set was removed. The first time, after a lease file
/// that could not be read, what faults leave on the taps is swept.
async fn lease_clock(ctx: Arc<Context>, stop: CancellationToken) {
    let mut set_known = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(LEASE_TICK) => {}
        }
        let lapsed = ctx.leases.expire();
        for lease in &lapsed {
            warn!(lease = %lease.id, nodes = ?lease.nodes, faults = lease.faults.len(), "lease lapsed without release; healing and running its nodes again");
        }
        if !lapsed.is_empty() {
            ctx.wake.notify_one();
            ctx.heals_changed.notify_one();
        }
        if !set_known {
            if ctx.desired.borrow().is_none() {
                continue;
            }
            set_known = true;
            // What earlier runs of nodes left on the host goes first.
            reap::at_start(&ctx).await;
            if ctx.leases.damaged() {
                crate::faults::sweep(&ctx).await;
            }
        }
        crate::faults::spawn_due(&ctx);
    }
}

/// A context on libvirt's test driver with its files under `dir`, and the
/// sender of its desired sets.
#[cfg(test)]
fn test_context(dir: &std::path::Path) -> (Arc<Context>, watch_channel::Sender<Option<NodeSet>>) {
    test_context_on(dir, "test:///default")
}

/// As [`test_context`], with its leases in `dir/state/leases.json` as an
/// agent keeps them, so a second context on `dir` is the agent restarted.
#[cfg(test)]
fn test_context_on_disk(dir: &std::path::Path) -> (Arc<Context>, watch_channel::Sender<Option<NodeSet>>) {
    let leases = leases::Leases::open(dir.join("state/leases.json")).unwrap();
    test_context_with(dir, "test:///default", leases)
}

#[cfg(test)]
fn test_context_on(
    dir: &std::path::Path,
    libvirt_uri: &str,
) -> (Arc<Context>, watch_channel::Sender<Option<NodeSet>>) {
    test_context_with(dir, libvirt_uri, leases::Leases::in_memory())
}

#[cfg(test)]
fn test_context_with(
    dir: &std::path::Path,
    libvirt_uri: &str,
    leases: leases::Leases,
) -> (Arc<Context>, watch_channel::Sender<Option<NodeSet>>) {
    let (tx, rx) = watch_channel::channel(None);
    let config = Config {
        host_id: "h1".into(),
        drivers: driver::DriverConfig {
            layout: layout::Layout {
                lab_dir: dir.join("labs"),
            },
            image_dir: dir.join("images"),
            cache_dir: dir.join("cache"),
            libvirt_uri: libvirt_uri.into(),
            lxc_uri: libvirt_uri.into(),
            debian_mirror: crate::image::debian::MIRROR.into(),
            domain_type: "test".into(),
            apt: None,
        },
        state_dir: dir.join("state"),
        vm_netns: None,
        faulted_taps: FaultedTaps::default(),
        uplink: "up0".into(),
        fault_flows: Default::default(),
        metrics: Arc::new(crate::metrics::AgentMetrics::new("h1")),
        ovs: Ovs {
            db: format!("unix:{}/no-db.sock", dir.display()),
            rundir: dir.to_path_buf(),
            bridge: "br-int".into(),
            datapath: "netdev".into(),
            unixctl: None,
        },
    };
    (Arc::new(Context::new(config, leases, rx)), tx)
}
