//! The packet a trace starts with, and its copies as flows rewrite them:
//! ovs-ofctl flow fields, so a copy leaving one bridge is the flow traced
//! in the next.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Context};
use dclab_proto::v1::{self, PortKind};
use dclab_spec::addr::{Cidr, Mac};
use serde::Serialize;

use super::TraceArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Icmp,
    Tcp,
    Udp,
    /// An ARP request for --to.
    Arp,
}

/// A packet as a flow: the protocol keyword and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Packet {
    /// The dclab port it was sent from, or "uplink".
    pub entered: String,
    pub proto: Proto,
    pub fields: BTreeMap<String, String>,
}

impl Packet {
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    /// The address the packet is for.
    pub fn destination(&self) -> Ipv4Addr {
        let key = if self.proto == Proto::Arp {
            "arp_tpa"
        } else {
            "nw_dst"
        };
        self.field(key).parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// The flow `ofproto/trace` takes, its input port symbolic.
    pub fn flow(&self) -> String {
        let in_port = if self.entered == "uplink" {
            "${uplink}".to_string()
        } else {
            format!("${{port:{}}}", self.entered)
        };
        let keyword = match self.proto {
            Proto::Icmp => "icmp",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Arp => "arp",
        };
        let mut flow = format!("{keyword},in_port={in_port}");
        for (k, v) in &self.fields {
            flow.push_str(&format!(",{k}={v}"));
        }
        flow
    }

    /// The copy after the rewrites in `set`.
    pub fn rewritten(&self, set: &std::collections::HashMap<String, String>) -> Packet {
        let mut next = self.clone();
        for (k, v) in set {
            next.fields.insert(k.clone(), v.clone());
        }
        next
    }
}

/// The packet `args` describes, as the guest behind the port would send it.
pub fn first(ports: &[v1::Port], networks: &[v1::Network], args: &TraceArgs) -> anyhow::Result<Packet> {
    let Some(port) = ports.iter().find(|p| p.name == args.from) else {
        bail!("no port {:?}; `ctl port ls` lists the ports", args.from);
    };
    let net = networks
        .iter()
        .find(|n| n.tenant == port.tenant && n.name == port.network)
        .with_context(|| {
            format!(
                "port {} names network {}, which the coordinator does not list",
                port.name, port.network
            )
        })?;
    let cidr: Cidr = net.cidr.parse().map_err(anyhow::Error::msg)?;
    let members: Vec<&v1::Port> = ports
        .iter()
        .filter(|p| p.tenant == port.tenant && p.network == port.network)
        .collect();
    let src_mac = match &args.src_mac {
        Some(m) => m
            .parse::<Mac>()
            .map_err(|e| anyhow::anyhow!("--src-mac: {e}"))?
            .to_string(),
        None => port.mac.clone(),
    };
    let src_ip = args.src_ip.map_or_else(|| port.ip.clone(), |ip| ip.to_string());
    let to = args.to;
    let dst_mac = match &args.dst_mac {
        Some(m) => m
            .parse::<Mac>()
            .map_err(|e| anyhow::anyhow!("--dst-mac: {e}"))?
            .to_string(),
        None if to == cidr.broadcast() || to == Ipv4Addr::BROADCAST || args.proto == Proto::Arp => {
            "ff:ff:ff:ff:ff:ff".to_string()
        }
        None => match members.iter().find(|p| p.ip == to.to_string()) {
            Some(owner) => owner.mac.clone(),
            None => match members.iter().find(|p| p.kind == PortKind::Router as i32) {
                Some(router) => router.mac.clone(),
                // No owner and no router: what a guest with a static ARP entry would send.
                None => "02:00:5e:00:53:01".to_string(),
            },
        },
    };
    let mut fields = BTreeMap::from([
        ("dl_src".to_string(), src_mac.clone()),
        ("dl_dst".to_string(), dst_mac),
    ]);
    if let Some(vlan) = args.vlan {
        anyhow::ensure!(vlan < 4096, "--vlan {vlan}: a VLAN id is 0 to 4095");
        fields.insert("dl_vlan".into(), vlan.to_string());
    }
    let mut set = |k: &str, v: String| fields.insert(k.to_string(), v);
    match args.proto {
        Proto::Arp => {
            set("arp_op", "1".into());
            set("arp_sha", src_mac);
            set("arp_spa", src_ip);
            set("arp_tpa", to.to_string());
        }
        proto => {
            set("nw_src", src_ip);
            set("nw_dst", to.to_string());
            set("nw_ttl", "64".into());
            match proto {
                Proto::Icmp => {
                    anyhow::ensure!(args.dport.is_none(), "--dport is for tcp and udp");
                    set("icmp_type", "8".into());
                    set("icmp_code", "0".into());
                }
                _ => {
                    set("tp_src", "40000".into());
                    set("tp_dst", args.dport.unwrap_or(80).to_string());
                }
            }
        }
    }
    Ok(Packet {
        entered: port.name.clone(),
        proto: args.proto,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, ip: &str, mac: &str, kind: PortKind) -> v1::Port {
        v1::Port {
            name: name.into(),
            tenant: "a".into(),
            network: "net".into(),
            host: "h1".into(),
            mac: mac.into(),
            ip: ip.into(),
            kind: kind.into(),
            key: String::new(),
        }
    }

    fn args(to: &str, proto: Proto) -> TraceArgs {
        TraceArgs {
            from: "vm1".into(),
            to: to.parse().unwrap(),
            proto,
            dport: None,
            src_mac: None,
            src_ip: None,
            dst_mac: None,
            vlan: None,
        }
    }

    #[test]
    fn the_first_packet_is_what_the_guest_would_send() {
        let ports = [
            port("vm1", "10.0.0.1", "02:00:00:00:00:01", PortKind::Vm),
            port("vm2", "10.0.0.2", "02:00:00:00:00:02", PortKind::Vm),
            port("gw", "10.0.0.254", "02:00:00:00:00:fe", PortKind::Router),
        ];
        let nets = [v1::Network {
            tenant: "a".into(),
            name: "net".into(),
            cidr: "10.0.0.0/24".into(),
            ..Default::default()
        }];
        let unicast = first(&ports, &nets, &args("10.0.0.2", Proto::Icmp)).unwrap();
        assert_eq!(
            unicast.flow(),
            "icmp,in_port=${port:vm1},dl_dst=02:00:00:00:00:02,dl_src=02:00:00:00:00:01,icmp_code=0,icmp_type=8,nw_dst=10.0.0.2,nw_src=10.0.0.1,nw_ttl=64"
        );
        let outside = first(&ports, &nets, &args("8.8.8.8", Proto::Icmp)).unwrap();
        assert_eq!(outside.field("dl_dst"), "02:00:00:00:00:fe", "via the router");
        let bcast = first(&ports, &nets, &args("10.0.0.255", Proto::Udp)).unwrap();
        assert_eq!(bcast.field("dl_dst"), "ff:ff:ff:ff:ff:ff");
        assert_eq!(bcast.field("tp_dst"), "80");
        let mut forged = args("10.0.0.2", Proto::Arp);
        forged.src_ip = Some("10.0.0.9".parse().unwrap());
        forged.vlan = Some(100);
        let arp = first(&ports, &nets, &forged).unwrap();
        assert_eq!((arp.field("arp_spa"), arp.field("dl_vlan")), ("10.0.0.9", "100"));
        assert_eq!(arp.destination().to_string(), "10.0.0.2");
        let mut bad = args("10.0.0.2", Proto::Icmp);
        bad.from = "nope".into();
        assert!(first(&ports, &nets, &bad)
            .unwrap_err()
            .to_string()
            .contains("no port \"nope\""));
        let mut set = std::collections::HashMap::new();
        set.insert("nw_dst".to_string(), "100.64.0.2".to_string());
        assert_eq!(unicast.rewritten(&set).field("nw_dst"), "100.64.0.2");
    }
}
