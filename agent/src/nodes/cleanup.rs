//! `agent cleanup`: removes every node this agent has a dir for, through
//! its driver, then the dir. What `ctl local down` (and an operator
//! retiring a host) runs once the agent itself is stopped.

use dclab_proto::v1::DesiredNode;

use super::driver::{DriverConfig, Drivers, Leftovers};
use super::spec;

/// Removes every node under the lab dir; returns what was removed and
/// what could not be (each with why).
pub fn remove_all(config: DriverConfig) -> (Vec<String>, Vec<String>) {
    let layout = config.layout.clone();
    let drivers = Drivers::new(config);
    let (mut removed, mut failed) = (Vec::new(), Vec::new());
    let nodes = match layout.existing_nodes() {
        Ok(nodes) => nodes,
        Err(e) => return (removed, vec![format!("{e:#}")]),
    };
    for (lab, name) in nodes {
        let dir = layout.node_dir(&lab, &name);
        let node = spec::read(&dir.spec())
            .ok()
            .flatten()
            .map(DesiredNode::from)
            .unwrap_or_else(|| DesiredNode {
                lab: lab.clone(),
                name: name.clone(),
                ..DesiredNode::default()
            });
        let gone = drivers
            .for_node(&node)
            .and_then(|driver| driver.remove(&node))
            .map_err(|e| e.to_string())
            .and_then(|left| {
                std::fs::remove_dir_all(&dir.path)
                    .map(|()| left)
                    .map_err(|e| format!("{}: {e}", dir.path.display()))
            });
        match gone {
            Ok(Leftovers(killed)) => {
                let note = match killed {
                    0 => String::new(),
                    n => format!(" ({n} leftover processes killed after libvirt's destroy)"),
                };
                removed.push(format!("node {name} of lab {lab}{note}"));
                layout.remove_lab_if_empty(&lab);
            }
            Err(e) => failed.push(format!("node {name} of lab {lab}: {e}")),
        }
    }
    (removed, failed)
}
