//! gRPC services of the coordinator.

pub mod agent;
mod convert;
pub mod topology;

use std::net::SocketAddr;
use std::sync::Arc;

use dclab_proto::v1::agent_control_server::AgentControlServer;
use dclab_proto::v1::topology_server::TopologyServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::state::State;

/// Serves both services on `listener` until `shutdown` resolves.
pub async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let topology = TopologyServer::new(topology::TopologyService { state: state.clone() })
        .max_decoding_message_size(16 << 20);
    let agent = AgentControlServer::new(agent::AgentService { state }).max_encoding_message_size(256 << 20);
    dclab_proto::net::server()
        .add_service(topology)
        .add_service(agent)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

pub fn local_addr(listener: &TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}
