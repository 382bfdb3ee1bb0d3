//! Compiled rules per host, published on a watch channel each. A change
//! recompiles only the affected hosts, and a host whose flows came out the
//! same is not woken.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::compile::{compile_host, Flow};
use crate::model::Topology;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRules {
    pub version: u64,
    pub flows: Arc<Vec<Flow>>,
}

/// What an agent last told us.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentStatus {
    pub applied_version: u64,
    pub flow_count: u32,
    pub missing_ports: u32,
    pub watchers: u32,
}

#[derive(Default)]
pub struct RuleHub {
    channels: Mutex<HashMap<String, watch::Sender<HostRules>>>,
    status: Mutex<HashMap<String, AgentStatus>>,
}

impl RuleHub {
    /// Recompiles `hosts` and publishes those whose flows changed.
    pub fn publish(&self, topo: &Topology, hosts: &BTreeSet<String>, version: u64) {
        let mut channels = self.channels.lock().unwrap();
        for host in hosts {
            let flows = compile_host(topo, host);
            let sender = channels
                .entry(host.clone())
                .or_insert_with(|| watch::channel(empty()).0);
            sender.send_if_modified(|current| {
                if *current.flows == flows {
                    return false;
                }
                *current = HostRules {
                    version,
                    flows: Arc::new(flows),
                };
                true
            });
        }
    }

    pub fn subscribe(&self, host: &str) -> watch::Receiver<HostRules> {
        let mut channels = self.channels.lock().unwrap();
        channels
            .entry(host.to_string())
            .or_insert_with(|| watch::channel(empty()).0)
            .subscribe()
    }

    pub fn current(&self, host: &str) -> HostRules {
        self.subscribe(host).borrow().clone()
    }

    pub fn status(&self, host: &str) -> AgentStatus {
        self.status.lock().unwrap().get(host).copied().unwrap_or_default()
    }

    pub fn ack(&self, host: &str, version: u64, flow_count: u32, missing_ports: u32) {
        let mut status = self.status.lock().unwrap();
        let entry = status.entry(host.to_string()).or_default();
        entry.applied_version = version;
        entry.flow_count = flow_count;
        entry.missing_ports = missing_ports;
    }

    /// Counts a watcher for as long as the returned guard lives.
    pub fn watching(self: &Arc<Self>, host: &str) -> WatchGuard {
        self.status
            .lock()
            .unwrap()
            .entry(host.to_string())
            .or_default()
            .watchers += 1;
        WatchGuard {
            hub: self.clone(),
            host: host.to_string(),
        }
    }
}

fn empty() -> HostRules {
    HostRules {
        version: 0,
        flows: Arc::new(Vec::new()),
    }
}

pub struct WatchGuard {
    hub: Arc<RuleHub>,
    host: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Some(s) = self.hub.status.lock().unwrap().get_mut(&self.host) {
            s.watchers = s.watchers.saturating_sub(1);
        }
    }
}

/// Flows in `new` but not `old`, and in `old` but not `new`. Both sorted.
pub fn diff<'a>(old: &'a [Flow], new: &'a [Flow]) -> (Vec<&'a Flow>, Vec<&'a Flow>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                removed.push(a);
                i += 1;
            }
            (_, Some(b)) => {
                added.push(b);
                j += 1;
            }
            (Some(a), None) => {
                removed.push(a);
                i += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    (added, removed)
}
