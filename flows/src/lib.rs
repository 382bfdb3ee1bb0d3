//! The coordinator's symbolic flows as an ovs-ofctl flow file for one
//! bridge: `${uplink}` and `${port:NAME}` become OvS port numbers. Flows
//! that need a port not attached there are left out; an output to such a
//! port is dropped from an action list that has other work to do. The
//! agent renders what it installs with this; ctl renders compiled flows
//! for simulated hosts the same way.

use std::collections::{BTreeMap, BTreeSet};

/// A flow in the coordinator's symbolic form.
pub trait Symbolic {
    fn table(&self) -> u32;
    fn priority(&self) -> u32;
    fn matches(&self) -> &str;
    fn actions(&self) -> &str;
}

impl Symbolic for dclab_proto::v1::Flow {
    fn table(&self) -> u32 {
        self.table
    }
    fn priority(&self) -> u32 {
        self.priority
    }
    fn matches(&self) -> &str {
        &self.r#match
    }
    fn actions(&self) -> &str {
        &self.actions
    }
}

/// Marks every flow dclab installs, so its flows are recognisable in dumps.
pub const COOKIE: &str = "0xdc1ab";

/// Port name → OvS port number, plus the uplink's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    pub uplink: Option<i64>,
    pub ports: BTreeMap<String, i64>,
}

impl PortMap {
    pub fn lookup(&self, token: &str) -> Option<i64> {
        if token == "uplink" {
            self.uplink
        } else {
            token
                .strip_prefix("port:")
                .and_then(|name| self.ports.get(name).copied())
        }
    }
}

/// A rendered flow file.
pub struct Rendered {
    pub text: String,
    pub flows: usize,
    /// Ports the flows name that have no OvS port here.
    pub missing: BTreeSet<String>,
}

/// The flow file text, one flow a line, in the order given.
pub fn render<'a, F: Symbolic + 'a>(flows: impl Iterator<Item = &'a F>, ports: &PortMap) -> Rendered {
    let mut out = Rendered {
        text: String::new(),
        flows: 0,
        missing: BTreeSet::new(),
    };
    for flow in flows {
        match render_flow(flow, ports) {
            Ok(line) => {
                out.text.push_str(&line);
                out.text.push('\n');
                out.flows += 1;
            }
            Err(port) => {
                out.missing.insert(port);
            }
        }
    }
    out
}

/// The flow line, or the first missing port that keeps it out.
fn render_flow(flow: &impl Symbolic, ports: &PortMap) -> Result<String, String> {
    let matches = substitute(flow.matches(), ports)?;
    let mut actions = Vec::new();
    for action in split_top_level(flow.actions()) {
        match substitute(action, ports) {
            Ok(a) => actions.push(a),
            Err(_) if action.starts_with("output:") => {}
            Err(port) => return Err(port),
        }
    }
    let actions = if actions.is_empty() {
        "drop".to_string()
    } else {
        actions.join(",")
    };
    let sep = if matches.is_empty() { "" } else { "," };
    Ok(format!(
        "table={},priority={},cookie={COOKIE}{sep}{matches},actions={actions}",
        flow.table(),
        flow.priority()
    ))
}

/// Replaces every `${token}`; Err names a port not here.
pub fn substitute(text: &str, ports: &PortMap) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let end = tail.find('}').ok_or_else(|| tail.to_string())?;
        let token = &tail[..end];
        out.push_str(&ports.lookup(token).ok_or_else(|| token.to_string())?.to_string());
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits an action list on commas outside parentheses and brackets
/// (`resubmit(,11)`, `move:NXM_NX_REG1[0..15]->...`); items are trimmed.
pub fn split_top_level(actions: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in actions.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(actions[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(actions[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(matches: &str, actions: &str) -> dclab_proto::v1::Flow {
        dclab_proto::v1::Flow {
            table: 10,
            priority: 100,
            r#match: matches.into(),
            actions: actions.into(),
        }
    }

    fn ports() -> PortMap {
        PortMap {
            uplink: Some(1),
            ports: BTreeMap::from([("vm1".to_string(), 5), ("vm-1".to_string(), 5)]),
        }
    }

    #[test]
    fn substitutes_ports_and_drops_what_is_missing() {
        let flows = [
            flow(
                "ip,in_port=${port:vm-1}",
                "set_field:${port:vm-1}->reg3,output:${uplink}",
            ),
            flow("ip,in_port=${port:gone}", "output:${uplink}"),
            flow(
                "ip",
                "output:${port:vm1},output:${port:gone},set_field:1.2.3.4->ip_dst,resubmit(,11)",
            ),
            flow("ip,nw_dst=10.0.0.9", "set_field:${port:gone}->reg3,goto_table:31"),
            flow("", "output:${port:gone}"),
        ];
        let out = render(flows.iter(), &ports());
        let lines: Vec<&str> = out.text.lines().collect();
        assert_eq!(out.flows, 3);
        assert_eq!(out.missing, BTreeSet::from(["port:gone".to_string()]));
        assert_eq!(
            lines[0],
            "table=10,priority=100,cookie=0xdc1ab,ip,in_port=5,actions=set_field:5->reg3,output:1"
        );
        assert_eq!(
            lines[1],
            "table=10,priority=100,cookie=0xdc1ab,ip,actions=output:5,set_field:1.2.3.4->ip_dst,resubmit(,11)"
        );
        assert_eq!(lines[2], "table=10,priority=100,cookie=0xdc1ab,actions=drop");
    }
}
