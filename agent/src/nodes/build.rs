//! What a node is made of: its image, its disk files (created once, each
//! atomically, so a crash never leaves half a disk that looks whole), its
//! cloud-init seed, and the domain definition.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::Context;
use dclab_proto::v1::DesiredNode;

use super::layout::{check_name, create_dir_0755, domain_name, NodeDir};
use super::spec::{AppliedSpec, APT_CACHE_ROLE, MICRO_IMAGE};
use crate::image::debian_vm::{self, DebianVmImage};
use crate::image::seed::{virtio_disk, write_seed, Seed};
use crate::image::{build_micro, debian, MicroImage};
use crate::libvirt::disk::create_overlay;
use crate::libvirt::{Boot, Nic, VmSpec};

/// The apt cache node's disk in `--cache-dir`; it outlives labs so a
/// reinstalled lab gets the same package versions. Never deleted here.
pub const APT_CACHE_DISK: &str = "apt-cacher-ng.qcow2";
const APT_CACHE_MIB: u64 = 20 * 1024;

/// What a VM node's image name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRef<'a> {
    /// The micro-VM: kernel and busybox initramfs, exec over its console.
    Micro,
    /// `<image_dir>/<name>.qcow2`, booted with a cloud-init seed (built
    /// here for the Debian image names).
    Cloud(&'a str),
}

impl<'a> ImageRef<'a> {
    pub fn of(image: &'a str) -> ImageRef<'a> {
        if image == MICRO_IMAGE {
            ImageRef::Micro
        } else {
            ImageRef::Cloud(image)
        }
    }

    /// Reads the seed (apt proxy, SSH keys): only cloud images do.
    pub fn has_cloud_init(self) -> bool {
        matches!(self, ImageRef::Cloud(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeImage {
    Micro(MicroImage),
    /// A qcow2 cloud image, booted from disk with a NoCloud seed.
    Cloud(PathBuf),
    /// A Debian image built here: its disk, booted by its own kernel and
    /// initramfs, with a NoCloud seed.
    Debian(DebianVmImage),
}

/// The host's images: `<image_dir>/micro/` (built here, once per process)
/// and `<image_dir>/<name>.qcow2` (put there by the operator).
pub struct Images {
    dir: PathBuf,
    micro: Mutex<Option<MicroImage>>,
    /// Where Debian images get their packages from.
    cache_dir: PathBuf,
    mirror: String,
    /// Debian VM images found or built: converge resolves every 2 s.
    debian: Mutex<HashMap<String, DebianVmImage>>,
}

impl Images {
    pub fn new(dir: PathBuf, cache_dir: PathBuf, mirror: String) -> Images {
        Images {
            dir,
            micro: Mutex::new(None),
            cache_dir,
            mirror,
            debian: Mutex::new(HashMap::new()),
        }
    }

    /// Blocks (the first micro build takes a while): call from blocking threads.
    pub fn resolve(&self, image: &str) -> anyhow::Result<NodeImage> {
        if ImageRef::of(image) == ImageRef::Micro {
            // Held while building, so concurrent nodes wait for one build.
            let mut micro = self.micro.lock().unwrap();
            if micro.is_none() {
                let dir = self.dir.join(MICRO_IMAGE);
                let built = build_micro(&dir)
                    .with_context(|| format!("building the micro image in {}", dir.display()))?;
                *micro = Some(built);
            }
            return Ok(NodeImage::Micro(micro.clone().expect("just built")));
        }
        check_name("image", image).map_err(anyhow::Error::msg)?;
        if let Some(build) = debian::DebianBuild::for_image(image, &self.dir, &self.cache_dir, &self.mirror) {
            // Held while building, so concurrent nodes wait for one build.
            let mut ready = self.debian.lock().unwrap();
            if !ready.contains_key(image) {
                let built = build.build_vm(false, |line| tracing::info!(%image, "{line}"))?;
                ready.insert(image.to_string(), built);
            }
            return Ok(NodeImage::Debian(ready[image].clone()));
        }
        let path = self.dir.join(format!("{image}.qcow2"));
        if !path.is_file() {
            anyhow::bail!(
                "image {image}: {} does not exist; put a qcow2 cloud image there (e.g. Debian's genericcloud image), or use image \"micro\"",
                path.display()
            );
        }
        Ok(NodeImage::Cloud(path))
    }
}

/// The cache disk of an apt cache node; None for every other role.
pub fn cache_disk(cache_dir: &Path, node: &DesiredNode) -> Option<PathBuf> {
    (node.role == APT_CACHE_ROLE).then(|| cache_dir.join(APT_CACHE_DISK))
}

/// Disks in the order the domain lists them (vda, vdb, ...): root, the
/// extra disks, then the apt cache disk.
pub fn disks(dir: &NodeDir, node: &DesiredNode, cache: Option<&Path>) -> Vec<PathBuf> {
    let extras = (1..=node.disks_mib.len()).map(|n| dir.extra_disk(n));
    std::iter::once(dir.root_disk())
        .chain(extras)
        .chain(cache.map(Path::to_path_buf))
        .collect()
}

/// Creates whatever of the node's files is missing. Blocks.
pub fn prepare(
    dir: &NodeDir,
    node: &DesiredNode,
    image: &NodeImage,
    cache: Option<&Path>,
) -> anyhow::Result<()> {
    let base = match image {
        NodeImage::Micro(m) => &m.disk,
        NodeImage::Cloud(path) => path,
        NodeImage::Debian(d) => &d.disk,
    };
    create_once(&dir.root_disk(), |tmp| create_overlay(base, tmp))?;
    for (i, mib) in node.disks_mib.iter().enumerate() {
        create_once(&dir.extra_disk(i + 1), |tmp| create_blank(tmp, *mib))?;
    }
    if let Some(cache) = cache {
        if let Some(parent) = cache.parent() {
            create_dir_0755(parent)?;
        }
        create_once(cache, |tmp| create_blank(tmp, APT_CACHE_MIB))?;
    }
    if let NodeImage::Cloud(_) | NodeImage::Debian(_) = image {
        let seed = seed(node, cache.is_some());
        create_once(&dir.seed(), |tmp| write_seed(tmp, &seed))?;
    }
    Ok(())
}

/// Runs `make` on a temporary name next to `path` and renames it into
/// place, unless `path` exists.
fn create_once(path: &Path, make: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let name = path.file_name().context("disk path has no file name")?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let _ = std::fs::remove_file(&tmp);
    make(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("moving {} into place", path.display()))
}

/// A blank qcow2 disk of `mib` MiB (sparse: takes no space until written).
pub fn create_blank(path: &Path, mib: u64) -> anyhow::Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(format!("{mib}M"))
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run qemu-img (install qemu-utils): {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "qemu-img could not create the {mib} MiB disk {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// cloud-init's view of the node.
pub fn seed(node: &DesiredNode, apt_cache: bool) -> Seed {
    let spec = AppliedSpec::from(node);
    Seed {
        instance_id: format!("{}-{}-{}", node.lab, node.name, spec.digest()),
        hostname: node.name.clone(),
        ssh_authorized_keys: node.ssh_keys.clone(),
        nics: node
            .nics
            .iter()
            .map(|n| {
                let addr = if n.ip.is_empty() {
                    String::new()
                } else {
                    format!("{}/{}", n.ip, n.prefix)
                };
                (n.mac.clone(), addr)
            })
            .collect(),
        apt_proxy: (!node.apt_proxy.is_empty()).then(|| node.apt_proxy.clone()),
        // The cache disk is the last virtio disk: after root and the extras.
        apt_cache_device: apt_cache.then(|| virtio_disk(1 + node.disks_mib.len())),
    }
}

/// The micro-VM's kernel command line: `dclab.ip` for eth0, `dclab.ipN`
/// for ethN, in the order of the domain's interfaces.
pub fn micro_cmdline(node: &DesiredNode) -> String {
    let mut cmdline = format!("console=ttyS0 panic=-1 dclab.hostname={}", node.name);
    for (i, nic) in node.nics.iter().enumerate().filter(|(_, n)| !n.ip.is_empty()) {
        let key = if i == 0 { String::new() } else { i.to_string() };
        cmdline.push_str(&format!(" dclab.ip{key}={}/{}", nic.ip, nic.prefix));
    }
    cmdline
}

pub fn vm_spec(
    node: &DesiredNode,
    dir: &NodeDir,
    image: &NodeImage,
    domain_type: &str,
    cache: Option<&Path>,
) -> VmSpec {
    let (boot, cdrom) = match image {
        NodeImage::Micro(m) => (
            Boot::Kernel {
                kernel: m.kernel.clone(),
                initrd: m.initrd.clone(),
                cmdline: micro_cmdline(node),
            },
            None,
        ),
        NodeImage::Cloud(_) => (Boot::Disk, Some(dir.seed())),
        NodeImage::Debian(d) => (
            Boot::Kernel {
                kernel: d.kernel.clone(),
                initrd: d.initrd.clone(),
                cmdline: debian_vm::cmdline(),
            },
            Some(dir.seed()),
        ),
    };
    VmSpec {
        name: domain_name(&node.lab, &node.name),
        domain_type: domain_type.to_string(),
        vcpus: node.vcpus,
        memory_mib: node.memory_mib,
        boot,
        disks: disks(dir, node, cache),
        nics: node
            .nics
            .iter()
            .map(|n| Nic {
                tap: n.tap.clone(),
                mac: n.mac.clone(),
            })
            .collect(),
        serial_socket: Some(dir.console()),
        cdrom,
    }
}

#[cfg(test)]
mod tests;
