//! dclab's command line: topology commands over gRPC, and the local
//! multi-host setup used by demos and tests.

pub mod bench;
pub mod certs;
pub mod client;
pub mod closed_stdout;
pub mod demo;
pub mod doctor;
pub mod examples;
pub mod experiment;
pub mod image;
pub mod lab;
pub mod local;
pub mod output;
pub mod snapshot;
pub mod topology;
pub mod trace;
pub mod verify;

use dclab_runtime::net::{ClientConfig, TlsArgs};

/// How to reach the coordinator: the address given, with the TLS flags;
/// else the local setup's coordinator (`DCLAB_LOCAL_CLUSTER`, default `default`) with its operator
/// certificate, if it is up; else the standard port on this machine. An
/// address given without TLS flags that is a local cluster's gets that
/// cluster's certificates.
pub fn client_config(given: Option<String>, tls: &TlsArgs) -> anyhow::Result<ClientConfig> {
    let default_pki = std::path::Path::new("/etc/dclab/pki");
    let explicit_tls = tls.ca.is_some() || tls.cert.is_some() || tls.pki_dir != default_pki || tls.insecure;
    if !explicit_tls {
        let cluster = match &given {
            None => {
                let name = std::env::var("DCLAB_LOCAL_CLUSTER").unwrap_or_else(|_| "default".into());
                local::Cluster::load(&name)
                    .ok()
                    .filter(|c| c.coordinator_url().is_some())
            }
            Some(url) => local::Cluster::serving(url),
        };
        if let Some(cluster) = cluster {
            return cluster.client_config();
        }
    }
    let nothing_given = given.is_none() && !explicit_tls;
    let url = given.unwrap_or_else(|| "127.0.0.1:7400".to_string());
    let files = tls.files("operator");
    if let Some(f) = &files {
        if !f.ca.exists() && nothing_given {
            let name = std::env::var("DCLAB_LOCAL_CLUSTER").unwrap_or_else(|_| "default".into());
            anyhow::bail!(
                "no coordinator to talk to: no local setup named {name} is up (`ctl local up --hosts 2` \
                 starts one) and {} holds no certificates (for a deployment: --coordinator URL --pki-dir DIR)",
                default_pki.display()
            );
        }
        if !f.ca.exists() {
            anyhow::bail!(
                "cannot read CA certificate {}: point at the deployment's certificates with --pki-dir DIR \
                 (or --ca, --cert and --key), or use --insecure against a plaintext coordinator",
                f.ca.display()
            );
        }
    }
    Ok(ClientConfig::new(url, files.as_ref())?)
}

/// A command that ran and has its own exit code to give (a deviated
/// experiment, a verification that found a leak, a command's exit in a
/// node): main exits with it, after flushing stdout and the traces.
#[derive(Debug)]
pub struct ExitWith(pub u8);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

/// Ok for exit code 0, else an [`ExitWith`] error.
pub fn exit_with(code: i32) -> anyhow::Result<()> {
    match code {
        0 => Ok(()),
        c => Err(ExitWith(u8::try_from(c).unwrap_or(1)).into()),
    }
}

/// One line for a failed call; transport failures name their root cause
/// and what to do about it.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    use std::error::Error;
    match status.source() {
        Some(source)
            if matches!(
                status.code(),
                tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled
            ) =>
        {
            let cause = dclab_runtime::net::root_cause(source);
            anyhow::anyhow!("{}", transport_advice(&cause))
        }
        _ => anyhow::anyhow!("{} ({:?})", status.message(), status.code()),
    }
}

/// What a transport failure means for the user, from its root cause.
fn transport_advice(cause: &str) -> String {
    let lower = cause.to_lowercase();
    if ["certificate", "tls", "handshake", "issuer", "alert"]
        .iter()
        .any(|w| lower.contains(w))
    {
        format!(
            "the coordinator refused this ctl's TLS ({cause}); check the certificates \
             (--pki-dir, or --ca/--cert/--key from the same deployment's CA)"
        )
    } else if lower.contains("connection refused") {
        format!(
            "the coordinator is not listening ({cause}); is it running? (`ctl local up` starts a local one)"
        )
    } else if [
        "stream no longer needed",
        "reset",
        "broken pipe",
        "connection closed",
        "protocol error",
        "goaway",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        format!(
            "the coordinator closed the connection during the call ({cause}); it may be restarting \
             or shutting down: try again, `ctl host ls` shows whether it answers, its log says why"
        )
    } else {
        format!(
            "the coordinator connection failed: {cause}; check the URL scheme and certificates \
             (https with --pki-dir, or http with --insecure on both sides)"
        )
    }
}

#[cfg(test)]
mod transport_advice_tests {
    use super::transport_advice;

    #[test]
    fn each_kind_of_transport_failure_gets_its_own_advice() {
        assert!(transport_advice("stream error received: stream no longer needed")
            .contains("closed the connection during the call"));
        assert!(
            transport_advice("invalid peer certificate: UnknownIssuer").contains("check the certificates")
        );
        assert!(transport_advice("Connection refused (os error 111)").contains("is it running?"));
        assert!(transport_advice("h2 protocol error: http2 error").contains("try again"));
        assert!(transport_advice("something else").contains("check the URL scheme"));
    }
}
