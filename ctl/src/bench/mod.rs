//! `ctl bench`: benchmarks that print figures side by side with their
//! references, in one run.

pub mod control;
pub mod dataplane;
pub mod exec;
pub mod experiment;
pub mod lab;
pub mod neutron;
pub mod ovs_restart;
pub mod reap;
pub mod restart;
pub mod verify;

use clap::Subcommand;

use crate::output::Format;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// dclab vs plain OvS on the local multi-host setup: the paper's RTT,
    /// throughput, ARP, broadcast, flood and new-connection figures.
    Dataplane(dataplane::DataplaneArgs),
    /// The real coordinator with 100 to 3,000 simulated agents: full
    /// compile, one-port change latency, memory, store size, flows per host.
    ControlPlane(control::ControlArgs),
    /// A host with over 50,000 flows: kill -9 and restart its agent under a
    /// 10 ms ping, count lost packets and reinstalled flows.
    AgentRestart(restart::RestartArgs),
    /// ovs-vswitchd of a host killed (-9) and started again, and the host's flows deleted: time
    /// until traffic between two hosts flows again, p50 and max, beside the agent's 60 s
    /// re-verification alone.
    OvsRestart(ovs_restart::OvsRestartArgs),
    /// A 6-node micro-VM lab on 2 simulated hosts: lab up, whole-lab
    /// snapshot create and restore (live and cold), lab down.
    Lab(lab::LabBenchArgs),
    /// `ctl verify isolation` on the compiled flows of up to 1,000 simulated hosts and 20,000
    /// ports: how long the proof takes.
    Verify(verify::VerifyBenchArgs),
    /// The experiment engine on a 2-node micro-VM lab: fault issue to
    /// effect, lease expiry to healed (coordinator killed), and probe
    /// downtime against the true outage a wire capture measures.
    Experiment(experiment::ExperimentBenchArgs),
    /// An endless-output command (`cat /dev/zero`) through ExecNode on a micro-VM and a
    /// container node: the agent's memory before, at its peak and after, and what the result
    /// kept and cut.
    Exec(exec::ExecBenchArgs),
    /// Neutron port create to "agent applied" on a compute node of installed
    /// OpenStack labs, one after another in one run: dclab's backend beside
    /// Neutron's own linuxbridge (or openvswitch) agent.
    Neutron(neutron::NeutronBenchArgs),
    /// What the agent's look for a stopped container node's leftover
    /// processes costs on this host: /proc scans and a reap of many.
    Reap(reap::ReapBenchArgs),
}

/// `client` connects to the coordinator that holds the labs (only the
/// Neutron bench uses it; the others bring up their own local setup).
pub async fn run<F>(cmd: BenchCommand, client: F, format: Format) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<crate::lab::remote::Client>>,
{
    match cmd {
        BenchCommand::Neutron(args) => neutron::run(client.await?, args, format).await,
        BenchCommand::Dataplane(args) => {
            tokio::task::spawn_blocking(move || dataplane::run(args, format)).await?
        }
        BenchCommand::ControlPlane(args) => control::run(args, format).await,
        BenchCommand::AgentRestart(args) => {
            tokio::task::spawn_blocking(move || restart::run(args, format)).await?
        }
        BenchCommand::OvsRestart(args) => {
            tokio::task::spawn_blocking(move || ovs_restart::run(args, format)).await?
        }
        BenchCommand::Lab(args) => tokio::task::spawn_blocking(move || lab::run(args, format)).await?,
        BenchCommand::Verify(args) => verify::run(args, format).await,
        BenchCommand::Reap(args) => tokio::task::spawn_blocking(move || reap::run(args, format)).await?,
        BenchCommand::Experiment(args) => {
            tokio::task::spawn_blocking(move || experiment::run(args, format)).await?
        }
        BenchCommand::Exec(args) => tokio::task::spawn_blocking(move || exec::run(args, format)).await?,
    }
}

/// The q-quantile (0 to 1) of a non-empty set of samples, nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Date, machine and OvS version, for the head of every report.
pub fn machine_line() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = read("/proc/sys/kernel/osrelease");
    let ovs = std::process::Command::new("ovs-vswitchd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "ovs-vswitchd not found".into());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{date}; {cores} cores, {:.0} GiB, Linux {}, {ovs}",
        mem_kb as f64 / (1 << 20) as f64,
        kernel.trim()
    )
}
