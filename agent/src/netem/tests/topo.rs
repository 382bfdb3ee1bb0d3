//! A throw-away topology for relay tests, and the tools run across it:
//!
//! ```text
//! ns1:eth0 (10.99.0.1) ── veth ── nsm:a  [Relay]  nsm:b ── veth ── ns2:eth0 (10.99.0.2)
//! ```
//!
//! Names carry the pid and a per-test tag; dropping the [`Topo`] deletes
//! the namespaces (and so the veths), also when the test panics.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IP1: &str = "10.99.0.1";
pub const IP2: &str = "10.99.0.2";
const MAC1: &str = "02:99:00:00:00:01";
const MAC2: &str = "02:99:00:00:00:02";

pub struct Topo {
    pub ns1: String,
    pub ns2: String,
    pub nsm: String,
}

impl Topo {
    pub fn new(tag: &str) -> Topo {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "netem relay tests need root (namespaces, veths)"
        );
        let base = format!("dcnetem{}{tag}", std::process::id());
        let topo = Topo {
            ns1: format!("{base}-1"),
            ns2: format!("{base}-2"),
            nsm: format!("{base}-m"),
        };
        // `topo` exists before anything is created, so a failure half-way
        // still deletes what was made.
        for ns in [&topo.ns1, &topo.ns2, &topo.nsm] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "dev", "lo", "up"]);
            // No IPv6 chatter (DAD, router solicitations) in the counters.
            topo.exec(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        }
        let (ns1, ns2, nsm) = (&topo.ns1, &topo.ns2, &topo.nsm);
        run(&[
            "ip", "link", "add", "name", "eth0", "address", MAC1, "netns", ns1, "type", "veth", "peer",
            "name", "a", "netns", nsm,
        ]);
        run(&[
            "ip", "link", "add", "name", "b", "netns", nsm, "type", "veth", "peer", "name", "eth0",
            "address", MAC2, "netns", ns2,
        ]);
        run(&["ip", "-n", ns1, "addr", "add", "10.99.0.1/24", "dev", "eth0"]);
        run(&["ip", "-n", ns2, "addr", "add", "10.99.0.2/24", "dev", "eth0"]);
        for (ns, dev) in [(ns1, "eth0"), (ns2, "eth0"), (nsm, "a"), (nsm, "b")] {
            run(&["ip", "-n", ns, "link", "set", "dev", dev, "up"]);
        }
        topo
    }

    /// Runs a command inside `ns`; panics if it fails.
    pub fn exec(&self, ns: &str, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&run(&all).stdout).into_owned()
    }

    /// ARP answered in advance, so no test depends on ARP crossing an
    /// impaired relay (and no first ping waits for it).
    pub fn static_neighbors(&self) {
        run(&[
            "ip",
            "-n",
            &self.ns1,
            "neigh",
            "replace",
            IP2,
            "lladdr",
            MAC2,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
        run(&[
            "ip",
            "-n",
            &self.ns2,
            "neigh",
            "replace",
            IP1,
            "lladdr",
            MAC1,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
    }

    /// Pings `to` from ns1, `count` times every `interval` seconds, waiting
    /// at most a second for the last replies.
    pub fn ping(&self, to: &str, count: u32, interval: &str) -> Ping {
        let out = output(&[
            "ip",
            "netns",
            "exec",
            &self.ns1,
            "ping",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "1",
            to,
        ]);
        Ping::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// Turns checksum offload (and with it TSO) off on both eth0s.
    pub fn eth0_tx_offload_off(&self) {
        for ns in [&self.ns1, &self.ns2] {
            self.exec(ns, &["ethtool", "-K", "eth0", "tx", "off"]);
        }
    }

    /// TCP from ns1 to ns2 for 3 s with iperf3; what arrived, in Mbit/s.
    pub fn iperf_mbit(&self) -> f64 {
        let server = Command::new("ip")
            .args(["netns", "exec", &self.ns2, "iperf3", "-s", "-1", "-B", IP2])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn iperf3 server");
        let _server = KillOnDrop(server);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.exec(&self.ns2, &["ss", "-ltn"]).contains(":5201") {
            assert!(Instant::now() < deadline, "iperf3 server does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = output(&[
            "timeout",
            "60",
            "ip",
            "netns",
            "exec",
            &self.ns1,
            "iperf3",
            "-c",
            IP2,
            "-t",
            "3",
            "-J",
            "--connect-timeout",
            "3000",
        ]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "iperf3 output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        json["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or_else(|| panic!("no throughput in iperf3 output: {json}"))
            / 1e6
    }

    /// `ip -d link show` of a relay interface, for flags and promiscuity.
    pub fn link_details(&self, dev: &str) -> String {
        self.exec(&self.nsm, &["ip", "-d", "link", "show", "dev", dev])
    }

    /// Whether GRO is on for a relay interface, as ethtool reports it.
    pub fn gro_on(&self, dev: &str) -> bool {
        self.exec(&self.nsm, &["ethtool", "-k", dev])
            .contains("generic-receive-offload: on")
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth, and so the pair.
        for ns in [&self.ns1, &self.ns2, &self.nsm] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A process this test started, killed (by its own handle) when dropped,
/// so no server is left holding a namespace.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn output(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn run(args: &[&str]) -> Output {
    let out = output(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What ping printed, parsed.
#[derive(Debug, Default)]
pub struct Ping {
    pub transmitted: u32,
    pub received: u32,
    pub duplicates: u32,
    pub avg_ms: Option<f64>,
    pub mdev_ms: Option<f64>,
    /// Each reply's round-trip time, in order of arrival.
    pub times_ms: Vec<f64>,
    pub text: String,
}

impl Ping {
    fn parse(text: &str) -> Ping {
        let mut ping = Ping {
            text: text.to_owned(),
            ..Ping::default()
        };
        for line in text.lines() {
            if let Some(t) = line.split("time=").nth(1) {
                ping.times_ms
                    .push(t.split(' ').next().and_then(|v| v.parse().ok()).unwrap_or(-1.0));
            }
            if line.contains("packets transmitted") {
                let num = |word: &str| {
                    line.split(", ")
                        .find(|p| p.contains(word))
                        .and_then(|p| p.trim_start_matches('+').split(' ').next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                };
                ping.transmitted = num("transmitted");
                ping.received = num("received");
                ping.duplicates = num("duplicates");
            }
            if let Some(stats) = line.strip_prefix("rtt min/avg/max/mdev = ") {
                // "a/b/c/d ms", then ", pipe N" when replies overlap.
                let v: Vec<f64> = stats
                    .split(" ms")
                    .next()
                    .unwrap_or("")
                    .split('/')
                    .filter_map(|x| x.parse().ok())
                    .collect();
                ping.avg_ms = v.get(1).copied();
                ping.mdev_ms = v.get(3).copied();
            }
        }
        ping
    }

    pub fn loss_pct(&self) -> f64 {
        100.0 * f64::from(self.transmitted.saturating_sub(self.received)) / f64::from(self.transmitted.max(1))
    }
}
