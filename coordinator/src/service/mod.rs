//! gRPC services of the coordinator.

//! One server file per service: `topology.rs`, `labs.rs`,
//! `experiments.rs`, `diagnostics.rs`, `tunnel.rs` (Tunnels) for operators,
//! `agent.rs` (with `nodes.rs`) for agents.

pub mod agent;
mod convert;
pub mod diagnostics;
pub mod exec_stream;
pub mod experiments;
pub mod labs;
mod nodes;
mod register_limit;
pub mod topology;
pub mod tunnel;

use std::sync::Arc;

use dclab_proto::v1::agent_control_server::AgentControlServer;
use dclab_proto::v1::diagnostics_server::DiagnosticsServer;
use dclab_proto::v1::experiments_server::ExperimentsServer;
use dclab_proto::v1::labs_server::LabsServer;
use dclab_proto::v1::topology_server::TopologyServer;
use dclab_proto::v1::tunnels_server::TunnelsServer;
use dclab_runtime::tls::TlsFiles;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::auth;
use crate::coordinator::Coordinator;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] dclab_runtime::tls::TlsError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

use tonic::server::NamedService;
const TOPOLOGY: &str = <TopologyServer<topology::TopologyService> as NamedService>::NAME;
const LABS: &str = <LabsServer<labs::LabsService> as NamedService>::NAME;
const EXPERIMENTS: &str = <ExperimentsServer<experiments::ExperimentsService> as NamedService>::NAME;
const DIAGNOSTICS: &str = <DiagnosticsServer<diagnostics::DiagnosticsService> as NamedService>::NAME;
const TUNNELS: &str = <TunnelsServer<tunnel::TunnelsService> as NamedService>::NAME;
const AGENT_CONTROL: &str = <AgentControlServer<agent::AgentService> as NamedService>::NAME;
/// The whole server ("") and each service, as health checks name them.
const HEALTH_NAMES: [&str; 7] = [
    "",
    TOPOLOGY,
    LABS,
    EXPERIMENTS,
    DIAGNOSTICS,
    TUNNELS,
    AGENT_CONTROL,
];

async fn set_health(health: &tonic_health::server::HealthReporter, status: tonic_health::ServingStatus) {
    for name in HEALTH_NAMES {
        health.set_service_status(name, status).await;
    }
}

/// Serves every service on `listener` (TLS with `tls`, else plaintext)
/// until `shutdown` resolves.
pub async fn serve(
    parts: Coordinator,
    listener: TcpListener,
    tls: Option<&TlsFiles>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    use tonic::service::interceptor::InterceptedService;
    // Operators only, on every operator service.
    let topology = TopologyServer::new(topology::TopologyService {
        store: parts.store.clone(),
        rules: parts.rules.clone(),
        startup_compile: parts.startup_compile,
    })
    .max_decoding_message_size(16 << 20)
    .max_encoding_message_size(256 << 20);
    let topology = InterceptedService::new(topology, auth::operators_only);
    let labs = LabsServer::new(labs::LabsService {
        labs: parts.labs(),
        exec_streams: parts.exec_streams.clone(),
    })
    .max_decoding_message_size(16 << 20)
    .max_encoding_message_size(256 << 20);
    let labs = InterceptedService::new(labs, auth::operators_only);
    let experiments = ExperimentsServer::new(experiments::ExperimentsService {
        experiments: parts.experiments(),
    })
    .max_decoding_message_size(16 << 20)
    .max_encoding_message_size(256 << 20);
    let experiments = InterceptedService::new(experiments, auth::operators_only);
    let diagnostics = DiagnosticsServer::new(diagnostics::DiagnosticsService {
        store: parts.store.clone(),
        nodes: parts.nodes.clone(),
    })
    .max_decoding_message_size(16 << 20)
    .max_encoding_message_size(256 << 20);
    let diagnostics = InterceptedService::new(diagnostics, auth::operators_only);
    let tunnels = TunnelsServer::new(tunnel::TunnelsService {
        labs: parts.labs(),
        tunnels: parts.tunnels.clone(),
    })
    .max_decoding_message_size(16 << 20)
    .max_encoding_message_size(256 << 20);
    let tunnels = InterceptedService::new(tunnels, auth::operators_only);
    // The store is loaded before the listener exists, so a connection that
    // succeeds meets a loaded store; NOT_SERVING marks the drain on shutdown.
    let (mut health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, tonic_health::ServingStatus::Serving).await;
    let signalled = Arc::new(tokio::sync::Notify::new());
    let stopping = signalled.clone();
    let agent = AgentControlServer::new(agent::AgentService {
        store: parts.store.clone(),
        rules: parts.rules.clone(),
        nodes: parts.nodes.clone(),
        tunnels: parts.tunnels.clone(),
        exec_streams: parts.exec_streams.clone(),
        register_limit: Default::default(),
    })
    .max_encoding_message_size(256 << 20);
    let shutdown = async move {
        shutdown.await;
        stopping.notify_one();
        info!("shutting down: runs aborted and healed, streams closed");
        set_health(&health, tonic_health::ServingStatus::NotServing).await;
        stop_parts(&parts).await;
        // Health watchers see NOT_SERVING, then their streams end so the
        // graceful shutdown does not wait on them.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        for name in HEALTH_NAMES {
            health.clear_service_status(name).await;
        }
    };
    let (reflection_v1, reflection_v1alpha) = reflection()?;
    let incoming = dclab_runtime::net::incoming(listener, tls)?;
    let server = dclab_runtime::net::server()
        .add_service(topology)
        .add_service(labs)
        .add_service(experiments)
        .add_service(diagnostics)
        .add_service(tunnels)
        .add_service(agent)
        .add_service(health_service)
        .add_service(InterceptedService::new(reflection_v1, auth::operators_only))
        .add_service(InterceptedService::new(reflection_v1alpha, auth::operators_only))
        .serve_with_incoming_shutdown(incoming, shutdown);
    // However long callers hold their connections, the process ends
    // SHUTDOWN_WITHIN after the signal.
    let deadline = async {
        signalled.notified().await;
        tokio::time::sleep(SHUTDOWN_WITHIN).await;
    };
    tokio::select! {
        served = server => served?,
        _ = deadline => warn!("connections still open {} s after the signal; stopping anyway", SHUTDOWN_WITHIN.as_secs_f32()),
    }
    Ok(())
}

/// From the shutdown signal to the process's end, at most.
const SHUTDOWN_WITHIN: std::time::Duration = std::time::Duration::from_millis(4500);
/// How long runs get to heal their faults through the agents at shutdown.
const RUNS_HEAL_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs aborted (each heals its faults through its agents; one that cannot
/// in time is recorded as aborted and its agents heal when its leases
/// lapse), then every stream ends: node streams, tunnels, rule watches.
async fn stop_parts(parts: &Coordinator) {
    let why = "the coordinator shut down during the run; its faults were healed";
    let left = parts.runs.abort_all(why, RUNS_HEAL_WITHIN).await;
    if !left.is_empty() {
        warn!(runs = ?left, "runs still healing at shutdown; their agents heal when the leases lapse");
        parts.runs.close_interrupted();
    }
    parts.nodes.close_all();
    parts.tunnels.close_all();
    parts.rules.close();
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
