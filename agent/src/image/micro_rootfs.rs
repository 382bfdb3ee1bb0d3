//! The micro image as a container rootfs: host busybox and a tiny init,
//! for tests and demos of container nodes that need no real services.
//! Nodes mount it read-only as the lower layer of their overlay.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use anyhow::Context;

const INIT: &str = include_str!("container_init.sh");
/// busybox init with nothing to respawn idles; shutdown flushes.
const INITTAB: &str = "::sysinit:/bin/true\n::shutdown:/bin/sync\n";
const BUSYBOX: &str = "/bin/busybox";
/// Bumped when what is built changes, so old builds are replaced.
const VERSION: &str = "1";

/// Builds `dir` unless its stamp says it is current. Written to a
/// sibling and renamed, so a crash never leaves half a rootfs.
pub fn build_micro_rootfs(dir: &Path) -> anyhow::Result<()> {
    let stamp = dir.join(".dclab-stamp");
    if fs::read_to_string(&stamp).is_ok_and(|s| s == VERSION) {
        return Ok(());
    }
    let parent = dir.parent().context("rootfs dir has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.tmp",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = fs::remove_dir_all(&tmp);
    fill(&tmp).with_context(|| format!("building the micro rootfs in {}", tmp.display()))?;
    fs::write(tmp.join(".dclab-stamp"), VERSION)?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(&tmp, dir).with_context(|| format!("moving the micro rootfs to {}", dir.display()))
}

fn fill(root: &Path) -> anyhow::Result<()> {
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "run", "data", "root",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(BUSYBOX, root.join("bin/busybox")).with_context(|| {
        format!("copying {BUSYBOX}: install busybox-static (scripts/install-deps.sh --vm)")
    })?;
    symlink("busybox", root.join("bin/sh"))?;
    let init = root.join("sbin/init");
    fs::write(&init, INIT)?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;
    fs::write(root.join("etc/inittab"), INITTAB)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rootfs_is_built_once_with_busybox_and_init() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("micro-rootfs");
        build_micro_rootfs(&root).unwrap();
        let busybox = root.join("bin/busybox");
        assert!(busybox.metadata().unwrap().len() > 100_000);
        assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("busybox"));
        let mode = root.join("sbin/init").metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111);
        // A second build keeps what is there.
        fs::write(root.join("marker"), "x").unwrap();
        build_micro_rootfs(&root).unwrap();
        assert!(root.join("marker").exists());
    }
}
