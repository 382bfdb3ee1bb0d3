//! Mutual TLS and authorization against a real coordinator: who may not
//! connect, who may not act, and that refusals change nothing.

use std::path::Path;
use std::time::Duration;

use dclab_ctl::certs::issue::{issue, Leaf};
use dclab_ctl::client::Operator;
use dclab_integration::api::Api;
use dclab_integration::cluster;
use dclab_proto::v1::{self, agent_control_client::AgentControlClient};
use dclab_runtime::identity::Role;
use dclab_runtime::net::ClientConfig;
use dclab_runtime::tls::TlsFiles;
use tonic::Code;

fn files(dir: &Path, ca_dir: &Path, stem: &str) -> TlsFiles {
    TlsFiles {
        ca: ca_dir.join("ca.crt"),
        identity: Some((dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")))),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Lists tenants as whoever `config` says; the error a refused client sees.
fn list_tenants(config: &ClientConfig) -> Result<usize, String> {
    rt().block_on(async {
        let channel = config.connect().await.map_err(|e| e.to_string())?;
        let reply = Operator::new(channel)
            .list_tenants(v1::ListTenantsRequest {})
            .await;
        reply.map(|r| r.into_inner().tenants.len()).map_err(|s| {
            let cause = std::error::Error::source(&s)
                .map(dclab_runtime::net::root_cause)
                .unwrap_or_default();
            format!("{:?}: {} {cause}", s.code(), s.message())
                .trim_end()
                .to_string()
        })
    })
}

fn snapshot(api: &Api) -> String {
    let hosts: Vec<_> = api.hosts().into_iter().map(|h| (h.id, h.mac, h.uplink)).collect();
    let tenants = api
        .call(|mut c| async move { c.list_tenants(v1::ListTenantsRequest {}).await })
        .unwrap();
    format!("{hosts:?}\n{tenants:?}\n{:?}", api.ports())
}

#[test]
fn connections_without_a_valid_client_certificate_are_refused() {
    let c = cluster("sc", 1, false);
    let url = c.coordinator_url().unwrap().to_string();
    let pki = c.pki_dir().unwrap().to_path_buf();
    let operator = Api::connect(&c.client_config().unwrap());
    operator.tenant("a");
    let before = snapshot(&operator);
    assert_eq!(
        list_tenants(&c.client_config().unwrap()),
        Ok(1),
        "the operator itself is let in"
    );

    let anonymous = TlsFiles {
        ca: pki.join("ca.crt"),
        identity: None,
    };
    let err = list_tenants(&ClientConfig::new(&url, Some(&anonymous)).unwrap()).unwrap_err();
    assert!(err.starts_with("Unauthenticated: no client certificate"), "{err}");

    let foreign = tempfile::tempdir().unwrap();
    dclab_ctl::certs::init(foreign.path(), &["127.0.0.1".into()], &[], "mallory", 30).unwrap();
    let other_ca = ClientConfig::new(&url, Some(&files(foreign.path(), &pki, "operator"))).unwrap();
    let err = list_tenants(&other_ca).unwrap_err();
    println!("certificate from another CA: {err}");

    let past = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    let expired = Leaf {
        role: Role::Operator,
        name: "late",
        sans: &[],
        not_before: past,
        not_after: past + time::Duration::days(1),
    };
    issue(&pki, "operator-expired", &expired).unwrap();
    let err = list_tenants(&ClientConfig::new(&url, Some(&files(&pki, &pki, "operator-expired"))).unwrap())
        .unwrap_err();
    println!("expired certificate: {err}");

    let err = list_tenants(&ClientConfig::insecure(url.replace("https", "http"))).unwrap_err();
    println!("plaintext client: {err}");

    assert_eq!(snapshot(&operator), before, "a refused client changed state");
    let log = std::fs::read_to_string(c.coordinator_log()).unwrap();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS handshake refused"))
        .collect();
    assert!(
        refusals.iter().any(|l| l.contains("UnknownIssuer")),
        "foreign CA not refused:\n{log}"
    );
    assert!(
        refusals.iter().any(|l| l.contains("expired")),
        "expired certificate not refused:\n{log}"
    );
    assert!(
        log.contains("no certificate") && log.contains("request refused"),
        "{log}"
    );
}

#[test]
fn agents_act_only_for_their_own_host_and_never_on_topology() {
    let c = cluster("sa", 2, false);
    let pki = c.pki_dir().unwrap().to_path_buf();
    let operator = Api::connect(&c.client_config().unwrap());
    operator.tenant("a");
    operator.network("a", "net", "10.0.0.0/24");
    let before = snapshot(&operator);
    let h1 = ClientConfig::new(c.coordinator_url().unwrap(), Some(&files(&pki, &pki, "agent-h1"))).unwrap();

    let codes = rt().block_on(async {
        let channel = h1.connect().await.unwrap();
        let mut agent = AgentControlClient::new(channel.clone());
        let mut topo = Operator::new(channel);
        let own = agent
            .watch_rules(v1::WatchRulesRequest { host_id: "h1".into() })
            .await
            .map(|_| ());
        let other = agent
            .watch_rules(v1::WatchRulesRequest { host_id: "h2".into() })
            .await
            .map(|_| ());
        let register = v1::RegisterRequest {
            host_id: "h2".into(),
            uplink: "up0".into(),
            mac: "0a:00:00:00:00:99".into(),
            ..Default::default()
        };
        let as_h2 = agent.register(register).await.map(|_| ());
        let ack = agent
            .ack(v1::AckRequest {
                host_id: "h2".into(),
                version: 999,
                ..Default::default()
            })
            .await
            .map(|_| ());
        let port = v1::CreatePortRequest {
            name: "evil".into(),
            tenant: "a".into(),
            network: "net".into(),
            host: "h1".into(),
            mac: "02:00:00:00:00:66".into(),
            ip: "10.0.0.66".into(),
            kind: v1::PortKind::Vm.into(),
        };
        let create = topo.create_port(port).await.map(|_| ());
        let rules = topo
            .get_rules(v1::GetRulesRequest { host: "h2".into() })
            .await
            .map(|_| ());
        let nodes = agent
            .watch_nodes(v1::WatchNodesRequest { host_id: "h2".into() })
            .await
            .map(|_| ());
        let report = agent
            .report_nodes(v1::NodeReport {
                host_id: "h2".into(),
                ..Default::default()
            })
            .await
            .map(|_| ());
        let result = agent
            .report_operation(v1::OperationResult {
                host_id: "h2".into(),
                ok: true,
                ..Default::default()
            })
            .await
            .map(|_| ());
        let lab = topo
            .apply_lab(v1::ApplyLabRequest {
                spec: Some(v1::LabSpec {
                    name: "evil".into(),
                    ..Default::default()
                }),
            })
            .await
            .map(|_| ());
        let tunnel = topo
            .tunnel(tunnel_stream(open_msg("evil", "n", 22)))
            .await
            .map(|_| ());
        let runs = topo.list_runs(v1::ListRunsRequest::default()).await.map(|_| ());
        let flows = topo
            .dump_flows(v1::DumpFlowsRequest { host: "h1".into() })
            .await
            .map(|_| ());
        [
            own, other, as_h2, ack, create, rules, nodes, report, result, lab, tunnel, runs, flows,
        ]
        .map(|r| r.map_err(|s| (s.code(), s.message().to_string())))
    });
    assert!(
        codes[0].is_ok(),
        "an agent may watch its own host: {:?}",
        codes[0]
    );
    for (what, got) in [
        "watch h2",
        "register as h2",
        "ack for h2",
        "create a port",
        "read h2's rules",
        "watch h2's lab nodes",
        "report h2's nodes",
        "answer h2's operations",
        "create a lab",
        "open a tunnel into a lab",
        "list experiment runs",
        "dump h1's flows",
    ]
    .iter()
    .zip(&codes[1..])
    {
        let (code, message) = got.clone().expect_err(what);
        assert_eq!(code, Code::PermissionDenied, "{what}: {message}");
        println!("agent h1 tries to {what}: {message}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(snapshot(&operator), before, "a refused agent changed state");
    let log = std::fs::read_to_string(c.coordinator_log()).unwrap();
    assert!(
        log.contains("peer=agent h1 at"),
        "refusals are logged with the peer identity:\n{log}"
    );
}

fn open_msg(lab: &str, node: &str, port: u32) -> v1::TunnelData {
    v1::TunnelData {
        msg: Some(v1::tunnel_data::Msg::Open(v1::TunnelOpen {
            lab: lab.into(),
            node: node.into(),
            port,
            tunnel: 0,
        })),
    }
}

fn tunnel_stream(first: v1::TunnelData) -> impl tokio_stream::Stream<Item = v1::TunnelData> {
    tokio_stream::iter(vec![first])
}

/// Bad tunnel requests are refused before any agent is asked, and an
/// agent cannot answer a tunnel nobody opened.
#[test]
fn tunnels_are_checked_before_anything_opens() {
    let c = cluster("st", 1, false);
    let pki = c.pki_dir().unwrap().to_path_buf();
    let operator = c.client_config().unwrap();
    let h1 = ClientConfig::new(c.coordinator_url().unwrap(), Some(&files(&pki, &pki, "agent-h1"))).unwrap();
    let data = v1::TunnelData {
        msg: Some(v1::tunnel_data::Msg::Data(b"GET / HTTP/1.0".to_vec())),
    };
    let answers = rt().block_on(async {
        let mut topo = Operator::new(operator.connect().await.unwrap());
        let mut out = Vec::new();
        for first in [
            data.clone(),
            open_msg("nolab", "n", 22),
            open_msg("nolab", "n", 0),
            open_msg("nolab", "n", 70000),
        ] {
            let r = topo.tunnel(tunnel_stream(first)).await.map(|_| ());
            out.push(r.map_err(|s| (s.code(), s.message().to_string())));
        }
        let mut agent = AgentControlClient::new(h1.connect().await.unwrap());
        let mut back = open_msg("", "", 0);
        if let Some(v1::tunnel_data::Msg::Open(o)) = back.msg.as_mut() {
            o.tunnel = 12345;
        }
        let r = agent.tunnel_back(tunnel_stream(back)).await.map(|_| ());
        out.push(r.map_err(|s| (s.code(), s.message().to_string())));
        let r = topo
            .tunnel(tokio_stream::iter(Vec::<v1::TunnelData>::new()))
            .await
            .map(|_| ());
        out.push(r.map_err(|s| (s.code(), s.message().to_string())));
        out
    });
    let expect = [
        (Code::InvalidArgument, "first message must be open"),
        (Code::NotFound, "lab nolab does not exist"),
        (Code::InvalidArgument, "port 0 is not a TCP port"),
        (Code::InvalidArgument, "port 70000 is not a TCP port"),
        (Code::NotFound, "no tunnel 12345 is waiting"),
        (Code::InvalidArgument, "first message must be open"),
    ];
    for (got, (code, text)) in answers.iter().zip(expect) {
        let (got_code, message) = got.clone().expect_err(text);
        assert_eq!(got_code, code, "{message}");
        assert!(message.contains(text), "{message:?} does not say {text:?}");
    }
}

#[test]
fn insecure_mode_is_explicit_and_logged() {
    let mut opts = dclab_integration::UpOptions::unique("si", 1);
    opts.insecure = true;
    let c = dclab_integration::ClusterGuard::up(&opts).unwrap();
    assert!(c.coordinator_url().unwrap().starts_with("http://"));
    assert_eq!(list_tenants(&c.client_config().unwrap()), Ok(0));
    let log = std::fs::read_to_string(c.coordinator_log()).unwrap();
    assert!(log.contains("--insecure: gRPC runs in plaintext"), "{log}");
    assert!(std::fs::read_to_string(c.agent_log("h1"))
        .unwrap()
        .contains("--insecure"));
}

#[test]
fn insecure_mode_listens_on_loopback_only() {
    let bin = dclab_integration::built_bins(&["coordinator"]).join("coordinator");
    let dir = tempfile::tempdir().unwrap();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let out = std::process::Command::new(&bin)
            .args(["--insecure", "--listen", listen, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{listen}: {stderr}");
        assert!(stderr.contains("listens on loopback only"), "{listen}: {stderr}");
    }
    // On loopback it serves (and is stopped by its pid).
    let addr_file = dir.path().join("addr");
    let mut child = std::process::Command::new(&bin)
        .args(["--insecure", "--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !addr_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let served = addr_file.exists();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(served, "the coordinator did not serve on loopback");
}

#[test]
fn an_agent_registers_within_bounds_and_changes_rarely() {
    let c = cluster("sr", 1, false);
    let pki = c.pki_dir().unwrap().to_path_buf();
    let h1 = ClientConfig::new(c.coordinator_url().unwrap(), Some(&files(&pki, &pki, "agent-h1"))).unwrap();
    let operator = Api::connect(&c.client_config().unwrap());
    let registered = |hosts: Vec<v1::Host>| hosts.into_iter().find(|h| h.id == "h1").unwrap();
    let before = registered(operator.hosts());
    let request = |mac: &str, uplink: &str, vcpus: u32, memory_mib: u64| v1::RegisterRequest {
        host_id: "h1".into(),
        uplink: uplink.into(),
        mac: mac.into(),
        vcpus,
        memory_mib,
    };
    let (refusals, changes) = rt().block_on(async {
        let mut agent = AgentControlClient::new(h1.connect().await.unwrap());
        let mut refusals = Vec::new();
        for bad in [
            request(&before.mac, "up0", 1_000_000, 4096),
            request(&before.mac, "up0", 4, u64::MAX),
            request("ff:ff:ff:ff:ff:ff", "up0", 4, 4096),
            request("01:00:5e:00:00:01", "up0", 4, 4096),
            request("00:00:00:00:00:00", "up0", 4, 4096),
            request(&before.mac, "../up0", 4, 4096),
        ] {
            let status = agent.register(bad).await.expect_err("out of bounds");
            refusals.push((status.code(), status.message().to_string()));
        }
        // Changes of the capacity, one after another: a few are taken.
        let mut changes = Vec::new();
        for memory in 1..=8u64 {
            let r = agent
                .register(request(&before.mac, "up0", 4, 1024 * memory))
                .await;
            changes.push(r.map(|_| ()).map_err(|s| (s.code(), s.message().to_string())));
        }
        (refusals, changes)
    });
    for (code, message) in &refusals {
        assert_eq!(*code, Code::InvalidArgument, "{message}");
    }
    let accepted = changes.iter().take_while(|r| r.is_ok()).count();
    assert!(
        (4..=6).contains(&accepted),
        "{accepted} changes accepted: {changes:?}"
    );
    let (code, message) = changes[accepted].clone().unwrap_err();
    assert_eq!(code, Code::ResourceExhausted, "{message}");
    assert!(message.contains("changed its registration"), "{message}");
    assert!(changes[accepted..].iter().all(|r| r.is_err()), "{changes:?}");
    let after = registered(operator.hosts());
    assert_eq!(
        after.memory_mib,
        1024 * accepted as u64,
        "the refused changes wrote nothing"
    );
}

/// Open descriptors of process `pid`.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn strangers_are_limited_before_they_authenticate() {
    let c = cluster("sl", 1, false);
    let url = c.coordinator_url().unwrap().to_string();
    let addr = url.trim_start_matches("https://").to_string();
    let pki = c.pki_dir().unwrap().to_path_buf();
    let pid = c.state().coordinator.as_ref().unwrap().pid;
    let before = open_fds(pid);

    // Six hundred connections that never start their handshake: the
    // coordinator holds at most MAX_HANDSHAKES of them, and still serves.
    let stalled: Vec<std::net::TcpStream> = (0..600)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let held = open_fds(pid).saturating_sub(before);
    println!(
        "{} stalled connections: the coordinator holds {held} more descriptors",
        stalled.len()
    );
    assert!(
        stalled.len() > 500,
        "only {} connections were made",
        stalled.len()
    );
    assert!(
        held <= dclab_runtime::conn::MAX_HANDSHAKES + 16,
        "the coordinator holds {held} descriptors for stalled handshakes"
    );
    drop(stalled);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        list_tenants(&c.client_config().unwrap()),
        Ok(0),
        "an operator gets in again at once"
    );

    // Connections with no client certificate: a few may stay to be told
    // why, the rest are closed.
    let anonymous = ClientConfig::new(
        &url,
        Some(&TlsFiles {
            ca: pki.join("ca.crt"),
            identity: None,
        }),
    )
    .unwrap();
    let max = dclab_runtime::conn::MAX_UNAUTHENTICATED;
    let (told, closed) = rt().block_on(async {
        let mut kept = Vec::new();
        let (mut told, mut closed) = (0, 0);
        for _ in 0..max + 20 {
            let Ok(channel) = anonymous.connect().await else {
                closed += 1;
                continue;
            };
            match Operator::new(channel.clone())
                .list_tenants(v1::ListTenantsRequest {})
                .await
            {
                Err(s) if s.code() == Code::Unauthenticated => told += 1,
                _ => closed += 1,
            }
            kept.push(channel);
        }
        (told, closed)
    });
    println!(
        "{} connections without a certificate: {told} told why, {closed} closed",
        max + 20
    );
    assert!(
        told <= max && told >= max / 2,
        "{told} unauthenticated connections kept"
    );
    assert!(closed >= 20, "only {closed} closed");
    assert_eq!(
        list_tenants(&c.client_config().unwrap()),
        Ok(0),
        "the operator is still served"
    );

    // A TunnelBack stream is an agent's, and must name its tunnel at once.
    let operator = c.client_config().unwrap();
    let h1 = ClientConfig::new(&url, Some(&files(&pki, &pki, "agent-h1"))).unwrap();
    let (as_operator, silent) = rt().block_on(async {
        let back = |config: ClientConfig| async move {
            let channel = config.connect().await.unwrap();
            let (_tx, rx) = tokio::sync::mpsc::channel::<v1::TunnelData>(1);
            let started = std::time::Instant::now();
            let r = AgentControlClient::new(channel)
                .tunnel_back(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            (
                r.map(|_| ()).map_err(|s| (s.code(), s.message().to_string())),
                started.elapsed(),
            )
        };
        (back(operator).await, back(h1).await)
    });
    assert_eq!(as_operator.0.unwrap_err().0, Code::PermissionDenied);
    let (code, message) = silent.0.clone().unwrap_err();
    assert_eq!(code, Code::DeadlineExceeded, "{message}");
    assert!(
        silent.1 < Duration::from_secs(10),
        "a silent TunnelBack was held {:?}",
        silent.1
    );
}
