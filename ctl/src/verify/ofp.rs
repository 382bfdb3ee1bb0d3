//! OpenFlow flows as `ovs-ofctl -O OpenFlow13 dump-flows` prints them,
//! parsed into matches and actions the interpreter runs. Anything it does
//! not know makes the flow uninterpretable, which the verifier reports:
//! it never guesses what a flow does.

use std::net::Ipv4Addr;

use dclab_flows::split_top_level;

/// Fields the interpreter tracks. Values are u64; MACs are 48 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    InPort,
    EthSrc,
    EthDst,
    EthType,
    /// OvS's vlan_tci: 0x1000 marks a present header.
    VlanTci,
    IpSrc,
    IpDst,
    IpProto,
    ArpOp,
    ArpSpa,
    ArpTpa,
    ArpSha,
    ArpTha,
    TpDst,
    Reg(u8),
    Metadata,
}

pub const REGS: usize = 8;

/// `field & mask == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub field: Field,
    pub value: u64,
    pub mask: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    Output(u32),
    OutputReg(u8),
    InPort,
    /// NORMAL, FLOOD, ALL: every port but the input port.
    Flood,
    Controller,
    Set(Field, u64),
    /// Whole-field copy.
    Move(Field, Field),
    Resubmit {
        port: Option<u32>,
        table: u8,
    },
    PushVlan,
    PopVlan,
    Drop,
    /// Changes nothing the verifier follows (note, TTL, queues).
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    pub conds: Vec<Cond>,
    pub acts: Vec<Act>,
    /// The line as dumped, for reports.
    pub text: String,
}

/// A line that could not be interpreted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub text: String,
    pub why: String,
}

const ETH_IP: u64 = 0x0800;
const ETH_ARP: u64 = 0x0806;
const ETH_IPV6: u64 = 0x86dd;

/// Every flow of a dump; lines that are not flows (headers) are skipped.
pub fn parse_dump(text: &str) -> (Vec<Flow>, Vec<Unknown>) {
    let (mut flows, mut unknown) = (Vec::new(), Vec::new());
    for line in text.lines().map(str::trim).filter(|l| l.contains("actions=")) {
        match parse_flow(line) {
            Ok(f) => flows.push(f),
            Err(why) => unknown.push(Unknown {
                text: line.to_string(),
                why,
            }),
        }
    }
    (flows, unknown)
}

pub fn parse_flow(line: &str) -> Result<Flow, String> {
    let (head, actions) = line.split_once("actions=").ok_or("no actions")?;
    let mut flow = Flow {
        table: 0,
        priority: 32768,
        cookie: 0,
        conds: Vec::new(),
        acts: Vec::new(),
        text: line.to_string(),
    };
    for token in head.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        parse_match(token, &mut flow)?;
    }
    for act in split_top_level(actions.trim()) {
        flow.acts.push(parse_act(act)?);
    }
    Ok(flow)
}

fn num(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("bad number {s:?}"))
}

pub fn mac(s: &str) -> Result<u64, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s:?}"));
    }
    parts.iter().try_fold(0u64, |acc, p| {
        u8::from_str_radix(p, 16)
            .map(|b| acc << 8 | u64::from(b))
            .map_err(|_| format!("bad MAC {s:?}"))
    })
}

fn ip(s: &str) -> Result<u64, String> {
    s.parse::<Ipv4Addr>()
        .map(|a| u64::from(u32::from(a)))
        .map_err(|_| format!("bad IPv4 address {s:?}"))
}

/// `a.b.c.d`, `a.b.c.d/len` or `a.b.c.d/mask`.
fn ip_masked(s: &str) -> Result<(u64, u64), String> {
    match s.split_once('/') {
        None => Ok((ip(s)?, 0xffff_ffff)),
        Some((addr, m)) => {
            let mask = match m.parse::<u32>() {
                Ok(len) if len <= 32 => (0xffff_ffffu64 << (32 - len)) & 0xffff_ffff,
                _ => ip(m)?,
            };
            Ok((ip(addr)? & mask, mask))
        }
    }
}

fn masked(s: &str, parse: fn(&str) -> Result<u64, String>, full: u64) -> Result<(u64, u64), String> {
    match s.split_once('/') {
        None => Ok((parse(s)?, full)),
        Some((v, m)) => {
            let mask = parse(m)?;
            Ok((parse(v)? & mask, mask))
        }
    }
}

fn cond(flow: &mut Flow, field: Field, (value, mask): (u64, u64)) {
    flow.conds.push(Cond { field, value, mask });
}

fn proto(flow: &mut Flow, eth: u64, ip_proto: Option<u64>) {
    cond(flow, Field::EthType, (eth, 0xffff));
    if let Some(p) = ip_proto {
        cond(flow, Field::IpProto, (p, 0xff));
    }
}

fn reg(name: &str) -> Option<u8> {
    name.strip_prefix("reg")
        .and_then(|n| n.parse().ok())
        .filter(|n| usize::from(*n) < REGS)
}

fn parse_match(token: &str, flow: &mut Flow) -> Result<(), String> {
    let (key, value) = token.split_once('=').unwrap_or((token, ""));
    match key {
        "ip" => proto(flow, ETH_IP, None),
        "arp" => proto(flow, ETH_ARP, None),
        "icmp" => proto(flow, ETH_IP, Some(1)),
        "tcp" => proto(flow, ETH_IP, Some(6)),
        "udp" => proto(flow, ETH_IP, Some(17)),
        "sctp" => proto(flow, ETH_IP, Some(132)),
        "ipv6" => proto(flow, ETH_IPV6, None),
        "icmp6" => proto(flow, ETH_IPV6, Some(58)),
        "tcp6" => proto(flow, ETH_IPV6, Some(6)),
        "udp6" => proto(flow, ETH_IPV6, Some(17)),
        "rarp" => proto(flow, 0x8035, None),
        "cookie" => flow.cookie = masked(value, num, u64::MAX)?.0,
        "table" => flow.table = num(value)? as u8,
        "priority" => flow.priority = num(value)? as u16,
        // Counters and timers change nothing about where a packet goes.
        "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" | "idle_timeout" | "hard_timeout"
        | "importance" | "send_flow_rem" | "check_overlap" | "reset_counts" | "no_packet_counts"
        | "no_byte_counts" => {}
        "in_port" => cond(flow, Field::InPort, (port_number(value)?.into(), u64::MAX)),
        "dl_src" | "eth_src" => cond(flow, Field::EthSrc, masked(value, mac, 0xffff_ffff_ffff)?),
        "dl_dst" | "eth_dst" => cond(flow, Field::EthDst, masked(value, mac, 0xffff_ffff_ffff)?),
        "dl_type" | "eth_type" => cond(flow, Field::EthType, (num(value)?, 0xffff)),
        "vlan_tci" => cond(flow, Field::VlanTci, masked(value, num, 0xffff)?),
        "dl_vlan" => cond(flow, Field::VlanTci, (0x1000 | num(value)?, 0x1fff)),
        "nw_src" | "ip_src" => cond(flow, Field::IpSrc, ip_masked(value)?),
        "nw_dst" | "ip_dst" => cond(flow, Field::IpDst, ip_masked(value)?),
        "nw_proto" | "ip_proto" => cond(flow, Field::IpProto, (num(value)?, 0xff)),
        "arp_op" => cond(flow, Field::ArpOp, (num(value)?, 0xffff)),
        "arp_spa" => cond(flow, Field::ArpSpa, ip_masked(value)?),
        "arp_tpa" => cond(flow, Field::ArpTpa, ip_masked(value)?),
        "arp_sha" => cond(flow, Field::ArpSha, masked(value, mac, 0xffff_ffff_ffff)?),
        "arp_tha" => cond(flow, Field::ArpTha, masked(value, mac, 0xffff_ffff_ffff)?),
        "tp_dst" | "tcp_dst" | "udp_dst" => cond(flow, Field::TpDst, (num(value)?, 0xffff)),
        "metadata" => cond(flow, Field::Metadata, masked(value, num, u64::MAX)?),
        // Probes are whole, unfragmented packets.
        "nw_frag" if value == "no" => {}
        k => match reg(k) {
            Some(r) => cond(flow, Field::Reg(r), masked(value, num, 0xffff_ffff)?),
            None => return Err(format!("match field {token:?} is not interpreted")),
        },
    }
    Ok(())
}

fn port_number(s: &str) -> Result<u32, String> {
    match s {
        "LOCAL" => Ok(LOCAL_PORT),
        _ => num(s).map(|n| n as u32),
    }
}

/// The bridge's own internal interface.
pub const LOCAL_PORT: u32 = 0xfffe;

/// NXM field names in move/load actions and set_field targets.
fn field_name(name: &str) -> Option<Field> {
    let name = name.trim_end_matches("[]");
    Some(match name {
        "NXM_OF_ETH_SRC" | "eth_src" | "dl_src" => Field::EthSrc,
        "NXM_OF_ETH_DST" | "eth_dst" | "dl_dst" => Field::EthDst,
        "NXM_OF_IP_SRC" | "ip_src" | "nw_src" => Field::IpSrc,
        "NXM_OF_IP_DST" | "ip_dst" | "nw_dst" => Field::IpDst,
        "NXM_OF_ARP_OP" | "arp_op" => Field::ArpOp,
        "NXM_OF_ARP_SPA" | "arp_spa" => Field::ArpSpa,
        "NXM_OF_ARP_TPA" | "arp_tpa" => Field::ArpTpa,
        "NXM_NX_ARP_SHA" | "arp_sha" => Field::ArpSha,
        "NXM_NX_ARP_THA" | "arp_tha" => Field::ArpTha,
        "NXM_OF_IN_PORT" | "in_port" => Field::InPort,
        "metadata" | "OXM_OF_METADATA" => Field::Metadata,
        n => {
            let r = n
                .strip_prefix("NXM_NX_REG")
                .and_then(|r| r.parse::<u8>().ok())
                .or_else(|| reg(n))?;
            if usize::from(r) >= REGS {
                return None;
            }
            Field::Reg(r)
        }
    })
}

/// A value for `field`: a MAC, an IPv4 address or a number.
fn field_value(field: Field, s: &str) -> Result<u64, String> {
    match field {
        Field::EthSrc | Field::EthDst | Field::ArpSha | Field::ArpTha => mac(s),
        Field::IpSrc | Field::IpDst | Field::ArpSpa | Field::ArpTpa if s.contains('.') => ip(s),
        _ => num(s),
    }
}

fn parse_act(act: &str) -> Result<Act, String> {
    let unknown = || Err(format!("action {act:?} is not interpreted"));
    let (name, arg) = act.split_once(':').unwrap_or((act, ""));
    Ok(match name {
        "drop" => Act::Drop,
        "IN_PORT" | "in_port" => Act::InPort,
        "NORMAL" | "FLOOD" | "ALL" => Act::Flood,
        "LOCAL" => Act::Output(LOCAL_PORT),
        "CONTROLLER" => Act::Controller,
        "output" => match arg.strip_prefix("NXM_NX_REG").and_then(|r| r.strip_suffix("[]")) {
            Some(r) => Act::OutputReg(r.parse().map_err(|_| format!("bad register in {act:?}"))?),
            None if arg == "IN_PORT" => Act::InPort,
            None if matches!(arg, "NORMAL" | "FLOOD" | "ALL") => Act::Flood,
            None => Act::Output(port_number(arg)?),
        },
        "goto_table" => Act::Resubmit {
            port: None,
            table: num(arg)? as u8,
        },
        "set_field" => {
            let (value, target) = arg.split_once("->").ok_or_else(|| format!("bad {act:?}"))?;
            let Some(field) = field_name(target) else {
                return unknown();
            };
            Act::Set(field, field_value(field, value)?)
        }
        "load" => {
            let (value, target) = arg.split_once("->").ok_or_else(|| format!("bad {act:?}"))?;
            match field_name(target) {
                Some(field) if target.ends_with("[]") => Act::Set(field, num(value)?),
                _ => return unknown(),
            }
        }
        "move" => {
            let (from, to) = arg.split_once("->").ok_or_else(|| format!("bad {act:?}"))?;
            match (field_name(from), field_name(to)) {
                (Some(a), Some(b)) if from.ends_with("[]") && to.ends_with("[]") => Act::Move(a, b),
                _ => return unknown(),
            }
        }
        "mod_dl_src" => Act::Set(Field::EthSrc, mac(arg)?),
        "mod_dl_dst" => Act::Set(Field::EthDst, mac(arg)?),
        "mod_nw_src" => Act::Set(Field::IpSrc, ip(arg)?),
        "mod_nw_dst" => Act::Set(Field::IpDst, ip(arg)?),
        "push_vlan" => Act::PushVlan,
        "strip_vlan" | "pop_vlan" => Act::PopVlan,
        // Neither changes where a packet goes.
        "note" | "dec_ttl" | "mod_nw_ttl" | "set_queue" | "pop_queue" => Act::Nothing,
        _ => match act.strip_prefix("resubmit(").and_then(|r| r.strip_suffix(')')) {
            Some(inner) => {
                let (port, table) = inner.split_once(',').unwrap_or((inner, ""));
                let port = if port.is_empty() {
                    None
                } else {
                    Some(port_number(port)?)
                };
                let table = if table.is_empty() { 0 } else { num(table)? as u8 };
                Act::Resubmit { port, table }
            }
            None if act.starts_with("controller(") => Act::Controller,
            None => return unknown(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_dclab_installs_and_what_a_hand_adds() {
        let dump = " cookie=0xdc1ab, priority=300,vlan_tci=0x1000/0x1000 actions=drop
 cookie=0xdc1ab, table=10, priority=100,ip,reg0=0x1,nw_dst=10.0.0.2 actions=set_field:a6:ce:37:af:39:d3->eth_dst,set_field:100.64.0.2->ip_dst,goto_table:11
 cookie=0xdc1ab, table=20, priority=100,arp,reg0=0x1,arp_tpa=10.0.0.2,arp_op=1 actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:02:c4:3c:f0:57:dc->eth_src,set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],IN_PORT
 cookie=0xdc1ab, table=32, priority=50 actions=output:NXM_NX_REG3[]
 priority=500,in_port=2 actions=output:5,NORMAL
 priority=400,ipv6 actions=ct(commit)
 cookie=0xdc1ab, table=10, priority=100,ip,reg0=0x1,nw_dst=10.0.0.255 actions=output:3,set_field:aa:bb:cc:dd:ee:01->eth_dst,set_field:100.64.0.8->ip_dst,resubmit(,11)";
        let (flows, unknown) = parse_dump(dump);
        assert_eq!(flows.len(), 6);
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].why.contains("ct(commit)"), "{unknown:?}");
        assert_eq!(
            flows[0].conds,
            [Cond {
                field: Field::VlanTci,
                value: 0x1000,
                mask: 0x1000
            }]
        );
        assert_eq!(
            (flows[1].table, flows[1].priority, flows[1].cookie),
            (10, 100, 0xdc1ab)
        );
        assert_eq!(flows[1].acts[1], Act::Set(Field::IpDst, 0x6440_0002));
        assert_eq!(
            flows[1].acts[2],
            Act::Resubmit {
                port: None,
                table: 11
            }
        );
        assert_eq!(flows[2].acts.last(), Some(&Act::InPort));
        assert_eq!(flows[2].acts[0], Act::Move(Field::EthSrc, Field::EthDst));
        assert_eq!(flows[3].acts, [Act::OutputReg(3)]);
        assert_eq!(flows[4].cookie, 0, "hand-added");
        assert_eq!(flows[4].acts, [Act::Output(5), Act::Flood]);
        assert_eq!(
            flows[5].acts[3],
            Act::Resubmit {
                port: None,
                table: 11
            }
        );
        let masked = parse_flow("priority=90,ip,in_port=1,nw_src=10.0.0.0/24 actions=drop").unwrap();
        assert!(masked.conds.contains(&Cond {
            field: Field::IpSrc,
            value: 0x0a00_0000,
            mask: 0xffff_ff00
        }));
    }
}
