//! Support for dclab's integration tests: a blocking coordinator client,
//! packet captures inside namespaces, and the paper's test topologies.
//! Everything runs against real processes, real OvS and real namespaces.

pub mod api;
pub mod apt_repo;
pub mod browser;
pub mod concurrent;
pub mod ctl;
pub mod experiments;
pub mod hostile;
pub mod hostile_calls;
pub mod labs;
pub mod libvirtd;
pub mod metrics;
pub mod node_procs;
pub mod rss;
pub mod world;

pub use dclab_ctl::demo::{capture, paper};
pub use dclab_ctl::local::{self, Cluster, ClusterGuard, InstanceSpec, UpOptions};

/// Integration tests need root, Open vSwitch and the network tools; a
/// missing one fails the test loudly with what to install.
pub fn require_tools() {
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "integration tests need root (network namespaces, OvS)"
    );
    for tool in [
        "ovs-vswitchd",
        "ovsdb-server",
        "ovs-vsctl",
        "ovs-ofctl",
        "ip",
        "tcpdump",
        "fping",
        "iperf3",
        "ping",
    ] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false);
        assert!(found, "{tool} is missing: run scripts/install-deps.sh (apt packages openvswitch-switch fping iperf3 tcpdump iproute2 iputils-ping)");
    }
}

/// The directory of the binaries built with the running test
/// (target/<profile>; a test binary runs from its deps/), once each of
/// `bins` is known to be there.
pub fn built_bins(bins: &[&str]) -> std::path::PathBuf {
    let dir = std::env::current_exe()
        .expect("test binary path")
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf();
    for bin in bins {
        assert!(
            dir.join(bin).is_file(),
            "{} is missing: build the binaries first (cargo build --workspace --bins, as scripts/test.sh does)",
            dir.join(bin).display()
        );
    }
    dir
}

/// Brings up a cluster that is torn down when dropped, even on panic.
pub fn cluster(prefix: &str, hosts: usize, plain: bool) -> ClusterGuard {
    require_tools();
    let mut opts = UpOptions::unique(prefix, hosts);
    opts.plain = plain;
    ClusterGuard::up(&opts).expect("local cluster comes up")
}
