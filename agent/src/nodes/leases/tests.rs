use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::file::RESERVE_BYTES;
use super::*;
use crate::faults::{CommandHeld, CutHeld, FlowsHeld};

fn key(n: &str) -> NodeKey {
    ("lab".into(), n.into())
}

fn lease(id: &str, ttl_ms: u32) -> v1::Lease {
    v1::Lease {
        id: id.into(),
        ttl_ms,
    }
}

fn cut(node: &str) -> Applied {
    Applied::LinkCut(CutHeld {
        lab: "lab".into(),
        node: node.into(),
        tap: format!("dl-{node}"),
    })
}

fn fill(node: &str) -> Applied {
    Applied::Command(CommandHeld {
        lab: "lab".into(),
        node: node.into(),
        heal: "rm -f /tmp/dclab-fill-x".into(),
    })
}

#[test]
fn leases_hold_release_renew_and_lapse() {
    let leases = Leases::in_memory();
    assert!(!leases.is_held(&key("a")));
    leases.hold(&lease("s1", 60_000), &key("a")).unwrap();
    leases.hold(&lease("s1", 60_000), &key("b")).unwrap();
    assert!(leases.is_held(&key("a")) && leases.is_held(&key("b")));
    leases.release("s1", &key("a"));
    assert!(!leases.is_held(&key("a")));
    assert!(leases.is_held(&key("b")), "the lease still holds b");
    assert_eq!(leases.renew(&["s1".into(), "gone".into()], 60_000), ["gone"]);
    let expires = leases.list()[0].expires_unix_ms;
    assert!(leases.expire_at(expires - 1).is_empty());
    let lapsed = leases.expire_at(expires);
    assert_eq!(lapsed.len(), 1);
    assert!(!leases.is_held(&key("b")));
    assert!(leases.list().is_empty(), "a hold with no faults is gone at once");
}

#[test]
fn a_fault_stays_until_its_heal_succeeded_and_failed_heals_back_off() {
    let leases = Leases::in_memory();
    let l = lease("f1", 60_000);
    leases.hold(&l, &key("a")).unwrap();
    leases.add_fault(&l, cut("a")).unwrap();
    leases.add_fault(&l, fill("a")).unwrap();
    assert!(leases.end("f1"), "it has faults to heal");
    assert!(!leases.is_held(&key("a")), "an ended lease holds no node");
    assert_eq!(leases.renew(&["f1".into()], 60_000), ["f1"], "nor is it renewed");
    assert!(
        leases.add_fault(&l, cut("b")).is_err(),
        "nothing is added to an ended lease"
    );
    let now = now_ms();
    assert_eq!(leases.due(now), ["f1"]);
    assert_eq!(leases.pending_heals().len(), 2);

    // The fill heals, the cut does not: only the cut stays, due later.
    leases.healed("f1", &fill("a"));
    let healing = leases
        .heal_failed("f1", vec![(cut("a"), "no such tap".into())], now)
        .unwrap();
    assert_eq!((healing.failed_attempts, healing.next_unix_ms), (1, now + 1_000));
    assert!(leases.due(now + 999).is_empty());
    assert_eq!(leases.due(now + 1_000), ["f1"]);
    let pending = leases.pending_heals();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        (
            pending[0].fault.as_str(),
            pending[0].node.as_str(),
            pending[0].error.as_str()
        ),
        ("link_cut", "lab/a", "no such tap")
    );
    assert_eq!(pending[0].failed_attempts, 1);
    let again = leases
        .heal_failed("f1", vec![(cut("a"), "still".into())], now)
        .unwrap();
    assert_eq!(again.next_unix_ms, now + 2_000);

    leases.healed("f1", &cut("a"));
    assert!(leases.list().is_empty(), "gone with its last fault");
    assert!(!leases.end("f1"), "an unknown lease is healed already");
}

#[test]
fn a_lapsed_lease_keeps_its_faults_until_healed() {
    let leases = Leases::in_memory();
    leases.add_fault(&lease("f2", 60_000), cut("a")).unwrap();
    let expires = leases.list()[0].expires_unix_ms;
    let lapsed = leases.expire_at(expires);
    assert_eq!(lapsed[0].faults, [cut("a")]);
    assert!(leases.expire_at(expires + 1).is_empty(), "ended once");
    assert_eq!(leases.due(expires), ["f2"]);
}

#[test]
fn retries_double_from_one_second_to_thirty() {
    let waits: Vec<u64> = (1..=8).map(retry_after_ms).collect();
    assert_eq!(
        waits,
        [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
    );
    assert_eq!(retry_after_ms(u32::MAX), 30_000);
}

#[test]
fn a_restarted_agent_ends_the_fault_leases_it_finds_and_honours_the_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state/leases.json");
    let leases = Leases::open(path.clone()).unwrap();
    leases.hold(&lease("s1", 60_000), &key("a")).unwrap();
    leases.add_fault(&lease("f1", 60_000), cut("b")).unwrap();
    drop(leases);
    let again = Leases::open(path.clone()).unwrap();
    assert!(again.is_held(&key("a")), "a restarted agent honours the hold");
    assert_eq!(again.due(now_ms()), ["f1"], "and heals the fault");
    assert!(!again.damaged());
    drop(again);
    let third = Leases::open(path).unwrap();
    assert_eq!(third.awaiting_heal()[0].faults, [cut("b")], "until it is healed");
}

#[test]
fn a_damaged_lease_file_is_read_from_its_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("leases.json");
    let leases = Leases::open(path.clone()).unwrap();
    leases.add_fault(&lease("f1", 60_000), cut("a")).unwrap();
    drop(leases);
    std::fs::write(&path, [0u8; 300]).unwrap();
    let again = Leases::open(path.clone()).unwrap();
    assert!(!again.damaged());
    assert_eq!(again.awaiting_heal()[0].faults, [cut("a")]);
    assert!(tmp.path().join("leases.json.corrupt").exists());
    // Written again whole: the next start reads the file itself.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("link_cut"), "{text}");
}

#[test]
fn faults_still_whole_in_unreadable_copies_are_salvaged() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("leases.json");
    let leases = Leases::open(path.clone()).unwrap();
    leases.add_fault(&lease("f1", 60_000), cut("a")).unwrap();
    leases.add_fault(&lease("f2", 60_000), fill("b")).unwrap();
    drop(leases);
    // The file torn after its first fault, the backup zeroed.
    let text = std::fs::read_to_string(&path).unwrap();
    let torn = text.find("\"command\"").unwrap();
    std::fs::write(&path, &text[..torn]).unwrap();
    std::fs::write(path.with_extension("json.bak"), [0u8; 100]).unwrap();
    let again = Leases::open(path).unwrap();
    assert!(again.damaged(), "a fault may be lost: the agent sweeps");
    let awaiting = again.awaiting_heal();
    assert_eq!(awaiting.len(), 1);
    assert!(awaiting[0].id.starts_with("recovered-"), "{awaiting:?}");
    assert_eq!(awaiting[0].faults, [cut("a")]);
    assert!(tmp.path().join("leases.json.bak.corrupt").exists());
}

#[test]
fn salvage_finds_each_whole_fault_once() {
    let faults = vec![cut("a"), fill("b"), Applied::Flows(FlowsHeld { count: 3 })];
    let text = serde_json::to_string_pretty(&faults).unwrap();
    assert_eq!(file::salvage(&text), faults);
    assert_eq!(file::salvage(&text[..text.len() / 2]), faults[..1]);
    assert!(file::salvage("{\"link_cut\": {\"lab\": \"x\"").is_empty());
}

#[test]
fn bad_leases_are_refused() {
    assert!(requested(None).unwrap_err().contains("carries no lease"));
    for bad in [lease("", 10), lease("x", 0), lease("x", MAX_TTL_MS + 1)] {
        assert!(requested(Some(&bad)).is_err(), "{bad:?}");
    }
    assert!(requested(Some(&lease("x", 10))).is_ok());
}

/// A small tmpfs mounted for a test and unmounted when dropped.
struct Tmpfs {
    at: PathBuf,
    /// Holds the mount point; removed after the unmount.
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test mounts a tmpfs: run it as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("fs");
        std::fs::create_dir(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { at, _dir: dir }
    }

    /// Writes `name` until the filesystem is full.
    fn fill(&self, name: &str) -> PathBuf {
        let path = self.at.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![1u8; 64 << 10];
        loop {
            match f.write_all(&chunk).and_then(|()| f.sync_all()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return path,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path and a zeroed out-struct statvfs fills.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut s), 0);
        s.f_bavail * s.f_frsize
    }
}

#[test]
fn a_full_filesystem_still_takes_faults_into_the_lease_file_and_out_again() {
    let fs = Tmpfs::mount("16m");
    let path = fs.at.join("state/leases.json");
    let leases = Leases::open(path.clone()).unwrap();
    assert!(
        path.with_extension("reserve").exists(),
        "the agent keeps its reserve"
    );
    // What a disk-fill in a container node on the same filesystem does.
    let filler = fs.fill("node-overlay-filler");
    assert!(free_bytes(&fs.at) < 64 << 10, "the filesystem is full");

    leases.add_fault(&lease("f1", 60_000), cut("a")).unwrap();
    assert!(leases.end("f1"));
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(on_disk.contains("\"healing\""), "the end is on disk: {on_disk}");
    leases.healed("f1", &cut("a"));
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), "[]");

    // Room again: the reserve is taken back at the next write.
    std::fs::remove_file(filler).unwrap();
    leases.add_fault(&lease("f2", 60_000), cut("b")).unwrap();
    let reserve = std::fs::metadata(path.with_extension("reserve")).unwrap();
    assert_eq!(reserve.len(), RESERVE_BYTES);
}

/// A lease file as the agent wrote it before fault kinds moved to
/// `crate::faults` (one record of every kind, one failed heal): an
/// upgraded agent reads it, so the faults it finds are healed, and writes
/// it back byte for byte.
const LEASE_FILE_BEFORE_THE_MOVE: &str = r#"[{"id":"r1","expires_unix_ms":5,"renewed_unix_ms":1,"nodes":[["lab","a"]],"faults":[{"power":{"lab":"lab","node":"a"}},{"link_cut":{"lab":"lab","node":"a","tap":"dl-a"}},{"netem":{"lab":"lab","node":"a","tap":"dl-a","port":"p-a","relay":["dn1a","dn1b"]}},{"flows":{"count":3}},{"command":{"lab":"lab","node":"a","heal":"true"}}],"healing":{"since_unix_ms":2,"failed_attempts":1,"next_unix_ms":3,"errors":[[{"flows":{"count":3}},"slow"]]}}]"#;

#[test]
fn a_lease_file_written_before_the_move_is_read_and_written_back_unchanged() {
    let leases: Vec<Lease> = serde_json::from_str(LEASE_FILE_BEFORE_THE_MOVE).unwrap();
    let kinds: Vec<&str> = leases[0].faults.iter().map(|f| f.kind()).collect();
    assert_eq!(kinds, ["power", "link_cut", "netem", "flows", "command"]);
    let nodes: Vec<String> = leases[0].faults.iter().map(|f| f.node()).collect();
    assert_eq!(nodes, ["lab/a", "lab/a", "lab/a", "", "lab/a"]);
    assert_eq!(
        serde_json::to_string(&leases).unwrap(),
        LEASE_FILE_BEFORE_THE_MOVE
    );
}
