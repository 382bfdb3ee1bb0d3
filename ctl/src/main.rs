use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dclab_ctl::output::Format;
use dclab_ctl::topology::{self, HostCommand, NetworkCommand, PortCommand, RulesCommand, TenantCommand};
use dclab_ctl::{coordinator_url, local};
use dclab_proto::net::ClientConfig;
use dclab_proto::v1::topology_client::TopologyClient;

/// dclab: tenant isolation on Open vSwitch across hosts, driven from one coordinator.
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// Coordinator URL. Default: the local setup's coordinator if one is up, else http://127.0.0.1:7400.
    #[arg(long, global = true, env = "DCLAB_COORDINATOR")]
    coordinator: Option<String>,
    /// Output format of commands that show state.
    #[arg(long, short, global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hosts: the servers that run an agent and an OvS bridge.
    #[command(subcommand)]
    Host(HostCommand),
    /// Tenants: owners of networks; tenants may use overlapping addresses.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Networks: IPv4 CIDRs of a tenant.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Ports: a VM or router interface on a network, on a host.
    #[command(subcommand)]
    Port(PortCommand),
    /// The flows the coordinator computed for a host.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Run the paper's isolation test on a fresh 3-host local setup and print the matrices.
    Demo(dclab_ctl::demo::DemoArgs),
    /// A whole multi-host setup on this machine: namespaces as hosts, one OvS and agent each.
    #[command(subcommand)]
    Local(local::LocalCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.output == Format::Json;
    let url = || coordinator_url(cli.coordinator.clone());
    let client = || async {
        let channel = ClientConfig::new(url()).connect().await?;
        anyhow::Ok(TopologyClient::new(channel).max_decoding_message_size(256 << 20))
    };
    let format = cli.output;
    let result = match cli.command {
        Command::Local(cmd) => return local::run(cmd, json).await,
        Command::Demo(args) => return dclab_ctl::demo::run(args).await,
        Command::Host(cmd) => topology::host(client().await?, cmd, format).await,
        Command::Tenant(cmd) => topology::tenant(client().await?, cmd, format).await,
        Command::Network(cmd) => topology::network(client().await?, cmd, format).await,
        Command::Port(cmd) => topology::port(client().await?, cmd, format).await,
        Command::Rules(cmd) => topology::rules(client().await?, cmd, format).await,
    };
    result.map_err(|status| anyhow::anyhow!("{} ({:?})", status.message(), status.code()))
}
