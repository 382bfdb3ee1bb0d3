//! The port-block fault through `ctl`, on real libvirtd, container nodes
//! on two simulated hosts and real agent processes: while it holds, one
//! TCP port of a node is cut off and another still answers; its run's heal
//! lifts it; the agent's lease file records it, and an agent killed and
//! started again heals it.

use std::time::Duration;

use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::experiments::{held, run_passed, runs, until, wait_for_event};
use dclab_integration::labs::{container_lab_file, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};

const BLOCKED: u16 = 7001;
const OPEN: u16 = 7002;

/// Blocks a's port 7001, checks it from b (7001 fails, 7002 holds), heals
/// it and checks 7001 answers again.
const BLOCK_AND_LIFT: &str = r#"
[experiment]
name = "port-block"

[[target]]
name = "a"
node = "a"

[[target]]
name = "b"
node = "b"

[[stage]]
name = "block"
[[stage.step]]
fault = "port-block"
on = "a"
protocol = "tcp"
port = 7001
id = "block"
[[stage.check]]
name = "b cannot connect to a's blocked port"
reach = { from = "b", to = "a", kind = "tcp", port = 7001 }
expect = "fails"
[[stage.check]]
name = "b still connects to a's other port"
reach = { from = "b", to = "a", kind = "tcp", port = 7002 }
expect = "holds"

[[stage]]
name = "lift"
[[stage.step]]
heal = "block"
[[stage.check]]
name = "b connects to a's port again"
reach = { from = "b", to = "a", kind = "tcp", port = 7001 }
expect = "within 10s"
"#;

/// Whether node b opens a TCP connection to a (10.0.0.1) on `port`.
fn connects(ctl: &Ctl, lab: &str, port: u16) -> bool {
    ctl.run(&[
        "lab",
        "exec",
        lab,
        "b",
        "--timeout",
        "20",
        "--",
        &format!("nc -w 2 10.0.0.1 {port} </dev/null >/dev/null 2>&1"),
    ])
    .ok()
}

#[test]
fn a_port_block_cuts_one_port_until_its_run_or_a_restarted_agent_heals_it() {
    let _libvirtd = Libvirtd::ensure_containers();
    let mut c = cluster("pb", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-pbtest");
    let lab = format!("pb{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    let file = container_lab_file(
        dir.path(),
        &lab,
        &[("a", "h1", "10.0.0.1"), ("b", "h2", "10.0.0.2")],
    );
    let up = ctl.json(&["lab", "up", &file]);
    assert_eq!(up["ready"], true, "{up}");
    for node in ["a", "b"] {
        let r = ctl.run(&["lab", "exec", &lab, node, "--timeout", "60", "--", "true"]);
        assert!(r.ok(), "{lab}/{node} never answered: {}", r.stderr);
    }
    // Two services on a, each taking connection after connection at once
    // (busybox's persistent server), so no probe finds one restarting.
    for port in [BLOCKED, OPEN] {
        ctl.ok(&[
            "lab",
            "exec",
            &lab,
            "a",
            "--",
            &format!("nc -ll -p {port} -e true >/dev/null 2>&1 &"),
        ]);
    }
    until("both of a's ports answer b", Duration::from_secs(20), || {
        connects(&ctl, &lab, BLOCKED) && connects(&ctl, &lab, OPEN)
    });

    // The run applies it and heals it, as its checks see from inside b.
    let path = dir.path().join("port-block.toml");
    std::fs::write(&path, BLOCK_AND_LIFT).unwrap();
    run_passed(&ctl, path.to_str().unwrap(), &lab);
    assert!(connects(&ctl, &lab, BLOCKED), "the run's heal lifted the block");

    // Held, the agent's lease file records it; the agent killed, the
    // block outlives it (the flows stay in OvS); started again, the agent
    // heals it.
    let hold = held(
        dir.path(),
        "port-block",
        &format!("fault = \"port-block\"\non = \"a\"\nport = {BLOCKED}"),
        "120s",
    );
    let before = runs(&ctl, &lab).len();
    let mut run = std::process::Command::new(ctl_bin())
        .env("DCLAB_LOCAL_CLUSTER", c.name())
        .args(["experiment", "run", &hold, "--lab", &lab])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ctl starts");
    wait_for_event(&ctl, &lab, before, "port-block held", Duration::from_secs(60));
    assert!(!connects(&ctl, &lab, BLOCKED), "the held block is in effect");
    assert!(connects(&ctl, &lab, OPEN), "the other port is untouched");
    let leases = c.host_dir("h1").join("agent").join("leases.json");
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&leases).unwrap()).unwrap();
    let blocks: Vec<&serde_json::Value> = recorded
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["faults"].as_array().unwrap())
        .filter_map(|f| f.get("port_block"))
        .collect();
    assert_eq!(
        blocks,
        [&serde_json::json!({"lab": lab, "node": "a", "protocol": "tcp", "port": BLOCKED})],
        "{recorded:#}"
    );
    c.kill_agent("h1", libc::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !connects(&ctl, &lab, BLOCKED),
        "the block outlives its agent until the agent is back"
    );
    c.start_agent("h1").unwrap();
    until(
        "a's blocked port answering after the agent restarted",
        Duration::from_secs(20),
        || connects(&ctl, &lab, BLOCKED),
    );
    assert!(connects(&ctl, &lab, OPEN));
    until(
        "the lease file without the block",
        Duration::from_secs(10),
        || !std::fs::read_to_string(&leases).unwrap().contains("port_block"),
    );
    run.kill().unwrap();
    run.wait().unwrap();
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
