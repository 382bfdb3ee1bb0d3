//! The coordinator's standard gRPC health and reflection services on a real
//! local cluster, behind its mutual TLS: SERVING while up, NOT_SERVING
//! seen by a watcher when it shuts down, reflection listing and describing
//! dclab's services for operators only.

use std::path::Path;
use std::time::Duration;

use dclab_integration::cluster;
use dclab_runtime::net::ClientConfig;
use dclab_runtime::tls::TlsFiles;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn agent_files(pki: &Path) -> TlsFiles {
    TlsFiles {
        ca: pki.join("ca.crt"),
        identity: Some((pki.join("agent-h1.crt"), pki.join("agent-h1.key"))),
    }
}

async fn status(config: &ClientConfig, service: &str) -> Result<i32, tonic::Status> {
    let mut client = HealthClient::new(config.connect().await.unwrap());
    let request = HealthCheckRequest {
        service: service.into(),
    };
    Ok(client.check(request).await?.into_inner().status)
}

/// One reflection request, one answer.
async fn reflect(config: &ClientConfig, request: MessageRequest) -> Result<MessageResponse, tonic::Status> {
    let mut client = ServerReflectionClient::new(config.connect().await.unwrap());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::once(request))
        .await?
        .into_inner();
    let answer = answers.next().await.expect("an answer")?;
    Ok(answer.message_response.expect("a message"))
}

#[test]
fn health_and_reflection_answer_behind_mutual_tls() {
    let mut c = cluster("hr", 1, false);
    let operator = c.client_config().unwrap();
    let agent = ClientConfig::new(
        c.coordinator_url().unwrap(),
        Some(&agent_files(c.pki_dir().unwrap())),
    )
    .unwrap();
    let rt = rt();
    for service in [
        "",
        "dclab.v1.Topology",
        "dclab.v1.Labs",
        "dclab.v1.Experiments",
        "dclab.v1.Diagnostics",
        "dclab.v1.Tunnels",
        "dclab.v1.AgentControl",
    ] {
        assert_eq!(
            rt.block_on(status(&operator, service)).unwrap(),
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    // Health is for any certificate of the deployment (a supervisor may hold an agent's).
    assert_eq!(
        rt.block_on(status(&agent, "")).unwrap(),
        ServingStatus::Serving as i32
    );
    let unknown = rt.block_on(status(&operator, "dclab.v1.Nothing")).unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let MessageResponse::ListServicesResponse(list) = rt
        .block_on(reflect(&operator, MessageRequest::ListServices(String::new())))
        .unwrap()
    else {
        panic!("not a service list")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "dclab.v1.Topology",
        "dclab.v1.Labs",
        "dclab.v1.Experiments",
        "dclab.v1.Diagnostics",
        "dclab.v1.Tunnels",
        "dclab.v1.AgentControl",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    let MessageResponse::FileDescriptorResponse(files) = rt
        .block_on(reflect(
            &operator,
            MessageRequest::FileContainingSymbol("dclab.v1.Topology".into()),
        ))
        .unwrap()
    else {
        panic!("not a file descriptor")
    };
    let described = files.file_descriptor_proto.concat();
    assert!(
        String::from_utf8_lossy(&described).contains("Status"),
        "Topology/Status not described"
    );
    // Reflection is for operators, like the Topology API it describes.
    let refused = rt
        .block_on(reflect(&agent, MessageRequest::ListServices(String::new())))
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // A watcher sees NOT_SERVING when the coordinator shuts down, and its
    // stream does not keep the coordinator from exiting.
    let watcher = {
        let operator = operator.clone();
        std::thread::spawn(move || {
            rt.block_on(async {
                let mut client = HealthClient::new(operator.connect().await.unwrap());
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                let mut stream = client.watch(request).await.unwrap().into_inner();
                let mut seen = Vec::new();
                // Ends when the stream does, or fails the test after 30 s.
                while let Ok(Some(Ok(answer))) =
                    tokio::time::timeout(Duration::from_secs(30), stream.next()).await
                {
                    seen.push(answer.status);
                }
                seen
            })
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    c.kill_coordinator(libc::SIGTERM).unwrap();
    let seen = watcher.join().unwrap();
    assert_eq!(
        seen,
        [ServingStatus::Serving as i32, ServingStatus::NotServing as i32],
        "what the watcher saw"
    );
}
