//! Running a command in a container node the way `lxc-attach` does: in
//! the namespaces of its init (nsenter) and in its cgroups, so what the
//! command uses counts against the node's limits.

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::exec_output::CommandOutput;

/// PATH inside the node (Debian's, which covers busybox's /bin).
const NODE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const POLL: Duration = Duration::from_millis(20);
/// Output still arriving after the command exited: from what it left
/// running in the background, which may hold the pipe for ever.
const DRAIN: Duration = Duration::from_millis(200);
/// One read of the output pipe (its size on Linux).
const READ_CHUNK: usize = 64 * 1024;

/// The container's init: the one child of libvirt's controller process.
pub fn init_pid(controller: u32) -> anyhow::Result<u32> {
    let path = format!("/proc/{controller}/task/{controller}/children");
    let children = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("the container's controller (pid {controller}) has no init process"))
}

/// `cgroup.procs` of every cgroup v1 hierarchy init is in.
fn cgroup_procs(init: u32) -> anyhow::Result<Vec<String>> {
    let path = format!("/proc/{init}/cgroup");
    let table = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(procs_files(&table)
        .into_iter()
        .filter(|p| std::path::Path::new(p).exists())
        .collect())
}

/// The `cgroup.procs` files named by a `/proc/PID/cgroup` table (v1
/// lines; the cgroup2 line is skipped: libvirt does not use it here).
fn procs_files(table: &str) -> Vec<String> {
    table
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, cgroup) = (parts.next()?, parts.next()?, parts.next()?);
            let mount = match controllers {
                "" => return None, // cgroup2: not mounted for libvirt here
                c => c.strip_prefix("name=").unwrap_or(c),
            };
            Some(format!("/sys/fs/cgroup/{mount}{cgroup}/cgroup.procs"))
        })
        .collect()
}

/// Runs `command` with `sh -c` in the container and returns its exit
/// code; its output (stdout and stderr) goes to `out` as it arrives, read
/// in this thread so that nothing queues it. On timeout, or when the
/// reader of a streamed output goes away, the whole process group is
/// killed.
pub fn run(init: u32, command: &str, timeout: Duration, out: &mut CommandOutput) -> anyhow::Result<i32> {
    // The host shell joins the container's cgroups, then becomes nsenter.
    let script = r#"exec 2>&1; init=$1; cmd=$2; shift 2
for procs; do echo $$ > "$procs" || exit 125; done
exec nsenter --target "$init" --all -- /bin/sh -c "cd /root 2>/dev/null || cd /; $cmd""#;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(init.to_string())
        .arg(command)
        .args(cgroup_procs(init)?)
        .env_clear()
        .env("PATH", NODE_PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting nsenter")?;
    let pid = child.id() as i32;
    let mut pipe = Pipe::new(child.stdout.take().expect("piped"))?;
    let deadline = Instant::now() + timeout;
    // When the command ended, and until when what it left behind may write.
    let mut exited: Option<(ExitStatus, Instant)> = None;
    let status = loop {
        let now = Instant::now();
        if exited.is_none() {
            exited = child.try_wait()?.map(|status| (status, now + DRAIN));
        }
        let stop = match exited {
            Some((status, until)) if !pipe.open || now >= until => break status,
            Some(_) => None,
            None if now >= deadline => Some(format!("did not finish within {timeout:?}")),
            None if out.reader_gone() => Some("lost the reader of its output".to_string()),
            None => None,
        };
        if let Some(why) = stop {
            // SAFETY: a signal to the process group this call started.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            bail!("{command:?} {why}; it was killed");
        }
        pipe.read_into(out, POLL.min(deadline.saturating_duration_since(now)))?;
    };
    let code = match status.code() {
        Some(125) if out.text().contains("cgroup.procs") => {
            bail!("cannot join the container's cgroups: {}", out.text())
        }
        Some(code) => code,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
    };
    Ok(code)
}

/// The read end of the command's output pipe, read without blocking.
struct Pipe {
    file: std::process::ChildStdout,
    buf: Vec<u8>,
    open: bool,
}

impl Pipe {
    fn new(file: std::process::ChildStdout) -> anyhow::Result<Pipe> {
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this struct owns.
        let set = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
        };
        if !set {
            bail!(
                "making the output pipe non-blocking: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(Pipe {
            file,
            buf: vec![0; READ_CHUNK],
            open: true,
        })
    }

    /// Waits up to `wait` for output and hands one read of it to `out`.
    fn read_into(&mut self, out: &mut CommandOutput, wait: Duration) -> anyhow::Result<()> {
        if !self.open {
            std::thread::sleep(wait);
            return Ok(());
        }
        let mut poll = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd that lives across the call.
        if unsafe { libc::poll(&mut poll, 1, wait.as_millis().max(1) as i32) } <= 0 {
            return Ok(());
        }
        match self.file.read(&mut self.buf) {
            Ok(0) => self.open = false,
            Ok(n) => {
                out.push(&self.buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e).context("reading the command's output"),
        }
        Ok(())
    }
}

/// How long a connection into a node may take to be accepted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `f` in a short-lived thread that entered the network namespace of
/// the container whose init is `init`. A socket keeps the namespace it was
/// made in, so only that thread ever changes namespace.
fn in_netns<T: Send + 'static>(
    init: u32,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let ns_path = format!("/proc/{init}/ns/net");
    let ns = std::fs::File::open(&ns_path).with_context(|| format!("opening {ns_path}"))?;
    std::thread::spawn(move || -> anyhow::Result<T> {
        // SAFETY: setns on a namespace fd this thread owns; only this
        // thread changes namespace, and it ends right after.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!(
                "entering the node's network namespace: {}",
                std::io::Error::last_os_error()
            );
        }
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread in the node's namespace panicked"))?
}

/// A TCP connection made inside the node.
pub fn connect_inside(init: u32, addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpStream> {
    in_netns(init, move || {
        std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .with_context(|| format!("connecting to {addr} inside the node"))
    })
}

/// A listening socket inside the node (the apt cache's port).
pub fn listen_inside(init: u32, addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    in_netns(init, move || {
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr} inside the node"))
    })
}

/// Turns transmit checksum offload off on every interface of the node
/// but loopback; returns the ones that had it on. A veth with it on hands
/// the host's end frames whose TCP and UDP checksums are left for
/// hardware to fill in; OvS's userspace datapath forwards them as they
/// are, and the receiver drops them, so TCP between container nodes
/// failed while ping worked.
pub fn clear_tx_checksum_offload(init: u32) -> anyhow::Result<Vec<String>> {
    in_netns(init, || {
        let fd = crate::netem::sock::packet_socket(false)?;
        let mut cleared = Vec::new();
        for name in interface_names()? {
            if name != "lo" && crate::netem::sock::clear_tx_checksum(&fd, &name)? {
                cleared.push(name);
            }
        }
        Ok(cleared)
    })
}

/// The interfaces of the calling thread's network namespace.
fn interface_names() -> anyhow::Result<Vec<String>> {
    // SAFETY: if_nameindex returns an array ending in a zero entry, or
    // null; it is freed below and nothing refers to it after.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        bail!(
            "listing the node's interfaces: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut names = Vec::new();
    let mut entry = list;
    // SAFETY: walks the array up to its zero entry; names are C strings.
    unsafe {
        while (*entry).if_index != 0 {
            names.push(
                std::ffi::CStr::from_ptr((*entry).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v1_hierarchy_of_the_table_is_joined() {
        let table = "9:name=systemd:/machine/lxc-1-d.libvirt-lxc\n\
                     4:memory:/machine/lxc-1-d.libvirt-lxc\n\
                     2:cpu,cpuacct:/machine/lxc-1-d.libvirt-lxc\n\
                     0::/\n";
        assert_eq!(
            procs_files(table),
            [
                "/sys/fs/cgroup/systemd/machine/lxc-1-d.libvirt-lxc/cgroup.procs",
                "/sys/fs/cgroup/memory/machine/lxc-1-d.libvirt-lxc/cgroup.procs",
                "/sys/fs/cgroup/cpu,cpuacct/machine/lxc-1-d.libvirt-lxc/cgroup.procs",
            ]
        );
    }
}
