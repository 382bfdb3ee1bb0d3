//! From a parsed lab file to a checked lab: names, sizes, networks and
//! addresses validated, each error naming its line and field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use toml::Spanned;

use super::file::{line_of, parse, parse_mib, LabFile, LabFileError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lab {
    pub name: String,
    pub networks: Vec<LabNetwork>,
    pub nodes: Vec<LabNode>,
    pub ssh_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNetwork {
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNode {
    pub name: String,
    pub role: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub image: String,
    pub disks_mib: Vec<u64>,
    pub host: Option<String>,
    pub interfaces: Vec<LabInterface>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabInterface {
    pub network: String,
    pub ip: Option<Ipv4Addr>,
}

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn err<T>(&self, at: &Spanned<T>, message: String) -> LabFileError {
        LabFileError {
            file: self.file.to_string(),
            line: line_of(self.text, &at.span()),
            message,
        }
    }

    fn name(&self, what: &str, name: &Spanned<String>, max: usize) -> Result<String, LabFileError> {
        let n = name.get_ref();
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if n.is_empty() || n.len() > max || !n.chars().all(plain) {
            let msg = format!("{what} name {n:?}: use 1 to {max} letters, digits, '-' or '_'");
            return Err(self.err(name, msg));
        }
        Ok(n.clone())
    }
}

/// Reads, parses and checks the lab file at `path`.
pub fn load(path: &str) -> Result<Lab, LabFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| LabFileError {
        file: path.to_string(),
        line: 0,
        message: format!("cannot read the lab file: {e}"),
    })?;
    check(path, &text, parse(path, &text)?)
}

pub fn check(file: &str, text: &str, raw: LabFile) -> Result<Lab, LabFileError> {
    let c = Checker { file, text };
    // Port names are <lab>.<node>.<n> within 64 bytes.
    let name = c.name("lab", &raw.lab.name, 24)?;
    let mut networks = BTreeMap::new();
    for n in &raw.networks {
        let net_name = c.name("network", &n.name, 32)?;
        let (addr, prefix) = parse_cidr(n.cidr.get_ref()).ok_or_else(|| {
            let msg = format!(
                "network {net_name}: cidr {:?} is not an IPv4 network like 10.0.0.0/24",
                n.cidr.get_ref()
            );
            c.err(&n.cidr, msg)
        })?;
        if let Some(other) = networks
            .values()
            .find(|o: &&LabNetwork| overlaps(o, addr, prefix))
        {
            let msg = format!(
                "network {net_name}: cidr {} overlaps network {}",
                n.cidr.get_ref(),
                other.name
            );
            return Err(c.err(&n.cidr, msg));
        }
        let net = LabNetwork {
            name: net_name.clone(),
            addr,
            prefix,
        };
        if networks.insert(net_name.clone(), net).is_some() {
            return Err(c.err(&n.name, format!("network {net_name} is defined twice")));
        }
    }
    let mut nodes = Vec::new();
    let mut names = BTreeSet::new();
    let mut used_ips: BTreeSet<(String, Ipv4Addr)> = BTreeSet::new();
    for n in &raw.nodes {
        let node = c.name("node", &n.name, 32)?;
        if !names.insert(node.clone()) {
            return Err(c.err(&n.name, format!("node {node} is defined twice")));
        }
        let vcpus = *n.vcpus.get_ref();
        if !(1..=64).contains(&vcpus) {
            return Err(c.err(
                &n.vcpus,
                format!("node {node}: vcpus {vcpus} must be between 1 and 64"),
            ));
        }
        let size = |s: &Spanned<String>, field: &str, min: u64| {
            parse_mib(s.get_ref()).filter(|m| *m >= min).ok_or_else(|| {
                let msg = format!("node {node}: {field} {:?} is not a size like \"512MiB\" or \"4GiB\" (at least {min} MiB)", s.get_ref());
                c.err(s, msg)
            })
        };
        let memory_mib = size(&n.memory, "memory", 64)?;
        let disks_mib = n
            .disks
            .iter()
            .map(|d| size(d, "disk", 1))
            .collect::<Result<Vec<_>, _>>()?;
        let image = n
            .image
            .as_ref()
            .or(raw.lab.image.as_ref())
            .map(|i| i.get_ref().clone());
        let image = image.ok_or_else(|| {
            c.err(
                &n.name,
                format!("node {node}: no image; set image on the node or in [lab]"),
            )
        })?;
        let mut interfaces = Vec::new();
        for i in &n.interfaces {
            let spec = i.get_ref();
            let net_name = spec.network.get_ref();
            let net = networks.get(net_name).ok_or_else(|| {
                let known: Vec<&str> = networks.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none are defined".to_string()
                } else {
                    known.join(", ")
                };
                let msg = format!("node {node}: network {net_name:?} is not defined (networks: {known})");
                c.err(&spec.network, msg)
            })?;
            let ip = match &spec.ip {
                None => None,
                Some(ip) => Some(check_ip(&c, &node, net, ip, &mut used_ips)?),
            };
            interfaces.push(LabInterface {
                network: net_name.clone(),
                ip,
            });
        }
        nodes.push(LabNode {
            name: node,
            role: n
                .role
                .as_ref()
                .map_or_else(|| "node".to_string(), |r| r.get_ref().clone()),
            vcpus,
            memory_mib,
            image,
            disks_mib,
            host: n.host.as_ref().map(|h| h.get_ref().clone()),
            interfaces,
        });
    }
    let mut ssh_keys = Vec::new();
    for key in &raw.lab.ssh_keys {
        let text = key.get_ref().trim();
        if text.is_empty() || text.contains('\n') || !text.starts_with("ssh-") && !text.starts_with("ecdsa-")
        {
            return Err(c.err(
                key,
                "ssh_keys: each entry is one public key line, like \"ssh-ed25519 AAAA... user@host\"".into(),
            ));
        }
        ssh_keys.push(text.to_string());
    }
    Ok(Lab {
        name,
        networks: networks.into_values().collect(),
        nodes,
        ssh_keys,
    })
}

fn check_ip(
    c: &Checker,
    node: &str,
    net: &LabNetwork,
    ip: &Spanned<String>,
    used: &mut BTreeSet<(String, Ipv4Addr)>,
) -> Result<Ipv4Addr, LabFileError> {
    let text = ip.get_ref();
    let addr: Ipv4Addr = text
        .parse()
        .map_err(|_| c.err(ip, format!("node {node}: ip {text:?} is not an IPv4 address")))?;
    let mask = if net.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - net.prefix)
    };
    let host_part = u32::from(addr) & !mask;
    if u32::from(addr) & mask != u32::from(net.addr) || host_part == 0 || host_part == !mask {
        let msg = format!(
            "node {node}: ip {addr} is not a host address of network {} ({}/{})",
            net.name, net.addr, net.prefix
        );
        return Err(c.err(ip, msg));
    }
    if !used.insert((net.name.clone(), addr)) {
        return Err(c.err(
            ip,
            format!("node {node}: ip {addr} is used twice in network {}", net.name),
        ));
    }
    Ok(addr)
}

fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let (addr, prefix): (Ipv4Addr, u8) = (addr.parse().ok()?, prefix.parse().ok()?);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX.checked_shl(32 - u32::from(prefix))?
    };
    (prefix <= 30 && u32::from(addr) & !mask == 0).then_some((addr, prefix))
}

fn overlaps(net: &LabNetwork, addr: Ipv4Addr, prefix: u8) -> bool {
    let shorter = net.prefix.min(prefix);
    let mask = if shorter == 0 {
        0
    } else {
        u32::MAX << (32 - shorter)
    };
    u32::from(net.addr) & mask == u32::from(addr) & mask
}
