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
}

pub fn run(cmd: LabCommand, format: Format) -> anyhow::Result<()> {
    let LabCommand::Check { file } = cmd;
    let lab = load(&file)?;
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
