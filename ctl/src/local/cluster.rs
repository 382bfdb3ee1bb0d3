//! The handle tests, the demo and the CLI hold on a local cluster, and the
//! plain accessors around its recorded state.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use dclab_runtime::net::ClientConfig;
use dclab_runtime::tls::TlsFiles;

use super::command::{netns_argv, output};
use super::ovs;
use super::state::{ClusterState, HostState, InstanceState, Mode};

/// What `Cluster::up` builds.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// ≤ 8 characters of [a-z0-9]; part of every namespace name.
    pub name: String,
    /// Number of simulated hosts, `h1..hN`.
    pub hosts: usize,
    /// Plain OvS with one NORMAL flow instead of coordinator + agents.
    pub plain: bool,
    /// dclab mode without TLS.
    pub insecure: bool,
    /// OpenTelemetry collector for the daemons' traces.
    pub otlp_endpoint: Option<String>,
}

impl UpOptions {
    pub fn new(name: &str, hosts: usize) -> Self {
        UpOptions {
            name: name.to_string(),
            hosts,
            plain: false,
            insecure: false,
            otlp_endpoint: None,
        }
    }

    /// A name no other process on this machine uses: tests run in parallel,
    /// one process each. Up to two letters of `prefix`, then pid and counter.
    pub fn unique(prefix: &str, hosts: usize) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let prefix: String = prefix
            .chars()
            .filter(|c| c.is_ascii_lowercase())
            .take(2)
            .collect();
        let serial = (std::process::id() << 6) | (COUNTER.fetch_add(1, Ordering::Relaxed) & 0x3f);
        UpOptions::new(&format!("{prefix}{}", base36(serial)), hosts)
    }
}

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

/// A local multi-host setup on this machine; see the module docs.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub(super) state: ClusterState,
}

impl Cluster {
    /// The cluster as its last saved state describes it.
    pub fn load(name: &str) -> anyhow::Result<Cluster> {
        Ok(Cluster {
            state: ClusterState::load(name)?,
        })
    }

    /// The running local cluster whose coordinator is at `url` (with or
    /// without scheme; `localhost` as 127.0.0.1), if there is one.
    pub fn serving(url: &str) -> Option<Cluster> {
        let key = |u: &str| {
            let bare = u.split_once("://").map_or(u, |(_, rest)| rest);
            bare.trim_end_matches('/').replacen("localhost", "127.0.0.1", 1)
        };
        let wanted = key(url);
        let entries = std::fs::read_dir(super::state::RUN_ROOT).ok()?;
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| Cluster::load(&name).ok())
            .find(|c| c.coordinator_url().is_some_and(|u| key(u) == wanted))
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn mode(&self) -> Mode {
        self.state.mode
    }

    /// Host ids in order, `h1..hN`.
    pub fn hosts(&self) -> Vec<String> {
        self.state.hosts.iter().map(|h| h.id.clone()).collect()
    }

    pub fn instances(&self) -> &[InstanceState] {
        &self.state.instances
    }

    pub fn instance(&self, name: &str) -> anyhow::Result<&InstanceState> {
        self.state
            .instances
            .iter()
            .find(|i| i.name == name)
            .with_context(|| format!("cluster {} has no instance {name:?}", self.name()))
    }

    pub fn coordinator_url(&self) -> Option<&str> {
        self.state.coordinator_url.as_deref()
    }

    /// The cluster's certificate directory; None when it runs insecure.
    pub fn pki_dir(&self) -> Option<&std::path::Path> {
        self.state.pki_dir.as_deref()
    }

    /// TLS files with the certificate `stem` (e.g. `operator`, `agent-h1`).
    pub fn tls_files(&self, stem: &str) -> Option<TlsFiles> {
        let dir = self.pki_dir()?;
        Some(TlsFiles {
            ca: dir.join("ca.crt"),
            identity: Some((dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")))),
        })
    }

    /// How an operator reaches this cluster's coordinator.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let url = self
            .coordinator_url()
            .context("this cluster has no coordinator")?;
        Ok(ClientConfig::new(url, self.tls_files("operator").as_ref())?)
    }

    pub fn switch_netns(&self) -> String {
        format!("dcl-{}-sw", self.name())
    }

    pub fn host_netns(&self, host: &str) -> String {
        format!("dcl-{}-{host}", self.name())
    }

    pub fn instance_netns(&self, name: &str) -> String {
        format!("dcl-{}-i-{name}", self.name())
    }

    /// The host's run directory: OvS db, sockets, pidfiles and logs.
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.state.dir.join(host)
    }

    pub fn agent_log(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("agent.log")
    }

    pub fn coordinator_log(&self) -> PathBuf {
        self.state.dir.join("coordinator.log")
    }

    /// Where the coordinator writes its metrics address.
    pub fn coordinator_metrics_file(&self) -> PathBuf {
        self.state.dir.join("coordinator.metrics")
    }

    pub fn agent_metrics_file(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("agent.metrics")
    }

    /// The coordinator's Prometheus endpoint, once it has listened.
    pub fn coordinator_metrics_url(&self) -> Option<String> {
        read_addr(&self.coordinator_metrics_file()).map(|a| format!("http://{a}/metrics"))
    }

    /// The Prometheus endpoint of `host`'s agent, once it has listened.
    pub fn agent_metrics_url(&self, host: &str) -> Option<String> {
        read_addr(&self.agent_metrics_file(host)).map(|a| format!("http://{a}/metrics"))
    }

    pub(super) fn host_state(&self, host: &str) -> anyhow::Result<&HostState> {
        self.state.host(host)
    }

    /// Runs `argv` inside `netns` to completion; a non-zero exit is not an
    /// error here (tests often expect failure, e.g. ping across tenants).
    pub fn exec(&self, netns: &str, argv: &[&str]) -> anyhow::Result<Output> {
        output(&netns_argv(netns, argv))
    }

    /// Starts `argv` inside `netns` with stdout and stderr piped; the caller
    /// reads them and kills or waits for the child.
    pub fn spawn_in(&self, netns: &str, argv: &[&str]) -> anyhow::Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", netns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}` in {netns}", argv.join(" ")))
    }

    /// `ovs-ofctl -O OpenFlow13 ARGS[0] unix:DIR/br-int.mgmt ARGS[1..]`
    pub fn ofctl(&self, host: &str, args: &[&str]) -> anyhow::Result<String> {
        self.host_state(host)?;
        ovs::ofctl(&self.host_dir(host), args)
    }

    /// `ovs-vsctl --db=unix:DIR/db.sock ARGS...`
    pub fn vsctl(&self, host: &str, args: &[&str]) -> anyhow::Result<String> {
        self.host_state(host)?;
        ovs::vsctl(&self.host_dir(host), args)
    }

    pub(super) fn save(&self) -> anyhow::Result<()> {
        self.state.save()
    }
}

/// An address a daemon wrote (`--addr-file`, `--metrics-addr-file`).
pub(super) fn read_addr(file: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let addr = text.trim();
    (!addr.is_empty()).then(|| addr.to_string())
}
