//! Typed OpenFlow flows, rendered in ovs-ofctl syntax. Ports are symbolic
//! (`${uplink}`, `${port:NAME}`); the agent substitutes OvS port numbers.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::addr::{Cidr, Mac};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    Uplink,
    /// Shared: one allocation per port per compile, not per flow.
    Port(Arc<str>),
}

impl PortRef {
    pub fn port(name: &str) -> PortRef {
        PortRef::Port(Arc::from(name))
    }
}

/// Matches and actions live inline in the flow: millions of flows, no
/// allocation each (a broadcast fan-out may spill to the heap).
pub type Matches = SmallVec<[Match; 5]>;
pub type Actions = SmallVec<[Action; 5]>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Match {
    Ip,
    Arp,
    /// The frame carries a VLAN header (802.1Q or 802.1ad, any VID, also
    /// priority-tagged): OvS sets the CFI bit of vlan_tci for any of them.
    Tagged,
    InPort(PortRef),
    Reg(u8, u32),
    EthSrc(Mac),
    EthDst(Mac),
    IpSrc(Ipv4Addr),
    IpSrcNet(Cidr),
    IpDst(Ipv4Addr),
    ArpOp(u16),
    ArpSpa(Ipv4Addr),
    ArpSpaNet(Cidr),
    ArpSha(Mac),
    ArpTpa(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    SetReg(u8, u32),
    SetRegPort(u8, PortRef),
    SetEthSrc(Mac),
    SetEthDst(Mac),
    SetIpSrc(Ipv4Addr),
    SetIpDst(Ipv4Addr),
    /// ip_src := reg1 (the source port's mapping key).
    KeyToIpSrc,
    /// Turn an ARP request into the reply for (mac, ip) and send it back.
    ArpReply {
        mac: Mac,
        ip: Ipv4Addr,
    },
    Output(PortRef),
    /// Output to the port number held in reg3.
    OutputReg3,
    Goto(u8),
    Resubmit(u8),
    Drop,
}

/// One flow. Field order gives a deterministic sort: table, priority, match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flow {
    pub table: u8,
    pub priority: u16,
    pub matches: Matches,
    pub actions: Actions,
}

impl Flow {
    pub fn new(table: u8, priority: u16, matches: Matches, actions: Actions) -> Flow {
        Flow {
            table,
            priority,
            matches,
            actions,
        }
    }

    pub fn match_text(&self) -> String {
        join(&self.matches)
    }

    pub fn actions_text(&self) -> String {
        join(&self.actions)
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Uplink => write!(f, "${{uplink}}"),
            PortRef::Port(name) => write!(f, "${{port:{name}}}"),
        }
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Ip => write!(f, "ip"),
            Match::Arp => write!(f, "arp"),
            Match::Tagged => write!(f, "vlan_tci=0x1000/0x1000"),
            Match::InPort(port) => write!(f, "in_port={port}"),
            Match::Reg(reg, value) => write!(f, "reg{reg}={value:#x}"),
            Match::EthSrc(mac) => write!(f, "dl_src={mac}"),
            Match::EthDst(mac) => write!(f, "dl_dst={mac}"),
            Match::IpSrc(ip) => write!(f, "nw_src={ip}"),
            Match::IpSrcNet(cidr) => write!(f, "nw_src={cidr}"),
            Match::IpDst(ip) => write!(f, "nw_dst={ip}"),
            Match::ArpOp(op) => write!(f, "arp_op={op}"),
            Match::ArpSpa(ip) => write!(f, "arp_spa={ip}"),
            Match::ArpSpaNet(cidr) => write!(f, "arp_spa={cidr}"),
            Match::ArpSha(mac) => write!(f, "arp_sha={mac}"),
            Match::ArpTpa(ip) => write!(f, "arp_tpa={ip}"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::SetReg(reg, value) => write!(f, "set_field:{value:#x}->reg{reg}"),
            Action::SetRegPort(reg, port) => write!(f, "set_field:{port}->reg{reg}"),
            Action::SetEthSrc(mac) => write!(f, "set_field:{mac}->eth_src"),
            Action::SetEthDst(mac) => write!(f, "set_field:{mac}->eth_dst"),
            Action::SetIpSrc(ip) => write!(f, "set_field:{ip}->ip_src"),
            Action::SetIpDst(ip) => write!(f, "set_field:{ip}->ip_dst"),
            Action::KeyToIpSrc => write!(f, "move:NXM_NX_REG1[]->NXM_OF_IP_SRC[]"),
            Action::ArpReply { mac, ip } => write!(
                f,
                "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:{mac}->eth_src,\
                 set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],\
                 move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],set_field:{mac}->arp_sha,\
                 set_field:{ip}->arp_spa,IN_PORT"
            ),
            Action::Output(port) => write!(f, "output:{port}"),
            Action::OutputReg3 => write!(f, "output:NXM_NX_REG3[]"),
            Action::Goto(table) => write!(f, "goto_table:{table}"),
            Action::Resubmit(table) => write!(f, "resubmit(,{table})"),
            Action::Drop => write!(f, "drop"),
        }
    }
}
