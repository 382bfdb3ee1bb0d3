//! gRPC services of the coordinator.

pub mod agent;
mod bridges;
mod convert;
mod labs;
mod nodes;
pub mod topology;
pub mod tunnel;

use std::sync::Arc;

use dclab_proto::tls::TlsFiles;
use dclab_proto::v1::agent_control_server::AgentControlServer;
use dclab_proto::v1::topology_server::TopologyServer;
use tokio::net::TcpListener;

use crate::auth;
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] dclab_proto::tls::TlsError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves both services on `listener` (TLS with `tls`, else plaintext)
/// until `shutdown` resolves.
pub async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    tls: Option<&TlsFiles>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let topology = TopologyServer::new(topology::TopologyService { state: state.clone() })
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(256 << 20);
    let topology = tonic::service::interceptor::InterceptedService::new(topology, auth::operators_only);
    let hub = state.hub.clone();
    let shutdown = async move {
        shutdown.await;
        hub.close();
    };
    let agent = AgentControlServer::new(agent::AgentService { state }).max_encoding_message_size(256 << 20);
    let incoming = dclab_proto::net::incoming(listener, tls)?;
    dclab_proto::net::server()
        .add_service(topology)
        .add_service(agent)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
