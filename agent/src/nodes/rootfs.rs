//! Container nodes' root filesystems: the image, shared read-only by every
//! node of the host (lower), and the node's own writable layer (upper),
//! joined by overlayfs at the node's `rootfs/`. Snapshots copy the upper
//! layer; restoring puts a copy back.
//!
//! libvirtd may run in a mount namespace of its own (see
//! `scripts/libvirtd.sh`: on hosts with the hybrid cgroup layout it must),
//! and the container is built from libvirtd's view of the files. So the
//! overlay is mounted there, through `nsenter`, whenever libvirtd's
//! namespace is not the agent's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context};

use super::layout::{check_name, NodeDir};
use super::spec::MICRO_IMAGE;
use crate::image::{build_micro_rootfs, debian};

const LIBVIRTD_PIDFILE: &str = "/run/libvirtd.pid";

/// The host's container images: `<image_dir>/micro-rootfs/` (built here)
/// and `<image_dir>/<name>.rootfs/` (built by `ctl image build`).
pub struct RootfsImages {
    dir: PathBuf,
    /// The host's package cache (frozen lists and .debs).
    cache_dir: PathBuf,
    mirror: String,
    /// Images found or built by this process; held while building, so
    /// nodes naming the same image wait for one build.
    ready: Mutex<std::collections::BTreeSet<String>>,
}

impl RootfsImages {
    pub fn new(dir: PathBuf, cache_dir: PathBuf, mirror: String) -> RootfsImages {
        RootfsImages {
            dir,
            cache_dir,
            mirror,
            ready: Mutex::default(),
        }
    }

    /// The image's directory, built first for `micro`. Blocks.
    pub fn resolve(&self, image: &str) -> anyhow::Result<PathBuf> {
        let mut ready = self.ready.lock().unwrap();
        if image == MICRO_IMAGE {
            let path = self.dir.join("micro-rootfs");
            if !ready.contains(image) {
                build_micro_rootfs(&path)?;
                ready.insert(image.to_string());
            }
            return Ok(path);
        }
        check_name("image", image).map_err(anyhow::Error::msg)?;
        let build = debian::DebianBuild::for_image(image, &self.dir, &self.cache_dir, &self.mirror);
        if let Some(build) = build.filter(|_| !ready.contains(image)) {
            let built = build.build(false, |line| tracing::info!(%image, "{line}"))?;
            ready.insert(image.to_string());
            return Ok(built.rootfs);
        }
        let path = self.dir.join(format!("{image}.rootfs"));
        if !path.join("sbin/init").exists() && !path.join("sbin/init").is_symlink() {
            bail!(
                "image {image}: no container rootfs at {} (nothing at sbin/init); put one there, \
                 or use image \"micro\" or one dclab builds (debian, debian-<role>: `ctl image build debian`)",
                path.display()
            );
        }
        Ok(path)
    }
}

/// One node's layers and mount point.
#[derive(Debug, Clone)]
pub struct Overlay {
    pub lower: PathBuf,
    pub upper: PathBuf,
    work: PathBuf,
    pub root: PathBuf,
    snapshots: PathBuf,
}

impl Overlay {
    pub fn of(dir: &NodeDir, lower: PathBuf) -> Overlay {
        Overlay {
            lower,
            upper: dir.path.join("upper"),
            work: dir.path.join("work"),
            root: dir.path.join("rootfs"),
            snapshots: dir.path.join("snapshots"),
        }
    }

    /// The node's dirs, and what a revert cut short put back.
    pub fn create_dirs(&self) -> anyhow::Result<()> {
        let old = with_suffix(&self.upper, "old");
        if !self.upper.exists() && old.exists() {
            fs::rename(&old, &self.upper)?;
        }
        for d in [&self.upper, &self.work, &self.root] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(())
    }

    /// Mounted where libvirtd looks; mounting again changes nothing.
    pub fn ensure_mounted(&self) -> anyhow::Result<()> {
        let ns = LibvirtdNs::find();
        if ns.is_mounted(&self.root)? {
            return Ok(());
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lower.display(),
            self.upper.display(),
            self.work.display()
        );
        let mut mount = ns.command("mount");
        mount
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(&self.root);
        run(mount, "mounting the container's overlay")
    }

    pub fn unmount(&self) -> anyhow::Result<()> {
        let ns = LibvirtdNs::find();
        if !ns.is_mounted(&self.root)? {
            return Ok(());
        }
        let mut umount = ns.command("umount");
        umount.arg(&self.root);
        run(umount, "unmounting the container's overlay")
    }

    /// Writes a file of the node's own into its upper layer (hostname and
    /// such), unless the node has one already (or a link there).
    pub fn seed_file(&self, path: &str, text: &str) -> anyhow::Result<()> {
        super::rooted::write_if_absent(&self.upper, path, text.as_bytes(), 0o644)
            .with_context(|| format!("writing {path} into the node's layer {}", self.upper.display()))
    }

    /// Writes a file dclab owns into the upper layer with `mode`, unless
    /// it already has that content (the layer is live while mounted).
    /// Parent dirs it makes are private to root. Nothing is followed
    /// through a link the node made (see `rooted`).
    pub fn own_file(&self, path: &str, text: &str, mode: u32) -> anyhow::Result<()> {
        let context = || format!("writing {path} into the node's layer {}", self.upper.display());
        let current = super::rooted::read(&self.upper, path).with_context(context)?;
        if current.as_deref() == Some(text.as_bytes()) {
            return Ok(());
        }
        super::rooted::write(&self.upper, path, text.as_bytes(), mode, 0o700).with_context(context)
    }

    fn snapshot_dir(&self, name: &str) -> PathBuf {
        self.snapshots.join(name)
    }

    /// Copies the upper layer (the node frozen or off), replacing a
    /// snapshot of that name.
    pub fn snapshot(&self, name: &str) -> anyhow::Result<()> {
        fs::create_dir_all(&self.snapshots)?;
        let target = self.snapshot_dir(name);
        let tmp = with_suffix(&target, "tmp");
        copy_tree(&self.upper, &tmp)?;
        let _ = fs::remove_dir_all(&target);
        fs::rename(&tmp, &target).with_context(|| format!("moving the snapshot to {}", target.display()))
    }

    pub fn has_snapshot(&self, name: &str) -> bool {
        self.snapshot_dir(name).is_dir()
    }

    /// Puts the snapshot's copy in place of the upper layer; the node is
    /// off and unmounted. The new layer is complete before the old one
    /// moves aside, and `create_dirs` recovers from a crash in between.
    pub fn restore(&self, name: &str) -> anyhow::Result<()> {
        let snap = self.snapshot_dir(name);
        if !snap.is_dir() {
            bail!("no snapshot named {name} at {}", snap.display());
        }
        let new = with_suffix(&self.upper, "new");
        let old = with_suffix(&self.upper, "old");
        copy_tree(&snap, &new)?;
        let _ = fs::remove_dir_all(&old);
        fs::rename(&self.upper, &old)?;
        fs::rename(&new, &self.upper)?;
        fs::remove_dir_all(&old)?;
        // overlayfs keeps state in workdir that belongs to the old upper.
        let _ = fs::remove_dir_all(&self.work);
        fs::create_dir_all(&self.work)?;
        Ok(())
    }

    pub fn delete_snapshot(&self, name: &str) -> anyhow::Result<()> {
        match fs::remove_dir_all(self.snapshot_dir(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{suffix}"));
    PathBuf::from(s)
}

/// `cp -a`: owners, modes, links, device nodes and overlayfs whiteouts
/// (character devices 0:0) come along. A leftover target is replaced.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    let _ = fs::remove_dir_all(to);
    let mut cp = Command::new("cp");
    cp.args(["-a", "--reflink=auto"]).arg(from).arg(to);
    run(cp, "copying a container layer")
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{what}: {cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// libvirtd's mount namespace, when it has one apart from the agent's.
struct LibvirtdNs {
    pid: Option<u32>,
}

impl LibvirtdNs {
    fn find() -> LibvirtdNs {
        let pid = fs::read_to_string(LIBVIRTD_PIDFILE)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "libvirtd")
            })
            .filter(|pid| {
                let ns = |p: &str| fs::read_link(format!("/proc/{p}/ns/mnt")).ok();
                ns(&pid.to_string()) != ns("self")
            });
        LibvirtdNs { pid }
    }

    fn command(&self, program: &str) -> Command {
        match self.pid {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--mount=/proc/{pid}/ns/mnt"))
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn is_mounted(&self, target: &Path) -> anyhow::Result<bool> {
        let who = self.pid.map_or("self".to_string(), |p| p.to_string());
        let path = format!("/proc/{who}/mountinfo");
        let table = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Ok(mounted_at(&table, target))
    }
}

/// Whether `/proc/PID/mountinfo` lists a mount at `target` (field 5,
/// with spaces and such escaped as octal).
fn mounted_at(mountinfo: &str, target: &Path) -> bool {
    let want = target
        .to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(want.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_is_matched_on_the_mount_point_field() {
        let table = "36 35 98:0 /mnt1 /mnt/my\\040root rw,noatime master:1 - ext3 /dev/root rw\n\
                     37 35 0:31 / /var/lib/x/rootfs rw - overlay overlay rw,lowerdir=/a\n";
        assert!(mounted_at(table, Path::new("/var/lib/x/rootfs")));
        assert!(mounted_at(table, Path::new("/mnt/my root")));
        assert!(!mounted_at(table, Path::new("/var/lib/x")));
        assert!(!mounted_at(table, Path::new("/a")));
    }

    #[test]
    fn a_restore_brings_back_the_snapshot_and_a_crash_midway_loses_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = NodeDir {
            path: tmp.path().join("node"),
        };
        let overlay = Overlay::of(&dir, tmp.path().join("lower"));
        overlay.create_dirs().unwrap();
        fs::write(overlay.upper.join("marker"), "before").unwrap();
        overlay.snapshot("s1").unwrap();
        fs::write(overlay.upper.join("marker"), "after").unwrap();
        fs::write(overlay.upper.join("new-file"), "x").unwrap();
        overlay.restore("s1").unwrap();
        assert_eq!(
            fs::read_to_string(overlay.upper.join("marker")).unwrap(),
            "before"
        );
        assert!(!overlay.upper.join("new-file").exists());
        assert!(overlay.has_snapshot("s1"));
        // A crash after the old layer moved aside: the next start puts it back.
        fs::rename(&overlay.upper, with_suffix(&overlay.upper, "old")).unwrap();
        overlay.create_dirs().unwrap();
        assert_eq!(
            fs::read_to_string(overlay.upper.join("marker")).unwrap(),
            "before"
        );
        overlay.delete_snapshot("s1").unwrap();
        overlay.delete_snapshot("s1").unwrap();
        assert!(!overlay.has_snapshot("s1"));
        assert!(overlay
            .restore("s1")
            .unwrap_err()
            .to_string()
            .contains("no snapshot named s1"));
    }
}
