//! Lab placement by a running coordinator, from the capacity the real
//! agents report when they register.

use dclab_integration::api::Api;
use dclab_integration::cluster;
use dclab_proto::v1;
use tonic::Code;

fn node(name: &str, vcpus: u32, memory_mib: u64, host: &str) -> v1::NodeDemand {
    v1::NodeDemand {
        name: name.into(),
        vcpus,
        memory_mib,
        host: host.into(),
        switch_networks: vec![],
    }
}

fn plan(api: &Api, nodes: Vec<v1::NodeDemand>) -> Result<Vec<(String, String)>, (Code, String)> {
    let req = v1::PlanLabRequest {
        lab: "l".into(),
        nodes,
    };
    api.call(|mut c| async move { c.plan_lab(req).await })
        .map(|p| p.placements.into_iter().map(|p| (p.node, p.host)).collect())
        .map_err(|s| (s.code(), s.message().to_string()))
}

#[test]
fn labs_are_planned_on_the_capacity_agents_report() {
    let c = cluster("lp", 2, false);
    let api = Api::connect(&c.client_config().unwrap());
    let hosts = api.hosts();
    // Simulated hosts share this machine; each offers what `ctl local` gives it.
    let cpus = dclab_ctl::local::LOCAL_VCPUS;
    assert!(
        hosts.iter().all(|h| h.vcpus == cpus && h.memory_mib > 0),
        "{hosts:?}"
    );
    let revision = api
        .call(|mut c| async move { c.status(v1::StatusRequest {}).await })
        .unwrap()
        .revision;

    let pinned = plan(&api, vec![node("a", 1, 128, "h1"), node("b", 1, 128, "h2")]).unwrap();
    assert_eq!(
        pinned,
        [
            ("a".to_string(), "h1".to_string()),
            ("b".to_string(), "h2".to_string())
        ]
    );
    // Two nodes that each need a whole host land on different hosts.
    let whole = plan(&api, vec![node("x", cpus, 64, ""), node("y", cpus, 64, "")]).unwrap();
    assert_ne!(whole[0].1, whole[1].1);

    let (code, msg) = plan(&api, vec![node("big", cpus + 1, 64, "")]).unwrap_err();
    assert_eq!(code, Code::ResourceExhausted);
    assert!(
        msg.starts_with(&format!("lab l: node big needs {} vCPUs", cpus + 1)),
        "{msg}"
    );
    let (code, msg) = plan(&api, vec![node("a", 1, 64, "h9")]).unwrap_err();
    assert_eq!(
        (code, msg.as_str()),
        (
            Code::NotFound,
            "lab l: node a is pinned to host h9, which is not registered"
        )
    );
    let (code, _) = plan(&api, vec![node("a", 1, 64, ""), node("a", 1, 64, "")]).unwrap_err();
    assert_eq!(code, Code::InvalidArgument);
    let (code, _) = plan(&api, vec![node("a", 0, 64, "")]).unwrap_err();
    assert_eq!(code, Code::InvalidArgument);

    // Members of a switch network share a host: each needs half of one.
    let member = |name: &str, host: &str| v1::NodeDemand {
        switch_networks: vec!["tunnel".into()],
        ..node(name, cpus / 2, 64, host)
    };
    let together = plan(&api, vec![member("s1", ""), member("s2", "h2")]).unwrap();
    assert!(together.iter().all(|(_, h)| h == "h2"), "{together:?}");
    let (code, msg) = plan(&api, vec![member("s1", "h1"), member("s2", "h2")]).unwrap_err();
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("switch network tunnel must be on one host"), "{msg}");

    let after = api
        .call(|mut c| async move { c.status(v1::StatusRequest {}).await })
        .unwrap()
        .revision;
    assert_eq!(after, revision, "planning wrote something");
}
