//! tcpdump inside a namespace, started before traffic and read after.

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use crate::local::Cluster;

pub struct Capture {
    child: Child,
    pub label: String,
}

impl Capture {
    /// Starts `tcpdump -e -nn -l` on `iface` in `netns` and returns once it
    /// is listening. `extra` are more tcpdump flags and the filter.
    pub fn start(cluster: &Cluster, netns: &str, iface: &str, extra: &[&str]) -> Capture {
        Capture::try_start(cluster, netns, iface, extra).unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// As `start`, with an error instead of a panic.
    pub fn try_start(cluster: &Cluster, netns: &str, iface: &str, extra: &[&str]) -> anyhow::Result<Capture> {
        let argv = [&["tcpdump", "-e", "-nn", "-l", "-i", iface], extra].concat();
        let mut child = cluster.spawn_in(netns, &argv)?;
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("tcpdump on {iface} in {netns} did not start");
        }
        Ok(Capture {
            child,
            label: format!("{netns}/{iface}"),
        })
    }

    /// Stops the capture (SIGINT, so tcpdump flushes) and returns its lines.
    pub fn stop(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: signals our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut out).expect("tcpdump output");
        }
        let _ = self.child.wait();
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // Only a capture that was not stopped is still running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Source MAC of a `tcpdump -e` line: `HH:MM:SS.us SRC > DST, ...`.
pub fn src_mac(line: &str) -> Option<&str> {
    line.split_whitespace().nth(1)
}

pub fn dst_mac(line: &str) -> Option<&str> {
    line.split_whitespace().nth(3).map(|m| m.trim_end_matches(','))
}
