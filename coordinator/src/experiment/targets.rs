//! Choosing each target's nodes from the lab, in the order the file
//! defines the targets: filters by name, role and host, minus the nodes of
//! the targets it excludes, then one, all or N at random (seeded, so a run
//! can be repeated).

use std::collections::{BTreeMap, BTreeSet};

use dclab_spec::experiment::{Pick, Target};

use crate::model::lab::{Lab, Node};

/// The nodes of every target, by target name.
pub type Chosen = BTreeMap<String, Vec<Node>>;

/// SplitMix64: small, and the same seed picks the same nodes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// Why a run's targets cannot be chosen, or a chosen node not reached.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {target} matches no node of lab {lab} (nodes: {nodes})")]
    NoMatch {
        target: String,
        lab: String,
        nodes: String,
    },
    #[error("target {target} wants random:{wanted} but only {matched} nodes of lab {lab} match")]
    TooFew {
        target: String,
        wanted: usize,
        matched: usize,
        lab: String,
    },
    #[error("target {target} chose no node")]
    NoNode { target: String },
    #[error("node {node} has no interface on network {network}")]
    NoInterfaceOn { node: String, network: String },
    #[error("node {node} has no network interface")]
    NoInterface { node: String },
    #[error("nodes {from} and {to} share no network")]
    NoSharedNetwork { from: String, to: String },
}

fn describe(lab: &Lab) -> String {
    lab.nodes
        .iter()
        .map(|n| format!("{} (role {}, on {})", n.spec.name, n.spec.role, n.host))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn resolve(lab: &Lab, targets: &[Target], seed: u64) -> Result<Chosen, TargetError> {
    let mut rng = Rng::new(seed);
    let mut chosen = Chosen::new();
    for t in targets {
        let taken: BTreeSet<&str> = t
            .exclude
            .iter()
            .flat_map(|e| chosen.get(e).into_iter().flatten().map(|n| n.spec.name.as_str()))
            .collect();
        let mut candidates: Vec<&Node> = lab
            .nodes
            .iter()
            .filter(|n| t.node.as_ref().is_none_or(|x| *x == n.spec.name))
            .filter(|n| t.role.as_ref().is_none_or(|x| *x == n.spec.role))
            .filter(|n| t.host.as_ref().is_none_or(|x| *x == n.host))
            .filter(|n| !taken.contains(n.spec.name.as_str()))
            .collect();
        if candidates.is_empty() {
            return Err(TargetError::NoMatch {
                target: t.name.clone(),
                lab: lab.name.clone(),
                nodes: describe(lab),
            });
        }
        let picked: Vec<Node> = match t.pick {
            Pick::One => vec![candidates[0].clone()],
            Pick::All => candidates.into_iter().cloned().collect(),
            Pick::Random(n) => {
                let n = n as usize;
                if candidates.len() < n {
                    return Err(TargetError::TooFew {
                        target: t.name.clone(),
                        wanted: n,
                        matched: candidates.len(),
                        lab: lab.name.clone(),
                    });
                }
                (0..n)
                    .map(|_| candidates.remove(rng.below(candidates.len())).clone())
                    .collect()
            }
        };
        chosen.insert(t.name.clone(), picked);
    }
    Ok(chosen)
}

/// The nic of `node` on `network`, or on its first network.
pub fn nic<'a>(node: &'a Node, network: Option<&str>) -> Result<&'a crate::model::lab::Nic, TargetError> {
    match network {
        Some(net) => node
            .nics
            .iter()
            .find(|n| n.network == net)
            .ok_or_else(|| TargetError::NoInterfaceOn {
                node: node.spec.name.clone(),
                network: net.to_string(),
            }),
        None => node.nics.first().ok_or_else(|| TargetError::NoInterface {
            node: node.spec.name.clone(),
        }),
    }
}

/// The network `from` reaches `to` on: the one given (both must be on it)
/// or the first of `to`'s networks `from` is on too.
pub fn shared_network(from: &Node, to: &Node, network: Option<&str>) -> Result<String, TargetError> {
    if let Some(net) = network {
        nic(from, Some(net))?;
        nic(to, Some(net))?;
        return Ok(net.to_string());
    }
    to.nics
        .iter()
        .map(|n| n.network.clone())
        .find(|net| from.nics.iter().any(|f| &f.network == net))
        .ok_or_else(|| TargetError::NoSharedNetwork {
            from: from.spec.name.clone(),
            to: to.spec.name.clone(),
        })
}
