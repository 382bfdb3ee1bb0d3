//! The agent's end of a tunnel to a node's port: connect from inside the
//! node (its driver knows how), call the coordinator back with
//! TunnelBack, and copy bytes both ways until either side closes.

use std::sync::Arc;

use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::{self, tunnel_data::Msg, DesiredNode, TunnelData};
use dclab_runtime::net::Channel;
use dclab_runtime::tunnel::WINDOW;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info};

use super::{Context, Outcome};
use crate::nodes::driver::about;

pub async fn open(
    ctx: &Arc<Context>,
    mut client: AgentControlClient<Channel>,
    open: v1::TunnelOpen,
    node: Option<DesiredNode>,
) -> Outcome {
    let Some(node) = node else {
        let message = format!(
            "node {} of lab {} is not on host {}",
            open.node, open.lab, ctx.host_id
        );
        return Outcome::failed(v1::OperationError::NotFound, message);
    };
    let Ok(port) = u16::try_from(open.port) else {
        return Outcome::failed(
            v1::OperationError::Invalid,
            format!("port {} is not a TCP port", open.port),
        );
    };
    let what = about(&node);
    let connected = ctx
        .blocking(move |ctx| ctx.drivers.for_node(&node)?.connect(&node, port))
        .await;
    let stream = match connected.and_then(|s| {
        s.set_nonblocking(true).map_err(|e| anyhow::anyhow!(e))?;
        Ok(tokio::net::TcpStream::from_std(s).map_err(|e| anyhow::anyhow!(e))?)
    }) {
        Ok(s) => s,
        Err(e) => return Outcome::failed(e.kind(), format!("port {port} of {what}: {e}")),
    };
    let (to_coordinator, rx) = mpsc::channel(WINDOW);
    let hello = TunnelData {
        msg: Some(Msg::Open(v1::TunnelOpen {
            tunnel: open.tunnel,
            ..v1::TunnelOpen::default()
        })),
    };
    let _ = to_coordinator.send(hello).await;
    let from_coordinator = match client.tunnel_back(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            let message = format!("calling the coordinator back: {}", s.message());
            return Outcome::failed(v1::OperationError::Failed, message);
        }
    };
    info!(tunnel = open.tunnel, node = %what, port, "tunnel open");
    tokio::spawn(splice(stream, to_coordinator, from_coordinator, open.tunnel));
    Outcome::default()
}

/// Node to coordinator and back. When the coordinator's side ends, the
/// node's connection is shut for writing (the node may still answer); a
/// broken stream ends both.
async fn splice(
    stream: tokio::net::TcpStream,
    to_coordinator: mpsc::Sender<TunnelData>,
    mut from_coordinator: tonic::Streaming<TunnelData>,
    tunnel: u64,
) {
    let (read, mut write) = stream.into_split();
    let up = tokio::spawn(dclab_runtime::tunnel::send_all(read, to_coordinator));
    let broken = loop {
        match from_coordinator.message().await {
            Ok(Some(TunnelData {
                msg: Some(Msg::Data(data)),
            })) => {
                if write.write_all(&data).await.is_err() {
                    break true;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    let _ = write.shutdown().await;
    if broken {
        up.abort();
    } else {
        let _ = up.await;
    }
    debug!(tunnel, broken, "tunnel closed");
}
