use super::exec::{clip, MAX_OUTPUT};
use super::*;
use crate::libvirt::VmSpec;
use dclab_proto::v1::NodeSet;

fn key(lab: &str, name: &str) -> NodeKey {
    (lab.into(), name.into())
}

/// Defines and starts `dclab.<lab>.<name>` on the context's test driver.
fn define(ctx: &Context, lab: &str, name: &str) {
    let vm = VmSpec::for_test_driver(&domain_name(lab, name));
    ctx.libvirt.get().unwrap().ensure_running(&vm).unwrap();
}

fn state(ctx: &Context, lab: &str, name: &str) -> Option<VmState> {
    ctx.libvirt.get().unwrap().state(&domain_name(lab, name)).unwrap()
}

#[test]
fn snapshot_phases_keep_holds_and_states_as_the_coordinator_expects() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, _tx) = crate::nodes::test_context(tmp.path());
    let (lab, name) = ("opslab1", "a");
    let k = key(lab, name);
    define(&ctx, lab, name);
    let run = |kind, snap: &str| apply(&ctx, &k, kind, snap, SHUTDOWN_GRACE);

    run(OperationKind::Pause, "").unwrap();
    assert!(ctx.holds.is_held(&k));
    assert_eq!(state(&ctx, lab, name), Some(VmState::Paused));
    run(OperationKind::Pause, "").unwrap();
    run(OperationKind::Snapshot, "s1").unwrap();
    // A stale snapshot of the same name is replaced.
    run(OperationKind::Snapshot, "s1").unwrap();
    run(OperationKind::Resume, "").unwrap();
    assert!(!ctx.holds.is_held(&k));
    assert_eq!(state(&ctx, lab, name), Some(VmState::Running));

    // Restore: pause, revert (stays paused and held), resume.
    run(OperationKind::Pause, "").unwrap();
    run(OperationKind::Revert, "s1").unwrap();
    assert!(ctx.holds.is_held(&k));
    assert_eq!(state(&ctx, lab, name), Some(VmState::Paused));
    run(OperationKind::Resume, "").unwrap();
    assert_eq!(state(&ctx, lab, name), Some(VmState::Running));

    // Cold: shutdown holds it off; the snapshot is disk-only; revert stays off.
    run(OperationKind::Shutdown, "").unwrap();
    assert!(ctx.holds.is_held(&k));
    assert_eq!(state(&ctx, lab, name), Some(VmState::Off));
    run(OperationKind::Snapshot, "cold").unwrap();
    run(OperationKind::Resume, "").unwrap();
    assert_eq!(state(&ctx, lab, name), Some(VmState::Running));
    run(OperationKind::Shutdown, "").unwrap();
    run(OperationKind::Revert, "cold").unwrap();
    assert_eq!(state(&ctx, lab, name), Some(VmState::Off));
    run(OperationKind::Resume, "").unwrap();
    assert_eq!(state(&ctx, lab, name), Some(VmState::Running));

    run(OperationKind::DeleteSnapshot, "s1").unwrap();
    run(OperationKind::DeleteSnapshot, "s1").unwrap();
    let err = run(OperationKind::Revert, "").unwrap_err().to_string();
    assert!(err.contains("names no snapshot"), "{err}");
    let err = apply(&ctx, &key(lab, "ghost"), OperationKind::Pause, "", SHUTDOWN_GRACE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("domain dclab.opslab1.ghost is not defined yet"),
        "{err}"
    );
    ctx.libvirt
        .get()
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
    let op = Operation {
        lab: "l".into(),
        nodes: vec!["a".into(), "c".into(), "a".into(), "b".into(), "c".into()],
        ..Default::default()
    };
    let (known, unknown) = split_nodes(&ctx, &op);
    let names: Vec<&str> = known.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "each once, in order");
    assert_eq!(unknown, ["node c of lab l is not on host h1"]);
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
        Ok(())
    })
    .await
    .unwrap();
    let op = Operation {
        kind: OperationKind::Pause.into(),
        lab: "opslab2".into(),
        nodes: vec!["up".into(), "missing".into(), "elsewhere".into()],
        ..Default::default()
    };
    let (known, unknown) = split_nodes(&ctx, &op);
    let failures = run_on_nodes(&ctx, OperationKind::Pause, &op, known, unknown).await;
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(failures[0], "node elsewhere of lab opslab2 is not on host h1");
    assert!(
        failures[1].starts_with("node missing: domain dclab.opslab2.missing is not defined yet"),
        "{failures:?}"
    );
    assert!(ctx.holds.is_held(&key("opslab2", "up")));

    let op = Operation {
        kind: 99,
        lab: "opslab2".into(),
        nodes: vec!["up".into()],
        ..Default::default()
    };
    let failures = run_on_nodes(&ctx, OperationKind::Unspecified, &op, vec![], vec![]).await;
    assert!(
        failures[0].contains("operation kind 99 is unknown"),
        "{failures:?}"
    );
    ctx.blocking(|ctx| Ok(ctx.libvirt.get()?.remove(&domain_name("opslab2", "up"))?))
        .await
        .unwrap();
}

#[tokio::test]
async fn exec_refuses_cloud_nodes_and_reports_a_dead_console() {
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, _tx) = crate::nodes::test_context(tmp.path());
    let mut cloud = desired("l", "web");
    cloud.image = "debian-12".into();
    let op = Operation {
        kind: OperationKind::Exec.into(),
        lab: "l".into(),
        command: "true".into(),
        timeout_ms: 200,
        ..Default::default()
    };
    let out = exec::run(&ctx, &op, vec![cloud, desired("l", "off")], vec![]).await;
    assert_eq!(out.failures.len(), 2, "{:?}", out.failures);
    assert!(
        out.failures[0].starts_with("node web: exec runs over the micro-VM's serial console"),
        "{:?}",
        out.failures
    );
    assert!(out.failures[1].contains("console.sock"), "{:?}", out.failures);
}

#[test]
fn output_is_clipped_on_a_character_boundary() {
    assert_eq!(clip("short".into(), MAX_OUTPUT), "short");
    let long = "é".repeat(MAX_OUTPUT);
    let clipped = clip(long, MAX_OUTPUT);
    assert!(clipped.len() <= MAX_OUTPUT);
    assert!(clipped.ends_with("[output clipped to 64 KiB]\n"));
}

#[test]
fn micro_vms_stop_at_once_and_cloud_nodes_get_a_grace() {
    let node = |image: &str| DesiredNode {
        image: image.into(),
        ..Default::default()
    };
    assert_eq!(shutdown_grace(&node("micro")), Duration::ZERO);
    assert_eq!(shutdown_grace(&node("debian-12")), SHUTDOWN_GRACE);
}
