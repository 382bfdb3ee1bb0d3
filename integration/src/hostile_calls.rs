//! Hostile topology calls: every kind of call the coordinator serves,
//! with fields from the generators in `hostile`, and how to send one.

use dclab_ctl::client::Operator;
use dclab_proto::v1;
use proptest::prelude::*;

use crate::hostile::{experiment_text, hostile_string, lab_spec, lab_word, short_hostile_string};

fn port_request(s: Strings) -> impl Strategy<Value = v1::CreatePortRequest> {
    (s(), s(), s(), s(), s(), s(), any::<i32>()).prop_map(|(name, tenant, network, host, mac, ip, kind)| {
        v1::CreatePortRequest {
            name,
            tenant,
            network,
            host,
            mac,
            ip,
            kind,
        }
    })
}

/// A valid-looking batch of `n` ports on network `big`; over 10,000 is refused.
fn big_batch(n: usize, seed: u32) -> Vec<v1::CreatePortRequest> {
    (0..n as u32)
        .map(|i| v1::CreatePortRequest {
            name: format!("big{seed}-{i}"),
            tenant: "t".into(),
            network: "big".into(),
            host: "h1".into(),
            mac: format!(
                "06:{:02x}:{:02x}:{:02x}:{:02x}:01",
                seed % 256,
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            ),
            ip: format!("10.16.{}.{}", (i / 250) % 256, 1 + i % 250),
            kind: 1,
        })
        .collect()
}

fn demand(s: Strings) -> impl Strategy<Value = v1::NodeDemand> {
    (s(), any::<u32>(), any::<u64>(), s()).prop_map(|(name, vcpus, memory_mib, host)| v1::NodeDemand {
        name,
        vcpus,
        memory_mib,
        host,
        switch_networks: vec![],
    })
}

/// One topology call with whatever the generators made of its fields.
#[derive(Debug, Clone)]
pub enum Call {
    CreateHost(String, String, String),
    DeleteHost(String),
    CreateTenant(String),
    DeleteTenant(String),
    CreateNetwork(String, String, String),
    DeleteNetwork(String, String),
    CreatePort(v1::CreatePortRequest),
    CreatePorts(Vec<v1::CreatePortRequest>),
    BigBatch(usize, u32),
    DeletePort(String),
    ListPorts(String, String, String),
    GetRules(String),
    PlanLab(String, Vec<v1::NodeDemand>),
    ApplyLab(v1::LabSpec),
    GetLab(String),
    Snapshot(u8, String, String),
    /// Lab, node, command; streamed (ExecNodeStream) or not.
    Exec(String, String, String, bool),
    RunExperiment(String, String, String, bool),
    Run(u8, String),
    ListRuns(String),
}

impl Call {
    pub fn kind(&self) -> &'static str {
        match self {
            Call::CreateHost(..) => "CreateHost",
            Call::DeleteHost(_) => "DeleteHost",
            Call::CreateTenant(_) => "CreateTenant",
            Call::DeleteTenant(_) => "DeleteTenant",
            Call::CreateNetwork(..) => "CreateNetwork",
            Call::DeleteNetwork(..) => "DeleteNetwork",
            Call::CreatePort(_) => "CreatePort",
            Call::CreatePorts(_) => "CreatePorts",
            Call::BigBatch(..) => "BigBatch",
            Call::DeletePort(_) => "DeletePort",
            Call::ListPorts(..) => "ListPorts",
            Call::GetRules(_) => "GetRules",
            Call::PlanLab(..) => "PlanLab",
            Call::ApplyLab(_) => "ApplyLab",
            Call::GetLab(_) => "GetLab",
            Call::Snapshot(..) => "Snapshot",
            Call::Exec(..) => "Exec",
            Call::RunExperiment(..) => "RunExperiment",
            Call::Run(..) => "Run",
            Call::ListRuns(_) => "ListRuns",
        }
    }

    /// Whether the call can change the topology's revision when accepted.
    pub fn may_write(&self) -> bool {
        !matches!(
            self,
            Call::ListPorts(..)
                | Call::GetRules(_)
                | Call::PlanLab(..)
                | Call::GetLab(_)
                | Call::Exec(..)
                | Call::RunExperiment(..)
                | Call::Run(..)
                | Call::ListRuns(_)
        )
    }
}

/// Calls of every kind, big batches rare (each is thousands of ports).
pub fn call() -> impl Strategy<Value = Call> {
    calls(|| hostile_string().boxed())
}

/// The same calls with no field of hundreds of kilobytes (those are sent
/// one at a time): for many clients at once.
pub fn short_call() -> impl Strategy<Value = Call> {
    calls(|| short_hostile_string().boxed())
}

/// The strings a call's fields are made of.
type Strings = fn() -> BoxedStrategy<String>;

fn calls(s: Strings) -> impl Strategy<Value = Call> {
    prop_oneof![
        10 => (s(), s(), s()).prop_map(|(a, b, c)| Call::CreateHost(a, b, c)),
        10 => s().prop_map(Call::DeleteHost),
        10 => s().prop_map(Call::CreateTenant),
        10 => s().prop_map(Call::DeleteTenant),
        10 => (s(), s(), s()).prop_map(|(a, b, c)| Call::CreateNetwork(a, b, c)),
        10 => (s(), s()).prop_map(|(a, b)| Call::DeleteNetwork(a, b)),
        30 => port_request(s).prop_map(Call::CreatePort),
        10 => prop::collection::vec(port_request(s), 0..30).prop_map(Call::CreatePorts),
        1 => (prop::sample::select(vec![1000usize, 4000, 10_001, 12_000]), any::<u32>()).prop_map(|(n, seed)| Call::BigBatch(n, seed)),
        10 => s().prop_map(Call::DeletePort),
        10 => (s(), s(), s()).prop_map(|(a, b, c)| Call::ListPorts(a, b, c)),
        10 => s().prop_map(Call::GetRules),
        10 => (s(), prop::collection::vec(demand(s), 0..40)).prop_map(|(lab, nodes)| Call::PlanLab(lab, nodes)),
        30 => lab_spec().prop_map(Call::ApplyLab),
        10 => lab_word().prop_map(Call::GetLab),
        10 => (0u8..3, lab_word(), lab_word()).prop_map(|(k, lab, name)| Call::Snapshot(k, lab, name)),
        10 => (lab_word(), lab_word(), s(), any::<bool>()).prop_map(|(lab, node, cmd, stream)| Call::Exec(lab, node, cmd, stream)),
        30 => (s(), experiment_text(), prop_oneof![Just("lab".to_string()), lab_word()], any::<bool>()).prop_map(|(name, text, lab, dry)| Call::RunExperiment(name, text, lab, dry)),
        10 => (0u8..3, prop_oneof![s(), Just("r1-1".to_string())]).prop_map(|(k, id)| Call::Run(k, id)),
        10 => lab_word().prop_map(Call::ListRuns),
    ]
}

/// Sends one call; a run that starts is aborted when its stream drops.
pub async fn send(c: &mut Operator, call: Call) -> Result<(), tonic::Status> {
    match call {
        Call::CreateHost(id, uplink, mac) => c
            .create_host(v1::Host {
                id,
                uplink,
                mac,
                ..Default::default()
            })
            .await
            .map(drop),
        Call::DeleteHost(id) => c.delete_host(v1::DeleteHostRequest { id }).await.map(drop),
        Call::CreateTenant(name) => c.create_tenant(v1::CreateTenantRequest { name }).await.map(drop),
        Call::DeleteTenant(name) => c.delete_tenant(v1::DeleteTenantRequest { name }).await.map(drop),
        Call::CreateNetwork(tenant, name, cidr) => c
            .create_network(v1::CreateNetworkRequest {
                tenant,
                name,
                cidr,
                kind: v1::NetworkKind::Rewrite.into(),
            })
            .await
            .map(drop),
        Call::DeleteNetwork(tenant, name) => c
            .delete_network(v1::DeleteNetworkRequest { tenant, name })
            .await
            .map(drop),
        Call::CreatePort(p) => c.create_port(p).await.map(drop),
        Call::CreatePorts(ports) => c.create_ports(v1::CreatePortsRequest { ports }).await.map(drop),
        Call::BigBatch(n, seed) => c
            .create_ports(v1::CreatePortsRequest {
                ports: big_batch(n, seed),
            })
            .await
            .map(drop),
        Call::DeletePort(name) => c.delete_port(v1::DeletePortRequest { name }).await.map(drop),
        Call::ListPorts(tenant, network, host) => c
            .list_ports(v1::ListPortsRequest {
                tenant,
                network,
                host,
            })
            .await
            .map(drop),
        Call::GetRules(host) => c.get_rules(v1::GetRulesRequest { host }).await.map(drop),
        Call::PlanLab(lab, nodes) => c.plan_lab(v1::PlanLabRequest { lab, nodes }).await.map(drop),
        Call::ApplyLab(spec) => c
            .apply_lab(v1::ApplyLabRequest { spec: Some(spec) })
            .await
            .map(drop),
        Call::GetLab(name) => c.get_lab(v1::GetLabRequest { name }).await.map(drop),
        Call::Snapshot(kind, lab, name) => {
            let req = v1::SnapshotRequest {
                lab,
                name,
                cold: false,
                force: false,
            };
            match kind {
                0 => c.create_snapshot(req).await.map(drop),
                10 => c.restore_snapshot(req).await.map(drop),
                _ => c.delete_snapshot(req).await.map(drop),
            }
        }
        Call::Exec(lab, node, command, stream) => {
            let req = v1::ExecNodeRequest {
                lab,
                node,
                command,
                timeout_ms: 100,
            };
            if !stream {
                return c.exec_node(req).await.map(drop);
            }
            let mut output = c.exec_node_stream(req).await?.into_inner();
            while output.message().await?.is_some() {}
            Ok(())
        }
        Call::RunExperiment(file_name, file_text, lab, dry_run) => {
            let req = v1::RunExperimentRequest {
                file_name,
                file_text,
                lab,
                dry_run,
                seed: 7,
                yes: true,
            };
            // A refusal is the call's status or the stream's first item;
            // a run that did start is aborted when the stream is dropped.
            let mut events = c.run_experiment(req).await?.into_inner();
            events.message().await.map(drop)
        }
        Call::Run(kind, id) => {
            let r = v1::RunRef { id };
            match kind {
                0 => c.abort_run(r).await.map(drop),
                10 => c.continue_run(r).await.map(drop),
                _ => c.get_run(r).await.map(drop),
            }
        }
        Call::ListRuns(lab) => c.list_runs(v1::ListRunsRequest { lab }).await.map(drop),
    }
}
