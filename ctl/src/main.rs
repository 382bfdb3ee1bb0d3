use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use dclab_ctl::client::Operator;
use dclab_ctl::output::Format;
use dclab_ctl::topology::{self, HostCommand, NetworkCommand, PortCommand, RulesCommand, TenantCommand};
use dclab_ctl::{client_config, local};
use tracing::Instrument;

/// The version and the commit built from (build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("DCLAB_COMMIT"), ")");

/// dclab: virtual cloud labs across several servers, broken on purpose to learn how clouds fail,
/// with every lab's tenants isolated on Open vSwitch.
#[derive(Parser)]
#[command(version = VERSION, propagate_version = true)]
struct Cli {
    /// Coordinator URL. Default: the local setup's coordinator if one is up, else http://127.0.0.1:7400.
    #[arg(long, global = true, env = "DCLAB_COORDINATOR")]
    coordinator: Option<String>,
    /// Output format of commands that show state.
    #[arg(long, short, global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(flatten)]
    tls: dclab_runtime::net::TlsArgs,
    #[command(flatten)]
    telemetry: dclab_runtime::logging::TelemetryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Labs: nodes (VMs or containers) and their networks described once in a lab file.
    #[command(subcommand)]
    Lab(dclab_ctl::lab::cli::LabCommand),
    /// Dependability experiments: break a lab on purpose (faults), check what happens, report it.
    #[command(subcommand)]
    Experiment(dclab_ctl::experiment::ExperimentCommand),
    /// Whole-lab snapshots: every node on every host at one moment.
    #[command(subcommand)]
    Snapshot(dclab_ctl::snapshot::SnapshotCommand),
    /// Images for lab nodes: the micro-VM, and Debian 12 images of each lab role for containers and VMs.
    #[command(subcommand)]
    Image(dclab_ctl::image::ImageCommand),
    /// Verify on a running deployment, from the flows OvS really has, that tenants are isolated.
    #[command(subcommand)]
    Verify(dclab_ctl::verify::VerifyCommand),
    /// Follow a packet through the flows OvS really has installed, host by host (like ovn-trace,
    /// on the real bridges): tables, rewrites, and where each copy is delivered or dropped.
    Trace(dclab_ctl::trace::TraceArgs),
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
    /// A whole multi-host setup on this machine: namespaces as hosts, one OvS and agent each.
    #[command(subcommand)]
    Local(local::LocalCommand),
    /// Check this host for what dclab needs (OvS, libvirtd and its cgroups, /dev/net/tun, memory and
    /// disk, the coordinator with the certificates found); each missing piece is named with its
    /// fix, exit 1 when one is. Example: `ctl doctor`, `ctl doctor -o json`.
    Doctor,
    /// Run the paper's isolation test on a fresh 3-host local setup and print the matrices.
    Demo(dclab_ctl::demo::DemoArgs),
    /// Benchmarks: figures side by side with their references, in one run.
    #[command(subcommand)]
    Bench(dclab_ctl::bench::BenchCommand),
    /// Certificates: the deployment's CA and the certificates of coordinator, agents and operators.
    #[command(subcommand)]
    Certs(dclab_ctl::certs::CertsCommand),
    /// Print a shell completion script. Bash: `source <(ctl completions bash)`, or save it as
    /// /etc/bash_completion.d/ctl; zsh: save it as `_ctl` in a directory of $fpath; fish: save it
    /// as ~/.config/fish/completions/ctl.fish.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    dclab_ctl::closed_stdout::end_quietly();
    // Every command's help ends with examples (ctl/src/examples.rs).
    let matches = dclab_ctl::examples::add(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Command::Completions { shell } = cli.command {
        // Named "ctl" whatever the binary's path, so the script completes the installed command.
        let mut script = Vec::new();
        clap_complete::generate(
            shell,
            &mut <Cli as clap::CommandFactory>::command(),
            "ctl",
            &mut script,
        );
        use std::io::Write;
        return match std::io::stdout().write_all(&script) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("error: writing the completion script: {e}");
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        };
    }
    let telemetry = match dclab_runtime::logging::init_traced("dclab-ctl", "warn", &cli.telemetry) {
        Ok(t) => t,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // One trace per command; the coordinator's spans join it.
    let command: Vec<String> = std::env::args().skip(1).collect();
    let span = tracing::info_span!("ctl", command = %command.join(" "));
    let result = run(cli).instrument(span).await;
    use std::io::Write;
    let _ = std::io::stdout().flush();
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<dclab_ctl::ExitWith>() => {
            ExitCode::from(err.downcast_ref::<dclab_ctl::ExitWith>().map_or(1, |e| e.0))
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.output == Format::Json;
    let config = || client_config(cli.coordinator.clone(), &cli.tls);
    let client = || async {
        let channel = config()?.connect().await.map_err(|e| match e {
            dclab_runtime::net::NetError::Connect { .. } => anyhow::anyhow!(
                "{e}; is it running? (`ctl local up` starts a local one, `ctl doctor` checks this host)"
            ),
            e => e.into(),
        })?;
        anyhow::Ok(Operator::new(channel).max_decoding_message_size(256 << 20))
    };
    let format = cli.output;
    let result = match cli.command {
        Command::Local(cmd) => return local::run(cmd, json, cli.telemetry.otlp_endpoint.clone()).await,
        Command::Demo(args) => return dclab_ctl::demo::run(args).await,
        Command::Bench(cmd) => return dclab_ctl::bench::run(cmd, client(), format).await,
        Command::Lab(cmd) => return dclab_ctl::lab::cli::run(client(), cmd, format).await,
        Command::Snapshot(cmd) => return dclab_ctl::snapshot::run(client().await?, cmd, format).await,
        Command::Image(cmd) => return dclab_ctl::image::run(cmd),
        Command::Doctor => {
            let configured = cli.coordinator.is_some()
                || dclab_ctl::local::Cluster::load(
                    &std::env::var("DCLAB_LOCAL_CLUSTER").unwrap_or_else(|_| "default".into()),
                )
                .is_ok_and(|c| c.coordinator_url().is_some());
            return dclab_ctl::doctor::run(config(), configured, format).await;
        }
        Command::Certs(cmd) => return dclab_ctl::certs::run(cmd, format),
        Command::Host(cmd) => topology::host(client().await?, cmd, format).await,
        Command::Tenant(cmd) => topology::tenant(client().await?, cmd, format).await,
        Command::Network(cmd) => topology::network(client().await?, cmd, format).await,
        Command::Port(cmd) => topology::port(client().await?, cmd, format).await,
        Command::Rules(cmd) => topology::rules(client().await?, cmd, format).await,
        Command::Trace(args) => return dclab_ctl::trace::run(client().await?, args, format).await,
        Command::Verify(cmd) => return dclab_ctl::verify::run(client().await?, cmd, format).await,
        Command::Experiment(cmd) => return dclab_ctl::experiment::run(client(), cmd, format).await,
        Command::Completions { .. } => unreachable!("answered before telemetry starts"),
    };
    result.map_err(dclab_ctl::status_error)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_ends_its_help_with_examples() {
        let (missing, stale) = dclab_ctl::examples::gaps(&<super::Cli as clap::CommandFactory>::command());
        assert!(missing.is_empty(), "commands with no examples: {missing:?}");
        assert!(
            stale.is_empty(),
            "examples of commands that do not exist: {stale:?}"
        );
    }

    #[test]
    fn every_example_parses() {
        use clap::Parser;
        for words in dclab_ctl::examples::ctl_lines() {
            if let Err(e) = super::Cli::try_parse_from(&words) {
                panic!("{}: {e}", words.join(" "));
            }
        }
    }

    /// Every `ctl` command line in a code block of the README and docs/
    /// parses as this ctl's command line: the docs name no command or flag
    /// that does not exist.
    #[test]
    fn every_ctl_line_in_the_docs_parses() {
        use clap::Parser;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut files = vec![root.join("README.md")];
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
        let mut bad = Vec::new();
        let mut checked = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for (number, words) in dclab_ctl::examples::ctl_lines_in_markdown(&text) {
                checked += 1;
                if let Err(e) = super::Cli::try_parse_from(&words) {
                    let first = e.to_string().lines().next().unwrap_or_default().to_string();
                    bad.push(format!(
                        "{}:{number}: {}: {first}",
                        file.display(),
                        words.join(" ")
                    ));
                }
            }
        }
        assert!(checked > 20, "only {checked} ctl lines found in the docs");
        assert!(
            bad.is_empty(),
            "ctl lines in the docs that do not parse:\n{}",
            bad.join("\n")
        );
    }
}
