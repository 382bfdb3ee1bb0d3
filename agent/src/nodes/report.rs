//! `ReportNodes`: what the coordinator knows of this host's nodes.

use std::time::{Duration, Instant};

use dclab_proto::v1::agent_control_client::AgentControlClient;
use dclab_proto::v1::{NodeLeftovers, NodeReport, NodeStatus, PendingHeal};
use dclab_runtime::net::Channel;
use tracing::warn;

const REPORT_EVERY: Duration = Duration::from_secs(10);
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a report said: version, node states, faults awaiting heal.
type Said = (u64, Vec<NodeStatus>, Vec<PendingHeal>);

/// Sends `ReportNodes` when what it says changed, when forced, when
/// removed nodes left processes behind, and at least every `REPORT_EVERY`.
pub struct Reporter {
    client: AgentControlClient<Channel>,
    host_id: String,
    sent: Option<(Said, Instant)>,
    last_error: String,
    /// Leftovers of removed nodes not delivered yet.
    leftovers: Vec<NodeLeftovers>,
}

impl Reporter {
    pub fn new(channel: Channel, host_id: &str) -> Reporter {
        Reporter {
            client: AgentControlClient::new(channel),
            host_id: host_id.to_string(),
            sent: None,
            last_error: String::new(),
            leftovers: Vec::new(),
        }
    }

    /// Leftovers killed when removed nodes stopped, for the next report.
    pub fn add_leftovers(&mut self, leftovers: impl IntoIterator<Item = NodeLeftovers>) {
        self.leftovers.extend(leftovers);
    }

    pub async fn send(
        &mut self,
        version: u64,
        nodes: Vec<NodeStatus>,
        pending: Vec<PendingHeal>,
        force: bool,
    ) {
        let said = (version, nodes, pending);
        let due = force
            || !self.leftovers.is_empty()
            || self
                .sent
                .as_ref()
                .is_none_or(|(before, at)| *before != said || at.elapsed() >= REPORT_EVERY);
        if !due {
            return;
        }
        let report = NodeReport {
            host_id: self.host_id.clone(),
            version,
            nodes: said.1.clone(),
            pending_heals: said.2.clone(),
            leftovers: self.leftovers.clone(),
        };
        let sent = tokio::time::timeout(REPORT_TIMEOUT, self.client.report_nodes(report)).await;
        match sent {
            Ok(Ok(_)) => {
                self.sent = Some((said, Instant::now()));
                self.last_error.clear();
                self.leftovers.clear();
            }
            failed => {
                let error = match failed {
                    Ok(Err(status)) => status.message().to_string(),
                    _ => format!("no answer within {} s", REPORT_TIMEOUT.as_secs()),
                };
                if error != self.last_error {
                    warn!(host = %self.host_id, %error, "cannot report node states; retrying");
                    self.last_error = error;
                }
                self.sent = None;
            }
        }
    }
}
