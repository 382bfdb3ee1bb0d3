//! `ctl lab up/status/down/ls/exec`: labs through the coordinator.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::client::Operator;
use anyhow::{bail, Context};
use dclab_proto::v1;

use super::load;
use super::show::{self, state_name};
use crate::output::Format;

pub type Client = Operator;

const POLL: Duration = Duration::from_millis(250);
/// How long `lab up` waits on a node that keeps failing.
const GIVE_UP_ON_FAILED: Duration = Duration::from_secs(60);

pub use crate::status_error;

async fn all_labs(client: &mut Client) -> anyhow::Result<Vec<v1::Lab>> {
    let reply = client.list_labs(v1::ListLabsRequest {}).await;
    Ok(reply.map_err(status_error)?.into_inner().labs)
}

/// The lab named, or the only lab there is.
pub async fn resolve(client: &mut Client, lab: Option<String>) -> anyhow::Result<String> {
    if let Some(lab) = lab {
        return Ok(lab);
    }
    let labs = all_labs(client).await?;
    match labs.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => bail!("there are no labs; bring one up with `ctl lab up FILE`"),
        many => {
            let names: Vec<&str> = many.iter().map(|l| l.name.as_str()).collect();
            bail!(
                "there are several labs ({}); name one with --lab",
                names.join(", ")
            )
        }
    }
}

pub struct UpOptions {
    pub wait: bool,
    pub timeout: Duration,
    pub snapshot: Option<String>,
}

pub async fn up(mut client: Client, file: &str, opts: UpOptions, format: Format) -> anyhow::Result<()> {
    let lab = load(file)?;
    let started = Instant::now();
    let applied = client
        .apply_lab(v1::ApplyLabRequest {
            spec: Some(lab.clone()),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if applied.changes.is_empty() {
        eprintln!("lab {}: no changes", lab.name);
    }
    for change in &applied.changes {
        eprintln!("lab {}: {change}", lab.name);
    }
    if !opts.wait {
        show::print_lab(&applied, format);
        return Ok(());
    }
    let ready = wait_ready(&mut client, &lab.name, opts.timeout).await?;
    eprintln!(
        "lab {} ready in {:.1} s: {} nodes",
        lab.name,
        started.elapsed().as_secs_f64(),
        ready.nodes.len()
    );
    if let Some(name) = opts.snapshot {
        take_initial(&mut client, &lab.name, &name).await?;
    }
    show::print_lab(&ready, format);
    Ok(())
}

/// Polls the lab until every node runs and every host has its rules,
/// printing each node's state as it changes.
pub async fn wait_ready(client: &mut Client, lab: &str, timeout: Duration) -> anyhow::Result<v1::Lab> {
    let deadline = Instant::now() + timeout;
    let mut seen: BTreeMap<String, (i32, String)> = BTreeMap::new();
    let mut failing_since: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        let status = client
            .get_lab(v1::GetLabRequest { name: lab.into() })
            .await
            .map_err(status_error)?
            .into_inner();
        for node in &status.nodes {
            let name = node.spec.as_ref().map_or("", |s| s.name.as_str()).to_string();
            let now = (node.state, node.error.clone());
            if seen.get(&name) != Some(&now) {
                let error = if node.error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", node.error)
                };
                eprintln!("  {name} on {}: {}{error}", node.host, state_name(node.state));
                seen.insert(name, now);
            }
        }
        if status.ready {
            return Ok(status);
        }
        // The agents retry failed nodes, but a cause that lasts (a missing
        // image, no libvirtd) should not keep the operator waiting.
        for node in &status.nodes {
            let name = node.spec.as_ref().map_or("", |s| s.name.as_str());
            if node.state != v1::NodeState::Failed as i32 {
                failing_since.remove(name);
                continue;
            }
            let since = *failing_since.entry(name.to_string()).or_insert_with(Instant::now);
            if since.elapsed() >= GIVE_UP_ON_FAILED {
                // The agent's error already names the node and the lab.
                bail!(
                    "{} (on {}, failing for {} s; its agent keeps retrying, `ctl lab status {lab}` shows it)",
                    node.error,
                    node.host,
                    GIVE_UP_ON_FAILED.as_secs()
                );
            }
        }
        if Instant::now() >= deadline {
            let waiting: Vec<String> = status
                .nodes
                .iter()
                .filter(|n| n.state != v1::NodeState::Running as i32)
                .map(|n| {
                    let name = n.spec.as_ref().map_or("", |s| s.name.as_str());
                    format!("{name} on {} is {}", n.host, state_name(n.state))
                })
                .collect();
            let what = if waiting.is_empty() {
                "the nodes run, but their hosts have not applied the lab's rules (see `ctl host ls`)"
                    .to_string()
            } else {
                waiting.join("; ")
            };
            bail!(
                "lab {lab} is not ready after {} s: {what}; `ctl lab status {lab}` shows it, the agents keep trying",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The paper's `initial` snapshot: taken once, kept on later `lab up`s.
/// The seconds it took, or None when it existed.
pub async fn take_initial(client: &mut Client, lab: &str, name: &str) -> anyhow::Result<Option<f64>> {
    let existing = client
        .list_snapshots(v1::ListSnapshotsRequest { lab: lab.into() })
        .await
        .map_err(status_error)?
        .into_inner();
    if existing.snapshots.iter().any(|s| s.name == name) {
        eprintln!("lab {lab}: snapshot {name} exists; kept");
        return Ok(None);
    }
    let snap = client
        .create_snapshot(v1::SnapshotRequest {
            lab: lab.into(),
            name: name.into(),
            cold: false,
            force: false,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let seconds = snap.micros as f64 / 1e6;
    eprintln!("lab {lab}: snapshot {name} taken in {seconds:.2} s");
    Ok(Some(seconds))
}

/// Fails with the coordinator's NotFound when `lab` does not exist, and
/// names the lab's nodes when `node` is not one of them.
pub async fn require_node(client: &mut Client, lab: &str, node: Option<&str>) -> anyhow::Result<()> {
    let found = client
        .get_lab(v1::GetLabRequest { name: lab.into() })
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(node) = node {
        let names: Vec<&str> = found
            .nodes
            .iter()
            .filter_map(|n| n.spec.as_ref())
            .map(|s| s.name.as_str())
            .collect();
        if !names.contains(&node) {
            bail!("lab {lab} has no node {node}; its nodes: {}", names.join(", "));
        }
    }
    Ok(())
}

pub async fn status(mut client: Client, lab: Option<String>, format: Format) -> anyhow::Result<()> {
    let lab = resolve(&mut client, lab).await?;
    let status = client
        .get_lab(v1::GetLabRequest { name: lab })
        .await
        .map_err(status_error)?
        .into_inner();
    show::print_lab(&status, format);
    Ok(())
}

pub async fn list(mut client: Client, format: Format) -> anyhow::Result<()> {
    let labs = all_labs(&mut client).await?;
    show::print_labs(&labs, format);
    Ok(())
}

pub async fn down(mut client: Client, lab: &str) -> anyhow::Result<()> {
    match client.delete_lab(v1::DeleteLabRequest { name: lab.into() }).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            let pending = reply.pending_hosts;
            if pending.is_empty() {
                eprintln!("lab {lab}: removed");
            } else {
                eprintln!(
                    "lab {lab}: removed from the coordinator; the agents of {} have not confirmed yet and remove its nodes when they next reconcile",
                    pending.join(", ")
                );
            }
            for left in reply.leftovers {
                eprintln!(
                    "lab {lab}: {} (on {}): {} leftover processes killed after libvirt's destroy",
                    left.name, left.host, left.processes
                );
            }
            Ok(())
        }
        Err(s) if s.code() == tonic::Code::NotFound => {
            eprintln!("lab {lab}: does not exist; nothing to remove");
            Ok(())
        }
        Err(s) => Err(status_error(s)),
    }
}

/// Runs `command` in the node, printing its output as it comes, and
/// returns its exit code. A coordinator without ExecNodeStream answers the
/// unary ExecNode instead (the output then comes at the end).
pub async fn exec(
    mut client: Client,
    lab: &str,
    node: &str,
    command: &[String],
    timeout: Duration,
) -> anyhow::Result<i32> {
    let req = v1::ExecNodeRequest {
        lab: lab.into(),
        node: node.into(),
        command: command.join(" "),
        timeout_ms: u32::try_from(timeout.as_millis()).context("--timeout is too long")?,
    };
    let mut stream = match client.exec_node_stream(req.clone()).await {
        Ok(reply) => reply.into_inner(),
        Err(s) if s.code() == tonic::Code::Unimplemented => return exec_unary(client, req).await,
        Err(s) => return Err(status_error(s)),
    };
    let mut stdout = std::io::stdout();
    while let Some(message) = stream.message().await.map_err(status_error)? {
        match message.msg {
            Some(v1::exec_output::Msg::Data(data)) => {
                stdout.write_all(&data)?;
                stdout.flush()?;
            }
            Some(v1::exec_output::Msg::End(end)) => {
                if end.output_dropped_bytes > 0 {
                    eprintln!(
                        "[{} of output not delivered: this reader was too slow at the deadline]",
                        dclab_spec::units::bytes(end.output_dropped_bytes)
                    );
                }
                return Ok(end.exit_code);
            }
            None => {}
        }
    }
    bail!("the coordinator ended the output of {node} without its exit code")
}

async fn exec_unary(mut client: Client, req: v1::ExecNodeRequest) -> anyhow::Result<i32> {
    let reply = client.exec_node(req).await.map_err(status_error)?.into_inner();
    print!("{}", reply.output);
    Ok(reply.exit_code)
}
