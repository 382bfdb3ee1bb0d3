//! gRPC services of the coordinator.

pub mod agent;
mod bridges;
mod convert;
pub(crate) mod labs;
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
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

use tonic::server::NamedService;
const TOPOLOGY: &str = <TopologyServer<topology::TopologyService> as NamedService>::NAME;
const AGENT_CONTROL: &str = <AgentControlServer<agent::AgentService> as NamedService>::NAME;
/// The whole server ("") and each service, as health checks name them.
const HEALTH_NAMES: [&str; 3] = ["", TOPOLOGY, AGENT_CONTROL];

async fn set_health(health: &tonic_health::server::HealthReporter, status: tonic_health::ServingStatus) {
    for name in HEALTH_NAMES {
        health.set_service_status(name, status).await;
    }
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
    // The store is loaded before the listener exists, so a connection that
    // succeeds meets a loaded store; NOT_SERVING marks the drain on shutdown.
    let (mut health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, tonic_health::ServingStatus::Serving).await;
    let hub = state.hub.clone();
    let shutdown = async move {
        shutdown.await;
        set_health(&health, tonic_health::ServingStatus::NotServing).await;
        hub.close();
        // Health watchers see NOT_SERVING, then their streams end so the
        // graceful shutdown does not wait on them.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        for name in HEALTH_NAMES {
            health.clear_service_status(name).await;
        }
    };
    let (reflection_v1, reflection_v1alpha) = reflection()?;
    let agent = AgentControlServer::new(agent::AgentService { state }).max_encoding_message_size(256 << 20);
    let incoming = dclab_proto::net::incoming(listener, tls)?;
    dclab_proto::net::server()
        .add_service(topology)
        .add_service(agent)
        .add_service(health_service)
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection_v1,
            auth::operators_only,
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection_v1alpha,
            auth::operators_only,
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Server reflection in both versions clients use (grpcurl asks v1, then
/// v1alpha), describing dclab's services and the health service.
fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(dclab_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
