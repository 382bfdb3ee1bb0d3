//! `ctl bench agent-restart`: a host with tens of thousands of installed
//! flows, its agent killed (-9) and restarted while a 10 ms ping crosses it.

use std::time::{Duration, Instant};

use crate::client::Operator;
use anyhow::{bail, Context};
use dclab_proto::v1;
use serde_json::json;

use super::control::plan::port_mac;
use crate::local::{ping_counts, Cluster, InstanceSpec, UpOptions};
use crate::output::{print, Format};

#[derive(clap::Args, Debug)]
pub struct RestartArgs {
    /// Ports on the other host in the pinging pair's network; host h1 gets
    /// about three flows per port.
    #[arg(long, default_value_t = 17_000)]
    pub remote_ports: usize,
}

const NAME: &str = "brst";

pub fn run(args: RestartArgs, format: Format) -> anyhow::Result<()> {
    let mut cluster = Cluster::up(&UpOptions::new(NAME, 2)).context("bringing up the local setup")?;
    let result = measure(&mut cluster, args.remote_ports);
    Cluster::down(NAME)?;
    let figures = result?;
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!("agent restart under load: host h1, ping vm1 (h1) -> vm2 (h2) every 10 ms\n");
    }
    let rows: Vec<Vec<String>> = figures
        .iter()
        .map(|(m, v, r)| vec![m.to_string(), v.clone(), r.to_string()])
        .collect();
    let json: serde_json::Map<String, serde_json::Value> = figures
        .iter()
        .map(|(m, v, _)| (m.to_string(), json!(v)))
        .collect();
    let json = serde_json::Value::Object(json);
    print(format, &["metric", "value", "reference"], &rows, json);
    Ok(())
}

type Figures = Vec<(&'static str, String, &'static str)>;

fn measure(cluster: &mut Cluster, remote_ports: usize) -> anyhow::Result<Figures> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config = cluster.client_config()?;
    let mut c = rt.block_on(config.connect()).map(Operator::new)?;
    rt.block_on(c.create_tenant(v1::CreateTenantRequest { name: "t".into() }))?;
    let net = v1::CreateNetworkRequest {
        tenant: "t".into(),
        name: "big".into(),
        cidr: "10.16.0.0/16".into(),
        kind: v1::NetworkKind::Rewrite.into(),
    };
    rt.block_on(c.create_network(net))?;
    cluster.add_instance(&InstanceSpec::vm("vm1", "h1", "t", "big", "10.16.0.1/16"))?;
    cluster.add_instance(&InstanceSpec::vm("vm2", "h2", "t", "big", "10.16.0.2/16"))?;

    eprintln!("creating {remote_ports} ports on h2; h1 compiles and installs their flows");
    let installed = Instant::now();
    let ports: Vec<v1::CreatePortRequest> = (0..remote_ports)
        .map(|i| v1::CreatePortRequest {
            name: format!("far{i}"),
            tenant: "t".into(),
            network: "big".into(),
            host: "h2".into(),
            mac: port_mac(i),
            ip: format!("10.16.{}.{}", 1 + i / 250, 1 + i % 250),
            kind: v1::PortKind::Vm.into(),
        })
        .collect();
    for batch in ports.chunks(5_000) {
        rt.block_on(c.create_ports(v1::CreatePortsRequest {
            ports: batch.to_vec(),
        }))?;
    }
    wait_h1_applied(&rt, &mut c, 0, Duration::from_secs(600))?;
    let install_s = installed.elapsed().as_secs_f64();
    let flows = dclab_flow_count(cluster, "h1")?;
    eprintln!("h1 has {flows} flows installed ({install_s:.1} s)");

    let acks = h1(&rt, &mut c)?.acks;
    let before_kill = Instant::now();
    let argv = ["ping", "-q", "-i", "0.01", "-W", "1", "-c", "1500", "10.16.0.2"];
    let ping = cluster.spawn_in(&cluster.instance_netns("vm1"), &argv)?;
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("kill -9 the agent of h1, then start it again");
    cluster.kill_agent("h1", libc::SIGKILL)?;
    std::thread::sleep(Duration::from_millis(500));
    let restarted = Instant::now();
    cluster.start_agent("h1")?;
    wait_h1_applied(&rt, &mut c, acks, Duration::from_secs(600))?;
    let reconverge_s = restarted.elapsed().as_secs_f64();
    let out = ping.wait_with_output()?;
    let (sent, received) = ping_counts(&String::from_utf8_lossy(&out.stdout));
    if sent == 0 {
        bail!("ping did not run: {}", String::from_utf8_lossy(&out.stderr));
    }
    let reinstalled = reinstalled_flows(cluster, "h1", before_kill.elapsed().as_secs_f64())?;
    Ok(vec![
        (
            "flows installed on h1",
            flows.to_string(),
            "goal: at least 50,000",
        ),
        (
            "initial install (create ports to agent ack)",
            format!("{install_s:.1} s"),
            "",
        ),
        (
            "pings lost across agent kill -9 + restart",
            format!("{} of {sent}", sent - received),
            "goal 0; OVN reached zero with atomic bundles",
        ),
        (
            "restarted agent reconverged (start to ack)",
            format!("{reconverge_s:.1} s"),
            "",
        ),
        (
            "flows reinstalled by the restarted agent",
            reinstalled.to_string(),
            "0: unchanged flows are not touched",
        ),
    ])
}

type Client = Operator;

fn h1(rt: &tokio::runtime::Runtime, c: &mut Client) -> anyhow::Result<v1::Host> {
    let hosts = rt
        .block_on(c.list_hosts(v1::ListHostsRequest {}))?
        .into_inner()
        .hosts;
    hosts
        .into_iter()
        .find(|h| h.id == "h1")
        .context("h1 is not registered")
}

/// Until h1's agent has acknowledged its latest rules, with all its ports
/// attached, in an acknowledgement newer than the `acks`-th.
fn wait_h1_applied(
    rt: &tokio::runtime::Runtime,
    c: &mut Client,
    acks: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let h1 = h1(rt, c)?;
        let fresh = h1.acks > acks && h1.connected;
        if fresh && h1.applied_version == h1.desired_version && h1.missing_ports == 0 && h1.flow_count > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("h1 did not apply its rules within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn dclab_flow_count(cluster: &Cluster, host: &str) -> anyhow::Result<usize> {
    let dump = cluster.ofctl(host, &["dump-flows"])?;
    Ok(dump.lines().filter(|l| l.contains("cookie=0xdc1ab")).count())
}

/// Flows younger than `age_s` seconds: installed after the mark.
fn reinstalled_flows(cluster: &Cluster, host: &str, age_s: f64) -> anyhow::Result<usize> {
    let dump = cluster.ofctl(host, &["dump-flows"])?;
    let young = dump
        .lines()
        .filter(|l| l.contains("cookie=0xdc1ab"))
        .filter_map(|l| {
            l.split("duration=")
                .nth(1)?
                .split('s')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .filter(|d| d + 0.5 < age_s)
        .count();
    Ok(young)
}
