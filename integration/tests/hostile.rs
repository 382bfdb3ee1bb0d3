//! Malformed and hostile requests at every topology call of a real
//! coordinator: each is answered with a clear client-error status, nothing
//! is written when it is refused, and the coordinator never panics.

use dclab_integration::api::Api;
use dclab_integration::cluster;
use dclab_integration::hostile::{experiment_text, hostile_string, lab_spec, lab_word};
use dclab_proto::v1::{self, topology_client::TopologyClient};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tonic::Code;

/// Random cases; each is one call.
const CASES: u32 = 1500;

fn port_request() -> impl Strategy<Value = v1::CreatePortRequest> {
    (
        hostile_string(),
        hostile_string(),
        hostile_string(),
        hostile_string(),
        hostile_string(),
        hostile_string(),
        any::<i32>(),
    )
        .prop_map(
            |(name, tenant, network, host, mac, ip, kind)| v1::CreatePortRequest {
                name,
                tenant,
                network,
                host,
                mac,
                ip,
                kind,
            },
        )
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

fn demand() -> impl Strategy<Value = v1::NodeDemand> {
    (hostile_string(), any::<u32>(), any::<u64>(), hostile_string()).prop_map(
        |(name, vcpus, memory_mib, host)| v1::NodeDemand {
            name,
            vcpus,
            memory_mib,
            host,
            switch_networks: vec![],
        },
    )
}

#[derive(Debug, Clone)]
enum Call {
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

fn call() -> impl Strategy<Value = Call> {
    let s = hostile_string;
    prop_oneof![
        1 => (s(), s(), s()).prop_map(|(a, b, c)| Call::CreateHost(a, b, c)),
        1 => s().prop_map(Call::DeleteHost),
        1 => s().prop_map(Call::CreateTenant),
        1 => s().prop_map(Call::DeleteTenant),
        1 => (s(), s(), s()).prop_map(|(a, b, c)| Call::CreateNetwork(a, b, c)),
        1 => (s(), s()).prop_map(|(a, b)| Call::DeleteNetwork(a, b)),
        3 => port_request().prop_map(Call::CreatePort),
        1 => prop::collection::vec(port_request(), 0..30).prop_map(Call::CreatePorts),
        1 => (prop::sample::select(vec![1000usize, 4000, 10_001, 12_000]), any::<u32>()).prop_map(|(n, seed)| Call::BigBatch(n, seed)),
        1 => s().prop_map(Call::DeletePort),
        1 => (s(), s(), s()).prop_map(|(a, b, c)| Call::ListPorts(a, b, c)),
        1 => s().prop_map(Call::GetRules),
        1 => (s(), prop::collection::vec(demand(), 0..40)).prop_map(|(lab, nodes)| Call::PlanLab(lab, nodes)),
        3 => lab_spec().prop_map(Call::ApplyLab),
        1 => lab_word().prop_map(Call::GetLab),
        1 => (0u8..3, lab_word(), lab_word()).prop_map(|(k, lab, name)| Call::Snapshot(k, lab, name)),
        1 => (lab_word(), lab_word(), s(), any::<bool>()).prop_map(|(lab, node, cmd, stream)| Call::Exec(lab, node, cmd, stream)),
        3 => (s(), experiment_text(), prop_oneof![Just("lab".to_string()), lab_word()], any::<bool>()).prop_map(|(name, text, lab, dry)| Call::RunExperiment(name, text, lab, dry)),
        1 => (0u8..3, prop_oneof![s(), Just("r1-1".to_string())]).prop_map(|(k, id)| Call::Run(k, id)),
        1 => lab_word().prop_map(Call::ListRuns),
    ]
}

async fn send(c: &mut TopologyClient<dclab_proto::net::Channel>, call: Call) -> Result<(), tonic::Status> {
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
                1 => c.restore_snapshot(req).await.map(drop),
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
                1 => c.continue_run(r).await.map(drop),
                _ => c.get_run(r).await.map(drop),
            }
        }
        Call::ListRuns(lab) => c.list_runs(v1::ListRunsRequest { lab }).await.map(drop),
    }
}

const CLIENT_ERRORS: [Code; 6] = [
    Code::InvalidArgument,
    Code::NotFound,
    Code::AlreadyExists,
    Code::FailedPrecondition,
    Code::ResourceExhausted,
    Code::OutOfRange,
];

#[test]
fn hostile_requests_get_clear_errors_and_write_nothing() {
    let c = cluster("hs", 1, false);
    let api = Api::connect(&c.client_config().unwrap());
    api.tenant("t");
    api.network("t", "n", "10.0.0.0/24");
    api.network("t", "big", "10.16.0.0/16");
    // A lab the built-in experiments can resolve targets on, so some runs
    // start (and are aborted when their stream is dropped). Its image does
    // not exist: no VM boots.
    let node = |name: &str| v1::NodeSpec {
        name: name.into(),
        vcpus: 1,
        memory_mib: 64,
        image: "absent-image".into(),
        host: "h1".into(),
        interfaces: vec![v1::InterfaceSpec {
            network: "lan".into(),
            ip: String::new(),
        }],
        ..Default::default()
    };
    let spec = v1::LabSpec {
        name: "lab".into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.9.0.0/24".into(),
            kind: v1::NetworkKind::Rewrite.into(),
        }],
        nodes: vec![node("a"), node("b"), node("c")],
        ..Default::default()
    };
    api.call(|mut c| async move { c.apply_lab(v1::ApplyLabRequest { spec: Some(spec) }).await })
        .expect("lab applied");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let channel = rt.block_on(c.client_config().unwrap().connect()).unwrap();
    let client = TopologyClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(64 << 20);
    let status = |client: &mut TopologyClient<_>| {
        rt.block_on(client.status(v1::StatusRequest {}))
            .unwrap()
            .into_inner()
    };
    let runs = |client: &mut TopologyClient<_>| {
        let all = rt.block_on(client.list_runs(v1::ListRunsRequest::default()));
        all.unwrap().into_inner().runs.len()
    };

    let (accepted, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&call(), |call| {
        let mut client = client.clone();
        let before = status(&mut client);
        let runs_before = runs(&mut client);
        let label: String = format!("{call:?}").chars().take(300).collect();
        match rt.block_on(send(&mut client, call)) {
            Ok(()) => accepted.set(accepted.get() + 1),
            Err(s) => {
                refused.set(refused.get() + 1);
                prop_assert!(
                    CLIENT_ERRORS.contains(&s.code()),
                    "{label}: {:?} {}",
                    s.code(),
                    s.message()
                );
                prop_assert!(!s.message().is_empty(), "{label}: empty message");
                let after = status(&mut client);
                prop_assert_eq!(before.revision, after.revision, "{}: refused but wrote", label);
                prop_assert_eq!(before.ports, after.ports);
                prop_assert_eq!(
                    runs_before,
                    runs(&mut client),
                    "{}: refused but recorded a run",
                    label
                );
            }
        }
        Ok::<(), TestCaseError>(())
    });
    result.unwrap();
    let (accepted, refused) = (accepted.get(), refused.get());
    println!("{CASES} hostile calls: {accepted} accepted, {refused} refused with a client-error status");
    assert!(refused > CASES / 2, "the suite should mostly send bad input");
    let mut client = client.clone();

    // Runs that started were aborted when their caller went: none is left
    // running, so none holds a fault.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let all = rt
            .block_on(client.list_runs(v1::ListRunsRequest::default()))
            .unwrap()
            .into_inner()
            .runs;
        let running: Vec<&v1::Run> = all.iter().filter(|r| r.verdict == "running").collect();
        if running.is_empty() {
            println!("{} runs started by the suite, all ended", all.len());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs left running: {running:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Strings that are not UTF-8 at all, which a typed client cannot send.
    for raw in raw_invalid_utf8(&rt, c.client_config().unwrap()) {
        let (code, message) = raw.expect_err("invalid UTF-8 accepted");
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.contains("UTF-8"), "{message}");
    }
    let after = status(&mut client);
    println!(
        "coordinator after the suite: revision {}, {} ports, {} bytes resident",
        after.revision, after.ports, after.rss_bytes
    );
    let log = std::fs::read_to_string(c.coordinator_log()).unwrap();
    assert!(!log.contains("panicked"), "the coordinator panicked:\n{log}");
}

/// A message shaped like CreateTenantRequest but whose name is raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct RawName {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
}

fn raw_invalid_utf8(
    rt: &tokio::runtime::Runtime,
    config: dclab_proto::net::ClientConfig,
) -> Vec<Result<(), (Code, String)>> {
    let paths = [
        "/dclab.v1.Topology/CreateTenant",
        "/dclab.v1.Topology/DeleteTenant",
        "/dclab.v1.Topology/DeletePort",
    ];
    rt.block_on(async {
        let channel = config.connect().await.unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        let mut out = Vec::new();
        for path in paths {
            grpc.ready().await.unwrap();
            let codec = tonic_prost::ProstCodec::<RawName, RawName>::default();
            let req = tonic::Request::new(RawName {
                name: vec![0x66, 0xff, 0xfe, 0x80],
            });
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
            out.push(
                grpc.unary(req, path, codec)
                    .await
                    .map(drop)
                    .map_err(|s| (s.code(), s.message().to_string())),
            );
        }
        out
    })
}
