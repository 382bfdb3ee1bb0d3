//! Port blocks: a node's traffic to and from one TCP or UDP port dropped,
//! both directions, by flows above the pipeline (as a partition is), so a
//! service (RabbitMQ, MySQL) is cut off while its process keeps running.
//! On each of the node's ports: what it sends to or from the port where it
//! enters (egress), and what is delivered to it to or from the port where
//! it leaves (delivery). Healed by taking the flows out again.

use std::sync::Arc;

use dclab_proto::v1;
use serde::{Deserialize, Serialize};

use super::flows::{install, uninstall};
use super::target::unexpected;
use super::{ActsOn, Applied, FaultKind, Heal, On};
use crate::desired::FlowKey;
use crate::nodes::driver::{NodeError, NodeResult};
use crate::nodes::Context;

/// The pipeline's tables the block sits on (the coordinator's
/// `compile::{T_EGRESS, T_DELIVER}`), above their own flows like a
/// partition's (`compile::PARTITION_PRIORITY`).
const T_EGRESS: u32 = 10;
const T_DELIVER: u32 = 32;
const PRIORITY: u32 = 200;

/// A port blocked on a node by the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub lab: String,
    pub node: String,
    pub protocol: String,
    pub port: u16,
}

impl Held {
    /// The flows' key in the flow table: one per node, since one lease may
    /// block the port on several nodes of this host.
    fn key(&self, lease: &str) -> String {
        format!("{lease} port-block {}/{}", self.lab, self.node)
    }
}

/// The protocol and port, checked.
fn checked(f: &v1::PortBlockFault) -> NodeResult<(&'static str, u16)> {
    let protocol = match f.protocol.as_str() {
        "tcp" => "tcp",
        "udp" => "udp",
        other => {
            return Err(NodeError::Invalid(format!(
                "port-block protocol {other:?} is not \"tcp\" or \"udp\""
            )))
        }
    };
    match u16::try_from(f.port) {
        Ok(port) if port > 0 => Ok((protocol, port)),
        _ => Err(NodeError::Invalid(format!(
            "port-block port {} is not 1 to 65535",
            f.port
        ))),
    }
}

/// The drop flows for `protocol`/`port` on each of the node's ports.
fn flows(node: &v1::DesiredNode, protocol: &str, port: u16) -> Vec<FlowKey> {
    let mut out = Vec::new();
    for nic in &node.nics {
        for (table, at) in [(T_EGRESS, "in_port"), (T_DELIVER, "reg3")] {
            for field in ["tp_dst", "tp_src"] {
                out.push(FlowKey {
                    table,
                    priority: PRIORITY,
                    matches: format!("{protocol},{at}=${{port:{}}},{field}={port}", nic.port),
                    actions: "drop".into(),
                });
            }
        }
    }
    out
}

impl FaultKind for v1::PortBlockFault {
    const NAME: &'static str = "port_block";
    const ACTS_ON: ActsOn = ActsOn::Nodes;

    async fn apply(self, ctx: Arc<Context>, on: On, lease: v1::Lease) -> NodeResult<()> {
        let On::Node(node) = on else {
            return Err(unexpected(Self::NAME));
        };
        let (protocol, port) = checked(&self)?;
        let held = Held {
            lab: node.lab.clone(),
            node: node.name.clone(),
            protocol: protocol.into(),
            port,
        };
        let key = held.key(&lease.id);
        ctx.leases.add_fault(&lease, Applied::PortBlock(held))?;
        install(&ctx, &key, flows(&node, protocol, port)).await
    }
}

impl Heal for Held {
    const KIND: &'static str = "port_block";

    fn node(&self) -> Option<(&str, &str)> {
        Some((&self.lab, &self.node))
    }

    async fn heal(&self, ctx: &Arc<Context>, lease: &str) -> NodeResult<()> {
        uninstall(ctx, &self.key(lease)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> v1::DesiredNode {
        v1::DesiredNode {
            lab: "lab".into(),
            name: "db".into(),
            nics: vec![v1::NodeNic {
                port: "lab-db-0".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_block_drops_the_port_both_ways_where_the_node_sends_and_receives() {
        let matches: Vec<(u32, String)> = flows(&node(), "tcp", 3306)
            .into_iter()
            .map(|f| (f.table, f.matches))
            .collect();
        assert_eq!(
            matches,
            [
                (10, "tcp,in_port=${port:lab-db-0},tp_dst=3306".to_string()),
                (10, "tcp,in_port=${port:lab-db-0},tp_src=3306".to_string()),
                (32, "tcp,reg3=${port:lab-db-0},tp_dst=3306".to_string()),
                (32, "tcp,reg3=${port:lab-db-0},tp_src=3306".to_string()),
            ]
        );
    }

    #[test]
    fn a_block_of_no_port_or_another_protocol_is_refused() {
        let bad = |protocol: &str, port: u32| {
            checked(&v1::PortBlockFault {
                protocol: protocol.into(),
                port,
            })
            .unwrap_err()
            .to_string()
        };
        assert!(bad("sctp", 80).contains("\"sctp\" is not \"tcp\" or \"udp\""));
        assert!(bad("tcp", 0).contains("not 1 to 65535"));
        assert!(bad("udp", 70_000).contains("not 1 to 65535"));
        assert_eq!(
            checked(&v1::PortBlockFault {
                protocol: "udp".into(),
                port: 53
            })
            .unwrap(),
            ("udp", 53)
        );
    }
}
