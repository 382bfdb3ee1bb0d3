//! The calls waiting for an agent to call back: tunnels to lab nodes
//! (Tunnel, then the agent's TunnelBack) and streamed execs (ExecNodeStream,
//! then the agent's StreamExecOutput), each under an id the operation
//! carries. The services splice the two ends (`service/tunnel.rs`,
//! `service/exec_stream.rs`); these are the registries they meet in.

use std::collections::HashMap;

use dclab_proto::v1::TunnelData;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tonic::{Status, Streaming};

/// Exec output messages in flight per hop (each one read of the output,
/// 64 KiB at most).
pub const EXEC_WINDOW: usize = 8;

/// The agent's end of a tunnel: what it sends, and where to send to it.
pub type AgentEnd = (Streaming<TunnelData>, mpsc::Sender<Result<TunnelData, Status>>);

/// Tunnels waiting for their agent: the host asked, and where to hand
/// the agent's end.
type Waiting = HashMap<u64, (String, oneshot::Sender<AgentEnd>)>;

#[derive(Default)]
pub struct Tunnels {
    /// The last id given, and the tunnels waiting.
    inner: Mutex<(u64, Waiting)>,
    /// Cancelled when the coordinator shuts down: every tunnel ends.
    pub(crate) closing: tokio_util::sync::CancellationToken,
}

impl Tunnels {
    /// Ends every tunnel, open or waiting: both ends get UNAVAILABLE.
    pub fn close_all(&self) {
        self.closing.cancel();
        self.inner.lock().1.clear();
    }

    pub(crate) fn expect(&self, host: &str) -> (u64, oneshot::Receiver<AgentEnd>) {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.inner.lock();
        inner.0 += 1;
        let id = inner.0;
        inner.1.insert(id, (host.to_string(), tx));
        (id, rx)
    }

    pub(crate) fn forget(&self, id: u64) {
        self.inner.lock().1.remove(&id);
    }

    /// The host a pending tunnel waits on, for the caller's authorization.
    pub fn host_of(&self, id: u64) -> Option<String> {
        self.inner.lock().1.get(&id).map(|(h, _)| h.clone())
    }

    pub(crate) fn take(&self, id: u64) -> Option<oneshot::Sender<AgentEnd>> {
        self.inner.lock().1.remove(&id).map(|(_, tx)| tx)
    }
}

pub type ExecSink = mpsc::Sender<Vec<u8>>;

/// Streams waiting for their agent: the host asked, and where the output goes.
type ExecWaiting = HashMap<u64, (String, ExecSink)>;

/// The last stream id given, and the streams waiting.
#[derive(Default)]
pub struct ExecStreams {
    inner: Mutex<(u64, ExecWaiting)>,
}

impl ExecStreams {
    pub(crate) fn expect(&self, host: &str) -> (u64, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(EXEC_WINDOW);
        let mut inner = self.inner.lock();
        inner.0 += 1;
        let id = inner.0;
        inner.1.insert(id, (host.to_string(), tx));
        (id, rx)
    }

    pub(crate) fn forget(&self, id: u64) {
        self.inner.lock().1.remove(&id);
    }

    /// The host a stream waits on, for the caller's authorization.
    pub fn host_of(&self, id: u64) -> Option<String> {
        self.inner.lock().1.get(&id).map(|(h, _)| h.clone())
    }

    pub fn take(&self, id: u64) -> Option<ExecSink> {
        self.inner.lock().1.remove(&id).map(|(_, tx)| tx)
    }
}
