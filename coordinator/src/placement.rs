//! Placing lab nodes on hosts: pinned nodes where they are pinned, the rest
//! largest first onto the host with the most free memory that fits them
//! (spreading load), never past a host's free memory or CPUs. Nodes that
//! share a switch network (one host's hub) are placed as one unit.

use std::collections::BTreeMap;

use dclab_proto::error::not_found;
use dclab_proto::ApiError;
use units::{units, Unit};

#[cfg(test)]
mod tests;
mod units;

/// What a host has free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub host: String,
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// What a node needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    pub node: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub pin: Option<String>,
}

/// The members of one switch network: they must share a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Together {
    pub network: String,
    /// Members to place (names of demands).
    pub nodes: Vec<String>,
    /// Members already running, with their host: where the rest must go.
    pub placed: Vec<(String, String)>,
}

/// Node → host, or an error naming the node that does not fit and what
/// every host has free.
pub fn place(demands: &[Demand], hosts: &[Capacity]) -> Result<BTreeMap<String, String>, ApiError> {
    place_together(demands, hosts, &[])
}

/// As `place`, with the members of each `together` group on one host.
pub fn place_together(
    demands: &[Demand],
    hosts: &[Capacity],
    together: &[Together],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut free: BTreeMap<&str, (u32, u64)> = hosts
        .iter()
        .map(|c| (c.host.as_str(), (c.vcpus, c.memory_mib)))
        .collect();
    let units = units(demands, together)?;
    let (anchored, mut loose): (Vec<&Unit>, Vec<&Unit>) = units.iter().partition(|u| u.anchor.is_some());
    let mut placed = BTreeMap::new();
    for u in anchored {
        let anchor = u.anchor.as_ref().expect("partitioned on anchor");
        let host = anchor.host.as_str();
        let Some(room) = free.get_mut(host) else {
            let why = if anchor.running {
                format!(
                    "node {} of {} runs on host {host}, which offers no room for lab nodes now",
                    anchor.node,
                    u.networks_named()
                )
            } else {
                format!(
                    "node {} is pinned to host {host}, which is not registered",
                    anchor.node
                )
            };
            return Err(not_found(why));
        };
        if !u.fits(*room) {
            return Err(u.no_room(&free, Some(host)));
        }
        u.take(room, host, &mut placed);
    }
    loose.sort_by(|a, b| (b.memory_mib, b.vcpus, a.first()).cmp(&(a.memory_mib, a.vcpus, b.first())));
    for u in loose {
        let best = free
            .iter()
            .filter(|(_, room)| u.fits(**room))
            .max_by(|(ha, a), (hb, b)| (a.1, a.0, hb).cmp(&(b.1, b.0, ha)))
            .map(|(h, _)| h.to_string());
        let Some(host) = best else {
            return Err(u.no_room(&free, None));
        };
        u.take(
            free.get_mut(host.as_str()).expect("chosen from free"),
            &host,
            &mut placed,
        );
    }
    Ok(placed)
}

/// What each host (or only the pinned one) has free, for an error.
fn free_list(free: &BTreeMap<&str, (u32, u64)>, pin: Option<&str>) -> String {
    let hosts: Vec<String> = free
        .iter()
        .filter(|(h, _)| pin.is_none_or(|p| p == **h))
        .map(|(h, (c, m))| format!("{h}: {c} vCPUs, {m} MiB"))
        .collect();
    if hosts.is_empty() {
        "no hosts".to_string()
    } else {
        hosts.join("; ")
    }
}

fn no_room(d: &Demand, free: &BTreeMap<&str, (u32, u64)>, pin: Option<&str>) -> ApiError {
    let where_ = pin.map_or_else(
        || "on any host".to_string(),
        |p| format!("on its pinned host {p}"),
    );
    ApiError::ResourceExhausted(format!(
        "node {} needs {} vCPUs and {} MiB and does not fit {where_} (free: {})",
        d.node,
        d.vcpus,
        d.memory_mib,
        free_list(free, pin)
    ))
}
