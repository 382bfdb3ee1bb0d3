//! No process of a container node outlives the node (issue 23, item 4).
//!
//! A Debian node's systemd, asked for a unit with CPU accounting (what the
//! OpenStack roles run does it too), realizes the cpu controller and,
//! once the unit is gone, moves every process of the node to what it takes
//! for its root of the cpu hierarchy: with no cgroup namespace, the
//! host's. libvirt's destroy kills by its cpu cgroup, so it then reports
//! the node off while the node's init and services run on. Every stop
//! path of the agent must still end with nothing of the node running:
//! a shutdown fault, a snapshot restore, and a lab down after the node was
//! destroyed behind a dead agent's back, which `lab down` reports.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::experiments::passed_record;
use dclab_integration::labs::{domain_state, domains_named, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use dclab_integration::node_procs::{cgroup, cgroup_dirs, inits, processes, Init, KillLeftovers};

/// A shutdown held while the prober sleeps, so the test can look.
const SHUTDOWN_AND_BACK: &str = r#"
[experiment]
name = "shutdown-and-back"
title = "A container node shut down and started again"

[[target]]
name = "victim"
node = "d"

[[target]]
name = "prober"
node = "p"

[[stage]]
name = "down"
[[stage.step]]
fault = "shutdown"
on = "victim"
id = "down"
[[stage.step]]
exec = "sleep 10"
on = "prober"
timeout = "30s"

[[stage]]
name = "up"
[[stage.step]]
heal = "down"
"#;

fn lab_file(dir: &std::path::Path, lab: &str) -> String {
    let text = format!(
        "[lab]\nname = \"{lab}\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n\n\
         [[node]]\nname = \"d\"\nkind = \"container\"\nimage = \"debian\"\nmemory = \"512MiB\"\nhost = \"h1\"\n\
         interfaces = [{{ network = \"lan\", ip = \"10.0.0.1\" }}]\n\n\
         [[node]]\nname = \"p\"\nkind = \"container\"\nimage = \"micro\"\nmemory = \"64MiB\"\nhost = \"h1\"\n\
         interfaces = [{{ network = \"lan\", ip = \"10.0.0.2\" }}]\n"
    );
    let path = dir.join(format!("{lab}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// libvirt's pid of the running container: the parent of its init.
fn controller(domain: &str) -> i32 {
    let out = Command::new("virsh")
        .args(["-c", "lxc:///system", "domid", domain])
        .output()
        .expect("virsh runs");
    let id = String::from_utf8_lossy(&out.stdout);
    id.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{domain} has no id: {id}"))
}

/// Exactly one init, the one libvirt runs now: nothing of an earlier run.
fn only_the_running_init(domain: &str, after: &str) -> Init {
    let found = inits(domain);
    let running = controller(domain);
    assert!(
        found.len() == 1 && found[0].ppid == running,
        "after {after}: inits of {domain} {found:?}, the running one's parent is {running}"
    );
    found[0].clone()
}

fn booted(ctl: &Ctl, lab: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let state = ctl.run(&[
            "lab",
            "exec",
            lab,
            "d",
            "--timeout",
            "60",
            "--",
            "systemctl is-system-running --wait",
        ]);
        let word = state.stdout.trim();
        if word == "running" || word == "degraded" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "d did not boot: {}{}",
            state.stdout,
            state.stderr
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The node's systemd moves all of the node's processes out of libvirt's
/// cpu cgroup into the host's root one (see the head of the file).
fn escape(ctl: &Ctl, lab: &str, domain: &str) {
    let init = only_the_running_init(domain, "boot").pid;
    assert_ne!(
        cgroup(init, "cpu").as_deref(),
        Some("/"),
        "escaped before the unit"
    );
    ctl.ok(&[
        "lab",
        "exec",
        lab,
        "d",
        "--",
        "systemd-run --wait -q -p CPUAccounting=yes true",
    ]);
    until(
        "the node's init moved to the host's root cpu cgroup (this systemd no longer does it?)",
        Duration::from_secs(10),
        || cgroup(init, "cpu").as_deref() == Some("/"),
    );
}

#[test]
fn no_process_of_a_container_node_outlives_any_stop() {
    let _libvirtd = Libvirtd::ensure_containers();
    let mut c = cluster("rp", 1, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-reaptest");
    let lab = format!("rp{}", std::process::id());
    let domain = format!("dclab.{lab}.d");
    let file = lab_file(dir.path(), &lab);
    // Dropped after the labs: kills whatever their removal left.
    let _leftovers = KillLeftovers(lab.clone());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    let up = ctl.json(&["lab", "up", &file, "--timeout", "600"]);
    assert_eq!(up["ready"], true, "{up}");
    booted(&ctl, &lab);
    ctl.ok(&["snapshot", "create", "s1", "--lab", &lab]);

    // A shutdown fault: nothing of the node while it is off, one init after the heal.
    escape(&ctl, &lab, &domain);
    let experiment = dir.path().join("shutdown-and-back.toml");
    std::fs::write(&experiment, SHUTDOWN_AND_BACK).unwrap();
    let run = ctl
        .command(&[
            "-o",
            "json",
            "experiment",
            "run",
            experiment.to_str().unwrap(),
            "--lab",
            &lab,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctl runs");
    until("d shut off", Duration::from_secs(60), || {
        domain_state(&domain) == "shut off"
    });
    // The fault is in effect (and the prober sleeping) a moment after libvirt says so.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(domain_state(&domain), "shut off");
    assert_eq!(
        processes(&domain),
        Vec::<i32>::new(),
        "processes of d while it is shut down"
    );
    let out = run.wait_with_output().unwrap();
    passed_record(
        out.status.code().unwrap_or(-1),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    only_the_running_init(&domain, "the shutdown fault and its heal");

    // A restore stops the node in place and starts it afresh.
    booted(&ctl, &lab);
    escape(&ctl, &lab, &domain);
    ctl.ok(&["snapshot", "restore", "s1", "--lab", &lab]);
    only_the_running_init(&domain, "the snapshot restore");

    // Destroyed behind a dead agent's back: libvirt says off, the init
    // lives on; the lab's removal by the restarted agent kills it.
    booted(&ctl, &lab);
    escape(&ctl, &lab, &domain);
    c.kill_agent("h1", libc::SIGKILL).unwrap();
    let destroyed = Command::new("virsh")
        .args(["-c", "lxc:///system", "destroy", &domain])
        .output()
        .expect("virsh runs");
    assert!(
        destroyed.status.success(),
        "{}",
        String::from_utf8_lossy(&destroyed.stderr)
    );
    assert_eq!(domain_state(&domain), "shut off");
    assert_eq!(
        inits(&domain).len(),
        1,
        "libvirt's destroy killed the escaped init after all"
    );
    let down = ctl
        .command(&["lab", "down", &lab])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctl runs");
    // The agent must first hear of the lab as gone, not start d again.
    until("the lab deleted", Duration::from_secs(30), || {
        !ctl.ok(&["lab", "ls"]).contains(&lab)
    });
    c.start_agent("h1").unwrap();
    let out = down.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    print!("{said}");
    assert!(
        said.contains(&format!("lab {lab}: removed\n"))
            && said.contains("d (on h1): ")
            && said.contains("leftover processes killed after libvirt's destroy"),
        "lab down did not say what it killed: {said}"
    );
    assert_eq!(
        processes(&domain),
        Vec::<i32>::new(),
        "processes of d after lab down"
    );
    assert_eq!(domains_named(&lab), Vec::<String>::new());
    assert_eq!(cgroup_dirs(&lab), Vec::<String>::new(), "cgroups of the lab left");
}
