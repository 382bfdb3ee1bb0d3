//! Units of placement: a node alone, or the members of switch networks
//! joined through shared nodes, with the host their pins and running
//! members agree on.

use std::collections::{BTreeMap, BTreeSet};

use dclab_proto::error::{invalid, precondition};
use dclab_proto::ApiError;

use super::{free_list, no_room, Demand, Together};

/// Where a unit must go, and which member says so.
#[derive(Debug)]
pub struct Anchor {
    pub host: String,
    pub node: String,
    /// A member already runs there (else: a member is pinned there).
    pub running: bool,
}

/// Nodes placed together: one node, or the members of switch networks
/// that share nodes.
#[derive(Debug)]
pub struct Unit<'a> {
    pub nodes: Vec<&'a Demand>,
    pub networks: BTreeSet<&'a str>,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub anchor: Option<Anchor>,
}

impl Unit<'_> {
    pub fn first(&self) -> &str {
        &self.nodes[0].node
    }

    /// "switch network a" or "switch networks a, b".
    pub fn networks_named(&self) -> String {
        let list = self.networks.iter().copied().collect::<Vec<_>>().join(", ");
        let s = if self.networks.len() == 1 { "" } else { "s" };
        format!("switch network{s} {list}")
    }

    pub fn fits(&self, (vcpus, memory): (u32, u64)) -> bool {
        self.vcpus <= vcpus && self.memory_mib <= memory
    }

    pub fn take(&self, room: &mut (u32, u64), host: &str, placed: &mut BTreeMap<String, String>) {
        room.0 -= self.vcpus;
        room.1 -= self.memory_mib;
        for d in &self.nodes {
            placed.insert(d.node.clone(), host.to_string());
        }
    }

    pub fn no_room(&self, free: &BTreeMap<&str, (u32, u64)>, pin: Option<&str>) -> ApiError {
        if let ([d], true) = (&self.nodes[..], self.networks.is_empty()) {
            return no_room(d, free, pin);
        }
        let names: Vec<&str> = self.nodes.iter().map(|d| d.node.as_str()).collect();
        let (who, need) = match names[..] {
            [one] => (format!("node {one}"), "needs"),
            _ => (format!("nodes {}", names.join(", ")), "need"),
        };
        let where_ = pin.map_or_else(
            || "no single host has that free".to_string(),
            |p| format!("host {p}, which the network is held to, has less free"),
        );
        ApiError::ResourceExhausted(format!(
            "{who} of {} {need} {} vCPUs and {} MiB on one host and {where_} (free: {})",
            self.networks_named(),
            self.vcpus,
            self.memory_mib,
            free_list(free, pin)
        ))
    }
}

/// The demands grouped into units (members of switch networks joined
/// through shared nodes), each with the one host it must go to, if any.
pub fn units<'a>(demands: &'a [Demand], together: &'a [Together]) -> Result<Vec<Unit<'a>>, ApiError> {
    let index: BTreeMap<&str, usize> = demands
        .iter()
        .enumerate()
        .map(|(i, d)| (d.node.as_str(), i))
        .collect();
    let mut root: Vec<usize> = (0..demands.len()).collect();
    fn find(root: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while root[r] != r {
            r = root[r];
        }
        root[i] = r;
        r
    }
    let members = |g: &'a Together| g.nodes.iter().filter_map(|n| index.get(n.as_str()).copied());
    for g in together {
        let mut it = members(g);
        if let Some(first) = it.next() {
            for other in it {
                let (a, b) = (find(&mut root, first), find(&mut root, other));
                root[b] = a;
            }
        }
    }
    let mut by_root: BTreeMap<usize, Unit> = BTreeMap::new();
    for (i, d) in demands.iter().enumerate() {
        let u = by_root.entry(find(&mut root, i)).or_insert_with(|| Unit {
            nodes: vec![],
            networks: BTreeSet::new(),
            vcpus: 0,
            memory_mib: 0,
            anchor: None,
        });
        u.nodes.push(d);
        u.vcpus += d.vcpus;
        u.memory_mib += d.memory_mib;
    }
    let mut running: BTreeMap<usize, Vec<(&str, &str)>> = BTreeMap::new();
    for g in together {
        let Some(first) = members(g).next() else { continue };
        let r = find(&mut root, first);
        by_root
            .get_mut(&r)
            .expect("every root has a unit")
            .networks
            .insert(&g.network);
        let placed = g.placed.iter().map(|(n, h)| (n.as_str(), h.as_str()));
        running.entry(r).or_default().extend(placed);
    }
    let mut units: Vec<Unit> = Vec::with_capacity(by_root.len());
    for (r, mut u) in by_root {
        u.anchor = anchor(&u, running.get(&r).map_or(&[][..], |v| v))?;
        units.push(u);
    }
    Ok(units)
}

/// The one host the unit's pins and running members agree on.
fn anchor(u: &Unit, running: &[(&str, &str)]) -> Result<Option<Anchor>, ApiError> {
    let pins = u.nodes.iter().filter_map(|d| {
        d.pin.as_ref().map(|h| Anchor {
            host: h.clone(),
            node: d.node.clone(),
            running: false,
        })
    });
    let runs = running.iter().map(|(n, h)| Anchor {
        host: h.to_string(),
        node: n.to_string(),
        running: true,
    });
    let all: Vec<Anchor> = runs.chain(pins).collect();
    let Some(first) = all.first() else {
        return Ok(None);
    };
    let Some(other) = all.iter().find(|a| a.host != first.host) else {
        return Ok(all.into_iter().next());
    };
    let how = |a: &Anchor| {
        let verb = if a.running { "runs on" } else { "is pinned to" };
        format!("{} {verb} {}", a.node, a.host)
    };
    let message = format!(
        "{} must be on one host, but node {} and node {}",
        u.networks_named(),
        how(first),
        how(other)
    );
    Err(if first.running || other.running {
        precondition(message)
    } else {
        invalid(message)
    })
}
