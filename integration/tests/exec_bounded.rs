//! Exec output end to end, on real libvirtd (LXC and qemu), a real
//! coordinator and agent, and a lab of a container node and a micro-VM:
//! an endless-output command costs the agent (and, streamed, the
//! coordinator) a bounded amount of memory and its result says how much
//! was cut; `ctl lab exec` shows output as it comes, and a `ctl lab exec`
//! that goes away ends its command.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dclab_integration::api::Api;
use dclab_integration::ctl::Ctl;
use dclab_integration::labs::Labs;
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use dclab_integration::rss::RssPeak;
use dclab_integration::{cluster, ClusterGuard};
use dclab_proto::v1;

/// What an endless command may cost a daemon (the issue: +4,093 MiB in 20 s).
const GROWTH_LIMIT_MIB: f64 = 64.0;
const KEPT: u64 = 64 * 1024;
const NODES: [(&str, &str); 2] = [("c", "container"), ("v", "micro-VM")];

/// A lab of container `c` and micro-VM `v` on h1, up and answering.
fn lab_up(c: &ClusterGuard, ctl: &Ctl, dir: &Path, name: &str) {
    let mut text =
        format!("[lab]\nname = \"{name}\"\nimage = \"micro\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n");
    for (node, kind, ip) in [("c", "container", "10.0.0.1"), ("v", "vm", "10.0.0.2")] {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{node}\"\nkind = \"{kind}\"\nmemory = \"128MiB\"\nhost = \"h1\"\n\
             interfaces = [{{ network = \"lan\", ip = \"{ip}\" }}]\n"
        ));
    }
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let up = ctl.json(&["lab", "up", file.to_str().unwrap()]);
    assert_eq!(up["ready"], true, "{up}");
    // Running is not booted: the micro-VM answers on its console once up.
    let booted = ctl.run(&["lab", "exec", name, "v", "--timeout", "60", "--", "true"]);
    assert!(booted.ok(), "the micro-VM did not come up: {}", booted.stderr);
    assert!(c.state().hosts[0].agent.is_some());
}

fn agent_pid(c: &ClusterGuard) -> i32 {
    c.state().hosts[0].agent.as_ref().expect("h1 has an agent").pid
}

fn coordinator_pid(c: &ClusterGuard) -> i32 {
    c.state().coordinator.as_ref().expect("a coordinator").pid
}

fn exec(
    api: &Api,
    lab: &str,
    node: &str,
    command: &str,
    timeout: Duration,
) -> Result<v1::ExecNodeResponse, tonic::Status> {
    let req = v1::ExecNodeRequest {
        lab: lab.into(),
        node: node.into(),
        command: command.into(),
        timeout_ms: timeout.as_millis() as u32,
    };
    api.call(|mut c| async move { c.exec_node(req).await })
}

/// A ctl run killed (by its own pid) when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn endless_output_keeps_agent_and_coordinator_small_and_the_result_says_what_was_cut() {
    let _libvirtd = Libvirtd::ensure_containers();
    let c = cluster("eb", 1, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-execbounded");
    let lab = format!("eb{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    lab_up(&c, &ctl, dir.path(), &lab);
    let api = Api::connect(&c.client_config().expect("dclab mode"));
    let (agent, coordinator) = (agent_pid(&c), coordinator_pid(&c));

    for (node, kind) in NODES {
        let rss = RssPeak::start(agent);
        let started = Instant::now();
        let endless = exec(&api, &lab, node, "cat /dev/zero", Duration::from_secs(10));
        let growth = rss.growth_mib();
        let error = endless.expect_err("cat /dev/zero ends only by its timeout");
        println!(
            "{kind}: cat /dev/zero for {:?}: agent +{growth:.1} MiB; {}",
            started.elapsed(),
            error.message()
        );
        assert!(
            error.message().contains("did not finish within") && error.message().contains("of it discarded"),
            "{kind}: {}",
            error.message()
        );
        assert!(
            growth < GROWTH_LIMIT_MIB,
            "{kind}: the agent grew by {growth:.1} MiB"
        );
    }

    // A long output that ends: its first and last parts, and how much of
    // the middle was cut, in the text and in the field.
    for (node, size) in [("c", 50_000_000u64), ("v", 150_000)] {
        let command = format!("head -c {size} /dev/zero | tr '\\0' x; echo; echo end");
        let reply = exec(&api, &lab, node, &command, Duration::from_secs(60)).expect("it ends");
        let written = size + 5;
        assert_eq!(reply.exit_code, 0);
        assert_eq!(reply.output_dropped_bytes, written - KEPT, "{node}");
        assert!(reply.output.starts_with("xxxx"), "{node}");
        assert!(
            reply.output.ends_with("xxx\nend\n"),
            "{node}: {:?}",
            &reply.output[reply.output.len() - 20..]
        );
        assert!(reply.output.contains("\n[output clipped: "), "{node}");
        assert!(
            reply.output.len() < KEPT as usize + 100,
            "{node}: {}",
            reply.output.len()
        );
    }

    // Streamed to a ctl that reads it all: nothing on the way keeps it.
    let (agent_rss, coordinator_rss) = (RssPeak::start(agent), RssPeak::start(coordinator));
    let streamed = ctl
        .command(&["lab", "exec", &lab, "c", "--timeout", "10", "--", "cat /dev/zero"])
        .stdout(Stdio::null())
        .output()
        .expect("ctl runs");
    let (agent_growth, coordinator_growth) = (agent_rss.growth_mib(), coordinator_rss.growth_mib());
    let stderr = String::from_utf8_lossy(&streamed.stderr);
    println!("streamed cat /dev/zero: agent +{agent_growth:.1} MiB, coordinator +{coordinator_growth:.1} MiB; {stderr}");
    assert!(
        !streamed.status.success() && stderr.contains("did not finish within 10s"),
        "{stderr}"
    );
    assert!(
        agent_growth < GROWTH_LIMIT_MIB,
        "the agent grew by {agent_growth:.1} MiB"
    );
    assert!(
        coordinator_growth < GROWTH_LIMIT_MIB,
        "the coordinator grew by {coordinator_growth:.1} MiB"
    );
}

#[test]
fn lab_exec_streams_output_as_it_comes_and_a_reader_that_goes_ends_the_command() {
    let _libvirtd = Libvirtd::ensure_containers();
    let c = cluster("es", 1, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-execstream");
    let lab = format!("es{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    lab_up(&c, &ctl, dir.path(), &lab);

    for (node, kind) in NODES {
        let child = ctl
            .command(&["lab", "exec", &lab, node, "--", "echo a; sleep 5; echo b"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ctl runs");
        let mut run = Running(child);
        let mut lines = BufReader::new(run.0.stdout.take().unwrap()).lines();
        let first = lines.next().expect("a first line").unwrap();
        let first_at = Instant::now();
        let second = lines.next().expect("a second line").unwrap();
        let apart = first_at.elapsed();
        assert_eq!((first.as_str(), second.as_str()), ("a", "b"), "{kind}");
        assert!(lines.next().is_none(), "{kind}: more than two lines");
        // Only streamed output can arrive 5 s before the command ends.
        assert!(
            apart > Duration::from_secs(3),
            "{kind}: a came {apart:?} before b"
        );
        assert!(run.0.wait().unwrap().success(), "{kind}");
        println!("{kind}: the first line came {apart:?} before the second");
    }

    // A ctl that goes away ends its command, in the node.
    for (node, kind) in NODES {
        let command = "echo started; exec sleep 1234";
        let child = ctl
            .command(&["lab", "exec", &lab, node, "--timeout", "120", "--", command])
            .stdout(Stdio::piped())
            .spawn()
            .expect("ctl runs");
        let mut run = Running(child);
        let mut lines = BufReader::new(run.0.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().expect("started").unwrap(), "started", "{kind}");
        // A console takes one command at a time: only the container can
        // be asked meanwhile.
        if node == "c" {
            let running = ctl.run(&["lab", "exec", &lab, node, "--", "ps | grep -c '[s]leep 1234'"]);
            assert_eq!(running.stdout.trim(), "1", "{kind}: {}", running.stderr);
        }
        let gone_at = Instant::now();
        drop(run);
        let deadline = gone_at + Duration::from_secs(20);
        loop {
            let left = ctl.run(&["lab", "exec", &lab, node, "--", "ps | grep -c '[s]leep 1234'"]);
            if left.stdout.trim() == "0" {
                println!("{kind}: the command ended {:?} after its ctl", gone_at.elapsed());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{kind}: the command still runs 20 s after its ctl went: {}{}",
                left.stdout,
                left.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
