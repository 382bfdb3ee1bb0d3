//! What the lxc and qemu drivers do the same way: each node is a libvirt
//! domain reached through one connection, and the power operations with
//! nothing kind-specific in them pass straight through to libvirt.

use std::sync::Arc;

use dclab_proto::v1::DesiredNode;

use super::NodeResult;
use crate::libvirt::{Hypervisor, VmState};
use crate::nodes::connection::Libvirt;
use crate::nodes::layout::domain_name;

pub(super) struct Domains {
    libvirt: Libvirt,
    /// What a domain is called in errors: "domain" or "container".
    noun: &'static str,
}

impl Domains {
    pub(super) fn new(uri: &str, noun: &'static str) -> Domains {
        Domains {
            libvirt: Libvirt::new(uri),
            noun,
        }
    }

    pub(super) fn hypervisor(&self) -> NodeResult<Arc<Hypervisor>> {
        Ok(self.libvirt.get()?)
    }

    /// The domain's state, or NotFound while it is not defined.
    pub(super) fn defined_state(&self, node: &DesiredNode) -> NodeResult<VmState> {
        super::defined_state(&*self.hypervisor()?, &name(node), self.noun)
    }

    /// A micro node (a VM without ACPI, a container with the tiny init)
    /// does not act on a reboot request: its reboot is a reset.
    pub(super) fn reboot(&self, node: &DesiredNode, micro: bool) -> NodeResult<()> {
        self.defined_state(node)?;
        let hv = self.hypervisor()?;
        if micro {
            Ok(hv.reset(&name(node))?)
        } else {
            Ok(hv.reboot(&name(node))?)
        }
    }

    pub(super) fn reset(&self, node: &DesiredNode) -> NodeResult<()> {
        self.defined_state(node)?;
        Ok(self.hypervisor()?.reset(&name(node))?)
    }

    pub(super) fn pause(&self, node: &DesiredNode) -> NodeResult<()> {
        self.defined_state(node)?;
        Ok(self.hypervisor()?.pause(&name(node))?)
    }

    pub(super) fn resume(&self, node: &DesiredNode) -> NodeResult<()> {
        self.defined_state(node)?;
        Ok(self.hypervisor()?.resume(&name(node))?)
    }
}

fn name(node: &DesiredNode) -> String {
    domain_name(&node.lab, &node.name)
}
