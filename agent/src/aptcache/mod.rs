//! The host's apt cache (paper 4.2–4.3: frozen packages). Container nodes
//! have no route out; the agent listens on `127.0.0.1:PORT` inside each
//! of them and serves Debian's archives from a store under `--cache-dir`
//! that outlives labs, so a reinstalled lab gets exactly the packages the
//! first install got, with or without upstream.

mod node_ports;
mod server;
mod store;
pub mod upstream;

use std::path::PathBuf;

pub use node_ports::NodePorts;
pub use upstream::Upstreams;

/// Default port of the cache inside nodes (apt-cacher-ng's).
pub const PORT: u16 = 3142;

pub struct AptCache {
    store: store::Store,
    upstreams: Upstreams,
}

impl AptCache {
    /// The store lives in `<cache_dir>/apt/mirror/<upstream>/`.
    pub fn new(cache_dir: PathBuf, upstreams: Upstreams) -> AptCache {
        AptCache {
            store: store::Store::new(cache_dir.join("apt").join("mirror")),
            upstreams,
        }
    }

    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    pub fn store_dir(&self) -> &std::path::Path {
        self.store.root()
    }
}

/// Binary keyring: apt-key cannot read the `.asc` keys of
/// `trusted.gpg.d` without gnupg, which the images do not carry.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// `/etc/apt/sources.list` of a Debian node: the image's suite from the
/// cache. Other upstreams are reached as `http://127.0.0.1:PORT/NAME/`.
pub fn node_sources(port: u16, suite: &str) -> String {
    format!(
        "# Written by dclab: the host's apt cache, the only way out of this node.\n\
         deb [signed-by={KEYRING}] http://127.0.0.1:{port}/debian {suite} main\n\
         deb [signed-by={KEYRING}] http://127.0.0.1:{port}/debian {suite}-updates main\n\
         deb [signed-by={KEYRING}] http://127.0.0.1:{port}/debian-security {suite}-security main\n"
    )
}

/// Frozen lists outlive their Valid-Until (the security archive's is a
/// week): apt must take them anyway, as with snapshot.debian.org.
pub const NODE_APT_CONF: &str = "// Written by dclab: the cache's lists are frozen on purpose.\n\
                                 Acquire::Check-Valid-Until \"false\";\n";

#[cfg(test)]
mod tests;
