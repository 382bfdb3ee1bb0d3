//! What a run's steps and checks see: the store, the lab and the nodes
//! each target chose, and how to reach a node's address.

use std::time::Duration;

use dclab_spec::experiment::Reach;

use super::act::ActError;
use super::targets::{nic, shared_network, Chosen, TargetError};
use super::Experiments;
use crate::model::lab::Node;

pub struct Env<'a> {
    pub experiments: &'a Experiments,
    pub lab: &'a str,
    pub chosen: &'a Chosen,
    /// Unique per run: names the files a run leaves in nodes.
    pub tag: &'a str,
}

impl Env<'_> {
    pub fn nodes(&self, target: &str) -> &[Node] {
        self.chosen.get(target).map_or(&[], Vec::as_slice)
    }

    pub fn first(&self, target: &str) -> Result<&Node, TargetError> {
        self.nodes(target).first().ok_or_else(|| TargetError::NoNode {
            target: target.to_string(),
        })
    }

    /// `to`'s address on the network `from` reaches it on.
    pub fn address(&self, from: &Node, to: &Node, network: Option<&str>) -> Result<String, TargetError> {
        let net = shared_network(from, to, network)?;
        Ok(nic(to, Some(&net))?.ip.clone())
    }

    /// `command` with `${TARGET.ip}`, `${TARGET.node}` and `${TARGET.host}`
    /// filled in from each target's first node.
    pub fn fill(&self, command: &str) -> String {
        let mut out = command.to_string();
        for (name, nodes) in self.chosen {
            let Some(n) = nodes.first() else { continue };
            let ip = n.nics.first().map_or("", |c| c.ip.as_str());
            out = out
                .replace(&format!("${{{name}.ip}}"), ip)
                .replace(&format!("${{{name}.node}}"), &n.spec.name)
                .replace(&format!("${{{name}.host}}"), &n.host);
        }
        out
    }

    pub async fn exec(
        &self,
        node: &Node,
        command: &str,
        timeout: Duration,
    ) -> Result<(i32, String), ActError> {
        super::act::exec(self.experiments, self.lab, node, command, timeout).await
    }
}

/// One probe of `kind` to `ip`, as a shell condition in the source node.
pub fn probe_command(kind: Reach, ip: &str) -> String {
    match kind {
        Reach::Ping => format!("ping -c 1 -W 1 {ip} >/dev/null 2>&1"),
        Reach::Tcp(port) => format!("nc -w 1 {ip} {port} </dev/null >/dev/null 2>&1"),
    }
}
