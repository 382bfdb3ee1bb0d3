//! Round-trip times with iputils ping: unicast to one instance, and
//! broadcast to the whole network.

use anyhow::{bail, Context};

use super::stats::Summary;
use crate::local::Cluster;

/// Pings until the first reply, so ARP entries and flows exist before a
/// measurement; fails if `to_ip` never answers.
pub fn warm_up(cluster: &Cluster, from: &str, to_ip: &str) -> anyhow::Result<()> {
    let netns = cluster.instance_netns(from);
    for _ in 0..10 {
        let argv = ["ping", "-q", "-c", "3", "-i", "0.1", "-W", "1", to_ip];
        if cluster.exec(&netns, &argv)?.status.success() {
            return Ok(());
        }
    }
    bail!("{from} gets no reply from {to_ip}")
}

/// `count` echo requests `interval` seconds apart; round-trip times in ms.
pub fn rtt(cluster: &Cluster, from: &str, to_ip: &str, count: u32, interval: f64) -> anyhow::Result<Summary> {
    let deadline = (f64::from(count) * interval + 5.0).ceil().to_string();
    let (count, interval) = (count.to_string(), interval.to_string());
    let argv = [
        "ping", "-n", "-c", &count, "-i", &interval, "-W", "1", "-w", &deadline, to_ip,
    ];
    let out = cluster.exec(&cluster.instance_netns(from), &argv)?;
    let text = String::from_utf8_lossy(&out.stdout);
    Summary::of(&reply_times(&text, None))
        .with_context(|| format!("{from} got no reply from {to_ip}: {text}"))
}

/// `count` echo requests to the broadcast address; round-trip times in ms
/// of every reply from another instance (the sender's own reply, looped
/// back by its kernel, is left out).
pub fn broadcast_rtt(cluster: &Cluster, from: &str, from_ip: &str, count: u32) -> anyhow::Result<Summary> {
    let deadline = (f64::from(count) * 0.05 + 5.0).ceil().to_string();
    let count = count.to_string();
    let argv = [
        "ping",
        "-n",
        "-b",
        "-c",
        &count,
        "-i",
        "0.05",
        "-W",
        "1",
        "-w",
        &deadline,
        "10.0.0.255",
    ];
    let out = cluster.exec(&cluster.instance_netns(from), &argv)?;
    let text = String::from_utf8_lossy(&out.stdout);
    Summary::of(&reply_times(&text, Some(from_ip)))
        .with_context(|| format!("{from}'s broadcast ping got no reply: {text}"))
}

/// The `time=` of every reply line (duplicates included), except replies
/// from `skip_from`.
pub fn reply_times(text: &str, skip_from: Option<&str>) -> Vec<f64> {
    text.lines()
        .filter(|line| line.contains(" bytes from "))
        .filter(|line| skip_from.is_none_or(|ip| !line.contains(&format!("from {ip}:"))))
        .filter_map(|line| {
            line.split("time=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Packets sent, from ping's closing statistics line.
pub fn transmitted(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROADCAST: &str = "\
WARNING: pinging broadcast address
PING 10.0.0.255 (10.0.0.255) 56(84) bytes of data.
64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.020 ms
64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.400 ms (DUP!)
64 bytes from 10.0.0.4: icmp_seq=1 ttl=64 time=0.200 ms (DUP!)

--- 10.0.0.255 ping statistics ---
1 packets transmitted, 1 received, +2 duplicates, 0% packet loss, time 0ms
";

    #[test]
    fn reads_reply_times_without_own_replies() {
        assert_eq!(reply_times(BROADCAST, None), vec![0.020, 0.400, 0.200]);
        assert_eq!(reply_times(BROADCAST, Some("10.0.0.1")), vec![0.400, 0.200]);
        assert_eq!(transmitted(BROADCAST), Some(1));
    }
}
