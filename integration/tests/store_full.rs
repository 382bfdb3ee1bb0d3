//! The coordinator's store on a disk that fills up (a real sled on a small
//! tmpfs): a commit that fails is never reported as a plain failure, since
//! the change may still be on disk, and no later write is taken until a
//! restart reloads exactly what reached the disk (issue 23, item 8).

use std::path::{Path, PathBuf};
use std::process::Command;

use dclab_coordinator::keys::KeyRange;
use dclab_coordinator::model::PortKind;
use dclab_coordinator::mutate::{self, PortSpec};
use dclab_coordinator::state::State;

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test mounts a tmpfs: run it as root"
        );
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn open(dir: &Path) -> State {
    // The store alone: its hubs are published to and never read here.
    let keys = KeyRange("100.64.0.0/16".parse().unwrap());
    State::open(dir, keys, Default::default(), Default::default()).unwrap()
}

fn port(state: &State, i: u32) -> Result<(), dclab_proto::ApiError> {
    let (name, mac, ip) = (
        format!("p{i}"),
        format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256),
        format!("10.0.{}.{}", i / 250, 1 + i % 250),
    );
    let spec = PortSpec {
        name: &name,
        tenant: "t",
        network: "n",
        host: "h1",
        mac: &mac,
        ip: &ip,
        kind: PortKind::Vm,
    };
    state
        .mutate(|v| mutate::create_port(v.topo, v.keys, &spec))
        .map(drop)
}

#[test]
fn a_commit_that_fails_fences_writes_and_a_restart_serves_what_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(dir.path(), "8m");
    let db = dir.path().join("db");
    let state = open(&db);
    state
        .mutate(|v| mutate::put_host(v.topo, "h1", "up0", "0a:00:00:00:00:01", (4, 4096)))
        .unwrap();
    state.mutate(|v| mutate::create_tenant(v.topo, "t")).unwrap();
    state
        .mutate(|v| mutate::create_network(v.topo, "t", "n", "10.0.0.0/16", v.next_net_id))
        .unwrap();
    port(&state, 0).unwrap();

    // Fill the disk, then write until a commit fails.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", dir.path().join("fill").display()))
        .output();
    let mut i = 1;
    let failed = loop {
        match port(&state, i) {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
        assert!(i < 5000, "no commit failed on a full disk");
    };
    let revision = state.revision();
    println!(
        "commit of port p{i} failed at revision {}: {failed}",
        revision + 1
    );
    let message = failed.to_string();
    assert!(
        matches!(failed, dclab_proto::ApiError::Unavailable(_)),
        "{message}"
    );
    assert!(
        message.contains("is unknown") && message.contains("restart"),
        "{message}"
    );
    assert!(
        state.read(|t| !t.ports.contains_key(&format!("p{i}"))),
        "applied in memory"
    );

    // Every later write is refused the same way, reads go on.
    std::fs::remove_file(dir.path().join("fill")).unwrap();
    let again = port(&state, i + 1).unwrap_err().to_string();
    assert_eq!(again, message, "a later write is fenced");
    assert_eq!(state.read(|t| t.ports.len()), i as usize);

    // A restart serves what reached the disk: the old revision with the
    // ports before, or the new one with the failed port too.
    drop(state);
    let state = open(&db);
    let reloaded = state.revision();
    let has_failed_port = state.read(|t| t.ports.contains_key(&format!("p{i}")));
    println!("after the restart: revision {reloaded}, port p{i} there: {has_failed_port}");
    assert!(
        reloaded == revision || reloaded == revision + 1,
        "revision {reloaded}"
    );
    assert_eq!(has_failed_port, reloaded == revision + 1);
    assert_eq!(state.read(|t| t.ports.len()), reloaded as usize - 3);
    port(&state, i + 1).expect("writes are taken again after the restart");
}
