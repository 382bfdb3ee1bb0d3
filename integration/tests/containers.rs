//! Container nodes end to end through `ctl`, on real libvirtd (LXC and
//! qemu) and two simulated hosts: containers and a micro-VM in one lab
//! reach each other across hosts, a second lab with the same CIDR does
//! not reach them, `/dev/net/tun` and the memory and CPU limits hold, a
//! whole-lab snapshot brings back a container's files, the faults act on
//! containers, and `lab down` leaves no domain, overlay, veth, OvS port or
//! rule behind.

use std::path::Path;
use std::process::Command;

use dclab_integration::apt_repo::{AptRepo, PACKAGE};
use dclab_integration::ctl::Ctl;
use dclab_integration::labs::{domains_named, node_links, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use dclab_integration::{cluster, Cluster};
use serde_json::Value;

/// `nodes`: (name, kind, host, ip on lan).
fn lab_file(dir: &Path, name: &str, nodes: &[(&str, &str, &str, &str)]) -> String {
    let mut text = format!(
        "[lab]\nname = \"{name}\"\nimage = \"micro\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n"
    );
    for (node, kind, host, ip) in nodes {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{node}\"\nkind = \"{kind}\"\nmemory = \"128MiB\"\nhost = \"{host}\"\n\
             interfaces = [{{ network = \"lan\", ip = \"{ip}\" }}]\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Faults on container `a`, seen from container `b`: a stage runs its
/// steps, then its checks.
const CONTAINER_FAULTS: &str = r#"
[experiment]
name = "container-faults"
title = "Every kind of fault on a container"

[[target]]
name = "victim"
node = "a"

[[target]]
name = "prober"
node = "b"

[[stage]]
name = "setup"
[[stage.check]]
name = "reachable"
reach = { from = "prober", to = "victim" }

[[stage]]
name = "freeze"
[[stage.step]]
fault = "freeze"
on = "victim"
id = "freeze"
[[stage.check]]
name = "frozen"
reach = { from = "prober", to = "victim" }
expect = "fails"

[[stage]]
name = "thaw"
[[stage.step]]
heal = "freeze"
[[stage.check]]
name = "thawed"
reach = { from = "prober", to = "victim" }
expect = "within 10s"

[[stage]]
name = "crash"
[[stage.step]]
fault = "power-off"
on = "victim"
id = "crash"
[[stage.check]]
name = "off"
reach = { from = "prober", to = "victim" }
expect = "fails"

[[stage]]
name = "start"
[[stage.step]]
heal = "crash"
[[stage.check]]
name = "back"
reach = { from = "prober", to = "victim" }
expect = "within 20s"

[[stage]]
name = "delay"
[[stage.step]]
fault = "netem"
on = "victim"
delay = "100ms"
id = "delay"
[[stage.check]]
name = "slow"
command = { on = "prober", run = "ping -c 3 -W 2 ${victim.ip} | tail -1", output = "= [0-9.]+/(9[0-9]|1[0-9][0-9]|2[0-9][0-9])[.]" }

[[stage]]
name = "cut"
[[stage.step]]
heal = "delay"
[[stage.step]]
fault = "link-cut"
on = "victim"
id = "cut"
[[stage.check]]
name = "cut off"
reach = { from = "prober", to = "victim" }
expect = "fails"

[[stage]]
name = "relink"
[[stage.step]]
heal = "cut"
[[stage.check]]
name = "linked again"
reach = { from = "prober", to = "victim" }
expect = "within 10s"
"#;

/// Mount points under `dir` as libvirtd sees them.
fn mounts_under(dir: &Path) -> Vec<String> {
    let pid = std::fs::read_to_string("/run/libvirtd.pid").unwrap();
    let table = std::fs::read_to_string(format!("/proc/{}/mountinfo", pid.trim())).unwrap();
    let prefix = dir.display().to_string();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(String::from)
        .collect()
}

/// The container's cgroup dir in `controller`, found by its domain name.
fn cgroup_file(controller: &str, domain: &str, file: &str) -> String {
    let machine = Path::new("/sys/fs/cgroup").join(controller).join("machine");
    let dir = std::fs::read_dir(&machine)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(&format!("-{domain}.libvirt-lxc")))
        .unwrap_or_else(|| panic!("no cgroup of {domain} under {}", machine.display()));
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// cgroup dirs libvirt or the nodes made for domains of `lab`.
fn cgroups_of(lab: &str) -> Vec<String> {
    let part = format!("-dclab.{lab}.");
    let mut found = Vec::new();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let Ok(entries) = std::fs::read_dir(hierarchy.path().join("machine")) else {
            continue;
        };
        found.extend(
            entries
                .flatten()
                .map(|e| e.path().display().to_string())
                .filter(|p| p.contains(&part)),
        );
    }
    found
}

fn leftovers(c: &Cluster, ctl: &Ctl, host: &str) {
    let labs = c.host_dir(host).join("labs");
    let left: Vec<_> = std::fs::read_dir(&labs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "node dirs left on {host}: {left:?}");
    assert!(mounts_under(&labs).is_empty(), "overlays left on {host}");
    let ports = c.vsctl(host, &["list-ports", "br-int"]).unwrap();
    assert!(
        !ports.lines().any(|p| p.starts_with("dl")),
        "OvS ports left on {host}: {ports}"
    );
    assert_eq!(
        node_links(Some(&c.host_netns(host))),
        Vec::<String>::new(),
        "veths left in {host}"
    );
    let rules = ctl.ok(&["rules", "show", "--host", host]);
    assert!(!rules.contains("10.0.0."), "lab rules left on {host}:\n{rules}");
}

#[test]
fn containers_and_vms_share_a_lab_stay_isolated_snapshot_and_leave_nothing() {
    let _libvirtd = Libvirtd::ensure_containers();
    let c = cluster("ctr", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-ctrtest");
    let pid = std::process::id();
    let (mix, other) = (format!("mix{pid}"), format!("oth{pid}"));
    let mix_file = lab_file(
        dir.path(),
        &mix,
        &[
            ("a", "container", "h1", "10.0.0.1"),
            ("b", "container", "h2", "10.0.0.2"),
            ("v", "vm", "h2", "10.0.0.3"),
        ],
    );
    let other_file = lab_file(dir.path(), &other, &[("c", "container", "h1", "10.0.0.2")]);
    let veths_before = node_links(None);
    let _labs = Labs(&ctl, vec![mix.clone(), other.clone()]);

    let started = std::time::Instant::now();
    let up = ctl.json(&["lab", "up", &mix_file]);
    assert_eq!(up["ready"], true, "{up}");
    println!("lab up of 2 containers and a micro-VM: {:?}", started.elapsed());
    ctl.ok(&["lab", "up", &other_file]);
    let status = ctl.json(&["lab", "status", &mix]);
    let kinds: Vec<(&str, &str)> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("a", "running"), ("b", "running"), ("v", "running")],
        "{status}"
    );

    let exec =
        |lab: &str, node: &str, cmd: &str| ctl.run(&["lab", "exec", lab, node, "--timeout", "60", "--", cmd]);
    // Running is not booted: the micro-VM answers on its console once up.
    let booted = exec(&mix, "v", "true");
    assert!(booted.ok(), "the micro-VM did not come up: {}", booted.stderr);
    let hostname = exec(&mix, "a", "hostname");
    assert_eq!(hostname.stdout.trim(), "a", "{}", hostname.stderr);
    for (from, to) in [
        ("a", "10.0.0.2"),
        ("a", "10.0.0.3"),
        ("v", "10.0.0.1"),
        ("b", "10.0.0.1"),
    ] {
        let ping = exec(&mix, from, &format!("ping -c 3 -W 2 {to}"));
        assert!(
            ping.ok(),
            "{from} cannot reach {to}: {}{}",
            ping.stdout,
            ping.stderr
        );
    }
    // The other lab's c has b's address on a's host: it reaches nobody of mix.
    for to in ["10.0.0.1", "10.0.0.3"] {
        let cross = exec(&other, "c", &format!("ping -c 2 -W 1 {to}"));
        assert_eq!(
            cross.code, 1,
            "c reached mix's {to}: {}{}",
            cross.stdout, cross.stderr
        );
    }
    let mac = exec(&mix, "a", "cat /sys/class/net/eth0/address");
    let nodes = ctl.json(&["lab", "status", &mix]);
    let want_mac = nodes["nodes"][0]["interfaces"][0]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !want_mac.is_empty() && mac.stdout.trim() == want_mac,
        "{} vs {nodes}",
        mac.stdout
    );

    let vm = ctl.run(&["lab", "proxy", &mix, "v", "22"]);
    assert!(
        !vm.ok() && vm.stderr.contains("tunnels reach container nodes"),
        "{}",
        vm.stderr
    );

    // What nova-compute and userspace OvS need, and the limits.
    let tun = exec(&mix, "a", "test -c /dev/net/tun && echo tun");
    assert_eq!(tun.stdout.trim(), "tun", "{}", tun.stderr);
    let domain = format!("dclab.{mix}.a");
    assert_eq!(
        cgroup_file("memory", &domain, "memory.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(cgroup_file("cpu", &domain, "cpu.cfs_quota_us"), "100000");
    let hog = exec(
        &mix,
        "a",
        "dd if=/dev/zero bs=1M count=400 2>/dev/null | tail > /dev/null; echo rc=$?",
    );
    assert!(
        hog.stdout.contains("rc=137"),
        "400 MiB fit in a 128 MiB container: {}{}",
        hog.stdout,
        hog.stderr
    );
    let exec_cgroup = exec(&mix, "a", "cat /proc/self/cgroup | grep memory");
    assert!(
        exec_cgroup.stdout.contains(&domain),
        "exec ran outside the container's cgroup: {}",
        exec_cgroup.stdout
    );

    // A whole-lab snapshot across both kinds; a restore brings back files.
    let created = ctl.ok(&["snapshot", "create", "s1", "--lab", &mix]);
    assert!(created.contains("3 nodes on h1, h2"), "{created}");
    let marker = exec(&mix, "b", "echo after-s1 > /root/marker && cat /root/marker");
    assert_eq!(marker.stdout.trim(), "after-s1", "{}", marker.stderr);
    let restored_at = std::time::Instant::now();
    ctl.ok(&["snapshot", "restore", "s1", "--lab", &mix]);
    println!("restore of the mixed lab: {:?}", restored_at.elapsed());
    let gone = exec(&mix, "b", "test -e /root/marker");
    assert_eq!(gone.code, 1, "the marker survived the restore: {}", gone.stderr);
    let ping = exec(&mix, "a", "ping -c 3 -W 2 10.0.0.2");
    assert!(
        ping.ok(),
        "after restore a cannot reach b: {}{}",
        ping.stdout,
        ping.stderr
    );

    // The same fault names as for VMs, on a container.
    let faults = dir.path().join("container-faults.toml");
    std::fs::write(&faults, CONTAINER_FAULTS).unwrap();
    let run = ctl.run(&[
        "-o",
        "json",
        "experiment",
        "run",
        faults.to_str().unwrap(),
        "--lab",
        &mix,
    ]);
    let record: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    let deviated: Vec<&Value> = record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] != true)
        .collect();
    assert!(deviated.is_empty(), "{deviated:#?}\n{}", run.stderr);
    for step in record["timeline"].as_array().unwrap() {
        if step["kind"] == "fault" {
            println!("{}: in effect after {} us", step["what"], step["effect_us"]);
        }
    }
    assert_eq!(
        (record["verdict"].as_str(), run.code),
        (Some("passed"), 0),
        "{}",
        run.stderr
    );

    for lab in [&mix, &other] {
        ctl.ok(&["lab", "down", lab]);
    }
    assert_eq!(domains_named(&mix), Vec::<String>::new());
    assert_eq!(domains_named(&other), Vec::<String>::new());
    for host in ["h1", "h2"] {
        leftovers(&c, &ctl, host);
    }
    assert_eq!(node_links(None), veths_before, "veths left in the root namespace");
    assert_eq!(cgroups_of(&mix), Vec::<String>::new(), "cgroups left");
}

/// Starts `ctl lab forward` on a free local port, fetches `path` with curl
/// through it, and stops the forward again (by its pid).
fn curl_through_forward(ctl: &Ctl, lab: &str, node: &str, port: u16, path: &str) -> String {
    use std::io::BufRead;
    let mut forward = ctl
        .command(&["lab", "forward", lab, node, &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ctl runs");
    let mut line = String::new();
    let stdout = forward.stdout.take().unwrap();
    std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
    let local = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("ctl lab forward printed {line:?}"))
        .to_string();
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .arg(format!("http://{local}/{path}"))
        .output()
        .expect("curl runs");
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(out.status.success(), "curl through {local}: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two builds from the same package cache, the second with no way out to
/// the mirror: the same package versions.
fn build_debian_twice(ctl: &Ctl, dir: &Path) {
    let (images, cache) = (dir.join("images"), dir.join("cache"));
    let build = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "image",
            "build",
            "debian",
            "--image-dir",
            images.to_str().unwrap(),
        ];
        args.extend(["--cache-dir", cache.to_str().unwrap()]);
        args.extend(extra);
        let run = ctl.run_with_env(env, &args);
        assert!(run.ok(), "{}{}", run.stdout, run.stderr);
        std::fs::read_to_string(images.join("debian.packages")).unwrap()
    };
    let first = build(&[], &[]);
    assert!(first.lines().any(|l| l.starts_with("openssh-server ")), "{first}");
    assert!(first.lines().any(|l| l.starts_with("systemd ")), "{first}");
    // Port 9 on loopback refuses: anything not in the cache fails the build.
    let second = build(&["--rebuild"], &[("http_proxy", "http://127.0.0.1:9")]);
    assert_eq!(first, second, "the rebuild got other package versions");
}

#[test]
fn debian_containers_boot_systemd_within_their_limits_from_frozen_packages() {
    let _libvirtd = Libvirtd::ensure_containers();
    let dir = vm_dir("dclab-debtest");
    // The archive behind the hosts' apt cache, on loopback.
    let repo = AptRepo::serve(&dir.path().join("repo"));
    repo.publish("1.0");
    std::env::set_var("DCLAB_APT_UPSTREAM", format!("dclabtest={}", repo.url()));
    let c = cluster("deb", 2, false);
    let ctl = Ctl::new(&c);
    build_debian_twice(&ctl, dir.path());

    let lab = format!("deb{}", std::process::id());
    let file = lab_file(
        dir.path(),
        &lab,
        &[
            ("d1", "container", "h1", "10.0.0.1"),
            ("d2", "container", "h2", "10.0.0.2"),
        ],
    );
    let key = dir.path().join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs (install openssh-client)");
    assert!(keygen.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "image = \"micro\"",
        &format!("image = \"debian\"\nssh_keys = [\"{}\"]", public.trim()),
    );
    std::fs::write(&file, text).unwrap();
    let _labs = Labs(&ctl, vec![lab.clone()]);
    // The agents build the image on first use (once for both: they share
    // this machine's image dir), then start the nodes.
    let up = ctl.json(&["lab", "up", &file, "--timeout", "600"]);
    assert_eq!(up["ready"], true, "{up}");
    let exec = |node: &str, cmd: &str| ctl.run(&["lab", "exec", &lab, node, "--timeout", "60", "--", cmd]);
    // Running is not booted: systemd is PID 1 once the node's init ran.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let booted = loop {
        let state = exec("d1", "systemctl is-system-running --wait; hostname");
        // Before systemd is PID 1: "offline"; before its bus is up: "Failed to connect".
        let early = state.stdout.starts_with("offline") || state.stdout.starts_with("Failed to connect");
        if !early || std::time::Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(
        booted.stdout.split_whitespace().collect::<Vec<_>>(),
        ["running", "d1"],
        "{}",
        booted.stderr
    );
    let ping = exec("d1", "ping -c 3 -W 2 10.0.0.2");
    assert!(ping.ok(), "d1 cannot reach d2: {}{}", ping.stdout, ping.stderr);
    // The node's systemd starts its services inside the node's cgroup.
    let domain = format!("dclab.{lab}.d1");
    let sshd = exec(
        "d1",
        "systemctl is-active ssh && grep memory /proc/$(pgrep -o sshd)/cgroup",
    );
    assert!(
        sshd.stdout.starts_with("active")
            && sshd
                .stdout
                .contains(&format!("-{domain}.libvirt-lxc/system.slice/ssh.service")),
        "sshd outside the node's memory cgroup: {}{}",
        sshd.stdout,
        sshd.stderr
    );

    // From the operator's side: ssh, and a forwarded port answering curl.
    let ssh = ctl.run(&[
        "lab",
        "ssh",
        &lab,
        "d2",
        "-i",
        key.to_str().unwrap(),
        "--",
        "hostname",
    ]);
    assert_eq!(
        ssh.stdout.trim(),
        "d2",
        "ctl lab ssh: {}{}",
        ssh.stdout,
        ssh.stderr
    );
    let web = exec(
        "d1",
        "echo hello-from-d1 > /root/index.html && systemd-run -q --unit web -p WorkingDirectory=/root python3 -m http.server 8080 && sleep 1",
    );
    assert!(web.ok(), "{}{}", web.stdout, web.stderr);
    let body = curl_through_forward(&ctl, &lab, "d1", 8080, "index.html");
    assert_eq!(body.trim(), "hello-from-d1");
    // TCP between nodes on different hosts, through both bridges: with
    // transmit checksum offload left on the veths, ping worked and every
    // TCP segment was dropped for its unfilled checksum.
    let fetched = exec("d2", "curl -s -m 20 http://10.0.0.1:8080/index.html");
    assert_eq!(
        fetched.stdout.trim(),
        "hello-from-d1",
        "d2 over TCP to d1: {}",
        fetched.stderr
    );
    let big = exec(
        "d1",
        "head -c 3000000 /dev/urandom > /root/big && sha256sum < /root/big",
    );
    let copied = exec("d2", "curl -s -m 30 http://10.0.0.1:8080/big | sha256sum");
    assert_eq!(
        copied.stdout, big.stdout,
        "3 MB over TCP from d1 to d2: {}",
        copied.stderr
    );
    let refused = ctl.run(&["lab", "proxy", &lab, "d1", "9"]);
    assert!(
        !refused.ok() && refused.stderr.contains("port 9 of node d1"),
        "{}",
        refused.stderr
    );

    let hog = exec(
        "d1",
        "systemd-run --wait -q sh -c 'dd if=/dev/zero bs=1M count=400 | tail > /dev/null' ; echo rc=$?",
    );
    assert!(
        !hog.stdout.contains("rc=0"),
        "a service used 400 MiB in a 128 MiB node: {}{}",
        hog.stdout,
        hog.stderr
    );

    // Frozen packages: what the first install got comes back after the
    // lab is gone and upstream moved on to a version without the old one.
    let sources = exec("d1", "cat /etc/apt/sources.list");
    assert!(
        sources
            .stdout
            .contains("http://127.0.0.1:3142/debian bookworm main"),
        "{}",
        sources.stdout
    );
    assert_eq!(install_marker(&exec), "1.0");
    ctl.ok(&["lab", "down", &lab]);
    assert_eq!(domains_named(&lab), Vec::<String>::new());
    for host in ["h1", "h2"] {
        leftovers(&c, &ctl, host);
    }
    assert_eq!(cgroups_of(&lab), Vec::<String>::new(), "cgroups left");
    repo.publish("2.0");
    let up = ctl.json(&["lab", "up", &file, "--timeout", "120"]);
    assert_eq!(up["ready"], true, "{up}");
    assert_eq!(
        install_marker(&exec),
        "1.0",
        "the reinstalled lab got another version than the first install"
    );

    ctl.ok(&["lab", "down", &lab]);
    assert_eq!(domains_named(&lab), Vec::<String>::new());
    for host in ["h1", "h2"] {
        leftovers(&c, &ctl, host);
    }
    assert_eq!(cgroups_of(&lab), Vec::<String>::new(), "cgroups left");
}

/// Installs the test repository's package in d1 through the host's apt
/// cache (only that repository's lists are fetched); its version.
fn install_marker(exec: &dyn Fn(&str, &str) -> dclab_integration::ctl::Run) -> String {
    let script = format!(
        "echo 'deb [trusted=yes] http://127.0.0.1:3142/dclabtest ./' > /etc/apt/sources.list.d/t.list && \
         apt-get -q update -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/t.list -o Dir::Etc::sourceparts=- \
         -o APT::Get::List-Cleanup=0 && apt-get -q install -y {PACKAGE} && \
         echo version=$(dpkg-query -W -f '${{Version}}' {PACKAGE})"
    );
    let run = exec("d1", &script);
    let version = run.stdout.lines().find_map(|l| l.strip_prefix("version="));
    version
        .unwrap_or_else(|| panic!("installing through the apt cache: {}{}", run.stdout, run.stderr))
        .to_string()
}
