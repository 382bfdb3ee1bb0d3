//! `ctl local ...`: the clap commands over the cluster library.

use clap::{Args, Subcommand};

use super::cluster::{Cluster, UpOptions};
use super::instance::InstanceSpec;
use super::state::{InstanceKind, InstanceState};
use super::status::ClusterStatus;

const DEFAULT_NAME: &str = "default";

#[derive(Debug, Clone, Args)]
pub struct ClusterName {
    /// Cluster name (1-8 of [a-z0-9]); it goes into every namespace name.
    #[arg(long, visible_alias = "cluster", env = "DCLAB_LOCAL_CLUSTER", default_value = DEFAULT_NAME)]
    pub name: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum LocalCommand {
    /// Create namespaces for a switch and N hosts, one OvS per host, and
    /// (unless --plain) a coordinator and one agent per host.
    Up {
        #[command(flatten)]
        cluster: ClusterName,
        /// Number of hosts to simulate (h1..hN).
        #[arg(long, default_value_t = 2)]
        hosts: usize,
        /// Plain OvS with a single NORMAL flow: no coordinator, no agents, no isolation.
        #[arg(long)]
        plain: bool,
        /// dclab mode without TLS: plaintext gRPC, no certificates.
        #[arg(long, conflicts_with = "plain")]
        insecure: bool,
    },
    /// Stop the cluster's processes (by pid), delete its namespaces and run directory.
    Down {
        #[command(flatten)]
        cluster: ClusterName,
    },
    /// Show hosts, process liveness, coordinator url and instances.
    Status {
        #[command(flatten)]
        cluster: ClusterName,
    },
    /// Manage instances (namespaces plugged into a host's br-int).
    #[command(subcommand)]
    Instance(InstanceCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum InstanceCommand {
    /// Create an instance; in dclab mode also its port in the coordinator
    /// (the tenant and network must exist already).
    Add {
        /// Instance name, up to 13 of [a-z0-9_-]; also the port name.
        instance: String,
        #[command(flatten)]
        cluster: ClusterName,
        /// Host to place it on, e.g. h1.
        #[arg(long)]
        host: String,
        /// Tenant the port belongs to.
        #[arg(long)]
        tenant: String,
        /// Network of the tenant the port joins.
        #[arg(long)]
        network: String,
        /// Address with prefix length, e.g. 10.0.0.1/24.
        #[arg(long)]
        ip: String,
        /// MAC address; derived from the name when omitted.
        #[arg(long)]
        mac: Option<String>,
        /// Default gateway to configure inside the instance.
        #[arg(long)]
        gateway: Option<String>,
        /// What the port stands for.
        #[arg(long, value_enum, default_value = "vm")]
        kind: InstanceKind,
    },
    /// Remove an instance: its port, its OvS port and its namespace.
    Rm {
        instance: String,
        #[command(flatten)]
        cluster: ClusterName,
    },
    /// List the cluster's instances.
    Ls {
        #[command(flatten)]
        cluster: ClusterName,
    },
}

/// Runs a `ctl local` command; `json` selects machine-readable output.
/// `otlp_endpoint` (ctl's `--otlp-endpoint`): where a new cluster's
/// coordinator and agents send their traces.
pub async fn run(cmd: LocalCommand, json: bool, otlp_endpoint: Option<String>) -> anyhow::Result<()> {
    // The library blocks (processes, sleeps); keep it off the async workers.
    tokio::task::spawn_blocking(move || run_blocking(cmd, json, otlp_endpoint)).await?
}

fn run_blocking(cmd: LocalCommand, json: bool, otlp_endpoint: Option<String>) -> anyhow::Result<()> {
    match cmd {
        LocalCommand::Up {
            cluster,
            hosts,
            plain,
            insecure,
        } => {
            let opts = UpOptions {
                name: cluster.name,
                hosts,
                plain,
                insecure,
                otlp_endpoint,
            };
            let cluster = Cluster::up(&opts)?;
            print_status(&cluster.status(), json)
        }
        LocalCommand::Down { cluster } => {
            let removed = Cluster::down(&cluster.name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&removed)?);
            } else if removed.is_empty() {
                println!("nothing to remove for cluster {}", cluster.name);
            } else {
                removed.iter().for_each(|what| println!("removed {what}"));
            }
            Ok(())
        }
        LocalCommand::Status { cluster } => print_status(&Cluster::load(&cluster.name)?.status(), json),
        LocalCommand::Instance(cmd) => run_instance(cmd, json),
    }
}

fn run_instance(cmd: InstanceCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        InstanceCommand::Add {
            instance,
            cluster,
            host,
            tenant,
            network,
            ip,
            mac,
            gateway,
            kind,
        } => {
            let mut c = Cluster::load(&cluster.name)?;
            let spec = InstanceSpec {
                name: instance.clone(),
                host,
                tenant,
                network,
                ip,
                mac,
                gateway,
                kind,
            };
            c.add_instance(&spec)?;
            print_instances(std::slice::from_ref(c.instance(&instance)?), json)
        }
        InstanceCommand::Rm { instance, cluster } => {
            Cluster::load(&cluster.name)?.remove_instance(&instance)?;
            if !json {
                println!("removed instance {instance}");
            }
            Ok(())
        }
        InstanceCommand::Ls { cluster } => print_instances(Cluster::load(&cluster.name)?.instances(), json),
    }
}

fn print_instances(instances: &[InstanceState], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(instances)?);
        return Ok(());
    }
    println!(
        "{:<14} {:<5} {:<12} {:<12} {:<18} {:<17} {:<6}",
        "NAME", "HOST", "TENANT", "NETWORK", "IP", "MAC", "KIND"
    );
    for i in instances {
        println!(
            "{:<14} {:<5} {:<12} {:<12} {:<18} {:<17} {:<6}",
            i.name,
            i.host,
            i.tenant,
            i.network,
            i.ip,
            i.mac,
            format!("{:?}", i.kind).to_lowercase()
        );
    }
    Ok(())
}

fn print_status(status: &ClusterStatus, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(status)?);
        return Ok(());
    }
    let mode = format!("{:?}", status.mode).to_lowercase();
    let state = if status.complete { "up" } else { "incomplete" };
    println!("cluster {} ({mode}, {state})", status.name);
    if let Some(url) = &status.coordinator_url {
        let alive = status.coordinator.as_ref().map(|p| liveness(p.pid, p.alive));
        println!(
            "coordinator {url} {}",
            alive.unwrap_or_else(|| "not running".into())
        );
        print_daemon_files(&status.coordinator_metrics, &status.coordinator_log);
    }
    for host in &status.hosts {
        let procs: Vec<String> = host
            .processes
            .iter()
            .map(|p| format!("{} {}", p.program, liveness(p.pid, p.alive)))
            .collect();
        println!("{:<4} {:<16} {}", host.id, host.netns, procs.join(", "));
        print_daemon_files(&host.agent_metrics, &host.agent_log);
    }
    if !status.instances.is_empty() {
        println!();
        print_instances(&status.instances, false)?;
    }
    Ok(())
}

/// Where a daemon's metrics (plain HTTP) and log are.
fn print_daemon_files(metrics: &Option<String>, log: &Option<String>) {
    if let Some(url) = metrics {
        println!("     metrics {url}");
    }
    if let Some(log) = log {
        println!("     log     {log}");
    }
}

fn liveness(pid: i32, alive: bool) -> String {
    format!("(pid {pid}, {})", if alive { "alive" } else { "dead" })
}
