//! A playbook's `manifest.toml` (e.g. `playbooks/openstack/manifest.toml`):
//! its chapters in order, and the passwords they use. Read from the
//! playbooks dir at run time, so a new chapter needs no new ctl. The image
//! part (`[image]`, `[[role]]`) is the agent's.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Manifest {
    #[serde(rename = "chapter")]
    pub chapters: Vec<Chapter>,
}

#[derive(Debug, Deserialize)]
pub struct Chapter {
    /// The chapter file without `.yml`.
    pub name: String,
    /// Passwords its plays and templates use, generated once per lab.
    #[serde(default)]
    pub secrets: Vec<String>,
}

pub fn path(book: &Path) -> PathBuf {
    book.join("manifest.toml")
}

impl Manifest {
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Manifest> {
        let manifest: Manifest =
            toml::from_str(text).with_context(|| format!("{} does not parse", path.display()))?;
        if manifest.chapters.is_empty() {
            bail!("{} names no [[chapter]]", path.display());
        }
        Ok(manifest)
    }

    /// The chapter names, in the order they run.
    pub fn chapter_names(&self) -> Vec<String> {
        self.chapters.iter().map(|c| c.name.clone()).collect()
    }

    /// Every chapter's passwords, each once, in the chapters' order.
    pub fn secrets(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for name in self.chapters.iter().flat_map(|c| &c.secrets) {
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
        all
    }
}
