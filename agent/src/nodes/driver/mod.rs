//! What a node is, behind one interface: the reconciler and the operations
//! ask a driver to prepare, run, stop, snapshot or exec a node and never
//! care which kind it is. A driver that cannot do something says so with
//! `NodeError::Unsupported`.
//!
//! Adding a kind is one file here and one arm in `Drivers::for_kind`.

mod domains;
mod lxc;
mod lxc_cgroups;
mod lxc_exec;
mod lxc_procs;
mod lxc_reap;
mod lxc_reap_bench;
mod qemu;

use std::path::PathBuf;
use std::time::Duration;

use dclab_proto::v1::{self, DesiredNode, NodeKind};

use super::layout::{describe, Layout, NodeDir, NodeKey};
use crate::exec_output::CommandOutput;
use crate::libvirt::{Hypervisor, SnapshotKind, VirtError, VmState};

pub use lxc::LxcDriver;
pub use lxc_exec::{init_pid as container_init, listen_inside};
pub use lxc_reap_bench::{run as bench_reap, ReapBench};
pub use qemu::{QemuDriver, SHUTDOWN_GRACE};

/// Why a node could not be driven, as callers tell cases apart.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// This kind of node cannot do it (exec on a cloud-image VM, say).
    #[error("{0}")]
    Unsupported(String),
    /// The node (or its domain) is not there.
    #[error("{0}")]
    NotFound(String),
    /// The request itself was wrong (no snapshot named).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Libvirt(#[from] VirtError),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl NodeError {
    /// The kind an operation result carries to the coordinator.
    pub fn kind(&self) -> v1::OperationError {
        match self {
            NodeError::Unsupported(_) => v1::OperationError::Unsupported,
            NodeError::NotFound(_) => v1::OperationError::NotFound,
            NodeError::Invalid(_) => v1::OperationError::Invalid,
            NodeError::Libvirt(_) | NodeError::Failed(_) => v1::OperationError::Failed,
        }
    }
}

pub type NodeResult<T> = Result<T, NodeError>;

/// How many processes of a node outlived its stop (libvirt said it was
/// off) and had to be killed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers(pub u32);

/// One kind of node. Every method blocks (libvirt, qemu-img, consoles):
/// call them from blocking threads.
pub trait NodeDriver: Send + Sync {
    /// Whatever the node needs from outside its dir (its image, built or
    /// found once per host). May be slow; runs outside the node's lock.
    fn provision(&self, node: &DesiredNode) -> NodeResult<()>;
    /// Creates what is missing of the node's files and its definition and,
    /// unless `held`, brings it to running. Returns the state before
    /// (None: not defined) and after.
    fn converge(&self, node: &DesiredNode, held: bool) -> NodeResult<(Option<VmState>, VmState)>;
    /// None when the node is not defined.
    fn state(&self, node: &DesiredNode) -> NodeResult<Option<VmState>>;
    /// Runs a node that is off (a running or paused one is left alone).
    fn start(&self, node: &DesiredNode) -> NodeResult<()>;
    /// Pulls the plug.
    fn power_off(&self, node: &DesiredNode) -> NodeResult<()>;
    /// Asks the node to stop and pulls the plug after a grace.
    fn shutdown(&self, node: &DesiredNode) -> NodeResult<()>;
    /// Restarts the node the way its own reboot would (a guest that cannot
    /// reboot itself is reset).
    fn reboot(&self, node: &DesiredNode) -> NodeResult<()>;
    /// The reset button: restarts at once, nothing flushed.
    fn reset(&self, node: &DesiredNode) -> NodeResult<()>;
    fn pause(&self, node: &DesiredNode) -> NodeResult<()>;
    /// Whether a paused node still answers on the network (a container's
    /// network stack is the host kernel's, which no freezer stops).
    fn answers_while_paused(&self) -> bool {
        false
    }
    fn resume(&self, node: &DesiredNode) -> NodeResult<()>;
    /// Replaces a snapshot of the same name.
    fn snapshot(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<()>;
    /// Back to the snapshot, never running afterwards: paused or off.
    fn revert(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<SnapshotKind>;
    fn delete_snapshot(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<()>;
    /// Runs one shell command line in the node and returns its exit code;
    /// its output (stdout and stderr) goes to `out` as it arrives. On an
    /// error, `out` holds what came before it.
    fn exec(
        &self,
        node: &DesiredNode,
        command: &str,
        timeout: Duration,
        out: &mut CommandOutput,
    ) -> NodeResult<i32>;
    /// A TCP connection to `port` of the node, made from inside it (the
    /// host has no route into a lab).
    fn connect(&self, node: &DesiredNode, port: u16) -> NodeResult<std::net::TcpStream> {
        let _ = port;
        Err(NodeError::Unsupported(format!(
            "{} is a VM: its ports are reached from other nodes of its lab; tunnels reach container nodes",
            about(node)
        )))
    }
    /// Stops and undefines the node; its dir is the caller's. Says what
    /// of it had to be killed after its stop.
    fn remove(&self, node: &DesiredNode) -> NodeResult<Leftovers>;
    /// Kills what earlier runs of the node left on the host; a run under
    /// way is kept. Nothing to do for kinds whose stop leaves nothing.
    fn reap(&self, node: &DesiredNode) -> NodeResult<Leftovers> {
        let _ = node;
        Ok(Leftovers::default())
    }
    /// Kills what is left of nodes of this kind that no libvirt domain
    /// stands for any more (their agent and node dir are gone); returns
    /// each one's domain and what was killed.
    fn reap_orphans(&self) -> NodeResult<Vec<(String, Leftovers)>> {
        Ok(Vec::new())
    }
}

/// How the agent runs each kind of node on this host (the agent's flags).
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub layout: Layout,
    /// `micro/` (built here) and `<image>.qcow2` cloud images.
    pub image_dir: PathBuf,
    /// The apt cache disk, kept across labs.
    pub cache_dir: PathBuf,
    pub libvirt_uri: String,
    /// Libvirt's LXC driver, for container nodes.
    pub lxc_uri: String,
    /// Where Debian images are built from.
    pub debian_mirror: String,
    /// `qemu` (TCG) or `kvm`.
    pub domain_type: String,
    /// The host's apt cache, served inside Debian container nodes.
    pub apt: Option<std::sync::Arc<crate::aptcache::NodePorts>>,
}

/// One driver per kind.
pub struct Drivers {
    vm: QemuDriver,
    container: LxcDriver,
}

impl Drivers {
    pub fn new(config: DriverConfig) -> Drivers {
        Drivers {
            container: LxcDriver::new(&config),
            vm: QemuDriver::new(config),
        }
    }

    pub fn for_kind(&self, kind: NodeKind) -> NodeResult<&dyn NodeDriver> {
        match kind {
            NodeKind::Unspecified | NodeKind::Vm => Ok(&self.vm),
            NodeKind::Container => Ok(&self.container),
        }
    }

    pub fn for_node(&self, node: &DesiredNode) -> NodeResult<&dyn NodeDriver> {
        let kind = NodeKind::try_from(node.kind)
            .map_err(|_| NodeError::Unsupported(format!("unknown node kind {}", node.kind)))?;
        self.for_kind(kind)
    }

    /// The qemu driver, for what only VMs have (tests reach libvirt here).
    pub fn vm(&self) -> &QemuDriver {
        &self.vm
    }
}

/// The state of a defined domain; NotFound while it is not defined (yet).
/// `what` names the kind in the message ("domain", "container").
fn defined_state(hv: &Hypervisor, domain: &str, what: &str) -> NodeResult<VmState> {
    hv.state(domain)?.ok_or_else(|| {
        NodeError::NotFound(format!(
            "{what} {domain} is not defined yet (is the node still being created?)"
        ))
    })
}

/// The state right after converge defined (and maybe started) the domain.
fn state_after_define(hv: &Hypervisor, domain: &str, what: &str) -> NodeResult<VmState> {
    hv.state(domain)?.ok_or_else(|| {
        NodeError::Failed(anyhow::anyhow!(
            "{what} {domain} vanished right after it was defined"
        ))
    })
}

/// "node NAME of lab LAB", for messages.
pub fn about(node: &DesiredNode) -> String {
    describe(&key(node))
}

pub fn key(node: &DesiredNode) -> NodeKey {
    (node.lab.clone(), node.name.clone())
}

/// Where the node's files are.
pub fn dir_of(layout: &Layout, node: &DesiredNode) -> NodeDir {
    layout.node_dir(&node.lab, &node.name)
}
