//! The few coordinator calls the local setup makes. The cluster API is
//! blocking (tests and the CLI both use it), so each call runs on a
//! short-lived thread with its own runtime: that works whether or not the
//! caller is already inside a tokio runtime.

use std::future::Future;

use anyhow::Context;
use dclab_proto::v1::{CreatePortRequest, DeletePortRequest, Host, ListHostsRequest, PortKind};
use dclab_runtime::net::ClientConfig;

use crate::client::Operator;

use super::state::{InstanceKind, InstanceState};

pub(super) fn block_on<T: Send + 'static>(
    fut: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build a tokio runtime")?
            .block_on(fut)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("gRPC helper thread panicked"))?
}

pub(super) async fn client(config: ClientConfig) -> anyhow::Result<Operator> {
    let channel = config.connect().await?;
    Ok(Operator::new(channel))
}

pub fn list_hosts(config: &ClientConfig) -> anyhow::Result<Vec<Host>> {
    let url = config.clone();
    block_on(async move {
        let reply = client(url).await?.list_hosts(ListHostsRequest {}).await?;
        Ok(reply.into_inner().hosts)
    })
}

pub fn create_port(config: &ClientConfig, instance: &InstanceState) -> anyhow::Result<()> {
    let url = config.clone();
    let kind = match instance.kind {
        InstanceKind::Vm => PortKind::Vm,
        InstanceKind::Router => PortKind::Router,
    };
    let request = CreatePortRequest {
        name: instance.name.clone(),
        tenant: instance.tenant.clone(),
        network: instance.network.clone(),
        host: instance.host.clone(),
        mac: instance.mac.clone(),
        ip: ip_without_prefix(&instance.ip).to_string(),
        kind: kind as i32,
    };
    block_on(async move {
        client(url)
            .await?
            .create_port(request)
            .await
            .map_err(|status| anyhow::anyhow!("coordinator refused the port: {}", status.message()))?;
        Ok(())
    })
}

pub fn delete_port(config: &ClientConfig, name: &str) -> anyhow::Result<()> {
    let url = config.clone();
    let request = DeletePortRequest {
        name: name.to_string(),
    };
    block_on(async move {
        client(url)
            .await?
            .delete_port(request)
            .await
            .map_err(|status| anyhow::anyhow!("coordinator cannot delete the port: {}", status.message()))?;
        Ok(())
    })
}

pub fn ip_without_prefix(ip: &str) -> &str {
    ip.split('/').next().unwrap_or(ip)
}
