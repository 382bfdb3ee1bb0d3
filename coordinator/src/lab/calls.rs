//! What the Labs service's calls do: apply, delete, status, snapshots and
//! exec.

use std::time::{Duration, Instant};

use dclab_proto::error::{invalid, not_found};
use dclab_proto::v1::{self, operation::Action};
use dclab_proto::ApiError;
use tracing::{info, warn};

use super::{apply, snapshot, validate, Labs};
use crate::model::lab::{Lab, Snapshot};
use crate::nodes::{hub, ops};

const DELETE_WAIT: Duration = Duration::from_secs(60);
const EXEC_DEFAULT: Duration = Duration::from_secs(30);
const EXEC_MAX: Duration = Duration::from_secs(600);

#[tracing::instrument(name = "lab.apply", skip_all, fields(lab = req.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("")))]
pub fn apply_lab(labs: &Labs, req: v1::ApplyLabRequest) -> Result<v1::Lab, ApiError> {
    let spec = req
        .spec
        .ok_or_else(|| invalid("ApplyLab needs a lab spec".to_string()))?;
    let checked = validate::check(&spec)?;
    let mut changes = vec![];
    let lab = labs.store.write_reply(
        |v| {
            labs.nodes.claims.check_free(&spec.name, "re-apply")?;
            let applied = apply::apply(v, &spec.name, checked)?;
            changes = applied.changes;
            Ok(applied.ops)
        },
        |t, _| t.labs.get(&spec.name).cloned(),
    )?;
    let lab = lab.ok_or_else(|| ApiError::Internal(format!("lab {} was applied but is gone", spec.name)))?;
    info!(lab = %spec.name, changes = changes.len(), "lab applied");
    let mut lab = lab_status(labs, &lab);
    lab.changes = changes;
    Ok(lab)
}

#[tracing::instrument(name = "lab.delete", skip(labs))]
pub async fn delete_lab(labs: &Labs, name: &str) -> Result<v1::DeleteLabResponse, ApiError> {
    let hosts: Vec<String> = labs.store.read(|t| {
        let mut hosts: Vec<String> = t
            .labs
            .get(name)
            .map(|l| l.nodes.iter().map(|n| n.host.clone()).collect())
            .unwrap_or_default();
        hosts.sort();
        hosts.dedup();
        hosts
    });
    // What earlier removals of the lab's nodes (a re-apply) left is not this delete's.
    for host in &hosts {
        labs.nodes.take_leftovers(host, name);
    }
    labs.store.write(|v| {
        labs.nodes.claims.check_free(name, "delete")?;
        apply::delete(v.topo, name)
    })?;
    info!(lab = name, "lab deleted; waiting for its agents");
    let deadline = Instant::now() + DELETE_WAIT;
    loop {
        let pending: Vec<String> = hosts
            .iter()
            .filter(|h| !labs.nodes.host_clear_of(h, name))
            .cloned()
            .collect();
        // A lab of the same name applied since is not this delete's to wait for.
        let superseded = labs.store.read(|t| t.labs.contains_key(name));
        if pending.is_empty() || superseded || Instant::now() >= deadline {
            let leftovers: Vec<v1::NodeLeftovers> = hosts
                .iter()
                .flat_map(|h| labs.nodes.take_leftovers(h, name))
                .collect();
            for left in &leftovers {
                warn!(lab = name, node = %left.name, host = %left.host, processes = left.processes, "the node's processes outlived libvirt's stop; its agent killed them");
            }
            return Ok(v1::DeleteLabResponse {
                pending_hosts: pending,
                leftovers,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn get_lab(labs: &Labs, name: &str) -> Result<v1::Lab, ApiError> {
    let lab = labs.store.read(|t| t.labs.get(name).cloned());
    let lab =
        lab.ok_or_else(|| not_found(format!("lab {name} does not exist; `ctl lab ls` lists the labs")))?;
    Ok(lab_status(labs, &lab))
}

pub fn list_labs(labs: &Labs) -> v1::ListLabsResponse {
    let all: Vec<Lab> = labs.store.read(|t| t.labs.values().cloned().collect());
    v1::ListLabsResponse {
        labs: all.iter().map(|l| lab_status(labs, l)).collect(),
    }
}

fn lab_status(labs: &Labs, lab: &Lab) -> v1::Lab {
    let mut ready = true;
    let nodes: Vec<v1::LabNode> = lab
        .nodes
        .iter()
        .map(|n| {
            let (node_state, error) = labs.nodes.node_state(&n.host, &lab.name, &n.spec.name);
            ready &= node_state == v1::NodeState::Running;
            v1::LabNode {
                spec: Some(node_spec(&n.spec)),
                host: n.host.clone(),
                nics: n.nics.iter().map(hub::nic).collect(),
                state: node_state.into(),
                error,
            }
        })
        .collect();
    for host in lab.nodes.iter().map(|n| &n.host) {
        let status = labs.rules.status(host);
        ready &= status.applied_version >= labs.rules.current(host).version && status.missing_ports == 0;
    }
    let snapshots = labs
        .store
        .read(|t| t.snapshots.keys().filter(|(l, _)| *l == lab.name).count());
    v1::Lab {
        name: lab.name.clone(),
        networks: lab
            .networks
            .iter()
            .map(|n| v1::LabNetwork {
                name: n.name.clone(),
                cidr: n.cidr.clone(),
                kind: n.kind.to_wire().into(),
            })
            .collect(),
        nodes,
        revision: lab.revision,
        changes: lab.changes.clone(),
        ready,
        snapshots: snapshots as u32,
    }
}

fn node_spec(s: &crate::model::lab::NodeSpec) -> v1::NodeSpec {
    use crate::model::lab::NodeKind;
    v1::NodeSpec {
        name: s.name.clone(),
        kind: match s.kind {
            NodeKind::Vm => v1::NodeKind::Vm,
            NodeKind::Container => v1::NodeKind::Container,
        }
        .into(),
        role: s.role.clone(),
        vcpus: s.vcpus,
        memory_mib: s.memory_mib,
        image: s.image.clone(),
        disks_mib: s.disks_mib.clone(),
        host: s.pin.clone().unwrap_or_default(),
        interfaces: s
            .interfaces
            .iter()
            .map(|i| v1::InterfaceSpec {
                network: i.network.clone(),
                ip: i.ip.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

pub fn snapshot_reply(s: &Snapshot) -> v1::Snapshot {
    v1::Snapshot {
        lab: s.lab.clone(),
        name: s.name.clone(),
        cold: s.cold,
        created_unix_ms: s.created_unix_ms,
        nodes: s.nodes.len() as u32,
        hosts: s.hosts(),
        micros: s.micros,
        phases: s
            .phases
            .iter()
            .map(|(phase, micros)| v1::PhaseTiming {
                phase: phase.clone(),
                micros: *micros,
            })
            .collect(),
    }
}

pub async fn create_snapshot(labs: &Labs, r: v1::SnapshotRequest) -> Result<v1::Snapshot, ApiError> {
    validate::lab_name(&r.lab)?;
    Ok(snapshot_reply(
        &snapshot::create(labs, &r.lab, &r.name, r.cold, r.force).await?,
    ))
}

pub async fn restore_snapshot(labs: &Labs, r: v1::SnapshotRequest) -> Result<v1::Snapshot, ApiError> {
    validate::lab_name(&r.lab)?;
    Ok(snapshot_reply(
        &snapshot::restore(labs, &r.lab, &r.name, r.force).await?,
    ))
}

pub async fn delete_snapshot(labs: &Labs, r: v1::SnapshotRequest) -> Result<(), ApiError> {
    validate::lab_name(&r.lab)?;
    snapshot::delete(labs, &r.lab, &r.name).await
}

pub fn list_snapshots(labs: &Labs, lab: &str) -> v1::ListSnapshotsResponse {
    let snaps: Vec<Snapshot> = labs.store.read(|t| {
        t.snapshots
            .values()
            .filter(|s| lab.is_empty() || s.lab == lab)
            .cloned()
            .collect()
    });
    v1::ListSnapshotsResponse {
        snapshots: snaps.iter().map(snapshot_reply).collect(),
    }
}

/// The host a lab's node runs on, or NotFound naming what is missing.
pub fn node_host(labs: &Labs, lab: &str, node: &str) -> Result<String, ApiError> {
    labs.store.read(|t| {
        let l = t
            .labs
            .get(lab)
            .ok_or_else(|| not_found(format!("lab {lab} does not exist; `ctl lab ls` lists the labs")))?;
        l.node(node)
            .map(|n| n.host.clone())
            .ok_or_else(|| not_found(format!("lab {lab} has no node {node}")))
    })
}

/// An exec request checked: the node's host, what its agent runs, and
/// how long the coordinator waits for the result (a little longer than
/// the agent waits for the command, so an answer always comes).
pub struct ExecPlan {
    pub host: String,
    pub exec: v1::ExecCommand,
    pub wait: Duration,
}

pub fn exec_plan(labs: &Labs, r: &v1::ExecNodeRequest) -> Result<ExecPlan, ApiError> {
    if r.command.is_empty() || r.command.contains('\n') || r.command.len() > 4096 {
        return Err(invalid(
            "the command must be one non-empty line of at most 4096 bytes",
        ));
    }
    let host = node_host(labs, &r.lab, &r.node)?;
    let timeout = match r.timeout_ms {
        0 => EXEC_DEFAULT,
        ms => Duration::from_millis(u64::from(ms)).min(EXEC_MAX),
    };
    let exec = v1::ExecCommand {
        command: r.command.clone(),
        timeout_ms: timeout.as_millis() as u32,
        stream_id: 0,
    };
    Ok(ExecPlan {
        host,
        exec,
        wait: timeout + Duration::from_secs(15),
    })
}

/// What a failed exec result says, as the caller's error.
pub fn exec_error(result: &v1::OperationResult, r: &v1::ExecNodeRequest, host: &str) -> ApiError {
    let context = format!("node {} of lab {} on {host}", r.node, r.lab);
    ops::result_error(result, &context)
}

#[tracing::instrument(name = "node.exec", skip_all, fields(lab = %r.lab, node = %r.node))]
pub async fn exec(labs: &Labs, r: v1::ExecNodeRequest) -> Result<v1::ExecNodeResponse, ApiError> {
    let plan = exec_plan(labs, &r)?;
    let op = ops::on_nodes(&r.lab, vec![r.node.clone()], Action::Exec(plan.exec));
    let result = labs.nodes.run(&plan.host, op, plan.wait).await?;
    if !result.ok {
        return Err(exec_error(&result, &r, &plan.host));
    }
    Ok(v1::ExecNodeResponse {
        exit_code: result.exit_code,
        output: result.output,
        output_dropped_bytes: result.output_dropped_bytes,
    })
}
