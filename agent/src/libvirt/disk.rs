//! Lab node disks: qcow2 overlays on a shared base image, so every node
//! starts from the same bytes and writes only its own changes.

use std::path::Path;
use std::process::Command;

/// Creates `path` as a qcow2 overlay backed by `base` (a qcow2 file).
pub fn create_overlay(base: &Path, path: &Path) -> anyhow::Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(path)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run qemu-img (install qemu-utils): {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "qemu-img could not create overlay {} on {}: {}",
            path.display(),
            base.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_point_at_their_base_and_errors_name_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        let made = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("16M")
            .status();
        assert!(made.expect("qemu-img is installed (qemu-utils)").success());
        let overlay = dir.path().join("node.qcow2");
        create_overlay(&base, &overlay).unwrap();
        let info = Command::new("qemu-img")
            .arg("info")
            .arg(&overlay)
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&info.stdout).contains("base.qcow2"));
        let err = create_overlay(&dir.path().join("missing.qcow2"), &dir.path().join("x.qcow2")).unwrap_err();
        assert!(err.to_string().contains("missing.qcow2"), "{err}");
    }
}
