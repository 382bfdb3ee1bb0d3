//! Every gRPC channel and server in dclab is built here, so transport
//! security and interceptors are applied in one place.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint, Server};

/// How a client reaches the coordinator.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// e.g. `http://127.0.0.1:7400`
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bad coordinator address {url:?}: {cause}; expected a URL like http://127.0.0.1:7400")]
    BadAddress { url: String, cause: String },
    #[error("cannot reach the coordinator at {url}: {cause}")]
    Connect { url: String, cause: String },
}

impl ClientConfig {
    /// `host:port` is taken as `http://host:port`.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        let url = if url.contains("://") {
            url
        } else {
            format!("http://{url}")
        };
        ClientConfig { url }
    }

    fn endpoint(&self) -> Result<Endpoint, NetError> {
        let endpoint = Endpoint::from_shared(self.url.clone()).map_err(|err| NetError::BadAddress {
            url: self.url.clone(),
            cause: root_cause(&err),
        })?;
        Ok(endpoint
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true))
    }

    /// A channel that connects on first use and reconnects by itself.
    pub fn connect_lazy(&self) -> Result<Channel, NetError> {
        Ok(self.endpoint()?.connect_lazy())
    }

    /// Connects now; fails if the coordinator is not there.
    pub async fn connect(&self) -> Result<Channel, NetError> {
        self.endpoint()?.connect().await.map_err(|err| NetError::Connect {
            url: self.url.clone(),
            cause: root_cause(&err),
        })
    }
}

/// The server builder every dclab service starts from.
pub fn server() -> Server {
    Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
}

/// The innermost error's message: transport errors nest several layers
/// that each repeat a generic phrase.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
