//! Files the agent writes into a node's own layer (SSH keys, its hostname,
//! dclab's init), opened one path component at a time with O_NOFOLLOW
//! relative to the layer's root. The layer is the node's to change: a
//! node that turns `/root/.ssh` into a link to the host's `/root/.ssh`
//! must get its write refused, never have it land on the host.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// `rel` (an absolute path inside the node, such as `/root/.ssh`) as its
/// components; `..` and the like are refused.
fn components(rel: &str) -> io::Result<Vec<CString>> {
    Path::new(rel.trim_start_matches('/'))
        .components()
        .map(|c| match c {
            Component::Normal(name) => {
                CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{rel}: only plain names below the node's root"),
            )),
        })
        .collect()
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens `name` in `dir` as a directory, never through a link; makes it
/// (with `mode`) when missing and `create` is set.
fn open_subdir(dir: &OwnedFd, name: &CString, create: Option<u32>) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat on a directory fd we own with a NUL-terminated name.
    let open = || unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    let fd = match (check(open()), create) {
        (Err(e), Some(mode)) if e.kind() == io::ErrorKind::NotFound => {
            // SAFETY: as above; a lost race with another mkdir is fine.
            let made = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) };
            if made < 0 && io::Error::last_os_error().kind() != io::ErrorKind::AlreadyExists {
                return Err(io::Error::last_os_error());
            }
            check(open())?
        }
        (r, _) => r.map_err(|e| refused_link(e, name))?,
    };
    // SAFETY: a fresh fd from openat, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// ELOOP from O_NOFOLLOW (and ENOTDIR from O_DIRECTORY on a link) said
/// plainly.
fn refused_link(e: io::Error, name: &CString) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} in the node's layer is a link or not a directory; not followed",
                name.to_string_lossy()
            ),
        ),
        _ => e,
    }
}

/// The directory holding `path` (inside the node) under `root`, opened
/// without following links; its missing parents are made with `mode`.
fn parent_of(root: &Path, path: &str, mode: Option<u32>) -> io::Result<(OwnedFd, CString)> {
    let mut parts = components(path)?;
    let name = parts
        .pop()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty path"))?;
    let root = CString::new(root.as_os_str().as_bytes())?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: open of the layer's root, a path the agent made itself.
    let fd = check(unsafe { libc::open(root.as_ptr(), flags) })?;
    // SAFETY: a fresh fd, owned from here on.
    let mut dir = unsafe { OwnedFd::from_raw_fd(fd) };
    for part in &parts {
        dir = open_subdir(&dir, part, mode)?;
    }
    Ok((dir, name))
}

/// Whether anything (a file, a link, a directory) is at `name` in `dir`.
fn exists_at(dir: &OwnedFd, name: &CString) -> io::Result<bool> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat into a stat buffer of the right size; no link followed.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match check(r) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The regular file at `path` under `root`, if there is one; a link there
/// or on the way reads as nothing.
pub fn read(root: &Path, path: &str) -> io::Result<Option<Vec<u8>>> {
    let (dir, name) = match parent_of(root, path, None) {
        Ok(found) => found,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat relative to a directory fd we own.
    match check(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) }) {
        Ok(fd) => {
            // SAFETY: a fresh fd, owned by the File.
            let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
            let mut text = Vec::new();
            file.read_to_end(&mut text)?;
            Ok(Some(text))
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ELOOP)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `text` to `path` under `root` with `mode`, replacing what is
/// there (a link included: the link is replaced, its target untouched).
/// Missing parents are made with `dir_mode`; a link on the way is refused.
pub fn write(root: &Path, path: &str, text: &[u8], mode: u32, dir_mode: u32) -> io::Result<()> {
    let (dir, name) = parent_of(root, path, Some(dir_mode))?;
    let mut tmp_name = name.as_bytes().to_vec();
    tmp_name.extend_from_slice(b".dclab-tmp");
    let tmp = CString::new(tmp_name)?;
    // SAFETY: unlinkat of our own temporary name in a directory fd we own.
    unsafe { libc::unlinkat(dir.as_raw_fd(), tmp.as_ptr(), 0) };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat relative to a directory fd we own; O_EXCL makes a new file.
    let fd = check(unsafe { libc::openat(dir.as_raw_fd(), tmp.as_ptr(), flags, mode as libc::c_uint) })?;
    // SAFETY: a fresh fd, owned by the File.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(text)?;
    // The umask may have narrowed the mode; the file gets exactly `mode`.
    // SAFETY: fchmod on the fd we own.
    check(unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) })?;
    file.sync_all()?;
    // SAFETY: renameat within one directory fd we own; a link at `name` is
    // replaced itself.
    check(unsafe { libc::renameat(dir.as_raw_fd(), tmp.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })?;
    Ok(())
}

/// Writes `text` to `path` under `root` unless something is there already
/// (a file of the node's own, or a link: either is left alone).
pub fn write_if_absent(root: &Path, path: &str, text: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = parent_of(root, path, Some(0o755))?;
    if exists_at(&dir, &name)? {
        return Ok(());
    }
    drop(dir);
    write(root, path, text, mode, 0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_in_the_layer_and_never_through_a_link() {
        let layer = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let root = layer.path();
        write(root, "/root/.ssh/authorized_keys", b"key\n", 0o600, 0o700).unwrap();
        let written = root.join("root/.ssh/authorized_keys");
        assert_eq!(std::fs::read(&written).unwrap(), b"key\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&written).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            read(root, "/root/.ssh/authorized_keys").unwrap().unwrap(),
            b"key\n"
        );

        // The node turns /root/.ssh into a link to a directory of the host.
        std::fs::remove_dir_all(root.join("root/.ssh")).unwrap();
        std::os::unix::fs::symlink(host.path(), root.join("root/.ssh")).unwrap();
        let err = write(root, "/root/.ssh/authorized_keys", b"key\n", 0o600, 0o700).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(
            std::fs::read_dir(host.path()).unwrap().next().is_none(),
            "written through the link"
        );
        assert_eq!(read(root, "/root/.ssh/authorized_keys").unwrap(), None);

        // A link as the file itself is replaced, its target untouched.
        let outside = host.path().join("hostname");
        std::fs::write(&outside, "host's\n").unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("etc/motd")).unwrap();
        assert_eq!(read(root, "/etc/motd").unwrap(), None, "read through a link");
        write(root, "/etc/motd", b"dclab\n", 0o644, 0o755).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "host's\n");
        assert!(!root.join("etc/motd").is_symlink());

        // Seeds leave whatever is there alone, a link included.
        std::os::unix::fs::symlink(&outside, root.join("etc/hostname")).unwrap();
        write_if_absent(root, "/etc/hostname", b"node\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "host's\n");
        write_if_absent(root, "/etc/new", b"node\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("etc/new")).unwrap(), "node\n");
        assert!(write(root, "/etc/../../x", b"", 0o644, 0o755).is_err());
    }
}
