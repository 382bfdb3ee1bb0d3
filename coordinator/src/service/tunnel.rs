//! The Tunnels service: a TCP connection to a port of a lab node, carried
//! from ctl to the coordinator (Tunnels.Tunnel) and from the node's agent back to it
//! (AgentControl.TunnelBack), spliced here. The agent connects from inside
//! the node, so nothing routes into the lab: every byte passes two mutual
//! TLS streams, and only operator certificates may open one.

use std::time::Duration;

use dclab_proto::error::{invalid, not_found, unavailable};
use dclab_proto::v1::{self, operation::Action, tunnel_data::Msg, TunnelData};
use dclab_proto::ApiError;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use dclab_proto::v1::tunnels_server::Tunnels as TunnelsApi;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::lab::Labs;
use crate::nodes::ops;
use crate::relay::Tunnels;

pub type TunnelStream = ReceiverStream<Result<TunnelData, Status>>;

/// The agent has this long to connect and call back.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
use dclab_runtime::tunnel::WINDOW;

fn first_open(msg: Option<TunnelData>) -> Result<v1::TunnelOpen, ApiError> {
    match msg.and_then(|m| m.msg) {
        Some(Msg::Open(open)) => Ok(open),
        _ => Err(invalid("a tunnel's first message must be open {lab, node, port}")),
    }
}

/// ctl's end: opens the tunnel through the node's agent, then splices.
pub async fn open(
    labs: &Labs,
    tunnels: &Tunnels,
    mut from_ctl: Streaming<TunnelData>,
) -> Result<TunnelStream, ApiError> {
    let first = from_ctl
        .message()
        .await
        .map_err(|s| invalid(format!("reading the tunnel's first message: {}", s.message())))?;
    let open = first_open(first)?;
    if open.port == 0 || open.port > u32::from(u16::MAX) {
        return Err(invalid(format!("port {} is not a TCP port (1-65535)", open.port)));
    }
    let host = crate::lab::calls::node_host(labs, &open.lab, &open.node)?;
    let (id, agent_end) = tunnels.expect(&host);
    let ask = v1::TunnelOpen {
        tunnel: id,
        ..open.clone()
    };
    let op = ops::on_nodes(&open.lab, vec![open.node.clone()], Action::OpenTunnel(ask));
    let result = labs.nodes.run(&host, op, OPEN_TIMEOUT).await;
    let result = match result {
        Ok(r) if r.ok => r,
        Ok(r) => {
            tunnels.forget(id);
            let context = format!(
                "port {} of node {} of lab {} on {host}",
                open.port, open.node, open.lab
            );
            return Err(ops::result_error(&r, &context));
        }
        Err(e) => {
            tunnels.forget(id);
            return Err(e);
        }
    };
    debug!(id, micros = result.micros, "the agent connected");
    let (from_agent, to_agent) = match tokio::time::timeout(OPEN_TIMEOUT, agent_end).await {
        Ok(Ok(end)) => end,
        _ => {
            tunnels.forget(id);
            return Err(unavailable(format!(
                "the agent of host {host} connected to the node but did not call back"
            )));
        }
    };
    info!(id, lab = %open.lab, node = %open.node, port = open.port, %host, "tunnel open");
    let (to_ctl, rx) = mpsc::channel(WINDOW);
    let closing = tunnels.closing.clone();
    tokio::spawn(pump(from_ctl, to_agent, closing.clone()));
    tokio::spawn(async move {
        pump(from_agent, to_ctl, closing).await;
        info!(id, "tunnel closed");
    });
    Ok(ReceiverStream::new(rx))
}

/// The agent's end: pairs it with the waiting ctl end.
pub fn back(
    tunnels: &Tunnels,
    from_agent: Streaming<TunnelData>,
    open: v1::TunnelOpen,
) -> Result<TunnelStream, ApiError> {
    let Some(waiting) = tunnels.take(open.tunnel) else {
        return Err(not_found(format!("no tunnel {} is waiting", open.tunnel)));
    };
    let (to_agent, rx) = mpsc::channel(WINDOW);
    if waiting.send((from_agent, to_agent)).is_err() {
        return Err(unavailable("the tunnel's caller went away"));
    }
    Ok(ReceiverStream::new(rx))
}

pub fn first(msg: Option<TunnelData>) -> Result<v1::TunnelOpen, ApiError> {
    first_open(msg)
}

/// Copies data messages from one stream to the other; ends (closing the
/// other direction's sender) at the end of the stream, an error, or the
/// coordinator's shutdown.
async fn pump(
    mut from: Streaming<TunnelData>,
    to: mpsc::Sender<Result<TunnelData, Status>>,
    closing: tokio_util::sync::CancellationToken,
) {
    loop {
        let next = tokio::select! {
            next = from.message() => next,
            _ = closing.cancelled() => {
                let _ = to.try_send(Err(Status::unavailable("the coordinator is shutting down")));
                return;
            }
        };
        match next {
            Ok(Some(TunnelData {
                msg: Some(Msg::Data(data)),
            })) => {
                let chunk = TunnelData {
                    msg: Some(Msg::Data(data)),
                };
                if to.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(status) => {
                let _ = to.send(Err(status)).await;
                return;
            }
        }
    }
}

/// Opens tunnels: finds the node (labs), asks its agent (node hub) and
/// waits for its call back (tunnels).
pub struct TunnelsService {
    pub labs: crate::lab::Labs,
    pub tunnels: Arc<Tunnels>,
}

#[tonic::async_trait]
impl TunnelsApi for TunnelsService {
    type TunnelStream = TunnelStream;

    async fn tunnel(
        &self,
        req: Request<tonic::Streaming<v1::TunnelData>>,
    ) -> Result<Response<Self::TunnelStream>, Status> {
        Ok(Response::new(
            open(&self.labs, &self.tunnels, req.into_inner()).await?,
        ))
    }
}
