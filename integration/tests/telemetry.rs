//! Traces across processes: with an OTLP endpoint, a whole-lab snapshot and
//! an experiment run are each one trace from the `ctl` command through the
//! coordinator's call and its phases or stages to the operation every agent
//! ran for it. The collector here is a real OTLP/gRPC endpoint, fed by the
//! real binaries' exporters.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dclab_integration::api::Api;
use dclab_integration::ctl::Ctl;
use dclab_integration::{require_tools, ClusterGuard, UpOptions};
use dclab_proto::v1;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tonic::{Request, Response, Status};

/// Every span received, with the service that sent it.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let spans = rs.scope_spans.into_iter().flat_map(|s| s.spans);
            self.0.lock().unwrap().extend(spans.map(|s| (service.clone(), s)));
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn node(name: &str, host: &str) -> v1::NodeSpec {
    v1::NodeSpec {
        name: name.into(),
        vcpus: 1,
        memory_mib: 128,
        // No such image: the agents fail the nodes, so no VM is needed to
        // see the operations' spans.
        image: "absent-image".into(),
        host: host.into(),
        interfaces: vec![v1::InterfaceSpec {
            network: "lan".into(),
            ip: String::new(),
        }],
        ..Default::default()
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    let kv = span.attributes.iter().find(|a| a.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A real OTLP/gRPC receiver on loopback, a two-host cluster exporting to
/// it, and lab "traced" with a node on each host whose VM cannot start.
fn traced_cluster(rt: &tokio::runtime::Runtime, prefix: &str) -> (Collector, String, ClusterGuard) {
    require_tools();
    let collector = Collector::default();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    rt.spawn(server);

    let mut opts = UpOptions::unique(prefix, 2);
    opts.otlp_endpoint = Some(endpoint.clone());
    let c = ClusterGuard::up(&opts).expect("local cluster comes up");
    let api = Api::connect(&c.client_config().unwrap());
    let spec = v1::LabSpec {
        name: "traced".into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.0.0.0/24".into(),
            kind: v1::NetworkKind::Rewrite.into(),
        }],
        nodes: vec![node("a", "h1"), node("b", "h2")],
        ..Default::default()
    };
    api.call(|mut c| async move { c.apply_lab(v1::ApplyLabRequest { spec: Some(spec) }).await })
        .expect("lab applied");
    // Both agents have the nodes once they report them (failed: no image).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api
        .call(|mut c| async move {
            c.get_lab(v1::GetLabRequest {
                name: "traced".into(),
            })
            .await
        })
        .unwrap()
        .nodes
        .iter()
        .all(|n| n.state == v1::NodeState::Failed as i32)
    {
        assert!(
            Instant::now() < deadline,
            "the agents never reported the lab's nodes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (collector, endpoint, c)
}

/// The parent chain of `span` up to the root, as (service, name).
fn ancestry(spans: &[(String, Span)], span: &Span) -> Vec<(String, String)> {
    let mut chain = vec![];
    let mut parent = span.parent_span_id.clone();
    while !parent.is_empty() {
        let Some((svc, p)) = spans.iter().find(|(_, s)| s.span_id == parent) else {
            chain.push(("?".into(), "(not exported)".into()));
            break;
        };
        chain.push((svc.clone(), p.name.clone()));
        parent = p.parent_span_id.clone();
    }
    chain
}

#[test]
fn a_snapshot_is_one_trace_from_ctl_through_coordinator_and_agents() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (collector, endpoint, c) = traced_cluster(&rt, "tr");
    // Through the ctl binary, itself traced: its span is the trace's root.
    let ctl = Ctl::new(&c);
    let refused = ctl.run(&[
        "--otlp-endpoint",
        &endpoint,
        "snapshot",
        "create",
        "s",
        "--lab",
        "traced",
    ]);
    assert!(!refused.ok(), "the nodes have no VMs, so the pause fails");

    // The batch exporters send within about 5 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = collector.0.lock().unwrap().clone();
        let snapshot = spans
            .iter()
            .find(|(svc, s)| svc == "dclab-coordinator" && s.name == "snapshot.create");
        if let Some((_, root)) = snapshot {
            let in_trace: Vec<&(String, Span)> = spans
                .iter()
                .filter(|(_, s)| s.trace_id == root.trace_id)
                .collect();
            let phases: Vec<&Span> = in_trace
                .iter()
                .filter(|(svc, s)| svc == "dclab-coordinator" && s.name == "phase")
                .map(|(_, s)| s)
                .collect();
            let ops: Vec<&(String, Span)> = in_trace
                .iter()
                .copied()
                .filter(|(_, s)| s.name == "operation")
                .collect();
            let hosts: Vec<&str> = ops.iter().map(|(svc, _)| svc.as_str()).collect();
            if hosts.contains(&"dclab-agent h1") && hosts.contains(&"dclab-agent h2") {
                for (svc, op) in &ops {
                    assert!(
                        phases.iter().any(|p| p.span_id == op.parent_span_id),
                        "{svc}'s operation span is not a child of a coordinator phase"
                    );
                }
                assert!(phases.iter().all(|p| p.parent_span_id == root.span_id));
                // snapshot.create <- rpc (coordinator) <- ctl (the command).
                let rpc = in_trace.iter().find(|(_, s)| s.span_id == root.parent_span_id);
                let (_, rpc) = rpc.expect("the snapshot span's parent, the rpc span, is exported");
                let ctl_span = in_trace.iter().find(|(_, s)| s.span_id == rpc.parent_span_id);
                let (svc, top) = ctl_span.expect("the rpc span's parent, ctl's span, is exported");
                assert_eq!((svc.as_str(), top.name.as_str()), ("dclab-ctl", "ctl"));
                assert!(top.parent_span_id.is_empty(), "ctl's span is the root");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no trace joining the coordinator's snapshot and both agents' operations; got {:?}",
            spans
                .iter()
                .map(|(svc, s)| format!("{svc}: {}", s.name))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn an_experiment_run_is_one_trace_down_to_the_agents_faults_and_the_checks() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (collector, endpoint, c) = traced_cluster(&rt, "te");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("split.toml");
    // A partition is flows on the hosts: it needs no VM. The check needs
    // one, so it deviates; its span is there all the same.
    std::fs::write(
        &file,
        "[experiment]\nname = \"split\"\n[[target]]\nname = \"a\"\nnode = \"a\"\n[[target]]\nname = \"b\"\nnode = \"b\"\n\
         [[stage]]\nname = \"break\"\n[[stage.step]]\nfault = \"partition\"\ngroups = [[\"a\"], [\"b\"]]\nid = \"split\"\n\
         [[stage.check]]\nname = \"a answers\"\ncommand = { on = \"a\", run = \"true\" }\nexpect = \"holds\"\nsamples = 1\n\
         [[stage]]\nname = \"heal\"\n[[stage.step]]\nheal = \"split\"\n",
    )
    .unwrap();
    let ctl = Ctl::new(&c);
    let run = ctl.run(&[
        "--otlp-endpoint",
        &endpoint,
        "experiment",
        "run",
        file.to_str().unwrap(),
        "--lab",
        "traced",
    ]);
    assert_eq!(run.code, 1, "the check deviates: {}{}", run.stdout, run.stderr);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = collector.0.lock().unwrap().clone();
        let root = spans
            .iter()
            .find(|(svc, s)| svc == "dclab-coordinator" && s.name == "experiment.run");
        let in_trace: Vec<(String, Span)> = root.map_or(vec![], |(_, r)| {
            spans
                .iter()
                .filter(|(_, s)| s.trace_id == r.trace_id)
                .cloned()
                .collect()
        });
        let named = |name: &str| -> Vec<&(String, Span)> {
            in_trace.iter().filter(|(_, s)| s.name == name).collect()
        };
        let agent_ops: Vec<String> = named("operation")
            .iter()
            .filter(|(_, op)| {
                ancestry(&in_trace, op)
                    .iter()
                    .any(|(_, n)| n == "fault" || n == "heal")
            })
            .map(|(svc, op)| format!("{svc} {}", attr(op, "action").unwrap_or_default()))
            .collect();
        let complete = [
            "dclab-agent h1 fault",
            "dclab-agent h2 fault",
            "dclab-agent h1 heal",
            "dclab-agent h2 heal",
        ]
        .iter()
        .all(|want| agent_ops.iter().any(|got| got == want));
        if let (Some((_, root)), true) = (root, complete) {
            assert_eq!(attr(root, "verdict").as_deref(), Some("deviated"));
            assert_eq!(attr(root, "lab").as_deref(), Some("traced"));
            // experiment.run <- rpc (coordinator) <- ctl, the root.
            let up: Vec<String> = ancestry(&in_trace, root)
                .into_iter()
                .map(|(svc, n)| format!("{svc}: {n}"))
                .collect();
            assert_eq!(up.last().map(String::as_str), Some("dclab-ctl: ctl"), "{up:?}");
            let stages = named("stage");
            assert_eq!(stages.len(), 2);
            assert!(stages.iter().all(|(_, s)| s.parent_span_id == root.span_id));
            let (_, fault) = named("fault")[0];
            assert_eq!(attr(fault, "kind").as_deref(), Some("partition"));
            assert_eq!(attr(fault, "outcome").as_deref(), Some("applied"));
            assert_eq!(attr(fault, "hosts").as_deref(), Some("h1,h2"));
            let fault_stage = stages.iter().find(|(_, s)| s.span_id == fault.parent_span_id);
            assert_eq!(
                fault_stage.and_then(|(_, s)| attr(s, "stage")).as_deref(),
                Some("break")
            );
            let (_, check) = named("check")[0];
            assert_eq!(attr(check, "check").as_deref(), Some("a answers"));
            assert_eq!(attr(check, "passed").as_deref(), Some("false"));
            assert_eq!(
                check.parent_span_id, fault.parent_span_id,
                "the check is in the fault's stage"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no trace joining the run, its fault and heal, and both agents' operations; agent ops {agent_ops:?}; got {:?}",
            spans.iter().map(|(svc, s)| format!("{svc}: {}", s.name)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
