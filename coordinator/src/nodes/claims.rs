//! Who holds a lab: a snapshot operation (pause, snapshot, revert) or an
//! experiment run. Both are decided under one lock, so a snapshot and a run
//! never both pass their check at once. A lab held is neither re-applied
//! nor deleted: that check runs inside the write, and a run re-reads its
//! lab after claiming it, so a change never slips in between.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dclab_proto::error::{precondition, unavailable};
use dclab_proto::ApiError;
use parking_lot::Mutex;

#[derive(Default)]
struct Held {
    /// Labs with a snapshot operation under way.
    snapshots: HashSet<String>,
    /// Lab → the run under way on it.
    runs: HashMap<String, String>,
}

#[derive(Default)]
pub struct Claims {
    held: Mutex<Held>,
}

impl Claims {
    /// A snapshot operation on `lab`: refused while another one runs, and
    /// while a run is under way unless `force` (its faults would end up in
    /// the snapshot).
    pub fn snapshot(self: &Arc<Self>, lab: &str, force: bool) -> Result<Claim, ApiError> {
        let mut held = self.held.lock();
        if held.snapshots.contains(lab) {
            return Err(unavailable(format!(
                "lab {lab} is busy with another snapshot operation; try again when it ends"
            )));
        }
        if let (Some(run), false) = (held.runs.get(lab), force) {
            return Err(precondition(format!(
                "lab {lab} has experiment run {run} under way, and its faults may be active; \
                 snapshot after it ends (`ctl experiment abort {run}` ends it now), or pass --force"
            )));
        }
        held.snapshots.insert(lab.to_string());
        Ok(Claim {
            claims: self.clone(),
            lab: lab.to_string(),
            run: None,
        })
    }

    /// Run `id` on `lab`: refused while a snapshot operation or another run
    /// holds the lab.
    pub fn run(self: &Arc<Self>, lab: &str, id: &str) -> Result<Claim, ApiError> {
        let mut held = self.held.lock();
        if held.snapshots.contains(lab) {
            return Err(precondition(format!(
                "lab {lab} is busy with a snapshot; try again when it ends"
            )));
        }
        if let Some(other) = held.runs.get(lab) {
            return Err(precondition(format!(
                "lab {lab} already has run {other} under way; wait for it or `ctl experiment abort {other}`"
            )));
        }
        held.runs.insert(lab.to_string(), id.to_string());
        Ok(Claim {
            claims: self.clone(),
            lab: lab.to_string(),
            run: Some(id.to_string()),
        })
    }

    /// Refuses a change of `lab` (apply, delete) while anything holds it.
    pub fn check_free(&self, lab: &str, change: &str) -> Result<(), ApiError> {
        let held = self.held.lock();
        if held.snapshots.contains(lab) {
            return Err(unavailable(format!(
                "lab {lab} is busy with a snapshot operation; try again when it ends"
            )));
        }
        if let Some(run) = held.runs.get(lab) {
            return Err(precondition(format!(
                "lab {lab} has experiment run {run} under way; {change} it when the run ends \
                 (`ctl experiment abort {run}` ends it now)"
            )));
        }
        Ok(())
    }
}

/// A hold on a lab, released when dropped.
pub struct Claim {
    claims: Arc<Claims>,
    lab: String,
    run: Option<String>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.claims.held.lock();
        match &self.run {
            Some(id) if held.runs.get(&self.lab) == Some(id) => {
                held.runs.remove(&self.lab);
            }
            Some(_) => {}
            None => {
                held.snapshots.remove(&self.lab);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_and_a_run_never_hold_a_lab_together_unless_forced() {
        let claims = Arc::new(Claims::default());
        let run = claims.run("lab", "r1").unwrap();
        assert!(claims.snapshot("lab", false).is_err());
        assert!(claims.run("lab", "r2").is_err());
        assert!(claims.check_free("lab", "delete").is_err());
        let forced = claims.snapshot("lab", true).unwrap();
        assert!(claims.snapshot("lab", true).is_err(), "one snapshot at a time");
        drop(run);
        assert!(claims.run("lab", "r3").is_err(), "the snapshot still holds it");
        drop(forced);
        claims.check_free("lab", "delete").unwrap();
        let _snap = claims.snapshot("lab", false).unwrap();
        assert!(claims.run("lab", "r4").is_err());
        claims.check_free("other", "apply").unwrap();
    }

    #[test]
    fn racing_snapshots_and_runs_never_both_win() {
        for _ in 0..200 {
            let claims = Arc::new(Claims::default());
            let (a, b) = (claims.clone(), claims.clone());
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let (ba, bb) = (barrier.clone(), barrier);
            let snap = std::thread::spawn(move || {
                ba.wait();
                a.snapshot("lab", false).map(std::mem::forget).is_ok()
            });
            let run = std::thread::spawn(move || {
                bb.wait();
                b.run("lab", "r").map(std::mem::forget).is_ok()
            });
            let won = [snap.join().unwrap(), run.join().unwrap()];
            assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        }
    }
}
