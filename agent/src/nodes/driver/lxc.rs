//! Container nodes: libvirt LXC domains on an overlay of a shared rootfs
//! image (`micro`: busybox, or a Debian rootfs built by `ctl image
//! build`). Interfaces are veth pairs whose host ends the agent plugs into
//! OvS exactly like taps. Containers have no memory to snapshot: a
//! snapshot is a copy of the writable layer taken while frozen, and a
//! restore brings the files back and starts the node afresh.

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::v1::DesiredNode;

use super::domains::Domains;
use super::{
    dir_of, lxc_cgroups, lxc_exec, lxc_reap, DriverConfig, Leftovers, NodeDriver, NodeError, NodeResult,
    SHUTDOWN_GRACE,
};
use crate::aptcache::{self, NodePorts};
use crate::exec_output::CommandOutput;
use crate::libvirt::lxc_xml::ContainerNic;
use crate::libvirt::{ContainerSpec, Hypervisor, SnapshotKind, VirtError, VmState};
use crate::nodes::layout::{domain_name, Layout};
use crate::nodes::rootfs::{Overlay, RootfsImages};
use crate::nodes::spec::{self, AppliedSpec, MICRO_IMAGE};

/// What libvirt says when it runs in the host's hybrid cgroup layout.
const HYBRID_CGROUP_ERROR: &str = "/sys/fs/cgroup/unified";
/// Roots the node's own init inside its cgroups (see the script).
const CGROUP_INIT: &str = include_str!("../../image/container_cgroup_init.sh");
const CGROUP_INIT_PATH: &str = "/.dclab/init";

pub struct LxcDriver {
    domains: Domains,
    images: RootfsImages,
    layout: Layout,
    apt: Option<Arc<NodePorts>>,
}

impl LxcDriver {
    pub fn new(config: &DriverConfig) -> LxcDriver {
        LxcDriver {
            domains: Domains::new(&config.lxc_uri, "container"),
            images: RootfsImages::new(
                config.image_dir.clone(),
                config.cache_dir.clone(),
                config.debian_mirror.clone(),
            ),
            layout: config.layout.clone(),
            apt: config.apt.clone(),
        }
    }

    fn hypervisor(&self) -> NodeResult<std::sync::Arc<Hypervisor>> {
        self.domains.hypervisor()
    }

    fn domain(node: &DesiredNode) -> String {
        domain_name(&node.lab, &node.name)
    }

    fn defined_state(&self, node: &DesiredNode) -> NodeResult<VmState> {
        self.domains.defined_state(node)
    }

    /// The node's layers; the image is resolved (built for micro) first.
    fn overlay(&self, node: &DesiredNode) -> NodeResult<Overlay> {
        let lower = self.images.resolve(&node.image)?;
        Ok(Overlay::of(&dir_of(&self.layout, node), lower))
    }

    /// Starts a defined container, its overlay mounted first.
    fn start_mounted(&self, node: &DesiredNode) -> NodeResult<()> {
        self.before_start(node)?;
        hinted(self.hypervisor()?.start(&Self::domain(node)))?;
        self.started(node);
        Ok(())
    }

    /// What a container that is off needs before it starts: nothing left
    /// of its earlier runs (two inits on one writable layer fight over its
    /// files), its overlay mounted, its old cgroups gone.
    fn before_start(&self, node: &DesiredNode) -> NodeResult<()> {
        self.reap_node(node)?;
        self.overlay(node)?.ensure_mounted()?;
        lxc_cgroups::prune(&Self::domain(node), None);
        Ok(())
    }

    /// Kills what earlier runs of the node left on the host (see
    /// `lxc_reap`); the run libvirt has under way, if any, is kept.
    fn reap_node(&self, node: &DesiredNode) -> NodeResult<Leftovers> {
        lxc_reap::node(&*self.hypervisor()?, &Self::domain(node))
    }

    /// A plug pull: init killed, libvirt's destroy, then whatever of the
    /// node is still alive.
    fn pull_plug(&self, node: &DesiredNode) -> NodeResult<Leftovers> {
        let state = self.defined_state(node)?;
        self.close_apt_port(node);
        let (hv, domain) = (self.hypervisor()?, Self::domain(node));
        // libvirt's destroy sends init SIGTERM and waits for it to wind
        // down (busybox init takes about 2 s); a plug pull kills at once.
        // A frozen init would not die before it is thawed: libvirt's way then.
        if state == VmState::Running {
            if let Some(controller) = hv.id(&domain)? {
                let init = lxc_exec::init_pid(controller)?;
                // SAFETY: SIGKILL to the init of a container this agent runs.
                unsafe { libc::kill(init as i32, libc::SIGKILL) };
            }
        }
        hv.destroy(&domain)?;
        let left = self.reap_node(node)?;
        lxc_cgroups::prune(&domain, None);
        Ok(left)
    }

    /// What a running container needs from the host: its links without
    /// checksum offload, and the apt cache's port.
    fn started(&self, node: &DesiredNode) {
        self.clear_offloads(node);
        self.open_apt_port(node);
    }

    /// Offloads are per veth, and a container that starts again has new
    /// ones: checked on every pass (a thread and a few ioctls). No memo by
    /// namespace: a freed namespace's inode number can be handed to the
    /// next one, and a skipped node would lose TCP. Failing logs and is
    /// retried.
    fn clear_offloads(&self, node: &DesiredNode) {
        let domain = Self::domain(node);
        let cleared = (|| -> anyhow::Result<Vec<String>> {
            let Some(controller) = self.hypervisor()?.id(&domain)? else {
                return Ok(Vec::new());
            };
            lxc_exec::clear_tx_checksum_offload(lxc_exec::init_pid(controller)?)
        })();
        match cleared {
            Ok(links) if !links.is_empty() => {
                tracing::debug!(domain, ?links, "transmit checksum offload turned off")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(domain, "checksum offload not turned off yet: {e:#}"),
        }
    }

    /// The apt cache's port inside a running Debian node. Failing to open
    /// it does not fail the node (its sweep tries again); it is logged.
    fn open_apt_port(&self, node: &DesiredNode) {
        let Some(apt) = self.apt.as_ref().filter(|_| !Self::is_micro(node)) else {
            return;
        };
        let domain = Self::domain(node);
        let opened = (|| -> anyhow::Result<()> {
            let Some(controller) = self.hypervisor()?.id(&domain)? else {
                return Ok(());
            };
            apt.ensure(&domain, lxc_exec::init_pid(controller)?)
        })();
        if let Err(e) = opened {
            tracing::warn!(domain, "apt cache port not open yet: {e:#}");
        }
    }

    fn close_apt_port(&self, node: &DesiredNode) {
        if let Some(apt) = &self.apt {
            apt.forget(&Self::domain(node));
        }
    }

    /// The node's apt sources: the host's cache, the only way out.
    fn write_apt_files(&self, overlay: &Overlay) -> NodeResult<()> {
        let Some(apt) = &self.apt else { return Ok(()) };
        let suite = crate::image::debian::SUITE;
        overlay.own_file(
            "/etc/apt/sources.list",
            &aptcache::node_sources(apt.port(), suite),
            0o644,
        )?;
        overlay.own_file(
            "/etc/apt/apt.conf.d/90dclab-cache",
            aptcache::NODE_APT_CONF,
            0o644,
        )?;
        Ok(())
    }

    fn spec(node: &DesiredNode, overlay: &Overlay) -> ContainerSpec {
        ContainerSpec {
            name: Self::domain(node),
            vcpus: node.vcpus,
            memory_mib: node.memory_mib,
            rootfs: overlay.root.clone(),
            // busybox init creates no cgroups, and the micro rootfs has
            // no mkdir before its init installs busybox's applets.
            init: if Self::is_micro(node) {
                "/sbin/init".into()
            } else {
                CGROUP_INIT_PATH.into()
            },
            env: vec![
                ("DCLAB_HOSTNAME".into(), node.name.clone()),
                // systemd and others look for this to know they are in one.
                ("container".into(), "lxc-libvirt".into()),
            ],
            nics: node
                .nics
                .iter()
                .enumerate()
                .map(|(i, n)| ContainerNic {
                    host_dev: n.tap.clone(),
                    guest_dev: format!("eth{i}"),
                    mac: n.mac.clone(),
                    ip: (!n.ip.is_empty()).then(|| (n.ip.clone(), n.prefix as u8)),
                })
                .collect(),
        }
    }

    fn is_micro(node: &DesiredNode) -> bool {
        node.image == MICRO_IMAGE
    }
}

/// Names the fix when libvirtd sees the hybrid cgroup layout.
fn hinted<T>(result: Result<T, VirtError>) -> NodeResult<T> {
    result.map_err(|e| {
        if e.reason().contains(HYBRID_CGROUP_ERROR) {
            NodeError::Failed(anyhow::anyhow!(
                "{e}; libvirtd must not see the cgroup2 mount of this host's hybrid cgroup layout: \
                 restart it with scripts/libvirtd.sh (docs/containers.md)"
            ))
        } else {
            NodeError::Libvirt(e)
        }
    })
}

impl NodeDriver for LxcDriver {
    fn provision(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.hypervisor()?;
        self.images.resolve(&node.image)?;
        Ok(())
    }

    fn converge(&self, node: &DesiredNode, held: bool) -> NodeResult<(Option<VmState>, VmState)> {
        let overlay = self.overlay(node)?;
        let hv = self.hypervisor()?;
        let dir = dir_of(&self.layout, node);
        dir.create()?;
        if !dir.spec().exists() {
            spec::write(&dir.spec(), &AppliedSpec::from(node))?;
        }
        overlay.create_dirs()?;
        if !Self::is_micro(node) {
            overlay.seed_file("/etc/hostname", &format!("{}\n", node.name))?;
            overlay.own_file(CGROUP_INIT_PATH, CGROUP_INIT, 0o755)?;
            // The lab's keys, for `ctl lab ssh` and Ansible.
            if !node.ssh_keys.is_empty() {
                let keys = node.ssh_keys.join("\n") + "\n";
                overlay.own_file("/root/.ssh/authorized_keys", &keys, 0o600)?;
            }
            self.write_apt_files(&overlay)?;
        }
        let spec = Self::spec(node, &overlay);
        let before = hv.state(&spec.name)?;
        if held {
            hv.ensure_defined(&spec)?;
        } else {
            match before {
                Some(VmState::Paused) => hv.resume(&spec.name)?,
                Some(VmState::Other | VmState::Running) => {}
                _ => {
                    self.before_start(node)?;
                    hinted(hv.ensure_running(&spec))?;
                }
            }
        }
        let after = super::state_after_define(&hv, &spec.name, "container")?;
        if after == VmState::Running {
            self.started(node);
        }
        Ok((before, after))
    }

    fn state(&self, node: &DesiredNode) -> NodeResult<Option<VmState>> {
        Ok(self.hypervisor()?.state(&Self::domain(node))?)
    }

    fn start(&self, node: &DesiredNode) -> NodeResult<()> {
        self.defined_state(node)?;
        self.start_mounted(node)
    }

    fn power_off(&self, node: &DesiredNode) -> NodeResult<()> {
        self.pull_plug(node).map(drop)
    }

    fn shutdown(&self, node: &DesiredNode) -> NodeResult<()> {
        // busybox init has no orderly shutdown to wait for.
        if Self::is_micro(node) {
            return self.power_off(node);
        }
        let state = self.defined_state(node)?;
        self.close_apt_port(node);
        let (hv, domain) = (self.hypervisor()?, Self::domain(node));
        // libvirt asks through /dev/initctl or with SIGTERM, which systemd
        // takes as "re-execute". SIGRTMIN+4 is systemd's poweroff.
        if state == VmState::Running {
            if let Some(controller) = hv.id(&domain)? {
                let init = lxc_exec::init_pid(controller)?;
                // SAFETY: a signal to the init of a container this agent runs.
                unsafe { libc::kill(init as i32, libc::SIGRTMIN() + 4) };
                let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
                while std::time::Instant::now() < deadline && hv.state(&domain)? == Some(VmState::Running) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if hv.state(&domain)? != Some(VmState::Off) {
            return self.power_off(node);
        }
        // Off for libvirt is not yet gone from the host.
        self.reap_node(node)?;
        lxc_cgroups::prune(&domain, None);
        Ok(())
    }

    fn reboot(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.reboot(node, Self::is_micro(node))
    }

    fn reset(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.reset(node)
    }

    fn pause(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.pause(node)
    }

    fn answers_while_paused(&self) -> bool {
        true
    }

    fn resume(&self, node: &DesiredNode) -> NodeResult<()> {
        self.domains.resume(node)
    }

    fn snapshot(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<()> {
        let state = self.defined_state(node)?;
        let (hv, domain) = (self.hypervisor()?, Self::domain(node));
        // Frozen while copied, so the copy is of one moment.
        let thaw = state == VmState::Running;
        if thaw {
            hv.pause(&domain)?;
        }
        let copied = self.overlay(node)?.snapshot(snapshot);
        if thaw {
            hv.resume(&domain)?;
        }
        Ok(copied?)
    }

    fn revert(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<SnapshotKind> {
        self.defined_state(node)?;
        let overlay = self.overlay(node)?;
        if !overlay.has_snapshot(snapshot) {
            return Err(NodeError::NotFound(format!(
                "container {} has no snapshot named {snapshot}",
                Self::domain(node)
            )));
        }
        let started = std::time::Instant::now();
        self.hypervisor()?.destroy(&Self::domain(node))?;
        let destroyed = started.elapsed();
        // Nothing of the run may keep writing into the layer put back.
        let left = self.reap_node(node)?;
        let reaped = started.elapsed();
        overlay.unmount()?;
        overlay.restore(snapshot)?;
        tracing::debug!(
            domain = Self::domain(node),
            leftovers = left.0,
            destroy_ms = destroyed.as_millis() as u64,
            reap_ms = (reaped - destroyed).as_millis() as u64,
            restore_ms = (started.elapsed() - reaped).as_millis() as u64,
            "container reverted"
        );
        // No memory image: the node comes back off and starts afresh.
        Ok(SnapshotKind::Offline)
    }

    fn delete_snapshot(&self, node: &DesiredNode, snapshot: &str) -> NodeResult<()> {
        let dir = dir_of(&self.layout, node);
        // The image may be gone; the snapshot dir does not depend on it.
        Ok(Overlay::of(&dir, Default::default()).delete_snapshot(snapshot)?)
    }

    fn exec(
        &self,
        node: &DesiredNode,
        command: &str,
        timeout: Duration,
        out: &mut CommandOutput,
    ) -> NodeResult<i32> {
        let domain = Self::domain(node);
        let state = self.defined_state(node)?;
        if state != VmState::Running {
            return Err(NodeError::Invalid(format!(
                "container {domain} is {state:?}, not running: nothing to run {command:?} in"
            )));
        }
        let controller = self.hypervisor()?.id(&domain)?.ok_or_else(|| {
            NodeError::NotFound(format!("container {domain} stopped before {command:?} could run"))
        })?;
        let init = lxc_exec::init_pid(controller)?;
        Ok(lxc_exec::run(init, command, timeout, out)?)
    }

    fn connect(&self, node: &DesiredNode, port: u16) -> NodeResult<std::net::TcpStream> {
        let domain = Self::domain(node);
        let controller = self.hypervisor()?.id(&domain)?.ok_or_else(|| {
            NodeError::Invalid(format!(
                "container {domain} is not running: no port {port} to reach"
            ))
        })?;
        let init = lxc_exec::init_pid(controller)?;
        // Its own address on its first network, else its loopback.
        let ip = node
            .nics
            .iter()
            .find_map(|n| n.ip.parse::<std::net::Ipv4Addr>().ok())
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        Ok(lxc_exec::connect_inside(init, (ip, port).into())?)
    }

    fn remove(&self, node: &DesiredNode) -> NodeResult<Leftovers> {
        self.close_apt_port(node);
        // libvirt's destroy waits for init to wind down: pull the plug first.
        let (hv, domain) = (self.hypervisor()?, Self::domain(node));
        let left = match hv.state(&domain)? {
            Some(VmState::Running) => self.pull_plug(node)?,
            None => self.reap_node(node)?,
            // Paused: libvirt's way (it thaws); off: what its stop left.
            Some(_) => {
                hv.destroy(&domain)?;
                self.reap_node(node)?
            }
        };
        // Reaped while still defined: a domain that is gone marks its
        // leftovers as anyone's orphans (`reap_orphans`).
        hv.remove(&domain)?;
        lxc_cgroups::prune(&domain, None);
        let dir = dir_of(&self.layout, node);
        Overlay::of(&dir, Default::default()).unmount()?;
        Ok(left)
    }

    fn reap(&self, node: &DesiredNode) -> NodeResult<Leftovers> {
        self.reap_node(node)
    }

    fn reap_orphans(&self) -> NodeResult<Vec<(String, Leftovers)>> {
        lxc_reap::orphans(|| self.hypervisor())
    }
}
