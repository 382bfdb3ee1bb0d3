//! A run's heals. A heal an agent cannot carry out stays with that agent,
//! which retries it until it succeeds: the run records the failure as a
//! finding and goes on. When the run ends, each such fault is either
//! healed on a retry by then or listed as awaiting its heal, with the
//! agent's last word on it; `ctl experiment show` reads the agents' latest
//! reports instead, so a heal that succeeds after the run is seen there.

use std::time::Instant;

use dclab_proto::v1;
use dclab_spec::experiment::record::{AwaitingHeal, EventKind, FaultLease, RunRecord};
use tracing::Instrument;

use super::{act, Active, Run};
use crate::experiment::Experiments;

/// A fault whose heal failed, and when.
pub struct Unhealed {
    fault: Active,
    error: String,
    at: Instant,
}

impl Run {
    /// Heals `fault` and records how it went.
    pub(super) async fn heal(&mut self, stage: &str, fault: Active) {
        let at = self.ms();
        let healed = act::heal(&self.experiments, &fault.hosts, &fault.lease)
            .instrument(tracing::info_span!("heal", fault = %fault.id))
            .await
            .map_err(|e| e.to_string());
        for h in &fault.hosts {
            self.renewals.remove(h, &fault.lease);
        }
        self.last_heal_ms = Some(self.ms());
        let took = self.ms() - at;
        let indent = if stage == "end" { "" } else { "  " };
        let line = match &healed {
            Ok(()) if stage == "end" => format!("healed {} ({}) at the end of the run", fault.id, fault.kind),
            Ok(()) => format!("  heal {} ({}) in {took} ms", fault.id, fault.kind),
            Err(e) => format!("{indent}heal {} ({}) FAILED: {e}", fault.id, fault.kind),
        };
        self.say(line).await;
        let what = format!("heal {} ({})", fault.id, fault.kind);
        self.event(stage, EventKind::Heal, what, at, healed.clone().err());
        if let Err(error) = healed {
            self.record.findings.push(format!(
                "heal of {} {} on {} failed: {error}",
                fault.kind, fault.id, fault.on
            ));
            self.unhealed.push(Unhealed {
                fault,
                error,
                at: Instant::now(),
            });
        }
    }

    /// At the end: each fault whose heal failed was healed on a retry
    /// since, or still awaits it (a finding each way).
    pub(super) fn note_awaiting_heal(&mut self) {
        let mut awaiting = Vec::new();
        for u in std::mem::take(&mut self.unhealed) {
            let f = &u.fault;
            let mut left = Vec::new();
            for host in &f.hosts {
                match self.experiments.nodes.pending_heals(host) {
                    // A report from after the failure says what is left.
                    Some((said, pending)) if said > u.at => left.extend(
                        pending
                            .iter()
                            .filter(|p| p.lease_id == f.lease)
                            .map(|p| awaiting_of(&f.id, f.kind, host, p)),
                    ),
                    _ => left.push(AwaitingHeal {
                        fault: f.id.clone(),
                        kind: f.kind.to_string(),
                        host: host.clone(),
                        node: f.on.clone(),
                        failed_attempts: 1,
                        error: u.error.clone(),
                        since_unix_ms: 0,
                    }),
                }
            }
            if left.is_empty() {
                self.record
                    .findings
                    .push(format!("{} {} was healed on a retry", f.kind, f.id));
            }
            for a in &left {
                self.record.findings.push(format!(
                    "{} {} on {} was not healed by the end of the run: {}; the agent of {} retries until it succeeds",
                    a.kind, a.fault, a.node, a.error, a.host
                ));
            }
            awaiting.extend(left);
        }
        self.record.awaiting_heal = awaiting;
    }
}

fn awaiting_of(fault: &str, kind: &str, host: &str, p: &v1::PendingHeal) -> AwaitingHeal {
    AwaitingHeal {
        fault: fault.to_string(),
        kind: kind.to_string(),
        host: host.to_string(),
        // LAB/NODE from the agent; the lab is the run's.
        node: p.node.rsplit('/').next().unwrap_or_default().to_string(),
        failed_attempts: p.failed_attempts,
        error: p.error.clone(),
        since_unix_ms: p.since_unix_ms,
    }
}

/// The faults of `record` awaiting their heal now, as the connected
/// agents last reported; for a host whose agent is away, what the record
/// says.
pub fn awaiting_now(experiments: &Experiments, record: &RunRecord) -> Vec<AwaitingHeal> {
    let mut now = Vec::new();
    for FaultLease {
        fault,
        kind,
        lease,
        hosts,
    } in &record.fault_leases
    {
        for host in hosts {
            match experiments.nodes.pending_heals(host) {
                Some((_, pending)) => now.extend(
                    pending
                        .iter()
                        .filter(|p| &p.lease_id == lease)
                        .map(|p| awaiting_of(fault, kind, host, p)),
                ),
                None => now.extend(
                    record
                        .awaiting_heal
                        .iter()
                        .filter(|a| &a.fault == fault && &a.host == host)
                        .cloned(),
                ),
            }
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyRange;

    fn record(awaiting: Vec<AwaitingHeal>) -> RunRecord {
        let spec = dclab_spec::experiment::parse(
            "t.toml",
            "[experiment]\nname = \"t\"\n[[stage]]\nname = \"s\"\n[[stage.step]]\nwait = \"1s\"\n",
        )
        .unwrap();
        RunRecord {
            id: "r1".into(),
            experiment: "t".into(),
            title: String::new(),
            lab: "l".into(),
            spec,
            seed: 1,
            started_unix_ms: 0,
            ended_unix_ms: Some(1),
            verdict: dclab_spec::experiment::record::Verdict::Passed,
            targets: vec![],
            timeline: vec![],
            checks: vec![],
            probes: vec![],
            findings: vec![],
            error: None,
            trace_id: String::new(),
            fault_leases: vec![FaultLease {
                fault: "fill".into(),
                kind: "disk-fill".into(),
                lease: "fault-1".into(),
                hosts: vec!["h1".into(), "h2".into()],
            }],
            awaiting_heal: awaiting,
        }
    }

    fn stored(host: &str) -> AwaitingHeal {
        AwaitingHeal {
            fault: "fill".into(),
            kind: "disk-fill".into(),
            host: host.into(),
            node: "b".into(),
            failed_attempts: 1,
            error: "as it was at the end".into(),
            since_unix_ms: 0,
        }
    }

    #[test]
    fn what_awaits_heal_is_what_connected_agents_say_now() {
        let dir = tempfile::tempdir().unwrap();
        let experiments =
            crate::coordinator::Coordinator::open(dir.path(), KeyRange("100.64.0.0/16".parse().unwrap()))
                .unwrap()
                .experiments();
        let r = record(vec![stored("h1"), stored("h2")]);
        assert_eq!(
            awaiting_now(&experiments, &r),
            r.awaiting_heal,
            "no agent reported"
        );

        // h1's agent says: still failing, another lease beside it.
        let pending = |lease: &str| v1::PendingHeal {
            lease_id: lease.into(),
            fault: "command".into(),
            node: "l/a".into(),
            failed_attempts: 3,
            error: "node a is off".into(),
            since_unix_ms: 5,
            next_attempt_unix_ms: 9,
        };
        experiments.nodes.report(v1::NodeReport {
            host_id: "h1".into(),
            pending_heals: vec![pending("fault-1"), pending("fault-2")],
            ..Default::default()
        });
        let now = awaiting_now(&experiments, &r);
        assert_eq!(now.len(), 2, "{now:?}");
        assert_eq!(
            (now[0].host.as_str(), now[0].node.as_str(), now[0].failed_attempts),
            ("h1", "a", 3)
        );
        assert_eq!(now[0].error, "node a is off");
        assert_eq!(now[1], stored("h2"), "h2 has not reported: as stored");

        // Healed on h1 since; h2 reports nothing pending.
        for host in ["h1", "h2"] {
            experiments.nodes.report(v1::NodeReport {
                host_id: host.into(),
                ..Default::default()
            });
        }
        assert!(awaiting_now(&experiments, &r).is_empty());
    }
}
