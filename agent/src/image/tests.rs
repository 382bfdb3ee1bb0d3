//! Boots the micro-VM under qemu (TCG) and drives it over the serial console.

use super::{build_micro, MicroImage, SerialConsole};
use crate::exec_output::{CommandOutput, MAX_KEPT};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the qemu this test started (by its own Child, never by name).
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "{tool} missing: apt-get install {package} (or scripts/install-deps.sh --vm)"
    );
}

fn boot(dir: &Path, image: &MicroImage, cmdline: &str) -> Qemu {
    let socket = dir.join("ttyS0.sock");
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "accel=tcg",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
        ])
        // restrict=on: the guest's NIC reaches nothing outside qemu.
        .args(["-no-reboot", "-nic", "user,restrict=on,model=virtio-net-pci"])
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initrd)
        .arg("-append")
        .arg(format!("console=ttyS0 panic=-1 {cmdline}"))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", image.disk.display()))
        .arg("-serial")
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("starting qemu-system-x86_64");
    Qemu(child)
}

/// Runs `cmd`: (exit code, output), the output kept as ExecNode keeps it.
fn run(console: &mut SerialConsole, cmd: &str) -> anyhow::Result<(i32, String)> {
    let mut out = CommandOutput::kept(MAX_KEPT);
    let code = console.run(cmd, Duration::from_secs(10), &mut out)?;
    Ok((code, out.text()))
}

#[test]
fn micro_vm_boots_and_runs_commands() {
    require("qemu-system-x86_64", "qemu-system-x86");
    require("qemu-img", "qemu-utils");
    require("mke2fs", "e2fsprogs");
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let image = build_micro(&dir.path().join("image")).expect("building the micro image");
    eprintln!("micro image built in {:?}", started.elapsed());
    let started = Instant::now();
    let cmdline = "dclab.hostname=t1 dclab.ip=10.0.2.15/24 dclab.gw=10.0.2.2";
    let _qemu = boot(dir.path(), &image, cmdline);
    let mut console = SerialConsole::connect(&dir.path().join("ttyS0.sock"), Duration::from_secs(10))
        .expect("connecting to the console");
    console.wait_ready(Duration::from_secs(60)).expect("guest ready");
    eprintln!("micro-VM ready {:?} after qemu started (TCG)", started.elapsed());

    let (code, out) = run(&mut console, "uname -r").unwrap();
    assert_eq!((code, out.trim()), (0, image.kernel_version.as_str()));

    let (code, out) = run(&mut console, "hostname").unwrap();
    assert_eq!((code, out.as_str()), (0, "t1\n"));

    let (code, out) = run(&mut console, "lsmod; cat /proc/uptime").unwrap();
    assert_eq!(code, 0);
    for module in ["virtio_pci", "virtio_net", "virtio_blk"] {
        assert!(out.contains(module), "{module} not loaded:\n{out}");
    }
    eprintln!("guest uptime: {}", out.lines().last().unwrap_or_default());

    let (code, out) = run(&mut console, "ip -4 addr show eth0; ip route").unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("inet 10.0.2.15/24"), "eth0 not configured:\n{out}");
    assert!(out.contains("default via 10.0.2.2"), "no default route:\n{out}");

    let cmd = "echo hi > /data/marker && cat /data/marker";
    let (code, out) = run(&mut console, cmd).unwrap();
    assert_eq!((code, out.as_str()), (0, "hi\n"));

    // Exit codes and output without a final newline come through byte for byte.
    let (code, out) = run(&mut console, "printf abc; exit 3").unwrap();
    assert_eq!((code, out.as_str()), (3, "abc"));

    // What a command leaves running with its output open holds up
    // neither the command nor the next one.
    let started = Instant::now();
    let cmd = "(sleep 1; while :; do printf late; usleep 10000; done) & echo now";
    let (code, out) = run(&mut console, cmd).unwrap();
    assert_eq!((code, out.as_str()), (0, "now\n"));
    let (code, out) = run(&mut console, "echo next").unwrap();
    assert_eq!((code, out.as_str()), (0, "next\n"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A long output keeps its first and last parts and counts the middle.
    let cmd = "head -c 200000 /dev/zero | tr '\\0' x; echo; echo end";
    let mut out = CommandOutput::kept(MAX_KEPT);
    let code = console.run(cmd, Duration::from_secs(60), &mut out).unwrap();
    assert_eq!(code, 0);
    assert_eq!(out.total(), 200_005);
    assert_eq!(out.dropped(), 200_005 - MAX_KEPT as u64);
    assert!(out.text().starts_with("xxx") && out.text().ends_with("xxx\nend\n"));

    // An endless one is read and dropped as it comes until it times out,
    // then interrupted; the loop comes back.
    let mut out = CommandOutput::kept(MAX_KEPT);
    let endless = console.run("cat /dev/zero", Duration::from_secs(5), &mut out);
    let error = endless
        .expect_err("cat /dev/zero ends only when interrupted")
        .to_string();
    assert!(
        error.contains("did not finish within 5.0 s; it was interrupted"),
        "{error}"
    );
    assert!(
        out.dropped() > 0 && out.text().len() < MAX_KEPT + 100,
        "{}",
        out.total()
    );
    eprintln!("cat /dev/zero over the console: {} bytes in 5 s", out.total());
    console
        .wait_ready(Duration::from_secs(20))
        .expect("the loop restarts");

    // A second client (as after a reconnect) finds the loop by probing.
    drop(console);
    let mut again = SerialConsole::connect(&dir.path().join("ttyS0.sock"), Duration::from_secs(5)).unwrap();
    again
        .wait_ready(Duration::from_secs(10))
        .expect("ready on reconnect");
    let (code, out) = run(&mut again, "cat /data/marker").unwrap();
    assert_eq!((code, out.as_str()), (0, "hi\n"));
}

#[test]
fn build_is_idempotent() {
    require("qemu-img", "qemu-utils");
    require("mke2fs", "e2fsprogs");
    let dir = tempfile::tempdir().expect("temp dir");
    let first = build_micro(dir.path()).expect("first build");
    let modified = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let stamps = [
        modified(&first.kernel),
        modified(&first.initrd),
        modified(&first.disk),
    ];
    let second = build_micro(dir.path()).expect("second build");
    assert_eq!(first, second);
    assert_eq!(
        stamps,
        [
            modified(&second.kernel),
            modified(&second.initrd),
            modified(&second.disk)
        ]
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
