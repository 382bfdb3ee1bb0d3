//! The isolation test of DCPortalsNG (paper section 4.4): three hosts, two
//! tenants, six instances in 10.0.0.0/24, `fping -g` from every instance and
//! ICMP captured at every instance.

use std::collections::BTreeMap;

use super::capture::{src_mac, Capture};
use crate::local::{Cluster, InstanceSpec};

/// (instance, host, tenant, address)
pub type Plan = [(&'static str, &'static str, &'static str, &'static str); 6];

/// The paper's layout: tenant a has vm1-vm4, tenant b vm5-vm6, spread over
/// three hosts, every address distinct.
pub const DISTINCT: Plan = [
    ("vm1", "h1", "a", "10.0.0.1"),
    ("vm2", "h2", "a", "10.0.0.2"),
    ("vm3", "h3", "a", "10.0.0.3"),
    ("vm4", "h1", "a", "10.0.0.4"),
    ("vm5", "h2", "b", "10.0.0.5"),
    ("vm6", "h3", "b", "10.0.0.6"),
];

/// The same, with tenant b reusing tenant a's addresses 10.0.0.1 and .2.
pub const OVERLAPPING: Plan = [
    ("vm1", "h1", "a", "10.0.0.1"),
    ("vm2", "h2", "a", "10.0.0.2"),
    ("vm3", "h3", "a", "10.0.0.3"),
    ("vm4", "h1", "a", "10.0.0.4"),
    ("vm5", "h2", "b", "10.0.0.1"),
    ("vm6", "h3", "b", "10.0.0.2"),
];

/// Received-by matrix: rows are senders, columns receivers.
pub type Matrix = Vec<Vec<bool>>;

/// The tenants of every plan, each with network `net` on this CIDR.
pub const TENANTS: [&str; 2] = ["a", "b"];
pub const CIDR: &str = "10.0.0.0/24";

/// Creates the instances of `plan`; in dclab mode the tenants and networks
/// must exist.
pub fn add_instances(cluster: &mut Cluster, plan: &Plan) -> anyhow::Result<()> {
    for (name, host, tenant, ip) in plan {
        let spec = InstanceSpec::vm(name, host, tenant, "net", &format!("{ip}/24"));
        cluster.add_instance(&spec)?;
    }
    Ok(())
}

/// Runs `fping -g 10.0.0.0/24` from every instance at once, capturing ICMP
/// echo requests at every instance; returns who received whose.
pub fn fping_matrix(cluster: &Cluster, plan: &Plan) -> anyhow::Result<Matrix> {
    let macs: BTreeMap<String, usize> = plan
        .iter()
        .enumerate()
        .map(|(i, (name, ..))| (cluster.instance(name).unwrap().mac.to_lowercase(), i))
        .collect();
    let captures: Vec<Capture> = plan
        .iter()
        .map(|(name, ..)| {
            let netns = cluster.instance_netns(name);
            Capture::start(
                cluster,
                &netns,
                "eth0",
                &["-Q", "in", "icmp[icmptype] == icmp-echo"],
            )
        })
        .collect();
    let pings: Vec<_> = plan
        .iter()
        .map(|(name, ..)| {
            // Retries cover ARP answered late on a loaded machine (plain OvS floods it).
            let argv = ["fping", "-q", "-r", "2", "-t", "500", "-g", "10.0.0.0/24"];
            cluster
                .spawn_in(&cluster.instance_netns(name), &argv)
                .expect("fping starts")
        })
        .collect();
    for mut ping in pings {
        ping.wait().expect("fping ran");
    }
    let mut matrix = vec![vec![false; plan.len()]; plan.len()];
    for (receiver, capture) in captures.into_iter().enumerate() {
        for line in capture.stop() {
            if let Some(&sender) = src_mac(&line).and_then(|mac| macs.get(mac)) {
                matrix[sender][receiver] = true;
            }
        }
    }
    Ok(matrix)
}

/// Paper Table 4: each instance reaches exactly the other instances of its
/// own tenant's network.
pub fn table4(plan: &Plan) -> Matrix {
    let n = plan.len();
    (0..n)
        .map(|s| (0..n).map(|r| s != r && plan[s].2 == plan[r].2).collect())
        .collect()
}

/// Paper Table 5: without isolation everyone reaches everyone.
pub fn table5(plan: &Plan) -> Matrix {
    let n = plan.len();
    (0..n).map(|s| (0..n).map(|r| s != r).collect()).collect()
}

/// The matrix as the paper prints it.
pub fn render(title: &str, plan: &Plan, m: &Matrix) -> String {
    let mut out = format!("{title}\n{:<8}", "sent by");
    for (name, ..) in plan {
        out.push_str(&format!("{name:>5}"));
    }
    out.push('\n');
    for (s, row) in m.iter().enumerate() {
        out.push_str(&format!("{:<8}", plan[s].0));
        for (r, got) in row.iter().enumerate() {
            let cell = if s == r {
                "-"
            } else if *got {
                "x"
            } else {
                "."
            };
            out.push_str(&format!("{cell:>5}"));
        }
        out.push('\n');
    }
    out
}
