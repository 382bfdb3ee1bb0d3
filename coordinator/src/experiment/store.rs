//! Run records in their own sled tree: written at the start of a run,
//! after every step and check and at its end, each write flushed. Kept apart from the
//! topology so runs never touch the revision or the rules.

use dclab_proto::ApiError;
use dclab_spec::experiment::record::RunRecord;

pub struct RunStore {
    tree: sled::Tree,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("run store: {e}"))
}

impl RunStore {
    pub fn new(tree: sled::Tree) -> RunStore {
        RunStore { tree }
    }

    pub fn put(&self, run: &RunRecord) -> Result<(), ApiError> {
        let value = serde_json::to_vec(run).map_err(internal)?;
        self.tree.insert(run.id.as_bytes(), value).map_err(internal)?;
        self.tree.flush().map_err(internal)?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<RunRecord>, ApiError> {
        match self.tree.get(id.as_bytes()).map_err(internal)? {
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(internal),
            None => Ok(None),
        }
    }

    /// Every run, oldest first. Ids do not sort by start as text (the
    /// counter after the coordinator's start time has no leading zeros).
    pub fn list(&self) -> Result<Vec<RunRecord>, ApiError> {
        let mut runs = self
            .tree
            .iter()
            .map(|item| {
                let (_, v) = item.map_err(internal)?;
                serde_json::from_slice(&v).map_err(internal)
            })
            .collect::<Result<Vec<RunRecord>, ApiError>>()?;
        runs.sort_by_key(|r| r.started_unix_ms);
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dclab_spec::experiment::record::Verdict;

    fn record(id: &str, started: u64) -> RunRecord {
        let spec = dclab_spec::experiment::parse(
            "t.toml",
            "[experiment]\nname = \"t\"\n[[stage]]\nname = \"s\"\n[[stage.step]]\nwait = \"1s\"\n",
        )
        .unwrap();
        RunRecord {
            id: id.into(),
            experiment: "t".into(),
            title: String::new(),
            lab: "l".into(),
            spec,
            seed: 1,
            started_unix_ms: started,
            ended_unix_ms: None,
            verdict: Verdict::Running,
            targets: vec![],
            timeline: vec![],
            checks: vec![],
            probes: vec![],
            findings: vec![],
            error: None,
            trace_id: String::new(),
            fault_leases: vec![],
            awaiting_heal: vec![],
        }
    }

    #[test]
    fn runs_are_listed_in_the_order_they_started_not_by_id_text() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let store = RunStore::new(db.open_tree("runs").unwrap());
        for n in [2, 10, 1, 11, 9] {
            store.put(&record(&format!("r100-{n}"), 100 + n)).unwrap();
        }
        let order: Vec<u64> = store.list().unwrap().iter().map(|r| r.started_unix_ms).collect();
        assert_eq!(order, vec![101, 102, 109, 110, 111]);
    }
}
