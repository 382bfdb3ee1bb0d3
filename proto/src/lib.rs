//! dclab's wire protocol: generated gRPC code, the error type every service
//! returns, and the one place that builds channels and servers.

pub mod error;
pub mod net;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("dclab.v1");
}

pub use error::ApiError;
