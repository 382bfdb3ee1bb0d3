//! Instances: a network namespace with one veth, plugged into a host's
//! br-int, standing for a VM or router interface.

use std::net::Ipv4Addr;

use anyhow::{bail, Context};

use super::cluster::Cluster;
use super::command::run_in;
use super::grpc;
use super::netns;
use super::ovs;
use super::state::{InstanceKind, InstanceState, Mode};

/// `i-<NAME>` must fit Linux's 15-character interface names.
pub const MAX_INSTANCE_NAME: usize = 13;

/// What `Cluster::add_instance` creates.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub name: String,
    pub host: String,
    pub tenant: String,
    pub network: String,
    /// With prefix, e.g. `10.0.0.1/24`.
    pub ip: String,
    /// Derived from the name when absent.
    pub mac: Option<String>,
    pub gateway: Option<String>,
    pub kind: InstanceKind,
}

impl InstanceSpec {
    /// A VM instance with derived MAC and no gateway.
    pub fn vm(name: &str, host: &str, tenant: &str, network: &str, ip: &str) -> Self {
        InstanceSpec {
            name: name.to_string(),
            host: host.to_string(),
            tenant: tenant.to_string(),
            network: network.to_string(),
            ip: ip.to_string(),
            mac: None,
            gateway: None,
            kind: InstanceKind::Vm,
        }
    }
}

/// Host-side veth name of an instance.
pub fn host_link(name: &str) -> String {
    format!("i-{name}")
}

/// A locally administered unicast MAC that is stable for a given name.
pub fn derived_mac(name: &str) -> String {
    // FNV-1a: tiny, stable across Rust versions (unlike DefaultHasher).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    // Spread the bits: FNV alone leaves short names' MACs alike in front.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    let b = hash.to_be_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[3], b[4], b[5], b[6], b[7]
    )
}

impl Cluster {
    /// Creates the instance; in dclab mode also its port in the coordinator.
    /// On failure removes what it created.
    pub fn add_instance(&mut self, spec: &InstanceSpec) -> anyhow::Result<()> {
        validate(spec)?;
        self.host_state(&spec.host)?;
        if self.instance(&spec.name).is_ok() {
            bail!(
                "instance {:?} already exists in cluster {}",
                spec.name,
                self.name()
            );
        }
        let instance = InstanceState {
            name: spec.name.clone(),
            host: spec.host.clone(),
            tenant: spec.tenant.clone(),
            network: spec.network.clone(),
            ip: spec.ip.clone(),
            mac: spec.mac.clone().unwrap_or_else(|| derived_mac(&spec.name)),
            gateway: spec.gateway.clone(),
            kind: spec.kind,
            netns: self.instance_netns(&spec.name),
        };
        // Recorded first, so `down` removes it even if we crash midway.
        self.state.instances.push(instance.clone());
        self.save()?;
        if let Err(err) = self.plug(&instance) {
            self.unplug(&instance);
            self.state.instances.retain(|i| i.name != instance.name);
            self.save()?;
            return Err(err.context(format!("cannot add instance {}", instance.name)));
        }
        Ok(())
    }

    fn plug(&self, inst: &InstanceState) -> anyhow::Result<()> {
        let ns = &inst.netns;
        let host_ns = self.host_netns(&inst.host);
        let link = host_link(&inst.name);
        netns::create(ns)?;
        netns::create_veth(ns, "eth0", &host_ns, &link)?;
        run_in(ns, &["ip", "link", "set", "eth0", "address", &inst.mac])?;
        run_in(ns, &["ip", "addr", "add", &inst.ip, "dev", "eth0"])?;
        netns::link_up(ns, "eth0")?;
        netns::tx_checksum_off(ns, "eth0")?;
        run_in(ns, &["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_broadcasts=0"])?;
        if let Some(gw) = &inst.gateway {
            run_in(ns, &["ip", "route", "add", "default", "via", gw])?;
        }
        netns::link_up(&host_ns, &link)?;
        ovs::add_instance_port(&self.host_dir(&inst.host), &link, &inst.name)?;
        if self.mode() == Mode::Dclab {
            grpc::create_port(&self.client_config()?, inst)?;
        }
        Ok(())
    }

    /// Best effort: every step runs even if an earlier one failed.
    fn unplug(&self, inst: &InstanceState) {
        if let Err(err) = ovs::del_port(&self.host_dir(&inst.host), &host_link(&inst.name)) {
            eprintln!("warning: {err:#}");
        }
        if netns::exists(&inst.netns) {
            if let Err(err) = netns::delete(&inst.netns) {
                eprintln!("warning: {err:#}");
            }
        }
    }

    /// Removes the port (coordinator first, so the rules go before the
    /// link), the OvS port and the namespace. Local cleanup happens even if
    /// the coordinator call fails; that error is returned afterwards.
    pub fn remove_instance(&mut self, name: &str) -> anyhow::Result<()> {
        let inst = self.instance(name)?.clone();
        let coordinator_result = match self.mode() {
            Mode::Dclab => self
                .client_config()
                .and_then(|config| grpc::delete_port(&config, name)),
            Mode::Plain => Ok(()),
        };
        self.unplug(&inst);
        self.state.instances.retain(|i| i.name != name);
        self.save()?;
        coordinator_result
            .with_context(|| format!("instance {name} removed locally, but not from the coordinator"))
    }
}

fn validate(spec: &InstanceSpec) -> anyhow::Result<()> {
    let name = &spec.name;
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if name.is_empty() || name.len() > MAX_INSTANCE_NAME || !ok_chars {
        bail!(
            "instance name {name:?} must be 1-{MAX_INSTANCE_NAME} characters of [a-z0-9_-] (the host-side link i-{name} must fit 15 characters)"
        );
    }
    let (addr, prefix) = spec
        .ip
        .split_once('/')
        .with_context(|| format!("--ip {:?} needs a prefix length, e.g. 10.0.0.1/24", spec.ip))?;
    addr.parse::<Ipv4Addr>()
        .with_context(|| format!("--ip {:?} is not an IPv4 address", spec.ip))?;
    match prefix.parse::<u8>() {
        Ok(p) if p <= 32 => {}
        _ => bail!("--ip {:?} has a bad prefix length", spec.ip),
    }
    if let Some(gw) = &spec.gateway {
        gw.parse::<Ipv4Addr>()
            .with_context(|| format!("--gateway {gw:?} is not an IPv4 address"))?;
    }
    if let Some(mac) = &spec.mac {
        let parts: Vec<&str> = mac.split(':').collect();
        let hex = parts
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
        if parts.len() != 6 || !hex {
            bail!("--mac {mac:?} is not a MAC address like 02:00:00:00:00:01");
        }
    }
    Ok(())
}
