//! Micro-VMs on real libvirtd and qemu, plugged into the local multi-host
//! setup: each VM's tap moves into its host's namespace and joins that
//! host's OvS bridge as a dclab port, so VMs on different hosts reach each
//! other through the rewrite rules, and a second tenant with the same
//! addresses does not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dclab_agent::exec_output::{CommandOutput, MAX_KEPT};
use dclab_agent::image::{build_micro, MicroImage, SerialConsole};
use dclab_agent::libvirt::disk::create_overlay;
use dclab_agent::libvirt::{Boot, Hypervisor, Nic, VmSpec};
use dclab_integration::api::Api;
use dclab_integration::libvirtd::{vm_dir, Domains, Libvirtd};
use dclab_integration::{cluster, Cluster};
use dclab_proto::v1;

fn run(argv: &[&str]) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("command runs");
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Node {
    name: &'static str,
    tenant: &'static str,
    host: &'static str,
    ip: &'static str,
    mac: &'static str,
}

/// Starts the VM, moves its tap into the host and plugs it into br-int as
/// the dclab port `node.name`, then creates that port.
fn start(hv: &Hypervisor, c: &Cluster, api: &Api, image: &MicroImage, dir: &Path, n: &Node) -> PathBuf {
    let disk = dir.join(format!("{}.qcow2", n.name));
    create_overlay(&image.disk, &disk).unwrap();
    let socket = dir.join(format!("{}.sock", n.name));
    let tap = format!("vt-{}-{}", std::process::id() % 10000, n.name);
    let spec = VmSpec {
        name: format!("dclab-vmnet-{}-{}", std::process::id(), n.name),
        domain_type: "qemu".into(),
        vcpus: 1,
        memory_mib: 192,
        boot: Boot::Kernel {
            kernel: image.kernel.clone(),
            initrd: image.initrd.clone(),
            cmdline: format!(
                "console=ttyS0 panic=-1 dclab.hostname={} dclab.ip={}/24",
                n.name, n.ip
            ),
        },
        disks: vec![disk],
        nics: vec![Nic {
            tap: tap.clone(),
            mac: n.mac.into(),
        }],
        serial_socket: Some(socket.clone()),
        cdrom: None,
    };
    hv.ensure_running(&spec).expect("VM starts");
    let ns = c.host_netns(n.host);
    run(&["ip", "link", "set", &tap, "netns", &ns]);
    run(&["ip", "-n", &ns, "link", "set", &tap, "up"]);
    let iface_id = format!("external_ids:iface-id={}", n.name);
    c.vsctl(
        n.host,
        &[
            "add-port",
            "br-int",
            &tap,
            "--",
            "set",
            "Interface",
            &tap,
            &iface_id,
        ],
    )
    .unwrap();
    let req = v1::CreatePortRequest {
        name: n.name.into(),
        tenant: n.tenant.into(),
        network: "lan".into(),
        host: n.host.into(),
        mac: n.mac.into(),
        ip: n.ip.into(),
        kind: v1::PortKind::Vm.into(),
    };
    api.call(|mut c| async move { c.create_port(req).await })
        .expect("port created");
    socket
}

#[test]
fn vms_on_different_hosts_reach_each_other_and_only_their_tenant() {
    let _libvirtd = Libvirtd::ensure();
    let c = cluster("vn", 2, false);
    let api = Api::connect(&c.client_config().unwrap());
    for tenant in ["red", "blue"] {
        api.tenant(tenant);
        api.network(tenant, "lan", "10.0.0.0/24");
    }
    let dir = vm_dir("dclab-vmnet");
    let image = build_micro(&dir.path().join("image")).expect("micro image builds");
    let hv = Hypervisor::open("qemu:///system").unwrap();
    let nodes = [
        Node {
            name: "ra",
            tenant: "red",
            host: "h1",
            ip: "10.0.0.1",
            mac: "02:aa:00:00:00:01",
        },
        Node {
            name: "rb",
            tenant: "red",
            host: "h2",
            ip: "10.0.0.2",
            mac: "02:aa:00:00:00:02",
        },
        Node {
            name: "bb",
            tenant: "blue",
            host: "h2",
            ip: "10.0.0.3",
            mac: "02:bb:00:00:00:03",
        },
    ];
    let names = nodes
        .iter()
        .map(|n| format!("dclab-vmnet-{}-{}", std::process::id(), n.name))
        .collect();
    let _vms = Domains(&hv, names);
    let sockets: Vec<PathBuf> = nodes
        .iter()
        .map(|n| start(&hv, &c, &api, &image, dir.path(), n))
        .collect();
    api.wait_converged(Duration::from_secs(60));

    let mut ra = SerialConsole::connect(&sockets[0], Duration::from_secs(30)).unwrap();
    ra.wait_ready(Duration::from_secs(60)).unwrap();
    let (rc, out) = on_console(&mut ra, "ping -c 3 -W 2 10.0.0.2");
    println!("ra (h1) -> rb (h2):\n{out}");
    assert_eq!(
        rc, 0,
        "VMs of one lab network cannot reach each other across hosts: {out}"
    );
    // blue's VM is on the same host as rb, in an overlapping network.
    let (rc, out) = on_console(&mut ra, "ping -c 2 -W 1 10.0.0.3");
    assert_ne!(rc, 0, "red reached blue's VM: {out}");
}

/// (exit code, output) of a command on the console.
fn on_console(console: &mut SerialConsole, cmd: &str) -> (i32, String) {
    let mut out = CommandOutput::kept(MAX_KEPT);
    let rc = console.run(cmd, Duration::from_secs(30), &mut out).unwrap();
    (rc, out.text())
}
