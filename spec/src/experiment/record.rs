//! A run as the coordinator records it in sled and ctl shows and reports
//! it: what was chosen, every step and check with its time and outcome,
//! the probes' samples, the findings and the verdict.

use serde::{Deserialize, Serialize};

use super::spec::Spec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Running,
    /// Every check went as expected.
    Passed,
    /// At least one check did not.
    Deviated,
    /// The run itself failed (a fault or command could not be carried out).
    Failed,
    Aborted,
}

impl Verdict {
    /// ctl's exit code: 0 as expected, 1 a check deviated, 2 the run failed
    /// or was aborted.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Passed => 0,
            Verdict::Deviated => 1,
            Verdict::Running | Verdict::Failed | Verdict::Aborted => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Running => "running",
            Verdict::Passed => "passed",
            Verdict::Deviated => "deviated",
            Verdict::Failed => "failed",
            Verdict::Aborted => "aborted",
        }
    }
}

/// The nodes a target chose: (node, host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chosen {
    pub target: String,
    pub nodes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Stage,
    Exec,
    Wait,
    Fault,
    Heal,
    Prompt,
    Check,
    Probe,
    Note,
}

/// One thing the run did, `at_ms` after it started, taking `took_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: u64,
    pub took_ms: u64,
    pub stage: String,
    pub kind: EventKind,
    pub what: String,
    /// None: as it should be; Some: what went wrong.
    pub error: Option<String>,
    pub node: Option<String>,
    pub host: Option<String>,
    /// For faults: from the coordinator issuing the fault to the agent's
    /// answer that it is in effect (both trips included).
    pub effect_us: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub stage: String,
    pub name: String,
    pub expected: String,
    pub passed: bool,
    /// What was seen, e.g. "3 of 3 probes failed" or the output.
    pub observed: String,
    pub at_ms: u64,
    pub took_ms: u64,
}

/// A background probe's samples: (ms since the run started, answered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub name: String,
    pub from: String,
    pub to: String,
    pub address: String,
    pub interval_ms: u64,
    pub samples: Vec<(u64, bool)>,
    /// From the first failed sample to the end of the last one.
    pub downtime_ms: Option<u64>,
    /// From the last heal to the first answered sample after it, when the
    /// probe was failing then.
    pub recovery_ms: Option<u64>,
    pub error: Option<String>,
}

impl ProbeResult {
    /// Downtime and time to recover from the samples and the last heal.
    pub fn measure(&mut self, healed_at_ms: Option<u64>) {
        let failed: Vec<u64> = self
            .samples
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(t, _)| *t)
            .collect();
        self.downtime_ms = match (failed.first(), failed.last()) {
            (Some(first), Some(last)) => Some(last - first + self.interval_ms),
            _ => None,
        };
        self.recovery_ms = healed_at_ms.and_then(|heal| {
            let failing_then = self
                .samples
                .iter()
                .rev()
                .find(|(t, _)| *t <= heal)
                .is_some_and(|(_, ok)| !ok);
            let back = self.samples.iter().find(|(t, ok)| *t > heal && *ok)?;
            failing_then.then(|| back.0 - heal)
        });
    }
}

/// A fault the run applied: the lease it is held under, on which hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultLease {
    /// The step's id.
    pub fault: String,
    pub kind: String,
    pub lease: String,
    pub hosts: Vec<String>,
}

/// A fault whose heal has not succeeded yet: its agent retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitingHeal {
    /// The step's id.
    pub fault: String,
    pub kind: String,
    pub host: String,
    /// The node (empty for a partition's flows).
    pub node: String,
    pub failed_attempts: u32,
    /// Why the last attempt failed.
    pub error: String,
    /// When the fault's lease ended.
    pub since_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub experiment: String,
    pub title: String,
    pub lab: String,
    pub spec: Spec,
    pub seed: u64,
    pub started_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    pub verdict: Verdict,
    pub targets: Vec<Chosen>,
    pub timeline: Vec<Event>,
    pub checks: Vec<CheckResult>,
    pub probes: Vec<ProbeResult>,
    /// One line per deviation or noteworthy measurement.
    pub findings: Vec<String>,
    pub error: Option<String>,
    /// The OpenTelemetry trace of the run, when traced.
    pub trace_id: String,
    /// Every fault applied, with its lease.
    #[serde(default)]
    pub fault_leases: Vec<FaultLease>,
    /// Faults not healed yet: as the agents last reported them when the
    /// record is read, as they were at the end in the stored record.
    #[serde(default)]
    pub awaiting_heal: Vec<AwaitingHeal>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(samples: &[(u64, bool)]) -> ProbeResult {
        ProbeResult {
            name: "p".into(),
            from: "a".into(),
            to: "b".into(),
            address: "10.0.0.2".into(),
            interval_ms: 100,
            samples: samples.to_vec(),
            downtime_ms: None,
            recovery_ms: None,
            error: None,
        }
    }

    #[test]
    fn downtime_spans_the_failed_samples_and_recovery_starts_at_the_heal() {
        let mut p = probe(&[
            (0, true),
            (100, false),
            (200, false),
            (300, false),
            (400, true),
            (500, true),
        ]);
        p.measure(Some(250));
        assert_eq!(p.downtime_ms, Some(300));
        assert_eq!(p.recovery_ms, Some(150));
        let mut fine = probe(&[(0, true), (100, true)]);
        fine.measure(Some(50));
        assert_eq!((fine.downtime_ms, fine.recovery_ms), (None, None));
        assert_eq!(Verdict::Deviated.exit_code(), 1);
        assert_eq!(Verdict::Aborted.exit_code(), 2);
    }
}
