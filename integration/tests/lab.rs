//! Labs end to end through `ctl`, on real libvirtd and qemu micro-VMs and
//! two simulated hosts: nodes on different hosts reach each other over
//! their lab network, a second lab with the same CIDR cannot reach the
//! first, a whole-lab snapshot restores a node's disk, and `lab down`
//! leaves no domain, disk, tap, OvS port or rule behind.

use std::path::Path;

use dclab_integration::ctl::Ctl;
use dclab_integration::labs::{domain_state, domains_named, lab_file, node_links, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use dclab_integration::{cluster, Cluster};

fn bridge_ports(c: &Cluster, host: &str) -> Vec<String> {
    let out = c.vsctl(host, &["list-ports", "br-int"]).unwrap();
    out.lines().map(String::from).collect()
}

#[test]
fn labs_span_hosts_stay_isolated_snapshot_whole_and_leave_nothing() {
    let _libvirtd = Libvirtd::ensure();
    let mut c = cluster("lab", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-labtest");
    let pid = std::process::id();
    let (red, blue) = (format!("red{pid}"), format!("blue{pid}"));
    let red_file = lab_file(
        dir.path(),
        &red,
        &[("a", "h1", "10.0.0.1"), ("b", "h2", "10.0.0.2")],
    );
    // Same CIDR, blue's d has red's b's address, on the other host.
    let blue_file = lab_file(
        dir.path(),
        &blue,
        &[("c", "h2", "10.0.0.3"), ("d", "h1", "10.0.0.2")],
    );
    let taps_before = node_links(None);
    let _labs = Labs(&ctl, vec![red.clone(), blue.clone()]);

    let up = ctl.json(&["lab", "up", &red_file, "--snapshot", "initial"]);
    assert_eq!(up["ready"], true, "{up}");
    let hosts: Vec<(&str, &str)> = up["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["host"].as_str().unwrap()))
        .collect();
    assert_eq!(hosts, [("a", "h1"), ("b", "h2")]);
    ctl.ok(&["lab", "up", &blue_file]);
    let again = ctl.run(&["lab", "up", &red_file]);
    assert!(
        again.ok() && again.stderr.contains("no changes"),
        "{}",
        again.stderr
    );

    let exec =
        |lab: &str, node: &str, cmd: &str| ctl.run(&["lab", "exec", lab, node, "--timeout", "60", "--", cmd]);
    let ping = exec(&red, "a", "ping -c 3 -W 2 10.0.0.2");
    assert!(
        ping.ok(),
        "red a (h1) cannot reach red b (h2): {}{}",
        ping.stdout,
        ping.stderr
    );
    let ping = exec(&blue, "c", "ping -c 3 -W 2 10.0.0.2");
    assert!(
        ping.ok(),
        "blue c (h2) cannot reach blue d (h1): {}{}",
        ping.stdout,
        ping.stderr
    );
    let second = exec(&red, "a", "ping -c 3 -W 2 10.1.0.2");
    assert!(
        second.ok(),
        "red a cannot reach red b on its second interface: {}{}",
        second.stdout,
        second.stderr
    );
    let cross = exec(&red, "a", "ping -c 2 -W 1 10.0.0.3");
    assert_eq!(
        cross.code, 1,
        "red reached blue's node: {}{}",
        cross.stdout, cross.stderr
    );

    let created = ctl.ok(&["snapshot", "create", "s1", "--lab", &red]);
    println!("{created}");
    assert!(
        created.contains("snapshot s1 of lab") && created.contains("2 nodes on h1, h2"),
        "{created}"
    );
    let marker = exec(
        &red,
        "b",
        "echo written-after-s1 > /data/marker && cat /data/marker",
    );
    assert!(
        marker.ok() && marker.stdout.contains("written-after-s1"),
        "{}",
        marker.stderr
    );
    let restored = ctl.ok(&["snapshot", "restore", "s1", "--lab", &red]);
    println!("{restored}");
    let gone = exec(&red, "b", "test -e /data/marker");
    assert_eq!(gone.code, 1, "the marker survived the restore: {}", gone.stderr);
    let status = ctl.json(&["lab", "status", &red]);
    for node in status["nodes"].as_array().unwrap() {
        assert_eq!(node["state"], "running", "{status}");
    }
    let ping = exec(&red, "a", "ping -c 3 -W 2 10.0.0.2");
    assert!(
        ping.ok(),
        "after restore red a cannot reach red b: {}{}",
        ping.stdout,
        ping.stderr
    );
    let snaps = ctl.json(&["snapshot", "ls", "--lab", &red]);
    let names: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["initial", "s1"]);
    ctl.ok(&["snapshot", "rm", "s1", "--lab", &red]);

    // A host failing midway: nothing is left paused, the error names it.
    c.kill_agent("h2", libc::SIGKILL).unwrap();
    let failed = ctl.run(&["snapshot", "create", "s2", "--lab", &red]);
    assert!(
        !failed.ok() && failed.stderr.contains("host h2"),
        "{}",
        failed.stderr
    );
    assert_eq!(domain_state(&format!("dclab.{red}.a")), "running");
    c.start_agent("h2").unwrap();
    // A restarted coordinator keeps the labs; the agents converge back.
    c.restart_coordinator().unwrap();
    let again = ctl.run(&["lab", "up", &red_file]);
    assert!(
        again.ok() && again.stderr.contains("no changes"),
        "{}",
        again.stderr
    );
    let names = ctl.json(&["snapshot", "ls", "--lab", &red]);
    assert_eq!(
        names.as_array().map(Vec::len),
        Some(1),
        "only initial is left: {names}"
    );
    let ping = exec(&red, "a", "ping -c 2 -W 2 10.0.0.2");
    assert!(
        ping.ok(),
        "after the restarts red a cannot reach red b: {}{}",
        ping.stdout,
        ping.stderr
    );

    // Changing one node rebuilds only it; the lab's snapshots are dropped.
    let grown = std::fs::read_to_string(&red_file)
        .unwrap()
        .replacen("192MiB", "224MiB", 2);
    std::fs::write(&red_file, grown.replacen("224MiB", "192MiB", 1)).unwrap();
    let changed = ctl.run(&["lab", "up", &red_file]);
    assert!(changed.ok(), "{}", changed.stderr);
    assert!(
        changed.stderr.contains("replaced node b on h2"),
        "{}",
        changed.stderr
    );
    assert!(
        !changed.stderr.contains("node a"),
        "a was touched: {}",
        changed.stderr
    );
    assert!(
        changed.stderr.contains("dropped snapshots initial"),
        "{}",
        changed.stderr
    );
    // Running is not booted: wait for b's guest to answer first.
    assert!(exec(&red, "b", "true").ok());
    let ping = exec(&red, "a", "ping -c 3 -W 2 10.0.0.2");
    assert!(
        ping.ok(),
        "red a cannot reach the rebuilt b: {}{}",
        ping.stdout,
        ping.stderr
    );
    ctl.ok(&["snapshot", "create", "initial", "--lab", &red]);

    for lab in [&red, &blue] {
        ctl.ok(&["lab", "down", lab]);
        let again = ctl.run(&["lab", "down", lab]);
        assert!(
            again.ok() && again.stderr.contains("does not exist"),
            "{}",
            again.stderr
        );
    }
    assert_eq!(domains_named(&red), Vec::<String>::new());
    assert_eq!(domains_named(&blue), Vec::<String>::new());
    for host in ["h1", "h2"] {
        let labs = c.host_dir(host).join("labs");
        let left: Vec<_> = std::fs::read_dir(&labs)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "disks left on {host}: {left:?}");
        let ports = bridge_ports(&c, host);
        assert!(
            ports.iter().all(|p| !p.starts_with("dl")),
            "OvS ports left on {host}: {ports:?}"
        );
        assert_eq!(
            node_links(Some(&c.host_netns(host))),
            Vec::<String>::new(),
            "taps left in {host}"
        );
        let rules = ctl.ok(&["rules", "show", "--host", host]);
        assert!(!rules.contains("10.0.0."), "lab rules left on {host}:\n{rules}");
    }
    assert_eq!(node_links(None), taps_before, "taps left in the root namespace");
    let ports = ctl.json(&["port", "ls"]);
    assert_eq!(ports.as_array().map(Vec::len), Some(0), "{ports}");
}

fn cache_lab(dir: &Path, name: &str) -> String {
    let text = format!(
        "[lab]\nname = \"{name}\"\nimage = \"micro\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n\n\
         [[node]]\nname = \"cache\"\nrole = \"aptcache\"\nmemory = \"192MiB\"\nhost = \"h1\"\n\
         interfaces = [{{ network = \"lan\", ip = \"10.0.0.5\" }}]\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The apt cache node's disk lives on the host: what one lab's cache node
/// wrote there, the next lab's cache node on that host finds. (The micro-VM
/// has no apt-cacher-ng; the disk is what makes reinstalls repeatable.)
#[test]
fn the_apt_cache_disk_outlives_its_lab_and_serves_the_next() {
    let _libvirtd = Libvirtd::ensure();
    let c = cluster("ac", 1, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-cachetest");
    let pid = std::process::id();
    let (first, second) = (format!("one{pid}"), format!("two{pid}"));
    let _labs = Labs(&ctl, vec![first.clone(), second.clone()]);
    let exec = |lab: &str, cmd: &str| ctl.run(&["lab", "exec", lab, "cache", "--timeout", "60", "--", cmd]);

    ctl.ok(&["lab", "up", &cache_lab(dir.path(), &first)]);
    // The cache disk is the node's last disk: vdb after the micro root disk.
    let wrote = exec(
        &first,
        "echo cached-by-first | dd of=/dev/vdb conv=fsync 2>/dev/null",
    );
    assert!(wrote.ok(), "{}{}", wrote.stdout, wrote.stderr);
    ctl.ok(&["lab", "down", &first]);
    let disk = c.host_dir("h1").join("cache/apt-cacher-ng.qcow2");
    assert!(disk.is_file(), "{} went with the lab", disk.display());

    ctl.ok(&["lab", "up", &cache_lab(dir.path(), &second)]);
    let read = exec(&second, "dd if=/dev/vdb bs=15 count=1 2>/dev/null");
    assert!(
        read.ok() && read.stdout.starts_with("cached-by-first"),
        "{}{}",
        read.stdout,
        read.stderr
    );
    ctl.ok(&["lab", "down", &second]);
}
