//! EXEC: one shell command line in nodes, through their driver. The
//! output is kept within `MAX_KEPT` over all nodes (first and last part,
//! the middle counted), or streamed as it comes (`exec_stream`).

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::v1::{self, DesiredNode, ExecCommand};

use super::super::driver::{key, NodeResult};
use super::super::Context;
use super::Outcome;
use crate::exec_output::{CommandOutput, MAX_KEPT};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// What each node of an exec on many keeps at least.
const MIN_KEPT_PER_NODE: usize = 4 * 1024;

pub fn timeout_of(exec: &ExecCommand) -> Duration {
    match exec.timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    }
}

pub async fn run(
    ctx: &Arc<Context>,
    exec: &ExecCommand,
    known: Vec<DesiredNode>,
    mut failures: Vec<(v1::OperationError, String)>,
) -> Outcome {
    let timeout = timeout_of(exec);
    let several = known.len() + failures.len() > 1;
    let budget = (MAX_KEPT / known.len().max(1)).max(MIN_KEPT_PER_NODE);
    let tasks: Vec<_> = known
        .into_iter()
        .map(|node| {
            let (ctx, command) = (ctx.clone(), exec.command.clone());
            tokio::spawn(async move {
                let out = CommandOutput::kept(budget);
                let (result, out) = on_node(&ctx, &node, command, timeout, out).await;
                (node.name, result, out)
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    for task in tasks {
        match task.await {
            Ok((name, result, out)) => {
                if several {
                    let how = match &result {
                        Ok(code) => format!("exit {code}"),
                        Err(_) => "failed".to_string(),
                    };
                    outcome.output.push_str(&format!("[{name}: {how}]\n"));
                }
                outcome.output.push_str(&out.text());
                outcome.output_dropped_bytes += out.dropped();
                match result {
                    Ok(code) if outcome.exit_code == 0 => outcome.exit_code = code,
                    Ok(_) => {}
                    Err(e) => failures.push((e.kind(), format!("node {name}: {e}{}", out.failure_note()))),
                }
            }
            Err(e) => failures.push((v1::OperationError::Failed, format!("a node task failed: {e}"))),
        }
    }
    outcome.failures = failures;
    outcome
}

/// Runs the command on one node, its output into `out`; gives `out` back
/// with what came, also when the command failed.
pub async fn on_node(
    ctx: &Arc<Context>,
    node: &DesiredNode,
    command: String,
    timeout: Duration,
    mut out: CommandOutput,
) -> (NodeResult<i32>, CommandOutput) {
    // One command at a time on a micro-VM: its console takes one client.
    // A container's commands each enter it on their own.
    let _console = match v1::NodeKind::try_from(node.kind) {
        Ok(v1::NodeKind::Container) => None,
        _ => Some(ctx.exec_locks.get(&key(node)).lock_owned().await),
    };
    let node = node.clone();
    let ran = ctx
        .blocking(move |ctx| {
            let result = ctx
                .drivers
                .for_node(&node)
                .and_then(|driver| driver.exec(&node, &command, timeout, &mut out));
            Ok::<_, anyhow::Error>((result, out))
        })
        .await;
    match ran {
        Ok(done) => done,
        // The blocking task panicked: what it had is gone with it.
        Err(e) => (Err(e.into()), CommandOutput::kept(0)),
    }
}
