//! A micro-VM on real libvirtd and qemu (TCG), driven through the agent's
//! libvirt layer: it boots, runs commands over its serial console, and a
//! snapshot taken while paused brings its disk and memory back.

use std::path::Path;
use std::time::{Duration, Instant};

use dclab_agent::exec_output::{CommandOutput, MAX_KEPT};
use dclab_agent::image::{build_micro, SerialConsole};
use dclab_agent::libvirt::disk::create_overlay;
use dclab_agent::libvirt::{Boot, Hypervisor, VmSpec};
use dclab_integration::libvirtd::{vm_dir, Domains, Libvirtd};

fn console(socket: &Path) -> SerialConsole {
    let mut c = SerialConsole::connect(socket, Duration::from_secs(30)).expect("serial console");
    c.wait_ready(Duration::from_secs(60)).expect("guest ready");
    c
}

fn sh(c: &mut SerialConsole, cmd: &str) -> String {
    let mut out = CommandOutput::kept(MAX_KEPT);
    let rc = c
        .run(cmd, Duration::from_secs(20), &mut out)
        .expect("command runs");
    let out = out.text();
    assert_eq!(rc, 0, "{cmd}: {out}");
    out.trim().to_string()
}

#[test]
fn snapshot_and_revert_bring_back_disk_and_memory() {
    let _libvirtd = Libvirtd::ensure();
    let dir = vm_dir("dclab-vm");
    let image = build_micro(&dir.path().join("image")).expect("micro image builds");
    let disk = dir.path().join("node.qcow2");
    create_overlay(&image.disk, &disk).unwrap();
    let socket = dir.path().join("console.sock");
    let name = format!("dclab-test-{}", std::process::id());
    let hv = Hypervisor::open("qemu:///system").expect("libvirt connection");
    let spec = VmSpec {
        name: name.clone(),
        domain_type: "qemu".into(),
        vcpus: 1,
        memory_mib: 256,
        boot: Boot::Kernel {
            kernel: image.kernel.clone(),
            initrd: image.initrd.clone(),
            cmdline: "console=ttyS0 panic=-1 dclab.hostname=snap".into(),
        },
        disks: vec![disk],
        nics: vec![],
        serial_socket: Some(socket.clone()),
        cdrom: None,
    };
    let _domains = Domains(&hv, vec![name.clone()]);
    let booted = Instant::now();
    hv.ensure_running(&spec).expect("domain starts");
    let mut c = console(&socket);
    println!(
        "micro-VM on libvirt ready in {:.1} s",
        booted.elapsed().as_secs_f64()
    );
    assert_eq!(sh(&mut c, "hostname"), "snap");
    sh(&mut c, "echo before > /data/marker; echo before > /tmp/in-memory");

    let t = Instant::now();
    hv.pause(&name).unwrap();
    hv.snapshot(&name, "initial").unwrap();
    hv.resume(&name).unwrap();
    println!(
        "snapshot (pause, snapshot, resume) took {:.2} s",
        t.elapsed().as_secs_f64()
    );

    sh(&mut c, "echo after > /data/marker; echo after > /tmp/in-memory");
    assert_eq!(sh(&mut c, "cat /data/marker"), "after");
    drop(c);
    let t = Instant::now();
    hv.revert(&name, "initial").unwrap();
    hv.resume(&name).ok();
    println!("revert took {:.2} s", t.elapsed().as_secs_f64());
    let mut c = console(&socket);
    assert_eq!(
        sh(&mut c, "cat /data/marker"),
        "before",
        "disk is back to the snapshot"
    );
    assert_eq!(
        sh(&mut c, "cat /tmp/in-memory"),
        "before",
        "memory is back to the snapshot"
    );
}
