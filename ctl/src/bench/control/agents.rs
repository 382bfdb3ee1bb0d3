//! Simulated agents: real gRPC clients (TLS, their own certificates) that
//! register, watch their host's rules and acknowledge every update, without
//! OvS. They report when each acknowledgement completed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dclab_proto::v1::{self, agent_control_client::AgentControlClient};
use dclab_runtime::net::ClientConfig;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// When an agent last finished acknowledging an update.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub at: Instant,
}

#[derive(Default)]
pub struct Board {
    acked: Mutex<HashMap<String, Acked>>,
    pub changed: Notify,
}

impl Board {
    pub fn get(&self, host: &str) -> Option<Acked> {
        self.acked.lock().unwrap().get(host).copied()
    }

    fn record(&self, host: &str, acked: Acked) {
        self.acked.lock().unwrap().insert(host.to_string(), acked);
        self.changed.notify_waiters();
    }
}

pub struct SimAgents {
    pub board: Arc<Board>,
    tasks: JoinSet<()>,
}

impl SimAgents {
    /// Starts one agent per `(host, config)`; each keeps reconnecting.
    pub fn start(agents: Vec<(String, ClientConfig)>) -> SimAgents {
        let board = Arc::new(Board::default());
        let mut tasks = JoinSet::new();
        for (i, (host, config)) in agents.into_iter().enumerate() {
            let board = board.clone();
            let mac = super::plan::port_mac(0xa000_0000 + i).replacen("02:d0", "0a:d0", 1);
            tasks.spawn(async move {
                loop {
                    let _ = run_once(&config, &host, &mac, &board).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
        SimAgents { board, tasks }
    }

    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

async fn run_once(config: &ClientConfig, host: &str, mac: &str, board: &Board) -> Result<(), tonic::Status> {
    let channel = config
        .connect_lazy()
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = AgentControlClient::new(channel).max_decoding_message_size(512 << 20);
    let register = v1::RegisterRequest {
        host_id: host.to_string(),
        uplink: "up0".into(),
        mac: mac.to_string(),
        ..Default::default()
    };
    client.register(register).await?;
    let mut stream = client
        .watch_rules(v1::WatchRulesRequest {
            host_id: host.to_string(),
        })
        .await?
        .into_inner();
    let mut flows: u64 = 0;
    while let Some(update) = stream.message().await? {
        if update.full {
            flows = 0;
        }
        flows = (flows + update.added.len() as u64).saturating_sub(update.removed.len() as u64);
        let ack = v1::AckRequest {
            host_id: host.to_string(),
            version: update.version,
            flow_count: flows as u32,
            missing_ports: 0,
        };
        client.ack(ack).await?;
        board.record(host, Acked { at: Instant::now() });
    }
    Ok(())
}
