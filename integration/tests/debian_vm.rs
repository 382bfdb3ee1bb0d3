//! The Debian image as a VM: built here on first use (ext4 by
//! `mkfs.ext4 -d`, converted to qcow2, the kernel and initramfs beside
//! it), booted by direct kernel boot under TCG, configured by cloud-init
//! from the node's NoCloud seed. Its address comes only from the seed, so
//! a container of the lab pinging it shows the whole chain worked.

use std::time::{Duration, Instant};

use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::labs::{domains_named, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};

const IMAGES: &str = "/var/lib/dclab/images";

#[test]
fn a_debian_vm_boots_its_own_kernel_and_takes_its_address_from_the_seed() {
    let _libvirtd = Libvirtd::ensure_containers();
    let dir = vm_dir("dclab-debvm");
    let c = cluster("dv", 1, false);
    let ctl = Ctl::new(&c);
    let lab = format!("dv{}", std::process::id());
    let file = dir.path().join("lab.toml");
    std::fs::write(
        &file,
        format!(
            "[lab]\nname = \"{lab}\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n\n\
             [[node]]\nname = \"v\"\nkind = \"vm\"\nimage = \"debian\"\nmemory = \"768MiB\"\nhost = \"h1\"\n\
             interfaces = [{{ network = \"lan\", ip = \"10.0.0.1\" }}]\n\n\
             [[node]]\nname = \"c\"\nkind = \"container\"\nimage = \"micro\"\nmemory = \"64MiB\"\nhost = \"h1\"\n\
             interfaces = [{{ network = \"lan\", ip = \"10.0.0.2\" }}]\n"
        ),
    )
    .unwrap();
    let _labs = Labs(&ctl, vec![lab.clone()]);
    // The agent builds debian.qcow2 on first use (about 2 minutes).
    let up = ctl.json(&["lab", "up", file.to_str().unwrap(), "--timeout", "900"]);
    assert_eq!(up["ready"], true, "{up}");
    let manifest = std::fs::read_to_string(format!("{IMAGES}/debian.vm.packages")).unwrap();
    for package in ["linux-image-amd64 ", "cloud-init ", "openssh-server "] {
        assert!(
            manifest.lines().any(|l| l.starts_with(package)),
            "no {package}in the VM image"
        );
    }
    let xml = std::process::Command::new("virsh")
        .args(["-c", "qemu:///system", "dumpxml", &format!("dclab.{lab}.v")])
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&xml.stdout);
    assert!(
        xml.contains(&format!("<kernel>{IMAGES}/debian.kernel</kernel>"))
            && xml.contains("root=LABEL=dclab-root"),
        "{xml}"
    );

    // TCG boot and cloud-init take about a minute on a 2-core machine.
    let deadline = Instant::now() + Duration::from_secs(400);
    let answered = loop {
        let ping = ctl.run(&[
            "lab",
            "exec",
            &lab,
            "c",
            "--timeout",
            "10",
            "--",
            "ping -c 1 -W 2 10.0.0.1",
        ]);
        if ping.ok() || Instant::now() > deadline {
            break ping;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    assert!(
        answered.ok(),
        "the Debian VM never answered at its seed's address: {}{}",
        answered.stdout,
        answered.stderr
    );

    ctl.ok(&["lab", "down", &lab]);
    assert_eq!(domains_named(&lab), Vec::<String>::new());
}
