//! Placing lab nodes on hosts: pinned nodes where they are pinned, the rest
//! largest first onto the host with the most free memory that fits them
//! (spreading load), never past a host's free memory or CPUs.

use std::collections::BTreeMap;

use dclab_proto::error::not_found;
use dclab_proto::ApiError;

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

/// Node → host, or an error naming the node that does not fit and what
/// every host has free.
pub fn place(demands: &[Demand], hosts: &[Capacity]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut free: BTreeMap<&str, (u32, u64)> = hosts
        .iter()
        .map(|c| (c.host.as_str(), (c.vcpus, c.memory_mib)))
        .collect();
    let mut placed = BTreeMap::new();
    let (pinned, mut loose): (Vec<&Demand>, Vec<&Demand>) = demands.iter().partition(|d| d.pin.is_some());
    for d in pinned {
        let host = d.pin.as_deref().expect("partitioned on pin");
        let Some(room) = free.get_mut(host) else {
            return Err(not_found(format!(
                "node {} is pinned to host {host}, which is not registered",
                d.node
            )));
        };
        if !fits(d, *room) {
            return Err(no_room(d, &free, Some(host)));
        }
        take(room, d);
        placed.insert(d.node.clone(), host.to_string());
    }
    loose.sort_by(|a, b| (b.memory_mib, b.vcpus, &a.node).cmp(&(a.memory_mib, a.vcpus, &b.node)));
    for d in loose {
        let best = free
            .iter()
            .filter(|(_, room)| fits(d, **room))
            .max_by(|(ha, a), (hb, b)| (a.1, a.0, hb).cmp(&(b.1, b.0, ha)))
            .map(|(h, _)| h.to_string());
        let Some(host) = best else {
            return Err(no_room(d, &free, None));
        };
        take(free.get_mut(host.as_str()).expect("chosen from free"), d);
        placed.insert(d.node.clone(), host);
    }
    Ok(placed)
}

fn fits(d: &Demand, (vcpus, memory): (u32, u64)) -> bool {
    d.vcpus <= vcpus && d.memory_mib <= memory
}

fn take(room: &mut (u32, u64), d: &Demand) {
    room.0 -= d.vcpus;
    room.1 -= d.memory_mib;
}

fn no_room(d: &Demand, free: &BTreeMap<&str, (u32, u64)>, pin: Option<&str>) -> ApiError {
    let hosts: Vec<String> = free
        .iter()
        .filter(|(h, _)| pin.is_none_or(|p| p == **h))
        .map(|(h, (c, m))| format!("{h}: {c} vCPUs, {m} MiB"))
        .collect();
    let where_ = pin.map_or_else(
        || "on any host".to_string(),
        |p| format!("on its pinned host {p}"),
    );
    ApiError::ResourceExhausted(format!(
        "node {} needs {} vCPUs and {} MiB and does not fit {where_} (free: {})",
        d.node,
        d.vcpus,
        d.memory_mib,
        if hosts.is_empty() {
            "no hosts".to_string()
        } else {
            hosts.join("; ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str, vcpus: u32, memory_mib: u64) -> Capacity {
        Capacity {
            host: h.into(),
            vcpus,
            memory_mib,
        }
    }

    fn node(n: &str, vcpus: u32, memory_mib: u64, pin: Option<&str>) -> Demand {
        Demand {
            node: n.into(),
            vcpus,
            memory_mib,
            pin: pin.map(String::from),
        }
    }

    #[test]
    fn pins_are_kept_and_the_rest_spread_largest_first() {
        let hosts = [host("h1", 4, 4096), host("h2", 4, 4096)];
        let nodes = [
            node("controller", 2, 2048, None),
            node("compute1", 1, 1024, None),
            node("compute2", 1, 1024, None),
            node("cache", 1, 512, Some("h1")),
        ];
        let placed = place(&nodes, &hosts).unwrap();
        assert_eq!(placed["cache"], "h1");
        // h2 has the most free memory once cache is on h1.
        assert_eq!(placed["controller"], "h2");
        assert_eq!(placed["compute1"], "h1");
        assert_eq!(placed["compute2"], "h1");
        assert_eq!(place(&nodes, &hosts).unwrap(), placed, "deterministic");
    }

    #[test]
    fn refusals_name_the_node_and_the_free_capacity() {
        let hosts = [host("h1", 2, 1024), host("h2", 1, 4096)];
        let err = place(&[node("big", 2, 2048, None)], &hosts).unwrap_err();
        assert!(matches!(err, ApiError::ResourceExhausted(_)));
        assert_eq!(
            err.to_string(),
            "node big needs 2 vCPUs and 2048 MiB and does not fit on any host (free: h1: 2 vCPUs, 1024 MiB; h2: 1 vCPUs, 4096 MiB)"
        );
        let err = place(&[node("a", 1, 2048, Some("h1"))], &hosts).unwrap_err();
        assert!(
            err.to_string()
                .contains("on its pinned host h1 (free: h1: 2 vCPUs, 1024 MiB)"),
            "{err}"
        );
        let err = place(&[node("a", 1, 64, Some("h9"))], &hosts).unwrap_err();
        assert_eq!(
            err,
            not_found("node a is pinned to host h9, which is not registered")
        );
    }

    #[test]
    fn capacity_is_never_overcommitted() {
        let hosts = [host("h1", 2, 1000), host("h2", 2, 1000)];
        let nodes: Vec<Demand> = (0..4).map(|i| node(&format!("n{i}"), 1, 500, None)).collect();
        let placed = place(&nodes, &hosts).unwrap();
        assert_eq!(placed.values().filter(|h| *h == "h1").count(), 2);
        let fifth = [nodes.clone(), vec![node("n4", 1, 1, None)]].concat();
        assert!(place(&fifth, &hosts).is_err(), "no CPU left for a fifth node");
    }
}
