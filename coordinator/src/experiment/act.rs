//! What a run asks of agents: commands in nodes, and faults applied under
//! leases and healed (the leases' renewals are `nodes::lease::Renewals`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dclab_proto::v1::{self, operation::Action, target::Target};
use dclab_spec::experiment::{Fault, FaultTarget};

use super::targets::TargetError;
use super::Experiments;
use crate::compile;
use crate::model::lab::Node;
use crate::nodes::fanout::{all_done, HostsFailed};
use crate::nodes::ops;

/// How long an agent gets to apply or heal a fault.
const FAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// What asking agents for a command, a fault or a heal can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The node's agent said no, or could not be asked.
    #[error("node {node} on {host}: {why}")]
    Exec { node: String, host: String, why: String },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("lab {lab} has no network {network}")]
    NoNetwork { lab: String, network: String },
    #[error(transparent)]
    Hosts(#[from] HostsFailed),
}

/// Runs `command` in `node`: (exit code, output).
pub async fn exec(
    experiments: &Experiments,
    lab: &str,
    node: &Node,
    command: &str,
    timeout: Duration,
) -> Result<(i32, String), ActError> {
    let action = Action::Exec(v1::ExecCommand {
        command: command.to_string(),
        timeout_ms: timeout.as_millis() as u32,
        stream_id: 0,
    });
    let op = ops::on_nodes(lab, vec![node.spec.name.clone()], action);
    match experiments
        .nodes
        .run(&node.host, op, timeout + Duration::from_secs(15))
        .await
    {
        Ok(r) if r.ok => Ok((r.exit_code, r.output)),
        Ok(r) => Err(r.error),
        Err(e) => Err(e.to_string()),
    }
    .map_err(|why| ActError::Exec {
        node: node.spec.name.clone(),
        host: node.host.clone(),
        why,
    })
}

/// One fault as the agents got it: a target and a fault per host.
pub struct Plan {
    pub per_host: Vec<(String, v1::Target, v1::Fault)>,
}

fn target(t: Target) -> v1::Target {
    v1::Target { target: Some(t) }
}

/// The command a command fault runs, and the one that undoes it; `tag`
/// keeps the run's files apart. The agent retries a heal that exits
/// non-zero, so each heal exits 0 once nothing is left to undo (run twice,
/// or after the node restarted).
fn commands(fault: &Fault, tag: &str) -> Option<(String, String)> {
    Some(match fault {
        Fault::Kill { process, restart } => (
            format!("killall -9 {process}"),
            restart.clone().unwrap_or_default(),
        ),
        Fault::Stop { process } => (
            format!("killall -STOP {process}"),
            format!("killall -CONT {process} 2>/dev/null || ! pidof {process} >/dev/null"),
        ),
        Fault::Restart { service } => (format!("systemctl restart {service}"), String::new()),
        Fault::DiskFill { mib, path } => {
            let file = format!("{path}/dclab-fill-{tag}");
            (
                format!(
                    "dd if=/dev/zero of={file} bs=1M count={mib} 2>/dev/null || \
                     {{ rm -f {file}; echo \"disk-fill: {path} took less than {mib} MiB\"; exit 1; }}; sync; test -e {file}"
                ),
                format!("rm -f {file}"),
            )
        }
        Fault::CpuStress { workers } => {
            let pids = format!("/tmp/dclab-cpu-{tag}.pids");
            (
                format!(
                    "mkdir -p /tmp && for i in $(seq {workers}); do (while :; do :; done) >/dev/null 2>&1 & echo $! >> {pids}; done; test -s {pids}"
                ),
                gone_with(&pids),
            )
        }
        Fault::MemoryStress { mib } => {
            let pid = format!("/tmp/dclab-mem-{tag}.pid");
            (
                format!(
                    "mkdir -p /tmp && (sh -c 'v=$(head -c {mib}m /dev/zero | tr \"\\0\" x); exec sleep 1000000') >/dev/null 2>&1 & echo $! > {pid}; test -s {pid}"
                ),
                gone_with(&pid),
            )
        }
        Fault::FlushMemcached { port } => (
            format!("printf 'flush_all\\r\\nquit\\r\\n' | nc 127.0.0.1 {port}"),
            String::new(),
        ),
        _ => return None,
    })
}

/// Kills the processes listed in `pids` and removes the file; nothing to
/// do without it.
fn gone_with(pids: &str) -> String {
    format!("[ ! -e {pids} ] || {{ kill $(cat {pids}) 2>/dev/null; rm -f {pids}; }}")
}

/// What each host's agent gets for `fault` on `nodes` (or, for a
/// partition, on the groups' nodes).
pub fn plan(
    experiments: &Experiments,
    lab: &str,
    fault: &Fault,
    nodes: &[Node],
    groups: (&[Node], &[Node]),
    tag: &str,
) -> Result<Plan, ActError> {
    let by_host = |nodes: &[Node]| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in nodes {
            m.entry(n.host.clone()).or_default().push(n.spec.name.clone());
        }
        m
    };
    let on_nodes = |kind: v1::fault::Kind| -> Plan {
        let per_host = by_host(nodes)
            .into_iter()
            .map(|(host, names)| {
                let t = target(Target::Nodes(v1::NodeTarget {
                    lab: lab.to_string(),
                    nodes: names,
                }));
                (
                    host,
                    t,
                    v1::Fault {
                        kind: Some(kind.clone()),
                    },
                )
            })
            .collect();
        Plan { per_host }
    };
    let on_interfaces = |network: Option<&str>, kind: v1::fault::Kind| -> Result<Plan, ActError> {
        let mut per_host = Vec::new();
        for n in nodes {
            let nic = super::targets::nic(n, network)?;
            let t = target(Target::Interface(v1::InterfaceTarget {
                lab: lab.to_string(),
                node: n.spec.name.clone(),
                network: nic.network.clone(),
            }));
            per_host.push((
                n.host.clone(),
                t,
                v1::Fault {
                    kind: Some(kind.clone()),
                },
            ));
        }
        Ok(Plan { per_host })
    };
    if let Fault::Partition { network, .. } = fault {
        return partition(experiments, lab, network.as_deref(), groups);
    }
    // Power, link cuts, netem and port blocks go as the file gave them:
    // only where they act is the coordinator's.
    let kind = match fault.forwarded() {
        Some(kind) => kind,
        None => {
            let (apply, heal) = commands(fault, tag).expect("every other fault is a command");
            v1::fault::Kind::Command(v1::CommandFault { apply, heal })
        }
    };
    match fault.target() {
        FaultTarget::Interface(network) => on_interfaces(network, kind),
        FaultTarget::Nodes => Ok(on_nodes(kind)),
    }
}

fn partition(
    experiments: &Experiments,
    lab: &str,
    network: Option<&str>,
    groups: (&[Node], &[Node]),
) -> Result<Plan, ActError> {
    let ports = |nodes: &[Node]| -> BTreeSet<String> {
        nodes
            .iter()
            .flat_map(|n| n.nics.iter())
            .filter(|nic| network.is_none_or(|net| nic.network == net))
            .map(|nic| nic.port.clone())
            .collect()
    };
    let (a, b) = (ports(groups.0), ports(groups.1));
    let flows = experiments.store.read(|t| {
        let nets: Vec<_> = t
            .net_ids
            .iter()
            .filter(|((tenant, name), _)| tenant == lab && network.is_none_or(|n| n == name))
            .map(|(_, id)| *id)
            .collect();
        if nets.is_empty() {
            return Err(ActError::NoNetwork {
                lab: lab.to_string(),
                network: network.unwrap_or("at all").to_string(),
            });
        }
        Ok(compile::partition(t, &nets, &a, &b))
    })?;
    let per_host = flows
        .into_iter()
        .map(|(host, flows)| {
            let flows = flows
                .iter()
                .map(|f| v1::Flow {
                    table: u32::from(f.table),
                    priority: u32::from(f.priority),
                    r#match: f.match_text(),
                    actions: f.actions_text(),
                })
                .collect();
            let fault = v1::Fault {
                kind: Some(v1::fault::Kind::Flows(v1::FlowFault { flows })),
            };
            (host, target(Target::Host(v1::HostTarget {})), fault)
        })
        .collect();
    Ok(Plan { per_host })
}

/// Applies the plan under `lease` on every host at once; per host the time
/// from issuing the fault to the agent's confirmation that it is in effect
/// (µs).
pub async fn apply(
    experiments: &Experiments,
    plan: &Plan,
    lease: &v1::Lease,
) -> Result<Vec<(String, u64)>, ActError> {
    let ops = plan.per_host.iter().map(|(host, t, fault)| {
        let op = v1::Operation {
            id: 0,
            traceparent: dclab_runtime::telemetry::current_traceparent(),
            target: Some(t.clone()),
            action: Some(Action::Fault(v1::ApplyFault {
                fault: Some(fault.clone()),
                lease: Some(lease.clone()),
            })),
        };
        (host.clone(), op)
    });
    let answers = experiments.nodes.run_on_each(ops, FAULT_TIMEOUT).await;
    all_done(&answers, "")?;
    Ok(answers.into_iter().map(|a| (a.host, a.micros)).collect())
}

/// Heals lease `lease` on every host of the plan.
pub async fn heal(experiments: &Experiments, hosts: &BTreeSet<String>, lease: &str) -> Result<(), ActError> {
    let ops = hosts.iter().map(|host| {
        let op = ops::on_host(Action::Heal(v1::HealFault {
            lease_id: lease.to_string(),
        }));
        (host.clone(), op)
    });
    let answers = experiments.nodes.run_on_each(ops, FAULT_TIMEOUT).await;
    Ok(all_done(&answers, "; its agent heals when the lease lapses")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with each shell lab nodes have (busybox in the micro
    /// image, dash in Debian's): the exit codes.
    fn exits(script: &str) -> Vec<i32> {
        [&["busybox", "sh", "-c"][..], &["sh", "-c"][..]]
            .iter()
            .map(|shell| {
                let out = std::process::Command::new(shell[0])
                    .args(&shell[1..])
                    .arg(script)
                    .output()
                    .expect("busybox (busybox-static) and sh run");
                out.status.code().unwrap_or(-1)
            })
            .collect()
    }

    #[test]
    fn heals_with_nothing_left_to_undo_succeed_so_the_agent_stops_retrying() {
        let tag = format!("acttest-{}", std::process::id());
        let faults = [
            Fault::Stop {
                process: "dclab-no-such-process".into(),
            },
            Fault::DiskFill {
                mib: 1,
                path: "/tmp".into(),
            },
            Fault::CpuStress { workers: 1 },
            Fault::MemoryStress { mib: 1 },
        ];
        for fault in &faults {
            let (_, heal) = commands(fault, &tag).unwrap();
            assert_eq!(exits(&heal), [0, 0], "{fault:?}: {heal}");
        }
        // A process still stopped after the heal is a failure to retry.
        let mut stopped = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = stopped.id().to_string();
        let (_, heal) = commands(
            &Fault::Stop {
                process: "sleep".into(),
            },
            &tag,
        )
        .unwrap();
        let failing = heal.replace("killall -CONT sleep", "false");
        assert!(failing.contains("pidof sleep"), "{heal}");
        assert_eq!(exits(&failing), [1, 1], "{failing}");
        let _ = std::process::Command::new("kill").arg(&pid).status();
        let _ = stopped.wait();
    }

    #[test]
    fn a_disk_fill_that_cannot_be_written_fails_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir");
        let fault = Fault::DiskFill {
            mib: 1,
            path: path.display().to_string(),
        };
        let (apply, _) = commands(&fault, "acttest").unwrap();
        assert_eq!(exits(&apply), [1, 1], "{apply}");
    }
}
