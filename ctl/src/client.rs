//! The coordinator's operator services over one channel: `Operator` holds a
//! client of each (Topology, Labs, Experiments, Diagnostics, Tunnels) and
//! sends every call to the service that owns it, so a command names the
//! call, not the service.

use dclab_proto::v1::{
    self, diagnostics_client::DiagnosticsClient, experiments_client::ExperimentsClient,
    labs_client::LabsClient, topology_client::TopologyClient, tunnels_client::TunnelsClient,
};
use dclab_runtime::net::Channel;
use tonic::codec::Streaming;
use tonic::{IntoRequest, IntoStreamingRequest, Response, Status};

#[derive(Clone)]
pub struct Operator {
    pub topology: TopologyClient<Channel>,
    pub labs: LabsClient<Channel>,
    pub experiments: ExperimentsClient<Channel>,
    pub diagnostics: DiagnosticsClient<Channel>,
    pub tunnels: TunnelsClient<Channel>,
}

impl Operator {
    pub fn new(channel: Channel) -> Operator {
        Operator {
            topology: TopologyClient::new(channel.clone()),
            labs: LabsClient::new(channel.clone()),
            experiments: ExperimentsClient::new(channel.clone()),
            diagnostics: DiagnosticsClient::new(channel.clone()),
            tunnels: TunnelsClient::new(channel),
        }
    }

    /// The largest reply every service's client accepts.
    pub fn max_decoding_message_size(self, limit: usize) -> Operator {
        Operator {
            topology: self.topology.max_decoding_message_size(limit),
            labs: self.labs.max_decoding_message_size(limit),
            experiments: self.experiments.max_decoding_message_size(limit),
            diagnostics: self.diagnostics.max_decoding_message_size(limit),
            tunnels: self.tunnels.max_decoding_message_size(limit),
        }
    }

    /// The largest request every service's client sends.
    pub fn max_encoding_message_size(self, limit: usize) -> Operator {
        Operator {
            topology: self.topology.max_encoding_message_size(limit),
            labs: self.labs.max_encoding_message_size(limit),
            experiments: self.experiments.max_encoding_message_size(limit),
            diagnostics: self.diagnostics.max_encoding_message_size(limit),
            tunnels: self.tunnels.max_encoding_message_size(limit),
        }
    }
}

/// Unary calls, each sent to the service (field) that owns it.
macro_rules! unary {
    ($($service:ident . $call:ident ($request:ty) -> $reply:ty;)*) => {
        impl Operator {
            $(
                pub async fn $call(&mut self, request: impl IntoRequest<$request>) -> Result<Response<$reply>, Status> {
                    self.$service.$call(request).await
                }
            )*
        }
    };
}

unary! {
    topology.create_host(v1::Host) -> v1::Host;
    topology.list_hosts(v1::ListHostsRequest) -> v1::ListHostsResponse;
    topology.delete_host(v1::DeleteHostRequest) -> v1::Empty;
    topology.create_tenant(v1::CreateTenantRequest) -> v1::Tenant;
    topology.list_tenants(v1::ListTenantsRequest) -> v1::ListTenantsResponse;
    topology.delete_tenant(v1::DeleteTenantRequest) -> v1::Empty;
    topology.create_network(v1::CreateNetworkRequest) -> v1::Network;
    topology.list_networks(v1::ListNetworksRequest) -> v1::ListNetworksResponse;
    topology.delete_network(v1::DeleteNetworkRequest) -> v1::Empty;
    topology.create_port(v1::CreatePortRequest) -> v1::Port;
    topology.create_ports(v1::CreatePortsRequest) -> v1::ListPortsResponse;
    topology.list_ports(v1::ListPortsRequest) -> v1::ListPortsResponse;
    topology.delete_port(v1::DeletePortRequest) -> v1::Empty;
    topology.get_rules(v1::GetRulesRequest) -> v1::HostRules;
    topology.status(v1::StatusRequest) -> v1::CoordinatorStatus;
    labs.plan_lab(v1::PlanLabRequest) -> v1::LabPlan;
    labs.apply_lab(v1::ApplyLabRequest) -> v1::Lab;
    labs.delete_lab(v1::DeleteLabRequest) -> v1::DeleteLabResponse;
    labs.list_labs(v1::ListLabsRequest) -> v1::ListLabsResponse;
    labs.get_lab(v1::GetLabRequest) -> v1::Lab;
    labs.create_snapshot(v1::SnapshotRequest) -> v1::Snapshot;
    labs.restore_snapshot(v1::SnapshotRequest) -> v1::Snapshot;
    labs.delete_snapshot(v1::SnapshotRequest) -> v1::Empty;
    labs.list_snapshots(v1::ListSnapshotsRequest) -> v1::ListSnapshotsResponse;
    labs.exec_node(v1::ExecNodeRequest) -> v1::ExecNodeResponse;
    diagnostics.trace_flow(v1::TraceFlowRequest) -> v1::FlowTrace;
    diagnostics.dump_flows(v1::DumpFlowsRequest) -> v1::FlowDump;
    experiments.abort_run(v1::RunRef) -> v1::Empty;
    experiments.continue_run(v1::RunRef) -> v1::Empty;
    experiments.list_runs(v1::ListRunsRequest) -> v1::ListRunsResponse;
    experiments.get_run(v1::RunRef) -> v1::Run;
}

/// The streaming calls.
impl Operator {
    pub async fn exec_node_stream(
        &mut self,
        request: impl IntoRequest<v1::ExecNodeRequest>,
    ) -> Result<Response<Streaming<v1::ExecOutput>>, Status> {
        self.labs.exec_node_stream(request).await
    }

    pub async fn run_experiment(
        &mut self,
        request: impl IntoRequest<v1::RunExperimentRequest>,
    ) -> Result<Response<Streaming<v1::RunEvent>>, Status> {
        self.experiments.run_experiment(request).await
    }

    pub async fn tunnel(
        &mut self,
        request: impl IntoStreamingRequest<Message = v1::TunnelData>,
    ) -> Result<Response<Streaming<v1::TunnelData>>, Status> {
        self.tunnels.tunnel(request).await
    }
}
