//! An experiment as checked (`parse`) and stored with its runs: stages of
//! steps (faults, commands, waits, prompts) each followed by checks, on
//! nodes chosen by named targets.

use serde::{Deserialize, Serialize};

use dclab_proto::v1;

/// Every fault of a run lapses this long after its last renewal unless
/// the file says otherwise.
pub const DEFAULT_LEASE_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    pub title: String,
    pub description: String,
    /// The lab it is written for; `--lab` overrides.
    pub lab: Option<String>,
    pub lease_ms: u64,
    pub targets: Vec<Target>,
    pub probes: Vec<Probe>,
    pub stages: Vec<Stage>,
}

/// Nodes chosen from the lab: by name, role and host (each a filter when
/// given), then `pick` of those not taken by the targets in `exclude`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub node: Option<String>,
    pub role: Option<String>,
    pub host: Option<String>,
    pub pick: Pick,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    One,
    All,
    Random(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    Ping,
    Tcp(u16),
}

/// A background probe: `from` (its first node) reaches `to` (its first
/// node's address on `network`) every `interval_ms`, for the whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub name: String,
    pub from: String,
    pub to: String,
    pub network: Option<String>,
    pub kind: Reach,
    pub interval_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A shell command line in every node of the target.
    Exec {
        on: String,
        command: String,
        timeout_ms: u64,
    },
    Wait {
        ms: u64,
    },
    /// On every node of `on` (none for a partition).
    Fault {
        id: String,
        on: Option<String>,
        fault: Fault,
    },
    /// Heals the fault `id`, or every active one.
    Heal {
        id: Option<String>,
    },
    /// Waits until the operator continues (`--yes` continues at once).
    Prompt {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    PowerOff,
    Shutdown,
    Reboot,
    Reset,
    Freeze,
    /// The node's interface on `network` (its first network when None) is
    /// cut, both directions.
    LinkCut {
        network: Option<String>,
    },
    /// Impairs the node's interface on `network` (its first when None), both
    /// directions.
    Netem {
        network: Option<String>,
        #[serde(with = "NetemFields")]
        netem: v1::NetemFault,
    },
    /// The node's traffic to and from a TCP or UDP port is dropped, both
    /// directions, on every interface (the agent's `faults/port_block.rs`).
    PortBlock(#[serde(with = "PortBlockFields")] v1::PortBlockFault),
    /// Nodes of the first group lose every unicast and ARP exchange with
    /// nodes of the second on `network` (every lab network when None).
    Partition {
        groups: (Vec<String>, Vec<String>),
        network: Option<String>,
    },
    Kill {
        process: String,
        restart: Option<String>,
    },
    Stop {
        process: String,
    },
    Restart {
        service: String,
    },
    DiskFill {
        mib: u64,
        path: String,
    },
    CpuStress {
        workers: u32,
    },
    MemoryStress {
        mib: u64,
    },
    FlushMemcached {
        port: u16,
    },
}

/// The proto messages a fault carries as is, stored in runs' records with
/// these fields (serde's remote derive: a field the message lacks does
/// not compile).
#[derive(Serialize, Deserialize)]
#[serde(remote = "v1::NetemFault")]
struct NetemFields {
    delay_ms: f64,
    jitter_ms: f64,
    loss_pct: f64,
    duplicate_pct: f64,
    corrupt_pct: f64,
    reorder_pct: f64,
    rate_kbit: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "v1::PortBlockFault")]
struct PortBlockFields {
    protocol: String,
    port: u32,
}

/// Where the coordinator sends a forwarded fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTarget<'a> {
    /// Each target node, on its host.
    Nodes,
    /// Each target node's interface on this network (its first when None).
    Interface(Option<&'a str>),
}

impl Fault {
    /// The name an experiment file uses.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::PowerOff => "power-off",
            Fault::Shutdown => "shutdown",
            Fault::Reboot => "reboot",
            Fault::Reset => "reset",
            Fault::Freeze => "freeze",
            Fault::LinkCut { .. } => "link-cut",
            Fault::Netem { .. } => "netem",
            Fault::PortBlock(_) => "port-block",
            Fault::Partition { .. } => "partition",
            Fault::Kill { .. } => "kill",
            Fault::Stop { .. } => "stop",
            Fault::Restart { .. } => "restart",
            Fault::DiskFill { .. } => "disk-fill",
            Fault::CpuStress { .. } => "cpu-stress",
            Fault::MemoryStress { .. } => "memory-stress",
            Fault::FlushMemcached { .. } => "flush-memcached",
        }
    }

    /// The proto message of a fault the coordinator forwards as the file
    /// gave it; None for a partition (flows per host) and the faults made
    /// of commands (written by the coordinator).
    pub fn forwarded(&self) -> Option<v1::fault::Kind> {
        use v1::fault::Kind as K;
        use v1::PowerAction as P;
        Some(match self {
            Fault::PowerOff => K::Power(P::Off.into()),
            Fault::Shutdown => K::Power(P::Shutdown.into()),
            Fault::Reboot => K::Power(P::Reboot.into()),
            Fault::Reset => K::Power(P::Reset.into()),
            Fault::Freeze => K::Power(P::Freeze.into()),
            Fault::LinkCut { .. } => K::LinkCut(v1::LinkCutFault {}),
            Fault::Netem { netem, .. } => K::Netem(*netem),
            Fault::PortBlock(p) => K::PortBlock(p.clone()),
            _ => return None,
        })
    }

    /// Where a forwarded fault acts: what the coordinator resolves the
    /// targets to (a partition acts between its groups).
    pub fn target(&self) -> FaultTarget<'_> {
        match self {
            Fault::LinkCut { network } | Fault::Netem { network, .. } => {
                FaultTarget::Interface(network.as_deref())
            }
            _ => FaultTarget::Nodes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub what: CheckWhat,
    pub expect: Expect,
    /// Probes taken; at most `tolerance` may go the other way.
    pub samples: u32,
    pub tolerance: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckWhat {
    /// A command in the first node of `on`: its exit code and/or output
    /// (a regular expression) as expected.
    Command {
        on: String,
        run: String,
        exit: Option<i32>,
        output: Option<String>,
    },
    Reach {
        from: String,
        to: String,
        network: Option<String>,
        kind: Reach,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// True now (`samples` probes, at most `tolerance` failing).
    Holds,
    /// False now (at most `tolerance` probes succeeding).
    Fails,
    /// Becomes true within this many ms.
    Within(u64),
    /// Stays true for this many ms (at most `tolerance` failing probes).
    Stays(u64),
}
