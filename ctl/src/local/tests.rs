//! Real namespaces, real OvS: these tests need root and the tools from
//! scripts/install-deps.sh.

use std::path::Path;
use std::sync::Mutex;

use super::*;

/// Serializes the tests that read or change DCLAB_BIN_DIR.
static BIN_DIR_ENV: Mutex<()> = Mutex::new(());

fn namespaces_of(name: &str) -> Vec<String> {
    netns::list_with_prefix(&state::netns_prefix(name)).unwrap()
}

fn recorded_pids(cluster: &Cluster) -> Vec<ProcRecord> {
    let state = cluster.state();
    let hosts = state.hosts.iter().flat_map(|h| [&h.ovsdb, &h.vswitchd, &h.agent]);
    hosts.chain([&state.coordinator]).flatten().cloned().collect()
}

fn assert_gone(cluster: &Cluster) {
    assert!(namespaces_of(cluster.name()).is_empty(), "namespaces left behind");
    for record in recorded_pids(cluster) {
        assert!(!process::is_alive(&record), "{record:?} still runs");
    }
    assert!(!Path::new(&cluster.state().dir).exists(), "run dir left behind");
}

fn ping(cluster: &Cluster, from: &str, to_ip: &str) -> bool {
    let out = cluster
        .exec(
            &cluster.instance_netns(from),
            &["ping", "-c", "2", "-W", "1", to_ip],
        )
        .unwrap();
    out.status.success()
}

fn iperf(cluster: &Cluster, server: &str, server_ip: &str, client: &str) {
    let mut srv = cluster
        .spawn_in(&cluster.instance_netns(server), &["iperf3", "-s", "-1"])
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = cluster
        .exec(
            &cluster.instance_netns(client),
            &["iperf3", "-c", server_ip, "-t", "2", "--connect-timeout", "3000"],
        )
        .unwrap();
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(
        out.status.success(),
        "iperf3 failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{}",
        report
            .lines()
            .filter(|l| l.contains("receiver"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn plain_cluster_carries_ping_and_tcp_then_goes_away() {
    let mut opts = UpOptions::unique("pl", 2);
    opts.plain = true;
    let cluster = {
        let mut guard = ClusterGuard::up(&opts).unwrap();
        assert!(
            Cluster::up(&opts).is_err(),
            "a second up of the same name must refuse"
        );
        guard
            .add_instance(&InstanceSpec::vm("a", "h1", "t", "n", "10.0.0.1/24"))
            .unwrap();
        guard
            .add_instance(&InstanceSpec::vm("b", "h2", "t", "n", "10.0.0.2/24"))
            .unwrap();
        guard
            .add_instance(&InstanceSpec::vm("c", "h1", "t", "n", "10.0.0.3/24"))
            .unwrap();
        assert!(ping(&guard, "a", "10.0.0.2"), "ping across hosts");
        assert!(ping(&guard, "a", "10.0.0.3"), "ping on one host");
        iperf(&guard, "b", "10.0.0.2", "a");
        iperf(&guard, "c", "10.0.0.3", "a");
        assert!(guard
            .ofctl("h1", &["dump-flows"])
            .unwrap()
            .contains("actions=NORMAL"));
        guard.remove_instance("c").unwrap();
        assert!(!netns::exists(&guard.instance_netns("c")));
        assert_eq!(Cluster::load(guard.name()).unwrap().instances().len(), 2);
        (*guard).clone()
    };
    assert_gone(&cluster);
    assert!(
        Cluster::down(cluster.name()).unwrap().is_empty(),
        "second down removes nothing"
    );
}

#[test]
fn failed_up_cleans_up_and_names_the_step() {
    let _env = BIN_DIR_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let opts = UpOptions::unique("fa", 2);
    std::env::set_var("DCLAB_BIN_DIR", "/nonexistent-dclab-bin");
    let err = Cluster::up(&opts).unwrap_err();
    std::env::remove_var("DCLAB_BIN_DIR");
    let message = format!("{err:#}");
    assert!(message.contains("starting the coordinator"), "{message}");
    assert!(message.contains("cargo build --workspace"), "{message}");
    assert!(namespaces_of(&opts.name).is_empty());
    assert!(!state::cluster_dir(&opts.name).exists());
}

#[test]
fn bad_instance_names_are_refused() {
    let mut cluster = Cluster {
        state: ClusterState::new("x", Mode::Plain),
    };
    let long = InstanceSpec::vm("abcdefghijklmn", "h1", "t", "n", "10.0.0.1/24");
    assert!(format!("{:#}", cluster.add_instance(&long).unwrap_err()).contains("15 characters"));
    let no_prefix = InstanceSpec::vm("a", "h1", "t", "n", "10.0.0.1");
    assert!(cluster.add_instance(&no_prefix).is_err());
}

#[test]
fn derived_macs_are_stable_and_local() {
    assert_eq!(derived_mac("a"), derived_mac("a"));
    assert_ne!(derived_mac("a"), derived_mac("b"));
    assert!(derived_mac("vm1").starts_with("02:"));
}

#[test]
fn unique_names_are_valid_cluster_names() {
    for _ in 0..100 {
        state::validate_cluster_name(&UpOptions::unique("Test-x", 1).name).unwrap();
    }
}

/// Creates tenants and networks the way `ctl tenant/network create` would.
fn create_networks(url: &str, nets: &[(&str, &str, &str)]) {
    use dclab_proto::v1::{CreateNetworkRequest, CreateTenantRequest};
    let url = url.to_string();
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
                .create_network(CreateNetworkRequest { tenant, name, cidr })
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

/// Needs the coordinator and agent binaries: `cargo build --workspace`.
#[test]
#[ignore]
fn dclab_cluster_isolates_overlapping_tenants_and_survives_restarts() {
    let _env = BIN_DIR_ENV.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = {
        let mut guard = ClusterGuard::up(&UpOptions::unique("dc", 2)).unwrap();
        let url = guard.coordinator_url().unwrap().to_string();
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
        assert_eq!(guard.coordinator_url().unwrap(), url, "restart keeps the address");
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
    let url = cluster.coordinator_url().unwrap().to_string();
    assert!(grpc::list_hosts(&url).unwrap().is_empty());
    let first = cluster.state().coordinator.clone().unwrap();
    cluster.kill_coordinator(libc::SIGTERM).unwrap();
    assert!(!process::is_alive(&first));
    assert!(grpc::list_hosts(&url).is_err());
    cluster.start_coordinator().unwrap();
    assert_eq!(cluster.coordinator_url().unwrap(), url);
    assert!(grpc::list_hosts(&url).unwrap().is_empty());
    let second = cluster.state().coordinator.clone().unwrap();
    let removed = Cluster::down(&name).unwrap();
    assert!(removed.iter().any(|r| r.contains("coordinator")), "{removed:?}");
    assert!(!process::is_alive(&second));
    assert!(Cluster::down(&name).unwrap().is_empty());
}

#[test]
fn down_sweeps_leftovers_without_state_and_spares_reused_pids() {
    let name = UpOptions::unique("sw", 0).name;
    let host_dir = state::cluster_dir(&name).join("h1");
    std::fs::create_dir_all(&host_dir).unwrap();
    // A pidfile whose pid now belongs to another program must not be killed.
    let mut bystander = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(host_dir.join("vswitchd.pid"), format!("{}\n", bystander.id())).unwrap();
    netns::create(&format!("dcl-{name}-h1")).unwrap();
    let removed = Cluster::down(&name).unwrap();
    let still_running = bystander.try_wait().unwrap().is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert!(still_running, "down killed a pid that was not ovs-vswitchd");
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(namespaces_of(&name).is_empty());
    assert!(!state::cluster_dir(&name).exists());
}

#[test]
#[ignore]
fn scratch_up_dbg() {
    let mut c = Cluster::up(&UpOptions::new("dbg", 2)).unwrap();
    let url = c.coordinator_url().unwrap().to_string();
    create_networks(&url, &[("ta", "n", "10.0.0.0/24"), ("tb", "n", "10.0.0.0/24")]);
    c.add_instance(&InstanceSpec::vm("a1", "h1", "ta", "n", "10.0.0.1/24"))
        .unwrap();
    c.add_instance(&InstanceSpec::vm("a2", "h2", "ta", "n", "10.0.0.2/24"))
        .unwrap();
    c.add_instance(&InstanceSpec::vm("a3", "h1", "ta", "n", "10.0.0.3/24"))
        .unwrap();
}

#[test]
#[ignore]
fn scratch_add_b() {
    let mut c = Cluster::load("dbg").unwrap();
    c.add_instance(&InstanceSpec::vm("b1", "h1", "tb", "n", "10.0.0.2/24"))
        .unwrap();
    c.add_instance(&InstanceSpec::vm("b2", "h2", "tb", "n", "10.0.0.1/24"))
        .unwrap();
}

#[test]
#[ignore]
fn scratch_down_dbg() {
    eprintln!("{:?}", Cluster::down("dbg").unwrap());
}
