//! A ready dclab cluster with the paper's six instances, for tests that
//! need traffic between tenants and hosts.

use std::ops::{Deref, DerefMut};

pub use dclab_ctl::local::ping_counts;

use crate::api::Api;
use crate::paper::{self, Plan, DISTINCT};
use crate::{cluster, ClusterGuard};

pub struct World {
    pub cluster: ClusterGuard,
    pub api: Api,
    pub plan: Plan,
}

impl World {
    /// Three hosts, tenants a (vm1-vm4) and b (vm5-vm6), rules converged.
    pub fn paper(prefix: &str) -> World {
        World::with_plan(prefix, DISTINCT)
    }

    /// The paper's three hosts and tenants with the instances of `plan`
    /// (e.g. `paper::OVERLAPPING`), rules converged.
    pub fn with_plan(prefix: &str, plan: Plan) -> World {
        let mut cluster = cluster(prefix, 3, false);
        let api = Api::connect(&cluster.client_config().expect("dclab mode"));
        build(&mut cluster, Some(&api), &plan);
        World { cluster, api, plan }
    }

    pub fn ns(&self, instance: &str) -> String {
        self.cluster.instance_netns(instance)
    }

    pub fn mac(&self, instance: &str) -> String {
        self.cluster.instance(instance).unwrap().mac.to_lowercase()
    }

    /// Runs a command in an instance; returns (success, stdout).
    pub fn run(&self, instance: &str, argv: &[&str]) -> (bool, String) {
        let out = self.cluster.exec(&self.ns(instance), argv).expect("command runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Instances other than `name`.
    pub fn others(&self, name: &str) -> Vec<&'static str> {
        self.plan.iter().map(|p| p.0).filter(|n| *n != name).collect()
    }
}

impl Deref for World {
    type Target = ClusterGuard;
    fn deref(&self) -> &ClusterGuard {
        &self.cluster
    }
}

impl DerefMut for World {
    fn deref_mut(&mut self) -> &mut ClusterGuard {
        &mut self.cluster
    }
}

/// Creates the paper's tenants and networks (dclab mode: `api`) and the
/// instances of `plan`, and waits until the agents have applied it all.
pub fn build(cluster: &mut ClusterGuard, api: Option<&Api>, plan: &Plan) {
    if let Some(api) = api {
        for tenant in paper::TENANTS {
            api.tenant(tenant);
            api.network(tenant, "net", paper::CIDR);
        }
    }
    paper::add_instances(cluster, plan).expect("instances added");
    if let Some(api) = api {
        api.wait_converged(std::time::Duration::from_secs(30));
    }
}
