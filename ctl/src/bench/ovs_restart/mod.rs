//! `ctl bench ovs-restart`: how soon traffic between two hosts' instances
//! flows again after ovs-vswitchd of one host is killed (-9) and started
//! again, and after that host's flows are deleted (`ovs-ofctl del-flows`).
//! Beside it the same with the agent's bridge watch off
//! (`--no-bridge-watch`), when only its re-verification every 60 s
//! repairs the bridge, and what the watch costs an idle agent.

mod probe;

use std::time::{Duration, Instant};

use crate::client::Operator;
use anyhow::{bail, Context};
use dclab_proto::v1;
use serde_json::json;

use super::quantile;
use crate::local::{Cluster, InstanceSpec, UpOptions};
use crate::output::{print, Format};
use probe::Probe;

#[derive(clap::Args, Debug)]
pub struct OvsRestartArgs {
    /// Restarts of ovs-vswitchd, and as many flow wipes, with the bridge watch on.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Restarts, and as many wipes, with the bridge watch off; each waits for the agent's
    /// re-verification, its start spread over the 60 s period (0: none).
    #[arg(long, default_value_t = 2)]
    pub reference_runs: usize,
    /// Seconds the idle agent's CPU time is measured, with the watch and without.
    #[arg(long, default_value_t = 20)]
    pub idle_secs: u64,
}

const NAME: &str = "bovs";
/// The host whose Open vSwitch loses its flows; the probe crosses it.
const HOST: &str = "h1";
const TARGET: &str = "10.0.0.2";
/// Long enough for the 60 s re-verification and the next wake-up after it.
const BACK_TIMEOUT: Duration = Duration::from_secs(100);
const REVERIFY_S: f64 = 60.0;

pub fn run(args: OvsRestartArgs, format: Format) -> anyhow::Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut cluster = Cluster::up(&UpOptions::new(NAME, 2)).context("bringing up the local setup")?;
    let result = measure(&mut cluster, &args);
    Cluster::down(NAME)?;
    let m = result?;
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!(
            "ovs-vswitchd of {HOST} killed (-9) and started again, and {HOST}'s flows deleted; \
             ping every {:.0} ms from vm1 ({HOST}) to vm2 (h2)\n",
            probe::INTERVAL_S * 1000.0
        );
    }
    let spread = |v: &[f64]| match v {
        [] => "not measured".to_string(),
        _ => format!("{} / {} ({} runs)", span(quantile(v, 0.5)), span(max(v)), v.len()),
    };
    let rows = vec![
        vec![
            "traffic back after ovs-vswitchd runs again, p50 / max".to_string(),
            spread(&m.watched.restart),
            spread(&m.reference.restart),
            "<= 1 s".to_string(),
        ],
        vec![
            "traffic back after del-flows, p50 / max".to_string(),
            spread(&m.watched.wipe),
            spread(&m.reference.wipe),
            "<= 1 s".to_string(),
        ],
        vec![
            "ovs-vswitchd start to detached (not the agent's), p50".to_string(),
            span(quantile(&m.watched.start, 0.5)),
            String::new(),
            String::new(),
        ],
        vec![
            format!("idle agent CPU over {} s (with its monitors)", m.idle_secs),
            format!("{:.2} % of a core", m.watched.idle_cpu * 100.0),
            m.reference
                .idle_cpu
                .map_or("not measured".into(), |c| format!("{:.2} % of a core", c * 100.0)),
            String::new(),
        ],
    ];
    let json = json!({
        "flows_on_host": m.flows,
        "probe_interval_s": probe::INTERVAL_S,
        "bridge_watch": m.watched.json(),
        "reference_reverify_60s": m.reference.json(),
    });
    print(
        format,
        &[
            "metric",
            "bridge watch",
            "reference: 60 s re-verification",
            "goal",
        ],
        &rows,
        json,
    );
    Ok(())
}

/// The figures of one way of running the agent.
#[derive(Default)]
struct Figures {
    /// Seconds from ovs-vswitchd detached (running again) to traffic.
    restart: Vec<f64>,
    /// Seconds from del-flows to traffic.
    wipe: Vec<f64>,
    /// Seconds ovs-vswitchd took from its start command to detaching.
    start: Vec<f64>,
    /// Fraction of one core.
    idle_cpu: f64,
}

impl Figures {
    fn json(&self) -> serde_json::Value {
        json!({
            "restart_s": self.restart,
            "wipe_s": self.wipe,
            "vswitchd_start_s": self.start,
            "idle_cpu_core_fraction": self.idle_cpu,
        })
    }
}

struct Measured {
    watched: Figures,
    reference: ReferenceFigures,
    flows: usize,
    idle_secs: u64,
}

#[derive(Default)]
struct ReferenceFigures {
    restart: Vec<f64>,
    wipe: Vec<f64>,
    idle_cpu: Option<f64>,
}

impl ReferenceFigures {
    fn json(&self) -> serde_json::Value {
        json!({
            "restart_s": self.restart,
            "wipe_s": self.wipe,
            "idle_cpu_core_fraction": self.idle_cpu,
        })
    }
}

fn measure(cluster: &mut Cluster, args: &OvsRestartArgs) -> anyhow::Result<Measured> {
    // A worker thread of its own keeps the channel answering the
    // coordinator's keep-alive pings while the bench sleeps; a runtime
    // driven only inside block_on lost the connection in the idle phase.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let config = cluster.client_config()?;
    let mut c = rt.block_on(config.connect()).map(Operator::new)?;
    rt.block_on(c.create_tenant(v1::CreateTenantRequest { name: "t".into() }))?;
    let net = v1::CreateNetworkRequest {
        tenant: "t".into(),
        name: "net".into(),
        cidr: "10.0.0.0/24".into(),
        kind: v1::NetworkKind::Rewrite.into(),
    };
    rt.block_on(c.create_network(net))?;
    cluster.add_instance(&InstanceSpec::vm("vm1", HOST, "t", "net", "10.0.0.1/24"))?;
    cluster.add_instance(&InstanceSpec::vm("vm2", "h2", "t", "net", "10.0.0.2/24"))?;
    pin_neighbours(cluster, &[("vm1", "vm2", TARGET), ("vm2", "vm1", "10.0.0.1")])?;
    wait_applied(&rt, &mut c, 0)?;
    let flows = cluster
        .ofctl(HOST, &["dump-flows"])?
        .lines()
        .filter(|l| l.contains("cookie="))
        .count();

    let mut watched = Figures::default();
    for i in 1..=args.runs {
        let (back, start) = restart_once(cluster)?;
        eprintln!(
            "restart {i}: traffic back {} after ovs-vswitchd ran again",
            span(back)
        );
        watched.restart.push(back);
        watched.start.push(start);
    }
    for i in 1..=args.runs {
        let back = wipe_once(cluster)?;
        eprintln!("wipe {i}: traffic back {} after del-flows", span(back));
        watched.wipe.push(back);
    }
    watched.idle_cpu = idle_cpu(cluster, args.idle_secs)?;

    let mut reference = ReferenceFigures::default();
    if args.reference_runs > 0 {
        eprintln!("restarting the agent of {HOST} with --no-bridge-watch");
        let acks = host(&rt, &mut c)?.acks;
        cluster.kill_agent(HOST, libc::SIGTERM)?;
        cluster.start_agent_with(HOST, &["--no-bridge-watch"])?;
        wait_applied(&rt, &mut c, acks)?;
        // The re-verification runs 60 s after the last apply (the
        // agent's start, then each repair): the outages start at phases
        // spread over that period.
        let mut applied = Instant::now();
        let n = args.reference_runs;
        for i in 0..2 * n {
            let phase = REVERIFY_S * ((i % n) as f64 + 0.5) / n as f64;
            let wait = Duration::from_secs_f64(phase).saturating_sub(applied.elapsed());
            std::thread::sleep(wait);
            let back = if i < n {
                restart_once(cluster)?.0
            } else {
                wipe_once(cluster)?
            };
            applied = Instant::now();
            let what = if i < n { "restart" } else { "wipe" };
            eprintln!("reference {what}: traffic back {}", span(back));
            if i < n {
                reference.restart.push(back);
            } else {
                reference.wipe.push(back);
            }
        }
        reference.idle_cpu = Some(idle_cpu(cluster, args.idle_secs)?);
    }
    Ok(Measured {
        watched,
        reference,
        flows,
        idle_secs: args.idle_secs,
    })
}

/// One kill -9 and start of ovs-vswitchd under the probe: seconds from its
/// start command returning to traffic, and how long that command took.
fn restart_once(cluster: &mut Cluster) -> anyhow::Result<(f64, f64)> {
    let probe = Probe::start(cluster, "vm1", TARGET)?;
    let killed = probe::now();
    cluster.kill_vswitchd(HOST, libc::SIGKILL)?;
    // Down a moment, as after a crash.
    std::thread::sleep(Duration::from_millis(300));
    let starting = Instant::now();
    cluster.start_vswitchd(HOST)?;
    let running = probe::now();
    let start = starting.elapsed().as_secs_f64();
    Ok((probe.back_after(killed, running, BACK_TIMEOUT)?, start))
}

/// One `del-flows` on the bridge under the probe: seconds to traffic.
fn wipe_once(cluster: &Cluster) -> anyhow::Result<f64> {
    let probe = Probe::start(cluster, "vm1", TARGET)?;
    let deleted = probe::now();
    cluster.ofctl(HOST, &["del-flows"])?;
    probe.back_after(deleted, deleted, BACK_TIMEOUT)
}

/// Permanent neighbour entries: the probe measures the bridge, not the
/// instances' ARP retries after an outage.
fn pin_neighbours(cluster: &Cluster, pairs: &[(&str, &str, &str)]) -> anyhow::Result<()> {
    for (from, to, ip) in pairs {
        let mac = cluster.instance(to)?.mac.clone();
        let argv = [
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            &mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ];
        let out = cluster.exec(&cluster.instance_netns(from), &argv)?;
        if !out.status.success() {
            bail!(
                "cannot pin {ip} in {from}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    Ok(())
}

/// CPU time of the agent of HOST and its children (the OvS monitors it
/// runs) over `secs` of nothing happening, as a fraction of one core.
fn idle_cpu(cluster: &Cluster, secs: u64) -> anyhow::Result<f64> {
    let agent = cluster
        .state()
        .host(HOST)?
        .agent
        .clone()
        .context("no agent recorded")?;
    let before = cpu_ticks(agent.pid)?;
    std::thread::sleep(Duration::from_secs(secs));
    let after = cpu_ticks(agent.pid)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(after.saturating_sub(before) as f64 / hz / secs as f64)
}

/// utime + stime of `pid` and of its children now.
fn cpu_ticks(pid: i32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    // Fields after the command name's closing parenthesis: state is the
    // first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 1..]
        .split_whitespace()
        .collect();
    let own: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    let mut children = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in list.split_whitespace().filter_map(|c| c.parse().ok()) {
            children += cpu_ticks(child).unwrap_or(0);
        }
    }
    Ok(own + children)
}

type Client = Operator;

fn host(rt: &tokio::runtime::Runtime, c: &mut Client) -> anyhow::Result<v1::Host> {
    let hosts = rt
        .block_on(c.list_hosts(v1::ListHostsRequest {}))?
        .into_inner()
        .hosts;
    hosts
        .into_iter()
        .find(|h| h.id == HOST)
        .with_context(|| format!("{HOST} is not registered"))
}

/// Until HOST's agent has acknowledged its latest rules with every port
/// attached, in an acknowledgement after the `acks`-th.
fn wait_applied(rt: &tokio::runtime::Runtime, c: &mut Client, acks: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = host(rt, c)?;
        if h.connected && h.acks > acks && h.applied_version == h.desired_version && h.missing_ports == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{HOST} did not apply its rules within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// Milliseconds under a second, else seconds.
fn span(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.1} s")
    }
}
