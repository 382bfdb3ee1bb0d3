//! What dclab's processes need to run and talk: the one place that builds
//! channels and servers (`net`: TLS 1.3 with client certificates, peer
//! identities from certificates, a panic kept to its call), logging and
//! OpenTelemetry traces, the Prometheus endpoint, and the byte-copying both
//! ends of a tunnel share. What the wire says is in `dclab-proto`.

pub mod catch_panic;
pub mod conn;
pub mod identity;
pub mod logging;
pub mod metrics_http;
pub mod net;
pub mod telemetry;
pub mod tls;
pub mod tunnel;
