//! One scale of the control-plane benchmark: build it, then time a full
//! compile from scratch, one-port changes and a coordinator restart.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::client::Operator;
use anyhow::{bail, Context};
use dclab_proto::v1;
use tokio::time::Instant;

use super::agents::{Board, SimAgents};
use super::plan::{host_name, plan, port_ip, port_mac, Rng, TenantPlan};
use crate::local::Cluster;

pub type Client = Operator;

/// Figures of one scale.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ScaleReport {
    pub hosts: usize,
    pub ports: usize,
    pub populate_s: f64,
    pub startup_load_ms: f64,
    pub full_compile_ms: f64,
    pub reconverge_s: f64,
    pub change_ms: Vec<f64>,
    /// The CreatePort call alone: validation, durable commit, recompile.
    pub write_ms: Vec<f64>,
    pub affected_hosts_avg: f64,
    pub rss_mib: f64,
    pub store_mib: f64,
    pub flows_total: u64,
    pub flows_per_host_avg: f64,
    pub flows_per_host_max: u64,
}

pub async fn status(c: &mut Client) -> anyhow::Result<v1::CoordinatorStatus> {
    Ok(c.status(v1::StatusRequest {}).await?.into_inner())
}

/// Until every host's agent has acknowledged its latest rules.
pub async fn wait_converged(c: &mut Client, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let hosts = c.list_hosts(v1::ListHostsRequest {}).await?.into_inner().hosts;
        let lagging = hosts
            .iter()
            .filter(|h| !h.connected || h.applied_version != h.desired_version)
            .count();
        if lagging == 0 && !hosts.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{lagging} of {} agents had not acknowledged their rules after {timeout:?}",
                hosts.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn populate(c: &mut Client, tenants: &[TenantPlan]) -> anyhow::Result<()> {
    for t in tenants {
        c.create_tenant(v1::CreateTenantRequest { name: t.name.clone() })
            .await?;
        let net = v1::CreateNetworkRequest {
            tenant: t.name.clone(),
            name: "net".into(),
            cidr: t.cidr.into(),
            kind: v1::NetworkKind::Rewrite.into(),
        };
        c.create_network(net).await?;
    }
    let ports: Vec<v1::CreatePortRequest> = tenants.iter().flat_map(|t| t.ports.clone()).collect();
    for batch in ports.chunks(5_000) {
        let req = v1::CreatePortsRequest {
            ports: batch.to_vec(),
        };
        c.create_ports(req).await.context("creating ports")?;
    }
    Ok(())
}

/// Until each of `hosts` acknowledged an update that arrived after `since`.
async fn wait_acked(board: &Board, hosts: &BTreeSet<String>, since: Instant) -> anyhow::Result<Instant> {
    let deadline = since + Duration::from_secs(30);
    loop {
        let notified = board.changed.notified();
        let times: Option<Vec<Instant>> = hosts
            .iter()
            .map(|h| board.get(h).filter(|a| a.at > since).map(|a| a.at))
            .collect();
        if let Some(times) = times {
            return Ok(times.into_iter().max().unwrap_or(since));
        }
        if Instant::now() > deadline {
            bail!("affected agents did not acknowledge within 30 s");
        }
        let _ = tokio::time::timeout(Duration::from_millis(20), notified).await;
    }
}

/// Creates one port on a random host in a random tenant and times it until
/// every affected agent acknowledged; then deletes it again.
pub async fn one_port_change(
    c: &mut Client,
    board: &Board,
    tenants: &[TenantPlan],
    hosts: usize,
    rng: &mut Rng,
    serial: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let t = &tenants[rng.below(tenants.len())];
    let host = host_name(rng.below(hosts));
    let mut affected: BTreeSet<String> = t.ports.iter().map(|p| p.host.clone()).collect();
    affected.insert(host.clone());
    let name = format!("{}-probe{serial}", t.name);
    let req = v1::CreatePortRequest {
        name: name.clone(),
        tenant: t.name.clone(),
        network: "net".into(),
        host,
        mac: port_mac(0x4000_0000 + serial),
        ip: port_ip(900),
        kind: v1::PortKind::Vm.into(),
    };
    let started = Instant::now();
    c.create_port(req).await?;
    let write = started.elapsed().as_secs_f64() * 1000.0;
    let done = wait_acked(board, &affected, started).await?;
    let latency = done.duration_since(started).as_secs_f64() * 1000.0;
    let removed = Instant::now();
    c.delete_port(v1::DeletePortRequest { name }).await?;
    wait_acked(board, &affected, removed).await?;
    Ok((latency, write, affected.len()))
}

/// Builds one scale on a fresh coordinator and measures it.
pub async fn run_scale(
    hosts: usize,
    ports: usize,
    samples: usize,
    insecure: bool,
) -> anyhow::Result<ScaleReport> {
    let names: Vec<String> = (0..hosts).map(host_name).collect();
    eprintln!(
        "{hosts} hosts / {ports} ports: starting the coordinator and issuing {hosts} agent certificates"
    );
    let names_for_cluster = names.clone();
    let mut cluster =
        tokio::task::spawn_blocking(move || Cluster::coordinator_only("bcp", &names_for_cluster, insecure))
            .await??;
    let result = measure(&mut cluster, &names, ports, samples).await;
    let name = cluster.name().to_string();
    tokio::task::spawn_blocking(move || Cluster::down(&name)).await??;
    result
}

async fn measure(
    cluster: &mut Cluster,
    names: &[String],
    ports: usize,
    samples: usize,
) -> anyhow::Result<ScaleReport> {
    let hosts = names.len();
    let agent_configs = names
        .iter()
        .map(|h| {
            let files = cluster.tls_files(&format!("agent-{h}"));
            let url = cluster.coordinator_url().context("coordinator url")?;
            Ok((
                h.clone(),
                dclab_runtime::net::ClientConfig::new(url, files.as_ref())?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut c = Operator::new(cluster.client_config()?.connect().await?).max_decoding_message_size(256 << 20);
    eprintln!("starting {hosts} simulated agents");
    let agents = SimAgents::start(agent_configs);
    let result = async {
        wait_converged(&mut c, Duration::from_secs(120)).await?;
        let mut rng = Rng::new(hosts as u64 * 31 + ports as u64);
        let tenants = plan(hosts, ports, &mut rng);
        eprintln!("creating {} tenants and {ports} ports", tenants.len());
        let started = Instant::now();
        populate(&mut c, &tenants).await?;
        wait_converged(&mut c, Duration::from_secs(600)).await?;
        let populate_s = started.elapsed().as_secs_f64();
        let st = status(&mut c).await?;
        eprintln!("timing {samples} one-port changes");
        let (mut change_ms, mut write_ms) = (Vec::new(), Vec::new());
        let mut affected = 0;
        for i in 0..samples {
            let (ms, write, n) = one_port_change(&mut c, &agents.board, &tenants, hosts, &mut rng, i).await?;
            change_ms.push(ms);
            write_ms.push(write);
            affected += n;
        }
        eprintln!("restarting the coordinator: full compile from scratch");
        let restarted = Instant::now();
        let cl = &mut *cluster;
        tokio::task::block_in_place(|| cl.restart_coordinator())?;
        let mut c =
            Operator::new(cluster.client_config()?.connect().await?).max_decoding_message_size(256 << 20);
        wait_converged(&mut c, Duration::from_secs(600)).await?;
        let reconverge_s = restarted.elapsed().as_secs_f64();
        let after = status(&mut c).await?;
        Ok(ScaleReport {
            hosts,
            ports,
            populate_s,
            startup_load_ms: after.startup_load_micros as f64 / 1000.0,
            full_compile_ms: after.startup_compile_micros as f64 / 1000.0,
            reconverge_s,
            change_ms,
            write_ms,
            affected_hosts_avg: affected as f64 / samples.max(1) as f64,
            rss_mib: st.rss_bytes as f64 / (1 << 20) as f64,
            store_mib: st.store_bytes as f64 / (1 << 20) as f64,
            flows_total: st.flows,
            flows_per_host_avg: st.flows as f64 / hosts as f64,
            flows_per_host_max: u64::from(st.max_host_flows),
        })
    }
    .await;
    agents.stop();
    result
}
