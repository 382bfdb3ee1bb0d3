//! Against libvirt's built-in test driver: real libvirt, no hypervisor.

use super::*;

fn spec(name: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        domain_type: "test".into(),
        vcpus: 1,
        memory_mib: 128,
        boot: Boot::Disk,
        disks: vec![],
        nics: vec![],
        serial_socket: None,
        cdrom: None,
    }
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
    hv.revert(name, "initial").unwrap();
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
