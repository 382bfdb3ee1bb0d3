//! The cache's port inside every container node: a listener on the
//! node's own loopback, made in its network namespace, so a node with no
//! route out still reaches the cache and nothing else of the host. A
//! container that starts again has a new namespace: a sweep notices and
//! listens in the new one.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use super::AptCache;
use crate::nodes::connection::Libvirt;

const SWEEP: Duration = Duration::from_secs(1);

struct Listening {
    /// Inode of the namespace the listener lives in.
    netns: u64,
    task: tokio::task::AbortHandle,
}

pub struct NodePorts {
    cache: Arc<AptCache>,
    port: u16,
    runtime: tokio::runtime::Handle,
    listening: Mutex<HashMap<String, Option<Listening>>>,
}

impl std::fmt::Debug for NodePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePorts").field("port", &self.port).finish()
    }
}

fn netns_inode(init: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{init}/ns/net");
    Ok(std::fs::metadata(&path)
        .with_context(|| format!("reading {path}"))?
        .ino())
}

impl NodePorts {
    /// Must be called inside the agent's runtime.
    pub fn new(cache: Arc<AptCache>, port: u16) -> Arc<NodePorts> {
        Arc::new(NodePorts {
            cache,
            port,
            runtime: tokio::runtime::Handle::current(),
            listening: Mutex::new(HashMap::new()),
        })
    }

    /// The port nodes use (`http://127.0.0.1:PORT/NAME/`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Listens in the namespace of the container whose init is `init`,
    /// unless a listener is there already. Blocks briefly.
    pub fn ensure(&self, domain: &str, init: u32) -> anyhow::Result<()> {
        let netns = netns_inode(init)?;
        let mut listening = self.listening.lock().unwrap();
        if let Some(Some(l)) = listening.get(domain) {
            if l.netns == netns && !l.task.is_finished() {
                return Ok(());
            }
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let std_listener = crate::nodes::driver::listen_inside(init, addr)?;
        std_listener.set_nonblocking(true)?;
        let _guard = self.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let cache = self.cache.clone();
        let task = self.runtime.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(super::server::serve_connection(cache.clone(), stream));
                    }
                    Err(e) => {
                        tracing::warn!("apt cache listener: {e}");
                        tokio::time::sleep(SWEEP).await;
                    }
                }
            }
        });
        if let Some(Some(old)) = listening.insert(
            domain.to_string(),
            Some(Listening {
                netns,
                task: task.abort_handle(),
            }),
        ) {
            old.task.abort();
        }
        tracing::debug!(domain, port = self.port, "apt cache listening in the node");
        Ok(())
    }

    /// Stops listening for the node and stops following it (it stopped or
    /// went away); the socket would otherwise keep its namespace alive.
    pub fn forget(&self, domain: &str) {
        if let Some(Some(l)) = self.listening.lock().unwrap().remove(domain) {
            l.task.abort();
        }
    }

    /// Listens in the node's current namespace, or stops listening while
    /// it is off (it stays followed for when it runs again).
    fn follow(&self, hv: &crate::libvirt::Hypervisor, domain: &str) {
        let init = match hv.id(domain) {
            Ok(Some(controller)) => crate::nodes::driver::container_init(controller).ok(),
            _ => None,
        };
        match init {
            Some(init) => {
                if let Err(e) = self.ensure(domain, init) {
                    tracing::debug!(domain, "apt cache: {e:#}");
                }
            }
            None => {
                if let Some(slot) = self.listening.lock().unwrap().get_mut(domain) {
                    if let Some(l) = slot.take() {
                        l.task.abort();
                    }
                }
            }
        }
    }

    /// Follows the nodes this agent started through restarts it did not
    /// make itself (a reboot from inside), until `forget`.
    pub fn sweep_forever(self: Arc<Self>, lxc_uri: String) {
        let libvirt = Libvirt::new(&lxc_uri);
        std::thread::Builder::new()
            .name("apt-cache-sweep".into())
            .spawn(move || loop {
                std::thread::sleep(SWEEP);
                let domains: Vec<String> = self.listening.lock().unwrap().keys().cloned().collect();
                let Ok(hv) = libvirt.get() else { continue };
                for domain in domains {
                    match hv.state(&domain) {
                        Ok(None) => self.forget(&domain),
                        Ok(Some(_)) => self.follow(&hv, &domain),
                        Err(_) => {} // libvirtd restarting: next sweep
                    }
                }
            })
            .expect("spawning a thread");
    }
}
