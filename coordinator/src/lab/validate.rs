//! Checks a lab spec from the wire (with the validator ctl uses too, so
//! both give the same verdict) and turns it into the stored model.

use dclab_proto::error::invalid;
use dclab_proto::v1;
use dclab_proto::ApiError;
use dclab_spec::validate::{self, MAX_LAB_NAME};

use crate::model::lab::{IfaceSpec, LabNet, NodeKind, NodeSpec};
use crate::model::NetKind;

pub struct Checked {
    pub networks: Vec<LabNet>,
    pub nodes: Vec<NodeSpec>,
    pub ssh_keys: Vec<String>,
}

pub fn lab_name(name: &str) -> Result<(), ApiError> {
    validate::check_short_name("lab", name, MAX_LAB_NAME).map_err(invalid)
}

pub fn check(spec: &v1::LabSpec) -> Result<Checked, ApiError> {
    let checked = validate::lab(spec).map_err(|e| match e.at {
        validate::Location::LabName => invalid(e.message),
        _ => invalid(format!("lab {}: {}", spec.name, e.message)),
    })?;
    let networks = checked
        .networks
        .iter()
        .map(|n| LabNet {
            name: n.name.clone(),
            cidr: n.cidr.to_string(),
            kind: NetKind::from_wire(n.kind),
        })
        .collect();
    let nodes = spec
        .nodes
        .iter()
        .zip(&checked.nodes)
        .map(|(n, c)| NodeSpec {
            name: n.name.clone(),
            kind: match c.kind {
                v1::NodeKind::Container => NodeKind::Container,
                _ => NodeKind::Vm,
            },
            role: n.role.clone(),
            vcpus: n.vcpus,
            memory_mib: n.memory_mib,
            image: n.image.clone(),
            disks_mib: n.disks_mib.clone(),
            pin: (!n.host.is_empty()).then(|| n.host.clone()),
            interfaces: n
                .interfaces
                .iter()
                .zip(&c.ips)
                .map(|(i, ip)| IfaceSpec {
                    network: i.network.clone(),
                    ip: ip.map(|ip| ip.to_string()),
                })
                .collect(),
        })
        .collect();
    Ok(Checked {
        networks,
        nodes,
        ssh_keys: spec.ssh_keys.iter().map(|k| k.trim().to_string()).collect(),
    })
}
