//! Bad input is refused with the right gRPC status and a message naming
//! the problem, and nothing is written. Runs against a real coordinator.

use std::process::Command;

use dclab_integration::api::Api;
use dclab_integration::cluster;
use dclab_proto::v1;
use tonic::Code;

/// Everything a client can see of the topology.
fn snapshot(api: &Api) -> String {
    let tenants = api
        .call(|mut c| async move { c.list_tenants(v1::ListTenantsRequest {}).await })
        .unwrap();
    let networks = api
        .call(|mut c| async move { c.list_networks(v1::ListNetworksRequest::default()).await })
        .unwrap();
    let hosts: Vec<_> = api
        .hosts()
        .into_iter()
        .map(|h| (h.id, h.mac, h.port_count))
        .collect();
    format!("{tenants:?}\n{networks:?}\n{:?}\n{hosts:?}", api.ports())
}

fn port(name: &str, network: &str, host: &str, mac: &str, ip: &str) -> v1::CreatePortRequest {
    v1::CreatePortRequest {
        name: name.into(),
        tenant: "a".into(),
        network: network.into(),
        host: host.into(),
        mac: mac.into(),
        ip: ip.into(),
        kind: v1::PortKind::Vm.into(),
    }
}

fn refuse_port(api: &Api, req: v1::CreatePortRequest, code: Code, words: &str) {
    let before = snapshot(api);
    let label = format!("{req:?}");
    let err = api
        .call(|mut c| async move { c.create_port(req).await })
        .expect_err(&label);
    assert_eq!(err.code(), code, "{label}: {}", err.message());
    assert!(
        err.message().contains(words),
        "{label}: message {:?} lacks {words:?}",
        err.message()
    );
    assert_eq!(snapshot(api), before, "{label} wrote something");
}

fn refuse_network(api: &Api, tenant: &str, name: &str, cidr: &str, code: Code, words: &str) {
    let before = snapshot(api);
    let req = v1::CreateNetworkRequest {
        tenant: tenant.into(),
        name: name.into(),
        cidr: cidr.into(),
        kind: v1::NetworkKind::Rewrite.into(),
    };
    let err = api
        .call(|mut c| async move { c.create_network(req).await })
        .expect_err(cidr);
    assert_eq!(err.code(), code, "{cidr}: {}", err.message());
    assert!(
        err.message().contains(words),
        "{cidr}: message {:?} lacks {words:?}",
        err.message()
    );
    assert_eq!(snapshot(api), before);
}

#[test]
fn bad_topology_input_is_refused_and_writes_nothing() {
    let c = cluster("va", 1, false);
    let api = Api::connect(&c.client_config().unwrap());
    api.tenant("a");
    api.network("a", "net", "10.0.0.0/24");
    let ok = port("p1", "net", "h1", "02:00:00:00:00:01", "10.0.0.1");
    api.call(|mut c| async move { c.create_port(ok).await }).unwrap();

    refuse_port(
        &api,
        port("p2", "net", "h1", "02:00:00:00:00:02", "10.0.1.5"),
        Code::InvalidArgument,
        "10.0.1.5",
    );
    refuse_port(
        &api,
        port("p2", "net", "h1", "02:00:00:00:00:02", "10.0.0.255"),
        Code::InvalidArgument,
        "not a host address",
    );
    refuse_port(
        &api,
        port("p2", "net", "h1", "02:00:00:00:00:02", "10.0.0.1"),
        Code::AlreadyExists,
        "IP 10.0.0.1",
    );
    refuse_port(
        &api,
        port("p2", "net", "h1", "02:00:00:00:00:01", "10.0.0.2"),
        Code::AlreadyExists,
        "MAC 02:00:00:00:00:01",
    );
    refuse_port(
        &api,
        port("p2", "net", "h9", "02:00:00:00:00:02", "10.0.0.2"),
        Code::NotFound,
        "h9",
    );
    refuse_port(
        &api,
        port("p2", "nope", "h1", "02:00:00:00:00:02", "10.0.0.2"),
        Code::NotFound,
        "nope",
    );
    let mut other_tenant = port("p2", "net", "h1", "02:00:00:00:00:02", "10.0.0.2");
    other_tenant.tenant = "ghost".into();
    refuse_port(&api, other_tenant, Code::NotFound, "ghost");
    refuse_port(
        &api,
        port("p2", "net", "h1", "02:00:00:00:00", "10.0.0.2"),
        Code::InvalidArgument,
        "malformed MAC",
    );
    refuse_port(
        &api,
        port("p2", "net", "h1", "01:00:5e:00:00:01", "10.0.0.2"),
        Code::InvalidArgument,
        "multicast",
    );
    refuse_port(
        &api,
        port("p2", "net", "h1", "02:00:00:00:00:02", "10.0.0.300"),
        Code::InvalidArgument,
        "10.0.0.300",
    );
    refuse_port(
        &api,
        port("p1", "net", "h1", "02:00:00:00:00:02", "10.0.0.2"),
        Code::AlreadyExists,
        "p1",
    );
    refuse_port(
        &api,
        port("bad/name", "net", "h1", "02:00:00:00:00:02", "10.0.0.2"),
        Code::InvalidArgument,
        "'/'",
    );
    let mut unknown_kind = port("p2", "net", "h1", "02:00:00:00:00:02", "10.0.0.2");
    unknown_kind.kind = 42;
    refuse_port(&api, unknown_kind, Code::InvalidArgument, "kind 42");

    refuse_network(
        &api,
        "a",
        "wide",
        "10.0.0.0/16",
        Code::InvalidArgument,
        "overlaps network net",
    );
    refuse_network(
        &api,
        "a",
        "bad",
        "10.0.0.0/33",
        Code::InvalidArgument,
        "malformed CIDR",
    );
    refuse_network(
        &api,
        "a",
        "bad",
        "10.0.0.1/24",
        Code::InvalidArgument,
        "host bits",
    );
    refuse_network(&api, "ghost", "n", "10.9.0.0/24", Code::NotFound, "ghost");
    refuse_network(&api, "a", "net", "10.9.0.0/24", Code::AlreadyExists, "net");
    // Another tenant may reuse the same CIDR.
    api.tenant("b");
    api.network("b", "net", "10.0.0.0/24");

    let before = snapshot(&api);
    let del = v1::DeleteNetworkRequest {
        tenant: "a".into(),
        name: "net".into(),
    };
    let err = api
        .call(|mut c| async move { c.delete_network(del).await })
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("1 ports"), "{}", err.message());
    let del = v1::DeleteHostRequest { id: "h1".into() };
    assert_eq!(
        api.call(|mut c| async move { c.delete_host(del).await })
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    assert_eq!(snapshot(&api), before, "refused deletes wrote something");
}

#[test]
fn ctl_prints_one_clear_line_and_exits_non_zero() {
    let c = cluster("vc", 1, false);
    let url = c.coordinator_url().unwrap().to_string();
    let pki = c.pki_dir().unwrap().to_path_buf();
    let ctl = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("ctl");
    let run = |args: &[&str]| {
        Command::new(&ctl)
            .arg("--coordinator")
            .arg(&url)
            .arg("--pki-dir")
            .arg(&pki)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["tenant", "create", "a"]).status.success());
    let out = run(&["network", "create", "n", "--tenant", "a", "--cidr", "10.0.0.0/33"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: malformed CIDR \"10.0.0.0/33\""),
        "{stderr}"
    );
    let out = run(&["-o", "json", "network", "ls"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(json.as_array().map(Vec::len), Some(0));
    let unreachable = Command::new(&ctl)
        .args(["--insecure", "--coordinator", "http://127.0.0.1:1", "host", "ls"])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("cannot reach the coordinator at http://127.0.0.1:1"),
        "{stderr}"
    );
}
