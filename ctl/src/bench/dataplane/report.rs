//! The side-by-side table: each figure for dclab and plain OvS, their
//! ratio, and the goal it is held to.

use serde::Serialize;

use super::iperf::Flooded;
use super::measure::{Figures, PACED_FLOOD_PPS};
use super::stats::Summary;

/// The paper's own figures (section 4), DCPortalsNG vs OvS without a
/// controller, as the seed text gives them.
pub const PAPER: &str = "paper (DCPortalsNG vs OvS): established-flow RTT 0.35 vs 0.37 ms to VM2, \
0.32 vs 0.31 ms to VM3 (Table 2); TCP 0.94 vs 0.94 Gbit/s VM1-VM3, 0.94 vs 0.93 Gbit/s VM1-VM2 (Table 3); \
broadcast RTT 0.563 vs 0.00056 ms (4.2.4); TCP under a broadcast flood 825 vs 295 Mbit/s, \
POX+L2 170 Mbit/s (Table 6); ARP resolution only plotted (Figures 7-9); \
reactive controller degrades at about 200 new flows/s (4.5)";

/// What a ratio dclab/plain (or flooded/unflooded) must be.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    fn met(self, ratio: f64) -> bool {
        match self {
            Goal::AtMost(limit) => ratio <= limit,
            Goal::AtLeast(limit) => ratio >= limit,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub unit: &'static str,
    pub dclab: f64,
    pub plain: f64,
    /// dclab / plain; for "flooded / unflooded" dclab's own share.
    pub ratio: f64,
    pub goal: String,
    /// None for a row that only shows figures another row compares.
    pub met: Option<bool>,
}

fn row(metric: &str, unit: &'static str, dclab: f64, plain: f64, goal: Option<(Goal, &str)>) -> Row {
    let ratio = dclab / plain;
    Row {
        metric: metric.into(),
        unit,
        dclab,
        plain,
        ratio,
        goal: goal.map_or("see next row", |g| g.1).into(),
        met: goal.map(|g| g.0.met(ratio)),
    }
}

/// A throughput row whose ratio is the median of the paired samples' ratios.
fn paired_row(metric: &str, d: (f64, &[f64]), p: (f64, &[f64]), goal: Option<(Goal, &str)>) -> Row {
    let mut r = row(metric, "Mbit/s", d.0, p.0, goal);
    if let Some(ratio) = super::stats::paired_ratio(d.1, p.1) {
        r.ratio = ratio;
        r.met = goal.map(|g| g.0.met(ratio));
    }
    r
}

pub fn rows(d: &Figures, p: &Figures) -> Vec<Row> {
    let mean = |s: &Summary| s.mean;
    let within_5 = Some((Goal::AtMost(1.05), "dclab <= 1.05 x plain"));
    let no_slower = Some((Goal::AtMost(1.0), "dclab <= plain"));
    let tput = Some((Goal::AtLeast(0.95), "dclab >= 0.95 x plain"));
    let mut rows = vec![
        row(
            "RTT one host vm1->vm4",
            "ms",
            mean(&d.rtt_same_host_ms),
            mean(&p.rtt_same_host_ms),
            within_5,
        ),
        row(
            "RTT across hosts vm1->vm2",
            "ms",
            mean(&d.rtt_cross_host_ms),
            mean(&p.rtt_cross_host_ms),
            within_5,
        ),
        paired_row(
            "TCP one host vm1->vm4",
            (d.tcp_same_host_mbps, &d.tcp_same_host_samples),
            (p.tcp_same_host_mbps, &p.tcp_same_host_samples),
            tput,
        ),
        paired_row(
            "TCP across hosts vm1->vm2",
            (d.tcp_cross_host_mbps, &d.tcp_cross_host_samples),
            (p.tcp_cross_host_mbps, &p.tcp_cross_host_samples),
            tput,
        ),
        row(
            "ARP resolution vm1 asks vm2",
            "ms",
            mean(&d.arp_resolution_ms),
            mean(&p.arp_resolution_ms),
            no_slower,
        ),
        row(
            "broadcast RTT vm1->10.0.0.255",
            "ms",
            mean(&d.broadcast_rtt_ms),
            mean(&p.broadcast_rtt_ms),
            no_slower,
        ),
        row(
            "new TCP connections vm1..vm4",
            "conn/s",
            d.new_connections.per_second,
            p.new_connections.per_second,
            tput,
        ),
        paired_row(
            "TCP vm1->vm3, no flood",
            (d.tcp_unflooded_mbps, &d.tcp_unflooded_samples),
            (p.tcp_unflooded_mbps, &p.tcp_unflooded_samples),
            tput,
        ),
    ];
    let paced = format!("vm6 {PACED_FLOOD_PPS} bcast/s");
    rows.extend(flood_rows(
        "vm6 ping -f bcast",
        &d.ping_flood,
        &p.ping_flood,
        d,
        p,
    ));
    rows.extend(flood_rows(&paced, &d.paced_flood, &p.paced_flood, d, p));
    rows
}

/// The flooded figure of both, and the share of the unflooded figure
/// each kept; the goal holds dclab against its own unflooded figure.
fn flood_rows(flood: &str, d: &Flooded, p: &Flooded, d_all: &Figures, p_all: &Figures) -> [Row; 2] {
    let flooded = row(&format!("TCP vm1->vm3, {flood}"), "Mbit/s", d.mbps, p.mbps, None);
    let (d_kept, p_kept) = (
        d.mbps / d_all.tcp_unflooded_mbps,
        p.mbps / p_all.tcp_unflooded_mbps,
    );
    let mut kept = row("  flooded / unflooded", "", d_kept, p_kept, None);
    kept.ratio = d_kept;
    kept.goal = "dclab >= 0.90".into();
    kept.met = Some(Goal::AtLeast(0.90).met(d_kept));
    [flooded, kept]
}

/// Table cells: value with unit, ratio, goal with its verdict.
pub fn cells(rows: &[Row]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            let value = |v: f64| match r.unit {
                "ms" => format!("{v:.3} ms"),
                "" => format!("{v:.2}"),
                unit => format!("{v:.0} {unit}"),
            };
            let verdict = match r.met {
                None => r.goal.clone(),
                Some(met) => format!("{} ({})", r.goal, if met { "met" } else { "MISSED" }),
            };
            vec![
                r.metric.clone(),
                value(r.dclab),
                value(r.plain),
                format!("{:.2}", r.ratio),
                verdict,
            ]
        })
        .collect()
}

pub const HEADERS: [&str; 5] = ["metric", "dclab", "plain OvS", "ratio", "goal"];

/// What the table leaves out: the floods' rates, failed transfers and
/// connections.
pub fn notes(runs: &[(&str, &Figures)]) -> String {
    let mut out = String::new();
    for (label, f) in runs {
        let c = &f.new_connections;
        out.push_str(&format!(
            "{label}: vm6's ping -f sent {:.0} broadcasts/s, the paced flood {:.0}/s; \
             {} of {} new connections failed\n",
            f.ping_flood.flood_packets_per_second,
            f.paced_flood.flood_packets_per_second,
            c.failures,
            c.connections + c.failures
        ));
        for err in [&f.ping_flood.failure, &f.paced_flood.failure]
            .into_iter()
            .flatten()
        {
            out.push_str(&format!(
                "{label}: under a flood iperf3 failed ({err}); counted as 0 Mbit/s\n"
            ));
        }
    }
    out
}
