//! The true outage, seen on the wire: tcpdump on a host's uplink stamps
//! every ICMP echo reply the node sends, and the longest silence between
//! two replies is how long the node did not answer. With a pinger at 10 ms
//! beside the probe, that is exact to about 10 ms.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub struct Capture {
    child: Child,
    replies: Arc<Mutex<Vec<f64>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    /// Starts tcpdump on `dev` in `netns` and waits until it listens.
    pub fn start(netns: &str, dev: &str) -> anyhow::Result<Capture> {
        let mut child = Command::new("ip")
            .args([
                "netns", "exec", netns, "tcpdump", "-i", dev, "-n", "-tt", "-l", "-U",
            ])
            .args(["icmp[icmptype] == icmp-echoreply"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tcpdump (scripts/install-deps.sh installs it)")?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let replies = Arc::new(Mutex::new(vec![]));
        let sink = replies.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(t) = line.split_whitespace().next().and_then(|t| t.parse::<f64>().ok()) {
                    sink.lock().unwrap().push(t);
                }
            }
        });
        // tcpdump says "listening on DEV" once its socket is open.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let started = Instant::now();
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "tcpdump did not start listening on {dev} in {netns} within {:?}",
                started.elapsed()
            );
        }
        Ok(Capture {
            child,
            replies,
            reader: Some(reader),
        })
    }

    /// Stops the capture (our child, by pid) and returns the reply times,
    /// Unix seconds.
    pub fn stop(mut self) -> Vec<f64> {
        self.end();
        self.replies.lock().unwrap().clone()
    }

    fn end(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.end();
    }
}

/// The longest gap between consecutive replies, ms.
pub fn longest_silence_ms(replies: &[f64]) -> Option<f64> {
    replies
        .windows(2)
        .map(|w| (w[1] - w[0]) * 1000.0)
        .max_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_silence_is_the_widest_gap_between_replies() {
        assert_eq!(longest_silence_ms(&[]), None);
        assert_eq!(longest_silence_ms(&[1.0]), None);
        let got = longest_silence_ms(&[1.0, 1.01, 1.02, 4.52, 4.53]).unwrap();
        assert!((got - 3500.0).abs() < 1e-6, "{got}");
    }
}
