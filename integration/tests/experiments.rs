//! Dependability experiments through `ctl`, on real libvirtd, qemu
//! micro-VMs and two simulated hosts: every fault kind applied and healed
//! as the guests see it, the generic built-ins with their verdicts and exit
//! codes, reports that parse, and faults healed whoever goes away in the
//! middle (ctl, the coordinator, an agent).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dclab_integration::ctl::Ctl;
use dclab_integration::experiments::{held, passed_record, pings, run_passed, runs, until, wait_for_event};
use dclab_integration::labs::{domain_state, lab_file, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use dclab_integration::{cluster, ClusterGuard};

const EVERY_FAULT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/every-fault.toml");

/// A three-node lab (a and c on h1, b on h2) and, on the same hosts with
/// the same CIDR, another lab of two.
fn labs(c: &ClusterGuard, ctl: &Ctl, dir: &std::path::Path) -> (String, String) {
    let pid = std::process::id();
    let (main, other) = (format!("ex{pid}"), format!("ot{pid}"));
    let main_file = lab_file(
        dir,
        &main,
        &[
            ("a", "h1", "10.0.0.1"),
            ("b", "h2", "10.0.0.2"),
            ("c", "h1", "10.0.0.3"),
        ],
    );
    let other_file = lab_file(dir, &other, &[("x", "h1", "10.0.0.1"), ("y", "h2", "10.0.0.2")]);
    for file in [&main_file, &other_file] {
        let up = ctl.json(&["lab", "up", file]);
        assert_eq!(up["ready"], true, "{up}");
    }
    // Wait for the guests to answer on their consoles.
    for (lab, node) in [(&main, "a"), (&main, "b"), (&main, "c"), (&other, "x")] {
        let r = ctl.run(&["lab", "exec", lab, node, "--timeout", "90", "--", "true"]);
        assert!(r.ok(), "{lab}/{node} never answered: {}", r.stderr);
    }
    let _ = c;
    (main, other)
}

fn ctl_child(ctl_bin: &std::path::Path, cluster: &str, args: &[&str]) -> Child {
    Command::new(ctl_bin)
        .env("DCLAB_LOCAL_CLUSTER", cluster)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctl starts")
}

fn ctl_bin() -> std::path::PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("ctl")
}

/// Starts `file` on `lab` and waits for its held fault, starting it again
/// while it is refused because an agent has not reconnected yet.
fn start_when_agents_are_back(ctl: &Ctl, cluster: &str, lab: &str, file: &str) -> Child {
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = runs(ctl, lab).len();
    loop {
        let mut run = ctl_child(&ctl_bin(), cluster, &["experiment", "run", file, "--lab", lab]);
        loop {
            if runs(ctl, lab).len() > before {
                wait_for_event(ctl, lab, before, "held", Duration::from_secs(60));
                return run;
            }
            if let Some(status) = run.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(
                    err.contains("not connected") && Instant::now() < deadline,
                    "the run was refused ({status}): {err}"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn every_fault_kind_and_the_builtins_run_as_expected_and_report() {
    let _libvirtd = Libvirtd::ensure();
    let c = cluster("exf", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-exftest");
    let (main, other) = labs(&c, &ctl, dir.path());
    let _labs = Labs(&ctl, vec![main.clone(), other.clone()]);

    // The whole catalogue, observed from inside the guests; meanwhile the
    // other lab, same CIDR and hosts, is untouched by the partition.
    let run = ctl_child(
        &ctl_bin(),
        c.name(),
        &["-o", "json", "experiment", "run", EVERY_FAULT, "--lab", &main],
    );
    wait_for_event(&ctl, &main, 0, "partition split", Duration::from_secs(240));
    assert!(
        pings(&ctl, &other, "x", "10.0.0.2"),
        "the partition of {main} cut the other lab"
    );
    let out = run.wait_with_output().unwrap();
    let record = passed_record(
        out.status.code().unwrap_or(-1),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    assert!(record["checks"].as_array().unwrap().len() >= 20);

    // The generic built-ins, with the nodes they choose recorded.
    for name in ["node-crash", "freeze", "partition", "network-delay"] {
        let rec = run_passed(&ctl, name, &main);
        assert!(rec["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| !t["nodes"].as_array().unwrap().is_empty()));
    }
    let crash = runs(&ctl, &main)
        .into_iter()
        .find(|r| r["experiment"] == "node-crash")
        .unwrap();
    let id = crash["id"].as_str().unwrap().to_string();
    let shown = ctl.json(&["experiment", "show", &id]);
    let probe = &shown["probes"][0];
    assert!(
        probe["downtime_ms"].as_u64().unwrap() > 1000,
        "a power-off is seen by the probe: {probe:#}"
    );
    assert!(probe["recovery_ms"].is_u64(), "{probe:#}");

    // A check that cannot hold: exit 1, and a finding that names it.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        "[experiment]\nname = \"wrong\"\n[[target]]\nname = \"a\"\nnode = \"a\"\n[[stage]]\nname = \"s\"\n\
         [[stage.check]]\nname = \"a has a file it does not have\"\ncommand = { on = \"a\", run = \"test -e /no/such/file\" }\n",
    )
    .unwrap();
    let r = ctl.run(&["experiment", "run", wrong.to_str().unwrap(), "--lab", &main]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("finding: check \"a has a file it does not have\" in stage s deviated"),
        "{}",
        r.stdout
    );

    // Reports: JUnit that parses as JUnit, HTML that parses as HTML.
    let junit = dir.path().join("run.xml");
    let html = dir.path().join("run.html");
    ctl.ok(&[
        "experiment",
        "report",
        &id,
        "--format",
        "junit",
        "--out",
        junit.to_str().unwrap(),
    ]);
    ctl.ok(&[
        "experiment",
        "report",
        &id,
        "--format",
        "html",
        "--out",
        html.to_str().unwrap(),
    ]);
    let py = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as E, html.parser as H\n\
             r = E.parse(sys.argv[1]).getroot(); s = r.find('testsuite')\n\
             assert r.tag == 'testsuites' and int(s.get('tests')) == len(s.findall('testcase')) == 3, E.tostring(r)\n\
             p = H.HTMLParser(); p.feed(open(sys.argv[2]).read()); p.close()\n\
             t = open(sys.argv[2]).read(); assert '<svg' in t and '</html>' in t and 'node-crash' in t\n",
        )
        .args([&junit, &html])
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
}

#[test]
fn faults_are_healed_whoever_goes_away_in_the_middle() {
    let _libvirtd = Libvirtd::ensure();
    let mut c = cluster("exh", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-exhtest");
    let (main, other) = labs(&c, &ctl, dir.path());
    let _labs = Labs(&ctl, vec![main.clone(), other.clone()]);
    let a = format!("dclab.{main}.a");
    let partition = held(
        dir.path(),
        "partition",
        "fault = \"partition\"\ngroups = [[\"a\"], [\"b\"]]",
        "60s",
    );
    let power_off = held(
        dir.path(),
        "power-off",
        "fault = \"power-off\"\non = \"a\"",
        "60s",
    );
    let freeze = held(dir.path(), "freeze", "fault = \"freeze\"\non = \"a\"", "60s");

    // ctl killed mid-partition: the coordinator aborts the run and heals.
    // Meanwhile a run on the other lab goes side by side.
    let beside = ctl_child(
        &ctl_bin(),
        c.name(),
        &["experiment", "run", "freeze", "--lab", &other],
    );
    let before = runs(&ctl, &main).len();
    let mut run = ctl_child(
        &ctl_bin(),
        c.name(),
        &["experiment", "run", &partition, "--lab", &main],
    );
    let shown = wait_for_event(&ctl, &main, before, "partition held", Duration::from_secs(60));
    if pings(&ctl, &main, "a", "10.0.0.2") {
        let flows = ctl.run(&["verify", "isolation"]);
        panic!(
            "the partition is not in effect: {shown}\n{}{}",
            flows.stdout, flows.stderr
        );
    }
    // A second run on the same lab is refused, and so is a snapshot.
    let second = ctl.run(&["experiment", "run", "freeze", "--lab", &main]);
    assert!(
        !second.ok() && second.stderr.contains("already has run"),
        "{}",
        second.stderr
    );
    let snap = ctl.run(&["snapshot", "create", "during", "--lab", &main]);
    assert!(!snap.ok() && snap.stderr.contains("under way"), "{}", snap.stderr);
    // Nor is the lab taken down or re-applied under the run.
    let down = ctl.run(&["lab", "down", &main]);
    assert!(!down.ok() && down.stderr.contains("under way"), "{}", down.stderr);
    let main_file = dir.path().join(format!("{main}.toml"));
    let again = ctl.run(&["lab", "up", main_file.to_str().unwrap()]);
    assert!(
        !again.ok() && again.stderr.contains("under way"),
        "{}",
        again.stderr
    );
    run.kill().unwrap();
    run.wait().unwrap();
    let took = until(
        "a reaching b after ctl was killed",
        Duration::from_secs(10),
        || pings(&ctl, &main, "a", "10.0.0.2"),
    );
    println!("partition healed {took:?} after ctl was killed");
    let aborted = runs(&ctl, &main)
        .into_iter()
        .find(|r| r["experiment"] == "held-partition")
        .unwrap();
    assert_eq!(aborted["verdict"], "aborted", "{aborted}");
    let beside = beside.wait_with_output().unwrap();
    assert_eq!(
        beside.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&beside.stderr)
    );

    // ctl killed mid power-off: the node runs again.
    let before = runs(&ctl, &main).len();
    let mut run = ctl_child(
        &ctl_bin(),
        c.name(),
        &["experiment", "run", &power_off, "--lab", &main],
    );
    wait_for_event(&ctl, &main, before, "power-off held", Duration::from_secs(60));
    assert_eq!(domain_state(&a), "shut off");
    run.kill().unwrap();
    run.wait().unwrap();
    until("a running after ctl was killed", Duration::from_secs(10), || {
        domain_state(&a) == "running"
    });
    let closed = || {
        runs(&ctl, &main)
            .last()
            .is_some_and(|r| r["verdict"] != "running")
    };
    until("the power-off run closed", Duration::from_secs(10), closed);
    assert_eq!(runs(&ctl, &main).last().unwrap()["verdict"], "aborted");

    // The coordinator killed mid-freeze: the agent resumes the node when
    // the lease lapses (10 s), and the restarted coordinator closes the run.
    let before = runs(&ctl, &main).len();
    let run = ctl_child(
        &ctl_bin(),
        c.name(),
        &["experiment", "run", &freeze, "--lab", &main],
    );
    wait_for_event(&ctl, &main, before, "freeze held", Duration::from_secs(60));
    assert_eq!(domain_state(&a), "paused");
    c.kill_coordinator(libc::SIGKILL).unwrap();
    let killed = Instant::now();
    // The agent's streams are cut; the lease (10 s) still holds the node.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(domain_state(&a), "paused", "a cut stream releases nothing");
    until(
        "a resumed after the coordinator died",
        Duration::from_secs(15),
        || domain_state(&a) == "running",
    );
    let took = killed.elapsed();
    // Renewed every third of the TTL: it lapses 6.7 to 10 s after the kill.
    assert!(
        took >= Duration::from_secs(6),
        "resumed after {took:?}, before the lease lapsed"
    );
    println!("freeze healed by the agent {took:?} after the coordinator was killed");
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.start_coordinator().unwrap();
    let closed = runs(&ctl, &main)
        .into_iter()
        .rfind(|r| r["experiment"] == "held-freeze")
        .unwrap();
    assert_eq!(closed["verdict"], "aborted", "{closed}");

    // The agent killed mid-freeze and started again: the node stays
    // frozen while the agent is gone, and the new agent heals it.
    // Until the agents are back with the new coordinator, runs are refused.
    let mut run = start_when_agents_are_back(&ctl, c.name(), &main, &freeze);
    assert_eq!(domain_state(&a), "paused");
    c.kill_agent("h1", libc::SIGKILL).unwrap();
    // The other lab has a target on h1 too: its run is refused.
    let refused = ctl.run(&["experiment", "run", "freeze", "--lab", &other]);
    assert!(
        !refused.ok() && refused.stderr.contains("agent of host h1 is not connected"),
        "{}",
        refused.stderr
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        domain_state(&a),
        "paused",
        "the fault outlives its agent until the agent is back"
    );
    c.start_agent("h1").unwrap();
    until(
        "a resumed by the restarted agent",
        Duration::from_secs(15),
        || domain_state(&a) == "running",
    );
    run.kill().unwrap();
    run.wait().unwrap();
}

#[test]
fn experiment_files_and_run_arguments_are_checked_before_anything_is_written() {
    let c = cluster("exv", 1, false);
    let ctl = Ctl::new(&c);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[experiment]\nname = \"x\"\n[[stage]]\nname = \"s\"\n[[stage.step]]\nfault = \"power-off\"\non = \"ghost\"\n").unwrap();
    let r = ctl.run(&["experiment", "check", bad.to_str().unwrap()]);
    assert!(
        !r.ok() && r.stderr.contains("bad.toml:7: target \"ghost\" is not defined"),
        "{}",
        r.stderr
    );
    let r = ctl.run(&["experiment", "run", bad.to_str().unwrap(), "--lab", "nolab"]);
    assert!(!r.ok() && r.stderr.contains("target \"ghost\""), "{}", r.stderr);
    let r = ctl.run(&["experiment", "run", "node-crash", "--lab", "nolab"]);
    assert!(
        !r.ok() && r.stderr.contains("lab nolab does not exist"),
        "{}",
        r.stderr
    );
    let r = ctl.run(&["experiment", "run", "node-crash"]);
    assert!(!r.ok() && r.stderr.contains("names no lab"), "{}", r.stderr);
    let r = ctl.run(&["experiment", "run", "no-such-experiment", "--lab", "x"]);
    assert!(
        !r.ok() && r.stderr.contains("neither a built-in experiment"),
        "{}",
        r.stderr
    );
    for bad_run in ["abort", "show"] {
        let r = ctl.run(&["experiment", bad_run, "r0-0"]);
        assert!(
            !r.ok() && r.stderr.contains("no run r0-0"),
            "{bad_run}: {}",
            r.stderr
        );
    }
    assert!(
        ctl.json(&["experiment", "ls"]).as_array().unwrap().is_empty(),
        "nothing was written"
    );
    let builtins = ctl.json(&["experiment", "ls", "--builtin"]);
    let names: Vec<&str> = builtins
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    for want in [
        "node-crash",
        "partition",
        "network-delay",
        "freeze",
        "controller-crash",
        "token-loss",
        "compute-unreachable",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for (name, _) in names.iter().map(|n| (n, ())) {
        ctl.ok(&["experiment", "check", name]);
    }
}
