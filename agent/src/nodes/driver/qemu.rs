//! VM nodes: libvirt qemu/kvm domains, booting the micro-VM (kernel and
//! initramfs, exec over the serial console) or a cloud image (from disk,
//! with a NoCloud seed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dclab_proto::v1::DesiredNode;

use super::domains::Domains;
use super::{dir_of, DriverConfig, Leftovers, NodeDriver, NodeError, NodeResult};
use crate::exec_output::CommandOutput;
use crate::image::SerialConsole;
use crate::libvirt::{Hypervisor, SnapshotKind, VmState};
use crate::nodes::build::{self, ImageRef, Images};
use crate::nodes::layout::{domain_name, Layout};
use crate::nodes::spec::{self, AppliedSpec};

/// How long a cloud-image guest gets to power off before the plug is pulled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The console socket exists as soon as qemu runs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct QemuDriver {
    domains: Domains,
    images: Images,
    layout: Layout,
    cache_dir: PathBuf,
    domain_type: String,
}

impl QemuDriver {
    pub fn new(config: DriverConfig) -> QemuDriver {
        QemuDriver {
            domains: Domains::new(&config.libvirt_uri, "domain"),
            images: Images::new(
                config.image_dir,
                config.cache_dir.clone(),
                config.debian_mirror.clone(),
            ),
            layout: config.layout,
            cache_dir: config.cache_dir,
            domain_type: config.domain_type,
        }
    }

    /// The libvirt connection, for callers that need the domain itself.
    pub fn hypervisor(&self) -> NodeResult<std::sync::Arc<Hypervisor>> {
        self.domains.hypervisor()
    }

    fn domain(node: &DesiredNode) -> String {
        domain_name(&node.lab, &node.name)
    }

    fn defined_state(&self, node: &DesiredNode) -> NodeResult<VmState> {
        self.domains.defined_state(node)
    }

    /// A micro-VM ignores ACPI and writes its disk synchronously, so it is
    /// stopped at once with nothing lost; a cloud image gets a grace.
    pub fn shutdown_grace(node: &DesiredNode) -> Duration {
        if is_micro(node) {
            Duration::ZERO
        } else {
            SHUTDOWN_GRACE
        }
    }
}

fn is_micro(node: &DesiredNode) -> bool {
    ImageRef::of(&node.image) == ImageRef::Micro
}

impl NodeDriver for QemuDriver {
    fn provision(&self, node: &DesiredNode) -> NodeResult<()> {
        // Without libvirtd, say so rather than build an image for nothing.
        self.domains.hypervisor()?;
        self.images.resolve(&node.image)?;
        Ok(())
    }

    fn converge(&self, node: &DesiredNode, held: bool) -> NodeResult<(Option<VmState>, VmState)> {
        let image = self.images.resolve(&node.image)?;
        let hv = self.hypervisor()?;
        let dir = dir_of(&self.layout, node);
        dir.create()?;
        if !dir.spec().exists() {
            spec::write(&dir.spec(), &AppliedSpec::from(node))?;
        }
        let cache = build::cache_disk(&self.cache_dir, node);
        build::prepare(&dir, node, &image, cache.as_deref())?;
        let vm = build::vm_spec(node, &dir, &image, &self.domain_type, cache.as_deref());
        let before = hv.state(&vm.name)?;
        if held {
            hv.ensure_defined(&vm)?;
        } else {
            // Converge after crashes and restarts: not held means running.
            match before {
                Some(VmState::Paused) => hv.resume(&vm.name)?,
                Some(VmState::Other) => {}
                _ => hv.ensure_running(&vm)?,
            }
        }
        let after = super::state_after_define(&hv, &vm.name, "domain")?;
        Ok((before, after))
    }

    fn state(&self, node: &DesiredNode) -> NodeResult<Option<VmState>> {
        Ok(self.hypervisor()?.state(&Self::domain(node))?)
    }

    fn start(&self, node: &DesiredNode) -> NodeResult<()> {
        self.defined_state(node)?;
        Ok(self.hypervisor()?.start(&Self::domain(node))?)
    }

    fn power_off(&self, node: &DesiredNode) -> NodeResult<()> {
        let before = self.defined_state(node)?;
        let (hv, domain) = (self.hypervisor()?, Self::domain(node));
        // qemu takes about a second to exit on libvirt's SIGTERM (more under
        // load): paused first, the guest stops at once, as at a plug pull.
        if before == VmState::Running {
            hv.pause(&domain)?;
        }
        Ok(hv.destroy(&domain)?)
    }

    fn shutdown(&self, node: &DesiredNode) -> NodeResult<()> {
        self.defined_state(node)?;
        let grace = Self::shutdown_grace(node);
        Ok(self.hypervisor()?.shutdown(&Self::domain(node), grace)?)
    }

    fn reboot(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.reboot(node, is_micro(node))
    }

    fn reset(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.reset(node)
    }

    fn pause(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.pause(node)
    }

    fn resume(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.resume(node)
    }

    fn snapshot(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<()> {
        self.defined_state(node)?;
        let (hv, domain) = (self.hypervisor()?, Self::domain(node));
        // The coordinator's records decide which snapshots exist: one left
        // here under the same name (the lab changed since, and its
        // snapshots were dropped) is stale.
        if hv.has_snapshot(&domain, snapshot)? {
            hv.delete_snapshot(&domain, snapshot)?;
        }
        Ok(hv.snapshot(&domain, snapshot)?)
    }

    fn revert(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<SnapshotKind> {
        self.defined_state(node)?;
        Ok(self.hypervisor()?.revert(&Self::domain(node), snapshot)?)
    }

    fn delete_snapshot(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<()> {
        Ok(self
            .hypervisor()?
            .delete_snapshot(&Self::domain(node), snapshot)?)
    }

    fn exec(
        &self,
        node: &DesiredNode,
        command: &str,
        timeout: Duration,
        out: &mut CommandOutput,
    ) -> NodeResult<i32> {
        if !is_micro(node) {
            return Err(NodeError::Unsupported(format!(
                "exec runs over the micro-VM's serial console; this node boots image {:?} (use ssh)",
                node.image
            )));
        }
        let socket = dir_of(&self.layout, node).console();
        Ok(run_on_console(socket, command, timeout, out)?)
    }

    fn remove(&self, node: &DesiredNode) -> NodeResult<Leftovers> {
        self.hypervisor()?.remove(&Self::domain(node))?;
        Ok(Leftovers::default())
    }
}

/// Waiting for the guest and running the command share `timeout`, so the
/// coordinator (which waits a little longer) always gets an answer.
fn run_on_console(
    socket: PathBuf,
    command: &str,
    timeout: Duration,
    out: &mut CommandOutput,
) -> anyhow::Result<i32> {
    let mut console = SerialConsole::connect(&socket, CONNECT_TIMEOUT)?;
    let started = Instant::now();
    console.wait_ready(timeout)?;
    let left = timeout.saturating_sub(started.elapsed());
    if left.is_zero() {
        anyhow::bail!("the guest took all of the {timeout:?} timeout to answer; {command:?} did not run");
    }
    console.run(command, left, out)
}
