//! Checks a lab spec from the wire and turns it into the stored model.
//! Every refusal names the lab, the node or network, and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use dclab_proto::error::invalid;
use dclab_proto::v1;
use dclab_proto::ApiError;

use super::model::{IfaceSpec, LabNet, NodeSpec};
use crate::addr::Cidr;
use crate::mutate::check_name;

/// Port names are `<lab>.<node>.<i>` and must fit 64 bytes.
pub const MAX_LAB_NAME: usize = 24;
pub const MAX_NODE_NAME: usize = 32;
const MAX_NICS: usize = 8;
const MAX_DISKS: usize = 8;
const MAX_DISK_MIB: u64 = 4 << 20;
const MIN_MEMORY_MIB: u64 = 64;
const MAX_SSH_KEY: usize = 16 << 10;

pub struct Checked {
    pub networks: Vec<LabNet>,
    pub nodes: Vec<NodeSpec>,
    pub ssh_keys: Vec<String>,
}

/// Lab and node names join with '.' into port and domain names, so they
/// cannot contain one.
fn short_name(what: &str, name: &str, max: usize) -> Result<(), ApiError> {
    check_name(what, name)?;
    if name.contains('.') {
        return Err(invalid(format!(
            "{what} name {name} contains '.'; use letters, digits, '-' and '_'"
        )));
    }
    if name.len() > max {
        return Err(invalid(format!(
            "{what} name {name} is {} bytes long; the limit is {max}",
            name.len()
        )));
    }
    Ok(())
}

pub fn lab_name(name: &str) -> Result<(), ApiError> {
    short_name("lab", name, MAX_LAB_NAME)
}

pub fn check(spec: &v1::LabSpec) -> Result<Checked, ApiError> {
    lab_name(&spec.name)?;
    let lab = &spec.name;
    let mut cidrs: BTreeMap<&str, Cidr> = BTreeMap::new();
    for net in &spec.networks {
        check_name("network", &net.name).map_err(|e| e.context(&format!("lab {lab}")))?;
        let cidr: Cidr = net
            .cidr
            .parse()
            .map_err(|e| invalid(format!("lab {lab}, network {}: cidr: {e}", net.name)))?;
        if cidrs.insert(&net.name, cidr).is_some() {
            return Err(invalid(format!("lab {lab}: network {} appears twice", net.name)));
        }
    }
    let mut names = BTreeSet::new();
    let mut fixed: BTreeSet<(&str, Ipv4Addr)> = BTreeSet::new();
    let mut nodes = Vec::with_capacity(spec.nodes.len());
    for n in &spec.nodes {
        let at = |field: &str, msg: String| invalid(format!("lab {lab}, node {}: {field}: {msg}", n.name));
        short_name("node", &n.name, MAX_NODE_NAME).map_err(|e| e.context(&format!("lab {lab}")))?;
        if !names.insert(n.name.as_str()) {
            return Err(invalid(format!("lab {lab}: node {} appears twice", n.name)));
        }
        if n.vcpus == 0 {
            return Err(at("vcpus", "must be at least 1".into()));
        }
        if n.memory_mib < MIN_MEMORY_MIB {
            return Err(at(
                "memory",
                format!(
                    "{} MiB is below the minimum of {MIN_MEMORY_MIB} MiB",
                    n.memory_mib
                ),
            ));
        }
        check_name("image", &n.image).map_err(|e| at("image", e.to_string()))?;
        if !n.role.is_empty() {
            check_name("role", &n.role).map_err(|e| at("role", e.to_string()))?;
        }
        if n.disks_mib.len() > MAX_DISKS {
            return Err(at(
                "disks",
                format!("{} disks; the limit is {MAX_DISKS}", n.disks_mib.len()),
            ));
        }
        if let Some(bad) = n.disks_mib.iter().find(|d| **d == 0 || **d > MAX_DISK_MIB) {
            return Err(at("disks", format!("{bad} MiB; sizes go from 1 MiB to 4 TiB")));
        }
        if !n.host.is_empty() {
            check_name("host", &n.host).map_err(|e| at("host", e.to_string()))?;
        }
        if n.interfaces.len() > MAX_NICS {
            return Err(at(
                "interfaces",
                format!("{} interfaces; the limit is {MAX_NICS}", n.interfaces.len()),
            ));
        }
        let mut interfaces = Vec::new();
        let mut on = BTreeSet::new();
        for i in &n.interfaces {
            let Some(cidr) = cidrs.get(i.network.as_str()) else {
                return Err(at(
                    "interfaces",
                    format!("network {:?} is not a network of the lab", i.network),
                ));
            };
            if !on.insert(i.network.as_str()) {
                return Err(at(
                    "interfaces",
                    format!("two interfaces on network {}", i.network),
                ));
            }
            let ip = if i.ip.is_empty() {
                None
            } else {
                let ip: Ipv4Addr =
                    i.ip.parse()
                        .map_err(|_| at("interfaces", format!("malformed IPv4 address {:?}", i.ip)))?;
                if !cidr.is_host_address(ip) {
                    return Err(at(
                        "interfaces",
                        format!("{ip} is not a host address of {} ({cidr})", i.network),
                    ));
                }
                if !fixed.insert((i.network.as_str(), ip)) {
                    return Err(at(
                        "interfaces",
                        format!("{ip} is used twice in network {}", i.network),
                    ));
                }
                Some(ip.to_string())
            };
            interfaces.push(IfaceSpec {
                network: i.network.clone(),
                ip,
            });
        }
        nodes.push(NodeSpec {
            name: n.name.clone(),
            role: n.role.clone(),
            vcpus: n.vcpus,
            memory_mib: n.memory_mib,
            image: n.image.clone(),
            disks_mib: n.disks_mib.clone(),
            pin: (!n.host.is_empty()).then(|| n.host.clone()),
            interfaces,
        });
    }
    for key in &spec.ssh_keys {
        if key.len() > MAX_SSH_KEY || key.contains('\n') || key.trim().is_empty() {
            return Err(invalid(format!(
                "lab {lab}: ssh_keys: each key is one non-empty line of at most {MAX_SSH_KEY} bytes"
            )));
        }
    }
    let networks = spec
        .networks
        .iter()
        .map(|n| LabNet {
            name: n.name.clone(),
            cidr: cidrs[n.name.as_str()].to_string(),
        })
        .collect();
    Ok(Checked {
        networks,
        nodes,
        ssh_keys: spec.ssh_keys.clone(),
    })
}
