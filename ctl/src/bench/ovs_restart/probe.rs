//! The probe: `ping -D` every 5 ms from one instance to another, its
//! replies read as they come, and when packets got through again after an
//! outage, from the send times of the replies.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};

use crate::local::Cluster;

/// Between two probe packets: the resolution of every figure.
pub const INTERVAL_S: f64 = 0.005;
/// With no request lost this long after the outage began, there was none
/// the probe could see.
const NO_LOSS_S: f64 = 1.0;

/// One echo reply: its sequence number, when it came back (seconds since
/// the epoch, as `ping -D` prints) and its round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    pub seq: u64,
    pub received: f64,
    pub rtt: f64,
}

impl Reply {
    /// When its request left.
    pub fn sent(&self) -> f64 {
        self.received - self.rtt
    }
}

/// `[1765129306.123456] 64 bytes from 10.0.0.2: icmp_seq=12 ttl=64 time=0.521 ms`
pub fn parse_reply(line: &str) -> Option<Reply> {
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some(Reply {
        seq: field("icmp_seq=")? as u64,
        received: stamp.parse().ok()?,
        rtt: field("time=")? / 1000.0,
    })
}

/// Seconds from `from` until packets got through again, for an outage that
/// began at `began` or later: the send time of the first reply after the
/// first request lost since then (requests sent before the outage took
/// effect still get through). None while no packet has come through after
/// the loss; 0 when nothing was lost for `NO_LOSS_S` (an outage shorter
/// than the interval).
pub fn back_after(replies: &[Reply], began: f64, from: f64) -> Option<f64> {
    let mut seqs: Vec<&Reply> = replies.iter().collect();
    seqs.sort_by_key(|r| r.seq);
    let before = seqs.iter().rev().find(|r| r.sent() < began)?.seq;
    let after = seqs.iter().filter(|r| r.seq > before);
    if let Some((_, reply)) = (before + 1..).zip(after).find(|(expected, r)| r.seq != *expected) {
        return Some((reply.sent() - from).max(0.0));
    }
    let last = seqs.last()?;
    (last.sent() > began + NO_LOSS_S).then_some(0.0)
}

/// A ping running in an instance, its replies collected by a thread.
pub struct Probe {
    child: Child,
    replies: Arc<Mutex<Vec<Reply>>>,
}

impl Probe {
    pub fn start(cluster: &Cluster, instance: &str, target: &str) -> anyhow::Result<Probe> {
        let interval = INTERVAL_S.to_string();
        let argv = ["ping", "-D", "-n", "-i", &interval, "-w", "200", target];
        let mut child = cluster.spawn_in(&cluster.instance_netns(instance), &argv)?;
        let stdout = child.stdout.take().context("ping's stdout")?;
        let replies = Arc::new(Mutex::new(Vec::new()));
        let sink = replies.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(reply) = parse_reply(&line) {
                    sink.lock().unwrap().push(reply);
                }
            }
        });
        let probe = Probe { child, replies };
        probe.wait_flowing(Duration::from_secs(10))?;
        Ok(probe)
    }

    /// Until replies come back; an error if none within `timeout`.
    fn wait_flowing(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.replies.lock().unwrap().len() < 20 {
            if Instant::now() > deadline {
                bail!("the probe got no replies within {timeout:?}: is the pair's traffic allowed?");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits until packets got through again after an outage that began at
    /// `began`; seconds from `from` (see `back_after`). Stops the probe.
    pub fn back_after(mut self, began: f64, from: f64, timeout: Duration) -> anyhow::Result<f64> {
        let deadline = Instant::now() + timeout;
        let back = loop {
            if let Some(back) = back_after(&self.replies.lock().unwrap(), began, from) {
                break back;
            }
            if Instant::now() > deadline {
                self.stop();
                bail!("traffic did not come back within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.stop();
        Ok(back)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Now, in seconds since the epoch, on ping's clock.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(seq: u64, sent: f64) -> Reply {
        Reply {
            seq,
            received: sent + 0.001,
            rtt: 0.001,
        }
    }

    #[test]
    fn parses_a_timestamped_reply() {
        let line = "[1765129306.123456] 64 bytes from 10.0.0.2: icmp_seq=12 ttl=64 time=0.521 ms";
        let r = parse_reply(line).unwrap();
        assert_eq!(r.seq, 12);
        assert!((r.received - 1765129306.123456).abs() < 1e-6);
        assert!((r.sent() - (1765129306.123456 - 0.000521)).abs() < 1e-6);
        assert_eq!(
            parse_reply("PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data."),
            None
        );
        assert_eq!(
            parse_reply("[1765129306.1] From 10.0.0.1 icmp_seq=3 Destination Host Unreachable"),
            None
        );
    }

    #[test]
    fn traffic_is_back_with_the_first_reply_after_the_loss() {
        // Sent every 5 ms from t=100; the outage begins at 100.052 (seq 10
        // still gets through: the deletion took effect after it), seqs 12
        // to 40 are lost, seq 41 (sent at 100.205) is the first back.
        let mut replies: Vec<Reply> = (0..=11).map(|s| reply(s, 100.0 + s as f64 * 0.005)).collect();
        assert_eq!(back_after(&replies, 100.052, 100.052), None);
        replies.extend((41..50).map(|s| reply(s, 100.0 + s as f64 * 0.005)));
        let back = back_after(&replies, 100.052, 100.052).unwrap();
        assert!((back - 0.153).abs() < 1e-9, "{back}");
        // Measured from a later moment (ovs-vswitchd running again).
        let back = back_after(&replies, 100.052, 100.2).unwrap();
        assert!((back - 0.005).abs() < 1e-9, "{back}");
    }

    #[test]
    fn no_loss_is_no_outage_and_no_traffic_before_is_no_figure() {
        let mut replies: Vec<Reply> = (0..40).map(|s| reply(s, 100.0 + s as f64 * 0.005)).collect();
        assert_eq!(back_after(&replies, 100.05, 100.05), None, "not yet known");
        replies.extend((40..400).map(|s| reply(s, 100.0 + s as f64 * 0.005)));
        assert_eq!(back_after(&replies, 100.05, 100.05), Some(0.0));
        assert_eq!(back_after(&replies, 99.0, 99.0), None);
    }
}
