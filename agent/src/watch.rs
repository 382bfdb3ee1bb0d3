//! Registration and the rule watch: keeps a `watch` channel holding the
//! desired flows, reconnecting with backoff whenever the stream drops.

use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::{RegisterRequest, WatchRulesRequest};
use dclab_runtime::net::Channel;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::desired::Desired;
use crate::retry::with_backoff;

pub struct Registration {
    pub host_id: String,
    pub uplink: String,
    pub mac: String,
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// Runs until `stop`: register, watch, apply updates to `desired`; on any
/// failure wait and start again. `desired` stays None until the first full
/// state arrives, so nothing is flushed while the coordinator is away.
pub async fn run(
    channel: Channel,
    reg: Registration,
    desired: watch::Sender<Option<Desired>>,
    stop: CancellationToken,
) {
    // No progress is told: the rule watch's waits stay at the cap once
    // there (as they always were).
    let attempt = |_| watch_once(channel.clone(), &reg, &desired);
    let ended = |watched: Result<(), tonic::Status>| match watched {
        Ok(()) => warn!(host = %reg.host_id, "rule watch ended by the coordinator, reconnecting"),
        Err(status) => {
            warn!(host = %reg.host_id, error = %status.message(), "rule watch failed, retrying")
        }
    };
    with_backoff(&stop, attempt, ended).await;
}

async fn watch_once(
    channel: Channel,
    reg: &Registration,
    desired: &watch::Sender<Option<Desired>>,
) -> Result<(), tonic::Status> {
    let mut client = AgentControlClient::new(channel).max_decoding_message_size(256 << 20);
    client
        .register(RegisterRequest {
            host_id: reg.host_id.clone(),
            uplink: reg.uplink.clone(),
            mac: reg.mac.clone(),
            vcpus: reg.vcpus,
            memory_mib: reg.memory_mib,
        })
        .await?;
    let mut stream = client
        .watch_rules(WatchRulesRequest {
            host_id: reg.host_id.clone(),
        })
        .await?
        .into_inner();
    info!(host = %reg.host_id, "registered, watching rules");
    while let Some(update) = stream.message().await? {
        let full = update.full;
        if !full && desired.borrow().is_none() {
            return Err(tonic::Status::data_loss("delta before full state"));
        }
        desired.send_modify(|d| d.get_or_insert_with(Desired::default).apply(update));
        let d = desired.borrow();
        let d = d.as_ref().expect("just set");
        info!(host = %reg.host_id, version = d.version, flows = d.flows.len(), full, "rules received");
    }
    Ok(())
}
