//! A streamed EXEC (ExecCommand.stream_id): the node's output goes to the
//! coordinator as it comes, over StreamExecOutput, and none is kept. The
//! channel to the call is small and the driver's reading thread waits on
//! it, so a slow reader slows the command instead of filling memory; a
//! reader that goes away (the call ends) stops the command.

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::{self, DesiredNode, ExecChunk, ExecCommand};
use dclab_runtime::net::Channel;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::super::Context;
use super::exec::{on_node, timeout_of};
use super::Outcome;
use crate::exec_output::{CommandOutput, Forward, Forwarded};

/// Messages in flight to the coordinator (each one read of the output).
const WINDOW: usize = 8;
/// How long the coordinator gets to take the last of the output.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    ctx: &Arc<Context>,
    mut client: AgentControlClient<Channel>,
    exec: &ExecCommand,
    mut known: Vec<DesiredNode>,
    failures: Vec<(v1::OperationError, String)>,
) -> Outcome {
    if !failures.is_empty() || known.len() != 1 {
        let mut outcome = Outcome::failed(
            v1::OperationError::Invalid,
            "a streamed exec runs on exactly one node of this host".into(),
        );
        outcome.failures.extend(failures);
        return outcome;
    }
    let node = known.pop().expect("one node");
    let timeout = timeout_of(exec);
    let (tx, rx) = mpsc::channel(WINDOW);
    let hello = ExecChunk {
        stream_id: exec.stream_id,
        data: vec![],
    };
    let _ = tx.send(hello).await;
    let gone = CancellationToken::new();
    let call = {
        let gone = gone.clone();
        tokio::spawn(async move {
            let result = client.stream_exec_output(ReceiverStream::new(rx)).await;
            gone.cancel();
            result
        })
    };
    let forward = ToCoordinator {
        tx,
        gone,
        stream_id: exec.stream_id,
        runtime: tokio::runtime::Handle::current(),
        deadline: tokio::time::Instant::now() + timeout,
    };
    let out = CommandOutput::streamed(Box::new(forward));
    let (result, out) = on_node(ctx, &node, exec.command.clone(), timeout, out).await;
    let dropped = out.dropped();
    // The stream ends with `out`: once the call returns, the coordinator
    // holds every chunk, so they come before the result.
    drop(out);
    match tokio::time::timeout(CLOSE_TIMEOUT, call).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(status))) => {
            debug!(stream = exec.stream_id, error = %status.message(), "the output's reader went away")
        }
        Ok(Err(e)) => warn!(stream = exec.stream_id, error = %e, "the output stream's task failed"),
        Err(_) => warn!(
            stream = exec.stream_id,
            "the coordinator did not take the end of the output in time"
        ),
    }
    let mut outcome = Outcome {
        output_dropped_bytes: dropped,
        ..Outcome::default()
    };
    match result {
        Ok(code) => outcome.exit_code = code,
        Err(e) => outcome
            .failures
            .push((e.kind(), format!("node {}: {e}", node.name))),
    }
    outcome
}

/// Hands output to the StreamExecOutput call, from the driver's blocking
/// thread, waiting while the channel is full up to the exec's deadline.
struct ToCoordinator {
    tx: mpsc::Sender<ExecChunk>,
    gone: CancellationToken,
    stream_id: u64,
    runtime: tokio::runtime::Handle,
    deadline: tokio::time::Instant,
}

impl Forward for ToCoordinator {
    fn forward(&mut self, data: &[u8]) -> Forwarded {
        let chunk = ExecChunk {
            stream_id: self.stream_id,
            data: data.to_vec(),
        };
        self.runtime.block_on(async {
            tokio::select! {
                sent = self.tx.send(chunk) => match sent {
                    Ok(()) => Forwarded::Sent,
                    Err(_) => Forwarded::Gone,
                },
                _ = self.gone.cancelled() => Forwarded::Gone,
                _ = tokio::time::sleep_until(self.deadline) => Forwarded::Late,
            }
        })
    }

    fn gone(&self) -> bool {
        self.gone.is_cancelled()
    }
}
