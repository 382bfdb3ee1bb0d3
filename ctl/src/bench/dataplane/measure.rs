//! Every figure of the benchmark, measured on one cluster laid out as the
//! paper's six instances.

use anyhow::Context;
use serde::Serialize;

use super::connrate::{self, ConnRate};
use super::iperf::Flooded;
use super::stats::Summary;
use super::{arp, iperf, ping};
use crate::local::Cluster;

/// How long and how often each measurement runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settings {
    pub ping_count: u32,
    pub iperf_seconds: u32,
    /// TCP samples per figure and round, taken in turns on the two
    /// clusters (ABBA...), so each dclab sample has a plain one next to it.
    pub tcp_samples: u32,
    pub arp_rounds: u32,
    pub broadcast_count: u32,
    pub connect_seconds: u32,
}

impl Settings {
    pub fn full() -> Self {
        Settings {
            ping_count: 200,
            iperf_seconds: 2,
            tcp_samples: 4,
            arp_rounds: 20,
            broadcast_count: 40,
            connect_seconds: 5,
        }
    }

    /// A smoke run: every figure, measured briefly.
    pub fn quick() -> Self {
        Settings {
            ping_count: 20,
            iperf_seconds: 1,
            tcp_samples: 1,
            arp_rounds: 3,
            broadcast_count: 5,
            connect_seconds: 1,
        }
    }
}

/// One cluster's figures: times in ms, throughput in Mbit/s.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub rtt_same_host_ms: Summary,
    pub rtt_cross_host_ms: Summary,
    pub tcp_same_host_mbps: f64,
    pub tcp_cross_host_mbps: f64,
    /// Every TCP sample in the order taken; sample i of one cluster was
    /// taken right before or after sample i of the other.
    pub tcp_same_host_samples: Vec<f64>,
    pub tcp_cross_host_samples: Vec<f64>,
    pub tcp_unflooded_samples: Vec<f64>,
    pub arp_resolution_ms: Summary,
    pub broadcast_rtt_ms: Summary,
    pub tcp_unflooded_mbps: f64,
    /// Under the paper's attack: `ping -f -b`, as fast as it goes.
    pub ping_flood: Flooded,
    /// Under a paced broadcast flood of `PACED_FLOOD_PPS`.
    pub paced_flood: Flooded,
    pub new_connections: ConnRate,
}

// The paper's layout (demo::paper::DISTINCT): vm1 and vm4 share h1, vm2 is
// on h2, vm3 on h3; vm6 (tenant b, h3) is the flooder.
const VM1: &str = "10.0.0.1";
const VM2: &str = "10.0.0.2";
const VM3: &str = "10.0.0.3";
const VM4: &str = "10.0.0.4";

/// A flood that does not by itself use up this machine's two cores, which
/// every simulated host shares (an unpaced `ping -f` does). ping paces in
/// whole milliseconds, so 1000/s is the fastest paced rate.
pub const PACED_FLOOD_PPS: u32 = 1000;

/// Measures everything on every cluster: each figure on one cluster, then
/// on the next, so what else runs on this machine meanwhile (builds, other
/// tests) weighs on both alike. Announces each step on stderr.
pub fn all(clusters: &[(&str, &Cluster)], s: &Settings) -> anyhow::Result<Vec<Figures>> {
    let mut figs = vec![Figures::default(); clusters.len()];
    step(clusters, &mut figs, "warm-up pings from vm1", |c, _| {
        [VM2, VM3, VM4]
            .iter()
            .try_for_each(|ip| ping::warm_up(c, "vm1", ip))
    })?;
    step(clusters, &mut figs, "RTT on one host (vm1 -> vm4)", |c, f| {
        f.rtt_same_host_ms = ping::rtt(c, "vm1", VM4, s.ping_count, 0.01)?;
        Ok(())
    })?;
    step(clusters, &mut figs, "RTT across hosts (vm1 -> vm2)", |c, f| {
        f.rtt_cross_host_ms = ping::rtt(c, "vm1", VM2, s.ping_count, 0.01)?;
        Ok(())
    })?;
    paired(
        clusters,
        &mut figs,
        "TCP throughput on one host (vm1 -> vm4)",
        s,
        ("vm1", "vm4", VM4),
        |f| &mut f.tcp_same_host_samples,
    )?;
    paired(
        clusters,
        &mut figs,
        "TCP throughput across hosts (vm1 -> vm2)",
        s,
        ("vm1", "vm2", VM2),
        |f| &mut f.tcp_cross_host_samples,
    )?;
    step(
        clusters,
        &mut figs,
        "ARP resolution (vm1 asks for vm2)",
        |c, f| {
            f.arp_resolution_ms = arp::resolution(c, "vm1", VM1, VM2, s.arp_rounds)?;
            Ok(())
        },
    )?;
    step(
        clusters,
        &mut figs,
        "broadcast RTT (vm1 -> 10.0.0.255)",
        |c, f| {
            f.broadcast_rtt_ms = ping::broadcast_rtt(c, "vm1", VM1, s.broadcast_count)?;
            Ok(())
        },
    )?;
    let pair = ("vm1", "vm3", VM3);
    paired(
        clusters,
        &mut figs,
        "TCP throughput vm1 -> vm3 without flood",
        s,
        pair,
        |f| &mut f.tcp_unflooded_samples,
    )?;
    step(
        clusters,
        &mut figs,
        "TCP throughput vm1 -> vm3 while vm6 ping-floods its broadcast address",
        |c, f| {
            f.ping_flood = iperf::throughput_under_flood(c, pair, "vm6", None, s.iperf_seconds)?;
            Ok(())
        },
    )?;
    let paced = format!("TCP throughput vm1 -> vm3 while vm6 sends {PACED_FLOOD_PPS} broadcasts/s");
    step(clusters, &mut figs, &paced, |c, f| {
        let rate = Some(PACED_FLOOD_PPS);
        f.paced_flood = iperf::throughput_under_flood(c, pair, "vm6", rate, s.iperf_seconds)?;
        Ok(())
    })?;
    step(
        clusters,
        &mut figs,
        "new TCP connections per second among vm1..vm4",
        |c, f| {
            let members = [("vm1", VM1), ("vm2", VM2), ("vm3", VM3), ("vm4", VM4)];
            f.new_connections = connrate::measure(c, &members, s.connect_seconds)?;
            Ok(())
        },
    )?;
    for f in &mut figs {
        f.tcp_same_host_mbps = super::stats::median(&f.tcp_same_host_samples);
        f.tcp_cross_host_mbps = super::stats::median(&f.tcp_cross_host_samples);
        f.tcp_unflooded_mbps = super::stats::median(&f.tcp_unflooded_samples);
    }
    Ok(figs)
}

/// TCP throughput samples taken in turns, the order flipping each sample
/// (ABBA...): run-to-run swings of this shared machine (about 20 % here)
/// then weigh on both clusters alike, and the paired ratios cancel them.
fn paired(
    clusters: &[(&str, &Cluster)],
    figures: &mut [Figures],
    what: &str,
    s: &Settings,
    pair: (&str, &str, &str),
    slot: fn(&mut Figures) -> &mut Vec<f64>,
) -> anyhow::Result<()> {
    for k in 0..s.tcp_samples.max(1) {
        let mut order: Vec<usize> = (0..clusters.len()).collect();
        if k % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (label, cluster) = clusters[i];
            eprintln!("{label}: measuring {what} ({}/{}) ...", k + 1, s.tcp_samples);
            let mbps = iperf::throughput(cluster, pair, s.iperf_seconds)
                .with_context(|| format!("{label}: {what}"))?;
            slot(&mut figures[i]).push(mbps);
        }
    }
    Ok(())
}

/// One figure on every cluster in turn.
fn step(
    clusters: &[(&str, &Cluster)],
    figures: &mut [Figures],
    what: &str,
    mut measure: impl FnMut(&Cluster, &mut Figures) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for ((label, cluster), figure) in clusters.iter().zip(figures.iter_mut()) {
        eprintln!("{label}: measuring {what} ...");
        measure(cluster, figure).with_context(|| format!("{label}: {what}"))?;
    }
    Ok(())
}
