//! Bringing a cluster up step by step, saving state after each step so a
//! failure (or a crash) can always be undone by `down`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::cluster::{Cluster, UpOptions};
use super::grpc;
use super::netns;
use super::ovs;
use super::process;
use super::state::{cluster_dir, netns_prefix, validate_cluster_name, ClusterState, HostState, Mode};

/// Name of every host's uplink inside its namespace.
pub const UPLINK: &str = "up0";

const MAX_HOSTS: usize = 64;
const REGISTER_TIMEOUT: Duration = Duration::from_secs(20);

impl Cluster {
    /// Builds the cluster; on failure removes what it made and names the step.
    pub fn up(opts: &UpOptions) -> anyhow::Result<Cluster> {
        validate_cluster_name(&opts.name)?;
        if opts.hosts == 0 || opts.hosts > MAX_HOSTS {
            bail!("--hosts must be between 1 and {MAX_HOSTS}");
        }
        refuse_if_exists(&opts.name)?;
        let mode = if opts.plain { Mode::Plain } else { Mode::Dclab };
        let mut cluster = Cluster {
            state: ClusterState::new(&opts.name, mode),
        };
        cluster.state.otlp_endpoint = opts.otlp_endpoint.clone();
        match cluster.build(opts.hosts, opts.insecure) {
            Ok(()) => Ok(cluster),
            Err(err) => {
                eprintln!("local up failed: {err:#}; removing what was created");
                let removed = Cluster::down(&opts.name).unwrap_or_default();
                for what in removed {
                    eprintln!("  removed {what}");
                }
                Err(err.context(format!("local up of cluster {} failed (cleaned up)", opts.name)))
            }
        }
    }

    /// A CA and certificates for the coordinator, every agent and an
    /// operator, in the cluster's directory.
    pub(super) fn issue_certificates_for(&mut self, agents: &[String]) -> anyhow::Result<()> {
        eprintln!("issuing certificates");
        let dir = self.state.dir.join("pki");
        let addrs = ["127.0.0.1".to_string(), "localhost".to_string()];
        crate::certs::init(&dir, &addrs, agents, "admin", 30).context("issuing certificates")?;
        self.state.pki_dir = Some(dir);
        self.save()
    }

    fn build(&mut self, hosts: usize, insecure: bool) -> anyhow::Result<()> {
        self.save().context("creating the cluster directory")?;
        self.build_switch().context("creating the switch namespace")?;
        for i in 1..=hosts {
            let host = format!("h{i}");
            self.build_host(&host)
                .with_context(|| format!("creating host {host}"))?;
        }
        match self.mode() {
            Mode::Plain => {
                for host in self.hosts() {
                    eprintln!("creating plain br-int on {host}");
                    ovs::setup_plain_bridge(&self.host_dir(&host), UPLINK)
                        .with_context(|| format!("creating the plain bridge on {host}"))?;
                }
            }
            Mode::Dclab => {
                if !insecure {
                    self.issue_certificates_for(&self.hosts())?;
                }
                eprintln!("starting the coordinator");
                self.start_coordinator().context("starting the coordinator")?;
                for host in self.hosts() {
                    eprintln!("starting the agent of {host}");
                    self.start_agent(&host)
                        .with_context(|| format!("starting the agent of {host}"))?;
                }
                eprintln!("waiting for agents to register");
                self.wait_registered(REGISTER_TIMEOUT)?;
            }
        }
        self.state.complete = true;
        self.save()
    }

    fn build_switch(&mut self) -> anyhow::Result<()> {
        let sw = self.switch_netns();
        eprintln!("creating switch namespace {sw}");
        netns::create(&sw)?;
        self.state.switch_netns = Some(sw.clone());
        self.save()?;
        netns::create_switch(&sw)
    }

    fn build_host(&mut self, host: &str) -> anyhow::Result<()> {
        let ns = self.host_netns(host);
        let dir = self.host_dir(host);
        eprintln!("creating host {host} ({ns})");
        // Recorded before creation so a crash in between is still swept.
        self.state.hosts.push(HostState {
            id: host.to_string(),
            netns: ns.clone(),
            dir: dir.clone(),
            ovsdb: None,
            vswitchd: None,
            agent: None,
        });
        self.save()?;
        netns::create(&ns)?;
        let sw = self.switch_netns();
        netns::create_veth(&ns, UPLINK, &sw, host)?;
        netns::enslave_to_switch(&sw, host)?;
        netns::link_up(&ns, UPLINK)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        eprintln!("starting OvS on {host}");
        let ovsdb = ovs::start_ovsdb(&dir)?;
        self.state.host_mut(host)?.ovsdb = Some(ovsdb);
        self.save()?;
        let vswitchd = ovs::start_vswitchd(&ns, &dir)?;
        self.state.host_mut(host)?.vswitchd = Some(vswitchd);
        self.save()
    }

    /// Waits until every host is in the coordinator's host list with a MAC.
    pub fn wait_registered(&self, timeout: Duration) -> anyhow::Result<()> {
        let config = self.client_config()?;
        let deadline = Instant::now() + timeout;
        loop {
            let listed = grpc::list_hosts(&config);
            let missing: Vec<String> = match &listed {
                Ok(hosts) => self
                    .hosts()
                    .into_iter()
                    .filter(|id| !hosts.iter().any(|h| &h.id == id && !h.mac.is_empty()))
                    .collect(),
                Err(_) => self.hosts(),
            };
            if missing.is_empty() {
                return Ok(());
            }
            // No point waiting for agents that already exited.
            let all_dead = missing.iter().all(|h| !self.agent_alive(h));
            if all_dead || Instant::now() >= deadline {
                let why = listed
                    .err()
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default();
                let details: Vec<String> = missing.iter().map(|h| self.agent_report(h)).collect();
                bail!(
                    "hosts {} did not register with the coordinator{}{why}\n{}",
                    missing.join(", "),
                    if all_dead {
                        String::new()
                    } else {
                        format!(" within {}s", timeout.as_secs())
                    },
                    details.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Cluster {
    fn agent_alive(&self, host: &str) -> bool {
        let agent = self.state.host(host).ok().and_then(|h| h.agent.as_ref());
        agent.is_some_and(process::is_alive)
    }

    /// Whether the agent runs, and its log's tail: the log itself goes away
    /// when a failed `up` cleans up.
    fn agent_report(&self, host: &str) -> String {
        let log = self.agent_log(host);
        let alive = if self.agent_alive(host) {
            "running"
        } else {
            "exited"
        };
        format!(
            "agent of {host} ({alive}), last lines of {}:\n{}",
            log.display(),
            process::log_tail(&log, 10)
        )
    }
}

pub(super) fn refuse_if_exists(name: &str) -> anyhow::Result<()> {
    let leftovers = netns::list_with_prefix(&netns_prefix(name))?;
    if cluster_dir(name).exists() || !leftovers.is_empty() {
        bail!("a local cluster named {name:?} already exists (or its remains do); run `ctl local down --name {name}` first");
    }
    Ok(())
}
