use super::*;
use crate::libvirt::VmSpec;
use crate::nodes::driver::QemuDriver;
use crate::nodes::layout::{domain_name, NodeKey};
use dclab_proto::v1::NodeSet;

fn key(lab: &str, name: &str) -> NodeKey {
    (lab.into(), name.into())
}

/// Defines and starts `dclab.<lab>.<name>` on the context's test driver.
fn define(ctx: &Context, lab: &str, name: &str) {
    let vm = VmSpec::for_test_driver(&domain_name(lab, name));
    ctx.drivers
        .vm()
        .hypervisor()
        .unwrap()
        .ensure_running(&vm)
        .unwrap();
}

fn state(ctx: &Context, lab: &str, name: &str) -> Option<VmState> {
    ctx.drivers
        .vm()
        .hypervisor()
        .unwrap()
        .state(&domain_name(lab, name))
        .unwrap()
}

fn lease() -> v1::Lease {
    v1::Lease {
        id: "snapshot-test-1".into(),
        ttl_ms: 60_000,
    }
}

#[test]
fn snapshot_phases_keep_leases_and_states_as_the_coordinator_expects() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, _tx) = crate::nodes::test_context(tmp.path());
    let (lab, name) = ("opslab1", "a");
    let (k, node) = (key(lab, name), desired(lab, name));
    define(&ctx, lab, name);
    let run = |action: NodeAction| apply(&ctx, &node, &action);
    let snap = |s: &str| NodeAction::Snapshot(s.into());
    let resume = || NodeAction::Resume(lease().id);

    run(NodeAction::Pause(lease())).unwrap();
    assert!(ctx.leases.is_held(&k));
    assert_eq!(state(&ctx, lab, name), Some(VmState::Paused));
    run(NodeAction::Pause(lease())).unwrap();
    run(snap("s1")).unwrap();
    // A stale snapshot of the same name is replaced.
    run(snap("s1")).unwrap();
    run(resume()).unwrap();
    assert!(!ctx.leases.is_held(&k));
    assert_eq!(state(&ctx, lab, name), Some(VmState::Running));

    // Restore: pause, revert (stays paused and held), resume.
    run(NodeAction::Pause(lease())).unwrap();
    run(NodeAction::Revert("s1".into(), lease())).unwrap();
    assert!(ctx.leases.is_held(&k));
    assert_eq!(state(&ctx, lab, name), Some(VmState::Paused));
    run(resume()).unwrap();
    assert_eq!(state(&ctx, lab, name), Some(VmState::Running));

    // Cold: shutdown holds it off; the snapshot is disk-only; revert stays off.
    run(NodeAction::Shutdown(lease())).unwrap();
    assert!(ctx.leases.is_held(&k));
    assert_eq!(state(&ctx, lab, name), Some(VmState::Off));
    run(snap("cold")).unwrap();
    run(resume()).unwrap();
    assert_eq!(state(&ctx, lab, name), Some(VmState::Running));
    run(NodeAction::Shutdown(lease())).unwrap();
    run(NodeAction::Revert("cold".into(), lease())).unwrap();
    assert_eq!(state(&ctx, lab, name), Some(VmState::Off));
    run(resume()).unwrap();
    assert_eq!(state(&ctx, lab, name), Some(VmState::Running));

    run(NodeAction::DeleteSnapshot("s1".into())).unwrap();
    run(NodeAction::DeleteSnapshot("s1".into())).unwrap();
    let revert = Action::Revert(v1::RevertNodes {
        snapshot: String::new(),
        lease: Some(lease()),
    });
    let err = NodeAction::from_proto(&revert).unwrap_err();
    assert!(err.to_string().contains("names no snapshot"), "{err}");
    assert_eq!(err.kind(), v1::OperationError::Invalid);
    let no_lease = Action::Pause(v1::PauseNodes { lease: None });
    assert!(NodeAction::from_proto(&no_lease)
        .unwrap_err()
        .to_string()
        .contains("no lease"));
    let err = apply(&ctx, &desired(lab, "ghost"), &NodeAction::Pause(lease())).unwrap_err();
    assert!(
        err.to_string()
            .contains("domain dclab.opslab1.ghost is not defined yet"),
        "{err}"
    );
    assert_eq!(err.kind(), v1::OperationError::NotFound);
    assert!(
        !ctx.leases.is_held(&key(lab, "ghost")),
        "no lease for a node that was not paused"
    );
    ctx.drivers
        .vm()
        .hypervisor()
        .unwrap()
        .remove(&domain_name(lab, name))
        .unwrap();
}

fn desired(lab: &str, name: &str) -> DesiredNode {
    DesiredNode {
        lab: lab.into(),
        name: name.into(),
        image: "micro".into(),
        ..Default::default()
    }
}

#[test]
fn operations_name_nodes_this_host_does_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, tx) = crate::nodes::test_context(tmp.path());
    tx.send_replace(Some(NodeSet {
        version: 3,
        nodes: vec![desired("l", "a"), desired("l", "b"), desired("other", "c")],
    }));
    let target = v1::NodeTarget {
        lab: "l".into(),
        nodes: vec!["a".into(), "c".into(), "a".into(), "b".into(), "c".into()],
    };
    let (known, unknown) = split_nodes(&ctx, &target);
    let names: Vec<&str> = known.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "each once, in order");
    assert_eq!(
        unknown,
        [(
            v1::OperationError::NotFound,
            "node c of lab l is not on host h1".to_string()
        )]
    );
}

#[tokio::test]
async fn failures_list_every_node_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, tx) = crate::nodes::test_context(tmp.path());
    tx.send_replace(Some(NodeSet {
        version: 1,
        nodes: vec![desired("opslab2", "up"), desired("opslab2", "missing")],
    }));
    ctx.blocking(|ctx| {
        define(ctx, "opslab2", "up");
        anyhow::Ok(())
    })
    .await
    .unwrap();
    let target = v1::NodeTarget {
        lab: "opslab2".into(),
        nodes: vec!["up".into(), "missing".into(), "elsewhere".into()],
    };
    let (known, unknown) = split_nodes(&ctx, &target);
    let failures = run_on_nodes(&ctx, &NodeAction::Pause(lease()), known, unknown).await;
    let messages: Vec<&str> = failures.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(messages[0], "node elsewhere of lab opslab2 is not on host h1");
    assert!(
        messages[1].starts_with("node missing: domain dclab.opslab2.missing is not defined yet"),
        "{failures:?}"
    );
    assert!(ctx.leases.is_held(&key("opslab2", "up")));
    ctx.blocking(|ctx| {
        let hv = ctx.drivers.vm().hypervisor()?;
        anyhow::Ok(hv.remove(&domain_name("opslab2", "up"))?)
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn exec_refuses_cloud_nodes_and_reports_a_dead_console() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, _tx) = crate::nodes::test_context(tmp.path());
    let mut cloud = desired("l", "web");
    cloud.image = "debian-12".into();
    let exec = v1::ExecCommand {
        command: "true".into(),
        timeout_ms: 200,
        stream_id: 0,
    };
    let out = exec::run(&ctx, &exec, vec![cloud, desired("l", "off")], vec![]).await;
    assert_eq!(out.failures.len(), 2, "{:?}", out.failures);
    let (kind, message) = &out.failures[0];
    assert!(
        message.starts_with("node web: exec runs over the micro-VM's serial console"),
        "{:?}",
        out.failures
    );
    assert_eq!(*kind, v1::OperationError::Unsupported);
    assert!(out.failures[1].1.contains("console.sock"), "{:?}", out.failures);
}

#[test]
fn micro_vms_stop_at_once_and_cloud_nodes_get_a_grace() {
    let node = |image: &str| DesiredNode {
        image: image.into(),
        ..Default::default()
    };
    assert_eq!(QemuDriver::shutdown_grace(&node("micro")), Duration::ZERO);
    assert_eq!(
        QemuDriver::shutdown_grace(&node("debian-12")),
        crate::nodes::driver::SHUTDOWN_GRACE
    );
}
