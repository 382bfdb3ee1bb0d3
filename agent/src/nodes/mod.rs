//! Lab nodes on this host: libvirt VMs as the coordinator desires them.
//! Independent of the flow side (a host without libvirtd still forwards).
//!
//! - `watch`: the node stream (`WatchNodes`): desired sets into a watch
//!   channel, operations to the executor; on a drop, holds are released.
//! - `reconcile`: every 2 s or on a new set, converges each node (files,
//!   domain, run state, taps), removes nodes no longer desired, reports.
//! - `ops`: PAUSE, RESUME, SNAPSHOT, REVERT, DELETE_SNAPSHOT, SHUTDOWN and
//!   EXEC, concurrently across nodes, answered with `ReportOperation`.
//!
//! Files live under `--lab-dir` (see `layout`); the agent only ever removes
//! domains it has a node dir for, since several agents may share a libvirtd.

mod build;
mod connection;
mod holds;
mod layout;
mod ops;
mod reconcile;
mod report;
mod spec;
mod taps;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use dclab_proto::net::Channel;
use dclab_proto::v1::{DesiredNode, NodeSet};
use tokio::sync::{mpsc, watch as watch_channel};

use crate::ovs::Ovs;

pub use layout::domain_name;

/// How the agent runs lab nodes on this host (the agent's flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub host_id: String,
    /// Node dirs: `<lab_dir>/<lab>/<node>/`. Absolute: overlays record
    /// their backing file's path.
    pub lab_dir: PathBuf,
    /// `micro/` (built here) and `<image>.qcow2` cloud images.
    pub image_dir: PathBuf,
    /// The apt cache disk, kept across labs.
    pub cache_dir: PathBuf,
    pub libvirt_uri: String,
    /// `qemu` (TCG) or `kvm`.
    pub domain_type: String,
    /// Namespace of this host's ovs-vswitchd, where taps must go.
    pub vm_netns: Option<String>,
    pub ovs: Ovs,
}

/// What the watch, the reconciler and the executor share.
struct Context {
    host_id: String,
    layout: layout::Layout,
    cache_dir: PathBuf,
    domain_type: String,
    libvirt: connection::Libvirt,
    images: build::Images,
    taps: taps::Taps,
    holds: holds::Holds,
    /// Taken by operations and reconcile steps (see `holds`).
    locks: holds::NodeLocks,
    /// One serial console client at a time per node.
    exec_locks: holds::NodeLocks,
    desired: watch_channel::Receiver<Option<NodeSet>>,
}

impl Context {
    fn new(config: Config, desired: watch_channel::Receiver<Option<NodeSet>>) -> Context {
        Context {
            host_id: config.host_id,
            layout: layout::Layout {
                lab_dir: config.lab_dir,
            },
            cache_dir: config.cache_dir,
            domain_type: config.domain_type,
            libvirt: connection::Libvirt::new(&config.libvirt_uri),
            images: build::Images::new(config.image_dir),
            taps: taps::Taps::new(config.ovs, config.vm_netns),
            holds: holds::Holds::default(),
            locks: holds::NodeLocks::default(),
            exec_locks: holds::NodeLocks::default(),
            desired,
        }
    }

    /// Runs `f` on a blocking thread: libvirt, qemu-img and file work.
    async fn blocking<T, F>(self: &Arc<Self>, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Context) -> anyhow::Result<T> + Send + 'static,
    {
        let ctx = self.clone();
        tokio::task::spawn_blocking(move || f(&ctx))
            .await
            .context("a node task panicked")?
    }

    /// The node as last desired, if this host runs it.
    fn desired_node(&self, lab: &str, name: &str) -> Option<DesiredNode> {
        let set = self.desired.borrow();
        set.as_ref()?
            .nodes
            .iter()
            .find(|n| n.lab == lab && n.name == name)
            .cloned()
    }
}

/// Runs the node side until the process ends: the stream, the executor
/// and the reconciler. Nothing is touched before the first desired set.
pub async fn run(channel: Channel, config: Config) {
    let (sets_tx, sets_rx) = watch_channel::channel(None);
    let (ops_tx, ops_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Context::new(config, sets_rx.clone()));
    tokio::spawn(watch::run(channel.clone(), ctx.clone(), sets_tx, ops_tx));
    tokio::spawn(ops::run(channel.clone(), ctx.clone(), ops_rx));
    reconcile::run(channel, ctx, sets_rx).await;
}

/// A context on libvirt's test driver with its files under `dir`, and the
/// sender of its desired sets.
#[cfg(test)]
fn test_context(dir: &std::path::Path) -> (Arc<Context>, watch_channel::Sender<Option<NodeSet>>) {
    test_context_on(dir, "test:///default")
}

#[cfg(test)]
fn test_context_on(
    dir: &std::path::Path,
    libvirt_uri: &str,
) -> (Arc<Context>, watch_channel::Sender<Option<NodeSet>>) {
    let (tx, rx) = watch_channel::channel(None);
    let config = Config {
        host_id: "h1".into(),
        lab_dir: dir.join("labs"),
        image_dir: dir.join("images"),
        cache_dir: dir.join("cache"),
        libvirt_uri: libvirt_uri.into(),
        domain_type: "test".into(),
        vm_netns: None,
        ovs: Ovs {
            db: format!("unix:{}/no-db.sock", dir.display()),
            rundir: dir.to_path_buf(),
            bridge: "br-int".into(),
            datapath: "netdev".into(),
        },
    };
    (Arc::new(Context::new(config, rx)), tx)
}
