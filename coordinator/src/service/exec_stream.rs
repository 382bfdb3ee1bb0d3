//! Streamed exec: ctl's ExecNodeStream and the agent's StreamExecOutput,
//! joined here by a stream id the exec operation carries (as tunnels are).
//! The agent sends the output as it comes, then closes its stream, then
//! reports the result; ctl gets the data, then one end message.
//!
//! Every channel on the way is bounded and waited on, so a slow ctl slows
//! the command rather than filling memory; when ctl goes away, the relay
//! ends, the agent's call is answered with an error, and the agent stops
//! the command.

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::error::invalid;
use dclab_proto::v1::{self, exec_output::Msg, operation::Action, ExecChunk, ExecOutput};
use dclab_proto::ApiError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{debug, Instrument};

use crate::lab::calls::{exec_error, exec_plan};
use crate::lab::Labs;
use crate::nodes::ops;
use crate::relay::{ExecSink, ExecStreams, EXEC_WINDOW};

pub type ExecStream = ReceiverStream<Result<ExecOutput, Status>>;

/// How long the agent's stream gets to end once its result came.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// ctl's end: sends the exec operation and relays what comes back.
#[tracing::instrument(name = "node.exec_stream", skip_all, fields(lab = %r.lab, node = %r.node))]
pub async fn start(
    labs: &Labs,
    streams: Arc<ExecStreams>,
    r: v1::ExecNodeRequest,
) -> Result<ExecStream, ApiError> {
    let mut plan = exec_plan(labs, &r)?;
    let (id, chunks) = streams.expect(&plan.host);
    plan.exec.stream_id = id;
    let op = ops::on_nodes(&r.lab, vec![r.node.clone()], Action::Exec(plan.exec));
    // Its own task: the operation ends (and is forgotten) even if ctl goes.
    let run = {
        let (nodes, host) = (labs.nodes.clone(), plan.host.clone());
        tokio::spawn(async move { nodes.run(&host, op, plan.wait).await }.in_current_span())
    };
    let (to_ctl, rx) = mpsc::channel(EXEC_WINDOW);
    let relay = Relay {
        streams,
        id,
        request: r,
        host: plan.host,
    };
    tokio::spawn(relay.run(chunks, run, to_ctl).in_current_span());
    Ok(ReceiverStream::new(rx))
}

struct Relay {
    streams: Arc<ExecStreams>,
    id: u64,
    request: v1::ExecNodeRequest,
    host: String,
}

type RunResult = Result<v1::OperationResult, ApiError>;

impl Relay {
    async fn run(
        self,
        mut chunks: mpsc::Receiver<Vec<u8>>,
        mut run: JoinHandle<RunResult>,
        to_ctl: mpsc::Sender<Result<ExecOutput, Status>>,
    ) {
        let result = loop {
            tokio::select! {
                chunk = chunks.recv() => match chunk {
                    Some(data) => {
                        if to_ctl.send(Ok(data_message(data))).await.is_err() {
                            break None;
                        }
                    }
                    // The agent's stream ended; its result follows.
                    None => break Some((&mut run).await),
                },
                result = &mut run => {
                    // No stream came (the node failed first), or its end is
                    // on the way: what is left comes before the end.
                    self.streams.forget(self.id);
                    if !drain(&mut chunks, &to_ctl).await {
                        break None;
                    }
                    break Some(result);
                }
                _ = to_ctl.closed() => break None,
            }
        };
        self.streams.forget(self.id);
        let Some(result) = result else {
            // Dropping `chunks` answers the agent's call with an error: it
            // stops the command.
            debug!(stream = self.id, "the caller went away");
            return;
        };
        let end = match result {
            Ok(Ok(r)) if r.ok => self.end(r, &to_ctl).await,
            Ok(Ok(r)) => Err(exec_error(&r, &self.request, &self.host).into()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(Status::internal(format!("the exec task failed: {e}"))),
        };
        let _ = to_ctl.send(end).await;
    }

    /// The end message; an agent that kept the output instead (one that
    /// does not stream) has it sent first.
    async fn end(
        &self,
        r: v1::OperationResult,
        to_ctl: &mpsc::Sender<Result<ExecOutput, Status>>,
    ) -> Result<ExecOutput, Status> {
        if !r.output.is_empty() {
            let _ = to_ctl.send(Ok(data_message(r.output.into_bytes()))).await;
        }
        Ok(ExecOutput {
            msg: Some(Msg::End(v1::ExecEnd {
                exit_code: r.exit_code,
                output_dropped_bytes: r.output_dropped_bytes,
            })),
        })
    }
}

fn data_message(data: Vec<u8>) -> ExecOutput {
    ExecOutput {
        msg: Some(Msg::Data(data)),
    }
}

/// Relays what is left until the agent's stream ends; false if ctl went.
async fn drain(
    chunks: &mut mpsc::Receiver<Vec<u8>>,
    to_ctl: &mpsc::Sender<Result<ExecOutput, Status>>,
) -> bool {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while let Ok(Some(data)) = tokio::time::timeout_at(deadline, chunks.recv()).await {
        if to_ctl.send(Ok(data_message(data))).await.is_err() {
            return false;
        }
    }
    true
}

/// The agent's end: its first message named the stream (and the caller
/// checked the agent may answer it); the rest is output, relayed until the
/// agent's stream ends. An error when the reader went away.
pub async fn receive(mut from_agent: Streaming<ExecChunk>, sink: ExecSink) -> Result<(), Status> {
    loop {
        let chunk = tokio::select! {
            chunk = from_agent.message() => chunk?,
            _ = sink.closed() => return Err(gone()),
        };
        match chunk {
            Some(c) if c.data.is_empty() => {}
            Some(c) => sink.send(c.data).await.map_err(|_| gone())?,
            None => return Ok(()),
        }
    }
}

fn gone() -> Status {
    Status::cancelled("the reader of the output went away")
}

/// The stream a StreamExecOutput call names in its first message.
pub fn first(chunk: Option<ExecChunk>) -> Result<u64, ApiError> {
    match chunk {
        Some(c) if c.stream_id != 0 => Ok(c.stream_id),
        _ => Err(invalid("StreamExecOutput's first message names the stream")),
    }
}
