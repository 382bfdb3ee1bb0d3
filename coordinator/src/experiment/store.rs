//! Run records in their own sled tree: written at the start of a run, at
//! every stage and at its end, each write flushed. Kept apart from the
//! topology so runs never touch the revision or the rules.

use dclab_proto::experiment::record::RunRecord;
use dclab_proto::ApiError;

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

    /// Every run, oldest first (ids sort by start).
    pub fn list(&self) -> Result<Vec<RunRecord>, ApiError> {
        self.tree
            .iter()
            .map(|item| {
                let (_, v) = item.map_err(internal)?;
                serde_json::from_slice(&v).map_err(internal)
            })
            .collect()
    }
}
