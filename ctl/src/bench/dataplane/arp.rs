//! ARP resolution time as the paper measured it (section 4.2.1): at the
//! instance, `ip neigh flush all` then `ping -c 1`, with ARP captured on the
//! instance's interface; the time is reply minus request.

use std::time::Duration;

use anyhow::Context;

use super::stats::Summary;
use crate::demo::capture::Capture;
use crate::local::Cluster;

/// `rounds` resolutions of `to_ip` by `from`; times in ms.
pub fn resolution(
    cluster: &Cluster,
    from: &str,
    from_ip: &str,
    to_ip: &str,
    rounds: u32,
) -> anyhow::Result<Summary> {
    let netns = cluster.instance_netns(from);
    let filter = ["-tt", "--time-stamp-precision=micro", "arp"];
    let capture = Capture::try_start(cluster, &netns, "eth0", &filter)?;
    for _ in 0..rounds {
        cluster.exec(&netns, &["ip", "neigh", "flush", "all"])?;
        cluster.exec(&netns, &["ping", "-n", "-q", "-c", "1", "-W", "1", to_ip])?;
        // Lets late replies land before the next flush.
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = capture.stop();
    Summary::of(&resolution_times(&lines, from_ip, to_ip))
        .with_context(|| format!("no ARP request of {from} for {to_ip} was answered: {lines:?}"))
}

/// Pairs each request of `asker` for `target` with the next reply for
/// `target`; milliseconds between them.
pub fn resolution_times(lines: &[String], asker: &str, target: &str) -> Vec<f64> {
    let request = format!("Request who-has {target} tell {asker},");
    let reply = format!("Reply {target} is-at ");
    let mut pending: Option<i64> = None;
    let mut times = Vec::new();
    for line in lines {
        let Some(stamp) = line.split_whitespace().next().and_then(micros) else {
            continue;
        };
        if line.contains(&request) {
            pending.get_or_insert(stamp);
        } else if line.contains(&reply) {
            if let Some(asked) = pending.take() {
                times.push((stamp - asked) as f64 / 1000.0);
            }
        }
    }
    times
}

/// `SECONDS.MICROS` as whole microseconds: an f64 of today's epoch
/// seconds would blur the microseconds.
fn micros(stamp: &str) -> Option<i64> {
    let (secs, frac) = stamp.split_once('.')?;
    let frac = format!("{frac:0<6}");
    Some(secs.parse::<i64>().ok()? * 1_000_000 + frac.get(..6)?.parse::<i64>().ok()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairs_requests_with_replies() {
        let lines: Vec<String> = [
            "1700000000.000100 02:aa > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
            "1700000000.000350 02:bb > 02:aa, ethertype ARP (0x0806), length 42: Reply 10.0.0.2 is-at 02:bb, length 28",
            "1700000000.500000 02:bb > 02:aa, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.1 tell 10.0.0.2, length 28",
            "1700000001.000000 02:aa > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
            "1700000001.001000 02:bb > 02:aa, ethertype ARP (0x0806), length 42: Reply 10.0.0.2 is-at 02:bb, length 28",
        ]
        .map(String::from)
        .to_vec();
        let times = super::resolution_times(&lines, "10.0.0.1", "10.0.0.2");
        assert_eq!(times.len(), 2);
        assert_eq!(times, vec![0.25, 1.0]);
    }
}
