//! dclab's command line: topology commands over gRPC, and the local
//! multi-host setup used by demos and tests.

pub mod demo;
pub mod local;
pub mod output;
pub mod topology;

/// The coordinator to talk to: the one given, else the default local
/// setup's if it is up, else the standard port on this machine.
pub fn coordinator_url(given: Option<String>) -> String {
    given
        .or_else(|| {
            let cluster = local::Cluster::load("default").ok()?;
            cluster.coordinator_url().map(str::to_string)
        })
        .unwrap_or_else(|| "http://127.0.0.1:7400".to_string())
}
