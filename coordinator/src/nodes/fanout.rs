//! "Send to every host and wait": one operation per host, all issued at
//! once, every answer awaited. Fault apply and heal and each snapshot phase
//! go through here.

use std::time::{Duration, Instant};

use dclab_proto::v1;
use dclab_proto::ApiError;
use futures::future::join_all;

use super::hub::NodeHub;

/// One host's answer to its operation.
pub struct HostAnswer {
    pub host: String,
    /// From issuing the operation to its answer: the agent's own time plus
    /// both trips.
    pub micros: u64,
    pub result: Result<v1::OperationResult, ApiError>,
}

impl NodeHub {
    /// Sends each host its operation at once and waits for every answer
    /// (each at most `timeout`).
    pub async fn run_on_each(
        &self,
        ops: impl IntoIterator<Item = (String, v1::Operation)>,
        timeout: Duration,
    ) -> Vec<HostAnswer> {
        let runs = ops.into_iter().map(|(host, op)| async move {
            let issued = Instant::now();
            let result = self.run(&host, op, timeout).await;
            HostAnswer {
                micros: issued.elapsed().as_micros() as u64,
                host,
                result,
            }
        });
        join_all(runs).await
    }
}

/// The hosts that did not do what they were sent: "host H: why" each,
/// shown joined by "; ".
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct HostsFailed(pub Vec<String>);

/// Ok when every host did it; else why not, per host. `unreachable`
/// follows the why of a host whose answer never came (e.g. what happens to
/// it then).
pub fn all_done(answers: &[HostAnswer], unreachable: &str) -> Result<(), HostsFailed> {
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|a| match &a.result {
            Ok(r) if r.ok => None,
            Ok(r) => Some(format!("host {}: {}", a.host, r.error)),
            Err(e) => Some(format!("host {}: {e}{unreachable}", a.host)),
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(HostsFailed(failed))
    }
}
