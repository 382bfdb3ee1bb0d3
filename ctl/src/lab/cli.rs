//! `ctl lab`: lab files, and labs of VMs brought up, inspected and
//! removed through the coordinator.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::check::load;
use super::install::InstallOptions;
use super::remote::{self, Client, UpOptions};
use super::tunnel;
use crate::output::{print, Format};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Html,
    Svg,
    Dot,
}

#[derive(Subcommand)]
pub enum LabCommand {
    /// Check a lab file and show its nodes; errors name the line and field.
    Check {
        /// The lab file (TOML; see examples/).
        file: String,
    },
    /// Ask the coordinator where each node would run on the registered
    /// hosts (their offered vCPUs and memory); changes nothing.
    Plan {
        /// The lab file (TOML; see examples/).
        file: String,
    },
    /// Bring a lab up, or change a running one to match its file: the
    /// coordinator places new and changed nodes, the agents create them.
    /// Prints each node's progress and waits until all run.
    Up {
        /// The lab file (TOML; see examples/).
        file: String,
        /// Return once the coordinator accepted the lab, without waiting.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for every node to run, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Once up, take this whole-lab snapshot (the paper's "initial") unless it exists.
        #[arg(long)]
        snapshot: Option<String>,
    },
    /// Nodes of a lab with their host, state and addresses.
    Status {
        /// The lab [default: the only lab there is].
        lab: Option<String>,
    },
    /// The lab as a picture: hosts as boxes with their nodes (role, kind, state), networks as
    /// lines, addresses on hover. A self-contained HTML page (or SVG, or Graphviz dot) on
    /// stdout or in --out.
    Graph {
        /// The lab [default: the only lab there is].
        lab: Option<String>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Html)]
        format: GraphFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Remove a lab: every node, disk, port, rule and snapshot it had. Removing a lab that does not exist succeeds.
    Down { lab: String },
    /// Every lab, with how many nodes run.
    Ls,
    /// Run a shell command in a node, show its output as it comes and exit with its exit code:
    /// over the serial console of a micro-VM, in the namespaces and cgroups of a container. The
    /// command ends at --timeout, or when this ctl goes away.
    Exec {
        lab: String,
        node: String,
        /// Seconds to wait for the command.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// The command line, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Carry stdin and stdout to a TCP port of a container node, through the coordinator and
    /// the node's agent (an SSH ProxyCommand: `ssh -o ProxyCommand='ctl lab proxy LAB NODE 22'`).
    Proxy { lab: String, node: String, port: u16 },
    /// Listen on a local port and carry every connection to a TCP port of a container node, so
    /// curl, Ansible or an OpenStack client on this machine reach a service in the lab.
    Forward {
        lab: String,
        node: String,
        port: u16,
        /// Local address to listen on (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Install software into a lab with Ansible (ansible-core from PyPI, set up on first use):
    /// writes the inventory from the lab (groups are roles, addresses per network), reaches
    /// every node through the coordinator (SSH with `ctl lab proxy` as ProxyCommand), prints a
    /// line per play and host, keeps the full log with the lab, and reports the time per
    /// chapter. A failed task names the node, the task and the log, and leaves the lab up.
    Install {
        lab: String,
        /// A directory of the playbooks dir: its manifest.toml lists the chapters in order.
        #[arg(long, default_value = "openstack")]
        playbook: String,
        /// Only these chapters (comma-separated, e.g. environment,identity), in the manifest's order.
        #[arg(long, value_delimiter = ',')]
        chapters: Vec<String>,
        /// On success, take this whole-lab snapshot (the paper's "initial") unless it exists.
        #[arg(long)]
        snapshot: Option<String>,
        /// Where the playbooks are.
        #[arg(long, env = "DCLAB_PLAYBOOKS", default_value = super::install::PLAYBOOKS)]
        playbooks: std::path::PathBuf,
        /// A playbook variable, KEY=VALUE (repeatable), e.g. neutron_backend=dclab. Remembered in
        /// the lab's install directory: later installs keep it unless given again.
        #[arg(long = "var", value_name = "KEY=VALUE")]
        vars: Vec<String>,
        /// Where each lab's install directory (inventory, key, passwords, logs) and the Ansible
        /// venv live [default: $DCLAB_STATE, else ~/.local/state/dclab].
        #[arg(long)]
        state_dir: Option<std::path::PathBuf>,
    },
    /// SSH to a container node through `ctl lab proxy` (needs the lab's ssh_keys to hold your
    /// key, and ssh on this machine). Exits with ssh's code.
    Ssh {
        lab: String,
        node: String,
        #[arg(long, short, default_value = "root")]
        user: String,
        /// Private key to use (ssh -i).
        #[arg(long, short)]
        identity: Option<String>,
        /// A command to run instead of a shell, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

/// Every lab command but `check` talks to the coordinator; `client` is
/// only connected when one does.
pub async fn run<F>(connect: F, cmd: LabCommand, format: Format) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<Client>>,
{
    if let LabCommand::Check { file } = &cmd {
        return check(file, format);
    }
    let mut client = connect.await?;
    // Commands that would start listening or exec ssh first check what they name.
    if let LabCommand::Forward { lab, node, .. } | LabCommand::Ssh { lab, node, .. } = &cmd {
        remote::require_node(&mut client, lab, Some(node)).await?;
    }
    match cmd {
        LabCommand::Check { file } => check(&file, format),
        LabCommand::Plan { file } => run_plan(client, &file, format).await,
        LabCommand::Up {
            file,
            no_wait,
            timeout,
            snapshot,
        } => {
            let opts = UpOptions {
                wait: !no_wait,
                timeout: Duration::from_secs(timeout),
                snapshot,
            };
            remote::up(client, &file, opts, format).await
        }
        LabCommand::Status { lab } => remote::status(client, lab, format).await,
        LabCommand::Graph { lab, format, out } => graph(client, lab, format, out).await,
        LabCommand::Down { lab } => remote::down(client, &lab).await,
        LabCommand::Ls => remote::list(client, format).await,
        LabCommand::Exec {
            lab,
            node,
            timeout,
            command,
        } => {
            let code = remote::exec(client, &lab, &node, &command, Duration::from_secs(timeout)).await?;
            crate::exit_with(code)
        }
        LabCommand::Proxy { lab, node, port } => tunnel::proxy(client, &lab, &node, port).await,
        LabCommand::Forward {
            lab,
            node,
            port,
            listen,
        } => tunnel::forward(client, &lab, &node, port, listen).await,
        LabCommand::Install {
            lab,
            playbook,
            chapters,
            snapshot,
            playbooks,
            state_dir,
            vars,
        } => {
            let opts = InstallOptions {
                playbook,
                chapters,
                snapshot,
                playbooks,
                state: state_dir.unwrap_or_else(super::install::default_state_dir),
                ctl_argv: ctl_argv()?,
                vars,
            };
            super::install::install(client, &lab, opts, format).await
        }
        LabCommand::Ssh {
            lab,
            node,
            user,
            identity,
            command,
        } => ssh(&lab, &node, &user, identity.as_deref(), &command),
    }
}

async fn graph(
    mut client: Client,
    lab: Option<String>,
    format: GraphFormat,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let lab = remote::resolve(&mut client, lab).await?;
    let lab = client
        .get_lab(dclab_proto::v1::GetLabRequest { name: lab })
        .await
        .map_err(crate::status_error)?
        .into_inner();
    let text = match format {
        GraphFormat::Html => super::graph::html(&lab),
        GraphFormat::Svg => format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{}\n",
            super::graph::svg(&lab)
        ),
        GraphFormat::Dot => super::graph::dot(&lab),
    };
    match out {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("lab {}: picture written to {}", lab.name, path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// This ctl as it was called, up to (not including) `lab`: the global
/// options given before it reach the commands it runs for the operator.
fn ctl_argv() -> anyhow::Result<Vec<String>> {
    let args: Vec<String> = std::env::args().collect();
    let mut own = vec![std::env::current_exe()?.display().to_string()];
    let lab_at = args.iter().position(|a| a == "lab").unwrap_or(args.len());
    own.extend(args.iter().take(lab_at).skip(1).cloned());
    Ok(own)
}

/// Runs ssh with this ctl (and its connection arguments) as ProxyCommand.
fn ssh(lab: &str, node: &str, user: &str, identity: Option<&str>, command: &[String]) -> anyhow::Result<()> {
    let argv = tunnel::ssh_command(&ctl_argv()?, lab, node, user, identity, command);
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run ssh ({e}); install openssh-client"))?;
    crate::exit_with(status.code().unwrap_or(255))
}

/// Placement of the lab's nodes as the coordinator decides it.
pub async fn run_plan(mut client: crate::client::Operator, file: &str, format: Format) -> anyhow::Result<()> {
    use dclab_proto::v1;
    let lab = load(file)?;
    let switch_networks = |n: &v1::NodeSpec| -> Vec<String> {
        let switch = |net: &str| {
            lab.networks
                .iter()
                .any(|l| l.name == net && l.kind == v1::NetworkKind::Switch as i32)
        };
        n.interfaces
            .iter()
            .filter(|i| switch(&i.network))
            .map(|i| i.network.clone())
            .collect()
    };
    let nodes = lab
        .nodes
        .iter()
        .map(|n| v1::NodeDemand {
            name: n.name.clone(),
            vcpus: n.vcpus,
            memory_mib: n.memory_mib,
            host: n.host.clone(),
            switch_networks: switch_networks(n),
        })
        .collect();
    let req = v1::PlanLabRequest {
        lab: lab.name.clone(),
        nodes,
    };
    let plan = client
        .plan_lab(req)
        .await
        .map_err(crate::status_error)?
        .into_inner();
    let rows: Vec<Vec<String>> = plan
        .placements
        .iter()
        .map(|p| {
            let n = lab
                .nodes
                .iter()
                .find(|n| n.name == p.node)
                .expect("planned nodes come from the lab");
            let switch = switch_networks(n).join(",");
            vec![
                p.node.clone(),
                p.host.clone(),
                n.vcpus.to_string(),
                format!("{} MiB", n.memory_mib),
                if switch.is_empty() { "-".into() } else { switch },
            ]
        })
        .collect();
    let json: Vec<_> = plan
        .placements
        .iter()
        .map(|p| {
            let n = lab.nodes.iter().find(|n| n.name == p.node);
            let switch = n.map(switch_networks).unwrap_or_default();
            json!({"node": p.node, "host": p.host, "switch_networks": switch})
        })
        .collect();
    print(
        format,
        &["NODE", "HOST", "VCPUS", "MEMORY", "SWITCH"],
        &rows,
        json!({"lab": lab.name, "placements": json, "networks": networks_json(&lab.networks)}),
    );
    super::show::print_networks(&lab.networks, format);
    Ok(())
}

fn check(file: &str, format: Format) -> anyhow::Result<()> {
    let lab = load(file)?;
    let rows: Vec<Vec<String>> = lab
        .nodes
        .iter()
        .map(|n| {
            let disks: Vec<String> = n.disks_mib.iter().map(|d| format!("{d}M")).collect();
            let nics: Vec<String> = n
                .interfaces
                .iter()
                .map(|i| {
                    let ip = if i.ip.is_empty() {
                        String::new()
                    } else {
                        format!("={}", i.ip)
                    };
                    format!("{}{ip}", i.network)
                })
                .collect();
            vec![
                n.name.clone(),
                super::show::kind_name(n.kind).to_string(),
                n.role.clone(),
                n.vcpus.to_string(),
                format!("{} MiB", n.memory_mib),
                n.image.clone(),
                disks.join(","),
                if n.host.is_empty() {
                    "-".into()
                } else {
                    n.host.clone()
                },
                nics.join(" "),
            ]
        })
        .collect();
    let nodes: Vec<_> = lab
        .nodes
        .iter()
        .map(|n| {
            let nics: Vec<_> = n
                .interfaces
                .iter()
                .map(|i| json!({"network": i.network, "ip": (!i.ip.is_empty()).then_some(&i.ip)}))
                .collect();
            let kind = super::show::kind_name(n.kind);
            json!({"name": n.name, "kind": kind, "role": n.role, "vcpus": n.vcpus, "memory_mib": n.memory_mib, "image": n.image,
                   "disks_mib": n.disks_mib, "host": (!n.host.is_empty()).then_some(&n.host), "interfaces": nics})
        })
        .collect();
    let doc = json!({"lab": lab.name, "networks": networks_json(&lab.networks), "nodes": nodes});
    print(
        format,
        &[
            "NODE",
            "KIND",
            "ROLE",
            "VCPUS",
            "MEMORY",
            "IMAGE",
            "DISKS",
            "PIN",
            "INTERFACES",
        ],
        &rows,
        doc,
    );
    super::show::print_networks(&lab.networks, format);
    Ok(())
}

fn networks_json(networks: &[dclab_proto::v1::LabNetwork]) -> serde_json::Value {
    let kind = super::show::network_kind_name;
    let list: Vec<_> = networks
        .iter()
        .map(|n| json!({"name": n.name, "cidr": n.cidr, "kind": kind(n.kind)}))
        .collect();
    json!(list)
}
