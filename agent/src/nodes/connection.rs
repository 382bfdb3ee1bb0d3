//! The libvirt connection, opened on first use and again after libvirtd
//! went away: a host without libvirtd still runs its flows, and its nodes
//! report why they cannot run.

use std::sync::{Arc, Mutex};

use crate::libvirt::Hypervisor;

pub struct Libvirt {
    uri: String,
    conn: Mutex<Option<Arc<Hypervisor>>>,
}

impl Libvirt {
    pub fn new(uri: &str) -> Libvirt {
        Libvirt {
            uri: uri.to_string(),
            conn: Mutex::new(None),
        }
    }

    /// The open connection, (re)connecting if needed. Blocks: call from
    /// blocking threads.
    pub fn get(&self) -> anyhow::Result<Arc<Hypervisor>> {
        let mut conn = self.conn.lock().unwrap();
        if let Some(hv) = conn.as_ref().filter(|hv| hv.is_alive()) {
            return Ok(hv.clone());
        }
        *conn = None;
        let hv = Hypervisor::open(&self.uri).map_err(|e| {
            anyhow::anyhow!(
                "libvirt unreachable at {}: {}; start libvirtd (or pass --libvirt-uri)",
                self.uri,
                e.reason()
            )
        })?;
        let hv = Arc::new(hv);
        *conn = Some(hv.clone());
        Ok(hv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_lazily_and_says_what_to_do_when_it_cannot() {
        let ok = Libvirt::new("test:///default");
        let a = ok.get().unwrap();
        let b = ok.get().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one connection, reused");
        let bad = Libvirt::new("qemu+unix:///system?socket=/nonexistent/libvirt-sock");
        let err = bad
            .get()
            .err()
            .expect("no libvirtd behind that socket")
            .to_string();
        assert!(
            err.starts_with("libvirt unreachable at qemu+unix:///system?socket=/nonexistent/libvirt-sock: ")
                && err.contains("start libvirtd"),
            "{err}"
        );
    }
}
