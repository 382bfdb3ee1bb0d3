//! What a local cluster created, persisted after every step so that `down`
//! can remove it even after a crash of `up`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Root of every local cluster's run directory.
pub const RUN_ROOT: &str = "/run/dclab";

/// Cluster names go into namespace and interface names, so they stay short.
pub const MAX_CLUSTER_NAME: usize = 8;

/// Whether the cluster runs dclab's coordinator and agents or plain OvS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Coordinator + one agent per host; isolation by header rewriting.
    Dclab,
    /// One `actions=NORMAL` flow per host: the no-isolation baseline.
    Plain,
}

/// A process the cluster started, with the program name used to check,
/// before killing, that the pid was not reused by something else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    pub pid: i32,
    pub program: String,
}

/// One simulated host: a namespace with its own OvS and (dclab mode) agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostState {
    pub id: String,
    pub netns: String,
    pub dir: PathBuf,
    pub ovsdb: Option<ProcRecord>,
    pub vswitchd: Option<ProcRecord>,
    pub agent: Option<ProcRecord>,
}

/// Whether an instance stands for a VM or a router port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InstanceKind {
    Vm,
    Router,
}

/// A network namespace plugged into a host's `br-int`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceState {
    pub name: String,
    pub host: String,
    pub tenant: String,
    pub network: String,
    /// With prefix, e.g. `10.0.0.1/24`.
    pub ip: String,
    pub mac: String,
    pub gateway: Option<String>,
    pub kind: InstanceKind,
    pub netns: String,
}

/// Everything `up` created, in creation order within each list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub mode: Mode,
    pub dir: PathBuf,
    pub switch_netns: Option<String>,
    pub hosts: Vec<HostState>,
    pub coordinator: Option<ProcRecord>,
    pub coordinator_url: Option<String>,
    /// Kept from the first start so a restarted coordinator keeps its address.
    pub coordinator_port: Option<u16>,
    /// The cluster's certificates; None: plaintext (`--insecure`).
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
    /// Where the daemons send traces; None: logs only.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    pub instances: Vec<InstanceState>,
    /// False until `up` finished every step.
    pub complete: bool,
}

impl ClusterState {
    pub fn new(name: &str, mode: Mode) -> Self {
        ClusterState {
            name: name.to_string(),
            mode,
            dir: cluster_dir(name),
            switch_netns: None,
            hosts: Vec::new(),
            coordinator: None,
            coordinator_url: None,
            coordinator_port: None,
            pki_dir: None,
            otlp_endpoint: None,
            instances: Vec::new(),
            complete: false,
        }
    }

    pub fn load(name: &str) -> anyhow::Result<Self> {
        let path = state_file(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no local cluster {name:?} (cannot read {})", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("corrupt state file {}", path.display()))
    }

    /// Writes atomically (temp file + rename) so a crash never leaves half a file.
    pub fn save(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = state_file(&self.name);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    pub fn host(&self, id: &str) -> anyhow::Result<&HostState> {
        self.hosts
            .iter()
            .find(|h| h.id == id)
            .with_context(|| format!("cluster {} has no host {id:?}", self.name))
    }

    pub fn host_mut(&mut self, id: &str) -> anyhow::Result<&mut HostState> {
        let name = self.name.clone();
        self.hosts
            .iter_mut()
            .find(|h| h.id == id)
            .with_context(|| format!("cluster {name} has no host {id:?}"))
    }
}

pub fn cluster_dir(name: &str) -> PathBuf {
    Path::new(RUN_ROOT).join(name)
}

pub fn state_file(name: &str) -> PathBuf {
    cluster_dir(name).join("state.json")
}

/// Prefix of every namespace the cluster owns; `down` also sweeps by it.
pub fn netns_prefix(name: &str) -> String {
    format!("dcl-{name}-")
}

pub fn validate_cluster_name(name: &str) -> anyhow::Result<()> {
    let ok_chars = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() || name.len() > MAX_CLUSTER_NAME || !ok_chars {
        bail!("cluster name {name:?} must be 1-{MAX_CLUSTER_NAME} characters of [a-z0-9]");
    }
    Ok(())
}
