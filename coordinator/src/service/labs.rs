//! The Labs service: labs planned, applied, listed and deleted, their
//! snapshots, and commands run in their nodes. The work is in `lab/`.

use std::sync::Arc;

use dclab_proto::error::invalid;
use dclab_proto::v1::{self, labs_server::Labs as LabsApi};
use dclab_proto::ApiError;
use tonic::{Request, Response, Status};

use crate::lab::{calls as labs, Labs};
use crate::mutate;
use crate::placement::{self, Capacity, Demand, Together};
use crate::relay::ExecStreams;

pub struct LabsService {
    pub labs: Labs,
    pub exec_streams: Arc<ExecStreams>,
}

type Reply<T> = Result<Response<T>, Status>;

/// A node's needs, checked: a plain unique-enough name, at least one vCPU
/// and some memory.
fn demand(n: &v1::NodeDemand) -> Result<Demand, ApiError> {
    mutate::check_name("node", &n.name)?;
    if n.vcpus == 0 || n.memory_mib == 0 {
        return Err(invalid(format!(
            "node {} needs at least one vCPU and some memory",
            n.name
        )));
    }
    Ok(Demand {
        node: n.name.clone(),
        vcpus: n.vcpus,
        memory_mib: n.memory_mib,
        pin: (!n.host.is_empty()).then(|| n.host.clone()),
    })
}

/// The nodes of each switch network the demands name, to place together.
fn switch_groups(nodes: &[v1::NodeDemand]) -> Result<Vec<Together>, ApiError> {
    let mut groups: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for n in nodes {
        for net in &n.switch_networks {
            mutate::check_name("network", net)?;
            groups.entry(net).or_default().push(n.name.clone());
        }
    }
    let groups = groups.into_iter().map(|(network, nodes)| Together {
        network: network.to_string(),
        nodes,
        placed: vec![],
    });
    Ok(groups.collect())
}

#[tonic::async_trait]
impl LabsApi for LabsService {
    async fn plan_lab(&self, req: Request<v1::PlanLabRequest>) -> Reply<v1::LabPlan> {
        let r = req.into_inner();
        let demands = r.nodes.iter().map(demand).collect::<Result<Vec<_>, ApiError>>()?;
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = demands.iter().find(|d| !seen.insert(&d.node)) {
            return Err(invalid(format!("node {} appears twice in lab {}", twice.node, r.lab)).into());
        }
        let hosts = self.labs.store.read(|t| {
            t.hosts
                .values()
                .filter(|h| h.vcpus > 0 && h.memory_mib > 0)
                .map(|h| Capacity {
                    host: h.id.clone(),
                    vcpus: h.vcpus,
                    memory_mib: h.memory_mib,
                })
                .collect::<Vec<_>>()
        });
        let together = switch_groups(&r.nodes)?;
        let placed = placement::place_together(&demands, &hosts, &together)
            .map_err(|e| e.context(&format!("lab {}", r.lab)))?;
        let placements = r
            .nodes
            .iter()
            .map(|n| {
                let host = placed.get(&n.name).cloned();
                let host =
                    host.ok_or_else(|| ApiError::Internal(format!("node {} was not placed", n.name)))?;
                Ok(v1::Placement {
                    node: n.name.clone(),
                    host,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Response::new(v1::LabPlan { placements }))
    }

    async fn apply_lab(&self, req: Request<v1::ApplyLabRequest>) -> Reply<v1::Lab> {
        Ok(Response::new(labs::apply_lab(&self.labs, req.into_inner())?))
    }

    async fn delete_lab(&self, req: Request<v1::DeleteLabRequest>) -> Reply<v1::DeleteLabResponse> {
        let name = req.into_inner().name;
        Ok(Response::new(labs::delete_lab(&self.labs, &name).await?))
    }

    async fn list_labs(&self, _req: Request<v1::ListLabsRequest>) -> Reply<v1::ListLabsResponse> {
        Ok(Response::new(labs::list_labs(&self.labs)))
    }

    async fn get_lab(&self, req: Request<v1::GetLabRequest>) -> Reply<v1::Lab> {
        Ok(Response::new(labs::get_lab(&self.labs, &req.into_inner().name)?))
    }

    async fn create_snapshot(&self, req: Request<v1::SnapshotRequest>) -> Reply<v1::Snapshot> {
        Ok(Response::new(
            labs::create_snapshot(&self.labs, req.into_inner()).await?,
        ))
    }

    async fn restore_snapshot(&self, req: Request<v1::SnapshotRequest>) -> Reply<v1::Snapshot> {
        Ok(Response::new(
            labs::restore_snapshot(&self.labs, req.into_inner()).await?,
        ))
    }

    async fn delete_snapshot(&self, req: Request<v1::SnapshotRequest>) -> Reply<v1::Empty> {
        labs::delete_snapshot(&self.labs, req.into_inner()).await?;
        Ok(Response::new(v1::Empty {}))
    }

    async fn list_snapshots(
        &self,
        req: Request<v1::ListSnapshotsRequest>,
    ) -> Reply<v1::ListSnapshotsResponse> {
        Ok(Response::new(labs::list_snapshots(
            &self.labs,
            &req.into_inner().lab,
        )))
    }

    async fn exec_node(&self, req: Request<v1::ExecNodeRequest>) -> Reply<v1::ExecNodeResponse> {
        Ok(Response::new(labs::exec(&self.labs, req.into_inner()).await?))
    }

    type ExecNodeStreamStream = super::exec_stream::ExecStream;

    async fn exec_node_stream(&self, req: Request<v1::ExecNodeRequest>) -> Reply<Self::ExecNodeStreamStream> {
        Ok(Response::new(
            super::exec_stream::start(&self.labs, self.exec_streams.clone(), req.into_inner()).await?,
        ))
    }
}
