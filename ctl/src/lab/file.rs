//! Lab files: TOML describing nodes (VMs), lab networks and optional
//! pinning of nodes to hosts. Every field keeps its place in the file, so
//! an error names the line and the field at fault.
//!
//! ```toml
//! [lab]
//! name = "openstack"
//! image = "micro"                  # default image of every node
//! ssh_keys = ["ssh-ed25519 AAAA..."] # authorized on cloud-image nodes
//!
//! [[network]]
//! name = "management"
//! cidr = "10.0.0.0/24"
//! kind = "rewrite"                 # default; "switch": a hub on one host
//!
//! [[node]]
//! name = "controller"
//! role = "controller"
//! vcpus = 2
//! memory = "4GiB"                  # MiB, GiB
//! disks = ["20GiB"]                # extra disks
//! host = "h1"                      # optional pin
//! interfaces = [{ network = "management", ip = "10.0.0.11" }]
//! ```

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabFile {
    pub lab: LabHeader,
    #[serde(default, rename = "network")]
    pub networks: Vec<NetworkSpec>,
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabHeader {
    pub name: Spanned<String>,
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    /// SSH public keys for cloud-image nodes.
    #[serde(default)]
    pub ssh_keys: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub name: Spanned<String>,
    pub cidr: Spanned<String>,
    /// "rewrite" (default) or "switch".
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub role: Option<Spanned<String>>,
    #[serde(default = "one")]
    pub vcpus: Spanned<u32>,
    pub memory: Spanned<String>,
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    #[serde(default)]
    pub disks: Vec<Spanned<String>>,
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub interfaces: Vec<Spanned<InterfaceSpec>>,
    /// "vm" (default) or "container".
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
}

fn one() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSpec {
    pub network: Spanned<String>,
    #[serde(default)]
    pub ip: Option<Spanned<String>>,
}

/// A problem in a lab file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LabFileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

pub use dclab_spec::units::{line_of, mib as parse_mib};

/// Parses TOML; syntax and shape errors carry the line of the fault.
pub fn parse(file: &str, text: &str) -> Result<LabFile, LabFileError> {
    toml::from_str(text).map_err(|e| LabFileError {
        file: file.to_string(),
        line: e.span().map_or(1, |s| line_of(text, &s)),
        message: e.message().trim().to_string(),
    })
}
