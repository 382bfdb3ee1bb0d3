//! The Debian images as VM disks: the same packages (and frozen package
//! cache) as the container rootfs, plus Debian's kernel and
//! cloud-init, written into an ext4 file system with `mkfs.ext4 -d` and
//! converted to qcow2. The kernel and initramfs are taken out beside the
//! disk, `<name>.kernel` and `<name>.initrd`, for direct kernel boot: the
//! disk needs no partition table or boot loader. cloud-init reads the
//! node's NoCloud seed as for any cloud image.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::debian::{image_name, packages, with_ext, DebianBuild};

/// What a VM needs beyond the container image's packages.
const VM_PACKAGES: &[&str] = &[
    // With the cloud kernel, cloud-init never read the seed's SATA CD-ROM here.
    "linux-image-amd64",
    "initramfs-tools",
    "cloud-init",
    "ifupdown",
    "e2fsprogs",
];
/// The root file system's label, which the fstab names.
pub const ROOT_LABEL: &str = "dclab-root";
/// Room left free in the root file system, MiB.
const HEADROOM_MIB: u64 = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianVmImage {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub manifest: PathBuf,
}

impl DebianVmImage {
    pub fn exists(&self) -> bool {
        [&self.disk, &self.kernel, &self.initrd, &self.manifest]
            .iter()
            .all(|p| p.is_file())
    }
}

/// The kernel command line of a Debian VM node.
pub fn cmdline() -> String {
    format!("root=LABEL={ROOT_LABEL} ro console=ttyS0")
}

impl DebianBuild {
    pub fn vm_image(&self) -> DebianVmImage {
        let base = self.image_dir.join(image_name(&self.role));
        DebianVmImage {
            disk: with_ext(&base, "qcow2"),
            kernel: with_ext(&base, "kernel"),
            initrd: with_ext(&base, "initrd"),
            manifest: with_ext(&base, "vm.packages"),
        }
    }

    /// Builds the VM image unless it exists. The disk is renamed into its
    /// place last: a failed build leaves no disk that looks built.
    pub fn build_vm(&self, rebuild: bool, mut progress: impl FnMut(&str)) -> anyhow::Result<DebianVmImage> {
        let image = self.vm_image();
        let mut all = packages(&self.role)?;
        all.extend(VM_PACKAGES);
        std::fs::create_dir_all(&self.image_dir)
            .with_context(|| format!("creating {}", self.image_dir.display()))?;
        let _lock = self.lock()?;
        if !rebuild && !self.refresh && image.exists() {
            return Ok(image);
        }
        let name = image_name(&self.role);
        let tmp = self.image_dir.join(format!(".{name}.vm.tmp"));
        let (kernel_tmp, initrd_tmp) = (with_ext(&image.kernel, "tmp"), with_ext(&image.initrd, "tmp"));
        let manifest_tmp = with_ext(&image.manifest, "tmp");
        let hooks = [
            format!("--customize-hook=echo 'LABEL={ROOT_LABEL} / ext4 defaults,errors=remount-ro 0 1' > \"$1/etc/fstab\""),
            // Only the seed: no waiting for network data sources at boot.
            "--customize-hook=printf 'datasource_list: [ NoCloud, None ]\\n' > \"$1/etc/cloud/cloud.cfg.d/90_dclab.cfg\"".to_string(),
            format!("--customize-hook=cp \"$1\"/boot/vmlinuz-* {}", kernel_tmp.display()),
            format!("--customize-hook=cp \"$1\"/boot/initrd.img-* {}", initrd_tmp.display()),
        ];
        let built = self
            .mmdebstrap(&all, &tmp, &manifest_tmp, &hooks, &mut progress)
            .and_then(|()| {
                progress(&format!("writing {} with mkfs.ext4 -d", image.disk.display()));
                disk_from(&tmp, &with_ext(&image.disk, "tmp"))
            });
        let _ = std::fs::remove_dir_all(&tmp);
        if let Err(e) = built {
            for f in [&kernel_tmp, &initrd_tmp, &manifest_tmp] {
                let _ = std::fs::remove_file(f);
            }
            return Err(e);
        }
        std::fs::rename(&kernel_tmp, &image.kernel)?;
        std::fs::rename(&initrd_tmp, &image.initrd)?;
        std::fs::rename(&manifest_tmp, &image.manifest)?;
        std::fs::rename(with_ext(&image.disk, "tmp"), &image.disk)
            .with_context(|| format!("moving the disk to {}", image.disk.display()))?;
        Ok(image)
    }
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// An ext4 file system holding `rootfs`, as a qcow2 at `qcow2`.
fn disk_from(rootfs: &Path, qcow2: &Path) -> anyhow::Result<()> {
    let out = Command::new("du")
        .args(["-sm", "--apparent-size"])
        .arg(rootfs)
        .output()
        .context("running du")?;
    let used: u64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du printed no size")?;
    // ext4's metadata and reserved blocks need about a fifth more.
    let size_mib = used + used / 5 + HEADROOM_MIB;
    let raw = with_ext(qcow2, "raw");
    let _ = std::fs::remove_file(&raw);
    let made = run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", ROOT_LABEL, "-d"])
            .arg(rootfs)
            .arg(&raw)
            .arg(format!("{size_mib}M")),
        "mkfs.ext4 -d (install e2fsprogs)",
    )
    .and_then(|()| {
        run(
            Command::new("qemu-img")
                .args(["convert", "-q", "-O", "qcow2"])
                .arg(&raw)
                .arg(qcow2),
            "qemu-img convert (install qemu-utils)",
        )
    });
    let _ = std::fs::remove_file(&raw);
    made
}
