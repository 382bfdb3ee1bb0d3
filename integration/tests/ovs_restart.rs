//! Open vSwitch losing its flows under a running agent: ovs-vswitchd
//! killed (-9) and started again (a crash, an upgrade), and flows deleted
//! with `ovs-ofctl del-flows`. The agent reinstalls them at once, fault
//! flows (a partition) included, and isolation holds throughout.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dclab_integration::ctl::Ctl;
use dclab_integration::labs::{lab_file, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use dclab_integration::metrics::{find_sample, scrape};
use dclab_integration::paper::{self, OVERLAPPING};
use dclab_integration::world::World;
use dclab_integration::{cluster, Cluster};

const SIGKILL: i32 = 9;
/// Generous: the agent needs well under a second (`ctl bench ovs-restart`);
/// its periodic re-verification alone would take up to 60 s.
const BACK_WITHIN: Duration = Duration::from_secs(10);

/// The bridge's flows as OvS prints them without counters.
fn flows(c: &Cluster, host: &str) -> BTreeSet<String> {
    let dump = c.ofctl(host, &["dump-flows", "--no-stats"]).expect("dump-flows");
    dump.lines()
        .filter(|l| l.contains("cookie="))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Waits until `host`'s flows are `want` again; how long that took. On
/// timeout, names what differs and shows the agent's last words.
fn flows_back(c: &Cluster, host: &str, want: &BTreeSet<String>) -> Duration {
    let started = Instant::now();
    loop {
        let got = flows(c, host);
        if &got == want {
            return started.elapsed();
        }
        if started.elapsed() > BACK_WITHIN {
            let log = std::fs::read_to_string(c.agent_log(host)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            panic!(
                "{host}'s flows not back within {BACK_WITHIN:?}; missing {:#?}\nextra {:#?}\nagent log (last first):\n{}",
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(want).collect::<Vec<_>>(),
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `ok` holds; how long that took.
fn within(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

fn reaches(w: &World, from: &str, ip: &str) -> bool {
    w.run(from, &["ping", "-c", "1", "-W", "1", ip]).0
}

/// The agent's count of repairs for `reason` (0 before the first).
fn repairs(c: &Cluster, host: &str, reason: &str) -> f64 {
    let url = c.agent_metrics_url(host).expect("the agent serves metrics");
    let key = format!("dclab_agent_bridge_repairs_total{{reason=\"{reason}\"}}");
    find_sample(&scrape(&url), &key).unwrap_or(0.0)
}

/// Waits until the agent counted `n` repairs for `reason` (it counts once
/// the flows are in), and checks it counts no more for a moment.
fn assert_repairs(c: &Cluster, host: &str, reason: &str, n: f64) {
    within(&format!("repair {n} ({reason}) counted"), BACK_WITHIN, || {
        repairs(c, host, reason) >= n
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(repairs(c, host, reason), n, "repairs for {reason} on {host}");
}

/// Every instance reaches exactly the instances of its own tenant, as in
/// the paper's table 4, with tenant b on tenant a's addresses.
fn assert_isolation(w: &World) {
    let got = paper::fping_matrix(w, &OVERLAPPING).unwrap();
    assert_eq!(
        got,
        paper::table4(&OVERLAPPING),
        "{}",
        paper::render("after the repair, x = received", &OVERLAPPING, &got)
    );
}

#[test]
fn a_restarted_vswitchd_gets_every_flow_back_at_once() {
    let mut w = World::with_plan("ov", OVERLAPPING);
    let before = flows(&w, "h1");
    assert!(reaches(&w, "vm1", "10.0.0.2"));

    w.kill_vswitchd("h1", SIGKILL).unwrap();
    assert!(
        !reaches(&w, "vm1", "10.0.0.2"),
        "traffic crossed h1 with its ovs-vswitchd killed"
    );
    w.start_vswitchd("h1").unwrap();
    let took = within("vm1 (h1) reaching vm2 (h2)", BACK_WITHIN, || {
        reaches(&w, "vm1", "10.0.0.2")
    });
    println!("traffic back {took:?} after ovs-vswitchd started again");
    assert_eq!(flows(&w, "h1"), before, "h1's flows after the restart");
    assert_repairs(&w, "h1", "reconnected", 1.0);
    assert_isolation(&w);
}

#[test]
fn deleted_flows_are_reinstalled_at_once() {
    let w = World::with_plan("od", OVERLAPPING);
    let before = flows(&w, "h1");

    // Every flow of the bridge.
    w.ofctl("h1", &["del-flows"]).unwrap();
    let took = flows_back(&w, "h1", &before);
    println!("flows back {took:?} after del-flows");
    assert!(reaches(&w, "vm1", "10.0.0.2"));
    assert!(reaches(&w, "vm2", "10.0.0.1"));
    assert_repairs(&w, "h1", "flows_deleted", 1.0);

    // Only the delivering table: the count of the agent's flows drops,
    // not to zero.
    w.ofctl("h1", &["del-flows", "table=32"]).unwrap();
    flows_back(&w, "h1", &before);
    assert_repairs(&w, "h1", "flows_deleted", 2.0);
    assert!(reaches(&w, "vm2", "10.0.0.1"));
    assert_isolation(&w);
    // Nothing was repaired on a host whose flows nobody touched.
    assert_eq!(repairs(&w, "h2", "flows_deleted"), 0.0);
}

/// A `ctl experiment run` that is killed when the test ends, however it
/// ends: the coordinator then aborts the run and heals its faults.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lab_pings(ctl: &Ctl, lab: &str, node: &str, ip: &str) -> bool {
    let ping = format!("ping -c 1 -W 1 {ip}");
    ctl.run(&["lab", "exec", lab, node, "--timeout", "20", "--", &ping])
        .ok()
}

#[test]
fn partition_flows_come_back_after_a_wipe_and_a_vswitchd_restart() {
    let _libvirtd = Libvirtd::ensure();
    let mut c = cluster("op", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-optest");
    let lab = format!("op{}", std::process::id());
    // a on h1; b and c on h2. The partition cuts a from b; c is in neither group.
    let file = lab_file(
        dir.path(),
        &lab,
        &[
            ("a", "h1", "10.0.0.1"),
            ("b", "h2", "10.0.0.2"),
            ("c", "h2", "10.0.0.3"),
        ],
    );
    let _labs = Labs(&ctl, vec![lab.clone()]);
    let up = ctl.json(&["lab", "up", &file]);
    assert_eq!(up["ready"], true, "{up}");
    for node in ["a", "b", "c"] {
        let r = ctl.run(&["lab", "exec", &lab, node, "--timeout", "90", "--", "true"]);
        assert!(r.ok(), "{lab}/{node} never answered: {}", r.stderr);
    }
    // The first packets may wait for the guests' ARP.
    within("a reaching b", Duration::from_secs(30), || {
        lab_pings(&ctl, &lab, "a", "10.0.0.2")
    });

    let pipeline = flows(&c, "h1");
    let held = dir.path().join("held.toml");
    std::fs::write(
        &held,
        "[experiment]\nname = \"held-partition\"\n\n[[target]]\nname = \"a\"\nnode = \"a\"\n\n\
         [[target]]\nname = \"b\"\nnode = \"b\"\n\n[[stage]]\nname = \"hold\"\n\
         [[stage.step]]\nfault = \"partition\"\ngroups = [[\"a\"], [\"b\"]]\nid = \"held\"\n\
         [[stage.step]]\nwait = \"300s\"\n",
    )
    .unwrap();
    let _run = Run(Command::new(dclab_integration::built_bins(&["ctl"]).join("ctl"))
        .env("DCLAB_LOCAL_CLUSTER", c.name())
        .args(["experiment", "run", held.to_str().unwrap(), "--lab", &lab])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ctl starts"));
    // The partition's flows come in one bundle, at priority 200 (the
    // pipeline has one flow there too, the uplink's).
    within("the partition's flows on h1", Duration::from_secs(60), || {
        flows(&c, "h1")
            .difference(&pipeline)
            .any(|f| f.contains("priority=200"))
    });
    let before = flows(&c, "h1");
    let cut = before.difference(&pipeline).count();
    assert!(
        !lab_pings(&ctl, &lab, "a", "10.0.0.2"),
        "the partition is not in effect"
    );
    within("a reaching c", BACK_WITHIN, || {
        lab_pings(&ctl, &lab, "a", "10.0.0.3")
    });

    c.ofctl("h1", &["del-flows"]).unwrap();
    let took = flows_back(&c, "h1", &before);
    println!(
        "{} flows ({cut} of the partition) back {took:?} after del-flows",
        before.len()
    );
    within("a reaching c after the wipe", BACK_WITHIN, || {
        lab_pings(&ctl, &lab, "a", "10.0.0.3")
    });
    assert!(
        !lab_pings(&ctl, &lab, "a", "10.0.0.2"),
        "the wipe healed the partition"
    );

    c.kill_vswitchd("h1", SIGKILL).unwrap();
    c.start_vswitchd("h1").unwrap();
    let took = flows_back(&c, "h1", &before);
    println!("flows back {took:?} after ovs-vswitchd started again");
    within("a reaching c after the restart", BACK_WITHIN, || {
        lab_pings(&ctl, &lab, "a", "10.0.0.3")
    });
    assert!(
        !lab_pings(&ctl, &lab, "a", "10.0.0.2"),
        "the restart healed the partition"
    );
}
