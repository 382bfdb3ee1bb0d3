//! The HPI paper's whole architecture, for real: the six container nodes of
//! examples/openstack-hpi-containers.toml on two hosts, every chapter of
//! playbooks/openstack installed with `--snapshot initial`, the paper's
//! controller-crash and compute-unreachable experiments run against the
//! installed cloud, and the `initial` snapshot restored to a cloud whose
//! APIs answer again. About 20 minutes on a fresh machine (the four role
//! images are built first).

use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::experiments::run_passed;
use dclab_integration::labs::{up_example, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use serde_json::Value;

const EXAMPLE: &str = include_str!("../../examples/openstack-hpi-containers.toml");

const CHAPTERS: [&str; 9] = [
    "environment",
    "identity",
    "image",
    "placement",
    "compute",
    "networking",
    "dashboard",
    "object-storage",
    "launch",
];

fn check<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {record:#}"))
}

#[test]
fn the_papers_architecture_installs_and_survives_its_experiments() {
    let _libvirtd = Libvirtd::ensure_containers();
    let dir = vm_dir("dclab-hpitest");
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();
    let c = cluster("hpi", 2, false);
    let ctl = Ctl::new(&c);
    let lab = format!("hpi{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    up_example(&ctl, dir.path(), EXAMPLE, "openstack-hpi", &lab, "1500");
    let status = ctl.json(&["lab", "status", &lab]);
    let hosts: std::collections::BTreeSet<_> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 2, "the lab is not spread over both hosts: {status}");

    let run = ctl.run(&[
        "-o",
        "json",
        "lab",
        "install",
        &lab,
        "--snapshot",
        "initial",
        "--state-dir",
        state_arg,
    ]);
    assert!(
        run.ok(),
        "install failed ({}):\n{}{}",
        run.code,
        run.stdout,
        run.stderr
    );
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let chapters: Vec<_> = summary["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chapter"].as_str().unwrap())
        .collect();
    assert_eq!(chapters, CHAPTERS, "{summary}");
    assert!(summary["changed"].as_u64().unwrap() > 100, "{summary}");
    eprintln!("install: {summary}");

    // The cloud as the install guide's verification steps see it.
    let os_waiting = |timeout: &str, cmd: &str| {
        let run = ctl.run(&["lab", "exec", &lab, "network", "--timeout", timeout, "--", cmd]);
        assert!(run.ok(), "{cmd}: {}{}", run.stdout, run.stderr);
        run.stdout
    };
    let os = |cmd: &str| os_waiting("60", cmd);
    let hypervisors = os("dclab-os-check hypervisors");
    assert!(
        hypervisors.contains("compute1") && hypervisors.contains("compute2"),
        "{hypervisors}"
    );
    os("dclab-os-check network-agents");
    os("dclab-os-check horizon-login");

    let crash = run_passed(&ctl, "controller-crash", &lab);
    let fails = check(&crash, "every API call fails");
    assert!(fails["observed"].is_string(), "{fails:#}");
    run_passed(&ctl, "compute-unreachable", &lab);

    // Back to the freshly installed cloud; its APIs answer again.
    let restore = ctl.run(&["snapshot", "restore", "initial", "--lab", &lab]);
    assert!(restore.ok(), "{}{}", restore.stdout, restore.stderr);
    os_waiting("420", "for i in $(seq 72); do dclab-os-check apis >/dev/null 2>&1 && break; sleep 5; done; dclab-os-check apis");
}
