//! Every gRPC channel and server in dclab is built here, so transport
//! security and interceptors are applied in one place.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Endpoint, Server, Uri};
use tracing::warn;

use crate::conn;
use crate::tls::{self, TlsError, TlsFiles};

/// How a client reaches the coordinator.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// e.g. `https://127.0.0.1:7400`
    pub url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bad coordinator address {url:?}: {cause}; expected a URL like https://127.0.0.1:7400")]
    BadAddress { url: String, cause: String },
    #[error("cannot reach the coordinator at {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The transport flags every binary takes.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// Use plaintext gRPC with no authentication. Whoever reaches the
    /// coordinator then controls every tenant's network: for tests only.
    #[arg(long, global = true, env = "DCLAB_INSECURE")]
    pub insecure: bool,
    /// Directory holding the deployment's certificates (see `ctl certs init`).
    #[arg(long, global = true, env = "DCLAB_PKI_DIR", default_value = "/etc/dclab/pki")]
    pub pki_dir: PathBuf,
    /// CA certificate [default: PKI_DIR/ca.crt]
    #[arg(long, global = true, env = "DCLAB_CA")]
    pub ca: Option<PathBuf>,
    /// This process's certificate [default: PKI_DIR/<role file>.crt]
    #[arg(long, global = true, env = "DCLAB_CERT")]
    pub cert: Option<PathBuf>,
    /// This process's private key [default: PKI_DIR/<role file>.key]
    #[arg(long, global = true, env = "DCLAB_KEY")]
    pub key: Option<PathBuf>,
}

impl TlsArgs {
    /// The files to use, `stem` naming the default certificate (e.g.
    /// `coordinator`, `agent-h1`); None with --insecure.
    pub fn files(&self, stem: &str) -> Option<TlsFiles> {
        if self.insecure {
            warn!("--insecure: gRPC runs in plaintext without authentication; anyone who can reach it controls every tenant's network");
            return None;
        }
        let cert = self
            .cert
            .clone()
            .unwrap_or_else(|| self.pki_dir.join(format!("{stem}.crt")));
        let key = self
            .key
            .clone()
            .unwrap_or_else(|| self.pki_dir.join(format!("{stem}.key")));
        Some(TlsFiles {
            ca: self.ca.clone().unwrap_or_else(|| self.pki_dir.join("ca.crt")),
            identity: Some((cert, key)),
        })
    }
}

impl ClientConfig {
    /// Plaintext; `host:port` is taken as `http://host:port`.
    pub fn insecure(url: impl Into<String>) -> Self {
        ClientConfig {
            url: with_scheme(url.into(), "http"),
            tls: None,
        }
    }

    /// TLS with `files`, or plaintext when None.
    pub fn new(url: impl Into<String>, files: Option<&TlsFiles>) -> Result<Self, NetError> {
        let Some(files) = files else {
            return Ok(ClientConfig::insecure(url));
        };
        Ok(ClientConfig {
            url: with_scheme(url.into(), "https"),
            tls: Some(tls::client_config(files)?),
        })
    }

    fn endpoint(&self) -> Result<Endpoint, NetError> {
        let bad = |cause: String| NetError::BadAddress {
            url: self.url.clone(),
            cause,
        };
        // TLS is done by our connector, so tonic itself always sees http.
        let plain = self.url.replacen("https://", "http://", 1);
        let endpoint = Endpoint::from_shared(plain).map_err(|e| bad(root_cause(&e)))?;
        if endpoint.uri().host().is_none() {
            return Err(bad("no host".into()));
        }
        Ok(endpoint
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true))
    }

    /// A channel that connects on first use and reconnects by itself.
    pub fn connect_lazy(&self) -> Result<Channel, NetError> {
        let endpoint = self.endpoint()?;
        let channel = match &self.tls {
            None => endpoint.connect_lazy(),
            Some(tls) => endpoint.connect_with_connector_lazy(connector(tls.clone())),
        };
        Ok(InterceptedService::new(channel, TraceContext))
    }

    /// Connects now; fails if the coordinator is not there.
    pub async fn connect(&self) -> Result<Channel, NetError> {
        let endpoint = self.endpoint()?;
        let result = match &self.tls {
            None => endpoint.connect().await,
            Some(tls) => endpoint.connect_with_connector(connector(tls.clone())).await,
        };
        let channel = result.map_err(|err| NetError::Connect {
            url: self.url.clone(),
            cause: root_cause(&err),
        })?;
        Ok(InterceptedService::new(channel, TraceContext))
    }
}

/// A client channel whose calls carry the caller's trace context.
pub type Channel = InterceptedService<tonic::transport::Channel, TraceContext>;

/// Adds the current span's W3C `traceparent` to every call, so the
/// server's span joins the caller's trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContext;

impl tonic::service::Interceptor for TraceContext {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let traceparent = crate::telemetry::current_traceparent();
        if let Ok(value) = traceparent.parse() {
            if !traceparent.is_empty() {
                req.metadata_mut().insert("traceparent", value);
            }
        }
        Ok(req)
    }
}

fn with_scheme(url: String, scheme: &str) -> String {
    if url.contains("://") {
        url
    } else {
        format!("{scheme}://{url}")
    }
}

type TlsIo = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

/// TCP + TLS to the URI's host, verifying the server against the CA.
fn connector(
    tls: Arc<rustls::ClientConfig>,
) -> impl tower::Service<Uri, Response = TlsIo, Error = std::io::Error, Future: Send> + Clone + Send {
    tower::service_fn(move |uri: Uri| {
        let tls = tls.clone();
        async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_string();
            let port = uri.port_u16().unwrap_or(7400);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        }
    })
}

/// The server every dclab service starts from, with each call's panic kept
/// to that call.
pub type ServerBuilder =
    Server<tower::layer::util::Stack<crate::catch_panic::CatchPanicLayer, tower::layer::util::Identity>>;

/// The server builder every dclab service starts from.
pub fn server() -> ServerBuilder {
    Server::builder()
        // Operators' calls are traced; agents' periodic reports only at debug.
        .trace_fn(|req| {
            let path = req.uri().path();
            let operators = path.starts_with("/dclab.v1.") && !path.starts_with("/dclab.v1.AgentControl/");
            let span = if operators {
                tracing::info_span!("rpc", path = %path)
            } else {
                tracing::debug_span!("rpc", path = %path)
            };
            if let Some(parent) = req.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
                crate::telemetry::adopt(&span, parent);
            }
            span
        })
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
        .layer(crate::catch_panic::CatchPanicLayer)
}

/// Connections for a server: TLS with `files`, plaintext when None.
pub fn incoming(
    listener: TcpListener,
    files: Option<&TlsFiles>,
) -> Result<tokio_stream::wrappers::ReceiverStream<Result<conn::Conn, std::io::Error>>, TlsError> {
    let tls = files.map(tls::server_config).transpose()?;
    Ok(conn::incoming(listener, tls))
}

/// The innermost error's message: transport errors nest several layers
/// that each repeat a generic phrase.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Resolves on SIGTERM or Ctrl-C: the daemons' cue to stop serving.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
