//! SIGTERM ends a daemon in time however busy it is (issue 23, item 9):
//! the coordinator with agents' streams, a tunnel and a run holding a
//! fault open ends within 5 s, the run recorded as aborted and its fault
//! healed through the agents; an agent holding faults heals them and ends
//! within 5 s too.

use std::io::{BufRead, Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dclab_integration::ctl::Ctl;
use dclab_integration::experiments::{held, runs};
use dclab_integration::labs::Labs;
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use dclab_integration::{cluster, ClusterGuard};

const WITHIN: Duration = Duration::from_secs(5);

fn lab_file(dir: &std::path::Path, name: &str) -> String {
    let mut text = format!(
        "[lab]\nname = \"{name}\"\nimage = \"micro\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n"
    );
    for (node, host, ip) in [("a", "h1", "10.0.0.1"), ("b", "h2", "10.0.0.2")] {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{node}\"\nkind = \"container\"\nmemory = \"128MiB\"\nhost = \"{host}\"\n\
             interfaces = [{{ network = \"lan\", ip = \"{ip}\" }}]\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn spawn_piped(mut cmd: std::process::Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Starts `file` on `lab` and returns once its fault is in effect; a run
/// refused because an agent has not reconnected yet is started again.
fn start_held(ctl: &Ctl, lab: &str, file: &str) -> (Child, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = runs(ctl, lab).len();
        let mut run = spawn_piped(ctl.command(&["experiment", "run", file, "--lab", lab]));
        while runs(ctl, lab).len() == before && run.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        if runs(ctl, lab).len() > before {
            return (run, wait_held(ctl, lab, before));
        }
        let out = run.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not connected") && Instant::now() < deadline,
            "the run was refused: {err}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The id of the lab's run after its first `before`, once its held fault
/// took effect.
fn wait_held(ctl: &Ctl, lab: &str, before: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(r) = runs(ctl, lab).get(before) {
            let id = r["id"].as_str().unwrap().to_string();
            let shown = ctl.json(&["experiment", "show", &id]);
            let held = shown["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["what"].as_str().unwrap_or("").contains("held") && e["error"].is_null());
            if held {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "the held fault never took effect");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pings(ctl: &Ctl, lab: &str) -> bool {
    ctl.run(&[
        "lab",
        "exec",
        lab,
        "a",
        "--timeout",
        "10",
        "--",
        "ping -c 1 -W 1 10.0.0.2",
    ])
    .ok()
}

/// The init of container `domain`: the process with its LIBVIRT_LXC_NAME
/// whose parent does not have it.
fn container_init(domain: &str) -> u32 {
    let want = format!("LIBVIRT_LXC_NAME={domain}");
    let has = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .map(|env| env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()))
            .unwrap_or(false)
    };
    let parent = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| has(*pid) && !has(parent(*pid)))
        .unwrap_or_else(|| panic!("no init of {domain}"))
}

/// Whether node a reaches 10.0.0.2, seen from its network namespace with
/// no coordinator involved.
fn pings_without_coordinator(lab: &str) -> bool {
    let init = container_init(&format!("dclab.{lab}.a")).to_string();
    std::process::Command::new("nsenter")
        .args(["-t", &init, "-n", "ping", "-c", "1", "-W", "1", "10.0.0.2"])
        .output()
        .unwrap()
        .status
        .success()
}

/// Sends SIGTERM to `pid` and returns how long it took to be gone.
fn terminate(pid: i32) -> Duration {
    let started = Instant::now();
    // SAFETY: a signal to a daemon this test's cluster started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true);
        if zombie {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pid {pid} ignores SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// `ctl lab forward` to `port` of `node`, and a connection through it
/// held open.
fn open_tunnel(ctl: &Ctl, lab: &str, node: &str, port: u16) -> (Child, std::net::TcpStream) {
    let mut forward = ctl
        .command(&["lab", "forward", lab, node, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(forward.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let local = line
        .split_whitespace()
        .nth(1)
        .expect("the forward's address")
        .to_string();
    let mut conn = std::net::TcpStream::connect(&local).unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    (forward, conn)
}

fn coordinator_pid(c: &ClusterGuard) -> i32 {
    c.state().coordinator.as_ref().expect("a coordinator").pid
}

#[test]
fn sigterm_ends_the_coordinator_and_an_agent_within_5_s_with_faults_healed() {
    let _libvirtd = Libvirtd::ensure_containers();
    let mut c = cluster("sd", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-sdtest");
    let lab = format!("sd{}", std::process::id());
    let up = ctl.json(&["lab", "up", &lab_file(dir.path(), &lab)]);
    assert_eq!(up["ready"], true, "{up}");
    let _labs = Labs(&ctl, vec![lab.clone()]);
    assert!(pings(&ctl, &lab), "a does not reach b before the fault");

    let web = ctl.run(&["lab", "exec", &lab, "a", "--", "httpd -p 8080 -h /"]);
    assert!(web.ok(), "{}{}", web.stdout, web.stderr);
    let (mut forward, mut conn) = open_tunnel(&ctl, &lab, "a", 8080);
    let partition = held(
        dir.path(),
        "partition",
        "fault = \"partition\"\ngroups = [[\"a\"], [\"b\"]]",
        "600s",
    );
    let (run, id) = start_held(&ctl, &lab, &partition);
    assert!(!pings(&ctl, &lab), "the partition is not in effect");
    assert!(!pings_without_coordinator(&lab), "the partition is not in effect");

    let took = terminate(coordinator_pid(&c));
    println!("coordinator with 2 agents, a tunnel and a run ended {took:?} after SIGTERM");
    assert!(took < WITHIN, "the coordinator took {took:?} to end");
    // The run's caller hears of it, the tunnel ends, the fault is healed.
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    if let Err(e) = conn.read_to_end(&mut rest) {
        let timed_out = matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        );
        assert!(!timed_out, "the tunnel's connection stayed open: {e}");
    }
    let _ = forward.kill();
    let _ = forward.wait();
    // Healed through the agents before the coordinator ended, not by the
    // lease lapsing (10 s): checked at once, with no coordinator.
    assert!(
        pings_without_coordinator(&lab),
        "the partition outlived the coordinator's shutdown"
    );

    c.kill_coordinator(libc::SIGTERM).unwrap();
    c.start_coordinator().unwrap();
    let shown = ctl.json(&["experiment", "show", &id]);
    assert_eq!(shown["verdict"], "aborted", "{shown}");
    let error = shown["error"].as_str().unwrap_or("");
    assert!(error.contains("shut down"), "{error}");
    let log = std::fs::read_to_string(c.coordinator_log()).unwrap();
    assert!(!log.contains("panicked"), "{log}");

    // An agent holding a fault: it heals it and ends within 5 s. A link cut
    // is a's tap set down, and the flows stay when the agent goes, so with
    // the agent gone a reaching b proves the heal ran before it ended.
    let cut = held(dir.path(), "cut", "fault = \"link-cut\"\non = \"a\"", "600s");
    let (mut run, _) = start_held(&ctl, &lab, &cut);
    assert!(!pings_without_coordinator(&lab), "the link cut is not in effect");
    let agent = c
        .state()
        .hosts
        .iter()
        .find(|h| h.id == "h1")
        .and_then(|h| h.agent.clone());
    let took = terminate(agent.expect("h1's agent").pid);
    println!("agent holding a link cut ended {took:?} after SIGTERM");
    assert!(took < WITHIN, "the agent took {took:?} to end");
    assert!(
        pings_without_coordinator(&lab),
        "the agent ended with its fault in place"
    );
    c.kill_agent("h1", libc::SIGTERM).unwrap();
    c.start_agent("h1").unwrap();
    run.kill().unwrap();
    run.wait().unwrap();
}
