//! `ctl lab`: lab files today; bringing labs up on libvirt is the next step.

use clap::Subcommand;
use serde_json::json;

use super::check::load;
use crate::output::{print, Format};

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
}

pub fn run(cmd: LabCommand, format: Format) -> anyhow::Result<()> {
    match cmd {
        LabCommand::Check { file } => check(&file, format),
        LabCommand::Plan { .. } => {
            anyhow::bail!("lab plan needs the coordinator; it is run through run_plan")
        }
    }
}

/// Placement of the lab's nodes as the coordinator decides it.
pub async fn run_plan(
    mut client: dclab_proto::v1::topology_client::TopologyClient<tonic::transport::Channel>,
    file: &str,
    format: Format,
) -> anyhow::Result<()> {
    use dclab_proto::v1;
    let lab = load(file)?;
    let nodes = lab
        .nodes
        .iter()
        .map(|n| v1::NodeDemand {
            name: n.name.clone(),
            vcpus: n.vcpus,
            memory_mib: n.memory_mib,
            host: n.host.clone().unwrap_or_default(),
        })
        .collect();
    let req = v1::PlanLabRequest {
        lab: lab.name.clone(),
        nodes,
    };
    let plan = client
        .plan_lab(req)
        .await
        .map_err(|s| anyhow::anyhow!("{} ({:?})", s.message(), s.code()))?
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
            vec![
                p.node.clone(),
                p.host.clone(),
                n.vcpus.to_string(),
                format!("{} MiB", n.memory_mib),
            ]
        })
        .collect();
    let json: Vec<_> = plan
        .placements
        .iter()
        .map(|p| json!({"node": p.node, "host": p.host}))
        .collect();
    print(
        format,
        &["NODE", "HOST", "VCPUS", "MEMORY"],
        &rows,
        json!({"lab": lab.name, "placements": json}),
    );
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
                    format!(
                        "{}{}",
                        i.network,
                        i.ip.map(|ip| format!("={ip}")).unwrap_or_default()
                    )
                })
                .collect();
            vec![
                n.name.clone(),
                n.role.clone(),
                n.vcpus.to_string(),
                format!("{} MiB", n.memory_mib),
                n.image.clone(),
                disks.join(","),
                n.host.clone().unwrap_or_else(|| "-".into()),
                nics.join(" "),
            ]
        })
        .collect();
    let nodes: Vec<_> = lab
        .nodes
        .iter()
        .map(|n| {
            let nics: Vec<_> = n.interfaces.iter().map(|i| json!({"network": i.network, "ip": i.ip})).collect();
            json!({"name": n.name, "role": n.role, "vcpus": n.vcpus, "memory_mib": n.memory_mib, "image": n.image,
                   "disks_mib": n.disks_mib, "host": n.host, "interfaces": nics})
        })
        .collect();
    let networks: Vec<_> = lab
        .networks
        .iter()
        .map(|n| json!({"name": n.name, "cidr": format!("{}/{}", n.addr, n.prefix)}))
        .collect();
    let doc = json!({"lab": lab.name, "networks": networks, "nodes": nodes});
    print(
        format,
        &[
            "NODE",
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
    Ok(())
}
