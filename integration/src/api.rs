//! A blocking client of the coordinator for tests.

use std::future::Future;
use std::time::{Duration, Instant};

use dclab_ctl::client::Operator;
use dclab_proto::v1;
use dclab_runtime::net::ClientConfig;
use tokio::runtime::Runtime;

pub struct Api {
    rt: Runtime,
    client: Operator,
}

pub type Client = Operator;

fn applied(h: &v1::Host) -> bool {
    h.connected && h.applied_version == h.desired_version
}

impl Api {
    pub fn connect(config: &ClientConfig) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = rt.block_on(config.connect()).expect("coordinator reachable");
        Api {
            rt,
            client: Operator::new(channel),
        }
    }

    /// Runs one call; returns the reply or the gRPC status.
    pub fn call<T, F: Future<Output = Result<tonic::Response<T>, tonic::Status>>>(
        &self,
        f: impl FnOnce(Client) -> F,
    ) -> Result<T, tonic::Status> {
        self.rt.block_on(f(self.client.clone())).map(|r| r.into_inner())
    }

    pub fn tenant(&self, name: &str) {
        let name = name.to_string();
        self.call(|mut c| async move { c.create_tenant(v1::CreateTenantRequest { name }).await })
            .expect("tenant created");
    }

    pub fn network(&self, tenant: &str, name: &str, cidr: &str) {
        let req = v1::CreateNetworkRequest {
            tenant: tenant.into(),
            name: name.into(),
            cidr: cidr.into(),
            kind: v1::NetworkKind::Rewrite.into(),
        };
        self.call(|mut c| async move { c.create_network(req).await })
            .expect("network created");
    }

    pub fn hosts(&self) -> Vec<v1::Host> {
        self.call(|mut c| async move { c.list_hosts(v1::ListHostsRequest {}).await })
            .unwrap()
            .hosts
    }

    pub fn ports(&self) -> Vec<v1::Port> {
        self.call(|mut c| async move { c.list_ports(v1::ListPortsRequest::default()).await })
            .unwrap()
            .ports
    }

    /// Waits until every agent is connected, has applied its host's latest
    /// rules and has every port of its host attached.
    pub fn wait_converged(&self, timeout: Duration) {
        self.wait_hosts(timeout, |h| applied(h) && h.missing_ports == 0);
    }

    /// Waits until every agent is connected and has applied its host's
    /// latest rules (ports without an interface allowed).
    pub fn wait_applied(&self, timeout: Duration) {
        self.wait_hosts(timeout, applied);
    }

    fn wait_hosts(&self, timeout: Duration, done: impl Fn(&v1::Host) -> bool) {
        let start = Instant::now();
        loop {
            let hosts = self.hosts();
            if !hosts.is_empty() && hosts.iter().all(&done) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "agents did not converge within {timeout:?}: {hosts:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
