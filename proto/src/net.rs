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
    #[error("bad coordinator address {url:?}: {source}")]
    BadAddress {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("cannot reach the coordinator at {url}: {source}")]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
}

impl ClientConfig {
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig { url: url.into() }
    }

    fn endpoint(&self) -> Result<Endpoint, NetError> {
        let endpoint = Endpoint::from_shared(self.url.clone()).map_err(|source| NetError::BadAddress {
            url: self.url.clone(),
            source,
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
        self.endpoint()?
            .connect()
            .await
            .map_err(|source| NetError::Connect {
                url: self.url.clone(),
                source,
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
