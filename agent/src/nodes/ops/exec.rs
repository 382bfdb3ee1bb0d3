//! EXEC: a shell command in a micro-VM, over its serial console
//! (`<node dir>/console.sock`; protocol in `crate::image`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dclab_proto::v1::{DesiredNode, Operation};

use super::super::spec::MICRO_IMAGE;
use super::super::Context;
use super::Outcome;
use crate::image::SerialConsole;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The console socket exists as soon as qemu runs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_OUTPUT: usize = 64 * 1024;
const CLIPPED: &str = "\n[output clipped to 64 KiB]\n";

pub async fn run(
    ctx: &Arc<Context>,
    op: &Operation,
    known: Vec<DesiredNode>,
    mut failures: Vec<String>,
) -> Outcome {
    let timeout = match op.timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    };
    let several = known.len() + failures.len() > 1;
    let tasks: Vec<_> = known
        .into_iter()
        .map(|node| {
            let (ctx, command) = (ctx.clone(), op.command.clone());
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
            Ok((name, Err(e))) => failures.push(format!("node {name}: {e:#}")),
            Err(e) => failures.push(format!("a node task failed: {e}")),
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
) -> anyhow::Result<(i32, String)> {
    if node.image != MICRO_IMAGE {
        anyhow::bail!(
            "exec runs over the micro-VM's serial console; this node boots image {:?} (use ssh)",
            node.image
        );
    }
    let key = (node.lab.clone(), node.name.clone());
    // The console takes one client at a time.
    let _console = ctx.exec_locks.get(&key).lock_owned().await;
    let socket = ctx.layout.node_dir(&node.lab, &node.name).console();
    ctx.blocking(move |_| run_on_console(socket, &command, timeout))
        .await
}

/// Waiting for the guest and running the command share `timeout`, so the
/// coordinator (which waits a little longer) always gets an answer.
fn run_on_console(socket: PathBuf, command: &str, timeout: Duration) -> anyhow::Result<(i32, String)> {
    let mut console = SerialConsole::connect(&socket, CONNECT_TIMEOUT)?;
    let started = Instant::now();
    console.wait_ready(timeout)?;
    let left = timeout.saturating_sub(started.elapsed());
    if left.is_zero() {
        anyhow::bail!("the guest took all of the {timeout:?} timeout to answer; {command:?} did not run");
    }
    console.run(command, left)
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
