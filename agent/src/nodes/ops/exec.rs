//! EXEC: one shell command line in nodes, through their driver (the
//! micro-VM's serial console today).

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::v1::{self, DesiredNode, ExecCommand};

use super::super::driver::{key, NodeResult};
use super::super::Context;
use super::Outcome;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_OUTPUT: usize = 64 * 1024;
const CLIPPED: &str = "\n[output clipped to 64 KiB]\n";

pub async fn run(
    ctx: &Arc<Context>,
    exec: &ExecCommand,
    known: Vec<DesiredNode>,
    mut failures: Vec<(v1::OperationError, String)>,
) -> Outcome {
    let timeout = match exec.timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let several = known.len() + failures.len() > 1;
    let tasks: Vec<_> = known
        .into_iter()
        .map(|node| {
            let (ctx, command) = (ctx.clone(), exec.command.clone());
            tokio::spawn(async move {
                let result = on_node(&ctx, &node, command, timeout).await;
                (node.name, result)
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    for task in tasks {
        match task.await {
            Ok((name, Ok((code, output)))) => {
                if outcome.exit_code == 0 {
                    outcome.exit_code = code;
                }
                if several {
                    outcome.output.push_str(&format!("[{name}: exit {code}]\n"));
                }
                outcome.output.push_str(&output);
            }
            Ok((name, Err(e))) => failures.push((e.kind(), format!("node {name}: {e}"))),
            Err(e) => failures.push((v1::OperationError::Failed, format!("a node task failed: {e}"))),
        }
    }
    outcome.output = clip(outcome.output, MAX_OUTPUT);
    outcome.failures = failures;
    outcome
}

async fn on_node(
    ctx: &Arc<Context>,
    node: &DesiredNode,
    command: String,
    timeout: Duration,
) -> NodeResult<(i32, String)> {
    // One command at a time per node: a console takes one client.
    let _console = ctx.exec_locks.get(&key(node)).lock_owned().await;
    let node = node.clone();
    ctx.blocking(move |ctx| ctx.drivers.for_node(&node)?.exec(&node, &command, timeout))
        .await
}

/// At most `max` bytes, cut on a character boundary, with a note when cut.
pub fn clip(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(CLIPPED.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(CLIPPED);
    text
}
