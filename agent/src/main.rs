use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use dclab_agent::{ovs::Ovs, reconcile::Reconciler, watch};
use dclab_proto::net::ClientConfig;
use tracing::info;

/// dclab agent: keeps this host's Open vSwitch bridge in step with the rules the coordinator computes.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Coordinator URL.
    #[arg(long, env = "DCLAB_COORDINATOR", default_value = "http://127.0.0.1:7400")]
    coordinator: String,
    /// This host's id in the topology.
    #[arg(long)]
    host_id: String,
    /// Interface to the physical network; added to the bridge.
    #[arg(long)]
    uplink: String,
    /// The OvS database to manage (several OvS instances may share a machine).
    #[arg(long, default_value = "unix:/run/openvswitch/db.sock")]
    ovs_db: String,
    /// ovs-vswitchd's run directory, where the bridge's .mgmt socket lives.
    #[arg(long, default_value = "/run/openvswitch")]
    ovs_rundir: PathBuf,
    /// The bridge the agent owns.
    #[arg(long, default_value = "br-int")]
    bridge: String,
    /// Datapath type for a bridge the agent creates: netdev (userspace) or system.
    #[arg(long, default_value = "netdev")]
    datapath: String,
    /// vCPUs offered to lab nodes [default: this machine's CPUs].
    #[arg(long)]
    vcpus: Option<u32>,
    /// Memory offered to lab nodes, in MiB [default: this machine's memory less 1 GiB].
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Certificates: by default PKI_DIR/agent-<host-id>.crt and .key.
    #[command(flatten)]
    tls: dclab_proto::net::TlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dclab_proto::logging::init();
    let args = Args::parse();
    let ovs = Ovs {
        db: args.ovs_db,
        rundir: args.ovs_rundir,
        bridge: args.bridge,
        datapath: args.datapath,
    };
    ovs.ensure_bridge(&args.uplink)
        .await
        .with_context(|| format!("cannot set up bridge {} with uplink {}", ovs.bridge, args.uplink))?;
    let mac = uplink_mac(&ovs, &args.uplink).await?;
    info!(host = %args.host_id, uplink = %args.uplink, %mac, bridge = %ovs.bridge, "agent starting");
    let files = args.tls.files(&format!("agent-{}", args.host_id));
    let channel = ClientConfig::new(&args.coordinator, files.as_ref())?.connect_lazy()?;
    let (desired_tx, desired_rx) = tokio::sync::watch::channel(None);
    let registration = watch::Registration {
        host_id: args.host_id.clone(),
        uplink: args.uplink.clone(),
        mac,
        vcpus: args.vcpus.unwrap_or_else(machine_cpus),
        memory_mib: args.memory_mib.unwrap_or_else(machine_memory_mib),
    };
    let reconciler = Reconciler {
        ovs,
        host_id: args.host_id,
        uplink: args.uplink,
        channel: channel.clone(),
    };
    tokio::spawn(watch::run(channel, registration, desired_tx));
    tokio::select! {
        _ = reconciler.run(desired_rx) => {}
        _ = dclab_proto::net::shutdown_signal() => info!("agent stopping; flows stay installed"),
    }
    Ok(())
}

fn machine_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// MemTotal less 1 GiB kept for the host itself.
fn machine_memory_mib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (kib / 1024).saturating_sub(1024)
}

/// OvS fills in mac_in_use once it has opened the interface.
async fn uplink_mac(ovs: &Ovs, uplink: &str) -> anyhow::Result<String> {
    for _ in 0..50 {
        if let Some(mac) = ovs.mac_of(uplink).await? {
            return Ok(mac);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "OvS has not opened uplink {uplink} after 5 s; does the interface exist in ovs-vswitchd's namespace?"
    )
}
