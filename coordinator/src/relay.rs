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

/// Calls waiting for their agent under an id: the host asked, and the
/// sender the agent's call is handed to. Tunnels and streamed execs differ
/// only in that sender.
struct Waiting<S> {
    /// The last id given, and the calls waiting.
    inner: Mutex<(u64, ById<S>)>,
}

/// Each waiting call's host and sender, by id.
type ById<S> = HashMap<u64, (String, S)>;

impl<S> Default for Waiting<S> {
    fn default() -> Self {
        Waiting {
            inner: Mutex::new((0, HashMap::new())),
        }
    }
}

impl<S> Waiting<S> {
    fn expect(&self, host: &str, sender: S) -> u64 {
        let mut inner = self.inner.lock();
        inner.0 += 1;
        let id = inner.0;
        inner.1.insert(id, (host.to_string(), sender));
        id
    }

    fn forget(&self, id: u64) {
        self.inner.lock().1.remove(&id);
    }

    fn host_of(&self, id: u64) -> Option<String> {
        self.inner.lock().1.get(&id).map(|(h, _)| h.clone())
    }

    fn take(&self, id: u64) -> Option<S> {
        self.inner.lock().1.remove(&id).map(|(_, tx)| tx)
    }

    fn clear(&self) {
        self.inner.lock().1.clear();
    }
}

/// Tunnels waiting for their agent's end.
#[derive(Default)]
pub struct Tunnels {
    waiting: Waiting<oneshot::Sender<AgentEnd>>,
    /// Cancelled when the coordinator shuts down: every tunnel ends.
    pub(crate) closing: tokio_util::sync::CancellationToken,
}

impl Tunnels {
    /// Ends every tunnel, open or waiting: both ends get UNAVAILABLE.
    pub fn close_all(&self) {
        self.closing.cancel();
        self.waiting.clear();
    }

    pub(crate) fn expect(&self, host: &str) -> (u64, oneshot::Receiver<AgentEnd>) {
        let (tx, rx) = oneshot::channel();
        (self.waiting.expect(host, tx), rx)
    }

    pub(crate) fn forget(&self, id: u64) {
        self.waiting.forget(id);
    }

    /// The host a pending tunnel waits on, for the caller's authorization.
    pub fn host_of(&self, id: u64) -> Option<String> {
        self.waiting.host_of(id)
    }

    pub(crate) fn take(&self, id: u64) -> Option<oneshot::Sender<AgentEnd>> {
        self.waiting.take(id)
    }
}

pub type ExecSink = mpsc::Sender<Vec<u8>>;

/// Streamed execs waiting for their agent's output.
#[derive(Default)]
pub struct ExecStreams {
    waiting: Waiting<ExecSink>,
}

impl ExecStreams {
    pub(crate) fn expect(&self, host: &str) -> (u64, mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = mpsc::channel(EXEC_WINDOW);
        (self.waiting.expect(host, tx), rx)
    }

    pub(crate) fn forget(&self, id: u64) {
        self.waiting.forget(id);
    }

    /// The host a stream waits on, for the caller's authorization.
    pub fn host_of(&self, id: u64) -> Option<String> {
        self.waiting.host_of(id)
    }

    pub fn take(&self, id: u64) -> Option<ExecSink> {
        self.waiting.take(id)
    }
}
