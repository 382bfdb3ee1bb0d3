//! dclab mode on real OvS, namespaces and processes. Needs the coordinator
//! and agent binaries: `cargo build --workspace`, then
//! `cargo test -p dclab-ctl -- --ignored`.

use super::tests::{assert_gone, iperf, ping, BIN_DIR_ENV};
use super::*;

/// Creates tenants and networks the way `ctl tenant/network create` would.
fn create_networks(config: &dclab_runtime::net::ClientConfig, nets: &[(&str, &str, &str)]) {
    use dclab_proto::v1::{CreateNetworkRequest, CreateTenantRequest};
    let url = config.clone();
    let nets: Vec<(String, String, String)> = nets
        .iter()
        .map(|(t, n, c)| (t.to_string(), n.to_string(), c.to_string()))
        .collect();
    grpc::block_on(async move {
        let mut client = grpc::client(url).await?;
        for (tenant, name, cidr) in nets {
            let _ = client
                .create_tenant(CreateTenantRequest { name: tenant.clone() })
                .await;
            client
                .create_network(CreateNetworkRequest {
                    tenant,
                    name,
                    cidr,
                    kind: dclab_proto::v1::NetworkKind::Rewrite.into(),
                })
                .await?;
        }
        Ok(())
    })
    .unwrap();
}

/// Rules reach OvS asynchronously: retry for a few seconds.
fn eventually_pings(cluster: &Cluster, from: &str, to_ip: &str) -> bool {
    (0..10).any(|_| ping(cluster, from, to_ip))
}

/// Needs the coordinator and agent binaries: `cargo build --workspace`,
/// then `cargo test -p dclab-ctl -- --ignored`.
#[test]
#[ignore]
fn dclab_cluster_isolates_overlapping_tenants_and_survives_restarts() {
    let _env = BIN_DIR_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = {
        let mut guard = ClusterGuard::up(&UpOptions::unique("dc", 2)).unwrap();
        let url = guard.client_config().unwrap();
        assert_eq!(grpc::list_hosts(&url).unwrap().len(), 2);
        create_networks(&url, &[("ta", "n", "10.0.0.0/24"), ("tb", "n", "10.0.0.0/24")]);
        // Same addresses in both tenants, on both hosts.
        guard
            .add_instance(&InstanceSpec::vm("a1", "h1", "ta", "n", "10.0.0.1/24"))
            .unwrap();
        guard
            .add_instance(&InstanceSpec::vm("a2", "h2", "ta", "n", "10.0.0.2/24"))
            .unwrap();
        guard
            .add_instance(&InstanceSpec::vm("b1", "h1", "tb", "n", "10.0.0.2/24"))
            .unwrap();
        guard
            .add_instance(&InstanceSpec::vm("b2", "h2", "tb", "n", "10.0.0.1/24"))
            .unwrap();
        assert!(
            eventually_pings(&guard, "a1", "10.0.0.2"),
            "a1 -> a2 across hosts"
        );
        assert!(
            eventually_pings(&guard, "b2", "10.0.0.2"),
            "b2 -> b1 across hosts"
        );
        iperf(&guard, "a2", "10.0.0.2", "a1");

        guard.kill_agent("h1", libc::SIGTERM).unwrap();
        guard.start_agent("h1").unwrap();
        guard.kill_coordinator(libc::SIGKILL).unwrap();
        guard.start_coordinator().unwrap();
        assert_eq!(
            guard.coordinator_url().unwrap(),
            url.url,
            "restart keeps the address"
        );
        assert!(
            eventually_pings(&guard, "a1", "10.0.0.2"),
            "still works after restarts"
        );

        // With a2 gone, a1's 10.0.0.2 must not reach tb's b1 on its own host.
        guard.remove_instance("a2").unwrap();
        std::thread::sleep(std::time::Duration::from_secs(1));
        assert!(
            !ping(&guard, "a1", "10.0.0.2"),
            "a1 reached another tenant's 10.0.0.2"
        );
        (*guard).clone()
    };
    assert_gone(&cluster);
}

/// Needs the coordinator binary: `cargo build --workspace`.
#[test]
#[ignore]
fn coordinator_restarts_on_the_same_address() {
    let name = UpOptions::unique("co", 0).name;
    let mut cluster = Cluster {
        state: ClusterState::new(&name, Mode::Dclab),
    };
    cluster.start_coordinator().unwrap();
    let url = cluster.client_config().unwrap();
    assert!(grpc::list_hosts(&url).unwrap().is_empty());
    let first = cluster.state().coordinator.clone().unwrap();
    cluster.kill_coordinator(libc::SIGTERM).unwrap();
    assert!(!process::is_alive(&first));
    assert!(grpc::list_hosts(&url).is_err());
    cluster.start_coordinator().unwrap();
    assert_eq!(cluster.client_config().unwrap().url, url.url);
    assert!(grpc::list_hosts(&url).unwrap().is_empty());
    let second = cluster.state().coordinator.clone().unwrap();
    let removed = Cluster::down(&name).unwrap();
    assert!(removed.iter().any(|r| r.contains("coordinator")), "{removed:?}");
    assert!(!process::is_alive(&second));
    assert!(Cluster::down(&name).unwrap().is_empty());
}
