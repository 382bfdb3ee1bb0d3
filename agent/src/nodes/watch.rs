//! The node stream: `WatchNodes` with reconnects. Desired sets go to a
//! watch channel (the reconciler keeps the last one while the coordinator
//! is away, so nodes keep running); operations go to the executor. A
//! dropped stream ends nothing: leases lapse on their own clock.

use std::sync::Arc;

use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::node_update::Update;
use dclab_proto::v1::{NodeSet, Operation, WatchNodesRequest};
use dclab_runtime::net::Channel;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Context;
use crate::retry::{with_backoff, Progress};

/// Runs until `stop`. The host registers through the rule watch, so
/// NotFound only means "not yet": retried like any failure.
pub async fn run(
    channel: Channel,
    ctx: Arc<Context>,
    sets: watch::Sender<Option<NodeSet>>,
    ops: mpsc::UnboundedSender<Operation>,
    stop: CancellationToken,
) {
    let mut last_error = String::new();
    let attempt = |progress| watch_once(channel.clone(), &ctx.host_id, &sets, &ops, progress);
    let ended = |watched: Result<(), tonic::Status>| {
        let error = match watched {
            Ok(()) => "node watch ended by the coordinator".to_string(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                format!("host not registered yet: {}", status.message())
            }
            Err(status) => format!("node watch failed: {}", status.message()),
        };
        if error != last_error {
            warn!(host = %ctx.host_id, %error, "retrying the node watch");
            last_error = error;
        } else {
            debug!(host = %ctx.host_id, %error, "retrying the node watch");
        }
    };
    with_backoff(&stop, attempt, ended).await;
}

async fn watch_once(
    channel: Channel,
    host_id: &str,
    sets: &watch::Sender<Option<NodeSet>>,
    ops: &mpsc::UnboundedSender<Operation>,
    progress: Progress,
) -> Result<(), tonic::Status> {
    let mut client = AgentControlClient::new(channel).max_decoding_message_size(64 << 20);
    let mut stream = client
        .watch_nodes(WatchNodesRequest {
            host_id: host_id.to_string(),
        })
        .await?
        .into_inner();
    info!(host = %host_id, "watching lab nodes");
    while let Some(update) = stream.message().await? {
        progress.made();
        match update.update {
            Some(Update::Nodes(set)) => {
                info!(host = %host_id, version = set.version, nodes = set.nodes.len(), "node set received");
                // Sent even when equal: a new set (or a reconnect) forces a report.
                sets.send_replace(Some(set));
            }
            Some(Update::Operation(op)) => {
                if ops.send(op).is_err() {
                    return Err(tonic::Status::internal("the operation executor stopped"));
                }
            }
            None => warn!(host = %host_id, "empty node update ignored"),
        }
    }
    Ok(())
}
