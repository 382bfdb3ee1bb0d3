//! TCP throughput with iperf3, alone or while another instance floods its
//! network's broadcast address (paper Tables 3 and 6).

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::ping::transmitted;
use crate::local::Cluster;

/// Who sends to whom: client instance, server instance, server address.
pub type Pair<'a> = (&'a str, &'a str, &'a str);

/// Mbit/s received by the server from the client in `seconds`.
pub fn throughput(cluster: &Cluster, pair: Pair, seconds: u32) -> anyhow::Result<f64> {
    let (client, server, _) = pair;
    let run = Iperf::start(cluster, pair, seconds, 0)?;
    run.finish(seconds)?
        .map_err(|err| anyhow::anyhow!("iperf3 {client} -> {server}: {err}"))
}

/// What the flooded measurement found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Flooded {
    pub mbps: f64,
    pub flood_packets_per_second: f64,
    /// iperf3's own complaint when the flood broke the transfer; the
    /// throughput then counts as zero, which is the figure.
    pub failure: Option<String>,
}

/// As `throughput`, while `flooder` pings its broadcast address: as fast
/// as `ping -f` goes (the paper's attack) or at `rate` packets per second.
/// As in the paper the transfer is running when the flood starts; iperf3
/// leaves out its first second, so the figure is all under flood.
pub fn throughput_under_flood(
    cluster: &Cluster,
    pair: Pair,
    flooder: &str,
    rate: Option<u32>,
    seconds: u32,
) -> anyhow::Result<Flooded> {
    let run = Iperf::start(cluster, pair, seconds, 1)?;
    std::thread::sleep(Duration::from_millis(300));
    // -w bounds the flood even if we never get to stop it; -q keeps it from
    // filling the pipe with progress dots.
    let deadline = (seconds + 15).to_string();
    let interval = rate.map(|pps| format!("{:.3}", 1.0 / f64::from(pps.max(1))));
    let mut argv = vec!["ping", "-q", "-b", "-w", &deadline];
    match &interval {
        None => argv.push("-f"),
        Some(interval) => argv.extend(["-i", interval.as_str()]),
    }
    argv.push("10.0.0.255");
    let flood = KillOnDrop::new(cluster.spawn_in(&cluster.instance_netns(flooder), &argv)?);
    let flood_started = Instant::now();
    let result = run.finish(seconds + 1)?;
    let packets = stop_and_count(flood)?;
    let flood_packets_per_second = packets as f64 / flood_started.elapsed().as_secs_f64();
    Ok(match result {
        Ok(mbps) => Flooded {
            mbps,
            flood_packets_per_second,
            failure: None,
        },
        Err(err) => Flooded {
            mbps: 0.0,
            flood_packets_per_second,
            failure: Some(err),
        },
    })
}

/// An iperf3 server (one test) and client, both running.
struct Iperf {
    server: KillOnDrop,
    client: KillOnDrop,
}

impl Iperf {
    fn start(
        cluster: &Cluster,
        (client, server, server_ip): Pair,
        seconds: u32,
        omit: u32,
    ) -> anyhow::Result<Iperf> {
        let server_ns = cluster.instance_netns(server);
        let server = KillOnDrop::new(cluster.spawn_in(&server_ns, &["iperf3", "-s", "-1"])?);
        wait_listening(cluster, &server_ns, 5201)?;
        let (secs, omit) = (seconds.to_string(), omit.to_string());
        let argv = [
            "iperf3",
            "-c",
            server_ip,
            "-t",
            &secs,
            "-O",
            &omit,
            "-J",
            "--connect-timeout",
            "3000",
        ];
        let client = KillOnDrop::new(cluster.spawn_in(&cluster.instance_netns(client), &argv)?);
        Ok(Iperf { server, client })
    }

    /// Waits for the client; Ok(Err) is iperf3's own error (e.g. it could
    /// not connect), Err means the run could not be read at all.
    fn finish(self, seconds: u32) -> anyhow::Result<Result<f64, String>> {
        let mut client = self.client.into_inner();
        let limit = Duration::from_secs(u64::from(seconds) + 30);
        let start = Instant::now();
        while client.try_wait()?.is_none() {
            if start.elapsed() > limit {
                let _ = client.kill();
                bail!("iperf3 client still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut stdout = Vec::new();
        client
            .stdout
            .take()
            .context("stdout piped")?
            .read_to_end(&mut stdout)?;
        drop(self.server);
        let report: serde_json::Value = serde_json::from_slice(&stdout).context("iperf3 printed no JSON")?;
        if let Some(err) = report.get("error") {
            return Ok(Err(err.as_str().unwrap_or("unknown error").to_string()));
        }
        let bits = report["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .context("iperf3 report without end.sum_received.bits_per_second")?;
        Ok(Ok(bits / 1e6))
    }
}

/// SIGINT, so ping prints its statistics; the packets it sent.
fn stop_and_count(flood: KillOnDrop) -> anyhow::Result<u64> {
    let child = flood.into_inner();
    // SAFETY: signals our own child (`ip netns exec` execs ping), not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    transmitted(&text).with_context(|| format!("the broadcast flood did not run: {text}"))
}

/// Polls `ss` until something listens on `port` in `netns`.
fn wait_listening(cluster: &Cluster, netns: &str, port: u16) -> anyhow::Result<()> {
    let filter = format!("sport = :{port}");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let out = cluster.exec(netns, &["ss", "-Hltn", &filter])?;
        if !out.stdout.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("iperf3 server in {netns} did not listen on port {port} within 5 s")
}

/// A child process killed when the measurement ends, also on error.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn new(child: Child) -> Self {
        KillOnDrop(Some(child))
    }

    /// The child, no longer killed on drop: the caller ends it.
    fn into_inner(mut self) -> Child {
        self.0.take().expect("taken only once")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
