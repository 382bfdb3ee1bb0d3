//! Where a node's files live on this host, and what the domain is called.
//!
//! ```text
//! <lab_dir>/<lab>/<node>/spec.json      the DesiredNode as applied (written first)
//!                        root.qcow2     overlay on the image
//!                        disk1.qcow2 …  the node's extra disks
//!                        seed.iso       cloud-init NoCloud seed (cloud images only)
//!                        console.sock   serial console (ttyS0)
//! ```
//!
//! A node dir is what this agent owns: it only ever removes domains it has
//! a dir for, since several agents may share one libvirtd.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// (lab, node name)
pub type NodeKey = (String, String);

/// "node NAME of lab LAB", for messages.
pub fn describe(key: &NodeKey) -> String {
    format!("node {} of lab {}", key.1, key.0)
}

/// Lab and node names cannot contain '.', so the name is unambiguous.
pub fn domain_name(lab: &str, node: &str) -> String {
    format!("dclab.{lab}.{node}")
}

/// Names become path components and domain names: the one name rule,
/// which keeps them from escaping the lab dir or hiding from the scan.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    dclab_spec::validate::check_name(what, name)
        .map_err(|e| format!("{what} name {name:?} cannot name a directory: {e}"))
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub lab_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDir {
    pub path: PathBuf,
}

impl NodeDir {
    pub fn spec(&self) -> PathBuf {
        self.path.join("spec.json")
    }

    pub fn root_disk(&self) -> PathBuf {
        self.path.join("root.qcow2")
    }

    /// The `n`th extra disk, from 1.
    pub fn extra_disk(&self, n: usize) -> PathBuf {
        self.path.join(format!("disk{n}.qcow2"))
    }

    pub fn seed(&self) -> PathBuf {
        self.path.join("seed.iso")
    }

    pub fn console(&self) -> PathBuf {
        self.path.join("console.sock")
    }

    /// Creates the dir (and its parents) readable by qemu, which runs as
    /// its own user and must reach the disks.
    pub fn create(&self) -> anyhow::Result<()> {
        create_dir_0755(&self.path)
    }
}

impl Layout {
    pub fn node_dir(&self, lab: &str, node: &str) -> NodeDir {
        NodeDir {
            path: self.lab_dir.join(lab).join(node),
        }
    }

    /// Every node dir under the lab dir. Hidden entries (temporary files)
    /// and plain files are not nodes.
    pub fn existing_nodes(&self) -> anyhow::Result<Vec<NodeKey>> {
        let mut nodes = Vec::new();
        for lab in subdirs(&self.lab_dir)? {
            for node in subdirs(&self.lab_dir.join(&lab))? {
                nodes.push((lab.clone(), node));
            }
        }
        nodes.sort();
        Ok(nodes)
    }

    /// Removes the lab's dir once its last node dir is gone.
    pub fn remove_lab_if_empty(&self, lab: &str) {
        // Fails while it still has entries, which is the point.
        let _ = std::fs::remove_dir(self.lab_dir.join(lab));
    }
}

fn subdirs(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        match entry.file_name().into_string() {
            Ok(name) if is_dir && !name.starts_with('.') => names.push(name),
            _ => {}
        }
    }
    Ok(names)
}

/// `create_dir_all`, then mode 0755 on every dir it made or found on the
/// way below the first existing ancestor.
pub fn create_dir_0755(path: &Path) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    let mut p = path;
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    for dir in missing.iter().chain(std::iter::once(&path.to_path_buf())) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} readable for qemu", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names_follow_the_layout() {
        let layout = Layout {
            lab_dir: "/var/lib/dclab/labs".into(),
        };
        let dir = layout.node_dir("lab1", "web");
        assert_eq!(dir.path, Path::new("/var/lib/dclab/labs/lab1/web"));
        assert_eq!(dir.spec(), Path::new("/var/lib/dclab/labs/lab1/web/spec.json"));
        assert_eq!(
            dir.root_disk(),
            Path::new("/var/lib/dclab/labs/lab1/web/root.qcow2")
        );
        assert_eq!(
            dir.extra_disk(2),
            Path::new("/var/lib/dclab/labs/lab1/web/disk2.qcow2")
        );
        assert_eq!(dir.seed(), Path::new("/var/lib/dclab/labs/lab1/web/seed.iso"));
        assert_eq!(
            dir.console(),
            Path::new("/var/lib/dclab/labs/lab1/web/console.sock")
        );
        assert_eq!(domain_name("lab1", "web"), "dclab.lab1.web");
        assert_eq!(describe(&("lab1".into(), "web".into())), "node web of lab lab1");
    }

    #[test]
    fn names_that_could_escape_the_lab_dir_are_refused() {
        check_name("node", "web-1.a_b").unwrap();
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "é"] {
            let err = check_name("node", bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn the_scan_finds_node_dirs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout {
            lab_dir: tmp.path().join("labs"),
        };
        assert!(layout.existing_nodes().unwrap().is_empty(), "no lab dir yet");
        layout.node_dir("b", "x").create().unwrap();
        layout.node_dir("a", "y").create().unwrap();
        layout.node_dir("a", ".tmp").create().unwrap();
        std::fs::write(layout.lab_dir.join("a").join("stray-file"), "").unwrap();
        let mode = std::fs::metadata(layout.lab_dir.join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            layout.existing_nodes().unwrap(),
            [
                ("a".to_string(), "y".to_string()),
                ("b".to_string(), "x".to_string())
            ]
        );
        std::fs::remove_dir(layout.node_dir("b", "x").path).unwrap();
        layout.remove_lab_if_empty("b");
        layout.remove_lab_if_empty("a");
        assert!(!layout.lab_dir.join("b").exists());
        assert!(layout.lab_dir.join("a").exists(), "still has entries");
    }
}
