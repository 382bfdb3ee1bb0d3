//! dclab as Neutron's backend, for real (issue 14): the four container
//! nodes of examples/openstack-dclab-containers.toml on two hosts,
//! installed with `--var neutron_backend=dclab` (a dclab coordinator on the
//! controller, a dclab agent with userspace OvS on the network and compute
//! nodes, the networking-dclab driver in neutron-server). Then, through
//! OpenStack's APIs:
//! - two projects, one network each on 10.0.0.0/24, seven instances with
//!   the same addresses on both compute nodes: the isolation matrix
//!   (dclab-tenants-check) is the expected one;
//! - the tunnel network's wire, captured on the lab's switch segment,
//!   carries only the inner hosts' MACs and mapping keys;
//! - a router per project (the network node's L3 agent, its interfaces
//!   dclab router ports on br-dclab) with the same addresses: an endpoint
//!   behind each router reaches its own project's instances through it and
//!   never the other project's, and each router resolves its own instances;
//! - the inner coordinator killed (SIGKILL) while ports are created: once
//!   it is back, dclab holds exactly Neutron's bound ports;
//! - a port deleted in dclab behind Neutron's back is back within one
//!   comparison period.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::labs::{up_example, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use serde_json::Value;

const EXAMPLE: &str = include_str!("../../examples/openstack-dclab-containers.toml");
const CHAPTERS: &str = "environment,identity,image,placement,compute,networking,launch";
/// `sync_interval` of ml2_conf.ini.j2's [ml2_dclab].
const SYNC_INTERVAL: Duration = Duration::from_secs(30);
/// The inner coordinator's default key range.
const KEY_RANGE: (u32, u32) = (0x6440_0000, 0x6440_ffff);

/// A tcpdump in a host's namespace, killed by pid when dropped.
struct Capture(std::process::Child);

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_keys(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| (KEY_RANGE.0..=KEY_RANGE.1).contains(&u32::from(a)))
}

/// `tcpdump -e -n` lines of IPv4 frames: (src MAC, dst MAC, src IP, dst IP).
fn frames(text: &str) -> Vec<(String, String, String, String)> {
    text.lines()
        .filter(|l| l.contains("ethertype IPv4"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // 12:00:00.000000 SRC > DST, ethertype IPv4 (0x0800), length N: A > B: ...
            let gt = f.iter().position(|w| *w == ">")?;
            let src_mac = f.get(gt - 1)?.to_string();
            let dst_mac = f.get(gt + 1)?.trim_end_matches(',').to_string();
            let colon = f
                .iter()
                .position(|w| w.ends_with(':') && w.starts_with(|c: char| c.is_ascii_digit()))?;
            let src = f.get(colon + 1)?;
            let dst = f.get(colon + 3)?.trim_end_matches(':');
            let ip = |s: &str| s.split('.').take(4).collect::<Vec<_>>().join(".");
            Some((src_mac, dst_mac, ip(src), ip(dst)))
        })
        .collect()
}

/// Polls `check` (done?, what is wrong) every 5 s until done; fails with
/// `what` and the last answer once `within` has passed.
fn wait_for(within: Duration, what: &str, check: impl Fn() -> (bool, String)) {
    let deadline = Instant::now() + within;
    loop {
        let (done, wrong) = check();
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {wrong}");
        std::thread::sleep(Duration::from_secs(5));
    }
}

#[test]
fn dclab_isolates_openstack_projects_behind_neutron() {
    let _libvirtd = Libvirtd::ensure_containers();
    let dir = vm_dir("dclab-osdtest");
    let state = dir.path().join("state");
    let c = cluster("osn", 2, false);
    let ctl = Ctl::new(&c);
    let lab = format!("osn{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    up_example(&ctl, dir.path(), EXAMPLE, "openstack-dclab", &lab, "1500");

    let run = ctl.run(&[
        "-o",
        "json",
        "lab",
        "install",
        &lab,
        "--var",
        "neutron_backend=dclab",
        "--chapters",
        CHAPTERS,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(
        run.ok(),
        "install failed ({}):\n{}{}",
        run.code,
        run.stdout,
        run.stderr
    );
    eprintln!("install: {}", run.stdout.trim());

    let exec = |node: &str, timeout: &str, cmd: &str| {
        let run = ctl.run(&["lab", "exec", &lab, node, "--timeout", timeout, "--", cmd]);
        // The exit code first: a long output gets cut in CI's summary.
        assert!(
            run.ok(),
            "{node}: {cmd}: exit {}\nstderr: {}\nstdout: {}",
            run.code,
            run.stderr,
            run.stdout
        );
        run.stdout
    };
    // The inner ctl's JSON, or why there is none (the coordinator may be
    // restarting after its kill).
    let try_inner = |args: &str| -> Result<Value, String> {
        let cmd = format!("ctl --coordinator https://controller:7400 -o json {args}");
        let run = ctl.run(&["lab", "exec", &lab, "controller", "--timeout", "60", "--", &cmd]);
        if !run.ok() {
            return Err(format!("{cmd}: exit {}: {}{}", run.code, run.stderr, run.stdout));
        }
        serde_json::from_str(&run.stdout).map_err(|e| format!("{cmd}: {e}: {}", run.stdout))
    };
    let inner = |args: &str| -> Value { try_inner(args).unwrap_or_else(|e| panic!("{e}")) };
    let hosts = inner("host ls");
    let inner_macs: BTreeSet<String> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["mac"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(inner_macs.len(), 3, "network, compute1, compute2: {hosts}");

    // The wire: every frame on compute1's tunnel port of the lab's switch.
    let status = ctl.json(&["lab", "status", &lab]);
    let compute1 = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "compute1")
        .unwrap();
    let host = compute1["host"].as_str().unwrap();
    let iface = c
        .vsctl(
            host,
            &[
                "--bare",
                "--columns=name",
                "find",
                "Interface",
                &format!("external_ids:iface-id={lab}.compute1.1"),
            ],
        )
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !iface.is_empty(),
        "no OvS interface for compute1's tunnel port on {host}"
    );
    let pcap = dir.path().join("tunnel.pcap");
    let capture = Capture(
        c.spawn_in(
            &c.host_netns(host),
            &["tcpdump", "-i", &iface, "-U", "-w", pcap.to_str().unwrap()],
        )
        .unwrap(),
    );

    exec("controller", "600", "dclab-tenants-check setup");
    let matrix = ctl.run(&[
        "lab",
        "exec",
        &lab,
        "controller",
        "--timeout",
        "420",
        "--",
        "dclab-tenants-check matrix 400",
    ]);
    drop(capture);
    let table: Value = serde_json::from_str(&matrix.stdout)
        .unwrap_or_else(|e| panic!("matrix printed no JSON ({e}): {}{}", matrix.stdout, matrix.stderr));
    eprintln!("matrix: {table}");
    assert!(matrix.ok() && table["right"] == true, "{table:#}");
    let reached = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "ok")
        .count();
    assert!(reached >= 7 * 2, "too few probes answered: {table:#}");

    let dump = std::process::Command::new("tcpdump")
        .args(["-r", pcap.to_str().unwrap(), "-e", "-n", "ip"])
        .output()
        .unwrap();
    let seen = frames(&String::from_utf8_lossy(&dump.stdout));
    assert!(seen.len() >= 10, "hardly any IPv4 on the tunnel wire: {seen:?}");
    for (src_mac, dst_mac, src, dst) in &seen {
        assert!(
            inner_macs.contains(src_mac) && inner_macs.contains(dst_mac) && in_keys(src) && in_keys(dst),
            "a frame on the wire that is no host MAC / mapping key pair: {src_mac} > {dst_mac} {src} > {dst}"
        );
    }

    // Routers, after the capture: traffic with an outside party is
    // rewritten on the instance's side only, so the router's side of it is
    // on the wire as it is (the paper's §3.7.5).
    let routed = ctl.run(&[
        "lab",
        "exec",
        &lab,
        "compute2",
        "--timeout",
        "600",
        "--",
        "dclab-tenants-check routers 300",
    ]);
    let routes: Value = serde_json::from_str(&routed.stdout).unwrap_or_else(|e| {
        panic!(
            "routers printed no JSON ({e}): {}{}",
            routed.stdout, routed.stderr
        )
    });
    eprintln!("routers: {routes}");
    assert!(routed.ok() && routes["right"] == true, "{routes:#}");
    for (project, r) in routes["projects"].as_object().unwrap() {
        let router = r["router"].as_str().unwrap();
        let mine = r["instance_macs"].as_object().unwrap();
        for target in r["probes"].as_object().unwrap().keys() {
            if target.ends_with(".1") {
                continue;
            }
            let neigh = exec(
                "network",
                "60",
                &format!("ip netns exec qrouter-{router} ip neigh show {target}"),
            );
            match mine.get(target).and_then(Value::as_str) {
                Some(mac) => assert!(
                    neigh.contains(mac),
                    "{project}'s router resolved {target} as {neigh:?}, not as its instance {mac}"
                ),
                None => assert!(
                    !neigh.contains("lladdr"),
                    "{project}'s router resolved {target}, which only the other project has: {neigh:?}"
                ),
            }
        }
    }

    // The coordinator killed while ports are created; systemd restarts it.
    let made = exec("controller", "600", "dclab-tenants-check burst 20 5");
    assert_eq!(made.lines().count(), 20, "{made}");
    let neutron_ports: BTreeSet<String> = made.lines().map(str::to_string).collect();
    // Right after the burst systemd may still be restarting the coordinator
    // (RestartSec=3): a failed listing is "not yet", not a failure.
    let port_names = || -> Result<BTreeSet<String>, String> {
        Ok(try_inner("port ls")?
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect())
    };
    wait_for(
        SYNC_INTERVAL * 4,
        "ports Neutron has and dclab lacks after the kill",
        || match port_names() {
            Ok(names) => {
                let missing: Vec<String> = neutron_ports.difference(&names).cloned().collect();
                (missing.is_empty(), format!("{missing:?}"))
            }
            Err(e) => (false, e),
        },
    );
    exec("controller", "300", "dclab-tenants-check unburst");
    wait_for(
        SYNC_INTERVAL * 4,
        "ports left in dclab after Neutron deleted them",
        || match port_names() {
            Ok(names) => {
                let left: Vec<String> = neutron_ports.intersection(&names).cloned().collect();
                (left.is_empty(), format!("{left:?}"))
            }
            Err(e) => (false, e),
        },
    );

    // A port deleted behind Neutron's back comes back by the next comparison.
    let ports = inner("port ls");
    let victim = ports.as_array().unwrap()[0].clone();
    let name = victim["name"].as_str().unwrap();
    exec(
        "controller",
        "60",
        &format!("ctl --coordinator https://controller:7400 port rm {name}"),
    );
    let started = Instant::now();
    loop {
        let back = inner("port ls")
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == name);
        if back {
            break;
        }
        assert!(
            started.elapsed() < SYNC_INTERVAL * 2 + Duration::from_secs(30),
            "port {name} not back after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("port {name} back after {:.1} s", started.elapsed().as_secs_f64());

    // `ctl bench neutron` works on this lab: every port applied by the
    // dclab agent on compute1, and everything it made removed.
    let ports_of_compute1 = || exec("compute1", "60", "ovs-vsctl list-ports br-dclab; ip -br link");
    let before = ports_of_compute1();
    let bench = ctl.json(&["bench", "neutron", &lab, "--ports", "3"]);
    assert_eq!(bench[0]["backend"], "dclab", "{bench:#}");
    assert_eq!(
        bench[0]["applied_ms"].as_array().map(Vec::len),
        Some(3),
        "{bench:#}"
    );
    assert_eq!(
        ports_of_compute1(),
        before,
        "the bench left ports or devices behind"
    );

    exec("controller", "400", "dclab-tenants-check teardown");
}
