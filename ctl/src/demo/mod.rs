//! `ctl demo`: the paper's isolation test on a fresh local setup, printed
//! as the paper's tables, with a look at what the physical switch sees.

pub mod capture;
pub mod lab;
pub mod openstack;
pub mod paper;

use std::time::{Duration, Instant};

use crate::client::Operator;
use anyhow::{bail, Context};
use dclab_proto::v1;
use dclab_runtime::net::ClientConfig;
use tokio::task::block_in_place;

use crate::local::{Cluster, UpOptions};
use capture::Capture;
use paper::{Plan, DISTINCT, OVERLAPPING};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Leave the dclab setup (cluster `demo`) running afterwards to explore.
    #[arg(long)]
    pub keep: bool,
    /// Skip the plain-OvS baseline (paper Table 5).
    #[arg(long)]
    pub no_baseline: bool,
    /// Skip the lab part (a lab of containers across the hosts, broken by
    /// an experiment), which needs libvirtd.
    #[arg(long)]
    pub no_lab: bool,
    /// Instead: the full headline, the paper's OpenStack architecture as
    /// containers on two simulated hosts, installed (snapshot `initial`), and
    /// `compute-unreachable` run on it, with its report (about 13 minutes
    /// cold here, 6 warm).
    #[arg(long)]
    pub openstack: bool,
}

const NAME: &str = "demo";
const BASELINE: &str = "demobase";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let out_dir = std::env::current_dir()?;
    if args.openstack {
        let ok = block_in_place(|| openstack::run(&out_dir, args.keep))?;
        if !ok {
            bail!("compute-unreachable deviated from what it expected; its report says where");
        }
        return Ok(());
    }
    let (mut baseline_ok, mut lab_ok) = (true, true);
    // The lab part runs on the isolation demo's hosts, after both tables.
    let isolated = block_in_place(|| {
        with_cluster(NAME, false, args.keep, |cluster| {
            let isolated = dclab_part(cluster)?;
            if !args.no_baseline {
                baseline_ok = with_cluster(BASELINE, true, false, baseline_part)?;
            }
            if !args.no_lab {
                lab_ok = lab::run(NAME, &out_dir, args.keep)?;
            }
            Ok(isolated)
        })
    })?;
    if args.keep {
        println!("\nthe setup is still up; try:");
        println!("  ctl host ls            ctl port ls            ctl rules show --host h1");
        println!("  ip netns exec dcl-demo-i-vm1 ping 10.0.0.2   (reaches vm2 of tenant a, not vm6 of b)");
        if !args.no_lab {
            println!("  export DCLAB_LOCAL_CLUSTER=demo; ctl lab status {}; ctl lab exec {} n1 -- ping -c 3 10.0.0.12", lab::LAB, lab::LAB);
        }
        println!("  ctl local down --name demo");
    }
    if !(isolated && baseline_ok) {
        bail!("the isolation matrix differs from the paper's table");
    }
    println!("\nresult: tenants isolated as in the paper's Table 4");
    if !lab_ok {
        bail!("the demo lab's experiment deviated from what it expected; its report says where");
    }
    Ok(())
}

/// Brings up a cluster, runs `part`, and takes the cluster down again
/// (unless `keep`), also when `part` fails.
fn with_cluster(
    name: &str,
    plain: bool,
    keep: bool,
    part: impl FnOnce(&mut Cluster) -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let mut opts = UpOptions::new(name, 3);
    opts.plain = plain;
    let mut cluster = Cluster::up(&opts).with_context(|| {
        format!(
            "cannot bring up the local setup {name}; if one is left over, run `ctl local down --name {name}`"
        )
    })?;
    let result = part(&mut cluster);
    if !keep || result.is_err() {
        Cluster::down(name)?;
    }
    result
}

fn dclab_part(cluster: &mut Cluster) -> anyhow::Result<bool> {
    println!(
        "\n== dclab: 3 hosts, tenants a and b both on {}; b's vm5 and vm6 reuse a's 10.0.0.1 and .2",
        paper::CIDR
    );
    let config = cluster.client_config()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(create_networks(&config))?;
    paper::add_instances(cluster, &OVERLAPPING)?;
    rt.block_on(wait_converged(&config, Duration::from_secs(30)))?;
    let ok = show_matrix(
        cluster,
        &OVERLAPPING,
        "received-by matrix with dclab (paper Table 4)",
        paper::table4,
    )?;
    show_wire(cluster)?;
    Ok(ok)
}

fn baseline_part(cluster: &mut Cluster) -> anyhow::Result<bool> {
    println!("\n== baseline: plain OvS bridges forwarding NORMAL, no isolation, distinct addresses");
    paper::add_instances(cluster, &DISTINCT)?;
    show_matrix(
        cluster,
        &DISTINCT,
        "received-by matrix on plain OvS (paper Table 5)",
        paper::table5,
    )
}

fn show_matrix(
    cluster: &Cluster,
    plan: &Plan,
    title: &str,
    want: fn(&Plan) -> paper::Matrix,
) -> anyhow::Result<bool> {
    eprintln!(
        "running fping -g {} from every instance, capturing ICMP at every instance",
        paper::CIDR
    );
    let got = paper::fping_matrix(cluster, plan)?;
    println!("{}", paper::render(title, plan, &got));
    let ok = got == want(plan);
    println!(
        "{}",
        if ok {
            "matches the paper"
        } else {
            "DIFFERS from the paper"
        }
    );
    Ok(ok)
}

/// Two pings vm1 (h1) → vm2 (h2), as the physical switch sees them.
fn show_wire(cluster: &Cluster) -> anyhow::Result<()> {
    let wire = Capture::try_start(cluster, &cluster.switch_netns(), "phys", &["icmp"])?;
    cluster.exec(
        &cluster.instance_netns("vm1"),
        &["ping", "-c", "2", "-i", "0.2", "10.0.0.2"],
    )?;
    println!("\nvm1 (10.0.0.1 on h1) pings vm2 (10.0.0.2 on h2); the physical switch sees only host MACs and mapping keys:");
    for line in wire.stop() {
        println!("  {line}");
    }
    Ok(())
}

async fn client(config: &ClientConfig) -> anyhow::Result<Operator> {
    Ok(Operator::new(config.connect().await?))
}

pub async fn create_networks(config: &ClientConfig) -> anyhow::Result<()> {
    let mut c = client(config).await?;
    for tenant in paper::TENANTS {
        c.create_tenant(v1::CreateTenantRequest { name: tenant.into() })
            .await?;
        let req = v1::CreateNetworkRequest {
            tenant: tenant.into(),
            name: "net".into(),
            cidr: paper::CIDR.into(),
            kind: v1::NetworkKind::Rewrite.into(),
        };
        c.create_network(req).await?;
    }
    Ok(())
}

/// Until every agent has applied its latest rules with every port attached.
pub async fn wait_converged(config: &ClientConfig, timeout: Duration) -> anyhow::Result<()> {
    let mut c = client(config).await?;
    let start = Instant::now();
    eprintln!("waiting for agents to apply their rules");
    loop {
        let hosts = c.list_hosts(v1::ListHostsRequest {}).await?.into_inner().hosts;
        let done =
            |h: &v1::Host| h.connected && h.applied_version == h.desired_version && h.missing_ports == 0;
        if !hosts.is_empty() && hosts.iter().all(done) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "agents did not apply their rules within {timeout:?}; see the agent logs under /run/dclab/"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
