//! Compiled rules per host, published on a watch channel each. A change
//! recompiles only the parts of the hosts it touches, and a host whose
//! flows came out the same is not woken.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::time::Instant;
use tokio::sync::watch;

use crate::compile::{compile_part_with, parts_of_host, views, Flow, NetView, Part};
use crate::model::{NetId, Topology};

pub type Parts = BTreeMap<Part, Arc<Vec<Flow>>>;

#[derive(Debug, Clone)]
pub struct HostRules {
    pub version: u64,
    pub parts: Arc<Parts>,
}

impl HostRules {
    pub fn flow_count(&self) -> usize {
        self.parts.values().map(|p| p.len()).sum()
    }

    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.parts.values().flat_map(|p| p.iter())
    }

    /// All flows in one sorted list, as `ctl rules show` prints them.
    pub fn sorted(&self) -> Vec<Flow> {
        let mut flows: Vec<Flow> = self.flows().cloned().collect();
        flows.sort();
        flows
    }
}

/// What a change touched: parts to recompile and the hosts they live on.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Hosts whose rules may change.
    pub hosts: BTreeSet<String>,
    /// Hosts to recompile entirely.
    pub full: BTreeSet<String>,
    pub nets: BTreeSet<NetId>,
    pub ports: BTreeSet<String>,
}

impl Dirty {
    /// Every part of every host: the start of the coordinator.
    pub fn everything(topo: &Topology) -> Dirty {
        let hosts: BTreeSet<String> = topo.hosts.keys().cloned().collect();
        Dirty {
            full: hosts.clone(),
            hosts,
            ..Dirty::default()
        }
    }
}

/// What an agent last told us.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentStatus {
    pub applied_version: u64,
    pub flow_count: u32,
    pub missing_ports: u32,
    pub watchers: u32,
    pub acks: u64,
}

/// How long the last recompile took, for status and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileStats {
    pub hosts: usize,
    pub flows: usize,
    pub micros: u64,
}

#[derive(Default)]
pub struct RuleHub {
    channels: Mutex<HashMap<String, watch::Sender<HostRules>>>,
    status: Mutex<HashMap<String, AgentStatus>>,
    last_compile: Mutex<CompileStats>,
    /// Per host watched at the time: the version pushed and when.
    pushed: Mutex<HashMap<String, (u64, Instant)>>,
    pub timings: Timings,
    /// Cancelled at shutdown: every watch ends, and no new one starts.
    closing: tokio_util::sync::CancellationToken,
}

/// Compile and ack times, for the metrics endpoint.
pub struct Timings {
    pub compile: Histogram,
    pub ack_latency: Histogram,
}

impl Default for Timings {
    fn default() -> Timings {
        // 50 µs to about 3 s: one port is tens of µs, every host of a
        // large topology at start seconds.
        let buckets = || exponential_buckets(0.000_05, 2.0, 17);
        Timings {
            compile: Histogram::new(buckets()),
            ack_latency: Histogram::new(buckets()),
        }
    }
}

/// The host's parts after a change: unchanged parts are kept as they are
/// (same Arc), touched or new ones recompiled, vanished ones dropped.
fn recompile(
    topo: &Topology,
    host: &str,
    old: &Parts,
    dirty: &Dirty,
    nets: &HashMap<NetId, NetView>,
) -> (Parts, usize) {
    let full = dirty.full.contains(host);
    let mut parts = Parts::new();
    let mut compiled = 0;
    for part in parts_of_host(topo, host) {
        let touched = full
            || match &part {
                Part::Base => false,
                Part::Port(name) => dirty.ports.contains(name),
                Part::Net(id) => dirty.nets.contains(id),
            };
        let kept = old.get(&part).filter(|_| !touched).cloned();
        let flows = kept.unwrap_or_else(|| {
            let fresh = compile_part_with(topo, host, &part, nets);
            compiled += fresh.len();
            match old.get(&part) {
                Some(previous) if **previous == fresh => previous.clone(),
                _ => Arc::new(fresh),
            }
        });
        parts.insert(part, flows);
    }
    (parts, compiled)
}

/// Runs `recompile` for many hosts on every core: hosts are independent.
fn recompile_all(
    topo: &Topology,
    work: Vec<(String, Arc<Parts>)>,
    dirty: &Dirty,
) -> Vec<(String, Parts, usize)> {
    // Every network a recompile may touch, resolved once for all hosts.
    // A batch may delete a network together with its ports: skip it then.
    let touched: Vec<NetId> = if dirty.full.is_empty() {
        dirty
            .nets
            .iter()
            .copied()
            .filter(|id| topo.networks.contains_key(id))
            .collect()
    } else {
        topo.networks.keys().copied().collect()
    };
    let nets = views(topo, touched);
    let nets = &nets;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = |chunk: &[(String, Arc<Parts>)]| {
        chunk
            .iter()
            .map(|(host, old)| {
                let (parts, n) = recompile(topo, host, old, dirty, nets);
                (host.clone(), parts, n)
            })
            .collect::<Vec<_>>()
    };
    if work.len() < 64 || threads == 1 {
        return run(&work);
    }
    let size = work.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = work
            .chunks(size)
            .map(|chunk| scope.spawn(move || run(chunk)))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("compiler thread panicked"))
            .collect()
    })
}

impl RuleHub {
    /// Ends every rule watch (their streams finish), so a graceful
    /// shutdown does not wait on agents that never hang up. The rules stay
    /// as they are: an agent that reconnects meanwhile is refused, never
    /// handed an empty set (which would wipe its bridge).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Cancelled once the hub is closed.
    pub fn closing(&self) -> tokio_util::sync::CancellationToken {
        self.closing.clone()
    }

    pub fn last_compile(&self) -> CompileStats {
        *self.last_compile.lock()
    }

    /// Recompiles what `dirty` touched and publishes the hosts whose flows changed.
    pub fn publish(&self, topo: &Topology, dirty: &Dirty, version: u64) {
        let started = std::time::Instant::now();
        let work: Vec<(String, Arc<Parts>)> = {
            let channels = self.channels.lock();
            let current = |h: &String| {
                channels
                    .get(h)
                    .map(|c| c.borrow().parts.clone())
                    .unwrap_or_default()
            };
            dirty.hosts.iter().map(|h| (h.clone(), current(h))).collect()
        };
        let results = recompile_all(topo, work, dirty);
        self.timings.compile.observe(started.elapsed().as_secs_f64());
        *self.last_compile.lock() = CompileStats {
            hosts: results.len(),
            flows: results.iter().map(|r| r.2).sum(),
            micros: started.elapsed().as_micros() as u64,
        };
        let mut channels = self.channels.lock();
        let mut pushed = Vec::new();
        for (host, parts, _) in results {
            let sender = channels
                .entry(host.clone())
                .or_insert_with(|| watch::channel(empty()).0);
            let sent = sender.send_if_modified(|current| {
                let same = current.parts.len() == parts.len()
                    && current
                        .parts
                        .iter()
                        .zip(&parts)
                        .all(|((k1, a), (k2, b))| k1 == k2 && Arc::ptr_eq(a, b));
                if same {
                    return false;
                }
                *current = HostRules {
                    version,
                    parts: Arc::new(parts),
                };
                true
            });
            if sent {
                pushed.push(host);
            }
        }
        drop(channels);
        self.note_pushed(pushed, version);
    }

    /// Starts the ack clock of the watched hosts among `hosts`; a host with
    /// no agent connected would only measure how long it stayed away.
    fn note_pushed(&self, hosts: Vec<String>, version: u64) {
        let status = self.status.lock();
        let mut pushed = self.pushed.lock();
        let now = Instant::now();
        for host in hosts {
            if status.get(&host).is_some_and(|s| s.watchers > 0) {
                // A newer push before the ack keeps the older start: the
                // agent has been behind since then.
                pushed.entry(host).or_insert((version, now)).0 = version;
            }
        }
    }

    pub fn subscribe(&self, host: &str) -> watch::Receiver<HostRules> {
        let mut channels = self.channels.lock();
        channels
            .entry(host.to_string())
            .or_insert_with(|| watch::channel(empty()).0)
            .subscribe()
    }

    pub fn current(&self, host: &str) -> HostRules {
        self.subscribe(host).borrow().clone()
    }

    pub fn status(&self, host: &str) -> AgentStatus {
        self.status.lock().get(host).copied().unwrap_or_default()
    }

    pub fn ack(&self, host: &str, version: u64, flow_count: u32, missing_ports: u32) {
        let mut status = self.status.lock();
        let entry = status.entry(host.to_string()).or_default();
        entry.applied_version = version;
        entry.flow_count = flow_count;
        entry.missing_ports = missing_ports;
        entry.acks += 1;
        drop(status);
        let mut pushed = self.pushed.lock();
        if let Some((wanted, since)) = pushed.get(host).copied() {
            if version >= wanted {
                self.timings.ack_latency.observe(since.elapsed().as_secs_f64());
                pushed.remove(host);
            }
        }
    }

    /// Every host with a rule channel: registered ones and ones watched.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.channels.lock().keys().cloned().collect();
        hosts.sort();
        hosts
    }

    /// Counts a watcher for as long as the returned guard lives.
    pub fn watching(self: &Arc<Self>, host: &str) -> WatchGuard {
        self.status.lock().entry(host.to_string()).or_default().watchers += 1;
        WatchGuard {
            hub: self.clone(),
            host: host.to_string(),
        }
    }
}

fn empty() -> HostRules {
    HostRules {
        version: 0,
        parts: Arc::new(Parts::new()),
    }
}

pub struct WatchGuard {
    hub: Arc<RuleHub>,
    host: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Some(s) = self.hub.status.lock().get_mut(&self.host) {
            s.watchers = s.watchers.saturating_sub(1);
        }
    }
}

/// Flows added and removed from `old` to `new`; parts that are the same
/// Arc are skipped without looking inside.
pub fn diff_rules<'a>(old: &'a HostRules, new: &'a HostRules) -> (Vec<&'a Flow>, Vec<&'a Flow>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let keys: BTreeSet<&Part> = old.parts.keys().chain(new.parts.keys()).collect();
    for key in keys {
        match (old.parts.get(key), new.parts.get(key)) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => {}
            (Some(a), Some(b)) => {
                let (plus, minus) = diff(a, b);
                added.extend(plus);
                removed.extend(minus);
            }
            (Some(a), None) => removed.extend(a.iter()),
            (None, Some(b)) => added.extend(b.iter()),
            (None, None) => {}
        }
    }
    (added, removed)
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
