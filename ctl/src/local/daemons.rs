//! Starting, signalling and restarting the coordinator and the agents.
//! They run in the root namespace: they only talk over loopback and unix
//! sockets.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::cluster::Cluster;
use super::ovs;
use super::process::{self, find_binary, log_tail, spawn_detached};
use super::state::ProcRecord;
use super::up::UPLINK;

const ADDR_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(3);
/// A killed process still finishes the disk writes it is blocked in (sled's
/// fsync on a busy disk): how long to wait for it to be gone.
const KILLED_EXIT: Duration = Duration::from_secs(30);
/// vCPUs each simulated host offers to lab nodes.
pub const LOCAL_VCPUS: u32 = 16;

impl Cluster {
    /// Starts the coordinator on its data dir. A restart reuses the port of
    /// the first start, so running agents reconnect to the same address.
    pub fn start_coordinator(&mut self) -> anyhow::Result<()> {
        let bin = find_binary("coordinator")?;
        let dir = self.state.dir.clone();
        let data_dir = dir.join("coordinator");
        let addr_file = dir.join("coordinator.addr");
        let log = self.coordinator_log();
        std::fs::create_dir_all(&data_dir)?;
        let _ = std::fs::remove_file(&addr_file);
        let port = self.state.coordinator_port.unwrap_or(0);
        let args = vec![
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--addr-file".to_string(),
            addr_file.display().to_string(),
        ];
        let metrics = metrics_args(&self.coordinator_metrics_file());
        let args = [args, metrics, self.daemon_args()].concat();
        let record = spawn_detached(&bin, &args, &log)?;
        self.state.coordinator = Some(record.clone());
        self.save()?;

        let deadline = Instant::now() + ADDR_TIMEOUT;
        let addr = loop {
            if let Some(addr) = super::cluster::read_addr(&addr_file) {
                break addr;
            }
            if !process::is_alive(&record) {
                bail!(
                    "the coordinator exited before listening; see {}:\n{}",
                    log.display(),
                    log_tail(&log, 10)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "the coordinator did not write {} within {}s; see {}",
                    addr_file.display(),
                    ADDR_TIMEOUT.as_secs(),
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the coordinator wrote a bad address {addr:?}"))?;
        self.state.coordinator_port = Some(port);
        let scheme = if self.state.pki_dir.is_some() {
            "https"
        } else {
            "http"
        };
        self.state.coordinator_url = Some(format!("{scheme}://{addr}"));
        self.save()
    }

    /// Sends `signal` to the coordinator by its recorded pid. For signals that
    /// end it (TERM, INT, KILL) waits until it is gone and forgets the pid.
    pub fn kill_coordinator(&mut self, signal: i32) -> anyhow::Result<()> {
        let record = self
            .state
            .coordinator
            .clone()
            .context("no coordinator recorded for this cluster")?;
        self.state.coordinator = signal_and_wait(&record, signal, "coordinator")?;
        self.save()
    }

    /// Starts the agent of `host` against the current coordinator url.
    pub fn start_agent(&mut self, host: &str) -> anyhow::Result<()> {
        self.start_agent_with(host, &[])
    }

    /// Starts the agent of `host` with `extra` arguments after the usual
    /// ones (e.g. `--no-bridge-watch` for a benchmark's reference).
    pub fn start_agent_with(&mut self, host: &str, extra: &[&str]) -> anyhow::Result<()> {
        let bin = find_binary("agent")?;
        let url = self
            .coordinator_url()
            .context("start the coordinator before the agents")?
            .to_string();
        self.host_state(host)?;
        let dir = self.host_dir(host);
        let args = vec![
            "--coordinator".to_string(),
            url,
            "--host-id".to_string(),
            host.to_string(),
            "--uplink".to_string(),
            UPLINK.to_string(),
            "--ovs-db".to_string(),
            ovs::db_address(&dir),
            "--ovs-rundir".to_string(),
            dir.display().to_string(),
            "--ovs-unixctl".to_string(),
            dir.join("vswitchd.ctl").display().to_string(),
            "--bridge".to_string(),
            ovs::BRIDGE.to_string(),
            // Lab nodes: disks per simulated host, taps moved into its namespace.
            "--lab-dir".to_string(),
            dir.join("labs").display().to_string(),
            "--vm-netns".to_string(),
            self.host_netns(host),
            // The apt cache disk lives on its (simulated) host.
            "--cache-dir".to_string(),
            dir.join("cache").display().to_string(),
            // Leases survive the agent's restarts, per simulated host.
            "--state-dir".to_string(),
            dir.join("agent").display().to_string(),
            // All simulated hosts share this machine's CPUs; TCG guests mostly idle.
            "--vcpus".to_string(),
            LOCAL_VCPUS.to_string(),
        ];
        let metrics = metrics_args(&self.agent_metrics_file(host));
        let extra = extra.iter().map(|a| a.to_string()).collect();
        let args = [args, metrics, self.daemon_args(), extra].concat();
        let record = spawn_detached(&bin, &args, &self.agent_log(host))?;
        self.state.host_mut(host)?.agent = Some(record);
        self.save()
    }

    /// `--pki-dir DIR`, or `--insecure` for a cluster without certificates;
    /// and `--otlp-endpoint` when the cluster's daemons are traced.
    fn daemon_args(&self) -> Vec<String> {
        let mut args = match &self.state.pki_dir {
            Some(dir) => vec!["--pki-dir".into(), dir.display().to_string()],
            None => vec!["--insecure".into()],
        };
        if let Some(endpoint) = &self.state.otlp_endpoint {
            args.extend(["--otlp-endpoint".to_string(), endpoint.clone()]);
        }
        args
    }

    /// Sends `signal` to the agent of `host`; see `kill_coordinator`.
    pub fn kill_agent(&mut self, host: &str, signal: i32) -> anyhow::Result<()> {
        let record = self
            .host_state(host)?
            .agent
            .clone()
            .with_context(|| format!("no agent recorded for {host}"))?;
        let remaining = signal_and_wait(&record, signal, &format!("agent of {host}"))?;
        self.state.host_mut(host)?.agent = remaining;
        self.save()
    }
}

impl Cluster {
    /// Sends `signal` to ovs-vswitchd of `host` by its recorded pid; see
    /// `kill_coordinator`. Its flows die with it; the database stays.
    pub fn kill_vswitchd(&mut self, host: &str, signal: i32) -> anyhow::Result<()> {
        let record = self
            .host_state(host)?
            .vswitchd
            .clone()
            .with_context(|| format!("no ovs-vswitchd recorded for {host}"))?;
        let remaining = signal_and_wait(&record, signal, &format!("ovs-vswitchd of {host}"))?;
        self.state.host_mut(host)?.vswitchd = remaining;
        self.save()
    }

    /// Starts ovs-vswitchd of `host` again the way `up` did (its namespace,
    /// database, sockets and pidfile), as after a crash or an upgrade: it
    /// comes back with its ports and no flows. Returns once it has
    /// detached, that is configured its bridges.
    pub fn start_vswitchd(&mut self, host: &str) -> anyhow::Result<()> {
        if let Some(running) = self.host_state(host)?.vswitchd.as_ref() {
            if process::is_alive(running) {
                bail!("ovs-vswitchd of {host} still runs (pid {})", running.pid);
            }
        }
        let record = ovs::start_vswitchd(&self.host_netns(host), &self.host_dir(host))?;
        self.state.host_mut(host)?.vswitchd = Some(record);
        self.save()
    }
}

/// Every daemon of a local cluster serves metrics on loopback; a restart
/// keeps the port its predecessor wrote, so scrape targets stay valid.
fn metrics_args(file: &std::path::Path) -> Vec<String> {
    let port = super::cluster::read_addr(file)
        .and_then(|a| a.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(0);
    vec![
        "--metrics-listen".into(),
        format!("127.0.0.1:{port}"),
        "--metrics-addr-file".into(),
        file.display().to_string(),
    ]
}

/// Returns the record to keep: None once a terminating signal took effect.
fn signal_and_wait(record: &ProcRecord, signal: i32, what: &str) -> anyhow::Result<Option<ProcRecord>> {
    if !process::signal(record, signal) {
        // Already gone: nothing to keep track of.
        return Ok(None);
    }
    if ![libc::SIGTERM, libc::SIGINT, libc::SIGKILL].contains(&signal) {
        return Ok(Some(record.clone()));
    }
    if process::stop(record, STOP_GRACE) && !process::wait_gone(record, KILLED_EXIT) {
        bail!(
            "the {what} (pid {}) survived SIGKILL for {} s",
            record.pid,
            (STOP_GRACE + KILLED_EXIT).as_secs()
        );
    }
    Ok(None)
}
