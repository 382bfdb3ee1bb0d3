//! The host's libvirt, for lab nodes. The libvirt C API blocks: async
//! callers go through `spawn_blocking`.

pub mod disk;
pub mod lxc_xml;
pub mod xml;

use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::domain_snapshot::DomainSnapshot;
use virt::enumutil::Enum;
use virt::error::ErrorNumber;

pub use lxc_xml::{container_xml, ContainerSpec};
pub use xml::{domain_xml, Boot, Nic, VmSpec};

/// What a domain is defined from: a VM's or a container's spec.
pub trait DomainDef {
    fn name(&self) -> &str;
    fn xml(&self) -> String;
}

impl DomainDef for VmSpec {
    fn name(&self) -> &str {
        &self.name
    }
    fn xml(&self) -> String {
        domain_xml(self)
    }
}

impl DomainDef for ContainerSpec {
    fn name(&self) -> &str {
        &self.name
    }
    fn xml(&self) -> String {
        container_xml(self)
    }
}

/// What the agent tried and libvirt's own words on why it failed.
#[derive(Debug, thiserror::Error)]
#[error("libvirt: {what}: {why}")]
pub struct VirtError {
    what: String,
    why: String,
}

impl VirtError {
    /// libvirt's message alone, without what was being done.
    pub fn reason(&self) -> &str {
        &self.why
    }
}

fn ctx(what: impl Into<String>) -> impl FnOnce(virt::error::Error) -> VirtError {
    let what = what.into();
    move |source| VirtError {
        what,
        why: source.message().to_string(),
    }
}

fn is_code(err: &virt::error::Error, code: ErrorNumber) -> bool {
    err.code() == Enum::Known(code)
}

/// What a node's domain is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    Running,
    Paused,
    Off,
    /// Shutting down, crashed (kept for inspection) or unknown: left alone.
    Other,
}

/// The state a snapshot was taken in, from its XML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Taken while running or paused: holds memory.
    Live,
    /// Taken while shut off: disks only.
    Offline,
}

/// How long `shutdown` polls between asking nicely and pulling the plug.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

pub struct Hypervisor {
    conn: Connect,
}

impl Hypervisor {
    /// `qemu:///system` on hosts, `test:///default` in unit tests.
    pub fn open(uri: &str) -> Result<Hypervisor, VirtError> {
        // libvirt prints every error to stderr by default, including the
        // expected ones (looking up a domain that is not there).
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(uri)).map_err(ctx(format!("cannot connect to {uri}")))?;
        Ok(Hypervisor { conn })
    }

    /// False once libvirtd has gone away (restarted, stopped): open again.
    pub fn is_alive(&self) -> bool {
        self.conn.is_alive().unwrap_or(false)
    }

    /// None only when no domain of that name is defined; a broken
    /// connection is an error, not an absent domain.
    fn domain(&self, name: &str) -> Result<Option<Domain>, VirtError> {
        match self.conn.lookup_domain_by_name(name) {
            Ok(dom) => Ok(Some(dom)),
            Err(e) if is_code(&e, ErrorNumber::NoDomain) => Ok(None),
            Err(e) => Err(ctx(format!("looking up {name}"))(e)),
        }
    }

    fn existing(&self, name: &str) -> Result<Domain, VirtError> {
        self.conn
            .lookup_domain_by_name(name)
            .map_err(ctx(format!("no domain {name}")))
    }

    /// None when no domain of that name is defined.
    pub fn state(&self, name: &str) -> Result<Option<VmState>, VirtError> {
        let Some(dom) = self.domain(name)? else {
            return Ok(None);
        };
        let (state, _) = dom.state().map_err(ctx(format!("state of {name}")))?;
        Ok(Some(match state {
            Enum::Known(DomainState::Running | DomainState::Blocked) => VmState::Running,
            Enum::Known(DomainState::Paused | DomainState::PMSuspended) => VmState::Paused,
            Enum::Known(DomainState::Shutoff) => VmState::Off,
            _ => VmState::Other,
        }))
    }

    /// Defines the domain unless one of that name exists (an existing
    /// definition is kept as it is).
    pub fn ensure_defined(&self, spec: &impl DomainDef) -> Result<(), VirtError> {
        self.define(spec).map(drop)
    }

    fn define(&self, spec: &impl DomainDef) -> Result<Domain, VirtError> {
        match self.domain(spec.name())? {
            Some(dom) => Ok(dom),
            None => self
                .conn
                .define_domain_xml(&spec.xml())
                .map_err(ctx(format!("defining {}", spec.name()))),
        }
    }

    /// Defines the domain unless it exists and starts it unless it runs:
    /// running this again changes nothing. A paused domain stays paused.
    pub fn ensure_running(&self, spec: &impl DomainDef) -> Result<(), VirtError> {
        let dom = self.define(spec)?;
        if !dom
            .is_active()
            .map_err(ctx(format!("state of {}", spec.name())))?
        {
            dom.create().map_err(ctx(format!("starting {}", spec.name())))?;
        }
        Ok(())
    }

    /// The pid libvirt gives an active domain (for containers, that of
    /// the libvirt_lxc controller whose child is the container's init).
    pub fn id(&self, name: &str) -> Result<Option<u32>, VirtError> {
        let dom = self.existing(name)?;
        if !dom.is_active().map_err(ctx(format!("state of {name}")))? {
            return Ok(None);
        }
        Ok(dom.id())
    }

    fn op(
        &self,
        name: &str,
        what: &str,
        f: impl FnOnce(&Domain) -> Result<(), virt::error::Error>,
    ) -> Result<(), VirtError> {
        let dom = self.existing(name)?;
        f(&dom).map_err(ctx(format!("{what} {name}")))
    }

    /// Starts a defined domain that is off; an active one is left alone.
    pub fn start(&self, name: &str) -> Result<(), VirtError> {
        self.op(
            name,
            "starting",
            |d| if d.is_active()? { Ok(()) } else { d.create() },
        )
    }

    /// Asks the guest to reboot (ACPI).
    pub fn reboot(&self, name: &str) -> Result<(), VirtError> {
        self.op(name, "rebooting", |d| d.reboot(0).map(drop))
    }

    /// Resets the domain at once, like its reset button.
    pub fn reset(&self, name: &str) -> Result<(), VirtError> {
        self.op(name, "resetting", |d| d.reset().map(drop))
    }

    pub fn pause(&self, name: &str) -> Result<(), VirtError> {
        self.op(name, "pausing", |d| d.suspend().map(drop))
    }

    pub fn resume(&self, name: &str) -> Result<(), VirtError> {
        self.op(name, "resuming", |d| d.resume().map(drop))
    }

    /// Pulls the plug on an active domain; one that is off is fine.
    pub fn destroy(&self, name: &str) -> Result<(), VirtError> {
        self.op(name, "stopping", destroy_if_active)
    }

    /// Asks the guest to power off (ACPI) and waits up to `grace`, then
    /// pulls the plug. A paused guest cannot react, so it is stopped at
    /// once. Returns once the domain is off.
    pub fn shutdown(&self, name: &str, grace: Duration) -> Result<(), VirtError> {
        let dom = self.existing(name)?;
        let state = |d: &Domain| d.state().map_err(ctx(format!("state of {name}")));
        if !dom.is_active().map_err(ctx(format!("state of {name}")))? {
            return Ok(());
        }
        if state(&dom)?.0 != Enum::Known(DomainState::Paused) {
            // A guest without ACPI handling ignores this; the destroy below follows.
            let _ = dom.shutdown();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && dom.is_active().unwrap_or(true) {
                std::thread::sleep(SHUTDOWN_POLL);
            }
        }
        destroy_if_active(&dom).map_err(ctx(format!("stopping {name}")))
    }

    /// A snapshot of the domain as it is now, named `snapshot`: memory and
    /// disks when it runs or is paused (internal qcow2 snapshots), disks
    /// only when it is off.
    pub fn snapshot(&self, name: &str, snapshot: &str) -> Result<(), VirtError> {
        let xml = format!(
            "<domainsnapshot><name>{}</name></domainsnapshot>",
            xml::escape(snapshot)
        );
        self.op(name, "snapshotting", |d| d.create_snapshot_xml(&xml, 0).map(drop))
    }

    pub fn has_snapshot(&self, name: &str, snapshot: &str) -> Result<bool, VirtError> {
        let dom = self.existing(name)?;
        let found = find_snapshot(&dom, snapshot);
        found
            .map(|s| s.is_some())
            .map_err(ctx(format!("looking up snapshot {snapshot} of {name}")))
    }

    /// Back to `snapshot`, left in the state it was taken in, but never
    /// running: a live snapshot comes back paused (so every node of a lab
    /// can be reverted before any runs), an offline one comes back off.
    pub fn revert(&self, name: &str, snapshot: &str) -> Result<SnapshotKind, VirtError> {
        let dom = self.existing(name)?;
        let what = format!("reverting {name} to snapshot {snapshot}");
        let snap = find_snapshot(&dom, snapshot)
            .map_err(ctx(what.clone()))?
            .ok_or_else(|| VirtError {
                what: what.clone(),
                why: format!("{name} has no snapshot named {snapshot}"),
            })?;
        let kind = snapshot_kind(&snap.xml_desc(0).map_err(ctx(what.clone()))?);
        let flags = match kind {
            SnapshotKind::Live => virt::sys::VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED,
            SnapshotKind::Offline => 0,
        };
        snap.revert(flags).map_err(ctx(what))?;
        Ok(kind)
    }

    /// Deletes the snapshot; one (or a domain) that is not there is fine.
    pub fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<(), VirtError> {
        let Some(dom) = self.domain(name)? else {
            return Ok(());
        };
        let what = format!("deleting snapshot {snapshot} of {name}");
        match find_snapshot(&dom, snapshot).map_err(ctx(what.clone()))? {
            Some(snap) => snap.delete(0).map_err(ctx(what)),
            None => Ok(()),
        }
    }

    pub fn snapshots(&self, name: &str) -> Result<Vec<String>, VirtError> {
        let dom = self.existing(name)?;
        let snaps = dom
            .list_all_snapshots(0)
            .map_err(ctx(format!("snapshots of {name}")))?;
        snaps
            .iter()
            .map(|s| s.name().map_err(ctx(format!("snapshot name of {name}"))))
            .collect()
    }

    /// Stops and undefines the domain with its snapshots' metadata; a
    /// domain that is already gone is fine.
    pub fn remove(&self, name: &str) -> Result<(), VirtError> {
        let Some(dom) = self.domain(name)? else {
            return Ok(());
        };
        destroy_if_active(&dom).map_err(ctx(format!("stopping {name}")))?;
        let flags =
            virt::sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
        match dom.undefine_flags(flags) {
            // LXC has neither snapshots nor managed saves, and refuses the flags.
            Err(e) if is_code(&e, ErrorNumber::InvalidArg) => dom.undefine(),
            other => other,
        }
        .map_err(ctx(format!("undefining {name}")))
    }

    /// Names of defined domains starting with `prefix` (a lab's nodes).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, VirtError> {
        let doms = self.conn.list_all_domains(0).map_err(ctx("listing domains"))?;
        let mut names: Vec<String> = doms
            .iter()
            .filter_map(|d| d.name().ok())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        Ok(names)
    }
}

fn find_snapshot(dom: &Domain, snapshot: &str) -> Result<Option<DomainSnapshot>, virt::error::Error> {
    match Domain::lookup_snapshot_by_name(dom, snapshot, 0) {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_code(&e, ErrorNumber::NoDomainSnapshot) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Destroy, tolerating a domain that stopped on its own meanwhile.
fn destroy_if_active(dom: &Domain) -> Result<(), virt::error::Error> {
    if !dom.is_active()? {
        return Ok(());
    }
    match dom.destroy() {
        Err(e) if is_code(&e, ErrorNumber::OperationInvalid) && !dom.is_active()? => Ok(()),
        other => other,
    }
}

/// Live or offline, from `<state>` in a snapshot's XML (the state the
/// domain was in when the snapshot was taken).
pub fn snapshot_kind(xml: &str) -> SnapshotKind {
    let state = xml
        .split_once("<state>")
        .and_then(|(_, rest)| rest.split_once("</state>"))
        .map_or("", |(s, _)| s.trim());
    match state {
        "shutoff" | "disk-snapshot" => SnapshotKind::Offline,
        _ => SnapshotKind::Live,
    }
}

#[cfg(test)]
mod tests;
