//! Builds the micro-VM image from Debian packages on this machine: the cloud
//! kernel, busybox-static, the kernel's virtio modules, and e2fsprogs/qemu-img
//! for the scratch disk.

use super::cpio::CpioWriter;
use super::MicroImage;
use anyhow::{bail, Context};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

const INIT: &str = include_str!("init.sh");
const SERIAL_LOOP: &str = include_str!("serial.sh");
const INITTAB: &str = include_str!("inittab");
const BUSYBOX: &str = "/bin/busybox";
/// Loaded by /init in this order (dependencies first), plus virtio_blk.
const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_blk",
];
/// Loaded by /init only for an OpenStack instance, to read its config
/// drive (an ISO 9660 cdrom on the IDE bus).
const CONFIG_DRIVE_MODULES: &[&str] = &[
    "scsi_common",
    "scsi_mod",
    "libata",
    "ata_piix",
    "cdrom",
    "sr_mod",
    "isofs",
];
const DISK_SIZE: &str = "64M";
const INSTALL_HINT: &str = "install with: apt-get install linux-image-cloud-amd64 \
     busybox-static qemu-utils e2fsprogs (or scripts/install-deps.sh --vm)";

pub fn build_micro(out_dir: &Path) -> anyhow::Result<MicroImage> {
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let (kernel_src, version) = newest_cloud_kernel(Path::new("/boot"))?;
    let image = MicroImage {
        kernel: out_dir.join("vmlinuz"),
        initrd: out_dir.join("initrd.img"),
        disk: out_dir.join("disk.qcow2"),
        kernel_version: version.clone(),
    };
    // The stamp names everything the kernel and initrd are made from, so a new
    // kernel or a changed init script causes a rebuild; it is written last.
    let stamp_path = out_dir.join("stamp");
    let stamp = format!(
        "{version} {:016x}\n",
        fnv1a(&[
            INIT,
            SERIAL_LOOP,
            INITTAB,
            &MODULES.join(" "),
            &CONFIG_DRIVE_MODULES.join(" ")
        ])
    );
    let fresh = fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && image.kernel.is_file()
        && image.initrd.is_file();
    if fresh {
        eprintln!("image: kernel {version} and initrd up to date");
    } else {
        eprintln!("image: kernel {version} from {}", kernel_src.display());
        write_atomic(&image.kernel, |tmp| copy(&kernel_src, tmp))?;
        eprintln!("image: building initrd");
        write_atomic(&image.initrd, |tmp| build_initrd(&version, tmp))?;
    }
    if image.disk.is_file() {
        eprintln!("image: reusing {}", image.disk.display());
    } else {
        eprintln!("image: creating {DISK_SIZE} ext4 scratch disk");
        write_atomic(&image.disk, build_disk)?;
    }
    if !fresh {
        write_atomic(&stamp_path, |tmp| Ok(fs::write(tmp, &stamp)?))?;
    }
    Ok(image)
}

/// The newest /boot/vmlinuz-*-cloud-amd64 and its version.
fn newest_cloud_kernel(boot: &Path) -> anyhow::Result<(PathBuf, String)> {
    let entries = fs::read_dir(boot).with_context(|| format!("reading {}", boot.display()))?;
    let mut versions: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_string))
        .filter(|v| v.ends_with("-cloud-amd64"))
        .collect();
    versions.sort_by_key(|v| version_key(v));
    let Some(version) = versions.pop() else {
        bail!("no {}/vmlinuz-*-cloud-amd64; {INSTALL_HINT}", boot.display());
    };
    Ok((boot.join(format!("vmlinuz-{version}")), version))
}

/// Orders "6.1.0-9" before "6.1.0-56" by comparing number runs numerically.
fn version_key(v: &str) -> Vec<(u64, String)> {
    let mut key = Vec::new();
    let mut rest = v;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (head, tail) = rest.split_at(digits.max(1));
        key.push((head.parse().unwrap_or(0), head.to_string()));
        rest = tail;
    }
    key
}

fn build_initrd(version: &str, out: &Path) -> anyhow::Result<()> {
    let busybox = fs::read(BUSYBOX).with_context(|| format!("reading {BUSYBOX}; {INSTALL_HINT}"))?;
    let mut cpio = CpioWriter::new(Vec::new());
    let dirs = [
        "/bin",
        "/dev",
        "/etc",
        "/lib",
        "/lib/modules",
        "/proc",
        "/sys",
        "/tmp",
        "/data",
        "/root",
        "/run",
    ];
    for dir in dirs {
        cpio.dir(dir)?;
    }
    // The kernel opens /dev/console for /init before devtmpfs is mounted.
    cpio.char_dev("/dev/console", 0o600, 5, 1)?;
    cpio.file("/bin/busybox", 0o755, &busybox)?;
    // The rest of the applet links are made by /init (busybox --install).
    cpio.symlink("/bin/sh", "busybox")?;
    cpio.symlink("/bin/init", "busybox")?;
    cpio.file("/init", 0o755, INIT.as_bytes())?;
    cpio.file("/bin/dclab-serial", 0o755, SERIAL_LOOP.as_bytes())?;
    cpio.file("/etc/inittab", 0o644, INITTAB.as_bytes())?;
    let module_dir = PathBuf::from(format!("/lib/modules/{version}/kernel"));
    for name in MODULES.iter().chain(CONFIG_DRIVE_MODULES) {
        let module = read_module(&module_dir, name)?;
        cpio.file(&format!("/lib/modules/{name}.ko"), 0o644, &module)?;
    }
    let archive = cpio.finish()?;
    gzip(&archive, out)
}

/// Reads a module by name from anywhere under `dir`, decompressing `.ko.xz`
/// (Debian 12's cloud kernel ships plain `.ko`; newer ones compress).
fn read_module(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let Some(path) = find_module(dir, name)? else {
        bail!("module {name} not found under {}; {INSTALL_HINT}", dir.display());
    };
    if path.extension().is_some_and(|e| e == "xz") {
        let out = Command::new("xz")
            .arg("-dc")
            .arg(&path)
            .output()
            .context("running xz")?;
        if !out.status.success() {
            bail!(
                "xz -dc {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        return Ok(out.stdout);
    }
    fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn find_module(dir: &Path, name: &str) -> anyhow::Result<Option<PathBuf>> {
    let wanted = [format!("{name}.ko"), format!("{name}.ko.xz")];
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if let Some(found) = find_module(&path, name)? {
                return Ok(Some(found));
            }
        } else if path
            .file_name()
            .is_some_and(|f| wanted.iter().any(|w| f == w.as_str()))
        {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn gzip(data: &[u8], out: &Path) -> anyhow::Result<()> {
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut child = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("running gzip")?;
    child.stdin.take().expect("piped stdin").write_all(data)?;
    let status = child.wait()?;
    if !status.success() {
        bail!("gzip failed: {status}");
    }
    Ok(())
}

/// An ext4 filesystem made on a raw file (no loop mount, no root needed),
/// converted to qcow2 so libvirt can snapshot it.
fn build_disk(out: &Path) -> anyhow::Result<()> {
    let mut raw = out.as_os_str().to_owned();
    raw.push(".raw");
    let raw = PathBuf::from(raw);
    let result = (|| {
        run(Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", "dclab-data"])
            .arg(&raw)
            .arg(DISK_SIZE))?;
        run(Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(out))
    })();
    let _ = fs::remove_file(&raw);
    result
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .with_context(|| format!("running {program}; {INSTALL_HINT}"))?;
    if !out.status.success() {
        bail!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Makes `path` with `make` on a temporary name next to it, then renames it
/// into place, so a failed build never leaves a half-written file behind.
fn write_atomic(path: &Path, make: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .context("path without file name")?
        .to_string_lossy();
    // Unique per process and call: parallel tests may build into one dir.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{call}", std::process::id()));
    let result = make(&tmp).and_then(|()| Ok(fs::rename(&tmp, path)?));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("building {}", path.display()))
}

/// FNV-1a: a hash that stays the same across Rust releases, for the stamp.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in parts.iter().flat_map(|p| p.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_sort_numerically() {
        let mut v = vec![
            "6.1.0-56-cloud-amd64",
            "6.1.0-9-cloud-amd64",
            "6.10.0-1-cloud-amd64",
        ];
        v.sort_by_key(|s| version_key(s));
        assert_eq!(
            v,
            [
                "6.1.0-9-cloud-amd64",
                "6.1.0-56-cloud-amd64",
                "6.10.0-1-cloud-amd64"
            ]
        );
    }
}
