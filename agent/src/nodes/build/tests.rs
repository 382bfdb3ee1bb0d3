use super::*;
use dclab_proto::v1::NodeNic;

fn nic(i: u8, ip: &str) -> NodeNic {
    NodeNic {
        network: "lan".into(),
        ip: ip.into(),
        prefix: 24,
        mac: format!("02:00:00:00:00:0{i}"),
        port: format!("lab1.web.{i}"),
        tap: format!("dl-web-{i}"),
    }
}

fn node(image: &str, role: &str) -> DesiredNode {
    DesiredNode {
        lab: "lab1".into(),
        name: "web".into(),
        role: role.into(),
        vcpus: 2,
        memory_mib: 512,
        image: image.into(),
        disks_mib: vec![16],
        nics: vec![nic(0, "10.0.0.2"), nic(1, "10.0.1.2")],
        apt_proxy: String::new(),
        ssh_keys: vec!["ssh-ed25519 AAAA a@b".into()],
        kind: dclab_proto::v1::NodeKind::Vm.into(),
    }
}

fn dir() -> NodeDir {
    NodeDir {
        path: "/labs/lab1/web".into(),
    }
}

#[test]
fn micro_nodes_boot_the_kernel_with_every_nics_address() {
    let mut n = node("micro", "server");
    assert_eq!(
        micro_cmdline(&n),
        "console=ttyS0 panic=-1 dclab.hostname=web dclab.ip=10.0.0.2/24 dclab.ip1=10.0.1.2/24"
    );
    let mut two = n.clone();
    two.nics.push(dclab_proto::v1::NodeNic {
        network: "mgmt".into(),
        ip: "10.1.0.2".into(),
        prefix: 16,
        ..Default::default()
    });
    assert!(micro_cmdline(&two).ends_with(" dclab.ip1=10.0.1.2/24 dclab.ip2=10.1.0.2/16"));
    let image = NodeImage::Micro(MicroImage {
        kernel: "/img/micro/vmlinuz".into(),
        initrd: "/img/micro/initrd.img".into(),
        disk: "/img/micro/disk.qcow2".into(),
        kernel_version: "6.1".into(),
    });
    let vm = vm_spec(&n, &dir(), &image, "qemu", None);
    assert_eq!(vm.name, "dclab.lab1.web");
    assert_eq!(
        (vm.domain_type.as_str(), vm.vcpus, vm.memory_mib),
        ("qemu", 2, 512)
    );
    assert!(matches!(&vm.boot, Boot::Kernel { kernel, cmdline, .. }
        if kernel == Path::new("/img/micro/vmlinuz") && cmdline.contains("dclab.ip=10.0.0.2/24")));
    assert_eq!(
        vm.disks,
        [
            PathBuf::from("/labs/lab1/web/root.qcow2"),
            "/labs/lab1/web/disk1.qcow2".into()
        ]
    );
    assert_eq!(vm.nics.len(), 2);
    assert_eq!(
        (vm.nics[1].tap.as_str(), vm.nics[1].mac.as_str()),
        ("dl-web-1", "02:00:00:00:00:01")
    );
    assert_eq!(vm.serial_socket, Some("/labs/lab1/web/console.sock".into()));
    assert_eq!(vm.cdrom, None);

    n.nics.clear();
    assert_eq!(micro_cmdline(&n), "console=ttyS0 panic=-1 dclab.hostname=web");
}

#[test]
fn cloud_nodes_boot_from_disk_with_a_seed_and_the_cache_disk_last() {
    let n = node("debian-12", "aptcache");
    let cache = cache_disk(Path::new("/var/lib/dclab/cache"), &n);
    assert_eq!(cache, Some("/var/lib/dclab/cache/apt-cacher-ng.qcow2".into()));
    assert_eq!(cache_disk(Path::new("/c"), &node("debian-12", "server")), None);
    let image = NodeImage::Cloud("/img/debian-12.qcow2".into());
    let vm = vm_spec(&n, &dir(), &image, "kvm", cache.as_deref());
    assert_eq!(vm.boot, Boot::Disk);
    assert_eq!(vm.cdrom, Some("/labs/lab1/web/seed.iso".into()));
    assert_eq!(
        vm.disks.last(),
        Some(&PathBuf::from("/var/lib/dclab/cache/apt-cacher-ng.qcow2"))
    );

    let s = seed(&n, true);
    assert_eq!(
        s.apt_cache_device.as_deref(),
        Some("/dev/vdc"),
        "root, one extra, then the cache"
    );
    assert_eq!(s.hostname, "web");
    assert!(s.instance_id.starts_with("lab1-web-"), "{}", s.instance_id);
    assert_eq!(
        s.nics,
        [
            ("02:00:00:00:00:00".to_string(), "10.0.0.2/24".to_string()),
            ("02:00:00:00:00:01".to_string(), "10.0.1.2/24".to_string())
        ]
    );
    assert_eq!(s.apt_proxy, None);
    let mut other = node("debian-12", "server");
    other.apt_proxy = "http://10.0.0.9:3142".into();
    let s2 = seed(&other, false);
    assert_eq!(s2.apt_proxy.as_deref(), Some("http://10.0.0.9:3142"));
    assert_ne!(s.instance_id, s2.instance_id, "a changed node is a new instance");
}

#[test]
fn a_missing_cloud_image_names_the_path_to_fill() {
    let tmp = tempfile::tempdir().unwrap();
    let images = Images::new(tmp.path().to_path_buf(), tmp.path().join("cache"), String::new());
    let err = images.resolve("debian-12").unwrap_err().to_string();
    let want = tmp.path().join("debian-12.qcow2");
    assert!(err.contains(&want.display().to_string()), "{err}");
    assert!(err.contains("put a qcow2 cloud image there"), "{err}");
    let err = images.resolve("../etc/passwd").unwrap_err().to_string();
    assert!(err.contains("image name"), "{err}");
    std::fs::write(&want, "").unwrap();
    assert_eq!(images.resolve("debian-12").unwrap(), NodeImage::Cloud(want));
}

#[test]
fn prepare_creates_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("debian-12.qcow2");
    create_blank(&base, 16).expect("qemu-img is installed (qemu-utils)");
    let dir = NodeDir {
        path: tmp.path().join("labs/lab1/web"),
    };
    dir.create().unwrap();
    let n = node("debian-12", "aptcache");
    let cache = tmp.path().join("cache").join(APT_CACHE_DISK);
    let image = NodeImage::Cloud(base.clone());
    prepare(&dir, &n, &image, Some(&cache)).expect("prepare (needs qemu-img and genisoimage)");
    for file in [dir.root_disk(), dir.extra_disk(1), dir.seed(), cache.clone()] {
        assert!(file.is_file(), "{} missing", file.display());
    }
    let info = Command::new("qemu-img")
        .arg("info")
        .arg(dir.root_disk())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("debian-12.qcow2"));
    let info = Command::new("qemu-img").arg("info").arg(&cache).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("20 GiB"));

    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before = [stamp(&dir.root_disk()), stamp(&dir.seed()), stamp(&cache)];
    prepare(&dir, &n, &image, Some(&cache)).unwrap();
    assert_eq!(
        before,
        [stamp(&dir.root_disk()), stamp(&dir.seed()), stamp(&cache)]
    );
    let hidden: Vec<_> = std::fs::read_dir(&dir.path)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    let err = create_blank(&tmp.path().join("nodir/x.qcow2"), 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nodir/x.qcow2"), "{err}");
}
