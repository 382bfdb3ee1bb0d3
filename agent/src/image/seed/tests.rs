use super::*;

fn small() -> Seed {
    Seed {
        instance_id: "lab1-web-1a2b".into(),
        hostname: "web".into(),
        ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3Nza alice@example".into()],
        nics: vec![
            ("52:54:00:AA:00:01".into(), "10.0.0.5/24".into()),
            ("52:54:00:aa:00:02".into(), "10.0.1.5/24".into()),
        ],
        apt_proxy: Some("http://10.0.0.9:3142".into()),
        apt_cache_device: None,
    }
}

fn cache_node() -> Seed {
    Seed {
        instance_id: "lab1-aptcache-9f".into(),
        hostname: "aptcache".into(),
        ssh_authorized_keys: vec![],
        nics: vec![("52:54:00:aa:00:09".into(), "10.0.0.9/24".into())],
        apt_proxy: Some("http://10.0.0.9:3142".into()),
        apt_cache_device: Some(virtio_disk(1)),
    }
}

#[test]
fn small_seed_documents_are_exactly_as_expected() {
    let seed = small();
    assert_eq!(
        meta_data(&seed),
        "instance-id: \"lab1-web-1a2b\"\nlocal-hostname: \"web\"\n"
    );
    assert_eq!(
        user_data(&seed),
        "#cloud-config\n\
         hostname: \"web\"\n\
         manage_etc_hosts: true\n\
         disable_root: true\n\
         ssh_pwauth: false\n\
         ssh_authorized_keys:\n  - \"ssh-ed25519 AAAAC3Nza alice@example\"\n\
         apt:\n  proxy: \"http://10.0.0.9:3142\"\n"
    );
    assert_eq!(
        network_config(&seed),
        "version: 2\nethernets:\n\
         \x20 eth0:\n\
         \x20   match:\n      macaddress: \"52:54:00:aa:00:01\"\n\
         \x20   set-name: \"eth0\"\n\
         \x20   addresses:\n      - \"10.0.0.5/24\"\n\
         \x20   dhcp4: false\n    dhcp6: false\n\
         \x20 eth1:\n\
         \x20   match:\n      macaddress: \"52:54:00:aa:00:02\"\n\
         \x20   set-name: \"eth1\"\n\
         \x20   addresses:\n      - \"10.0.1.5/24\"\n\
         \x20   dhcp4: false\n    dhcp6: false\n"
    );
    check(&seed).unwrap();
}

#[test]
fn cache_node_formats_only_an_empty_disk_and_skips_its_own_proxy() {
    let seed = cache_node();
    let ud = user_data(&seed);
    assert!(!ud.contains("proxy"), "{ud}");
    assert!(ud.contains("ssh_authorized_keys: []\n"), "{ud}");
    assert!(
        ud.ends_with(
            "bootcmd:\n  - [\"sh\", \"-c\", \"if [ -b \\\"$1\\\" ]; then blkid -p \\\"$1\\\" >/dev/null 2>&1; \
             if [ $? -eq 2 ]; then mkfs.ext4 -q -L aptcache \\\"$1\\\"; fi; fi\", \
             \"dclab-aptcache-format\", \"/dev/vdb\"]\n\
             mounts:\n  - [\"/dev/vdb\", \"/var/cache/apt-cacher-ng\", \"ext4\", \"defaults,nofail\", \"0\", \"2\"]\n\
             packages:\n  - \"apt-cacher-ng\"\n\
             runcmd:\n  - [\"chown\", \"-R\", \"apt-cacher-ng:apt-cacher-ng\", \"/var/cache/apt-cacher-ng\"]\n\
             \x20 - [\"systemctl\", \"restart\", \"apt-cacher-ng\"]\n"
        ),
        "{ud}"
    );
    check(&seed).unwrap();
}

#[test]
fn the_format_script_formats_an_empty_disk_once_and_never_again() {
    // The bootcmd script on image files instead of block devices: only
    // its `[ -b ]` guard is swapped, for `[ -f ]`.
    assert_eq!(FORMAT_SCRIPT.matches("[ -b ").count(), 1);
    let on_files = FORMAT_SCRIPT.replace("[ -b ", "[ -f ");
    let run = |script: &str, file: &Path| {
        let out = Command::new("sh")
            .args(["-c", script, "dclab-aptcache-format"])
            .arg(file)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "format script on {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let probe = |file: &Path| {
        let out = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(file)
            .output()
            .expect("blkid is installed (Debian package util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("cache.img");
    std::fs::write(&disk, vec![0u8; 8 << 20]).unwrap();
    // The real script leaves anything that is not a block device alone.
    run(FORMAT_SCRIPT, &disk);
    assert_eq!(probe(&disk), "");
    run(FORMAT_SCRIPT, &dir.path().join("missing"));

    // Needs mkfs.ext4 (Debian package e2fsprogs) on the test machine.
    run(&on_files, &disk);
    let found = probe(&disk);
    assert!(
        found.contains("TYPE=ext4") && found.contains("LABEL=aptcache"),
        "{found}"
    );
    // A second boot, or a later lab with the same cache disk: the bytes
    // stay the same (mkfs would have written a new UUID).
    let before = std::fs::read(&disk).unwrap();
    run(&on_files, &disk);
    assert!(
        std::fs::read(&disk).unwrap() == before,
        "the cache disk was reformatted"
    );

    // Another file system is not replaced either.
    let other = dir.path().join("other.img");
    std::fs::write(&other, vec![0u8; 8 << 20]).unwrap();
    let mkfs = Command::new("mkfs.ext2")
        .args(["-q", "-L", "keep"])
        .arg(&other)
        .status()
        .expect("mkfs.ext2 is installed (Debian package e2fsprogs)");
    assert!(mkfs.success());
    run(&on_files, &other);
    assert!(probe(&other).contains("TYPE=ext2"));

    assert_eq!(virtio_disk(0), "/dev/vda");
    assert_eq!(virtio_disk(25), "/dev/vdz");
    assert_eq!(virtio_disk(26), "/dev/vdaa");
}

/// Top-level keys of a block-style document: lines that start a key.
fn top_keys(doc: &str) -> Vec<String> {
    doc.lines()
        .filter(|l| !l.starts_with([' ', '-', '#']))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect()
}

#[test]
fn hostile_input_stays_inside_its_quotes() {
    let seed = Seed {
        instance_id: "x\ninstance-id: other".into(),
        hostname: "evil\nruncmd: [\"reboot\"]\n#: \u{85}\u{2028}é😀".into(),
        ssh_authorized_keys: vec!["ssh-rsa AAAA\" ]\nusers: [root]\n'x' \\\"".into()],
        nics: vec![(
            "52:54:00:aa:00:01\n  eth9: {}".into(),
            "10.0.0.5/24\"\n    dhcp4: true".into(),
        )],
        apt_proxy: Some("http://x\"\n  sources: {}".into()),
        apt_cache_device: None,
    };
    let (md, ud, nc) = (meta_data(&seed), user_data(&seed), network_config(&seed));
    assert_eq!(top_keys(&md), ["instance-id", "local-hostname"]);
    assert_eq!(
        top_keys(&ud),
        [
            "hostname",
            "manage_etc_hosts",
            "disable_root",
            "ssh_pwauth",
            "ssh_authorized_keys",
            "apt"
        ]
    );
    assert_eq!(top_keys(&nc), ["version", "ethernets"]);
    // Same number of lines as a harmless seed: nothing was added.
    assert_eq!(ud.lines().count(), user_data(&small()).lines().count());
    assert_eq!(nc.lines().count(), 10);
    assert!(ud.contains(
        "hostname: \"evil\\u000Aruncmd: [\\\"reboot\\\"]\\u000A#: \\u0085\\u2028\\u00E9\\U0001F600\"\n"
    ));
    assert!(ud.contains("  - \"ssh-rsa AAAA\\\" ]\\u000Ausers: [root]\\u000A'x' \\\\\\\"\"\n"));
    assert!(nc.contains("      - \"10.0.0.5/24\\\"\\u000A    dhcp4: true\"\n"));
    assert!(ud.is_ascii() && md.is_ascii() && nc.is_ascii());

    // Quoted safely, but still refused: these would break the node.
    let err = check(&seed).unwrap_err().to_string();
    assert!(
        err.contains("instance id") && err.contains("x\\ninstance-id"),
        "{err}"
    );
    let refused = |seed: Seed, what: &str| {
        let err = write_seed(Path::new("/nonexistent/seed.iso"), &seed)
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{what}: {err}");
    };
    let mut s = small();
    s.hostname = "web\n".into();
    refused(s, "hostname \"web\\n\"");
    let mut s = small();
    s.ssh_authorized_keys = vec!["ssh-ed25519 AAAA\nssh-rsa BBBB".into()];
    refused(s, "one public key per entry");
    let mut s = small();
    s.nics[0].0 = "52:54:00:aa:00".into();
    refused(s, "MAC \"52:54:00:aa:00\"");
    let mut s = small();
    s.nics[1].1 = "10.0.1.5".into();
    refused(s, "address \"10.0.1.5\"");
    let mut s = small();
    s.apt_proxy = Some("10.0.0.9:3142".into());
    refused(s, "apt proxy \"10.0.0.9:3142\"");
    let mut s = cache_node();
    s.apt_cache_device = Some("/dev/vdb; rm -rf /".into());
    refused(s, "apt cache device");
}

fn isoinfo(args: &[&str]) -> String {
    let out = match Command::new("isoinfo").args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run isoinfo ({e}): install the Debian package genisoimage"),
    };
    assert!(
        out.status.success(),
        "isoinfo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn write_seed_builds_a_cidata_iso_with_the_three_files() {
    // Fails, not skips, without the tool: the seed is what cloud images boot with.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web-seed.iso");
    std::fs::write(&path, "an older seed").unwrap();
    let seed = small();
    if let Err(e) = write_seed(&path, &seed) {
        panic!("write_seed: {e:#}");
    }
    let iso = path.to_str().unwrap();
    let pvd = isoinfo(&["-d", "-i", iso]);
    assert!(pvd.contains("Volume id: cidata\n"), "{pvd}");
    assert!(pvd.contains("Rock Ridge signatures version"), "{pvd}");
    assert!(pvd.contains("Joliet with UCS level"), "{pvd}");
    for (name, want) in [
        ("/meta-data", meta_data(&seed)),
        ("/user-data", user_data(&seed)),
        ("/network-config", network_config(&seed)),
    ] {
        assert_eq!(isoinfo(&["-R", "-i", iso, "-x", name]), want, "{name}");
    }
    // Replaced in place; the temporary directory is gone.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["web-seed.iso"]);

    let err = write_seed(&dir.path().join("missing/seed.iso"), &seed).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}
