//! The Topology service: hosts, tenants, networks and ports as operators
//! read and change them, the rules compiled from them, and the status.

use std::sync::Arc;

use dclab_proto::error::{invalid, not_found};
use dclab_proto::v1::{self, topology_server::Topology as TopologyApi};
use dclab_proto::ApiError;
use tonic::{Request, Response, Status};
use tracing::info;

use super::convert;
use crate::model::{NetKind, PortKind};
use crate::mutate::{self, PortSpec};
use crate::record::{Op, Record};
use crate::rules::{CompileStats, RuleHub};
use crate::state::State;

/// Hosts, tenants, networks, ports, their rules, and the status.
pub struct TopologyService {
    pub store: Arc<State>,
    pub rules: Arc<RuleHub>,
    pub startup_compile: CompileStats,
}

type Reply<T> = Result<Response<T>, Status>;

/// Resident set size from /proc (0 where unavailable).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kb.unwrap_or(0) * 1024
}

fn port_spec(r: &v1::CreatePortRequest) -> Result<PortSpec<'_>, ApiError> {
    Ok(PortSpec {
        name: &r.name,
        tenant: &r.tenant,
        network: &r.network,
        host: &r.host,
        mac: &r.mac,
        ip: &r.ip,
        kind: port_kind(r.kind)?,
    })
}

fn port_kind(value: i32) -> Result<PortKind, ApiError> {
    match v1::PortKind::try_from(value) {
        Ok(v1::PortKind::Unspecified) | Ok(v1::PortKind::Vm) => Ok(PortKind::Vm),
        Ok(v1::PortKind::Router) => Ok(PortKind::Router),
        Err(_) => Err(invalid(format!("unknown port kind {value}; use vm or router"))),
    }
}

/// The ports a write put, in its order, as the write left them.
fn written_ports(t: &crate::model::Topology, ops: Vec<Op>) -> Vec<v1::Port> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Put(Record::Port(p)) => Some(convert::port(t, p)),
            _ => None,
        })
        .collect()
}

/// A create that was accepted yet wrote none of what it creates.
fn wrote_nothing(what: &str) -> Status {
    ApiError::Internal(format!("the {what} create was accepted but wrote no {what}")).into()
}

#[tonic::async_trait]
impl TopologyApi for TopologyService {
    async fn create_host(&self, req: Request<v1::Host>) -> Reply<v1::Host> {
        let h = req.into_inner();
        let hub = &self.rules;
        let host = self.store.write_reply(
            |v| mutate::put_host(v.topo, &h.id, &h.uplink, &h.mac, (h.vcpus, h.memory_mib)),
            |t, _| t.hosts.get(&h.id).map(|host| convert::host(t, hub, host)),
        )?;
        info!(host = %h.id, mac = %h.mac, "host created");
        Ok(Response::new(host.ok_or_else(|| wrote_nothing("host"))?))
    }

    async fn list_hosts(&self, _: Request<v1::ListHostsRequest>) -> Reply<v1::ListHostsResponse> {
        let hosts = self.store.read(|t| {
            t.hosts
                .values()
                .map(|h| convert::host(t, &self.rules, h))
                .collect()
        });
        Ok(Response::new(v1::ListHostsResponse { hosts }))
    }

    async fn delete_host(&self, req: Request<v1::DeleteHostRequest>) -> Reply<v1::Empty> {
        let id = req.into_inner().id;
        self.store.write(|v| mutate::delete_host(v.topo, &id))?;
        info!(host = %id, "host deleted");
        Ok(Response::new(v1::Empty {}))
    }

    async fn create_tenant(&self, req: Request<v1::CreateTenantRequest>) -> Reply<v1::Tenant> {
        let name = req.into_inner().name;
        self.store.write(|v| mutate::create_tenant(v.topo, &name))?;
        info!(tenant = %name, "tenant created");
        Ok(Response::new(v1::Tenant {
            name,
            network_count: 0,
        }))
    }

    async fn list_tenants(&self, _: Request<v1::ListTenantsRequest>) -> Reply<v1::ListTenantsResponse> {
        let tenants = self.store.read(|t| {
            t.tenants
                .keys()
                .map(|name| v1::Tenant {
                    name: name.clone(),
                    network_count: t.net_ids.keys().filter(|(tn, _)| tn == name).count() as u32,
                })
                .collect()
        });
        Ok(Response::new(v1::ListTenantsResponse { tenants }))
    }

    async fn delete_tenant(&self, req: Request<v1::DeleteTenantRequest>) -> Reply<v1::Empty> {
        let name = req.into_inner().name;
        self.store.write(|v| mutate::delete_tenant(v.topo, &name))?;
        info!(tenant = %name, "tenant deleted");
        Ok(Response::new(v1::Empty {}))
    }

    async fn create_network(&self, req: Request<v1::CreateNetworkRequest>) -> Reply<v1::Network> {
        let r = req.into_inner();
        let kind = v1::NetworkKind::try_from(r.kind)
            .map_err(|_| invalid(format!("network {}: unknown kind {}", r.name, r.kind)))?;
        let spec = mutate::NetworkSpec {
            tenant: &r.tenant,
            name: &r.name,
            cidr: &r.cidr,
            kind: NetKind::from_wire(kind),
        };
        let network = self.store.write_reply(
            |v| mutate::create_network_of(v.topo, &spec, v.next_net_id),
            |t, ops| match ops.first() {
                Some(Op::Put(Record::Network(net))) => Some(convert::network(t, net)),
                _ => None,
            },
        )?;
        info!(tenant = %r.tenant, network = %r.name, cidr = %r.cidr, kind = spec.kind.name(), "network created");
        Ok(Response::new(network.ok_or_else(|| wrote_nothing("network"))?))
    }

    async fn list_networks(&self, req: Request<v1::ListNetworksRequest>) -> Reply<v1::ListNetworksResponse> {
        let tenant = req.into_inner().tenant;
        let networks = self.store.read(|t| {
            t.net_ids
                .iter()
                .filter(|((tn, _), _)| tenant.is_empty() || *tn == tenant)
                .filter_map(|(_, id)| t.networks.get(id))
                .map(|n| convert::network(t, n))
                .collect()
        });
        Ok(Response::new(v1::ListNetworksResponse { networks }))
    }

    async fn delete_network(&self, req: Request<v1::DeleteNetworkRequest>) -> Reply<v1::Empty> {
        let r = req.into_inner();
        self.store
            .write(|v| mutate::delete_network(v.topo, &r.tenant, &r.name))?;
        info!(tenant = %r.tenant, network = %r.name, "network deleted");
        Ok(Response::new(v1::Empty {}))
    }

    async fn create_port(&self, req: Request<v1::CreatePortRequest>) -> Reply<v1::Port> {
        let r = req.into_inner();
        let spec = port_spec(&r)?;
        let mut ports = self
            .store
            .write_reply(|v| mutate::create_port(v.topo, v.keys, &spec), written_ports)?;
        let port = ports.pop().ok_or_else(|| wrote_nothing("port"))?;
        info!(port = %r.name, host = %r.host, key = %port.key, "port created");
        Ok(Response::new(port))
    }

    async fn create_ports(&self, req: Request<v1::CreatePortsRequest>) -> Reply<v1::ListPortsResponse> {
        let requests = req.into_inner().ports;
        let specs = requests
            .iter()
            .map(port_spec)
            .collect::<Result<Vec<_>, ApiError>>()?;
        let ports = self
            .store
            .write_reply(|v| mutate::create_ports(v.topo, v.keys, &specs), written_ports)?;
        info!(count = ports.len(), "ports created");
        Ok(Response::new(v1::ListPortsResponse { ports }))
    }

    async fn list_ports(&self, req: Request<v1::ListPortsRequest>) -> Reply<v1::ListPortsResponse> {
        let f = req.into_inner();
        let ports = self.store.read(|t| {
            t.ports
                .values()
                .map(|p| convert::port(t, p))
                .filter(|p| f.tenant.is_empty() || p.tenant == f.tenant)
                .filter(|p| f.network.is_empty() || p.network == f.network)
                .filter(|p| f.host.is_empty() || p.host == f.host)
                .collect()
        });
        Ok(Response::new(v1::ListPortsResponse { ports }))
    }

    async fn delete_port(&self, req: Request<v1::DeletePortRequest>) -> Reply<v1::Empty> {
        let name = req.into_inner().name;
        self.store.write(|v| mutate::delete_port(v.topo, &name))?;
        info!(port = %name, "port deleted");
        Ok(Response::new(v1::Empty {}))
    }

    async fn status(&self, _: Request<v1::StatusRequest>) -> Reply<v1::CoordinatorStatus> {
        let (hosts, tenants, networks, ports, host_ids) = self.store.read(|t| {
            let ids: Vec<String> = t.hosts.keys().cloned().collect();
            (
                t.hosts.len(),
                t.tenants.len(),
                t.networks.len(),
                t.ports.len(),
                ids,
            )
        });
        let per_host: Vec<u64> = host_ids
            .iter()
            .map(|h| self.rules.current(h).flow_count() as u64)
            .collect();
        let last = self.rules.last_compile();
        Ok(Response::new(v1::CoordinatorStatus {
            revision: self.store.revision(),
            hosts: hosts as u32,
            tenants: tenants as u32,
            networks: networks as u32,
            ports: ports as u32,
            store_bytes: self.store.size_on_disk(),
            rss_bytes: rss_bytes(),
            flows: per_host.iter().sum(),
            startup_load_micros: self.store.load_micros,
            startup_compile_micros: self.startup_compile.micros,
            last_compile_micros: last.micros,
            last_compile_hosts: last.hosts as u32,
            max_host_flows: per_host.iter().copied().max().unwrap_or(0) as u32,
        }))
    }

    async fn get_rules(&self, req: Request<v1::GetRulesRequest>) -> Reply<v1::HostRules> {
        let host = req.into_inner().host;
        if !self.store.read(|t| t.hosts.contains_key(&host)) {
            return Err(not_found(format!("host {host:?} does not exist")).into());
        }
        let rules = self.rules.current(&host);
        Ok(Response::new(v1::HostRules {
            host,
            version: rules.version,
            flows: rules.sorted().iter().map(convert::flow).collect(),
        }))
    }
}
