//! Persistence in sled. Every change is one atomic batch (records plus the
//! revision counter), flushed before the caller sees success, so a crash
//! leaves either the old state or the new one.

use std::path::Path;

use dclab_proto::ApiError;

use crate::model::{NetId, Topology};
use crate::record::{Op, Record};

const REVISION: &str = "meta/revision";
const NEXT_NET_ID: &str = "meta/next_net_id";

pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
}

/// What the store holds, loaded at start.
pub struct Loaded {
    pub topo: Topology,
    pub revision: u64,
    pub next_net_id: NetId,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store in {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("store i/o failed: {0}")]
    Io(#[from] sled::Error),
    #[error("store record {key} is corrupt: {source}")]
    Corrupt { key: String, source: serde_json::Error },
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        ApiError::Internal(err.to_string())
    }
}

/// How long to wait for a previous coordinator on the same store (one that
/// was just killed and is still exiting) to let go of its lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn open_locked(dir: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // Every commit flushes itself; without sled's background flusher
        // thread, dropping the store also releases its lock at once.
        let opened = sled::Config::new().path(dir).flush_every_ms(None).open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = open_locked(dir).map_err(|source| StoreError::Open {
            path: dir.display().to_string(),
            source,
        })?;
        let tree = db.open_tree("topology")?;
        Ok(Store { db, tree })
    }

    pub fn load(&self) -> Result<Loaded, StoreError> {
        let mut topo = Topology::default();
        // Networks before ports: port indices refer to networks.
        let mut records = Vec::new();
        for item in self.tree.iter() {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            if key.starts_with("meta/") {
                continue;
            }
            let record: Record =
                serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt { key, source })?;
            records.push(record);
        }
        records.sort_by_key(|r| matches!(r, Record::Port(_)));
        for record in records {
            topo.apply(&Op::Put(record));
        }
        Ok(Loaded {
            topo,
            revision: self.counter(REVISION)?,
            next_net_id: self.counter(NEXT_NET_ID)?.max(1) as NetId,
        })
    }

    fn counter(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self
            .tree
            .get(key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Writes the ops and the new counters in one atomic batch, durably.
    pub fn commit(&self, ops: &[Op], revision: u64, next_net_id: NetId) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                Op::Put(record) => {
                    let value = serde_json::to_vec(record).expect("records always serialize");
                    batch.insert(record.key().encode().as_bytes(), value);
                }
                Op::Delete(key) => batch.remove(key.encode().as_bytes()),
            }
        }
        batch.insert(REVISION, &revision.to_be_bytes());
        batch.insert(NEXT_NET_ID, &u64::from(next_net_id).to_be_bytes());
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// The tree experiment runs are kept in.
    pub fn runs_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree("runs")?)
    }

    /// Bytes on disk, for status and benchmarks.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
