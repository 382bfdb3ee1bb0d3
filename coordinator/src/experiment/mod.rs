//! Dependability experiments (the HPI paper, section 5): runs of an
//! experiment file on a lab. `run` is the engine (`run/heals`: heals, and
//! the ones agents still retry); `act` what it asks of agents; `disk` how
//! much a disk-fill may take; `checks` and `probes` what it observes;
//! `targets` how nodes are chosen; `store` where run records live.

mod act;
mod checks;
mod disk;
mod env;
mod probes;
mod run;
pub mod store;
mod targets;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use dclab_proto::error::{invalid, not_found, precondition};
use dclab_proto::v1;
use dclab_proto::ApiError;
use dclab_spec::experiment::record::{Chosen as ChosenRecord, RunRecord, Verdict};
use dclab_spec::experiment::{self, Fault, Step};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{info, warn, Instrument};

use crate::model::lab::Lab;
pub use store::RunStore;

/// What experiment runs use: the store (labs, hosts), the node hub (faults
/// and execs through the agents) and the runs.
#[derive(Clone)]
pub struct Experiments {
    pub store: Arc<crate::state::State>,
    pub nodes: Arc<crate::nodes::hub::NodeHub>,
    pub runs: Arc<Runs>,
}

/// How often a run's stream carries a heartbeat (an event with no line).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(300);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Handle {
    id: String,
    cancel: CancellationToken,
    proceed: Arc<Notify>,
}

/// The runs under way (one per lab at most) and the stored ones.
pub struct Runs {
    pub store: RunStore,
    active: Mutex<HashMap<String, Handle>>,
    next: AtomicU64,
    /// Faults applied and not healed, over every run under way.
    faults: Arc<AtomicU64>,
    /// Why every run was aborted at once (the coordinator shutting down).
    stopping: Mutex<Option<String>>,
}

/// Counts one fault as active for as long as it lives.
pub struct FaultCount(Arc<AtomicU64>);

impl Drop for FaultCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Runs {
    pub fn new(store: RunStore) -> Runs {
        Runs {
            store,
            active: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            faults: Arc::default(),
            stopping: Mutex::new(None),
        }
    }

    /// Aborts every run under way for `why` and waits, at most `wait`,
    /// until each has healed its faults and written its record. New runs
    /// are refused from now on. Returns the runs still ending: their faults
    /// lapse on the agents when their leases do.
    pub async fn abort_all(&self, why: &str, wait: std::time::Duration) -> Vec<String> {
        *self.stopping.lock() = Some(why.to_string());
        for h in self.active.lock().values() {
            h.cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left: Vec<String> = self.active.lock().values().map(|h| h.id.clone()).collect();
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Why runs are being stopped all at once, if they are.
    pub fn stopping(&self) -> Option<String> {
        self.stopping.lock().clone()
    }

    pub fn active_count(&self) -> usize {
        self.active.lock().len()
    }

    pub fn faults_active(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// A fault a run applied, counted until the guard is dropped (healed,
    /// or the run gone however it ended).
    pub fn fault_applied(&self) -> FaultCount {
        self.faults.fetch_add(1, Ordering::Relaxed);
        FaultCount(self.faults.clone())
    }

    /// The run under way on `lab`, if any.
    pub fn active_on(&self, lab: &str) -> Option<String> {
        self.active.lock().get(lab).map(|h| h.id.clone())
    }

    fn find(&self, id: &str) -> Option<(CancellationToken, Arc<Notify>)> {
        let active = self.active.lock();
        active
            .values()
            .find(|h| h.id == id)
            .map(|h| (h.cancel.clone(), h.proceed.clone()))
    }

    /// Runs the coordinator was in the middle of when it stopped end as
    /// aborted (their agents healed when the leases lapsed).
    pub fn close_interrupted(&self) {
        let Ok(runs) = self.store.list() else { return };
        for mut run in runs.into_iter().filter(|r| r.verdict == Verdict::Running) {
            run.verdict = Verdict::Aborted;
            run.error = Some(
                "the coordinator stopped during the run; its agents healed the faults when the leases lapsed"
                    .into(),
            );
            run.findings.push(run.error.clone().unwrap_or_default());
            run.ended_unix_ms = Some(now_ms());
            if let Err(e) = self.store.put(&run) {
                warn!(run = %run.id, error = %e, "cannot close an interrupted run");
            }
        }
    }
}

/// A run needs the agents of its targets' hosts from the start: refused
/// now rather than failed at its first fault.
fn require_agents(experiments: &Experiments, lab: &str, chosen: &targets::Chosen) -> Result<(), ApiError> {
    let hosts: BTreeSet<&str> = chosen.values().flatten().map(|n| n.host.as_str()).collect();
    let away: Vec<&str> = hosts
        .into_iter()
        .filter(|h| !experiments.nodes.is_connected(h))
        .collect();
    if away.is_empty() {
        return Ok(());
    }
    let (who, verb) = match away.as_slice() {
        [one] => (format!("the agent of host {one} is"), "it"),
        many => (format!("the agents of hosts {} are", many.join(", ")), "them"),
    };
    Err(ApiError::Unavailable(format!(
        "{who} not connected, and lab {lab} has targets there; start {verb} (or wait for \
         {verb} to reconnect) and run again; `ctl host ls` shows the hosts"
    )))
}

pub fn abort(experiments: &Experiments, id: &str) -> Result<(), ApiError> {
    match experiments.runs.find(id) {
        Some((cancel, _)) => {
            cancel.cancel();
            Ok(())
        }
        None => Err(not_under_way(experiments, id)),
    }
}

pub fn proceed(experiments: &Experiments, id: &str) -> Result<(), ApiError> {
    match experiments.runs.find(id) {
        Some((_, proceed)) => {
            proceed.notify_one();
            Ok(())
        }
        None => Err(not_under_way(experiments, id)),
    }
}

fn not_under_way(experiments: &Experiments, id: &str) -> ApiError {
    match experiments.runs.store.get(id) {
        Ok(Some(r)) => precondition(format!("run {id} already ended ({})", r.verdict.name())),
        _ => not_found(format!("no run {id}; `ctl experiment ls` lists the runs")),
    }
}

pub fn summary(r: &RunRecord, with_record: bool) -> v1::Run {
    v1::Run {
        id: r.id.clone(),
        experiment: r.experiment.clone(),
        lab: r.lab.clone(),
        verdict: r.verdict.name().to_string(),
        started_unix_ms: r.started_unix_ms,
        ended_unix_ms: r.ended_unix_ms.unwrap_or(0),
        record_json: if with_record {
            serde_json::to_string(r).unwrap_or_default()
        } else {
            String::new()
        },
    }
}

pub fn list(experiments: &Experiments, lab: &str) -> Result<v1::ListRunsResponse, ApiError> {
    let runs = experiments
        .runs
        .store
        .list()?
        .iter()
        .filter(|r| lab.is_empty() || r.lab == lab)
        .map(|r| summary(r, false))
        .collect();
    Ok(v1::ListRunsResponse { runs })
}

/// A run's record, with the faults awaiting their heal as the agents say
/// now.
pub fn get(experiments: &Experiments, id: &str) -> Result<v1::Run, ApiError> {
    match experiments.runs.store.get(id)? {
        Some(mut r) => {
            r.awaiting_heal = run::awaiting_now(experiments, &r);
            Ok(summary(&r, true))
        }
        None => Err(not_found(format!(
            "no run {id}; `ctl experiment ls` lists the runs"
        ))),
    }
}

/// Every node and network the spec names must be in the lab.
fn check_against(lab: &Lab, spec: &experiment::Spec) -> Result<(), ApiError> {
    let nets: Vec<&str> = lab.networks.iter().map(|n| n.name.as_str()).collect();
    let net_ok = |n: &Option<String>| match n {
        Some(n) if !nets.contains(&n.as_str()) => Err(precondition(format!(
            "experiment {} names network {n}, which lab {} does not have (networks: {})",
            spec.name,
            lab.name,
            nets.join(", ")
        ))),
        _ => Ok(()),
    };
    for p in &spec.probes {
        net_ok(&p.network)?;
    }
    for stage in &spec.stages {
        for step in &stage.steps {
            if let Step::Fault {
                fault:
                    Fault::LinkCut { network } | Fault::Netem { network, .. } | Fault::Partition { network, .. },
                ..
            } = step
            {
                net_ok(network)?;
            }
        }
        for c in &stage.checks {
            if let experiment::CheckWhat::Reach { network, .. } = &c.what {
                net_ok(network)?;
            }
        }
    }
    Ok(())
}

pub type RunStream = ReceiverStream<Result<v1::RunEvent, Status>>;

/// Parses, plans and (unless dry) starts a run; its events come down the stream.
pub async fn start(experiments: Experiments, req: v1::RunExperimentRequest) -> Result<RunStream, ApiError> {
    if req.file_text.len() > 256 << 10 {
        return Err(invalid("the experiment file is over 256 KiB"));
    }
    let file = if req.file_name.is_empty() {
        "experiment"
    } else {
        req.file_name.as_str()
    };
    let spec = experiment::parse(file, &req.file_text).map_err(|e| invalid(e.to_string()))?;
    let lab_name = if req.lab.is_empty() {
        spec.lab.clone().ok_or_else(|| {
            invalid(format!(
                "experiment {} names no lab: pass one (`--lab LAB`)",
                spec.name
            ))
        })?
    } else {
        crate::lab::validate::lab_name(&req.lab)?;
        req.lab.clone()
    };
    let lab = experiments
        .store
        .read(|t| t.labs.get(&lab_name).cloned())
        .ok_or_else(|| {
            not_found(format!(
                "lab {lab_name} does not exist; `ctl lab ls` lists the labs"
            ))
        })?;
    check_against(&lab, &spec)?;
    let seed = if req.seed == 0 { now_ms() } else { req.seed };
    let chosen = targets::resolve(&lab, &spec.targets, seed).map_err(|e| precondition(e.to_string()))?;
    if !req.dry_run {
        require_agents(&experiments, &lab_name, &chosen)?;
    }
    let (tx, rx) = mpsc::channel(64);
    let id = format!(
        "r{}-{}",
        now_ms(),
        experiments.runs.next.fetch_add(1, Ordering::Relaxed)
    );
    let record = RunRecord {
        id: id.clone(),
        experiment: spec.name.clone(),
        title: spec.title.clone(),
        lab: lab_name.clone(),
        seed,
        started_unix_ms: now_ms(),
        ended_unix_ms: None,
        verdict: Verdict::Running,
        targets: spec
            .targets
            .iter()
            .map(|t| ChosenRecord {
                target: t.name.clone(),
                nodes: chosen
                    .get(&t.name)
                    .into_iter()
                    .flatten()
                    .map(|n| (n.spec.name.clone(), n.host.clone()))
                    .collect(),
            })
            .collect(),
        timeline: vec![],
        checks: vec![],
        probes: vec![],
        findings: vec![],
        error: None,
        trace_id: String::new(),
        fault_leases: vec![],
        awaiting_heal: vec![],
        spec,
    };
    if req.dry_run {
        let plan = plan_lines(&record);
        tokio::spawn(async move {
            for line in plan {
                let _ = tx
                    .send(Ok(v1::RunEvent {
                        line,
                        ..Default::default()
                    }))
                    .await;
            }
            let done = v1::RunEvent {
                record_json: serde_json::to_string(&record).unwrap_or_default(),
                done: true,
                ..Default::default()
            };
            let _ = tx.send(Ok(done)).await;
        });
        return Ok(ReceiverStream::new(rx));
    }
    if let Some(why) = experiments.runs.stopping() {
        return Err(ApiError::Unavailable(format!("no new runs: {why}")));
    }
    // Held from here to the run's end: no snapshot, other run, re-apply or
    // delete of the lab meanwhile. The lab is read again under the claim:
    // a change between the first read and the claim would leave the run
    // with targets that are gone.
    let claim = experiments.nodes.claims.run(&lab_name, &id)?;
    if experiments
        .store
        .read(|t| t.labs.get(&lab_name).map(|l| l.revision))
        != Some(lab.revision)
    {
        return Err(precondition(format!(
            "lab {lab_name} changed while the run was starting; run it again"
        )));
    }
    let cancel = CancellationToken::new();
    let proceed = Arc::new(Notify::new());
    {
        let mut active = experiments.runs.active.lock();
        active.insert(
            lab_name.clone(),
            Handle {
                id: id.clone(),
                cancel: cancel.clone(),
                proceed: proceed.clone(),
            },
        );
    }
    experiments.runs.store.put(&record)?;
    info!(run = %id, experiment = %record.experiment, lab = %lab_name, seed, "run started");
    let first = plan_lines(&record);
    let run = run::Run::new(
        experiments.clone(),
        record,
        chosen,
        tx.clone(),
        cancel.clone(),
        proceed,
        req.yes,
    );
    tokio::spawn(
        async move {
            for line in first {
                let _ = tx
                    .send(Ok(v1::RunEvent {
                        run_id: id.clone(),
                        line,
                        ..Default::default()
                    }))
                    .await;
            }
            // A caller that goes away aborts the run. The server notices a
            // closed connection only when it next writes to it, so a
            // heartbeat goes down the stream every HEARTBEAT.
            let watcher = {
                let (tx, cancel) = (tx.clone(), cancel.clone());
                let id = id.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = tx.closed() => break,
                            _ = tokio::time::sleep(HEARTBEAT) => {
                                let beat = v1::RunEvent { run_id: id.clone(), ..Default::default() };
                                let _ = tx.try_send(Ok(beat));
                            }
                        }
                    }
                    cancel.cancel();
                })
            };
            let record = run.execute().await;
            watcher.abort();
            experiments.runs.active.lock().remove(&record.lab);
            drop(claim);
            let done = v1::RunEvent {
                run_id: record.id.clone(),
                line: format!(
                    "run {} {}, {} findings",
                    record.id,
                    record.verdict.name(),
                    record.findings.len()
                ),
                record_json: serde_json::to_string(&record).unwrap_or_default(),
                done: true,
                exit_code: record.verdict.exit_code(),
                ..Default::default()
            };
            let _ = tx.send(Ok(done)).await;
        }
        .in_current_span(),
    );
    Ok(ReceiverStream::new(rx))
}

/// What a run will do, in words: the chosen nodes and every step.
fn plan_lines(r: &RunRecord) -> Vec<String> {
    let mut lines = vec![format!(
        "experiment {} on lab {} (seed {}){}",
        r.experiment,
        r.lab,
        r.seed,
        if r.title.is_empty() {
            String::new()
        } else {
            format!(": {}", r.title)
        }
    )];
    for c in &r.targets {
        let nodes: Vec<String> = c.nodes.iter().map(|(n, h)| format!("{n} on {h}")).collect();
        lines.push(format!("  target {}: {}", c.target, nodes.join(", ")));
    }
    for p in &r.spec.probes {
        lines.push(format!(
            "  probe {}: {} -> {} every {} ms",
            p.name, p.from, p.to, p.interval_ms
        ));
    }
    for s in &r.spec.stages {
        lines.push(format!(
            "  stage {}: {} steps, {} checks",
            s.name,
            s.steps.len(),
            s.checks.len()
        ));
    }
    lines
}
