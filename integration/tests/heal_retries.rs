//! Faults that must not outlive their heal, on real libvirtd, container
//! and micro-VM nodes and real agent processes: a heal that fails (the
//! node is off, so nothing can run in it) stays in the agent's lease file
//! and is retried until the node is back; faults in a lease file that no
//! longer parses are still healed when the agent starts again; a disk-fill
//! larger than the free space is refused, and one that fits is healed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::experiments::{passed_record, pings, runs, until, wait_for_event};
use dclab_integration::labs::{container_lab_file, lab_file, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use dclab_integration::metrics::{find_sample, sample, scrape};
use serde_json::Value;

/// Brings up container lab `lab` on h1 and waits for its nodes to answer.
fn container_lab(ctl: &Ctl, dir: &std::path::Path, lab: &str, nodes: &[(&str, &str)]) {
    let nodes: Vec<(&str, &str, &str)> = nodes.iter().map(|(n, ip)| (*n, "h1", *ip)).collect();
    let file = container_lab_file(dir, lab, &nodes);
    let up = ctl.json(&["lab", "up", &file]);
    assert_eq!(up["ready"], true, "{up}");
    for (node, ..) in &nodes {
        let r = ctl.run(&["lab", "exec", lab, node, "--timeout", "60", "--", "true"]);
        assert!(r.ok(), "{lab}/{node} never answered: {}", r.stderr);
    }
}

/// Brings up lab `lab`: a micro-VM `a` on h1 with a 16 MiB data disk,
/// answering.
fn micro_vm_lab(ctl: &Ctl, dir: &std::path::Path, lab: &str) {
    let file = lab_file(dir, lab, &[("a", "h1", "10.0.0.1")]);
    let up = ctl.json(&["lab", "up", &file]);
    assert_eq!(up["ready"], true, "{up}");
    let r = ctl.run(&["lab", "exec", lab, "a", "--timeout", "90", "--", "true"]);
    assert!(r.ok(), "a never answered: {}", r.stderr);
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The heal of a disk-fill runs while its node is off: nothing can run in
/// it, so the heal fails. The node comes back and the filler (on the
/// micro-VM's data disk, which outlives a power-off) must go.
const HEAL_WHILE_OFF: &str = r#"
[experiment]
name = "heal-while-off"

[[target]]
name = "victim"
node = "a"

[[stage]]
name = "break"
[[stage.step]]
fault = "disk-fill"
on = "victim"
size = "1MiB"
path = "/data"
id = "fill"
[[stage.step]]
fault = "power-off"
on = "victim"
id = "off"
[[stage.step]]
heal = "fill"
[[stage.step]]
wait = "6s"
[[stage.step]]
heal = "off"
[[stage.check]]
name = "the filler is gone"
command = { on = "victim", run = "ls /data | grep -c dclab-fill", output = "^0" }
expect = "within 60s"
"#;

#[test]
fn a_heal_that_fails_is_retried_until_the_fault_is_gone() {
    let _libvirtd = Libvirtd::ensure();
    let c = cluster("hr", 1, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-hrtest");
    let lab = format!("hr{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    micro_vm_lab(&ctl, dir.path(), &lab);
    let metrics = c.status().hosts[0]
        .agent_metrics
        .clone()
        .expect("the agent serves metrics");
    let file = write(dir.path(), "heal-while-off.toml", HEAL_WHILE_OFF);

    let run = ctl
        .command(&["-o", "json", "experiment", "run", &file, "--lab", &lab])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let shown = wait_for_event(&ctl, &lab, 0, "heal fill", Duration::from_secs(60));
    let id = shown["id"].as_str().unwrap().to_string();
    // While the node is off: what `experiment show` and the agent's
    // metrics say of the fault nobody could heal yet.
    let mut awaiting = Value::Null;
    let mut awaiting_gauge: f64 = 0.0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline && (awaiting.is_null() || awaiting_gauge == 0.0) {
        let now = ctl.json(&["experiment", "show", &id]);
        if now["awaiting_heal"].as_array().is_some_and(|a| !a.is_empty()) {
            awaiting = now["awaiting_heal"].clone();
        }
        let gauge = find_sample(&scrape(&metrics), "dclab_agent_faults_awaiting_heal");
        awaiting_gauge = awaiting_gauge.max(gauge.unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = ctl.ok(&["experiment", "show", &id]);

    let out = run.wait_with_output().unwrap();
    let record = passed_record(
        out.status.code().unwrap_or(-1),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    let heal = record["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["what"].as_str().unwrap().starts_with("heal fill"))
        .unwrap();
    let error = heal["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not running"),
        "the first heal failed for why: {heal}"
    );
    let findings: Vec<&str> = record["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        findings
            .iter()
            .any(|f| f.contains("heal of disk-fill fill on a") && f.contains("retr")),
        "{findings:#?}"
    );
    assert_eq!(awaiting[0]["fault"], "fill", "{awaiting}");
    assert_eq!(awaiting[0]["node"], "a", "{awaiting}");
    assert!(
        awaiting[0]["error"]
            .as_str()
            .unwrap()
            .contains("is off, not running"),
        "{awaiting}"
    );
    assert!(text.contains("awaiting heal"), "{text}");
    assert!(awaiting_gauge >= 1.0, "the agent counted no fault awaiting heal");

    // Healed on a retry: nothing awaits, and the failures were counted.
    assert!(
        findings.iter().any(|f| f.contains("fill was healed on a retry")),
        "{findings:#?}"
    );
    let after = ctl.json(&["experiment", "show", &id]);
    assert_eq!(after["awaiting_heal"], serde_json::json!([]), "{after}");
    let page = scrape(&metrics);
    assert_eq!(sample(&page, "dclab_agent_faults_awaiting_heal"), 0.0);
    assert!(sample(&page, "dclab_agent_heal_failures_total") >= 1.0, "{page}");
}

/// A link cut held for two minutes.
const HELD_CUT: &str = r#"
[experiment]
name = "held-cut"

[[target]]
name = "a"
node = "a"

[[stage]]
name = "hold"
[[stage.step]]
fault = "link-cut"
on = "a"
id = "held"
[[stage.step]]
wait = "120s"
"#;

#[test]
fn faults_in_a_lease_file_that_no_longer_parses_are_still_healed() {
    let _libvirtd = Libvirtd::ensure_containers();
    let mut c = cluster("hc", 1, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-hctest");
    let lab = format!("hc{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    container_lab(&ctl, dir.path(), &lab, &[("a", "10.0.0.1"), ("b", "10.0.0.2")]);
    let file = write(dir.path(), "held-cut.toml", HELD_CUT);
    let state = c.host_dir("h1").join("agent");
    let primary = state.join("leases.json");
    let backup = state.join("leases.json.bak");

    // First the lease file alone is damaged, then every copy of it.
    for damaged in [vec![primary.clone()], vec![primary.clone(), backup.clone()]] {
        let before = runs(&ctl, &lab).len();
        let mut run = ctl
            .command(&["experiment", "run", &file, "--lab", &lab])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_event(&ctl, &lab, before, "link-cut held", Duration::from_secs(60));
        assert!(!pings(&ctl, &lab, "b", "10.0.0.1"), "the cut is not in effect");
        c.kill_agent("h1", libc::SIGKILL).unwrap();
        for path in &damaged {
            // What a torn or zeroed block leaves: no JSON at all.
            std::fs::write(path, vec![0u8; 512]).unwrap();
        }
        c.start_agent("h1").unwrap();
        let took = until(
            "b reaching a after the agent started on a damaged lease file",
            Duration::from_secs(30),
            || pings(&ctl, &lab, "b", "10.0.0.1"),
        );
        println!("with {damaged:?} damaged, the cut was healed {took:?} after the agent started");
        assert!(
            state.join("leases.json.corrupt").exists(),
            "the unreadable file is kept for a look"
        );
        run.kill().unwrap();
        run.wait().unwrap();
        until("the run closed", Duration::from_secs(20), || {
            runs(&ctl, &lab).last().is_some_and(|r| r["verdict"] != "running")
        });
    }
}

/// A micro-VM's 16 MiB data disk cannot take 64 MiB; 4 MiB fit, and the
/// heal removes them.
#[test]
fn a_disk_fill_larger_than_the_free_space_is_refused() {
    let _libvirtd = Libvirtd::ensure();
    let c = cluster("df", 1, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-dftest");
    let lab = format!("df{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    micro_vm_lab(&ctl, dir.path(), &lab);

    let fill = |size: &str, checks: &str| {
        format!(
            "[experiment]\nname = \"fill-{size}\"\n[[target]]\nname = \"a\"\nnode = \"a\"\n\
             [[stage]]\nname = \"fill\"\n[[stage.step]]\nfault = \"disk-fill\"\non = \"a\"\nsize = \"{size}\"\n\
             path = \"/data\"\nid = \"fill\"\n{checks}"
        )
    };
    let too_big = write(dir.path(), "too-big.toml", &fill("64MiB", ""));
    let r = ctl.run(&["-o", "json", "experiment", "run", &too_big, "--lab", &lab]);
    let record: Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", r.stdout, r.stderr));
    assert_eq!(
        r.code, 2,
        "a 64 MiB fill of a 16 MiB disk was not refused: {record:#}"
    );
    let why = record["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("64 MiB") && why.contains("MiB free") && why.contains("/data"),
        "the refusal names neither the size nor the free space: {why}"
    );
    let left = ctl.run(&["lab", "exec", &lab, "a", "--", "ls /data | grep -c dclab-fill"]);
    assert_eq!(left.stdout.trim(), "0", "a refused fill wrote: {}", left.stdout);

    let fits = write(
        dir.path(),
        "fits.toml",
        &fill(
            "4MiB",
            "[[stage.check]]\nname = \"filled\"\ncommand = { on = \"a\", run = \"du -m /data/dclab-fill-* | cut -f1\", output = \"^4\" }\n\
             [[stage]]\nname = \"healed\"\n[[stage.step]]\nheal = \"fill\"\n\
             [[stage.check]]\nname = \"emptied\"\ncommand = { on = \"a\", run = \"ls /data | grep -c dclab-fill\", output = \"^0\" }\n",
        ),
    );
    let r = ctl.run(&["-o", "json", "experiment", "run", &fits, "--lab", &lab]);
    passed_record(r.code, &r.stdout, &r.stderr);
}
