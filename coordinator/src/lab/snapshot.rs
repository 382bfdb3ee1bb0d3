//! Whole-lab snapshots as phases across hosts. Each phase runs on every
//! host of the lab at once and ends only when all have answered, so no
//! node is snapshotted (or reverted) before every node is paused (or off).
//! When a host fails, the others are resumed and the error names it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dclab_proto::error::{exists, not_found, precondition};
use dclab_proto::v1::{self, operation::Action};
use dclab_proto::ApiError;
use tracing::{info, warn, Instrument};

use super::Labs;
use crate::model::lab::Snapshot;
use crate::mutate::check_name;
use crate::nodes::fanout::{all_done, HostsFailed};
use crate::nodes::lease::{Renewals, SNAPSHOT_LEASE_TTL};
use crate::nodes::ops;
use crate::record::{Op, Record, RecordKey};

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

/// One step of a snapshot operation, done on every host of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pause,
    Shutdown,
    Resume,
    Snapshot,
    Revert,
    Delete,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Pause => "pause",
            Phase::Shutdown => "shutdown",
            Phase::Resume => "resume",
            Phase::Snapshot => "snapshot",
            Phase::Revert => "revert",
            Phase::Delete => "delete",
        }
    }

    /// The agent's action; phases that hold nodes do it under `lease`.
    fn action(self, snapshot: &str, lease: &v1::Lease) -> Action {
        let snapshot = snapshot.to_string();
        let lease = Some(lease.clone());
        match self {
            Phase::Pause => Action::Pause(v1::PauseNodes { lease }),
            Phase::Shutdown => Action::Shutdown(v1::ShutdownNodes { lease }),
            Phase::Resume => Action::Resume(v1::ResumeNodes {
                lease_id: lease.map(|l| l.id).unwrap_or_default(),
            }),
            Phase::Snapshot => Action::Snapshot(v1::SnapshotNodes { snapshot }),
            Phase::Revert => Action::Revert(v1::RevertNodes { snapshot, lease }),
            Phase::Delete => Action::DeleteSnapshot(v1::DeleteSnapshot { snapshot }),
        }
    }
}

/// One snapshot operation on one lab: its hosts and the lease that holds
/// its nodes, renewed until the operation ends.
struct Run<'a> {
    labs: &'a Labs,
    lab: &'a str,
    snapshot: &'a str,
    hosts: ByHost,
    lease: v1::Lease,
    _renewals: Renewals,
}

impl<'a> Run<'a> {
    fn new(labs: &'a Labs, lab: &'a str, snapshot: &'a str, hosts: ByHost) -> Run<'a> {
        let lease = labs.nodes.lease_ids.lease("snapshot", SNAPSHOT_LEASE_TTL);
        let renewals = Renewals::of(labs.nodes.clone(), hosts.keys().cloned(), &lease);
        Run {
            labs,
            lab,
            snapshot,
            hosts,
            lease,
            _renewals: renewals,
        }
    }

    /// Runs one phase on every host; Err lists each host that failed.
    async fn phase(&self, phase: Phase) -> Result<(), HostsFailed> {
        let span = tracing::info_span!("phase", phase = phase.name(), hosts = self.hosts.len());
        self.run_phase(phase, &self.hosts).instrument(span).await
    }

    async fn run_phase(&self, phase: Phase, hosts: &ByHost) -> Result<(), HostsFailed> {
        let ops = hosts.iter().map(|(host, nodes)| {
            let op = ops::on_nodes(self.lab, nodes.clone(), phase.action(self.snapshot, &self.lease));
            (host.clone(), op)
        });
        let answers = self.labs.nodes.run_on_each(ops, PHASE_TIMEOUT).await;
        all_done(&answers, "")
    }

    /// Resumes every node after a failed phase; its own failure is added to `error`.
    async fn recover(&self, error: String) -> ApiError {
        match self.phase(Phase::Resume).await {
            Ok(()) => precondition(format!("{error}; every node was resumed as it was")),
            Err(e) => precondition(format!(
                "{error}; resuming the nodes failed too ({e}); their agents resume them when the hold lapses ({} s)",
                SNAPSHOT_LEASE_TTL.as_secs()
            )),
        }
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

    fn lap(&mut self, phase: Phase) {
        let now = Instant::now();
        let micros = (now - self.last).as_micros() as u64;
        self.phases.push((phase.name().to_string(), micros));
        self.last = now;
    }

    fn total(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }
}

fn stop_phase(cold: bool) -> Phase {
    if cold {
        Phase::Shutdown
    } else {
        Phase::Pause
    }
}

/// The lab's (node, host) pairs, or NotFound.
fn lab_nodes(labs: &Labs, lab: &str) -> Result<Vec<(String, String)>, ApiError> {
    labs.store.read(|t| {
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

#[tracing::instrument(name = "snapshot.create", skip(labs))]
pub async fn create(
    labs: &Labs,
    lab: &str,
    name: &str,
    cold: bool,
    force: bool,
) -> Result<Snapshot, ApiError> {
    check_name("snapshot", name)?;
    // Faults would end up in the snapshot: refused during a run unless forced.
    let _claim = labs.nodes.claims.snapshot(lab, force)?;
    let nodes = lab_nodes(labs, lab)?;
    if labs
        .store
        .read(|t| t.snapshots.contains_key(&(lab.to_string(), name.to_string())))
    {
        return Err(exists(format!(
            "lab {lab} already has a snapshot {name}; remove it first (`ctl snapshot rm {name} --lab {lab}`)"
        )));
    }
    let run = Run::new(labs, lab, name, by_host(&nodes));
    let mut clock = Clock::new();
    let stop = stop_phase(cold);
    if let Err(e) = run.phase(stop).await {
        let what = format!("snapshot {name} of lab {lab}: {} failed on {e}", stop.name());
        return Err(run.recover(what).await);
    }
    clock.lap(stop);
    if let Err(e) = run.phase(Phase::Snapshot).await {
        if let Err(cleanup) = run.phase(Phase::Delete).await {
            warn!(lab, snapshot = name, error = %cleanup, "removing a partial snapshot failed");
        }
        let what = format!("snapshot {name} of lab {lab} failed on {e}");
        return Err(run.recover(what).await);
    }
    clock.lap(Phase::Snapshot);
    let resumed = run.phase(Phase::Resume).await;
    clock.lap(Phase::Resume);
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
    labs.store
        .write(|_| Ok(vec![Op::Put(Record::Snapshot(snap.clone()))]))?;
    info!(
        lab,
        snapshot = name,
        cold,
        ms = snap.micros / 1000,
        "snapshot created"
    );
    if let Err(e) = resumed {
        return Err(precondition(format!(
            "snapshot {name} of lab {lab} was taken, but resuming failed on {e}; the agents resume the nodes when the hold lapses"
        )));
    }
    Ok(snap)
}

#[tracing::instrument(name = "snapshot.restore", skip(labs))]
pub async fn restore(labs: &Labs, lab: &str, name: &str, force: bool) -> Result<Snapshot, ApiError> {
    // Faults would end up in the snapshot: refused during a run unless forced.
    let _claim = labs.nodes.claims.snapshot(lab, force)?;
    let nodes = lab_nodes(labs, lab)?;
    let snap = find(labs, lab, name)?;
    let mut now = nodes.clone();
    let mut then = snap.nodes.clone();
    now.sort();
    then.sort();
    if now != then {
        return Err(precondition(format!(
            "lab {lab} changed since snapshot {name} (nodes or their hosts differ); take a new snapshot"
        )));
    }
    let run = Run::new(labs, lab, name, by_host(&nodes));
    let mut clock = Clock::new();
    // What runs now is thrown away: nothing to shut down gracefully, so
    // a restore stops the nodes in place, whether the snapshot was cold or not.
    let stop = Phase::Pause;
    if let Err(e) = run.phase(stop).await {
        let what = format!("restoring {name} of lab {lab}: {} failed on {e}", stop.name());
        return Err(run.recover(what).await);
    }
    clock.lap(stop);
    if let Err(e) = run.phase(Phase::Revert).await {
        let what =
            format!("restoring {name} of lab {lab}: revert failed on {e} (other hosts' nodes were reverted)");
        return Err(run.recover(what).await);
    }
    clock.lap(Phase::Revert);
    let resumed = run.phase(Phase::Resume).await;
    clock.lap(Phase::Resume);
    if let Err(e) = resumed {
        return Err(precondition(format!(
            "snapshot {name} of lab {lab} was restored, but resuming failed on {e}; the agents resume the nodes when the hold lapses"
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

#[tracing::instrument(name = "snapshot.delete", skip(labs))]
pub async fn delete(labs: &Labs, lab: &str, name: &str) -> Result<(), ApiError> {
    let _claim = labs.nodes.claims.snapshot(lab, true)?;
    let snap = find(labs, lab, name)?;
    let nodes = lab_nodes(labs, lab)?;
    // Only nodes that still exist hold the snapshot.
    let holding: Vec<(String, String)> = snap.nodes.iter().filter(|n| nodes.contains(n)).cloned().collect();
    let run = Run::new(labs, lab, name, by_host(&holding));
    if let Err(e) = run.phase(Phase::Delete).await {
        return Err(precondition(format!(
            "removing snapshot {name} of lab {lab} failed on {e}; it is kept, try again"
        )));
    }
    labs.store.write(|_| {
        Ok(vec![Op::Delete(RecordKey::Snapshot(
            lab.to_string(),
            name.to_string(),
        ))])
    })?;
    Ok(())
}

fn find(labs: &Labs, lab: &str, name: &str) -> Result<Snapshot, ApiError> {
    labs.store.read(|t| {
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
