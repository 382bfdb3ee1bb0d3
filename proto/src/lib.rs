//! dclab's wire protocol: generated gRPC code, the error type every service
//! returns, identities from certificates, the one place that builds
//! channels and servers (TLS 1.3 with client certificates), and the checks
//! of what a valid request is (`validate`), shared by coordinator and ctl.

pub mod addr;
pub mod catch_panic;
pub mod codec;
pub mod conn;
pub mod error;
pub mod experiment;
pub mod flows;
pub mod identity;
pub mod logging;
pub mod metrics_http;
pub mod net;
pub mod telemetry;
pub mod tls;
pub mod tunnel;
pub mod units;
pub mod validate;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("dclab.v1");

    /// The compiled dclab.proto, served by the coordinator's reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dclab_descriptor");
}

pub use error::ApiError;
