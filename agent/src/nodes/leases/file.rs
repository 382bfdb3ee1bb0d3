//! The lease file on disk. Each write goes whole to a temporary file,
//! synced and renamed over the old one (a crash leaves the old file or the
//! new one, never half of one), then the same again for a backup copy, and
//! the directory is synced. So a damaged file (a bad block, a hand edit)
//! still has a twin to read.
//!
//! The state dir may share its filesystem with what a fault fills (in the
//! local setup a container node's overlay is on it): a reserve file keeps
//! space the agent gives up when a write finds the disk full, so the lease
//! file can still be written, and a fault healed and forgotten.
//!
//! When neither copy parses, every fault whose JSON is still whole in
//! either is salvaged; the files are kept aside for a look.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tracing::{debug, warn};

use super::Lease;
use crate::faults::Applied;

/// Room kept for the lease file: far more than a file of every fault a
/// host could hold (a few hundred bytes each), twice.
pub const RESERVE_BYTES: u64 = 4 << 20;

/// What was found on disk.
#[derive(Debug)]
pub enum Loaded {
    /// No lease file yet.
    Missing,
    Read(Vec<Lease>),
    /// No copy parses: the faults found whole in them.
    Damaged {
        salvaged: Vec<Applied>,
    },
}

pub struct LeaseFile {
    path: PathBuf,
    backup: PathBuf,
    reserve: PathBuf,
    /// Whether the reserve is there (as far as this process knows).
    reserved: AtomicBool,
}

impl LeaseFile {
    pub fn new(path: PathBuf) -> LeaseFile {
        LeaseFile {
            backup: path.with_extension("json.bak"),
            reserve: path.with_extension("reserve"),
            path,
            reserved: AtomicBool::new(false),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file, else its backup, else salvages what it can; an
    /// unreadable copy is moved aside (`.corrupt`).
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let dir = self.path.parent().context("lease file path has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut damaged = Vec::new();
        for copy in [&self.path, &self.backup] {
            let bytes = match std::fs::read(copy) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    warn!(path = %copy.display(), error = %e, "cannot read a copy of the lease file");
                    continue;
                }
            };
            match serde_json::from_slice::<Vec<Lease>>(&bytes) {
                Ok(list) => {
                    if !damaged.is_empty() {
                        warn!(path = %copy.display(), "lease file damaged; its backup was read instead");
                    }
                    return Ok(Loaded::Read(list));
                }
                Err(e) => {
                    let aside = aside(copy);
                    warn!(path = %copy.display(), error = %e, aside = %aside.display(), "unreadable copy of the lease file set aside");
                    std::fs::rename(copy, &aside)
                        .with_context(|| format!("moving {} aside", copy.display()))?;
                    damaged.push(bytes);
                }
            }
        }
        if damaged.is_empty() {
            return Ok(Loaded::Missing);
        }
        let mut salvaged: Vec<Applied> = Vec::new();
        for bytes in &damaged {
            for fault in salvage(&String::from_utf8_lossy(bytes)) {
                if !salvaged.contains(&fault) {
                    salvaged.push(fault);
                }
            }
        }
        warn!(salvaged = salvaged.len(), "no copy of the lease file parses; healing the faults still readable in them and sweeping for the rest");
        Ok(Loaded::Damaged { salvaged })
    }

    /// Writes `leases` to the file and its backup; a full disk gives up the
    /// reserve and tries once more.
    pub fn write(&self, leases: &[&Lease]) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(leases)?;
        match self.write_copies(&text) {
            Err(e) if out_of_space(&e) && self.release_reserve() => {
                warn!(path = %self.path.display(), "the lease file's filesystem is full; writing into the agent's reserve");
                self.write_copies(&text)?;
            }
            other => other?,
        }
        if !self.reserved.load(Ordering::Relaxed) {
            self.keep_reserve();
        }
        Ok(())
    }

    fn write_copies(&self, text: &[u8]) -> anyhow::Result<()> {
        let dir = self.path.parent().context("lease file path has no directory")?;
        for copy in [&self.path, &self.backup] {
            write_atomically(dir, copy, text).with_context(|| format!("writing {}", copy.display()))?;
        }
        // The renames are durable only once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))
    }

    /// Makes sure the reserve holds `RESERVE_BYTES` of real blocks; a disk
    /// too full for it leaves it for a later write.
    pub fn keep_reserve(&self) {
        match allocate(&self.reserve, RESERVE_BYTES) {
            Ok(()) => self.reserved.store(true, Ordering::Relaxed),
            Err(e) => {
                let _ = std::fs::remove_file(&self.reserve);
                debug!(path = %self.reserve.display(), error = %e, "no room for the lease file's reserve yet");
            }
        }
    }

    /// Frees the reserve; false if there was none to free.
    fn release_reserve(&self) -> bool {
        self.reserved.store(false, Ordering::Relaxed);
        std::fs::remove_file(&self.reserve).is_ok()
    }
}

fn aside(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    PathBuf::from(name)
}

fn write_atomically(dir: &Path, path: &Path, text: &[u8]) -> anyhow::Result<()> {
    let mut tmp = tempfile::Builder::new().prefix(".leases-").tempfile_in(dir)?;
    tmp.write_all(text)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether `e` comes from a full filesystem (or a full quota).
fn out_of_space(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| {
            // tempfile wraps the OS error with its path: the kind stays.
            matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
                || matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
        })
}

/// A file of `len` bytes with its blocks allocated (not sparse).
fn allocate(path: &Path, len: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    if file.metadata()?.len() >= len {
        return Ok(());
    }
    // SAFETY: a valid open descriptor and a range within off_t.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
        // A filesystem without fallocate: zeros are blocks too.
        let mut writer = std::io::BufWriter::new(&file);
        let chunk = vec![0u8; 64 << 10];
        for _ in 0..len.div_ceil(chunk.len() as u64) {
            writer.write_all(&chunk)?;
        }
        writer.flush()?;
    }
    file.sync_all()
}

/// Every fault whose JSON is whole somewhere in `text`.
pub fn salvage(text: &str) -> Vec<Applied> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find('{') {
        let start = at + offset;
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Applied>();
        match stream.next() {
            Some(Ok(fault)) => {
                found.push(fault);
                at = start + stream.byte_offset();
            }
            _ => at = start + 1,
        }
    }
    found
}
