use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dclab_agent::nodes::driver::DriverConfig;
use dclab_agent::{nodes, ovs::Ovs, reconcile::Reconciler, watch};
use dclab_runtime::net::ClientConfig;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// From the stop signal to the agent's end, at most: background work,
/// the heals of its faults first, gets this long to finish.
const STOP_GRACE: Duration = Duration::from_millis(4500);

/// dclab agent: keeps this host's Open vSwitch bridge in step with the rules the coordinator computes,
/// and runs the lab nodes (libvirt VMs) the coordinator places on this host.
#[derive(Parser)]
#[command(
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Coordinator URL.
    #[arg(long, env = "DCLAB_COORDINATOR", default_value = "http://127.0.0.1:7400")]
    coordinator: String,
    /// This host's id in the topology.
    #[arg(long, required = true)]
    host_id: Option<String>,
    /// Interface to the physical network; added to the bridge.
    #[arg(long, required = true)]
    uplink: Option<String>,
    /// The OvS database to manage (several OvS instances may share a machine).
    #[arg(long, default_value = "unix:/run/openvswitch/db.sock")]
    ovs_db: String,
    /// ovs-vswitchd's run directory, where the bridge's .mgmt socket lives.
    #[arg(long, default_value = "/run/openvswitch")]
    ovs_rundir: PathBuf,
    /// ovs-vswitchd's control socket (for `ovs-appctl ofproto/trace`) [default: the one its
    /// pidfile in --ovs-rundir names].
    #[arg(long)]
    ovs_unixctl: Option<PathBuf>,
    /// The bridge the agent owns.
    #[arg(long, default_value = "br-int")]
    bridge: String,
    /// Datapath type for a bridge the agent creates: netdev (userspace) or system.
    #[arg(long, default_value = "netdev")]
    datapath: String,
    /// The MAC this host's tenants use on the physical network [default: with the system datapath
    /// the uplink's own; with netdev 0a:dc: and the uplink's last four bytes, since frames to the
    /// uplink's own MAC would also climb the host kernel's IP stack].
    #[arg(long)]
    host_mac: Option<String>,
    /// vCPUs offered to lab nodes [default: this machine's CPUs].
    #[arg(long)]
    vcpus: Option<u32>,
    /// Memory offered to lab nodes, in MiB [default: this machine's memory less 1 GiB].
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Where the agent keeps what must survive its restarts: the leases the coordinator
    /// took on this host's nodes (leases.json).
    #[arg(long, default_value = "/var/lib/dclab/agent")]
    state_dir: PathBuf,
    #[command(flatten)]
    nodes: NodeArgs,
    #[command(flatten)]
    metrics: dclab_runtime::metrics_http::MetricsArgs,
    /// Do not watch the bridge's OpenFlow connection: a restarted ovs-vswitchd or deleted flows are
    /// then repaired only by the re-verification every 60 s (`ctl bench ovs-restart` measures
    /// both).
    #[arg(long)]
    no_bridge_watch: bool,
    /// Network namespace of this host's ovs-vswitchd (simulated hosts of `ctl local`): node taps
    /// move there before joining the bridge. Unset: taps stay in libvirtd's namespace.
    #[arg(long)]
    vm_netns: Option<String>,
    /// Certificates: by default PKI_DIR/agent-<host-id>.crt and .key.
    #[command(flatten)]
    tls: dclab_runtime::net::TlsArgs,
    #[command(flatten)]
    telemetry: dclab_runtime::logging::TelemetryArgs,
}

/// Where and how lab nodes run on this host.
#[derive(clap::Args, Clone)]
struct NodeArgs {
    /// Where lab nodes' files live: LAB_DIR/<lab>/<node>/ with spec.json, disks, seed and console
    /// socket. Agents sharing one libvirtd need one each: the agent removes only domains it has a
    /// node dir for.
    #[arg(long, default_value = "/var/lib/dclab/labs")]
    lab_dir: PathBuf,
    /// Node images: micro/ (the micro-VM, built here on first use) and <image>.qcow2 for each
    /// cloud image a lab names (put there by the operator).
    #[arg(long, default_value = "/var/lib/dclab/images")]
    image_dir: PathBuf,
    /// Where the apt cache node's disk (apt-cacher-ng.qcow2) lives; it outlives labs, so a
    /// reinstalled lab gets the same package versions. The agent never deletes it.
    #[arg(long, default_value = "/var/lib/dclab/cache")]
    cache_dir: PathBuf,
    /// libvirt connection for lab nodes. Opened when nodes need it: without libvirtd the agent
    /// still manages flows and reports its nodes as failed.
    #[arg(long, default_value = "qemu:///system")]
    libvirt_uri: String,
    /// libvirt connection for container nodes (libvirt's LXC driver). On hosts with the hybrid
    /// cgroup layout, libvirtd must be started by scripts/libvirtd.sh for containers to start.
    #[arg(long, default_value = "lxc:///system")]
    lxc_uri: String,
    /// Debian mirror the images debian and debian-<role> are built from on first use (their
    /// packages are then frozen in --cache-dir).
    #[arg(long, default_value = dclab_agent::image::debian::MIRROR)]
    debian_mirror: String,
    /// libvirt domain type of lab nodes: qemu (TCG emulation, works everywhere) or kvm.
    #[arg(long, default_value = "qemu")]
    domain_type: String,
    /// Port of the host's apt cache on the loopback of every Debian container node (0: no
    /// cache; nodes then have no package source). Its store is <cache-dir>/apt/mirror.
    #[arg(long, default_value_t = dclab_agent::aptcache::PORT)]
    apt_cache_port: u16,
    /// An extra upstream of the apt cache, NAME=URL, reached by nodes as
    /// http://127.0.0.1:PORT/NAME/ (repeatable). `debian` and `debian-security` come from the
    /// host's apt sources unless given here.
    #[arg(
        long = "apt-upstream",
        value_name = "NAME=URL",
        env = "DCLAB_APT_UPSTREAM",
        value_delimiter = ','
    )]
    apt_upstreams: Vec<String>,
}

impl NodeArgs {
    fn drivers(&self) -> anyhow::Result<DriverConfig> {
        Ok(DriverConfig {
            layout: nodes::Layout {
                lab_dir: absolute(&self.lab_dir)?,
            },
            image_dir: absolute(&self.image_dir)?,
            cache_dir: absolute(&self.cache_dir)?,
            libvirt_uri: self.libvirt_uri.clone(),
            lxc_uri: self.lxc_uri.clone(),
            debian_mirror: self.debian_mirror.clone(),
            domain_type: self.domain_type.clone(),
            apt: None,
        })
    }

    /// The apt cache served inside this host's container nodes; call
    /// inside the runtime.
    fn apt_cache(&self) -> anyhow::Result<Option<Arc<dclab_agent::aptcache::NodePorts>>> {
        use dclab_agent::aptcache::{upstream, AptCache, NodePorts};
        if self.apt_cache_port == 0 {
            return Ok(None);
        }
        let mut upstreams = upstream::from_host(Path::new("/etc/apt"), &self.debian_mirror);
        for flag in &self.apt_upstreams {
            let (name, url) = upstream::parse_flag(flag)?;
            upstreams.insert(name, url);
        }
        let cache = AptCache::new(absolute(&self.cache_dir)?, upstreams);
        info!(
            port = self.apt_cache_port,
            store = %cache.store_dir().display(),
            upstreams = ?cache.upstreams(),
            "apt cache for container nodes"
        );
        let ports = NodePorts::new(Arc::new(cache), self.apt_cache_port);
        ports.clone().sweep_forever(self.lxc_uri.clone());
        Ok(Some(ports))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Remove every lab node this host's agent has a node dir for (its domain, then the dir), with
    /// the agent stopped: what retiring a host or `ctl local down` needs.
    Cleanup {
        #[command(flatten)]
        nodes: NodeArgs,
    },
    /// Build (or refresh) the micro-VM image (kernel, initrd, scratch disk) the agent otherwise
    /// builds on first use.
    BuildMicro {
        #[arg(long, default_value = "/var/lib/dclab/images/micro")]
        dir: PathBuf,
    },
    /// Build a Debian image (debian, debian-<role>) for container nodes with mmdebstrap, its
    /// packages frozen in the cache dir so a rebuild gets the same versions.
    BuildDebian {
        #[command(flatten)]
        build: DebianArgs,
    },
    /// What finding and killing a container node's leftover processes costs on this host, as
    /// JSON (`ctl bench reap` prints it).
    #[command(hide = true)]
    BenchReap {
        /// Processes to leave behind and reap.
        #[arg(long, default_value_t = 500)]
        leftovers: usize,
        /// Scans timed, with and without the leftovers.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
}

#[derive(clap::Args, Debug)]
struct DebianArgs {
    /// base, controller, network, compute, object-storage or aptcache.
    #[arg(long, default_value = "base")]
    role: String,
    #[arg(long, default_value = "/var/lib/dclab/images")]
    image_dir: PathBuf,
    /// The host's package cache (apt lists and .debs), kept across builds and labs.
    #[arg(long, default_value = "/var/lib/dclab/cache")]
    cache_dir: PathBuf,
    #[arg(long, default_value = dclab_agent::image::debian::MIRROR)]
    mirror: String,
    /// Take new package lists from the mirror (newer versions) instead of the frozen ones.
    #[arg(long)]
    refresh: bool,
    /// Build again even if the image exists.
    #[arg(long)]
    rebuild: bool,
    /// The VM variant (qcow2, kernel, initrd) instead of the container rootfs.
    #[arg(long)]
    vm: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.command {
        Some(Command::Cleanup { nodes }) => return cleanup(nodes),
        Some(Command::BuildMicro { dir }) => return build_micro(dir),
        Some(Command::BuildDebian { build }) => return build_debian(build),
        Some(Command::BenchReap { leftovers, rounds }) => {
            let figures = nodes::driver::bench_reap(*leftovers, *rounds)?;
            println!("{}", serde_json::to_string(&figures)?);
            return Ok(());
        }
        None => {}
    }
    let (host_id, uplink) = (
        args.host_id.clone().expect("required by clap"),
        args.uplink.clone().expect("required by clap"),
    );
    let service = format!("dclab-agent {host_id}");
    let _telemetry = dclab_runtime::logging::init_traced(&service, "info", &args.telemetry)?;
    let ovs = Ovs {
        db: args.ovs_db.clone(),
        rundir: args.ovs_rundir.clone(),
        bridge: args.bridge.clone(),
        datapath: args.datapath.clone(),
        unixctl: args.ovs_unixctl.clone(),
    };
    ovs.ensure_bridge(&uplink)
        .await
        .with_context(|| format!("cannot set up bridge {} with uplink {uplink}", ovs.bridge))?;
    let nic_mac = uplink_mac(&ovs, &uplink).await?;
    let mac = match &args.host_mac {
        Some(m) => m.to_lowercase(),
        None => default_host_mac(&args.datapath, &nic_mac),
    };
    info!(host = %host_id, %uplink, %mac, %nic_mac, bridge = %ovs.bridge, "agent starting");
    let files = args.tls.files(&format!("agent-{host_id}"));
    let channel = ClientConfig::new(&args.coordinator, files.as_ref())?.connect_lazy()?;
    let (desired_tx, desired_rx) = tokio::sync::watch::channel(None);
    let registration = watch::Registration {
        host_id: host_id.clone(),
        uplink: uplink.clone(),
        mac,
        vcpus: args.vcpus.unwrap_or_else(machine_cpus),
        memory_mib: args.memory_mib.unwrap_or_else(machine_memory_mib),
    };
    let fault_flows = std::sync::Arc::new(dclab_agent::faults::flow_table::FaultFlows::default());
    let metrics = Arc::new(dclab_agent::metrics::AgentMetrics::new(&host_id));
    let page = metrics.clone();
    if let Some(at) =
        dclab_runtime::metrics_http::serve(&args.metrics, Arc::new(move || page.render())).await?
    {
        info!(addr = %at, "Prometheus metrics at http://{at}/metrics (plain HTTP)");
    }
    let faulted_taps = dclab_agent::nodes::FaultedTaps::default();
    let node_config = nodes::Config {
        host_id: host_id.clone(),
        drivers: DriverConfig {
            apt: args.nodes.apt_cache()?,
            ..args.nodes.drivers()?
        },
        state_dir: absolute(&args.state_dir)?,
        vm_netns: args.vm_netns.clone(),
        ovs: ovs.clone(),
        uplink: uplink.clone(),
        fault_flows: fault_flows.clone(),
        faulted_taps: faulted_taps.clone(),
        metrics: metrics.clone(),
    };
    let reconciler = Reconciler {
        ovs,
        host_id,
        uplink,
        ovs_netns: args.vm_netns.clone(),
        faulted_taps,
        channel: channel.clone(),
        fault_flows,
        metrics,
        bridge_watch: !args.no_bridge_watch,
    };
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch::run(
        channel.clone(),
        registration,
        desired_tx,
        stop.clone(),
    ));
    tasks.spawn(reconciler.run(desired_rx, stop.clone()));
    let mut nodes = tokio::spawn(nodes::run(channel, node_config, stop.clone()));
    tokio::select! {
        ended = &mut nodes => ended.context("the node side panicked")??,
        _ = dclab_runtime::net::shutdown_signal() => info!("agent stopping; faults are healed, flows and lab nodes stay as they are"),
    }
    stop.cancel();
    let drained = tokio::time::timeout(STOP_GRACE, async {
        let _ = (&mut nodes).await;
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        info!(
            "background work did not finish within {} s; leaving it",
            STOP_GRACE.as_secs()
        );
    }
    Ok(())
}

fn cleanup(args: &NodeArgs) -> anyhow::Result<()> {
    let (removed, failed) = nodes::cleanup::remove_all(args.drivers()?);
    for r in &removed {
        println!("removed {r}");
    }
    for f in &failed {
        eprintln!("warning: cannot remove {f}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} nodes were not removed",
            failed.len(),
            failed.len() + removed.len()
        )
    }
}

fn build_micro(dir: &std::path::Path) -> anyhow::Result<()> {
    let image = dclab_agent::image::build_micro(dir)?;
    println!("kernel  {} ({})", image.kernel.display(), image.kernel_version);
    println!("initrd  {}", image.initrd.display());
    println!("disk    {}", image.disk.display());
    Ok(())
}

fn build_debian(args: &DebianArgs) -> anyhow::Result<()> {
    let build = dclab_agent::image::debian::DebianBuild {
        role: args.role.clone(),
        image_dir: absolute(&args.image_dir)?,
        cache_dir: absolute(&args.cache_dir)?,
        mirror: args.mirror.clone(),
        refresh: args.refresh,
    };
    let started = std::time::Instant::now();
    if args.vm {
        let image = build.build_vm(args.rebuild, |line| eprintln!("{line}"))?;
        let packages = std::fs::read_to_string(&image.manifest)?.lines().count();
        println!("disk      {}", image.disk.display());
        println!("kernel    {}", image.kernel.display());
        println!("initrd    {}", image.initrd.display());
        println!("packages  {} ({packages} packages)", image.manifest.display());
        eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
        return Ok(());
    }
    let image = build.build(args.rebuild, |line| eprintln!("{line}"))?;
    let packages = std::fs::read_to_string(&image.manifest)?.lines().count();
    println!("rootfs    {}", image.rootfs.display());
    println!("packages  {} ({packages} packages)", image.manifest.display());
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Overlays record their backing file's path: node paths stay absolute.
fn absolute(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(dir).with_context(|| format!("cannot make {} absolute", dir.display()))
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

/// With the userspace datapath the uplink is an ordinary kernel interface
/// that OvS reads through a packet socket, so every frame addressed to the
/// uplink's own MAC is also handed to the host's IP stack, which looks up a
/// route for it and drops it (measured: about 2 % of the busiest OvS
/// thread's time). A MAC of its own (locally administered, derived from the
/// uplink's so it is stable across restarts) makes those frames "for
/// another host" to the kernel, which drops them at once; OvS keeps the
/// uplink promiscuous, so it still gets them. The kernel datapath takes
/// frames before the IP stack: there the uplink's MAC is used.
fn default_host_mac(datapath: &str, nic_mac: &str) -> String {
    if datapath != "netdev" {
        return nic_mac.to_lowercase();
    }
    let bytes: Vec<&str> = nic_mac.split(':').collect();
    if bytes.len() != 6 {
        return nic_mac.to_lowercase();
    }
    format!("0a:dc:{}", bytes[2..].join(":")).to_lowercase()
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
