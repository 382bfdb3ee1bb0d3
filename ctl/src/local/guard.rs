//! A cluster that removes itself when dropped, so tests clean up even when
//! they panic.

use std::ops::{Deref, DerefMut};

use super::cluster::{Cluster, UpOptions};

pub struct ClusterGuard {
    cluster: Cluster,
}

impl ClusterGuard {
    pub fn up(opts: &UpOptions) -> anyhow::Result<ClusterGuard> {
        Ok(ClusterGuard {
            cluster: Cluster::up(opts)?,
        })
    }
}

impl Deref for ClusterGuard {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl DerefMut for ClusterGuard {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Err(err) = Cluster::down(self.cluster.name()) {
            eprintln!(
                "warning: cleaning up local cluster {}: {err:#}",
                self.cluster.name()
            );
        }
    }
}
