//! Real namespaces, real OvS: these tests need root and the tools from
//! scripts/install-deps.sh.

use std::path::Path;
use std::sync::Mutex;

use super::*;

/// Serializes the tests that read or change DCLAB_BIN_DIR.
pub(super) static BIN_DIR_ENV: Mutex<()> = Mutex::new(());

pub(super) fn namespaces_of(name: &str) -> Vec<String> {
    netns::list_with_prefix(&state::netns_prefix(name)).unwrap()
}

pub(super) fn recorded_pids(cluster: &Cluster) -> Vec<ProcRecord> {
    let state = cluster.state();
    let hosts = state.hosts.iter().flat_map(|h| [&h.ovsdb, &h.vswitchd, &h.agent]);
    hosts.chain([&state.coordinator]).flatten().cloned().collect()
}

pub(super) fn assert_gone(cluster: &Cluster) {
    assert!(namespaces_of(cluster.name()).is_empty(), "namespaces left behind");
    for record in recorded_pids(cluster) {
        assert!(!process::is_alive(&record), "{record:?} still runs");
    }
    assert!(!Path::new(&cluster.state().dir).exists(), "run dir left behind");
}

pub(super) fn ping(cluster: &Cluster, from: &str, to_ip: &str) -> bool {
    let out = cluster
        .exec(
            &cluster.instance_netns(from),
            &["ping", "-c", "2", "-W", "1", to_ip],
        )
        .unwrap();
    out.status.success()
}

pub(super) fn iperf(cluster: &Cluster, server: &str, server_ip: &str, client: &str) {
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
fn cli_definitions_are_consistent() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Local {
        #[command(subcommand)]
        cmd: LocalCommand,
    }
    Local::command().debug_assert();
    let parsed = Local::try_parse_from([
        "local",
        "instance",
        "add",
        "vm1",
        "--cluster",
        "c1",
        "--host",
        "h1",
        "--tenant",
        "t",
        "--network",
        "n",
        "--ip",
        "10.0.0.1/24",
        "--kind",
        "router",
    ])
    .unwrap();
    let LocalCommand::Instance(InstanceCommand::Add { cluster, kind, .. }) = parsed.cmd else {
        panic!("parsed into the wrong command");
    };
    assert_eq!((cluster.name.as_str(), kind), ("c1", InstanceKind::Router));
}
