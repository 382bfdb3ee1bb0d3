//! Whole passes against libvirt's test driver, with a cloud image (so no
//! micro build) and nodes without nics (so no OvS).

use super::*;
use crate::nodes::build::{self, create_blank, NodeImage};

fn hv(ctx: &Context) -> std::sync::Arc<crate::libvirt::Hypervisor> {
    ctx.drivers.vm().hypervisor().unwrap()
}

fn lease() -> dclab_proto::v1::Lease {
    dclab_proto::v1::Lease {
        id: "snapshot-test-2".into(),
        ttl_ms: 60_000,
    }
}

fn node(lab: &str, name: &str, image: &str) -> DesiredNode {
    DesiredNode {
        lab: lab.into(),
        name: name.into(),
        role: "server".into(),
        vcpus: 1,
        memory_mib: 128,
        image: image.into(),
        disks_mib: vec![8],
        ..Default::default()
    }
}

fn set(version: u64, nodes: Vec<DesiredNode>) -> NodeSet {
    NodeSet { version, nodes }
}

fn state_of(statuses: &BTreeMap<NodeKey, NodeStatus>, lab: &str, name: &str) -> (NodeState, String) {
    let s = &statuses[&(lab.to_string(), name.to_string())];
    (NodeState::try_from(s.state).unwrap(), s.error.clone())
}

fn vm_state(ctx: &Context, lab: &str, name: &str) -> Option<VmState> {
    hv(ctx).state(&domain_name(lab, name)).unwrap()
}

#[tokio::test]
async fn passes_build_run_rebuild_and_remove_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, _tx) = crate::nodes::test_context(tmp.path());
    std::fs::create_dir_all(tmp.path().join("images")).unwrap();
    create_blank(&tmp.path().join("images/cloud.qcow2"), 16).expect("qemu-img (qemu-utils)");
    let lab = "reclab1";
    let a = node(lab, "a", "cloud");
    let dir = ctx.layout.node_dir(lab, "a");

    let first = set(1, vec![a.clone(), node(lab, "bad", "nope")]);
    let creating = about_to_build(&ctx, &first).await;
    assert_eq!(creating.len(), 2, "nothing built yet");
    let now = pass(&ctx, &first, &BTreeMap::new()).await.0;
    assert_eq!(state_of(&now, lab, "a"), (NodeState::Running, String::new()));
    for file in [dir.spec(), dir.root_disk(), dir.extra_disk(1), dir.seed()] {
        assert!(file.is_file(), "{} missing", file.display());
    }
    let (state, error) = state_of(&now, lab, "bad");
    assert_eq!(state, NodeState::Failed);
    assert!(
        error.starts_with("node bad of lab reclab1: image nope: "),
        "{error}"
    );
    assert!(
        error.contains("images/nope.qcow2 does not exist; put a qcow2 cloud image there"),
        "{error}"
    );
    assert_eq!(about_to_build(&ctx, &set(1, vec![a.clone()])).await.len(), 0);

    // Held nodes keep their run state; others converge back to running.
    let key = (lab.to_string(), "a".to_string());
    ctx.leases.hold(&lease(), &key).unwrap();
    hv(&ctx).pause(&domain_name(lab, "a")).unwrap();
    let only_a = set(2, vec![a.clone()]);
    let now = pass(&ctx, &only_a, &now).await.0;
    assert_eq!(state_of(&now, lab, "a").0, NodeState::Paused);
    ctx.leases.release(&lease().id, &key);
    let now = pass(&ctx, &only_a, &now).await.0;
    assert_eq!(state_of(&now, lab, "a").0, NodeState::Running);
    hv(&ctx).destroy(&domain_name(lab, "a")).unwrap();
    let now = pass(&ctx, &only_a, &now).await.0;
    assert_eq!(state_of(&now, lab, "a").0, NodeState::Running, "started again");

    // A node held by an operation is skipped and keeps its last status.
    let lock = ctx.locks.get(&key);
    let guard = lock.try_lock().unwrap();
    let mut bigger = a.clone();
    bigger.memory_mib = 256;
    let changed = set(3, vec![bigger.clone()]);
    let busy = pass(&ctx, &changed, &now).await.0;
    assert_eq!(busy, now);
    drop(guard);

    // A changed node is rebuilt: new spec, new domain.
    let marker = dir.path.join("marker");
    std::fs::write(&marker, "old build").unwrap();
    assert_eq!(about_to_build(&ctx, &changed).await.len(), 1);
    let now = pass(&ctx, &changed, &now).await.0;
    assert_eq!(state_of(&now, lab, "a").0, NodeState::Running);
    assert!(!marker.exists(), "the node dir was made anew");
    assert_eq!(spec::read(&dir.spec()).unwrap().unwrap().memory_mib, 256);

    // Node dirs nobody desires go, domain first; domains without a dir
    // (another agent's) stay.
    let stray = ctx.layout.node_dir(lab, "stray");
    stray.create().unwrap();
    let foreign = node("reclab1", "foreign", "cloud");
    for n in ["stray", "foreign"] {
        let vm = build::vm_spec(
            &foreign,
            &ctx.layout.node_dir(lab, n),
            &NodeImage::Cloud("/x".into()),
            "test",
            None,
        );
        let vm = crate::libvirt::VmSpec {
            name: domain_name(lab, n),
            ..vm
        };
        hv(&ctx).ensure_running(&vm).unwrap();
    }
    let now = pass(&ctx, &changed, &now).await.0;
    assert_eq!(now.len(), 1);
    assert_eq!(vm_state(&ctx, lab, "stray"), None);
    assert!(!stray.path.exists());
    assert_eq!(vm_state(&ctx, lab, "foreign"), Some(VmState::Running), "not ours");

    let empty = set(4, vec![]);
    let now = pass(&ctx, &empty, &now).await.0;
    assert!(now.is_empty());
    assert_eq!(vm_state(&ctx, lab, "a"), None);
    assert!(
        !ctx.layout.lab_dir.join(lab).exists(),
        "the empty lab dir goes too"
    );
    hv(&ctx).remove(&domain_name(lab, "foreign")).unwrap();
}

#[tokio::test]
async fn a_restarted_agent_honours_a_lease_its_predecessor_took_until_it_lapses() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("images")).unwrap();
    create_blank(&tmp.path().join("images/cloud.qcow2"), 16).expect("qemu-img (qemu-utils)");
    let lab = "reclab3";
    let only_a = set(1, vec![node(lab, "a", "cloud")]);
    let key = (lab.to_string(), "a".to_string());
    let (before, _tx) = crate::nodes::test_context_on_disk(tmp.path());
    let now = pass(&before, &only_a, &BTreeMap::new()).await.0;
    assert_eq!(state_of(&now, lab, "a").0, NodeState::Running);
    let ttl = Duration::from_millis(1500);
    let short = dclab_proto::v1::Lease {
        id: "snapshot-test-3".into(),
        ttl_ms: ttl.as_millis() as u32,
    };
    before.leases.hold(&short, &key).unwrap();
    hv(&before).pause(&domain_name(lab, "a")).unwrap();

    // The agent is gone; the next one starts from what is on disk. (The
    // first context is kept only for its libvirt connection: the test
    // driver's domains live as long as one is open.)
    let (after, _tx) = crate::nodes::test_context_on_disk(tmp.path());
    let now = pass(&after, &only_a, &BTreeMap::new()).await.0;
    assert_eq!(
        state_of(&now, lab, "a").0,
        NodeState::Paused,
        "the lease on disk holds it"
    );
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let lapsed = after.leases.expire();
    assert_eq!(
        lapsed.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        [short.id.as_str()]
    );
    let now = pass(&after, &only_a, &now).await.0;
    assert_eq!(
        state_of(&now, lab, "a").0,
        NodeState::Running,
        "resumed once the lease lapsed"
    );
    let now = pass(&after, &set(2, vec![]), &now).await.0;
    assert!(now.is_empty());
    assert_eq!(vm_state(&after, lab, "a"), None);
}

#[tokio::test]
async fn a_spec_change_the_vm_cannot_see_only_rewrites_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, _tx) = crate::nodes::test_context(tmp.path());
    let mut n = node("reclab2", "m", "micro");
    let dir = ctx.layout.node_dir("reclab2", "m");
    dir.create().unwrap();
    spec::write(&dir.spec(), &AppliedSpec::from(&n)).unwrap();
    let stale = |n: DesiredNode| ctx.blocking(move |ctx| stale_build(ctx, &n));
    assert_eq!(stale(n.clone()).await.unwrap(), None);
    n.apt_proxy = "http://10.0.0.9:3142".into();
    assert_eq!(stale(n.clone()).await.unwrap(), None);
    assert_eq!(
        spec::read(&dir.spec()).unwrap().unwrap().apt_proxy,
        n.apt_proxy,
        "rewritten"
    );
    let mut old = n.clone();
    old.nics = vec![dclab_proto::v1::NodeNic {
        tap: "dl-m-0".into(),
        ..Default::default()
    }];
    spec::write(&dir.spec(), &AppliedSpec::from(&old)).unwrap();
    let taps =
        |built: Option<DesiredNode>| built.map(|b| b.nics.into_iter().map(|n| n.tap).collect::<Vec<_>>());
    assert_eq!(
        taps(stale(n.clone()).await.unwrap()),
        Some(vec!["dl-m-0".to_string()]),
        "old taps to unplug"
    );
    std::fs::remove_file(dir.spec()).unwrap();
    assert_eq!(
        taps(stale(n.clone()).await.unwrap()),
        Some(vec![]),
        "cut short before spec.json"
    );
    std::fs::remove_dir(&dir.path).unwrap();
    assert_eq!(stale(n).await.unwrap(), None, "nothing there yet");
}

#[test]
fn reports_cover_every_desired_node_in_set_order() {
    let s = set(5, vec![node("l", "b", "micro"), node("l", "a", "micro")]);
    let mut last = BTreeMap::new();
    let a = ("l".to_string(), "a".to_string());
    last.insert(a.clone(), status(&a, NodeState::Running, String::new()));
    let out = statuses(&s, &last, |k| {
        (k.1 == "b").then(|| status(k, NodeState::Failed, "x".into()))
    });
    let got: Vec<(&str, i32)> = out.iter().map(|s| (s.name.as_str(), s.state)).collect();
    assert_eq!(
        got,
        [("b", NodeState::Failed as i32), ("a", NodeState::Running as i32)]
    );
    let out = statuses(&s, &BTreeMap::new(), |_| None);
    assert!(out.iter().all(|s| s.state == NodeState::Creating as i32));
    let other = state_status(&a, VmState::Other);
    assert_eq!(other.state, NodeState::Failed as i32);
    assert!(
        other.error.contains("virsh domstate dclab.l.a"),
        "{}",
        other.error
    );
}

#[tokio::test]
async fn without_libvirtd_nodes_fail_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock";
    let (ctx, _tx) = crate::nodes::test_context_on(tmp.path(), uri);
    let s = set(1, vec![node("reclab3", "a", "micro")]);
    let now = pass(&ctx, &s, &BTreeMap::new()).await.0;
    let (state, error) = state_of(&now, "reclab3", "a");
    assert_eq!(state, NodeState::Failed);
    assert!(
        error.starts_with(&format!("node a of lab reclab3: libvirt unreachable at {uri}: ")),
        "{error}"
    );
    assert!(error.contains("start libvirtd"), "{error}");
    assert!(
        !tmp.path().join("images/micro").exists(),
        "no image built for nothing"
    );
}
