//! `ctl trace`: the cross-host counterpart of `ovn-trace`, on what OvS
//! really has installed. The source host's agent runs `ofproto/trace` on
//! its bridge; every copy that leaves the uplink (with the headers the
//! flows rewrote) is fed into the bridge of the host the physical switch
//! would deliver it to, and so on until each copy is delivered or dropped.

pub mod packet;
mod print;

use std::net::Ipv4Addr;

use crate::client::Operator;
use dclab_proto::v1;
use serde::Serialize;

use crate::output::Format;
pub use packet::{Packet, Proto};

type Client = Operator;

/// Hops followed at most: a copy looping between hosts is reported.
const MAX_HOPS: usize = 64;

#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The dclab port the packet leaves from (`ctl port ls` lists them).
    #[arg(long)]
    pub from: String,
    /// Destination IPv4 address (in the port's network, its broadcast, or outside).
    #[arg(long)]
    pub to: Ipv4Addr,
    #[arg(long, value_enum, default_value = "icmp")]
    pub proto: Proto,
    /// Destination port, for tcp and udp.
    #[arg(long)]
    pub dport: Option<u16>,
    /// Forge the source MAC [default: the port's own].
    #[arg(long)]
    pub src_mac: Option<String>,
    /// Forge the source IP [default: the port's own].
    #[arg(long)]
    pub src_ip: Option<Ipv4Addr>,
    /// Destination MAC [default: what ARP gives: the owner of --to, ff:ff:ff:ff:ff:ff for
    /// broadcast, else the network's router].
    #[arg(long)]
    pub dst_mac: Option<String>,
    /// Send the frame with an 802.1Q header of this VLAN id.
    #[arg(long)]
    pub vlan: Option<u16>,
}

/// One bridge a copy went through.
#[derive(Debug, Serialize)]
pub struct Hop {
    pub host: String,
    /// Where it entered: a dclab port or "uplink" (from `from_host`).
    pub entered: String,
    pub from_host: Option<String>,
    pub packet: Packet,
    #[serde(skip)]
    pub trace: v1::FlowTrace,
    pub steps: Vec<print::Step>,
    pub datapath_actions: String,
}

/// Where a copy ended.
#[derive(Debug, Serialize)]
pub struct Ending {
    pub host: String,
    /// The dclab port it was delivered to; None when dropped.
    pub port: Option<String>,
    pub packet: Packet,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct Trace {
    pub from: String,
    pub to: Ipv4Addr,
    pub hops: Vec<Hop>,
    pub endings: Vec<Ending>,
}

pub async fn run(mut client: Client, args: TraceArgs, format: Format) -> anyhow::Result<()> {
    let topo = Topo::fetch(&mut client).await?;
    let first = packet::first(&topo.ports, &topo.networks, &args)?;
    let port = topo
        .ports
        .iter()
        .find(|p| p.name == args.from)
        .expect("packet::first checked the port");
    let trace = follow(&mut client, &topo, &port.host, first).await?;
    print::trace(&trace, &topo, format);
    Ok(())
}

/// What the coordinator knows, to name hosts and ports.
pub struct Topo {
    pub hosts: Vec<v1::Host>,
    pub ports: Vec<v1::Port>,
    pub networks: Vec<v1::Network>,
}

impl Topo {
    pub async fn fetch(client: &mut Client) -> anyhow::Result<Topo> {
        let status = crate::status_error;
        let hosts = client
            .list_hosts(v1::ListHostsRequest {})
            .await
            .map_err(status)?
            .into_inner()
            .hosts;
        let ports = client
            .list_ports(v1::ListPortsRequest::default())
            .await
            .map_err(status)?
            .into_inner()
            .ports;
        let networks = client
            .list_networks(v1::ListNetworksRequest::default())
            .await
            .map_err(status)?
            .into_inner()
            .networks;
        Ok(Topo {
            hosts,
            ports,
            networks,
        })
    }

    fn host_with_mac(&self, mac: &str) -> Option<&v1::Host> {
        self.hosts.iter().find(|h| h.mac.eq_ignore_ascii_case(mac))
    }
}

/// Traces `packet` into `host` and every copy onward.
pub async fn follow(client: &mut Client, topo: &Topo, host: &str, packet: Packet) -> anyhow::Result<Trace> {
    let (from, to) = (packet.entered.clone(), packet.destination());
    let mut out = Trace {
        from,
        to,
        hops: vec![],
        endings: vec![],
    };
    let mut queue = std::collections::VecDeque::from([(host.to_string(), None::<String>, packet)]);
    while let Some((host, from_host, packet)) = queue.pop_front() {
        if out.hops.len() >= MAX_HOPS {
            anyhow::bail!("the packet crossed {MAX_HOPS} bridges without ending: the flows loop");
        }
        let req = v1::TraceFlowRequest {
            host: host.clone(),
            flow: packet.flow(),
        };
        let trace = client
            .trace_flow(req)
            .await
            .map_err(crate::status_error)?
            .into_inner();
        if trace.outputs.is_empty() {
            out.endings.push(Ending {
                host: host.clone(),
                port: None,
                packet: packet.clone(),
                why: print::drop_reason(&trace),
            });
        }
        for output in &trace.outputs {
            let next = packet.rewritten(&output.set);
            if output.port != "uplink" {
                out.endings.push(Ending {
                    host: host.clone(),
                    port: Some(output.port.clone()),
                    packet: next,
                    why: "delivered".into(),
                });
                continue;
            }
            // The dumb switch: to the host owning the MAC, else flooded.
            let targets: Vec<String> = match topo.host_with_mac(next.field("dl_dst")) {
                Some(h) => vec![h.id.clone()],
                None => topo
                    .hosts
                    .iter()
                    .filter(|h| h.id != host)
                    .map(|h| h.id.clone())
                    .collect(),
            };
            for target in targets {
                let mut copy = next.clone();
                copy.entered = "uplink".into();
                queue.push_back((target, Some(host.clone()), copy));
            }
        }
        out.hops.push(Hop {
            host,
            entered: packet.entered.clone(),
            from_host,
            steps: print::steps(&trace),
            datapath_actions: trace.datapath_actions.clone(),
            packet,
            trace,
        });
    }
    Ok(out)
}
