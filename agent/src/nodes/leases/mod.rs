//! Leases: every state the coordinator imposes on this host beyond "every
//! node runs" (a node held paused or off for a snapshot, and faults). The
//! agent keeps them in a file, so a restarted agent still honours them,
//! and ends each one itself when it lapses: a lost coordinator, a cut
//! link or a dead ctl can hold nothing for longer than its lease.
//!
//! A lease is released by the operation that ends it (RESUME, HEAL),
//! extended by RENEW, and otherwise lapses at `expires_unix_ms` (wall
//! clock, so the time survives restarts). A lease that ended holds no node
//! any more, but its faults stay in the file until each one is healed: a
//! heal that fails is retried (`healing`), by this agent or the next.

mod file;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use dclab_proto::v1;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::layout::NodeKey;
use crate::faults::Applied;
use file::{LeaseFile, Loaded};

/// Longest lease the agent accepts: a coordinator bug must not hold a node
/// for days.
pub const MAX_TTL_MS: u32 = 3_600_000;
/// Waits between heal attempts: doubling from the first to the last.
const FIRST_RETRY_MS: u64 = 1_000;
const LAST_RETRY_MS: u64 = 30_000;

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
    /// Faults applied under the lease, in the order applied; each one
    /// leaves once healed.
    #[serde(default)]
    pub faults: Vec<Applied>,
    /// Set once the lease ended with faults left to heal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healing: Option<Healing>,
}

/// An ended lease's faults on their way out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healing {
    /// When the lease ended.
    pub since_unix_ms: u64,
    /// Attempts that left a fault unhealed.
    pub failed_attempts: u32,
    /// When the next attempt is due.
    pub next_unix_ms: u64,
    /// Why each fault still here failed to heal, last time.
    #[serde(default)]
    pub errors: Vec<(Applied, String)>,
}

impl Healing {
    fn started(now: u64) -> Healing {
        Healing {
            since_unix_ms: now,
            next_unix_ms: now,
            ..Healing::default()
        }
    }

    /// The last error of `fault`, if its heal failed.
    pub fn error_of(&self, fault: &Applied) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == fault)
            .map(|(_, e)| e.as_str())
    }
}

/// The wait after `failed` failed attempts: 1 s, 2 s, 4 s ... 30 s.
pub fn retry_after_ms(failed: u32) -> u64 {
    let doublings = failed.saturating_sub(1).min(16);
    (FIRST_RETRY_MS << doublings).min(LAST_RETRY_MS)
}

pub struct Leases {
    /// None: kept in memory only (tests).
    file: Option<LeaseFile>,
    all: Mutex<BTreeMap<String, Lease>>,
    /// No copy of the file could be read at start: faults may be in place
    /// that nothing records.
    damaged: bool,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The lease `lease` names, taken now or extended; an ended one is not
/// taken again.
fn entry<'a>(
    all: &'a mut BTreeMap<String, Lease>,
    lease: &v1::Lease,
    expires: u64,
) -> anyhow::Result<&'a mut Lease> {
    let entry = all.entry(lease.id.clone()).or_insert_with(|| Lease {
        id: lease.id.clone(),
        expires_unix_ms: expires,
        renewed_unix_ms: 0,
        nodes: BTreeSet::new(),
        faults: Vec::new(),
        healing: None,
    });
    anyhow::ensure!(
        entry.healing.is_none(),
        "lease {} has ended; its faults are being healed",
        lease.id
    );
    entry.expires_unix_ms = entry.expires_unix_ms.max(expires);
    entry.renewed_unix_ms = now_ms();
    Ok(entry)
}

/// Ends `lease` at `now`: it holds no node any more; one with faults stays
/// until they are healed.
fn end(all: &mut BTreeMap<String, Lease>, id: &str, now: u64) {
    let Some(lease) = all.get_mut(id) else { return };
    lease.nodes.clear();
    if lease.faults.is_empty() {
        all.remove(id);
    } else if lease.healing.is_none() {
        lease.healing = Some(Healing::started(now));
    }
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
            file: None,
            all: Mutex::new(BTreeMap::new()),
            damaged: false,
        }
    }

    /// The leases kept at `path` (none when it does not exist yet). Every
    /// lease with faults that a previous run of the agent left has ended:
    /// its faults are healed as soon as the node set is known. When no copy
    /// of the file parses, the faults salvaged from it end in a lease of
    /// their own, and `damaged` says the rest must be looked for.
    pub fn open(path: PathBuf) -> anyhow::Result<Leases> {
        let file = LeaseFile::new(path);
        let now = now_ms();
        let (mut all, damaged) = match file.load()? {
            Loaded::Missing => (BTreeMap::new(), false),
            Loaded::Read(list) => (list.into_iter().map(|l| (l.id.clone(), l)).collect(), false),
            Loaded::Damaged { salvaged } => {
                let mut all = BTreeMap::new();
                if !salvaged.is_empty() {
                    let id = format!("recovered-{now}");
                    let lease = Lease {
                        id: id.clone(),
                        expires_unix_ms: now,
                        renewed_unix_ms: now,
                        nodes: BTreeSet::new(),
                        faults: salvaged,
                        healing: None,
                    };
                    all.insert(id, lease);
                }
                (all, true)
            }
        };
        let left: Vec<String> = all
            .values()
            .filter(|l| !l.faults.is_empty())
            .map(|l| l.id.clone())
            .collect();
        for id in &left {
            end(&mut all, id, now);
        }
        file.keep_reserve();
        if damaged || !left.is_empty() {
            // Best effort: unwritten, the same is found again next time.
            let list: Vec<&Lease> = all.values().collect();
            if let Err(e) = file.write(&list) {
                warn!(path = %file.path().display(), error = %format!("{e:#}"), "cannot write the lease file");
            }
        }
        Ok(Leases {
            file: Some(file),
            all: Mutex::new(all),
            damaged,
        })
    }

    /// Whether no copy of the lease file could be read at start.
    pub fn damaged(&self) -> bool {
        self.damaged
    }

    /// Applies `change` and writes the result; on a failed write nothing
    /// changes. For what adds to the file: a fault is applied only once it
    /// is recorded.
    fn grow<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Lease>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut all = self.all.lock().unwrap();
        let mut next = all.clone();
        let out = change(&mut next)?;
        if next != *all {
            self.persist(&next)?;
            *all = next;
        }
        Ok(out)
    }

    /// Applies `change` even when the file cannot be written: what it ends
    /// is then ended again (healed again) by the next agent, never lost.
    fn shrink<T>(&self, change: impl FnOnce(&mut BTreeMap<String, Lease>) -> T) -> T {
        let mut all = self.all.lock().unwrap();
        let before = all.clone();
        let out = change(&mut all);
        if *all != before {
            if let Err(e) = self.persist(&all) {
                warn!(error = %format!("{e:#}"), "cannot write the lease file; it keeps what this agent has ended since");
            }
        }
        out
    }

    fn persist(&self, all: &BTreeMap<String, Lease>) -> anyhow::Result<()> {
        match &self.file {
            Some(file) => file.write(&all.values().collect::<Vec<_>>()),
            None => Ok(()),
        }
    }

    /// Puts `key` under `lease` (taking or extending it).
    pub fn hold(&self, lease: &v1::Lease, key: &NodeKey) -> anyhow::Result<()> {
        let expires = now_ms() + u64::from(lease.ttl_ms);
        self.grow(|all| {
            entry(all, lease, expires)?.nodes.insert(key.clone());
            Ok(())
        })
    }

    /// Records a fault under `lease` (taking or extending it).
    pub fn add_fault(&self, lease: &v1::Lease, applied: Applied) -> anyhow::Result<()> {
        let expires = now_ms() + u64::from(lease.ttl_ms);
        self.grow(|all| {
            entry(all, lease, expires)?.faults.push(applied);
            Ok(())
        })
    }

    /// Ends lease `id` (HEAL); true when it has faults to heal.
    pub fn end(&self, id: &str) -> bool {
        let now = now_ms();
        self.shrink(|all| {
            end(all, id, now);
            all.contains_key(id)
        })
    }

    /// The lease `id`, if it is kept.
    pub fn get(&self, id: &str) -> Option<Lease> {
        self.all.lock().unwrap().get(id).cloned()
    }

    /// `fault` of ended lease `id` is healed: it leaves, and so does the
    /// lease with its last fault.
    pub fn healed(&self, id: &str, fault: &Applied) {
        self.shrink(|all| {
            let Some(lease) = all.get_mut(id) else { return };
            if let Some(at) = lease.faults.iter().rposition(|f| f == fault) {
                lease.faults.remove(at);
            }
            if let Some(h) = &mut lease.healing {
                h.errors.retain(|(f, _)| f != fault);
            }
            if lease.faults.is_empty() && lease.healing.is_some() {
                all.remove(id);
            }
        })
    }

    /// An attempt left `errors` (fault, why) of ended lease `id`: the next
    /// one is due after a backoff. Returns the lease's healing state.
    pub fn heal_failed(&self, id: &str, errors: Vec<(Applied, String)>, now: u64) -> Option<Healing> {
        self.shrink(|all| {
            let healing = all.get_mut(id)?.healing.as_mut()?;
            healing.failed_attempts += 1;
            healing.next_unix_ms = now + retry_after_ms(healing.failed_attempts);
            healing.errors = errors;
            Some(healing.clone())
        })
    }

    /// Ended leases whose next heal attempt is due at `now`.
    pub fn due(&self, now: u64) -> Vec<String> {
        let all = self.all.lock().unwrap();
        all.values()
            .filter(|l| l.healing.as_ref().is_some_and(|h| h.next_unix_ms <= now))
            .map(|l| l.id.clone())
            .collect()
    }

    /// Ended leases with faults still to heal.
    pub fn awaiting_heal(&self) -> Vec<Lease> {
        let all = self.all.lock().unwrap();
        all.values().filter(|l| l.healing.is_some()).cloned().collect()
    }

    /// Every fault awaiting its heal, as the coordinator is told.
    pub fn pending_heals(&self) -> Vec<v1::PendingHeal> {
        let mut pending = Vec::new();
        for lease in self.awaiting_heal() {
            let healing = lease.healing.clone().unwrap_or_default();
            for fault in lease.faults.iter().rev() {
                pending.push(v1::PendingHeal {
                    lease_id: lease.id.clone(),
                    fault: fault.kind().to_string(),
                    node: fault.node(),
                    failed_attempts: healing.failed_attempts,
                    error: healing.error_of(fault).unwrap_or_default().to_string(),
                    since_unix_ms: healing.since_unix_ms,
                    next_attempt_unix_ms: healing.next_unix_ms,
                });
            }
        }
        pending
    }

    /// Takes `key` out of lease `id` (an empty id: out of every lease); a
    /// lease left holding nothing ends.
    pub fn release(&self, id: &str, key: &NodeKey) {
        self.shrink(|all| {
            for lease in all.values_mut().filter(|l| id.is_empty() || l.id == id) {
                lease.nodes.remove(key);
            }
            all.retain(|_, l| !l.nodes.is_empty() || !l.faults.is_empty());
        })
    }

    /// Extends the listed leases to `ttl_ms` from now; returns the ids not
    /// held (never taken, or ended).
    pub fn renew(&self, ids: &[String], ttl_ms: u32) -> Vec<String> {
        let expires = now_ms() + u64::from(ttl_ms.min(MAX_TTL_MS));
        self.shrink(|all| {
            let mut missing = Vec::new();
            for id in ids {
                match all.get_mut(id).filter(|l| l.healing.is_none()) {
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

    /// Whether a lease that has not lapsed or ended owns the node's run
    /// state.
    pub fn is_held(&self, key: &NodeKey) -> bool {
        let now = now_ms();
        let all = self.all.lock().unwrap();
        all.values()
            .any(|l| l.healing.is_none() && l.expires_unix_ms > now && l.nodes.contains(key))
    }

    /// Ends every lease that has lapsed by `now` and returns them as they
    /// were.
    pub fn expire_at(&self, now: u64) -> Vec<Lease> {
        self.shrink(|all| {
            let lapsed: Vec<Lease> = all
                .values()
                .filter(|l| l.healing.is_none() && l.expires_unix_ms <= now)
                .cloned()
                .collect();
            for lease in &lapsed {
                end(all, &lease.id, now);
            }
            lapsed
        })
    }

    pub fn expire(&self) -> Vec<Lease> {
        self.expire_at(now_ms())
    }

    pub fn list(&self) -> Vec<Lease> {
        self.all.lock().unwrap().values().cloned().collect()
    }
}
