//! Malformed and hostile requests at every topology call of a real
//! coordinator: each is answered with a clear client-error status, nothing
//! is written when it is refused, and the coordinator never panics. First
//! one call at a time, each checked on its own; then many clients at once,
//! checked as a whole: the coordinator answers throughout, refuses only
//! with client errors, and keeps across a restart what it acknowledged.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dclab_ctl::client::Operator;
use dclab_integration::api::Api;
use dclab_integration::cluster;
use dclab_integration::concurrent::{Client, CLIENT_ERRORS};
use dclab_integration::hostile_calls::{call, send, short_call, Call};
use dclab_proto::v1;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use proptest::{prop_assert, prop_assert_eq};
use tonic::Code;

/// Calls sent one at a time, each checked on its own; DCLAB_HOSTILE_CASES
/// changes it for a longer soak.
const SERIAL: u32 = 2_000;
/// Calls sent by `WORKERS` clients at once, checked as a whole.
const CONCURRENT: usize = 8_000;
const WORKERS: usize = 8;

fn serial_cases() -> u32 {
    std::env::var("DCLAB_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SERIAL)
}

/// A lab the built-in experiments can resolve targets on, so some runs
/// start (and are aborted when their stream is dropped). Its image does
/// not exist: no VM boots.
fn target_lab() -> v1::LabSpec {
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
    v1::LabSpec {
        name: "lab".into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.9.0.0/24".into(),
            kind: v1::NetworkKind::Rewrite.into(),
        }],
        nodes: vec![node("a"), node("b"), node("c")],
        ..Default::default()
    }
}

fn client(rt: &tokio::runtime::Runtime, config: &dclab_runtime::net::ClientConfig) -> Operator {
    let channel = rt.block_on(config.connect()).unwrap();
    Operator::new(channel)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(64 << 20)
}

#[test]
fn hostile_requests_get_clear_errors_and_write_nothing() {
    let mut c = cluster("hs", 1, false);
    let config = c.client_config().unwrap();
    let api = Api::connect(&config);
    api.tenant("t");
    api.network("t", "n", "10.0.0.0/24");
    api.network("t", "big", "10.16.0.0/16");
    let spec = target_lab();
    api.call(|mut c| async move { c.apply_lab(v1::ApplyLabRequest { spec: Some(spec) }).await })
        .expect("lab applied");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = client(&rt, &config);

    one_at_a_time(&rt, &client);
    many_at_once(&rt, &config);
    wait_for_runs_to_end(&rt, &client);

    // Strings that are not UTF-8 at all, which a typed client cannot send.
    for raw in raw_invalid_utf8(&rt, config.clone()) {
        let (code, message) = raw.expect_err("invalid UTF-8 accepted");
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.contains("UTF-8"), "{message}");
    }

    // What was acknowledged is what the store holds: a restart reloads it.
    let before = rt.block_on(state_view(&client));
    c.kill_coordinator(libc::SIGKILL).unwrap();
    c.start_coordinator().unwrap();
    let client = self::client(&rt, &config);
    assert_eq!(rt.block_on(state_view(&client)), before, "state after a restart");
    let after = rt
        .block_on(client.clone().status(v1::StatusRequest {}))
        .unwrap()
        .into_inner();
    println!(
        "coordinator after the suite: revision {}, {} ports, {} bytes resident",
        after.revision, after.ports, after.rss_bytes
    );
    let log = std::fs::read_to_string(c.coordinator_log()).unwrap();
    assert!(!log.contains("panicked"), "the coordinator panicked:\n{log}");
}

/// Each call checked on its own: a refusal is a client error with a
/// message, and neither the revision nor the run count moved.
fn one_at_a_time(rt: &tokio::runtime::Runtime, client: &Operator) {
    let status = |client: &mut Operator| {
        rt.block_on(client.status(v1::StatusRequest {}))
            .unwrap()
            .into_inner()
    };
    let runs = |client: &mut Operator| {
        let all = rt.block_on(client.list_runs(v1::ListRunsRequest::default()));
        all.unwrap().into_inner().runs.len()
    };
    let (accepted, refused) = (Cell::new(0u32), Cell::new(0u32));
    let timing: RefCell<BTreeMap<&'static str, (u32, Duration)>> = Default::default();
    let mut runner = TestRunner::new(Config {
        cases: serial_cases(),
        failure_persistence: None,
        ..Config::default()
    });
    // The revision and run count a call starts from are what the previous
    // one left: a Status after each call that may write, a ListRuns after
    // each that may start a run.
    let mut first = client.clone();
    let last = Cell::new((status(&mut first).revision, runs(&mut first)));
    let result = runner.run(&call(), |call| {
        let mut client = client.clone();
        let (revision_before, runs_before) = last.get();
        let label: String = format!("{call:?}").chars().take(300).collect();
        let (kind, may_write) = (call.kind(), call.may_write());
        let may_record_run = matches!(call, Call::RunExperiment(..));
        let started = Instant::now();
        let sent = rt.block_on(send(&mut client, call));
        let mut t = timing.borrow_mut();
        let e = t.entry(kind).or_default();
        (e.0, e.1) = (e.0 + 1, e.1 + started.elapsed());
        let revision_after = if may_write {
            status(&mut client).revision
        } else {
            revision_before
        };
        let runs_after = if may_record_run {
            runs(&mut client)
        } else {
            runs_before
        };
        last.set((revision_after, runs_after));
        match sent {
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
                prop_assert_eq!(revision_before, revision_after, "{}: refused but wrote", label);
                prop_assert_eq!(runs_before, runs_after, "{}: refused but recorded a run", label);
            }
        }
        Ok::<(), TestCaseError>(())
    });
    result.unwrap();
    let (accepted, refused, cases) = (accepted.get(), refused.get(), serial_cases());
    println!("{cases} hostile calls one at a time: {accepted} accepted, {refused} refused with a client-error status");
    println!("time per kind of call (calls, total): {:?}", timing.borrow());
    assert!(refused > cases / 2, "the suite should mostly send bad input");
}

/// `WORKERS` clients send `CONCURRENT` hostile calls at once while a probe
/// calls Status and ListHosts: every call is answered, every refusal is a
/// client error (or, for a lab another call holds, UNAVAILABLE saying so).
fn many_at_once(rt: &tokio::runtime::Runtime, config: &dclab_runtime::net::ClientConfig) {
    let mut runner = TestRunner::deterministic();
    let strategy = short_call();
    let calls: Vec<Call> = (0..CONCURRENT)
        .map(|_| strategy.new_tree(&mut runner).expect("a call").current())
        .collect();
    let started = Instant::now();
    let (outcomes, probe) = rt.block_on(async {
        let mut workers = Vec::new();
        for share in calls.chunks(CONCURRENT.div_ceil(WORKERS)) {
            let (share, config) = (share.to_vec(), config.clone());
            workers.push(tokio::spawn(async move {
                let mut client = Client::connect(&config).await.topology();
                let mut out = Vec::new();
                for call in share {
                    let label: String = format!("{call:?}").chars().take(300).collect();
                    out.push((label, send(&mut client, call).await.err()));
                }
                out
            }));
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let probe = Client::connect(config).await;
        let stopped = stop.clone();
        let probe = tokio::spawn(probe.probe(move || stopped.load(std::sync::atomic::Ordering::Relaxed)));
        let mut outcomes = Vec::new();
        for w in workers {
            outcomes.extend(w.await.expect("worker"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (outcomes, probe.await.expect("probe"))
    });
    assert!(
        probe.failures.is_empty(),
        "the coordinator stopped answering under concurrent calls: {:?}",
        probe.failures
    );
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for (label, refusal) in &outcomes {
        let Some(s) = refusal else { continue };
        *codes.entry(format!("{:?}", s.code())).or_default() += 1;
        let held = s.code() == Code::Unavailable && s.message().contains("is busy with");
        assert!(
            CLIENT_ERRORS.contains(&s.code()) || held,
            "{label}: {:?} {}",
            s.code(),
            s.message()
        );
        assert!(!s.message().is_empty(), "{label}: empty message");
    }
    println!(
        "{} hostile calls from {WORKERS} clients at once in {:?}: refused {codes:?}; probe: {} calls, slowest {:?}",
        outcomes.len(),
        started.elapsed(),
        probe.calls,
        probe.slowest
    );
}

/// Runs that started were aborted when their caller went: none is left
/// running, so none holds a fault.
fn wait_for_runs_to_end(rt: &tokio::runtime::Runtime, client: &Operator) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = rt
            .block_on(client.clone().list_runs(v1::ListRunsRequest::default()))
            .unwrap()
            .into_inner()
            .runs;
        let running: Vec<&v1::Run> = all.iter().filter(|r| r.verdict == "running").collect();
        if running.is_empty() {
            println!("{} runs started by the suite, all ended", all.len());
            return;
        }
        assert!(Instant::now() < deadline, "runs left running: {running:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Hosts, tenants, networks, ports and labs as the coordinator lists them.
async fn state_view(client: &Operator) -> String {
    let mut c = client.clone();
    let hosts = c
        .list_hosts(v1::ListHostsRequest {})
        .await
        .unwrap()
        .into_inner()
        .hosts;
    let hosts: Vec<_> = hosts.iter().map(|h| (&h.id, &h.mac, &h.uplink)).collect();
    let tenants = c
        .list_tenants(v1::ListTenantsRequest {})
        .await
        .unwrap()
        .into_inner();
    let networks = c
        .list_networks(v1::ListNetworksRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ports = c
        .list_ports(v1::ListPortsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let labs = c
        .list_labs(v1::ListLabsRequest {})
        .await
        .unwrap()
        .into_inner()
        .labs;
    let labs: Vec<_> = labs
        .iter()
        .map(|l| (&l.name, &l.networks, l.revision, l.snapshots))
        .collect();
    format!("{hosts:?}\n{tenants:?}\n{networks:?}\n{ports:?}\n{labs:?}")
}

/// A message shaped like CreateTenantRequest but whose name is raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct RawName {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
}

fn raw_invalid_utf8(
    rt: &tokio::runtime::Runtime,
    config: dclab_runtime::net::ClientConfig,
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
