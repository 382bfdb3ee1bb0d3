//! The host's libvirt, for lab nodes. The libvirt C API blocks: async
//! callers go through `spawn_blocking`.

pub mod disk;
pub mod xml;

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::enumutil::Enum;

pub use xml::{domain_xml, Boot, Nic, VmSpec};

#[derive(Debug, thiserror::Error)]
#[error("libvirt: {what}: {source}")]
pub struct VirtError {
    what: String,
    source: virt::error::Error,
}

fn ctx(what: impl Into<String>) -> impl FnOnce(virt::error::Error) -> VirtError {
    let what = what.into();
    move |source| VirtError { what, source }
}

/// What a node's domain is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    Running,
    Paused,
    Off,
    Other,
}

pub struct Hypervisor {
    conn: Connect,
}

impl Hypervisor {
    /// `qemu:///system` on hosts, `test:///default` in unit tests.
    pub fn open(uri: &str) -> Result<Hypervisor, VirtError> {
        let conn = Connect::open(Some(uri)).map_err(ctx(format!("cannot connect to {uri}")))?;
        Ok(Hypervisor { conn })
    }

    fn domain(&self, name: &str) -> Option<Domain> {
        self.conn.lookup_domain_by_name(name).ok()
    }

    /// None when no domain of that name is defined.
    pub fn state(&self, name: &str) -> Result<Option<VmState>, VirtError> {
        let Some(dom) = self.domain(name) else {
            return Ok(None);
        };
        let (state, _) = dom.state().map_err(ctx(format!("state of {name}")))?;
        Ok(Some(match state {
            Enum::Known(DomainState::Running) => VmState::Running,
            Enum::Known(DomainState::Paused) => VmState::Paused,
            Enum::Known(DomainState::Shutoff) | Enum::Known(DomainState::Shutdown) => VmState::Off,
            _ => VmState::Other,
        }))
    }

    /// Defines the domain unless it exists and starts it unless it runs:
    /// running this again changes nothing.
    pub fn ensure_running(&self, spec: &VmSpec) -> Result<(), VirtError> {
        let dom = match self.domain(&spec.name) {
            Some(dom) => dom,
            None => self
                .conn
                .define_domain_xml(&domain_xml(spec))
                .map_err(ctx(format!("defining {}", spec.name)))?,
        };
        if !dom.is_active().map_err(ctx(format!("state of {}", spec.name)))? {
            dom.create().map_err(ctx(format!("starting {}", spec.name)))?;
        }
        Ok(())
    }

    fn op(
        &self,
        name: &str,
        what: &str,
        f: impl FnOnce(&Domain) -> Result<(), virt::error::Error>,
    ) -> Result<(), VirtError> {
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(ctx(format!("no domain {name}")))?;
        f(&dom).map_err(ctx(format!("{what} {name}")))
    }

    pub fn pause(&self, name: &str) -> Result<(), VirtError> {
        self.op(name, "pausing", |d| d.suspend().map(drop))
    }

    pub fn resume(&self, name: &str) -> Result<(), VirtError> {
        self.op(name, "resuming", |d| d.resume().map(drop))
    }

    /// A snapshot of the domain as it is now (with memory when it runs or
    /// is paused), named `snapshot`.
    pub fn snapshot(&self, name: &str, snapshot: &str) -> Result<(), VirtError> {
        let xml = format!(
            "<domainsnapshot><name>{}</name></domainsnapshot>",
            xml::escape(snapshot)
        );
        self.op(name, "snapshotting", |d| d.create_snapshot_xml(&xml, 0).map(drop))
    }

    /// Back to `snapshot`, in the state it was taken in.
    pub fn revert(&self, name: &str, snapshot: &str) -> Result<(), VirtError> {
        self.op(name, "reverting", |d| {
            Domain::lookup_snapshot_by_name(d, snapshot, 0)?.revert(0)
        })
    }

    pub fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<(), VirtError> {
        self.op(name, "deleting a snapshot of", |d| {
            Domain::lookup_snapshot_by_name(d, snapshot, 0)?.delete(0)
        })
    }

    pub fn snapshots(&self, name: &str) -> Result<Vec<String>, VirtError> {
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(ctx(format!("no domain {name}")))?;
        let snaps = dom
            .list_all_snapshots(0)
            .map_err(ctx(format!("snapshots of {name}")))?;
        snaps
            .iter()
            .map(|s| s.name().map_err(ctx(format!("snapshot name of {name}"))))
            .collect()
    }

    /// Stops and undefines the domain with its snapshots; a domain that is
    /// already gone is fine.
    pub fn remove(&self, name: &str) -> Result<(), VirtError> {
        let Some(dom) = self.domain(name) else {
            return Ok(());
        };
        if dom.is_active().unwrap_or(false) {
            dom.destroy().map_err(ctx(format!("stopping {name}")))?;
        }
        for snap in dom.list_all_snapshots(0).unwrap_or_default() {
            let _ = snap.delete(virt::sys::VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY);
        }
        dom.undefine().map_err(ctx(format!("undefining {name}")))
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

#[cfg(test)]
mod tests;
