//! Reading `ovs-appctl ofproto/trace`: the tables a packet went through,
//! and from the datapath actions every copy that left the bridge with the
//! fields rewritten on its way.

use std::collections::BTreeMap;

use dclab_flows::split_top_level;
use dclab_proto::v1::{TraceOutput, TraceStep};

/// The tables visited, in order: lines `NN. MATCH, priority P, cookie C`
/// (or `NN. No match.`) followed by their actions, one a line, indented
/// deeper; resubmits nest.
pub fn steps(text: &str) -> Vec<TraceStep> {
    let mut steps: Vec<TraceStep> = Vec::new();
    let mut section = false;
    for line in text.lines() {
        if line.starts_with("bridge(") {
            section = true;
            continue;
        }
        if !section || line.starts_with("Final flow:") {
            if line.starts_with("Final flow:") {
                break;
            }
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim();
        if body.is_empty() || body.starts_with("---") {
            continue;
        }
        let entry = body
            .split_once(". ")
            .and_then(|(n, rest)| n.parse::<u32>().ok().map(|t| (t, rest)));
        match entry {
            Some((table, rest)) => steps.push(TraceStep {
                table,
                flow: rest.to_string(),
                actions: vec![],
                depth: (indent / 4) as u32,
            }),
            None => {
                if let Some(last) = steps.last_mut() {
                    last.actions.push(body.to_string());
                }
            }
        }
    }
    steps
}

/// The `Datapath actions:` line, without its label.
pub fn datapath_actions(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Datapath actions:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// `set(eth(src=A,dst=B))` → [(dl_src, A), (dl_dst, B)] in flow-field
/// names; masks (`/ff:...`) are dropped, since OvS only masks what it sets.
fn set_fields(item: &str) -> Option<Vec<(String, String)>> {
    let inner = item.strip_prefix("set(")?.strip_suffix(')')?;
    let (header, fields) = inner.split_once('(')?;
    let fields = fields.strip_suffix(')')?;
    let name = |key: &str| -> Option<&'static str> {
        Some(match (header, key) {
            ("eth", "src") => "dl_src",
            ("eth", "dst") => "dl_dst",
            ("ipv4", "src") => "nw_src",
            ("ipv4", "dst") => "nw_dst",
            ("ipv4", "ttl") => "nw_ttl",
            ("ipv4", "tos") => "nw_tos",
            ("arp", "sip") => "arp_spa",
            ("arp", "tip") => "arp_tpa",
            ("arp", "op") => "arp_op",
            ("arp", "sha") => "arp_sha",
            ("arp", "tha") => "arp_tha",
            ("tcp" | "udp", "src") => "tp_src",
            ("tcp" | "udp", "dst") => "tp_dst",
            _ => return None,
        })
    };
    Some(
        split_top_level(fields)
            .into_iter()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                let v = v.split('/').next().unwrap_or(v);
                Some((name(k)?.to_string(), v.to_string()))
            })
            .collect(),
    )
}

/// Every copy that left the bridge: each output (a datapath port number)
/// carries the fields set before it. `port_name` names a datapath port
/// ("uplink", the dclab port, or the interface).
pub fn outputs(actions: &str, port_name: impl Fn(u32) -> String) -> Vec<TraceOutput> {
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for item in split_top_level(actions) {
        if let Ok(odp) = item.parse::<u32>() {
            out.push(TraceOutput {
                port: port_name(odp),
                set: set.clone().into_iter().collect(),
            });
        } else if let Some(fields) = set_fields(item) {
            set.extend(fields);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by ovs-vswitchd 3.1 for a broadcast fanned out to two hosts.
    const BROADCAST: &str = "Flow: icmp,in_port=1,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=10.0.0.1,nw_dst=10.0.0.255,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,icmp_type=0,icmp_code=0

bridge(\"br0\")
-------------
 0. ip,in_port=1,dl_src=02:00:00:00:00:01,nw_src=10.0.0.1, priority 100, cookie 0xdc1ab
    set_field:0x5->reg0
    goto_table:10
10. ip,reg0=0x5,nw_dst=10.0.0.255, priority 100, cookie 0xdc1ab
    set_field:aa:bb:cc:dd:ee:01->eth_dst
    resubmit(,11)
    11. ip,reg2=0, priority 100, cookie 0xdc1ab
            move:NXM_NX_REG1[]->NXM_OF_IP_SRC[]
             -> NXM_OF_IP_SRC[] is now 100.64.0.2
            output:2
    set_field:aa:bb:cc:dd:ee:02->eth_dst
    resubmit(,11)
11. ip,reg2=0, priority 100, cookie 0xdc1ab
    output:2

Final flow: icmp,reg0=0x5
Megaflow: recirc_id=0,eth,icmp,in_port=1,nw_frag=no
Datapath actions: set(eth(src=11:22:33:44:55:66,dst=aa:bb:cc:dd:ee:01)),set(ipv4(src=100.64.0.2,dst=100.64.0.8)),3,set(eth(dst=aa:bb:cc:dd:ee:02)),set(ipv4(dst=100.64.0.7)),3
";

    #[test]
    fn reads_tables_and_every_copy_with_its_rewrites() {
        let steps = steps(BROADCAST);
        let tables: Vec<(u32, u32)> = steps.iter().map(|s| (s.table, s.depth)).collect();
        assert_eq!(tables, [(0, 0), (10, 0), (11, 1), (11, 0)]);
        assert_eq!(steps[0].actions, ["set_field:0x5->reg0", "goto_table:10"]);
        assert!(steps[1].flow.ends_with("priority 100, cookie 0xdc1ab"));
        let actions = datapath_actions(BROADCAST);
        let outs = outputs(&actions, |odp| {
            if odp == 3 {
                "uplink".into()
            } else {
                odp.to_string()
            }
        });
        assert_eq!(outs.len(), 2);
        assert!(outs.iter().all(|o| o.port == "uplink"));
        assert_eq!(outs[0].set["nw_dst"], "100.64.0.8");
        assert_eq!(outs[1].set["nw_dst"], "100.64.0.7");
        assert_eq!(outs[1].set["dl_dst"], "aa:bb:cc:dd:ee:02");
        assert_eq!(
            outs[1].set["dl_src"], "11:22:33:44:55:66",
            "earlier sets carry over"
        );
        assert!(outputs("drop", |_| String::new()).is_empty());
        let masked = outputs("set(ipv4(src=10.0.0.1/255.255.255.255)),4", |o| o.to_string());
        assert_eq!(masked[0].set["nw_src"], "10.0.0.1");
        assert_eq!(masked[0].port, "4");
    }
}
