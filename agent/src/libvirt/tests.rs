//! Against libvirt's built-in test driver: real libvirt, no hypervisor.

use super::*;
use std::time::Duration;

fn spec(name: &str) -> VmSpec {
    VmSpec::for_test_driver(name)
}

#[test]
fn lifecycle_is_idempotent_and_remove_leaves_nothing() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let name = "dclab-t1-node";
    assert_eq!(hv.state(name).unwrap(), None);
    hv.ensure_running(&spec(name)).unwrap();
    hv.ensure_running(&spec(name)).unwrap();
    assert_eq!(hv.state(name).unwrap(), Some(VmState::Running));
    assert_eq!(hv.list("dclab-t1-").unwrap(), [name]);
    hv.pause(name).unwrap();
    assert_eq!(hv.state(name).unwrap(), Some(VmState::Paused));
    hv.resume(name).unwrap();
    hv.remove(name).unwrap();
    hv.remove(name).unwrap();
    assert_eq!(hv.state(name).unwrap(), None);
    assert!(hv.list("dclab-t1-").unwrap().is_empty());
}

#[test]
fn snapshots_restore_the_state_they_were_taken_in() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let name = "dclab-t2-node";
    hv.ensure_running(&spec(name)).unwrap();
    hv.pause(name).unwrap();
    hv.snapshot(name, "initial").unwrap();
    hv.resume(name).unwrap();
    assert_eq!(hv.snapshots(name).unwrap(), ["initial"]);
    assert_eq!(hv.revert(name, "initial").unwrap(), SnapshotKind::Live);
    assert_eq!(
        hv.state(name).unwrap(),
        Some(VmState::Paused),
        "reverted to the paused moment"
    );
    let err = hv.revert(name, "nope").unwrap_err().to_string();
    assert!(err.contains("reverting dclab-t2-node"), "{err}");
    hv.delete_snapshot(name, "initial").unwrap();
    assert!(hv.snapshots(name).unwrap().is_empty());
    hv.remove(name).unwrap();
}

#[test]
fn errors_name_the_domain() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let err = hv.pause("dclab-missing").unwrap_err().to_string();
    assert!(err.starts_with("libvirt: no domain dclab-missing"), "{err}");
    assert!(Hypervisor::open("nonsense:///x").is_err());
}

#[test]
fn ensure_defined_does_not_start_and_start_is_idempotent() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let name = "dclab-t3-node";
    hv.ensure_defined(&spec(name)).unwrap();
    assert_eq!(hv.state(name).unwrap(), Some(VmState::Off));
    hv.start(name).unwrap();
    hv.start(name).unwrap();
    assert_eq!(hv.state(name).unwrap(), Some(VmState::Running));
    hv.ensure_defined(&spec(name)).unwrap();
    assert_eq!(hv.state(name).unwrap(), Some(VmState::Running), "left as it was");
    hv.remove(name).unwrap();
}

#[test]
fn shutdown_and_destroy_leave_the_domain_off_from_any_state() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let name = "dclab-t4-node";
    hv.ensure_running(&spec(name)).unwrap();
    hv.shutdown(name, Duration::from_secs(5)).unwrap();
    assert_eq!(hv.state(name).unwrap(), Some(VmState::Off));
    hv.shutdown(name, Duration::from_secs(5)).unwrap();
    hv.start(name).unwrap();
    hv.pause(name).unwrap();
    hv.shutdown(name, Duration::from_secs(5)).unwrap();
    assert_eq!(
        hv.state(name).unwrap(),
        Some(VmState::Off),
        "a paused guest is stopped too"
    );
    hv.start(name).unwrap();
    hv.destroy(name).unwrap();
    hv.destroy(name).unwrap();
    assert_eq!(hv.state(name).unwrap(), Some(VmState::Off));
    let err = hv
        .shutdown("dclab-t4-missing", Duration::ZERO)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dclab-t4-missing"), "{err}");
    hv.remove(name).unwrap();
}

#[test]
fn reverting_never_leaves_a_node_running() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let name = "dclab-t5-node";
    hv.ensure_running(&spec(name)).unwrap();
    hv.snapshot(name, "live").unwrap();
    assert!(hv.has_snapshot(name, "live").unwrap());
    assert!(!hv.has_snapshot(name, "other").unwrap());
    hv.shutdown(name, Duration::from_secs(1)).unwrap();
    hv.snapshot(name, "cold").unwrap();
    hv.start(name).unwrap();

    assert_eq!(hv.revert(name, "live").unwrap(), SnapshotKind::Live);
    assert_eq!(
        hv.state(name).unwrap(),
        Some(VmState::Paused),
        "taken running, back paused"
    );
    assert_eq!(hv.revert(name, "cold").unwrap(), SnapshotKind::Offline);
    assert_eq!(hv.state(name).unwrap(), Some(VmState::Off), "taken off, back off");
    assert_eq!(hv.revert(name, "live").unwrap(), SnapshotKind::Live);
    assert_eq!(
        hv.state(name).unwrap(),
        Some(VmState::Paused),
        "from off to the paused moment"
    );
    let err = hv.revert(name, "nope").unwrap_err().to_string();
    assert!(err.contains("has no snapshot named nope"), "{err}");
    hv.remove(name).unwrap();
}

#[test]
fn deleting_a_missing_snapshot_is_fine() {
    let hv = Hypervisor::open("test:///default").unwrap();
    let name = "dclab-t6-node";
    hv.delete_snapshot(name, "gone").unwrap();
    hv.ensure_running(&spec(name)).unwrap();
    hv.delete_snapshot(name, "gone").unwrap();
    hv.snapshot(name, "s1").unwrap();
    hv.delete_snapshot(name, "s1").unwrap();
    assert!(hv.snapshots(name).unwrap().is_empty());
    hv.snapshot(name, "s2").unwrap();
    hv.remove(name).unwrap();
    assert_eq!(hv.state(name).unwrap(), None, "undefined with its snapshots");
    assert!(hv.is_alive());
}

#[test]
fn snapshot_kind_reads_the_state_element() {
    let xml = |state: &str| {
        format!("<domainsnapshot><name>s</name><state>{state}</state><domain/></domainsnapshot>")
    };
    assert_eq!(snapshot_kind(&xml("running")), SnapshotKind::Live);
    assert_eq!(snapshot_kind(&xml("paused")), SnapshotKind::Live);
    assert_eq!(snapshot_kind(&xml("shutoff")), SnapshotKind::Offline);
    assert_eq!(snapshot_kind(&xml("disk-snapshot")), SnapshotKind::Offline);
}
