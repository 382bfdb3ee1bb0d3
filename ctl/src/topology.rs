//! `ctl host|tenant|network|port|rules`: topology commands over gRPC.

use crate::client::Operator;
use clap::Subcommand;
use dclab_proto::v1;
use serde_json::json;

use crate::lab::show::network_kind_name;
use crate::output::{print, Format};

#[derive(Subcommand)]
pub enum HostCommand {
    /// Register a host by hand (agents register their own host when they start).
    Create {
        id: String,
        /// MAC of the host's uplink, the only MAC of its tenants the physical network sees.
        #[arg(long)]
        mac: String,
        /// Uplink interface name.
        #[arg(long, default_value = "eth0")]
        uplink: String,
    },
    /// List hosts with their rule versions (desired / applied by the agent).
    Ls,
    /// Delete a host that has no ports.
    Rm { id: String },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    Create {
        name: String,
    },
    Ls,
    /// Delete a tenant that has no networks.
    Rm {
        name: String,
    },
}

/// How a network carries frames.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NetKindArg {
    Rewrite,
    Switch,
}

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create an IPv4 network; CIDRs may overlap other tenants' but not the same tenant's.
    Create {
        name: String,
        #[arg(long)]
        tenant: String,
        /// e.g. 10.0.0.0/24
        #[arg(long)]
        cidr: String,
        /// rewrite: the isolating pipeline; switch: a hub of its ports on one host (docs/labs.md).
        #[arg(long, value_enum, default_value = "rewrite")]
        kind: NetKindArg,
    },
    Ls {
        /// Only this tenant's networks.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a network that has no ports.
    Rm {
        name: String,
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Vm,
    Router,
}

#[derive(Subcommand)]
pub enum PortCommand {
    /// Create a port; its name is what the host's OvS interface carries in external_ids:iface-id.
    Create {
        name: String,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        network: String,
        /// Host the port lives on; it must be registered.
        #[arg(long)]
        host: String,
        #[arg(long)]
        mac: String,
        /// IPv4 address inside the network's CIDR.
        #[arg(long)]
        ip: String,
        #[arg(long, value_enum, default_value = "vm")]
        kind: Kind,
    },
    /// List ports with their host, network, MAC, IP and mapping key.
    Ls {
        /// Only this tenant's ports.
        #[arg(long)]
        tenant: Option<String>,
        /// Only ports of networks of this name (add --tenant for one network).
        #[arg(long)]
        network: Option<String>,
        /// Only ports on this host.
        #[arg(long)]
        host: Option<String>,
    },
    /// Delete a port: its rules go from every host.
    Rm {
        /// The port's name (unique across tenants).
        name: String,
    },
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Show the flows the coordinator computed for a host (ports symbolic).
    Show {
        #[arg(long)]
        host: String,
    },
}

type Client = Operator;

pub async fn host(mut c: Client, cmd: HostCommand, format: Format) -> Result<(), tonic::Status> {
    match cmd {
        HostCommand::Create { id, mac, uplink } => {
            let h = c
                .create_host(v1::Host {
                    id,
                    uplink,
                    mac,
                    ..Default::default()
                })
                .await?
                .into_inner();
            print_hosts(&[h], format);
        }
        HostCommand::Ls => print_hosts(
            &c.list_hosts(v1::ListHostsRequest {}).await?.into_inner().hosts,
            format,
        ),
        HostCommand::Rm { id } => {
            c.delete_host(v1::DeleteHostRequest { id: id.clone() }).await?;
            done(format, json!({"deleted": {"host": id}}));
        }
    }
    Ok(())
}

fn print_hosts(hosts: &[v1::Host], format: Format) {
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.id.clone(),
                h.mac.clone(),
                h.uplink.clone(),
                h.port_count.to_string(),
                h.flow_count.to_string(),
                format!("{}/{}", h.applied_version, h.desired_version),
                h.missing_ports.to_string(),
                format!("{}/{} MiB", h.vcpus, h.memory_mib),
                if h.connected { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    let json: Vec<_> = hosts
        .iter()
        .map(|h| {
            json!({"id": h.id, "mac": h.mac, "uplink": h.uplink, "ports": h.port_count, "flows": h.flow_count,
                   "applied_version": h.applied_version, "desired_version": h.desired_version,
                   "missing_ports": h.missing_ports, "connected": h.connected,
                   "vcpus": h.vcpus, "memory_mib": h.memory_mib})
        })
        .collect();
    let headers = [
        "ID",
        "MAC",
        "UPLINK",
        "PORTS",
        "FLOWS",
        "APPLIED/DESIRED",
        "UNATTACHED",
        "CAPACITY",
        "AGENT",
    ];
    print(format, &headers, &rows, json!(json));
}

pub async fn tenant(mut c: Client, cmd: TenantCommand, format: Format) -> Result<(), tonic::Status> {
    let tenants = match cmd {
        TenantCommand::Create { name } => vec![c
            .create_tenant(v1::CreateTenantRequest { name })
            .await?
            .into_inner()],
        TenantCommand::Ls => {
            c.list_tenants(v1::ListTenantsRequest {})
                .await?
                .into_inner()
                .tenants
        }
        TenantCommand::Rm { name } => {
            c.delete_tenant(v1::DeleteTenantRequest { name: name.clone() })
                .await?;
            done(format, json!({"deleted": {"tenant": name}}));
            return Ok(());
        }
    };
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| vec![t.name.clone(), t.network_count.to_string()])
        .collect();
    let json: Vec<_> = tenants
        .iter()
        .map(|t| json!({"name": t.name, "networks": t.network_count}))
        .collect();
    print(format, &["NAME", "NETWORKS"], &rows, json!(json));
    Ok(())
}

pub async fn network(mut c: Client, cmd: NetworkCommand, format: Format) -> Result<(), tonic::Status> {
    let networks = match cmd {
        NetworkCommand::Create {
            name,
            tenant,
            cidr,
            kind,
        } => {
            let kind = match kind {
                NetKindArg::Rewrite => v1::NetworkKind::Rewrite,
                NetKindArg::Switch => v1::NetworkKind::Switch,
            };
            let req = v1::CreateNetworkRequest {
                tenant,
                name,
                cidr,
                kind: kind.into(),
            };
            vec![c.create_network(req).await?.into_inner()]
        }
        NetworkCommand::Ls { tenant } => {
            let tenant = tenant.unwrap_or_default();
            c.list_networks(v1::ListNetworksRequest { tenant })
                .await?
                .into_inner()
                .networks
        }
        NetworkCommand::Rm { name, tenant } => {
            c.delete_network(v1::DeleteNetworkRequest {
                tenant: tenant.clone(),
                name: name.clone(),
            })
            .await?;
            done(format, json!({"deleted": {"tenant": tenant, "network": name}}));
            return Ok(());
        }
    };
    let rows: Vec<Vec<String>> = networks
        .iter()
        .map(|n| {
            vec![
                n.tenant.clone(),
                n.name.clone(),
                n.cidr.clone(),
                network_kind_name(n.kind).to_string(),
                n.id.to_string(),
                n.port_count.to_string(),
            ]
        })
        .collect();
    let json: Vec<_> = networks
        .iter()
        .map(|n| json!({"tenant": n.tenant, "name": n.name, "cidr": n.cidr, "kind": network_kind_name(n.kind), "id": n.id, "ports": n.port_count}))
        .collect();
    print(
        format,
        &["TENANT", "NAME", "CIDR", "KIND", "ID", "PORTS"],
        &rows,
        json!(json),
    );
    Ok(())
}

pub async fn port(mut c: Client, cmd: PortCommand, format: Format) -> Result<(), tonic::Status> {
    let ports = match cmd {
        PortCommand::Create {
            name,
            tenant,
            network,
            host,
            mac,
            ip,
            kind,
        } => {
            let kind = match kind {
                Kind::Vm => v1::PortKind::Vm,
                Kind::Router => v1::PortKind::Router,
            };
            let req = v1::CreatePortRequest {
                name,
                tenant,
                network,
                host,
                mac,
                ip,
                kind: kind.into(),
            };
            vec![c.create_port(req).await?.into_inner()]
        }
        PortCommand::Ls {
            tenant,
            network,
            host,
        } => {
            let req = v1::ListPortsRequest {
                tenant: tenant.unwrap_or_default(),
                network: network.unwrap_or_default(),
                host: host.unwrap_or_default(),
            };
            c.list_ports(req).await?.into_inner().ports
        }
        PortCommand::Rm { name } => {
            c.delete_port(v1::DeletePortRequest { name: name.clone() })
                .await?;
            done(format, json!({"deleted": {"port": name}}));
            return Ok(());
        }
    };
    print_ports(&ports, format);
    Ok(())
}

fn kind_name(kind: i32) -> &'static str {
    match v1::PortKind::try_from(kind) {
        Ok(v1::PortKind::Router) => "router",
        _ => "vm",
    }
}

fn print_ports(ports: &[v1::Port], format: Format) {
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            let cells = [&p.name, &p.tenant, &p.network, &p.host, &p.mac, &p.ip, &p.key];
            let mut row: Vec<String> = cells.into_iter().cloned().collect();
            row.push(kind_name(p.kind).into());
            row
        })
        .collect();
    let json: Vec<_> = ports
        .iter()
        .map(|p| {
            json!({"name": p.name, "tenant": p.tenant, "network": p.network, "host": p.host, "mac": p.mac,
                   "ip": p.ip, "key": p.key, "kind": kind_name(p.kind)})
        })
        .collect();
    let headers = ["NAME", "TENANT", "NETWORK", "HOST", "MAC", "IP", "KEY", "KIND"];
    print(format, &headers, &rows, json!(json));
}

pub async fn rules(mut c: Client, cmd: RulesCommand, format: Format) -> Result<(), tonic::Status> {
    let RulesCommand::Show { host } = cmd;
    let rules = c.get_rules(v1::GetRulesRequest { host }).await?.into_inner();
    match format {
        Format::Json => {
            let flows: Vec<_> = rules
                .flows
                .iter()
                .map(|f| json!({"table": f.table, "priority": f.priority, "match": f.r#match, "actions": f.actions}))
                .collect();
            let doc = json!({"host": rules.host, "version": rules.version, "flows": flows});
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("json values serialize")
            );
        }
        Format::Table => {
            println!(
                "# host {} rules version {} ({} flows)",
                rules.host,
                rules.version,
                rules.flows.len()
            );
            for f in &rules.flows {
                let sep = if f.r#match.is_empty() { "" } else { "," };
                println!(
                    "table={},priority={}{sep}{} actions={}",
                    f.table, f.priority, f.r#match, f.actions
                );
            }
        }
    }
    Ok(())
}

fn done(format: Format, json: serde_json::Value) {
    if format == Format::Json {
        println!("{json}");
    }
}
