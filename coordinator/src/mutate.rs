//! Validation of every topology change. Each function reads the topology,
//! refuses bad input with an error naming it, and otherwise returns the
//! record writes that make the change. Nothing here writes anything.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use dclab_proto::error::{exists, invalid, not_found, precondition};
use dclab_proto::ApiError;

use crate::addr::{Cidr, Mac};
use crate::keys::KeyRange;
use crate::model::{Host, NetId, NetKind, Network, Port, PortKind, Tenant, Topology};
use crate::record::{Op, Record, RecordKey};

pub type Ops = Result<Vec<Op>, ApiError>;

/// Names become sled keys, OvS external_ids and flow tokens: the one name
/// rule of `dclab_spec::validate`.
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    dclab_spec::validate::check_name(what, name).map_err(invalid)
}

fn parse<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, ApiError> {
    text.parse().map_err(invalid)
}

/// Create a host, or update its uplink when its agent registers again.
/// Capacity a host offers to lab nodes: vCPUs and MiB of memory.
pub type Capacity = (u32, u64);

/// The most a host may offer lab nodes: beyond any server made today, so
/// a larger figure is a mistake or a lie that would steer placement.
pub const MAX_HOST_VCPUS: u32 = 4096;
pub const MAX_HOST_MEMORY_MIB: u64 = 64 << 20;

pub fn put_host(topo: &Topology, id: &str, uplink: &str, mac: &str, capacity: Capacity) -> Ops {
    check_name("host", id)?;
    let bad_char = |c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control();
    if uplink.is_empty() || uplink.len() > 15 || uplink.contains(bad_char) || uplink == "." || uplink == ".."
    {
        return Err(invalid(format!(
            "uplink interface name {uplink:?} must be 1 to 15 bytes with no '/', ':' or space"
        )));
    }
    let mac: Mac = parse(mac)?;
    if mac.0[0] & 1 == 1 || mac.0 == [0; 6] {
        return Err(invalid(format!(
            "uplink MAC {mac} is {}; a host's uplink has a unicast MAC",
            if mac.0 == [0; 6] {
                "all zeros"
            } else {
                "a multicast MAC"
            }
        )));
    }
    if capacity.0 > MAX_HOST_VCPUS || capacity.1 > MAX_HOST_MEMORY_MIB {
        return Err(invalid(format!(
            "host {id} offers {} vCPUs and {} MiB; at most {MAX_HOST_VCPUS} vCPUs and {MAX_HOST_MEMORY_MIB} MiB (64 TiB) are believed",
            capacity.0, capacity.1
        )));
    }
    if let Some(other) = topo.hosts.values().find(|h| h.mac == mac && h.id != id) {
        return Err(exists(format!("host {} already has uplink MAC {mac}", other.id)));
    }
    if let Some(port) = topo.ports.values().find(|p| p.mac == mac) {
        return Err(exists(format!("MAC {mac} is already used by port {}", port.name)));
    }
    let host = Host {
        id: id.to_string(),
        uplink: uplink.to_string(),
        mac,
        vcpus: capacity.0,
        memory_mib: capacity.1,
    };
    if topo.hosts.get(id) == Some(&host) {
        return Ok(vec![]);
    }
    Ok(vec![Op::Put(Record::Host(host))])
}

pub fn delete_host(topo: &Topology, id: &str) -> Ops {
    if !topo.hosts.contains_key(id) {
        return Err(not_found(format!("host {id} does not exist")));
    }
    if let Some(ports) = topo.host_ports.get(id) {
        return Err(precondition(format!(
            "host {id} still has {} ports; delete them first",
            ports.len()
        )));
    }
    Ok(vec![Op::Delete(RecordKey::Host(id.to_string()))])
}

pub fn create_tenant(topo: &Topology, name: &str) -> Ops {
    check_name("tenant", name)?;
    if topo.tenants.contains_key(name) {
        return Err(exists(format!("tenant {name} already exists")));
    }
    Ok(vec![Op::Put(Record::Tenant(Tenant {
        name: name.to_string(),
    }))])
}

pub fn delete_tenant(topo: &Topology, name: &str) -> Ops {
    if !topo.tenants.contains_key(name) {
        return Err(not_found(format!("tenant {name} does not exist")));
    }
    let nets = topo.net_ids.keys().filter(|(t, _)| t == name).count();
    if nets > 0 {
        return Err(precondition(format!(
            "tenant {name} still has {nets} networks; delete them first"
        )));
    }
    Ok(vec![Op::Delete(RecordKey::Tenant(name.to_string()))])
}

/// What a network-create request carries, before validation.
pub struct NetworkSpec<'a> {
    pub tenant: &'a str,
    pub name: &'a str,
    pub cidr: &'a str,
    pub kind: NetKind,
}

/// A rewrite network, the usual kind.
pub fn create_network(topo: &Topology, tenant: &str, name: &str, cidr: &str, id: NetId) -> Ops {
    let spec = NetworkSpec {
        tenant,
        name,
        cidr,
        kind: NetKind::Rewrite,
    };
    create_network_of(topo, &spec, id)
}

pub fn create_network_of(topo: &Topology, spec: &NetworkSpec, id: NetId) -> Ops {
    let (tenant, name, cidr) = (spec.tenant, spec.name, spec.cidr);
    check_name("network", name)?;
    tenant_exists(topo, tenant)?;
    let cidr: Cidr = parse(cidr)?;
    if cidr.prefix < 8 {
        return Err(invalid(format!(
            "network CIDR {cidr} is wider than /8; use a smaller network"
        )));
    }
    if topo.network_by_name(tenant, name).is_some() {
        return Err(exists(format!(
            "network {name} already exists in tenant {tenant}"
        )));
    }
    let clash = topo
        .networks
        .values()
        .find(|n| n.tenant == tenant && n.cidr.overlaps(&cidr));
    if let Some(other) = clash {
        return Err(invalid(format!(
            "CIDR {cidr} overlaps network {} ({}) of tenant {tenant}",
            other.name, other.cidr
        )));
    }
    let net = Network {
        id,
        tenant: tenant.to_string(),
        name: name.to_string(),
        cidr,
        kind: spec.kind,
    };
    Ok(vec![Op::Put(Record::Network(net))])
}

pub fn delete_network(topo: &Topology, tenant: &str, name: &str) -> Ops {
    let net = network(topo, tenant, name)?;
    let count = topo.members.get(&net.id).map_or(0, |m| m.len());
    if count > 0 {
        return Err(precondition(format!(
            "network {name} of tenant {tenant} still has {count} ports; delete them first"
        )));
    }
    Ok(vec![Op::Delete(RecordKey::Network(net.id))])
}

fn tenant_exists(topo: &Topology, tenant: &str) -> Result<(), ApiError> {
    if topo.tenants.contains_key(tenant) {
        Ok(())
    } else {
        Err(not_found(format!("tenant {tenant:?} does not exist")))
    }
}

fn network<'a>(topo: &'a Topology, tenant: &str, name: &str) -> Result<&'a Network, ApiError> {
    tenant_exists(topo, tenant)?;
    topo.network_by_name(tenant, name)
        .ok_or_else(|| not_found(format!("network {name:?} does not exist in tenant {tenant}")))
}

/// What a port-create request carries, before validation.
pub struct PortSpec<'a> {
    pub name: &'a str,
    pub tenant: &'a str,
    pub network: &'a str,
    pub host: &'a str,
    pub mac: &'a str,
    pub ip: &'a str,
    pub kind: PortKind,
}

pub fn create_port(topo: &Topology, keys: &KeyRange, spec: &PortSpec) -> Ops {
    let mut taken = Taken::default();
    place_port(topo, keys, spec, &mut taken)
}

/// Most ports one CreatePorts call may carry.
pub const MAX_BATCH: usize = 10_000;

/// All the ports or none: each is validated against the topology plus the
/// batch's earlier ports.
pub fn create_ports(topo: &Topology, keys: &KeyRange, specs: &[PortSpec]) -> Ops {
    if specs.len() > MAX_BATCH {
        return Err(invalid(format!(
            "{} ports in one call; the limit is {MAX_BATCH}, split the batch",
            specs.len()
        )));
    }
    let mut taken = Taken::default();
    let mut all = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let ops = place_port(topo, keys, spec, &mut taken)
            .map_err(|e| e.context(&format!("port {} of {} ({:.64})", i + 1, specs.len(), spec.name)))?;
        all.extend(ops);
    }
    Ok(all)
}

/// What earlier ports of a batch took, on top of the topology. Filled
/// lazily per host and network, so a batch costs O(batch + touched state).
#[derive(Default)]
struct Taken {
    names: HashSet<String>,
    keys: HashMap<String, BTreeSet<u32>>,
    /// Per host: every key below it is taken (batches only add keys).
    cursor: HashMap<String, u32>,
    bkeys: HashSet<(String, NetId)>,
    /// The host of each switch network the batch put a port on.
    switch_hosts: HashMap<NetId, String>,
    addrs: HashMap<NetId, (HashSet<Ipv4Addr>, HashMap<Mac, String>)>,
}

impl Taken {
    fn keys(&mut self, topo: &Topology, host: &str) -> &mut BTreeSet<u32> {
        self.keys
            .entry(host.to_string())
            .or_insert_with(|| topo.keys_on_host(host))
    }

    fn addrs(&mut self, topo: &Topology, net: NetId) -> &mut (HashSet<Ipv4Addr>, HashMap<Mac, String>) {
        self.addrs.entry(net).or_insert_with(|| {
            let ips = topo.ports_of_net(net).map(|p| p.ip).collect();
            let macs = topo.ports_of_net(net).map(|p| (p.mac, p.name.clone())).collect();
            (ips, macs)
        })
    }
}

fn place_port(topo: &Topology, keys: &KeyRange, spec: &PortSpec, taken: &mut Taken) -> Ops {
    check_name("port", spec.name)?;
    if topo.ports.contains_key(spec.name) || taken.names.contains(spec.name) {
        return Err(exists(format!("port {} already exists", spec.name)));
    }
    let net = network(topo, spec.tenant, spec.network)?;
    if !topo.hosts.contains_key(spec.host) {
        return Err(not_found(format!(
            "host {:?} is not registered; start its agent or run `ctl host create`",
            spec.host
        )));
    }
    one_host_per_switch(topo, net, spec, taken)?;
    let mac: Mac = parse(spec.mac)?;
    if let Some(host) = topo.hosts.values().find(|h| h.mac == mac) {
        return Err(exists(format!("MAC {mac} is the uplink MAC of host {}", host.id)));
    }
    let ip: Ipv4Addr = spec
        .ip
        .parse()
        .map_err(|_| invalid(format!("malformed IPv4 address {:?}", spec.ip)))?;
    if !net.cidr.is_host_address(ip) {
        return Err(invalid(format!(
            "IP {ip} is not a host address of network {} ({})",
            net.name, net.cidr
        )));
    }
    let (ips, macs) = taken.addrs(topo, net.id);
    if ips.contains(&ip) {
        return Err(exists(format!("IP {ip} is already used in network {}", net.name)));
    }
    if let Some(owner) = macs.get(&mac) {
        return Err(exists(format!(
            "MAC {mac} is already used by port {owner} in network {}",
            net.name
        )));
    }
    ips.insert(ip);
    macs.insert(mac, spec.name.to_string());
    let host = spec.host.to_string();
    let mut ops = Vec::new();
    let needs_bkey =
        !topo.bkeys.contains_key(&(host.clone(), net.id)) && !taken.bkeys.contains(&(host.clone(), net.id));
    let mut from = taken.cursor.get(&host).copied().unwrap_or(0);
    let used = taken.keys(topo, &host);
    let mut next_key = || -> Result<Ipv4Addr, ApiError> {
        let key = keys.allocate_from(&host, used, from)?;
        used.insert(u32::from(key));
        from = u32::from(key) + 1;
        Ok(key)
    };
    if needs_bkey {
        let key = next_key()?;
        ops.push(Op::Put(Record::BroadcastKey {
            host: host.clone(),
            net: net.id,
            key,
        }));
    }
    let key = next_key()?;
    taken.cursor.insert(host.clone(), from);
    taken.bkeys.insert((host.clone(), net.id));
    taken.names.insert(spec.name.to_string());
    ops.push(Op::Put(Record::Port(Port {
        name: spec.name.to_string(),
        net: net.id,
        host,
        mac,
        ip,
        kind: spec.kind,
        key,
    })));
    Ok(ops)
}

/// A switch network is a hub in one host's bridge, with no wire to
/// other hosts: all its ports are on the host of its first.
fn one_host_per_switch(
    topo: &Topology,
    net: &Network,
    spec: &PortSpec,
    taken: &mut Taken,
) -> Result<(), ApiError> {
    if net.kind != NetKind::Switch {
        return Ok(());
    }
    let home = topo
        .switch_host(net.id)
        .or_else(|| taken.switch_hosts.get(&net.id).map(String::as_str));
    match home {
        Some(home) if home != spec.host => Err(precondition(format!(
            "network {} of tenant {} is a switch network on host {home}; its ports cannot be on host {}",
            net.name, net.tenant, spec.host
        ))),
        Some(_) => Ok(()),
        None => {
            taken.switch_hosts.insert(net.id, spec.host.to_string());
            Ok(())
        }
    }
}

/// Deletes the port, and the host's broadcast key for its network when it
/// was the last member there.
pub fn delete_port(topo: &Topology, name: &str) -> Ops {
    let port = topo
        .ports
        .get(name)
        .ok_or_else(|| not_found(format!("port {name} does not exist")))?;
    let mut ops = vec![Op::Delete(RecordKey::Port(name.to_string()))];
    let others = topo
        .ports_on_host(&port.host)
        .filter(|p| p.net == port.net)
        .count();
    if others == 1 {
        ops.push(Op::Delete(RecordKey::BroadcastKey(port.host.clone(), port.net)));
    }
    Ok(ops)
}
