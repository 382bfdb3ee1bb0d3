//! Server connections: TCP, optionally wrapped in TLS, each carrying what
//! the server knows of its peer into every request (`PeerInfo`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tracing::warn;

use crate::identity::{identity_of, PeerAuth, PeerInfo};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes under way at once. Beyond it the server stops accepting
/// until one ends (the kernel's listen queue holds the rest), so a flood
/// of connections that never finish the handshake holds at most this many
/// tasks and sockets, and a herd of agents reconnecting at once is served
/// in turn rather than turned away.
pub const MAX_HANDSHAKES: usize = 256;
/// Connections whose peer showed no certificate of the deployment: they
/// may stay to be told why each call is refused, but only this many.
pub const MAX_UNAUTHENTICATED: usize = 64;

pub struct Conn {
    io: Io,
    info: PeerInfo,
    /// Held while an unauthenticated connection lives.
    _slot: Option<OwnedSemaphorePermit>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

/// Accepts connections on `listener`; with `tls`, completes each handshake
/// in its own task (a slow client never stalls the others) and logs
/// refusals. Handshakes under way and connections without a certificate
/// of the deployment are each limited (MAX_HANDSHAKES, MAX_UNAUTHENTICATED).
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> ReceiverStream<Result<Conn, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let unauthenticated = Arc::new(Semaphore::new(MAX_UNAUTHENTICATED));
    tokio::spawn(async move {
        loop {
            let Ok(handshake_slot) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let (tcp, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(config) = tls.clone() else {
                let conn = Conn {
                    io: Io::Plain(tcp),
                    info: PeerInfo {
                        addr: Some(addr),
                        auth: PeerAuth::Insecure,
                    },
                    _slot: None,
                };
                if tx.send(Ok(conn)).await.is_err() {
                    return;
                }
                continue;
            };
            let (tx, unauthenticated) = (tx.clone(), unauthenticated.clone());
            tokio::spawn(async move {
                let handshake = TlsAcceptor::from(config).accept(tcp);
                let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
                drop(handshake_slot);
                match done {
                    Ok(Ok(stream)) => {
                        let auth = peer_auth(&stream);
                        let slot = match auth {
                            PeerAuth::Identified(_) => None,
                            _ => match unauthenticated.try_acquire_owned() {
                                Ok(slot) => Some(slot),
                                Err(_) => {
                                    warn!(peer = %addr, "connection without a deployment certificate closed: {MAX_UNAUTHENTICATED} are open already");
                                    return;
                                }
                            },
                        };
                        let info = PeerInfo {
                            addr: Some(addr),
                            auth,
                        };
                        let conn = Conn {
                            io: Io::Tls(Box::new(stream)),
                            info,
                            _slot: slot,
                        };
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(err)) => warn!(peer = %addr, error = %err, "TLS handshake refused"),
                    Err(_) => warn!(peer = %addr, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn peer_auth(stream: &TlsStream<TcpStream>) -> PeerAuth {
    match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        None => PeerAuth::Anonymous,
        Some(cert) => match identity_of(cert) {
            Ok(id) => PeerAuth::Identified(id),
            Err(why) => PeerAuth::Unrecognized(why),
        },
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
