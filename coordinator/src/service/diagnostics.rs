//! The Diagnostics service: what a host's bridge really does, a packet
//! traced through its installed flows and the flows themselves. Both are
//! relayed to the host's agent on its node stream.

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::error::{invalid, not_found};
use dclab_proto::v1::diagnostics_server::Diagnostics as DiagnosticsApi;
use dclab_proto::v1::{self, operation::Action, operation_result::Detail};
use dclab_proto::ApiError;
use tonic::{Request, Response, Status};

use crate::nodes::hub::NodeHub;
use crate::nodes::ops;
use crate::state::State;

const AGENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longer flows are not a packet anyone means.
const MAX_FLOW: usize = 2048;

fn known_host(store: &State, host: &str) -> Result<(), ApiError> {
    if store.read(|t| t.hosts.contains_key(host)) {
        Ok(())
    } else {
        Err(not_found(format!(
            "host {host:?} does not exist; `ctl host ls` lists the hosts"
        )))
    }
}

async fn run(store: &State, nodes: &NodeHub, host: &str, action: Action) -> Result<Option<Detail>, ApiError> {
    known_host(store, host)?;
    let result = nodes.run(host, ops::on_host(action), AGENT_TIMEOUT).await?;
    if !result.ok {
        return Err(ops::result_error(&result, &format!("host {host}")));
    }
    Ok(result.detail)
}

#[tracing::instrument(name = "bridge.trace", skip_all, fields(host = %r.host))]
pub async fn trace(
    store: &State,
    nodes: &NodeHub,
    r: v1::TraceFlowRequest,
) -> Result<v1::FlowTrace, ApiError> {
    if r.flow.is_empty() || r.flow.len() > MAX_FLOW || r.flow.chars().any(|c| c.is_control()) {
        return Err(invalid(format!(
            "the flow to trace must be one line of 1 to {MAX_FLOW} bytes, like in_port=1,icmp,nw_dst=10.0.0.2"
        )));
    }
    let action = Action::Trace(v1::TraceFlowOp { flow: r.flow });
    match run(store, nodes, &r.host, action).await? {
        Some(Detail::Trace(trace)) => Ok(trace),
        _ => Err(ApiError::Internal(format!(
            "the agent of host {} answered a trace without one; upgrade the agent",
            r.host
        ))),
    }
}

#[tracing::instrument(name = "bridge.dump", skip_all, fields(host = %r.host))]
pub async fn dump(store: &State, nodes: &NodeHub, r: v1::DumpFlowsRequest) -> Result<v1::FlowDump, ApiError> {
    match run(store, nodes, &r.host, Action::DumpFlows(v1::DumpFlowsOp {})).await? {
        Some(Detail::Flows(dump)) => Ok(dump),
        _ => Err(ApiError::Internal(format!(
            "the agent of host {} answered a flow dump without flows; upgrade the agent",
            r.host
        ))),
    }
}

/// Asks agents about their bridges: reads the store (which hosts exist)
/// and sends through the node hub.
pub struct DiagnosticsService {
    pub store: Arc<State>,
    pub nodes: Arc<NodeHub>,
}

#[tonic::async_trait]
impl DiagnosticsApi for DiagnosticsService {
    async fn trace_flow(
        &self,
        req: Request<v1::TraceFlowRequest>,
    ) -> Result<Response<v1::FlowTrace>, Status> {
        Ok(Response::new(
            trace(&self.store, &self.nodes, req.into_inner()).await?,
        ))
    }

    async fn dump_flows(&self, req: Request<v1::DumpFlowsRequest>) -> Result<Response<v1::FlowDump>, Status> {
        Ok(Response::new(
            dump(&self.store, &self.nodes, req.into_inner()).await?,
        ))
    }
}
