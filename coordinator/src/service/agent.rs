//! The AgentControl service: registration, the rule watch stream and acks.

use std::sync::Arc;

use dclab_proto::error::{not_found, unavailable};
use dclab_proto::v1::{self, agent_control_server::AgentControl};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{debug, info, Instrument};

use super::convert;
use crate::nodes::hub::NodeHub;
use crate::relay::{ExecStreams, Tunnels};
use crate::rules::RuleHub;
use crate::rules::{diff_rules, HostRules};
use crate::state::State;
use crate::{auth, mutate};

/// How long a TunnelBack stream may take to send its first message.
const TUNNEL_OPEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Agents register into the store, watch their rules and nodes, report
/// operations, and call back for tunnels and streamed execs.
pub struct AgentService {
    pub store: Arc<State>,
    pub rules: Arc<RuleHub>,
    pub nodes: Arc<NodeHub>,
    pub tunnels: Arc<Tunnels>,
    pub exec_streams: Arc<ExecStreams>,
    pub register_limit: super::register_limit::RegisterLimit,
}

#[tonic::async_trait]
impl AgentControl for AgentService {
    async fn register(&self, req: Request<v1::RegisterRequest>) -> Result<Response<v1::Host>, Status> {
        auth::agent_for(&req, "Register", &req.get_ref().host_id)?;
        let r = req.into_inner();
        let hub = &self.rules;
        let host = self.store.write_reply(
            |v| {
                let ops = mutate::put_host(v.topo, &r.host_id, &r.uplink, &r.mac, (r.vcpus, r.memory_mib))?;
                if !ops.is_empty() {
                    self.register_limit.admit(&r.host_id)?;
                }
                Ok(ops)
            },
            |t, _| t.hosts.get(&r.host_id).map(|h| convert::host(t, hub, h)),
        )?;
        info!(host = %r.host_id, uplink = %r.uplink, mac = %r.mac, "agent registered");
        let host =
            host.ok_or_else(|| Status::internal(format!("host {} was registered but is gone", r.host_id)))?;
        Ok(Response::new(host))
    }

    type WatchRulesStream = ReceiverStream<Result<v1::RuleUpdate, Status>>;

    async fn watch_rules(
        &self,
        req: Request<v1::WatchRulesRequest>,
    ) -> Result<Response<Self::WatchRulesStream>, Status> {
        auth::agent_for(&req, "WatchRules", &req.get_ref().host_id)?;
        let host = req.into_inner().host_id;
        if !self.store.read(|t| t.hosts.contains_key(&host)) {
            return Err(not_found(format!("host {host:?} is not registered; call Register first")).into());
        }
        let closing = self.rules.closing();
        if closing.is_cancelled() {
            return Err(unavailable("the coordinator is shutting down; try again shortly").into());
        }
        let (tx, rx) = mpsc::channel(16);
        let mut rules = self.rules.subscribe(&host);
        let guard = self.rules.watching(&host);
        tokio::spawn(async move {
            let _guard = guard;
            let mut sent = rules.borrow_and_update().clone();
            info!(host = %host, version = sent.version, flows = sent.flow_count(), "rule watch started");
            if tx.send(Ok(full(&sent))).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    changed = rules.changed() => if changed.is_err() { break },
                    _ = closing.cancelled() => break,
                }
                let next = rules.borrow_and_update().clone();
                let update = delta(&sent, &next);
                debug!(host = %host, version = next.version, added = update.added.len(), removed = update.removed.len(), "rules changed");
                if tx.send(Ok(update)).await.is_err() {
                    break;
                }
                sent = next;
            }
            info!(host = %host, "rule watch ended");
        }.in_current_span());
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type WatchNodesStream = super::nodes::NodeStream;

    async fn watch_nodes(
        &self,
        req: Request<v1::WatchNodesRequest>,
    ) -> Result<Response<Self::WatchNodesStream>, Status> {
        auth::agent_for(&req, "WatchNodes", &req.get_ref().host_id)?;
        let host = req.into_inner().host_id;
        Ok(Response::new(super::nodes::watch(
            &self.store,
            &self.nodes,
            host,
        )?))
    }

    async fn report_nodes(&self, req: Request<v1::NodeReport>) -> Result<Response<v1::Empty>, Status> {
        auth::agent_for(&req, "ReportNodes", &req.get_ref().host_id)?;
        self.nodes.report(req.into_inner());
        Ok(Response::new(v1::Empty {}))
    }

    type TunnelBackStream = super::tunnel::TunnelStream;

    async fn tunnel_back(
        &self,
        mut req: Request<tonic::Streaming<v1::TunnelData>>,
    ) -> Result<Response<Self::TunnelBackStream>, Status> {
        // Who may hold the stream is settled before anything is read, and
        // the first message has a deadline: a stream that says nothing is
        // not kept.
        auth::any_agent(&req, "TunnelBack")?;
        let first = tokio::time::timeout(TUNNEL_OPEN_WITHIN, req.get_mut().message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "a TunnelBack stream must name its tunnel within {} s",
                    TUNNEL_OPEN_WITHIN.as_secs()
                ))
            })??;
        let open = super::tunnel::first(first)?;
        let host = self
            .tunnels
            .host_of(open.tunnel)
            .ok_or_else(|| not_found(format!("no tunnel {} is waiting", open.tunnel)))?;
        // Only the agent asked to open it may answer.
        auth::agent_for(&req, "TunnelBack", &host)?;
        Ok(Response::new(super::tunnel::back(
            &self.tunnels,
            req.into_inner(),
            open,
        )?))
    }

    async fn stream_exec_output(
        &self,
        mut req: Request<tonic::Streaming<v1::ExecChunk>>,
    ) -> Result<Response<v1::Empty>, Status> {
        let first = req.get_mut().message().await?;
        let id = super::exec_stream::first(first)?;
        let streams = &self.exec_streams;
        let missing = || not_found(format!("no exec stream {id} is waiting"));
        let host = streams.host_of(id).ok_or_else(missing)?;
        // Only the agent asked may answer.
        auth::agent_for(&req, "StreamExecOutput", &host)?;
        let sink = streams.take(id).ok_or_else(missing)?;
        super::exec_stream::receive(req.into_inner(), sink).await?;
        Ok(Response::new(v1::Empty {}))
    }

    async fn report_operation(
        &self,
        req: Request<v1::OperationResult>,
    ) -> Result<Response<v1::Empty>, Status> {
        auth::agent_for(&req, "ReportOperation", &req.get_ref().host_id)?;
        let r = req.into_inner();
        self.nodes.complete(&r.host_id.clone(), r);
        Ok(Response::new(v1::Empty {}))
    }

    async fn ack(&self, req: Request<v1::AckRequest>) -> Result<Response<v1::Empty>, Status> {
        auth::agent_for(&req, "Ack", &req.get_ref().host_id)?;
        let r = req.into_inner();
        if !self.store.read(|t| t.hosts.contains_key(&r.host_id)) {
            return Err(not_found(format!("host {:?} is not registered", r.host_id)).into());
        }
        self.rules
            .ack(&r.host_id, r.version, r.flow_count, r.missing_ports);
        debug!(host = %r.host_id, version = r.version, flows = r.flow_count, "rules applied");
        Ok(Response::new(v1::Empty {}))
    }
}

fn full(rules: &HostRules) -> v1::RuleUpdate {
    v1::RuleUpdate {
        version: rules.version,
        full: true,
        added: rules.flows().map(convert::flow).collect(),
        removed: vec![],
    }
}

fn delta(old: &HostRules, new: &HostRules) -> v1::RuleUpdate {
    let (added, removed) = diff_rules(old, new);
    v1::RuleUpdate {
        version: new.version,
        full: false,
        added: added.into_iter().map(convert::flow).collect(),
        removed: removed.into_iter().map(convert::flow).collect(),
    }
}
