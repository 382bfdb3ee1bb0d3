//! The micro-VM image dclab labs boot for tests and demos: Debian's cloud
//! kernel, a busybox initramfs, and a small ext4 scratch disk in qcow2.
//!
//! `build_micro(dir)` writes `vmlinuz`, `initrd.img` and `disk.qcow2` there
//! (plus a `stamp`), reusing what is up to date and writing atomically.
//!
//! # Booting
//!
//! Kernel command line: `console=ttyS0` plus, all optional,
//! `dclab.hostname=NAME` (default `dclab`), `dclab.ip=ADDR/PREFIX` for eth0
//! (or `dclab.ip=dhcp`: a DHCP lease, as an OpenStack instance gets),
//! `dclab.ipN=ADDR/PREFIX` for ethN (N from 1 to 9)
//! and `dclab.gw=ADDR` for the default route. A virtio disk (`/dev/vda`) is
//! mounted at `/data` with synchronous writes, so a snapshot taken right after
//! a command already holds what the command wrote.
//!
//! # Serial protocol (ttyS0)
//!
//! When the command loop is up (echo off), the guest prints
//! `DCLAB-READY <hostname>`. The host then writes one line per command:
//!
//! ```text
//! <id> <shell command line>
//! ```
//!
//! `<id>` is `[A-Za-z0-9_.-]+`, chosen by the host; other lines are ignored.
//! The guest runs the command with `sh -c`, stdin from /dev/null, and answers
//!
//! ```text
//! DCLAB-BEGIN <id>
//! <stdout and stderr, as the command writes them>
//! \nDCLAB-END <id> <exit code>
//! ```
//!
//! The output goes through a pipe (so the command's stdout is no tty) to
//! the console as it comes, with output post-processing off (no CR added),
//! so it arrives byte for byte; the newline before `DCLAB-END` is the
//! loop's, and so is one before `DCLAB-BEGIN`. What the command leaves
//! running with its output open may write on after the end line, until
//! the next command comes.
//!
//! Commands run one at a time, in order. A `^C` interrupts a running
//! command; the loop then restarts and prints `DCLAB-READY` again. Output
//! written while no client is connected to the console socket is lost, so a
//! late client sends a probe command instead of waiting for `DCLAB-READY`
//! ([`SerialConsole::wait_ready`] does both).
//!
//! # Cloud images
//!
//! Nodes that boot a cloud image get their hostname, SSH keys, addresses and
//! apt proxy from a cloud-init NoCloud seed ISO: see [`seed`].

mod build;
mod cpio;
pub mod debian;
pub mod debian_vm;
mod micro_rootfs;
mod roles;
pub mod seed;
mod serial;
mod serial_frame;
#[cfg(test)]
mod tests;

pub use build::build_micro;
pub use micro_rootfs::build_micro_rootfs;
pub use serial::SerialConsole;

use std::path::PathBuf;

/// The files of a built micro-VM image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicroImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The scratch disk template; copy it (or use it as a qcow2 backing
    /// file) per VM rather than booting several VMs from it.
    pub disk: PathBuf,
    pub kernel_version: String,
}
