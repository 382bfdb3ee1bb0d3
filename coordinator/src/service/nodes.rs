//! AgentControl's node calls: the node stream (desired set, then changes
//! and operations) and what agents report back.

use std::sync::Arc;

use dclab_proto::error::{not_found, unavailable};
use dclab_proto::v1::{self, node_update::Update};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::{info, Instrument};

use crate::nodes::hub::HostNodes;
use crate::nodes::hub::NodeHub;
use crate::state::State;

pub type NodeStream = ReceiverStream<Result<v1::NodeUpdate, Status>>;

fn node_set(set: &HostNodes) -> v1::NodeUpdate {
    v1::NodeUpdate {
        update: Some(Update::Nodes(v1::NodeSet {
            version: set.version,
            nodes: set.nodes.clone(),
        })),
    }
}

pub fn watch(store: &State, nodes: &Arc<NodeHub>, host: String) -> Result<NodeStream, Status> {
    if !store.read(|t| t.hosts.contains_key(&host)) {
        return Err(not_found(format!("host {host:?} is not registered; call Register first")).into());
    }
    if nodes.is_closed() {
        return Err(unavailable("the coordinator is shutting down; try again shortly").into());
    }
    let (tx, rx) = mpsc::channel(16);
    let (ops_tx, mut ops_rx) = mpsc::channel(64);
    let mut sets = nodes.subscribe(&host);
    let (conn, end) = nodes.connect(&host, ops_tx);
    let hub = nodes.clone();
    // The stream's task keeps the rpc's span, so its logs and spans nest.
    tokio::spawn(
        async move {
            let first = sets.borrow_and_update().clone();
            info!(host = %host, nodes = first.nodes.len(), version = first.version, "node watch started");
            if tx.send(Ok(node_set(&first))).await.is_ok() {
                loop {
                    let update = tokio::select! {
                        changed = sets.changed() => match changed {
                            Ok(()) => node_set(&sets.borrow_and_update().clone()),
                            Err(_) => break,
                        },
                        op = ops_rx.recv() => match op {
                            Some(op) => v1::NodeUpdate { update: Some(Update::Operation(op)) },
                            None => break,
                        },
                        _ = tx.closed() => break,
                        _ = end.cancelled() => {
                            info!(host = %host, "node watch ended: a newer stream of the host, or shutdown");
                            break;
                        }
                    };
                    if tx.send(Ok(update)).await.is_err() {
                        break;
                    }
                }
            }
            hub.disconnect(&host, conn);
            info!(host = %host, "node watch ended");
        }
        .in_current_span(),
    );
    Ok(ReceiverStream::new(rx))
}
