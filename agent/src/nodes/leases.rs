//! Leases: every state the coordinator imposes on this host beyond "every
//! node runs" (a node held paused or off for a snapshot, and faults). The
//! agent keeps them in a file, so a restarted agent still honours them,
//! and ends each one itself when it lapses: a lost coordinator, a cut
//! link or a dead ctl can hold nothing for longer than its lease.
//!
//! A lease is released by the operation that ends it (RESUME), extended by
//! RENEW, and otherwise lapses at `expires_unix_ms` (wall clock, so the
//! time survives restarts).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dclab_proto::v1;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::layout::NodeKey;

/// Longest lease the agent accepts: a coordinator bug must not hold a node
/// for days.
pub const MAX_TTL_MS: u32 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub expires_unix_ms: u64,
    /// When the lease was taken or last extended (0 in files written
    /// before this was kept).
    #[serde(default)]
    pub renewed_unix_ms: u64,
    /// Nodes whose run state the lease owns: the reconciler leaves them
    /// paused or off.
    pub nodes: BTreeSet<NodeKey>,
    /// Faults applied under the lease, in the order applied.
    #[serde(default)]
    pub faults: Vec<super::faults::Applied>,
}

pub struct Leases {
    /// None: kept in memory only (tests).
    path: Option<PathBuf>,
    all: Mutex<BTreeMap<String, Lease>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn entry<'a>(all: &'a mut BTreeMap<String, Lease>, lease: &v1::Lease, expires: u64) -> &'a mut Lease {
    let entry = all.entry(lease.id.clone()).or_insert_with(|| Lease {
        id: lease.id.clone(),
        expires_unix_ms: expires,
        renewed_unix_ms: 0,
        nodes: BTreeSet::new(),
        faults: Vec::new(),
    });
    entry.expires_unix_ms = entry.expires_unix_ms.max(expires);
    entry.renewed_unix_ms = now_ms();
    entry
}

/// The lease of an operation, or why it cannot be taken.
pub fn requested(lease: Option<&v1::Lease>) -> Result<&v1::Lease, String> {
    let lease = lease.ok_or("the operation carries no lease; upgrade the coordinator")?;
    if lease.id.is_empty() || lease.ttl_ms == 0 || lease.ttl_ms > MAX_TTL_MS {
        return Err(format!(
            "lease {:?} with ttl {} ms: a lease needs an id and a ttl of 1 ms to 1 h",
            lease.id, lease.ttl_ms
        ));
    }
    Ok(lease)
}

impl Leases {
    #[cfg(test)]
    pub fn in_memory() -> Leases {
        Leases {
            path: None,
            all: Mutex::new(BTreeMap::new()),
        }
    }

    /// The leases kept at `path` (none when it does not exist yet). A file
    /// that does not parse is set aside, not trusted: its holds end now.
    pub fn open(path: PathBuf) -> anyhow::Result<Leases> {
        let all = match std::fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<Vec<Lease>>(&text) {
                Ok(list) => list.into_iter().map(|l| (l.id.clone(), l)).collect(),
                Err(e) => {
                    let aside = path.with_extension("json.corrupt");
                    warn!(path = %path.display(), error = %e, aside = %aside.display(), "unreadable lease file set aside; its leases end now");
                    std::fs::rename(&path, &aside)
                        .with_context(|| format!("moving {} aside", path.display()))?;
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(Leases {
            path: Some(path),
            all: Mutex::new(all),
        })
    }

    /// Applies `change` and writes the result; on a failed write nothing changes.
    fn update<T>(&self, change: impl FnOnce(&mut BTreeMap<String, Lease>) -> T) -> anyhow::Result<T> {
        let mut all = self.all.lock().unwrap();
        let mut next = all.clone();
        let out = change(&mut next);
        if next != *all {
            self.persist(&next)?;
            *all = next;
        }
        Ok(out)
    }

    fn persist(&self, all: &BTreeMap<String, Lease>) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().context("lease file path has no directory")?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".leases-")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let list: Vec<&Lease> = all.values().collect();
        tmp.write_all(serde_json::to_string_pretty(&list)?.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Puts `key` under `lease` (taking or extending it).
    pub fn hold(&self, lease: &v1::Lease, key: &NodeKey) -> anyhow::Result<()> {
        let expires = now_ms() + u64::from(lease.ttl_ms);
        self.update(|all| {
            let entry = entry(all, lease, expires);
            entry.nodes.insert(key.clone());
        })
    }

    /// Records a fault under `lease` (taking or extending it).
    pub fn add_fault(&self, lease: &v1::Lease, applied: super::faults::Applied) -> anyhow::Result<()> {
        let expires = now_ms() + u64::from(lease.ttl_ms);
        self.update(|all| entry(all, lease, expires).faults.push(applied))
    }

    /// Ends lease `id` and returns it, with its faults to heal.
    pub fn take(&self, id: &str) -> anyhow::Result<Option<Lease>> {
        self.update(|all| all.remove(id))
    }

    /// Takes `key` out of lease `id` (an empty id: out of every lease); a
    /// lease left holding nothing ends.
    pub fn release(&self, id: &str, key: &NodeKey) -> anyhow::Result<()> {
        self.update(|all| {
            for lease in all.values_mut().filter(|l| id.is_empty() || l.id == id) {
                lease.nodes.remove(key);
            }
            all.retain(|_, l| !l.nodes.is_empty() || !l.faults.is_empty());
        })
    }

    /// Extends the listed leases to `ttl_ms` from now; returns the ids not held.
    pub fn renew(&self, ids: &[String], ttl_ms: u32) -> anyhow::Result<Vec<String>> {
        let expires = now_ms() + u64::from(ttl_ms.min(MAX_TTL_MS));
        self.update(|all| {
            let mut missing = Vec::new();
            for id in ids {
                match all.get_mut(id) {
                    Some(lease) => {
                        lease.expires_unix_ms = lease.expires_unix_ms.max(expires);
                        lease.renewed_unix_ms = now_ms();
                    }
                    None => missing.push(id.clone()),
                }
            }
            missing
        })
    }

    /// Whether a lease that has not lapsed owns the node's run state.
    pub fn is_held(&self, key: &NodeKey) -> bool {
        let now = now_ms();
        let all = self.all.lock().unwrap();
        all.values()
            .any(|l| l.expires_unix_ms > now && l.nodes.contains(key))
    }

    /// Ends every lease that has lapsed by `now` and returns them.
    pub fn expire_at(&self, now: u64) -> anyhow::Result<Vec<Lease>> {
        self.update(|all| {
            let lapsed: Vec<String> = all
                .values()
                .filter(|l| l.expires_unix_ms <= now)
                .map(|l| l.id.clone())
                .collect();
            lapsed.iter().filter_map(|id| all.remove(id)).collect()
        })
    }

    pub fn expire(&self) -> anyhow::Result<Vec<Lease>> {
        self.expire_at(now_ms())
    }

    pub fn list(&self) -> Vec<Lease> {
        self.all.lock().unwrap().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> NodeKey {
        ("lab".into(), n.into())
    }

    fn lease(id: &str, ttl_ms: u32) -> v1::Lease {
        v1::Lease {
            id: id.into(),
            ttl_ms,
        }
    }

    #[test]
    fn leases_hold_release_renew_and_lapse() {
        let leases = Leases::in_memory();
        assert!(!leases.is_held(&key("a")));
        leases.hold(&lease("s1", 60_000), &key("a")).unwrap();
        leases.hold(&lease("s1", 60_000), &key("b")).unwrap();
        assert!(leases.is_held(&key("a")) && leases.is_held(&key("b")));
        leases.release("s1", &key("a")).unwrap();
        assert!(!leases.is_held(&key("a")));
        assert!(leases.is_held(&key("b")), "the lease still holds b");
        assert_eq!(
            leases.renew(&["s1".into(), "gone".into()], 60_000).unwrap(),
            ["gone"]
        );
        let expires = leases.list()[0].expires_unix_ms;
        assert!(leases.expire_at(expires - 1).unwrap().is_empty());
        let lapsed = leases.expire_at(expires).unwrap();
        assert_eq!(lapsed.len(), 1);
        assert!(!leases.is_held(&key("b")));
        assert!(leases.list().is_empty());
    }

    #[test]
    fn leases_survive_a_restart_and_a_corrupt_file_is_set_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state/leases.json");
        let leases = Leases::open(path.clone()).unwrap();
        leases.hold(&lease("s1", 60_000), &key("a")).unwrap();
        drop(leases);
        let again = Leases::open(path.clone()).unwrap();
        assert!(again.is_held(&key("a")), "a restarted agent honours the lease");
        std::fs::write(&path, "{not json").unwrap();
        let fresh = Leases::open(path.clone()).unwrap();
        assert!(!fresh.is_held(&key("a")));
        assert!(path.with_extension("json.corrupt").exists());
    }

    #[test]
    fn bad_leases_are_refused() {
        assert!(requested(None).unwrap_err().contains("carries no lease"));
        for bad in [lease("", 10), lease("x", 0), lease("x", MAX_TTL_MS + 1)] {
            assert!(requested(Some(&bad)).is_err(), "{bad:?}");
        }
        assert!(requested(Some(&lease("x", 10))).is_ok());
    }
}
