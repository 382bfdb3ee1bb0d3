//! Several rounds of every figure, alternating which cluster goes first,
//! combined by the median: on a shared 2-core machine one round of one
//! figure is mostly noise.

use super::connrate::ConnRate;
use super::iperf::Flooded;
use super::measure::{self, Figures, Settings};
use super::stats::Summary;
use crate::local::Cluster;

/// Figures per cluster (in the order given), each the median of `rounds`.
pub fn measure(clusters: &[(&str, &Cluster)], s: &Settings, rounds: usize) -> anyhow::Result<Vec<Figures>> {
    let mut per_cluster: Vec<Vec<Figures>> = vec![Vec::new(); clusters.len()];
    for round in 0..rounds.max(1) {
        eprintln!("round {} of {rounds}", round + 1);
        let mut order: Vec<usize> = (0..clusters.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        let ordered: Vec<(&str, &Cluster)> = order.iter().map(|&i| clusters[i]).collect();
        for (figures, &i) in measure::all(&ordered, s)?.into_iter().zip(&order) {
            per_cluster[i].push(figures);
        }
    }
    Ok(per_cluster.iter().map(|r| median(r)).collect())
}

fn mid(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn summary(rounds: &[Figures], get: fn(&Figures) -> Summary) -> Summary {
    Summary {
        mean: mid(rounds.iter().map(|f| get(f).mean).collect()),
        p50: mid(rounds.iter().map(|f| get(f).p50).collect()),
        samples: rounds.iter().map(|f| get(f).samples).sum(),
    }
}

fn flooded(rounds: &[Figures], get: fn(&Figures) -> &Flooded) -> Flooded {
    Flooded {
        mbps: mid(rounds.iter().map(|f| get(f).mbps).collect()),
        flood_packets_per_second: mid(rounds.iter().map(|f| get(f).flood_packets_per_second).collect()),
        failure: rounds.iter().find_map(|f| get(f).failure.clone()),
    }
}

/// Every round's samples, in the order taken.
fn joined(rounds: &[Figures], get: fn(&Figures) -> &Vec<f64>) -> Vec<f64> {
    rounds.iter().flat_map(|f| get(f).iter().copied()).collect()
}

/// The median of every round's samples (of the figure itself when a round
/// kept none).
fn all(rounds: &[Figures], get: fn(&Figures) -> &Vec<f64>, figure: fn(&Figures) -> f64) -> f64 {
    let samples = joined(rounds, get);
    if samples.is_empty() {
        mid(rounds.iter().map(figure).collect())
    } else {
        super::stats::median(&samples)
    }
}

/// Each figure the median over the rounds.
fn median(rounds: &[Figures]) -> Figures {
    let number = |get: fn(&Figures) -> f64| mid(rounds.iter().map(get).collect());
    Figures {
        rtt_same_host_ms: summary(rounds, |f| f.rtt_same_host_ms),
        rtt_cross_host_ms: summary(rounds, |f| f.rtt_cross_host_ms),
        tcp_same_host_mbps: all(rounds, |f| &f.tcp_same_host_samples, |f| f.tcp_same_host_mbps),
        tcp_cross_host_mbps: all(rounds, |f| &f.tcp_cross_host_samples, |f| f.tcp_cross_host_mbps),
        tcp_same_host_samples: joined(rounds, |f| &f.tcp_same_host_samples),
        tcp_cross_host_samples: joined(rounds, |f| &f.tcp_cross_host_samples),
        tcp_unflooded_samples: joined(rounds, |f| &f.tcp_unflooded_samples),
        arp_resolution_ms: summary(rounds, |f| f.arp_resolution_ms),
        broadcast_rtt_ms: summary(rounds, |f| f.broadcast_rtt_ms),
        tcp_unflooded_mbps: all(rounds, |f| &f.tcp_unflooded_samples, |f| f.tcp_unflooded_mbps),
        ping_flood: flooded(rounds, |f| &f.ping_flood),
        paced_flood: flooded(rounds, |f| &f.paced_flood),
        new_connections: ConnRate {
            per_second: number(|f| f.new_connections.per_second),
            connections: rounds.iter().map(|f| f.new_connections.connections).sum(),
            failures: rounds.iter().map(|f| f.new_connections.failures).sum(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_pick_the_middle_round() {
        let round = |mbps: f64| Figures {
            tcp_cross_host_mbps: mbps,
            ..Figures::default()
        };
        let m = median(&[round(900.0), round(100.0), round(500.0)]);
        assert_eq!(m.tcp_cross_host_mbps, 500.0);
        assert_eq!(mid(vec![]), 0.0);
    }
}
