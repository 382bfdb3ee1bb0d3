//! Choosing each target's nodes from the lab, in the order the file
//! defines the targets: filters by name, role and host, minus the nodes of
//! the targets it excludes, then one, all or N at random (seeded, so a run
//! can be repeated).

use std::collections::{BTreeMap, BTreeSet};

use dclab_proto::experiment::{Pick, Target};

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

fn describe(lab: &Lab) -> String {
    lab.nodes
        .iter()
        .map(|n| format!("{} (role {}, on {})", n.spec.name, n.spec.role, n.host))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn resolve(lab: &Lab, targets: &[Target], seed: u64) -> Result<Chosen, String> {
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
            return Err(format!(
                "target {} matches no node of lab {} (nodes: {})",
                t.name,
                lab.name,
                describe(lab)
            ));
        }
        let picked: Vec<Node> = match t.pick {
            Pick::One => vec![candidates[0].clone()],
            Pick::All => candidates.into_iter().cloned().collect(),
            Pick::Random(n) => {
                let n = n as usize;
                if candidates.len() < n {
                    return Err(format!(
                        "target {} wants random:{n} but only {} nodes of lab {} match",
                        t.name,
                        candidates.len(),
                        lab.name
                    ));
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
pub fn nic<'a>(node: &'a Node, network: Option<&str>) -> Result<&'a crate::model::lab::Nic, String> {
    match network {
        Some(net) => node
            .nics
            .iter()
            .find(|n| n.network == net)
            .ok_or_else(|| format!("node {} has no interface on network {net}", node.spec.name)),
        None => node
            .nics
            .first()
            .ok_or_else(|| format!("node {} has no network interface", node.spec.name)),
    }
}

/// The network `from` reaches `to` on: the one given (both must be on it)
/// or the first of `to`'s networks `from` is on too.
pub fn shared_network(from: &Node, to: &Node, network: Option<&str>) -> Result<String, String> {
    if let Some(net) = network {
        nic(from, Some(net))?;
        nic(to, Some(net))?;
        return Ok(net.to_string());
    }
    to.nics
        .iter()
        .map(|n| n.network.clone())
        .find(|net| from.nics.iter().any(|f| &f.network == net))
        .ok_or_else(|| format!("nodes {} and {} share no network", from.spec.name, to.spec.name))
}
