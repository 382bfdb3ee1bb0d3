//! The run itself: stages in order, each its steps then its checks, with
//! the background probes around all of it. Every fault is applied under a
//! lease the run renews; whatever ends the run (its last stage, a failed
//! step, an abort, its caller going away) heals every fault still active
//! before the verdict is written. Should the coordinator itself die, the
//! agents heal when the leases lapse.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dclab_proto::v1;
use dclab_spec::experiment::record::{CheckResult, Event, EventKind, FaultLease, RunRecord, Verdict};
use dclab_spec::experiment::{Stage, Step};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{info, warn, Instrument};

use super::act;
use super::checks;
use super::disk;
use super::env::Env;
use super::probes::{self, Running};
use super::targets::Chosen;
use super::Experiments;
use crate::nodes::lease::Renewals;

mod heals;

pub use heals::awaiting_now;

pub type Events = mpsc::Sender<Result<v1::RunEvent, Status>>;

struct Active {
    id: String,
    kind: &'static str,
    /// The nodes it acts on, in words.
    on: String,
    lease: String,
    hosts: BTreeSet<String>,
    _counted: super::FaultCount,
}

/// Why a run stopped before its end.
enum Stop {
    Aborted(String),
    Failed(String),
}

pub struct Run {
    pub experiments: Experiments,
    pub record: RunRecord,
    pub chosen: Chosen,
    pub events: Events,
    pub cancel: CancellationToken,
    pub proceed: Arc<Notify>,
    pub yes: bool,
    pub started: Instant,
    pub renewals: Renewals,
    active: Vec<Active>,
    /// Faults whose heal failed (their agents retry them).
    unhealed: Vec<heals::Unhealed>,
    probes: Vec<Running>,
    last_heal_ms: Option<u64>,
}

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        experiments: Experiments,
        record: RunRecord,
        chosen: Chosen,
        events: Events,
        cancel: CancellationToken,
        proceed: Arc<Notify>,
        yes: bool,
    ) -> Run {
        let ttl = Duration::from_millis(record.spec.lease_ms);
        let renewals = Renewals::start(experiments.nodes.clone(), ttl);
        Run {
            experiments,
            record,
            chosen,
            events,
            cancel,
            proceed,
            yes,
            started: Instant::now(),
            renewals,
            active: vec![],
            unhealed: vec![],
            probes: vec![],
            last_heal_ms: None,
        }
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn env(&self) -> Env<'_> {
        Env {
            experiments: &self.experiments,
            lab: &self.record.lab,
            chosen: &self.chosen,
            tag: &self.record.id,
        }
    }

    /// A progress line to the caller; a caller gone aborts the run.
    async fn say(&self, line: String) {
        let event = v1::RunEvent {
            run_id: self.record.id.clone(),
            line,
            ..Default::default()
        };
        if self.events.send(Ok(event)).await.is_err() {
            self.cancel.cancel();
        }
    }

    fn event(
        &mut self,
        stage: &str,
        kind: EventKind,
        what: String,
        at_ms: u64,
        error: Option<String>,
    ) -> &mut Event {
        let took_ms = self.ms().saturating_sub(at_ms);
        self.record.timeline.push(Event {
            at_ms,
            took_ms,
            stage: stage.to_string(),
            kind,
            what,
            error,
            node: None,
            host: None,
            effect_us: None,
        });
        self.record.timeline.last_mut().expect("just pushed")
    }

    fn save(&self) {
        if let Err(e) = self.experiments.runs.store.put(&self.record) {
            warn!(run = %self.record.id, error = %e, "cannot write the run record");
        }
    }

    /// Runs to the end and returns the record with its verdict.
    pub async fn execute(mut self) -> RunRecord {
        let span = tracing::info_span!(
            "experiment.run",
            run = %self.record.id,
            experiment = %self.record.experiment,
            lab = %self.record.lab,
            verdict = tracing::field::Empty
        );
        self.record.trace_id = dclab_runtime::telemetry::trace_id_of(&span);
        let stopped = self.body().instrument(span.clone()).await;
        self.finish(stopped).instrument(span.clone()).await;
        span.record("verdict", self.record.verdict.name());
        info!(run = %self.record.id, verdict = self.record.verdict.name(), "run ended");
        self.record
    }

    async fn body(&mut self) -> Result<(), Stop> {
        let stages = self.record.spec.stages.clone();
        for spec in self.record.spec.probes.clone() {
            let at = self.ms();
            let started = Instant::now();
            let probe = probes::start(&self.env(), &spec, || at).await;
            let took = started.elapsed().as_millis() as u64;
            match probe {
                Ok(p) => {
                    self.say(format!(
                        "probe {}: {} -> {} every {} ms",
                        spec.name, spec.from, spec.to, spec.interval_ms
                    ))
                    .await;
                    self.probes.push(p);
                    self.event(
                        "",
                        EventKind::Probe,
                        format!("probe {} started", spec.name),
                        at,
                        None,
                    )
                    .took_ms = took;
                }
                Err(e) => return Err(Stop::Failed(format!("probe {}: {e}", spec.name))),
            }
        }
        for stage in &stages {
            self.stage(stage)
                .instrument(tracing::info_span!("stage", stage = %stage.name))
                .await?;
        }
        Ok(())
    }

    async fn stage(&mut self, stage: &Stage) -> Result<(), Stop> {
        let at = self.ms();
        self.say(format!("stage {}", stage.name)).await;
        self.event(
            &stage.name,
            EventKind::Stage,
            format!("stage {}", stage.name),
            at,
            None,
        );
        for step in &stage.steps {
            if self.cancel.is_cancelled() {
                return Err(Stop::Aborted("aborted".into()));
            }
            let done = self.step(&stage.name, step).await;
            // Saved as it goes: `ctl experiment show` follows a run under
            // way, and a coordinator that dies keeps what happened so far.
            self.save();
            done?;
        }
        for check in &stage.checks {
            if self.cancel.is_cancelled() {
                return Err(Stop::Aborted("aborted".into()));
            }
            let at = self.ms();
            let span = tracing::info_span!("check", check = %check.name, passed = tracing::field::Empty);
            // An abort does not wait for a check to finish.
            let env = self.env();
            let verdict = tokio::select! {
                v = checks::evaluate(&env, check).instrument(span.clone()) => v,
                _ = self.cancel.cancelled() => return Err(Stop::Aborted("aborted".into())),
            };
            span.record("passed", verdict.passed);
            let took = self.ms() - at;
            let mark = if verdict.passed { "ok  " } else { "DEVIATED" };
            self.say(format!(
                "  check {mark} {} [expected {}] {} ({:.1} s)",
                check.name,
                checks::expected(check),
                verdict.observed,
                took as f64 / 1000.0
            ))
            .await;
            let error = (!verdict.passed).then(|| verdict.observed.clone());
            self.event(&stage.name, EventKind::Check, check.name.clone(), at, error);
            self.record.checks.push(CheckResult {
                stage: stage.name.clone(),
                name: check.name.clone(),
                expected: checks::expected(check),
                passed: verdict.passed,
                observed: verdict.observed,
                at_ms: at,
                took_ms: took,
            });
        }
        self.save();
        Ok(())
    }

    async fn step(&mut self, stage: &str, step: &Step) -> Result<(), Stop> {
        let at = self.ms();
        match step {
            Step::Wait { ms } => {
                self.say(format!("  wait {} s", *ms as f64 / 1000.0)).await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(*ms)) => {}
                    _ = self.cancel.cancelled() => return Err(Stop::Aborted("aborted".into())),
                }
                self.event(stage, EventKind::Wait, format!("wait {ms} ms"), at, None);
            }
            Step::Prompt { message } => {
                let event = v1::RunEvent {
                    run_id: self.record.id.clone(),
                    line: format!("  prompt: {message}"),
                    prompt: message.clone(),
                    ..Default::default()
                };
                if !self.yes {
                    if self.events.send(Ok(event)).await.is_err() {
                        return Err(Stop::Aborted("the caller went away".into()));
                    }
                    tokio::select! {
                        _ = self.proceed.notified() => {}
                        _ = self.cancel.cancelled() => return Err(Stop::Aborted("aborted".into())),
                    }
                } else {
                    self.say(format!("  prompt (continued, --yes): {message}")).await;
                }
                self.event(stage, EventKind::Prompt, message.clone(), at, None);
            }
            Step::Exec {
                on,
                command,
                timeout_ms,
            } => {
                let command = self.env().fill(command);
                for node in self.env().nodes(on).to_vec() {
                    let span = tracing::info_span!("exec", node = %node.spec.name, host = %node.host);
                    let env = self.env();
                    let result = tokio::select! {
                        r = env.exec(&node, &command, Duration::from_millis(*timeout_ms)).instrument(span) => r,
                        _ = self.cancel.cancelled() => return Err(Stop::Aborted("aborted".into())),
                    };
                    let (error, line) = match &result {
                        Ok((0, _)) => (None, format!("  exec on {}: {command}", node.spec.name)),
                        Ok((code, out)) => (
                            Some(format!("exit {code}: {}", out.trim())),
                            format!(
                                "  exec on {}: {command} exited {code}{}",
                                node.spec.name,
                                last_line(out)
                            ),
                        ),
                        Err(e) => (Some(e.to_string()), format!("  exec on {}: {e}", node.spec.name)),
                    };
                    self.say(line).await;
                    let ev = self.event(stage, EventKind::Exec, command.clone(), at, error.clone());
                    ev.node = Some(node.spec.name.clone());
                    ev.host = Some(node.host.clone());
                    if let Some(e) = error {
                        return Err(Stop::Failed(format!(
                            "stage {stage}: exec {command:?} on {}: {e}",
                            node.spec.name
                        )));
                    }
                }
            }
            Step::Fault { id, on, fault } => self.fault(stage, id, on.as_deref(), fault, at).await?,
            Step::Heal { id } => {
                let ids: Vec<String> = match id {
                    Some(id) => vec![id.clone()],
                    None => self.active.iter().map(|a| a.id.clone()).collect(),
                };
                for id in ids {
                    let Some(pos) = self.active.iter().position(|a| a.id == id) else {
                        self.say(format!("  heal {id}: not active")).await;
                        continue;
                    };
                    let fault = self.active.remove(pos);
                    self.heal(stage, fault).await;
                }
            }
        }
        Ok(())
    }

    async fn fault(
        &mut self,
        stage: &str,
        id: &str,
        on: Option<&str>,
        fault: &dclab_spec::experiment::Fault,
        at: u64,
    ) -> Result<(), Stop> {
        let env = self.env();
        let nodes = on.map(|t| env.nodes(t).to_vec()).unwrap_or_default();
        let (ga, gb) = match fault {
            dclab_spec::experiment::Fault::Partition { groups, .. } => {
                let pick = |g: &[String]| g.iter().flat_map(|t| env.nodes(t).to_vec()).collect::<Vec<_>>();
                (pick(&groups.0), pick(&groups.1))
            }
            _ => (vec![], vec![]),
        };
        let tag = format!("{}-{id}", self.record.id).replace('.', "-");
        if let dclab_spec::experiment::Fault::DiskFill { mib, path } = fault {
            if let Err(e) = disk::check(&env, &nodes, *mib, path).await {
                self.say(format!("  fault {id}: {e}")).await;
                self.event(
                    stage,
                    EventKind::Fault,
                    format!("{} {id}", fault.kind()),
                    at,
                    Some(e.to_string()),
                );
                return Err(Stop::Failed(format!("fault {id} ({}): {e}", fault.kind())));
            }
        }
        let plan = act::plan(
            &self.experiments,
            &self.record.lab,
            fault,
            &nodes,
            (&ga, &gb),
            &tag,
        )
        .map_err(|e| Stop::Failed(format!("fault {id}: {e}")))?;
        let ttl = Duration::from_millis(self.record.spec.lease_ms);
        let lease = self.experiments.nodes.lease_ids.lease("fault", ttl);
        let hosts: BTreeSet<String> = plan.per_host.iter().map(|(h, ..)| h.clone()).collect();
        for h in &hosts {
            self.renewals.add(h, &lease.id);
        }
        let on_what = on.map_or_else(
            || "the groups".to_string(),
            |t| format!("{t} ({})", names(&nodes)),
        );
        let span = tracing::info_span!(
            "fault",
            fault = %id,
            kind = fault.kind(),
            nodes = %names(&nodes),
            hosts = %hosts.iter().cloned().collect::<Vec<_>>().join(","),
            outcome = tracing::field::Empty
        );
        let result = act::apply(&self.experiments, &plan, &lease)
            .instrument(span.clone())
            .await;
        span.record("outcome", if result.is_ok() { "applied" } else { "failed" });
        // Recorded as active even when a host failed: the others applied it.
        self.active.push(Active {
            id: id.to_string(),
            kind: fault.kind(),
            on: on.map_or_else(|| "the groups".to_string(), |_| names(&nodes)),
            lease: lease.id.clone(),
            hosts: hosts.clone(),
            _counted: self.experiments.runs.fault_applied(),
        });
        self.record.fault_leases.push(FaultLease {
            fault: id.to_string(),
            kind: fault.kind().to_string(),
            lease: lease.id.clone(),
            hosts: hosts.iter().cloned().collect(),
        });
        match result {
            Ok(per_host) => {
                let slowest = per_host.iter().map(|(_, us)| *us).max().unwrap_or(0);
                self.say(format!(
                    "  fault {id}: {} on {on_what}, in effect after {:.1} ms",
                    fault.kind(),
                    slowest as f64 / 1000.0
                ))
                .await;
                for (host, us) in per_host {
                    let ev = self.event(
                        stage,
                        EventKind::Fault,
                        format!("{} {id} on {on_what}", fault.kind()),
                        at,
                        None,
                    );
                    ev.host = Some(host);
                    ev.effect_us = Some(us);
                }
                Ok(())
            }
            Err(e) => {
                self.say(format!("  fault {id}: {} on {on_what} FAILED: {e}", fault.kind()))
                    .await;
                self.event(
                    stage,
                    EventKind::Fault,
                    format!("{} {id}", fault.kind()),
                    at,
                    Some(e.to_string()),
                );
                Err(Stop::Failed(format!("fault {id} ({}): {e}", fault.kind())))
            }
        }
    }

    /// Heals what is left, reads the probes, and writes the verdict.
    async fn finish(&mut self, stopped: Result<(), Stop>) {
        while let Some(fault) = self.active.pop() {
            self.heal("end", fault).await;
        }
        self.note_awaiting_heal();
        let running = std::mem::take(&mut self.probes);
        for p in running {
            let now = self.ms();
            let result = probes::stop(&self.env(), p, self.last_heal_ms, now).await;
            let line = match (&result.error, result.downtime_ms) {
                (Some(e), _) => format!("probe {}: {e}", result.name),
                (None, Some(d)) => format!(
                    "probe {}: {} samples, downtime {:.1} s{}",
                    result.name,
                    result.samples.len(),
                    d as f64 / 1000.0,
                    result
                        .recovery_ms
                        .map(|r| format!(", answered {:.1} s after the heal", r as f64 / 1000.0))
                        .unwrap_or_default()
                ),
                (None, None) => format!(
                    "probe {}: {} samples, none lost",
                    result.name,
                    result.samples.len()
                ),
            };
            self.say(line.clone()).await;
            self.record.findings.push(line);
            self.record.probes.push(result);
        }
        for c in self.record.checks.iter().filter(|c| !c.passed) {
            self.record.findings.push(format!(
                "check {:?} in stage {} deviated: expected {}, observed {}",
                c.name, c.stage, c.expected, c.observed
            ));
        }
        self.record.verdict = match &stopped {
            Err(Stop::Aborted(_)) => Verdict::Aborted,
            Err(Stop::Failed(_)) => Verdict::Failed,
            Ok(()) if self.record.checks.iter().all(|c| c.passed) => Verdict::Passed,
            Ok(()) => Verdict::Deviated,
        };
        if let Err(Stop::Aborted(why) | Stop::Failed(why)) = &stopped {
            let why = match (&stopped, self.experiments.runs.stopping()) {
                (Err(Stop::Aborted(_)), Some(stopping)) => stopping,
                _ => why.clone(),
            };
            self.record.error = Some(why.clone());
            self.record.findings.push(format!("the run stopped: {why}"));
        }
        self.record.ended_unix_ms = Some(super::now_ms());
        self.save();
    }
}

fn names(nodes: &[crate::model::lab::Node]) -> String {
    nodes
        .iter()
        .map(|n| n.spec.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last line a failed command printed, for the run's live output: the
/// whole output goes to the run's failure reason.
fn last_line(out: &str) -> String {
    match out.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => format!(": {}", line.trim().chars().take(200).collect::<String>()),
        None => String::new(),
    }
}
