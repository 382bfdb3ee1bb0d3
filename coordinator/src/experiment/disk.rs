//! How much a disk-fill may take. A filesystem a node fills may be the one
//! its host runs on: a container node's overlay sits on the host's disk,
//! beside the agent's state and the other labs. So a fill larger than the
//! filesystem's free space minus a reserve is refused, before anything is
//! written, with both figures in the message. The reserve is 5 % of the
//! filesystem, and at least 256 MiB or a tenth of it, whichever is less
//! (a 16 MiB scratch disk keeps 1.6 MiB, a 100 GiB one 5 GiB).

use std::time::Duration;

use super::act::ActError;
use super::env::Env;
use crate::model::lab::Node;

const DF_TIMEOUT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024;

/// A filesystem's size and the space its users may still take, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    pub size_kib: u64,
    pub free_kib: u64,
}

/// What stays free of a filesystem of `size_kib`.
pub fn reserve_kib(size_kib: u64) -> u64 {
    (size_kib / 20).max((256 * MIB).min(size_kib / 10))
}

/// Why a disk-fill is refused, or its room cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("df printed no filesystem: {0:?}")]
    NoFilesystem(String),
    #[error("cannot read df's line {0:?}")]
    UnreadableLine(String),
    #[error(
        "disk-fill of {mib} MiB refused: {path} is on a filesystem with no size (a ramfs?), which a fill would take whole"
    )]
    NoSize { mib: u64, path: String },
    #[error(
        "disk-fill of {mib} MiB refused: {path} has {free_mib} MiB free of {size_mib} MiB, and {reserve_mib} MiB of it \
         must stay free (at most {most} MiB can be filled)"
    )]
    TooBig {
        mib: u64,
        path: String,
        free_mib: u64,
        size_mib: u64,
        reserve_mib: u64,
        most: u64,
    },
    #[error("cannot tell how much room {path} has (df exited {code}: {output})")]
    Df { path: String, code: i32, output: String },
    #[error("node {node}: {source}")]
    OnNode { node: String, source: Box<DiskError> },
    #[error(transparent)]
    Exec(#[from] ActError),
}

/// `df -Pk PATH` as busybox and coreutils print it.
pub fn parse_df(out: &str) -> Result<Room, DiskError> {
    let row = out
        .lines()
        .skip_while(|l| !l.starts_with("Filesystem"))
        .nth(1)
        .ok_or_else(|| DiskError::NoFilesystem(out.trim().to_string()))?;
    let fields: Vec<&str> = row.split_whitespace().collect();
    let number = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| DiskError::UnreadableLine(row.to_string()))
    };
    Ok(Room {
        size_kib: number(1)?,
        free_kib: number(3)?,
    })
}

/// Whether `mib` fit under `path` of `room`; why not, in words.
pub fn fits(room: Room, mib: u64, path: &str) -> Result<(), DiskError> {
    let reserve = reserve_kib(room.size_kib);
    let most = room.free_kib.saturating_sub(reserve) / MIB;
    if room.size_kib == 0 {
        return Err(DiskError::NoSize {
            mib,
            path: path.to_string(),
        });
    }
    if mib > most {
        return Err(DiskError::TooBig {
            mib,
            path: path.to_string(),
            free_mib: room.free_kib / MIB,
            size_mib: room.size_kib / MIB,
            reserve_mib: reserve.div_ceil(MIB),
            most,
        });
    }
    Ok(())
}

/// Checks, in every node, that `mib` fit under `path`.
pub async fn check(env: &Env<'_>, nodes: &[Node], mib: u64, path: &str) -> Result<(), DiskError> {
    for node in nodes {
        let on = |e: DiskError| DiskError::OnNode {
            node: node.spec.name.clone(),
            source: Box::new(e),
        };
        let (code, out) = env.exec(node, &format!("df -Pk {path}"), DF_TIMEOUT).await?;
        if code != 0 {
            return Err(on(DiskError::Df {
                path: path.to_string(),
                code,
                output: out.trim().to_string(),
            }));
        }
        fits(parse_df(&out).map_err(on)?, mib, path).map_err(on)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_grows_with_the_filesystem() {
        assert_eq!(reserve_kib(16 * MIB), 16 * MIB / 10);
        assert_eq!(reserve_kib(1024 * MIB), 1024 * MIB / 10);
        assert_eq!(reserve_kib(4096 * MIB), 256 * MIB);
        assert_eq!(reserve_kib(100 * 1024 * MIB), 5 * 1024 * MIB);
    }

    #[test]
    fn df_of_busybox_and_coreutils_is_read() {
        let busybox = "Filesystem           1024-blocks    Used Available Capacity Mounted on\n\
                       /dev/vda                 14839      24     13615   0% /data\n";
        assert_eq!(
            parse_df(busybox).unwrap(),
            Room {
                size_kib: 14839,
                free_kib: 13615
            }
        );
        let coreutils = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                         overlay         263174212 59349600  35732860      63% /\n";
        assert_eq!(parse_df(coreutils).unwrap().free_kib, 35732860);
        assert!(parse_df("df: /nope: No such file or directory\n").is_err());
    }

    #[test]
    fn a_fill_beyond_the_free_space_minus_the_reserve_is_refused_with_both_figures() {
        let room = Room {
            size_kib: 14839,
            free_kib: 13615,
        };
        assert!(fits(room, 8, "/data").is_ok(), "13 MiB free, 1.4 MiB kept");
        let e = fits(room, 64, "/data").unwrap_err().to_string();
        assert_eq!(
            e,
            "disk-fill of 64 MiB refused: /data has 13 MiB free of 14 MiB, and 2 MiB of it must stay free \
             (at most 11 MiB can be filled)"
        );
        let host = Room {
            size_kib: 263_174_212,
            free_kib: 35_732_860,
        };
        let e = fits(host, 100 * 1024, "/tmp").unwrap_err().to_string();
        assert!(e.contains("34895 MiB free of 257006 MiB, and 12851 MiB"), "{e}");
        assert!(fits(
            Room {
                size_kib: 0,
                free_kib: 0
            },
            1,
            "/tmp"
        )
        .is_err());
    }
}
