//! The measurements on a real dclab cluster, in quick mode: every figure is
//! measured and parsed. No thresholds: this machine's speed is not tested.

use super::measure::{self, Settings};
use super::setup;
use crate::local::UpOptions;

/// Needs root, OvS and the coordinator and agent binaries
/// (`cargo build --workspace --bins`); runs in `--run-ignored all`.
#[test]
#[ignore = "needs root, Open vSwitch and the built binaries"]
fn quick_measurements_on_a_dclab_cluster_are_sane() {
    let cluster = setup::paper_cluster(&UpOptions::unique("bd", 3)).unwrap();
    let figures = measure::all(&[("test", &*cluster)], &Settings::quick()).unwrap();
    let f = &figures[0];
    for (what, summary) in [
        ("rtt same host", f.rtt_same_host_ms),
        ("rtt across hosts", f.rtt_cross_host_ms),
        ("arp", f.arp_resolution_ms),
        ("broadcast", f.broadcast_rtt_ms),
    ] {
        assert!(summary.samples > 0 && summary.mean > 0.0, "{what}: {summary:?}");
    }
    for (what, mbps) in [
        ("tcp same host", f.tcp_same_host_mbps),
        ("tcp across hosts", f.tcp_cross_host_mbps),
        ("tcp unflooded", f.tcp_unflooded_mbps),
    ] {
        assert!(mbps > 0.0, "{what}: {mbps}");
    }
    // Under a flood a zero (with iperf3's reason) is a figure too.
    for flood in [&f.ping_flood, &f.paced_flood] {
        assert!(flood.mbps > 0.0 || flood.failure.is_some(), "{flood:?}");
        assert!(flood.flood_packets_per_second > 0.0, "{flood:?}");
    }
    assert!(f.new_connections.connections > 0, "{:?}", f.new_connections);
}
