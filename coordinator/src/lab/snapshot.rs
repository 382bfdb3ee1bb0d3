//! Whole-lab snapshots as phases across hosts. Each phase runs on every
//! host of the lab at once and ends only when all have answered, so no
//! node is snapshotted (or reverted) before every node is paused (or off).
//! When a host fails, the others are resumed and the error names it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dclab_proto::error::{exists, not_found, precondition, unavailable};
use dclab_proto::v1::{self, OperationKind as Kind};
use dclab_proto::ApiError;
use futures::future::join_all;
use tracing::{info, warn, Instrument};

use super::model::Snapshot;
use crate::mutate::check_name;
use crate::record::{Op, Record, RecordKey};
use crate::state::State;

const PHASE_TIMEOUT: Duration = Duration::from_secs(300);

/// host → the lab's nodes on it.
type ByHost = BTreeMap<String, Vec<String>>;

fn by_host(nodes: &[(String, String)]) -> ByHost {
    let mut map = ByHost::new();
    for (node, host) in nodes {
        map.entry(host.clone()).or_default().push(node.clone());
    }
    map
}

fn phase_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Pause => "pause",
        Kind::Resume => "resume",
        Kind::Snapshot => "snapshot",
        Kind::Revert => "revert",
        Kind::DeleteSnapshot => "delete",
        Kind::Shutdown => "shutdown",
        Kind::Exec | Kind::Unspecified => "other",
    }
}

/// Runs one phase on every host; Err lists each host that failed.
async fn phase(state: &State, kind: Kind, lab: &str, snapshot: &str, hosts: &ByHost) -> Result<(), String> {
    let span = tracing::info_span!("phase", phase = phase_name(kind), hosts = hosts.len());
    run_phase(state, kind, lab, snapshot, hosts)
        .instrument(span)
        .await
}

async fn run_phase(
    state: &State,
    kind: Kind,
    lab: &str,
    snapshot: &str,
    hosts: &ByHost,
) -> Result<(), String> {
    let traceparent = dclab_proto::telemetry::current_traceparent();
    let runs = hosts.iter().map(|(host, nodes)| {
        let op = v1::Operation {
            id: 0,
            kind: kind.into(),
            lab: lab.to_string(),
            nodes: nodes.clone(),
            snapshot: snapshot.to_string(),
            command: String::new(),
            timeout_ms: 0,
            traceparent: traceparent.clone(),
        };
        async move {
            let result = state.nodes.run(host, op, PHASE_TIMEOUT).await;
            match result {
                Ok(r) if r.ok => Ok(()),
                Ok(r) => Err(format!("host {host}: {}", r.error)),
                Err(e) => Err(format!("host {host}: {e}")),
            }
        }
    });
    let failures: Vec<String> = join_all(runs).await.into_iter().filter_map(Result::err).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Times the phases of one snapshot operation.
struct Clock {
    started: Instant,
    last: Instant,
    phases: Vec<(String, u64)>,
}

impl Clock {
    fn new() -> Clock {
        let now = Instant::now();
        Clock {
            started: now,
            last: now,
            phases: vec![],
        }
    }

    fn lap(&mut self, kind: Kind) {
        let now = Instant::now();
        let micros = (now - self.last).as_micros() as u64;
        self.phases.push((phase_name(kind).to_string(), micros));
        self.last = now;
    }

    fn total(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }
}

fn stop_kind(cold: bool) -> Kind {
    if cold {
        Kind::Shutdown
    } else {
        Kind::Pause
    }
}

/// The lab's (node, host) pairs, or NotFound.
fn lab_nodes(state: &State, lab: &str) -> Result<Vec<(String, String)>, ApiError> {
    state.read(|t| {
        t.labs
            .get(lab)
            .map(|l| {
                l.nodes
                    .iter()
                    .map(|n| (n.spec.name.clone(), n.host.clone()))
                    .collect()
            })
            .ok_or_else(|| not_found(format!("lab {lab} does not exist; `ctl lab ls` lists the labs")))
    })
}

fn busy(lab: &str) -> ApiError {
    unavailable(format!(
        "lab {lab} is busy with another snapshot operation; try again when it ends"
    ))
}

/// Resumes every node after a failed phase; its own failure is added to `error`.
async fn recover(state: &State, lab: &str, hosts: &ByHost, error: String) -> ApiError {
    match phase(state, Kind::Resume, lab, "", hosts).await {
        Ok(()) => precondition(format!("{error}; every node was resumed as it was")),
        Err(e) => precondition(format!(
            "{error}; resuming the nodes failed too ({e}); their agents resume them once reconnected"
        )),
    }
}

#[tracing::instrument(name = "snapshot.create", skip(state))]
pub async fn create(state: &State, lab: &str, name: &str, cold: bool) -> Result<Snapshot, ApiError> {
    check_name("snapshot", name)?;
    let _claim = state.nodes.claim(lab).ok_or_else(|| busy(lab))?;
    let nodes = lab_nodes(state, lab)?;
    if state.read(|t| t.snapshots.contains_key(&(lab.to_string(), name.to_string()))) {
        return Err(exists(format!(
            "lab {lab} already has a snapshot {name}; remove it first (`ctl snapshot rm {name} --lab {lab}`)"
        )));
    }
    let hosts = by_host(&nodes);
    let mut clock = Clock::new();
    let stop = stop_kind(cold);
    if let Err(e) = phase(state, stop, lab, name, &hosts).await {
        let what = format!("snapshot {name} of lab {lab}: {} failed on {e}", phase_name(stop));
        return Err(recover(state, lab, &hosts, what).await);
    }
    clock.lap(stop);
    if let Err(e) = phase(state, Kind::Snapshot, lab, name, &hosts).await {
        if let Err(cleanup) = phase(state, Kind::DeleteSnapshot, lab, name, &hosts).await {
            warn!(lab, snapshot = name, error = %cleanup, "removing a partial snapshot failed");
        }
        let what = format!("snapshot {name} of lab {lab} failed on {e}");
        return Err(recover(state, lab, &hosts, what).await);
    }
    clock.lap(Kind::Snapshot);
    let resumed = phase(state, Kind::Resume, lab, name, &hosts).await;
    clock.lap(Kind::Resume);
    let snap = Snapshot {
        lab: lab.to_string(),
        name: name.to_string(),
        cold,
        created_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        nodes,
        micros: clock.total(),
        phases: clock.phases,
    };
    state.write(|_| Ok(vec![Op::Put(Record::Snapshot(snap.clone()))]))?;
    info!(
        lab,
        snapshot = name,
        cold,
        ms = snap.micros / 1000,
        "snapshot created"
    );
    if let Err(e) = resumed {
        return Err(precondition(format!(
            "snapshot {name} of lab {lab} was taken, but resuming failed on {e}; the agents keep trying"
        )));
    }
    Ok(snap)
}

#[tracing::instrument(name = "snapshot.restore", skip(state))]
pub async fn restore(state: &State, lab: &str, name: &str, cold: bool) -> Result<Snapshot, ApiError> {
    let _claim = state.nodes.claim(lab).ok_or_else(|| busy(lab))?;
    let nodes = lab_nodes(state, lab)?;
    let snap = find(state, lab, name)?;
    let mut now = nodes.clone();
    let mut then = snap.nodes.clone();
    now.sort();
    then.sort();
    if now != then {
        return Err(precondition(format!(
            "lab {lab} changed since snapshot {name} (nodes or their hosts differ); take a new snapshot"
        )));
    }
    let hosts = by_host(&nodes);
    let mut clock = Clock::new();
    let stop = stop_kind(cold);
    if let Err(e) = phase(state, stop, lab, name, &hosts).await {
        let what = format!(
            "restoring {name} of lab {lab}: {} failed on {e}",
            phase_name(stop)
        );
        return Err(recover(state, lab, &hosts, what).await);
    }
    clock.lap(stop);
    if let Err(e) = phase(state, Kind::Revert, lab, name, &hosts).await {
        let what =
            format!("restoring {name} of lab {lab}: revert failed on {e} (other hosts' nodes were reverted)");
        return Err(recover(state, lab, &hosts, what).await);
    }
    clock.lap(Kind::Revert);
    let resumed = phase(state, Kind::Resume, lab, name, &hosts).await;
    clock.lap(Kind::Resume);
    if let Err(e) = resumed {
        return Err(precondition(format!(
            "snapshot {name} of lab {lab} was restored, but resuming failed on {e}; the agents keep trying"
        )));
    }
    info!(
        lab,
        snapshot = name,
        ms = clock.total() / 1000,
        "snapshot restored"
    );
    Ok(Snapshot {
        micros: clock.total(),
        phases: clock.phases,
        ..snap
    })
}

#[tracing::instrument(name = "snapshot.delete", skip(state))]
pub async fn delete(state: &State, lab: &str, name: &str) -> Result<(), ApiError> {
    let _claim = state.nodes.claim(lab).ok_or_else(|| busy(lab))?;
    let snap = find(state, lab, name)?;
    let nodes = lab_nodes(state, lab)?;
    // Only nodes that still exist hold the snapshot.
    let holding: Vec<(String, String)> = snap.nodes.iter().filter(|n| nodes.contains(n)).cloned().collect();
    if let Err(e) = phase(state, Kind::DeleteSnapshot, lab, name, &by_host(&holding)).await {
        return Err(precondition(format!(
            "removing snapshot {name} of lab {lab} failed on {e}; it is kept, try again"
        )));
    }
    state.write(|_| {
        Ok(vec![Op::Delete(RecordKey::Snapshot(
            lab.to_string(),
            name.to_string(),
        ))])
    })?;
    Ok(())
}

fn find(state: &State, lab: &str, name: &str) -> Result<Snapshot, ApiError> {
    state.read(|t| {
        t.snapshots
            .get(&(lab.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| {
                not_found(format!(
                    "lab {lab} has no snapshot {name}; `ctl snapshot ls --lab {lab}` lists them"
                ))
            })
    })
}
