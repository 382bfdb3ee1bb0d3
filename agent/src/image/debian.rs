//! Debian images built here from Debian's packages with mmdebstrap: a
//! rootfs with systemd, SSH and Python (what Ansible needs), plus the
//! packages of a lab role (playbooks/openstack/manifest.toml, see
//! `roles`). Used by container nodes as the shared
//! read-only lower layer, `<image_dir>/<name>.rootfs/`, with the list of
//! every package and version in `<name>.packages`.
//!
//! Packages are frozen per host: the first build keeps apt's package
//! lists and every downloaded .deb under `<cache_dir>/apt/<suite>/`, and
//! later builds resolve against those same lists without `apt update` and
//! install from the kept .debs, so they get exactly the same versions and
//! need no network for what was fetched before. `refresh` takes new lists.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

pub use super::roles::{image_name, packages, role_of};

pub const SUITE: &str = "bookworm";
/// Bumped when what a build puts in an image changes: older ones are rebuilt.
/// A changed package list of a role (playbooks/openstack/manifest.toml)
/// rebuilds its image too (`stamp`).
const IMAGE_VERSION: &str = "3";
const STAMP: &str = ".dclab-image";
pub const MIRROR: &str = "http://deb.debian.org/debian";

/// Stops what an interrupted build left running inside `dir` (a dpkg
/// configuring packages in the chroot outlives the agent that started the
/// build), unmounts what it left mounted there (deepest first), then
/// removes it. The caller holds the image's lock, so nothing in `dir` is
/// another build's.
fn clear_interrupted_build(dir: &Path) -> anyhow::Result<()> {
    for _ in 0..50 {
        let left = processes_rooted_in(dir);
        if left.is_empty() {
            break;
        }
        for pid in left {
            // SAFETY: kill(2) on a pid whose root is the build directory.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    for target in mounts_under(&mountinfo, dir) {
        let status = Command::new("umount").arg("-l").arg(&target).status()?;
        if !status.success() {
            bail!("cannot unmount {target}, left mounted by an interrupted image build");
        }
    }
    std::fs::remove_dir_all(dir)
        .with_context(|| format!("removing {} left by an interrupted build", dir.display()))
}

/// Pids of processes whose root directory is `dir` or below it.
fn processes_rooted_in(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|root| root.starts_with(dir)))
        .collect()
}

/// Mount points in `mountinfo` at or below `dir`, deepest first.
fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    let mut found: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|target| *target == dir || target.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect();
    found.sort_by_key(|t| std::cmp::Reverse(t.len()));
    found
}

/// What an image was built as: the build's version, the role's packages and
/// the units left disabled.
fn stamp(packages: &[&str]) -> String {
    format!(
        "{IMAGE_VERSION} {} / {}",
        packages.join(" "),
        super::roles::leave_disabled()
    )
}

#[derive(Debug, Clone)]
pub struct DebianBuild {
    pub role: String,
    pub image_dir: PathBuf,
    /// The host's package cache root (the agent's `--cache-dir`).
    pub cache_dir: PathBuf,
    pub mirror: String,
    /// Take new package lists instead of the frozen ones.
    pub refresh: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianImage {
    pub rootfs: PathBuf,
    pub manifest: PathBuf,
}

impl DebianBuild {
    /// The build an image name stands for (`debian`, `debian-<role>`), if any.
    pub fn for_image(image: &str, image_dir: &Path, cache_dir: &Path, mirror: &str) -> Option<DebianBuild> {
        Some(DebianBuild {
            role: role_of(image)?.to_string(),
            image_dir: image_dir.to_path_buf(),
            cache_dir: cache_dir.to_path_buf(),
            mirror: mirror.to_string(),
            refresh: false,
        })
    }

    pub fn image(&self) -> DebianImage {
        let name = image_name(&self.role);
        DebianImage {
            rootfs: self.image_dir.join(format!("{name}.rootfs")),
            manifest: self.image_dir.join(format!("{name}.packages")),
        }
    }

    fn package_cache(&self) -> (PathBuf, PathBuf) {
        let root = self.cache_dir.join("apt").join(SUITE);
        (root.join("lists"), root.join("archives"))
    }

    /// Agents of simulated hosts share one image dir: one builds, the
    /// others wait and find it built.
    pub(super) fn lock(&self) -> anyhow::Result<BuildLock> {
        BuildLock::take(&self.image_dir.join(format!(".{}.lock", image_name(&self.role))))
    }

    /// Builds the image unless it exists; `progress` gets mmdebstrap's
    /// lines as they come. The rootfs is built beside its place and
    /// renamed into it, so a failed build leaves nothing that looks built.
    pub fn build(&self, rebuild: bool, mut progress: impl FnMut(&str)) -> anyhow::Result<DebianImage> {
        let image = self.image();
        // A bad role is refused before anything is created.
        let packages = packages(&self.role)?;
        std::fs::create_dir_all(&self.image_dir)
            .with_context(|| format!("creating {}", self.image_dir.display()))?;
        let _lock = self.lock()?;
        let stamp = stamp(&packages);
        let current = std::fs::read_to_string(image.rootfs.join(STAMP)).is_ok_and(|v| v == stamp);
        if !rebuild && !self.refresh && current && image.manifest.exists() {
            return Ok(image);
        }
        let tmp = self
            .image_dir
            .join(format!(".{}.rootfs.tmp", image_name(&self.role)));
        let manifest_tmp = with_ext(&image.manifest, "tmp");
        // A build cut short (the agent killed mid-way) leaves its directory,
        // with mmdebstrap's /proc, /sys and /dev mounts still inside;
        // mmdebstrap refuses a non-empty one. We hold the lock: it is ours.
        if tmp.exists() {
            clear_interrupted_build(&tmp)?;
        }
        self.mmdebstrap(&packages, &tmp, &manifest_tmp, &[], &mut progress)?;
        std::fs::write(tmp.join(STAMP), &stamp)?;
        // Running nodes keep the previous image as their lower layer: it
        // moves aside (one generation is kept) rather than being deleted.
        if image.rootfs.exists() {
            let old = with_ext(&image.rootfs, "old");
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&image.rootfs, &old)?;
        }
        std::fs::rename(&tmp, &image.rootfs)
            .with_context(|| format!("moving the rootfs to {}", image.rootfs.display()))?;
        std::fs::rename(&manifest_tmp, &image.manifest)?;
        Ok(image)
    }

    /// Runs mmdebstrap into `tmp` (replaced) with `packages` and the
    /// frozen package cache; `hooks` are extra mmdebstrap options.
    pub(super) fn mmdebstrap(
        &self,
        packages: &[&str],
        tmp: &Path,
        manifest_tmp: &Path,
        hooks: &[String],
        progress: &mut impl FnMut(&str),
    ) -> anyhow::Result<()> {
        let (lists, archives) = self.package_cache();
        for dir in [&lists, &archives, &self.image_dir] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let frozen = !self.refresh && has_lists(&lists);
        let _ = std::fs::remove_dir_all(tmp);
        let mut cmd = Command::new("mmdebstrap");
        cmd.args(["--variant=apt", "--mode=root", "--format=directory"])
            .arg(format!("--include={}", packages.join(",")))
            // Kept for the cache: the essential packages' .debs and apt's lists.
            .args(["--skip=essential/unlink", "--skip=cleanup/apt/cache"])
            .arg("--setup-hook=mkdir -p \"$1/var/lib/apt/lists\" \"$1/var/cache/apt/archives\"")
            .arg(format!(
                "--setup-hook=sync-in {} /var/cache/apt/archives",
                archives.display()
            ));
        if frozen {
            cmd.arg(format!(
                "--setup-hook=sync-in {} /var/lib/apt/lists",
                lists.display()
            ))
            .arg("--skip=update");
        }
        cmd.arg(format!(
            "--customize-hook=sync-out /var/lib/apt/lists {}",
            lists.display()
        ))
        .arg(format!(
            "--customize-hook=sync-out /var/cache/apt/archives {}",
            archives.display()
        ))
        .arg(format!(
            "--customize-hook=chroot \"$1\" dpkg-query -W -f '${{Package}} ${{Version}}\\n' > {}",
            manifest_tmp.display()
        ))
        // The .debs live in the host's cache, not in every image.
        .arg("--customize-hook=rm -f \"$1\"/var/cache/apt/archives/*.deb")
        // Made per node at its first start (the node's init runs ssh-keygen -A).
        .arg("--customize-hook=rm -f \"$1\"/etc/ssh/ssh_host_*")
        .arg(format!(
            "--customize-hook=cd \"$1\"/lib/systemd/system && for u in {}; do \
             if [ -e \"$u\" ]; then chroot \"$1\" systemctl disable --quiet \"$u\"; fi; done",
            super::roles::leave_disabled()
        ))
        .args(hooks)
        .arg(SUITE)
        .arg(tmp)
        .arg(&self.mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        progress(&format!(
            "building {} with {} packages ({}) from {}",
            image_name(&self.role),
            packages.len(),
            if frozen {
                "frozen package lists"
            } else {
                "fresh package lists"
            },
            self.mirror
        ));
        let output = run_with_progress(cmd, progress)
            .context("running mmdebstrap (install it: scripts/install-deps.sh --vm)")?;
        if !output.0 {
            let _ = std::fs::remove_dir_all(tmp);
            bail!(
                "mmdebstrap failed building {}: {}",
                image_name(&self.role),
                output.1.trim()
            );
        }
        Ok(())
    }
}

/// An exclusive flock, released when the file is closed on drop (or when
/// the process dies).
pub(super) struct BuildLock(#[allow(dead_code)] std::fs::File);

impl BuildLock {
    fn take(path: &Path) -> anyhow::Result<BuildLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        // SAFETY: flock on a descriptor this struct owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("locking {}: {}", path.display(), std::io::Error::last_os_error());
        }
        Ok(BuildLock(file))
    }
}

fn has_lists(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
    })
}

pub(super) fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{ext}"));
    PathBuf::from(s)
}

/// Runs `cmd`, handing each line of its stderr (mmdebstrap's progress) to
/// `progress`: (success, the last lines, for an error).
fn run_with_progress(mut cmd: Command, progress: &mut impl FnMut(&str)) -> anyhow::Result<(bool, String)> {
    use std::io::BufRead;
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    // stdout carries little; drained so the child never blocks on it.
    let drain = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::BufReader::new(stdout), &mut std::io::sink());
    });
    let mut tail: Vec<String> = Vec::new();
    for line in std::io::BufReader::new(child.stderr.take().expect("piped")).lines() {
        let line = line?;
        progress(&line);
        tail.push(line);
        if tail.len() > 15 {
            tail.remove(0);
        }
    }
    let _ = drain.join();
    Ok((child.wait()?.success(), tail.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_builds_mounts_are_found_deepest_first() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
            90 80 0:5 / /var/lib/dclab/images/.debian.rootfs.tmp/dev rw - devtmpfs udev rw\n\
            91 90 0:6 / /var/lib/dclab/images/.debian.rootfs.tmp/dev/pts rw - devpts none rw\n\
            92 80 0:7 / /var/lib/dclab/images/.debian.rootfs.tmp/proc ro - proc proc ro\n\
            93 80 0:8 / /var/lib/dclab/images/.debian.rootfs.tmpx/sys ro - sysfs sys ro\n";
        let found = mounts_under(info, Path::new("/var/lib/dclab/images/.debian.rootfs.tmp"));
        assert_eq!(
            found,
            [
                "/var/lib/dclab/images/.debian.rootfs.tmp/dev/pts",
                "/var/lib/dclab/images/.debian.rootfs.tmp/proc",
                "/var/lib/dclab/images/.debian.rootfs.tmp/dev",
            ]
        );
    }

    /// The stamp of images built before the manifest (the role lists were
    /// Rust constants then): the same, so those images stay current.
    #[test]
    fn the_compute_image_stamp_is_the_one_of_images_built_before_the_manifest() {
        assert_eq!(
            stamp(&packages("compute").unwrap()),
            "3 systemd systemd-sysv dbus openssh-server python3 python3-apt sudo iproute2 \
             iputils-ping netcat-openbsd curl ca-certificates procps netbase less nova-compute \
             qemu-system-x86 neutron-linuxbridge-agent genisoimage openvswitch-switch / \
             keystone.service glance-*.service placement-api.service nova-*.service \
             neutron-*.service swift-*.service apache2.service openvswitch-switch.service \
             ovs-vswitchd.service ovsdb-server.service"
        );
    }

    #[test]
    fn roles_name_images_and_add_to_the_base() {
        assert_eq!(image_name("base"), "debian");
        assert_eq!(image_name("compute"), "debian-compute");
        assert_eq!(role_of("debian"), Some("base"));
        assert_eq!(role_of("debian-controller"), Some("controller"));
        assert_eq!(role_of("debian-nope"), None);
        let compute = packages("compute").unwrap();
        assert!(compute.contains(&"openssh-server") && compute.contains(&"nova-compute"));
        assert!(packages("nope")
            .unwrap_err()
            .to_string()
            .contains("roles are base, controller"));
    }
}
