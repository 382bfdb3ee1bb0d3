//! The dataplane on real OvS: anti-spoofing, ARP answered at the edge,
//! broadcast as per-host unicast, TCP through the rewriting.

use dclab_integration::capture::{src_mac, Capture};
use dclab_integration::world::{ping_counts, World};

fn inbound_icmp(w: &World, instances: &[&str]) -> Vec<(String, Capture)> {
    instances
        .iter()
        .map(|name| {
            let cap = Capture::start(w, &w.ns(name), "eth0", &["-Q", "in", "icmp"]);
            (name.to_string(), cap)
        })
        .collect()
}

#[test]
fn forged_source_ip_or_mac_reaches_nobody() {
    let w = World::paper("sp");
    // Control: the real addresses work, so failures below are the forgery's.
    assert!(w.run("vm1", &["ping", "-c", "1", "-W", "2", "10.0.0.2"]).0);
    assert!(w.run("vm5", &["ping", "-c", "1", "-W", "2", "10.0.0.6"]).0);

    let wire = Capture::start(&w, &w.switch_netns(), "phys", &["icmp"]);
    let caps = inbound_icmp(&w, &["vm2", "vm3", "vm4", "vm5", "vm6"]);
    // vm1 sends from an address it does not own, to a remote and a local peer.
    w.run("vm1", &["ip", "addr", "add", "10.0.0.77/24", "dev", "eth0"]);
    for target in ["10.0.0.2", "10.0.0.4"] {
        let (ok, out) = w.run(
            "vm1",
            &[
                "ping",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "1",
                "-I",
                "10.0.0.77",
                target,
            ],
        );
        assert!(!ok, "forged-IP ping to {target} got answers: {out}");
    }
    // vm5 sends with a MAC it does not own; neighbours are pinned so IP
    // packets really leave (its forged ARP requests are dropped too).
    let vm6_mac = w.mac("vm6");
    w.run(
        "vm5",
        &[
            "ip",
            "neigh",
            "replace",
            "10.0.0.6",
            "lladdr",
            &vm6_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
    w.run(
        "vm5",
        &["ip", "link", "set", "eth0", "address", "02:66:66:66:66:66"],
    );
    let (ok, out) = w.run("vm5", &["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.0.0.6"]);
    assert!(!ok, "forged-MAC ping got answers: {out}");

    let on_wire = wire.stop();
    assert!(
        on_wire.is_empty(),
        "forged traffic crossed the physical switch: {on_wire:#?}"
    );
    for (name, cap) in caps {
        let lines = cap.stop();
        let forged: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("10.0.0.77") || src_mac(l) == Some("02:66:66:66:66:66"))
            .collect();
        assert!(forged.is_empty(), "{name} received forged packets: {forged:#?}");
    }
}

#[test]
fn arp_is_answered_by_ovs_and_never_crosses_the_wire() {
    let w = World::paper("ar");
    let wire = Capture::start(&w, &w.switch_netns(), "phys", &["arp"]);
    let targets = [("vm2", "10.0.0.2"), ("vm4", "10.0.0.4")];
    let target_caps: Vec<Capture> = targets
        .iter()
        .map(|(name, _)| Capture::start(&w, &w.ns(name), "eth0", &["-Q", "in", "arp"]))
        .collect();
    let replies = Capture::start(&w, &w.ns("vm1"), "eth0", &["-Q", "in", "arp"]);
    w.run("vm1", &["ip", "neigh", "flush", "all"]);
    for (name, ip) in targets {
        assert!(
            w.run("vm1", &["ping", "-c", "1", "-W", "2", ip]).0,
            "vm1 cannot reach {name}"
        );
        let (_, neigh) = w.run("vm1", &["ip", "neigh", "show", ip]);
        assert!(
            neigh.contains(&w.mac(name)),
            "vm1 resolved {ip} to the wrong MAC: {neigh}"
        );
    }
    let replies = replies.stop();
    for (name, ip) in targets {
        let reply = format!("Reply {ip} is-at {}", w.mac(name));
        assert!(
            replies.iter().any(|l| l.contains(&reply)),
            "no ARP reply for {ip}: {replies:#?}"
        );
    }
    for ((name, _), cap) in targets.iter().zip(target_caps) {
        // It may ask for vm1's MAC itself (answered by its own host's OvS),
        // but vm1's requests must never reach it.
        let requests: Vec<String> = cap.stop().into_iter().filter(|l| l.contains("Request")).collect();
        assert!(
            requests.is_empty(),
            "{name} itself saw ARP requests: {requests:#?}"
        );
    }
    let seen = wire.stop();
    assert!(seen.is_empty(), "ARP crossed the physical switch: {seen:#?}");
    // The answers came from h1's ARP table (table 20).
    let flows = w.ofctl("h1", &["dump-flows", "table=20"]).unwrap();
    let answered = flows
        .lines()
        .filter(|l| l.contains("arp_tpa=10.0.0.2") || l.contains("arp_tpa=10.0.0.4"))
        .all(|l| !l.contains("n_packets=0,"));
    assert!(
        answered,
        "h1's ARP responder flows did not count the requests:\n{flows}"
    );
}

#[test]
fn broadcast_reaches_exactly_the_same_network_on_every_host() {
    let w = World::paper("bc");
    for (sender, bcast_members) in [("vm1", vec!["vm2", "vm3", "vm4"]), ("vm5", vec!["vm6"])] {
        let others = w.others(sender);
        let caps = inbound_icmp(&w, &others);
        w.run(
            sender,
            &["ping", "-b", "-c", "2", "-i", "0.3", "-W", "1", "10.0.0.255"],
        );
        let sender_mac = w.mac(sender);
        let mut reached: Vec<String> = caps
            .into_iter()
            .filter_map(|(name, cap)| {
                let lines = cap.stop();
                let got = lines
                    .iter()
                    .any(|l| src_mac(l) == Some(&sender_mac) && l.contains("10.0.0.255"));
                got.then_some(name)
            })
            .collect();
        reached.sort();
        assert_eq!(reached, bcast_members, "broadcast from {sender}");
    }
}

#[test]
fn tcp_crosses_hosts_through_the_rewriting_with_valid_checksums() {
    let w = World::paper("tc");
    let wire = Capture::start(&w, &w.switch_netns(), "phys", &["-vv", "-c", "200", "tcp"]);
    let rx = Capture::start(&w, &w.ns("vm2"), "eth0", &["-vv", "-c", "200", "-Q", "in", "tcp"]);
    let mut server = w.spawn_in(&w.ns("vm2"), &["iperf3", "-s", "-1"]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (ok, out) = w.run("vm1", &["iperf3", "-c", "10.0.0.2", "-t", "2", "-J"]);
    server.wait().unwrap();
    assert!(ok, "iperf3 failed: {out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("iperf3 json");
    let bytes = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let mbps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e6;
    println!("iperf3 vm1 (h1) -> vm2 (h2): {bytes} bytes, {mbps:.0} Mbit/s");
    assert!(bytes > 1_000_000, "too little data crossed: {bytes} bytes");
    for (what, lines) in [("wire", wire.stop()), ("vm2", rx.stop())] {
        let tcp: Vec<&String> = lines.iter().filter(|l| l.contains("cksum")).collect();
        assert!(
            tcp.iter().any(|l| l.contains("(correct)")),
            "no verified TCP checksum on {what}"
        );
        let bad: Vec<&&String> = tcp.iter().filter(|l| l.contains("incorrect")).collect();
        assert!(
            bad.is_empty(),
            "bad checksums on {what}: {:#?}",
            &bad[..bad.len().min(3)]
        );
    }
}

#[test]
fn ping_counts_parse() {
    let out = "--- 10.0.0.2 ping statistics ---\n500 packets transmitted, 498 received, 0.4% packet loss";
    assert_eq!(ping_counts(out), (500, 498));
}

/// Router ports (paper 3.7.5): traffic between a VM and an outside address
/// through a router on another host is rewritten on the VM side only.
#[test]
fn router_traffic_is_rewritten_on_the_vm_side_only() {
    use dclab_integration::capture::dst_mac;
    use dclab_integration::local::InstanceKind;
    use dclab_integration::InstanceSpec;

    let mut w = World::paper("rt");
    let mut router = InstanceSpec::vm("gw", "h2", "a", "net", "10.0.0.254/24");
    router.kind = InstanceKind::Router;
    w.add_instance(&router).unwrap();
    let mut vm = InstanceSpec::vm("vm9", "h1", "a", "net", "10.0.0.9/24");
    vm.gateway = Some("10.0.0.254".into());
    w.add_instance(&vm).unwrap();
    w.api.wait_converged(std::time::Duration::from_secs(20));
    // The outside world: an address behind the router, off tenant a's network.
    for argv in [
        &[
            "ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1",
        ][..],
        &["ip", "addr", "add", "192.168.50.1/24", "dev", "out0"],
        &["ip", "link", "set", "out0", "up"],
        &["ip", "link", "set", "out1", "up"],
        &["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ] {
        assert!(w.run("gw", argv).0, "router setup {argv:?}");
    }
    let wire = Capture::start(&w, &w.switch_netns(), "phys", &["icmp"]);
    let (ok, out) = w.run(
        "vm9",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", "192.168.50.1"],
    );
    assert!(ok, "vm9 cannot reach the outside through the router: {out}");
    let lines = wire.stop();
    let router_mac = w.mac("gw");
    let request = lines
        .iter()
        .find(|l| l.contains("echo request"))
        .expect("request on the wire");
    assert_eq!(
        dst_mac(request),
        Some(router_mac.as_str()),
        "router side rewritten: {request}"
    );
    assert!(
        request.contains("> 192.168.50.1:"),
        "outside address rewritten: {request}"
    );
    assert!(
        !request.contains("10.0.0.9"),
        "VM address leaked to the wire: {request}"
    );
    let reply = lines
        .iter()
        .find(|l| l.contains("echo reply"))
        .expect("reply on the wire");
    assert!(
        reply.contains(&format!("{router_mac} >")),
        "router MAC rewritten on the reply: {reply}"
    );
    assert!(
        reply.contains("192.168.50.1 >") && !reply.contains("10.0.0.9"),
        "{reply}"
    );
}

/// Runs `integration/scripts/send_frames.py` in `instance`: raw frames with
/// the instance's own MAC and IP, to `dst` (an instance).
fn send_frames(w: &World, instance: &str, kind: &str, dst: &str, dst_ip: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/send_frames.py");
    let (ip, mac) = (w.cluster.instance(instance).unwrap().ip.clone(), w.mac(instance));
    let src_ip = ip.split('/').next().unwrap().to_string();
    let (ok, out) = w.run(
        instance,
        &[
            "/usr/bin/python3",
            script,
            "eth0",
            kind,
            &mac,
            &src_ip,
            &w.mac(dst),
            dst_ip,
        ],
    );
    assert!(
        ok,
        "send_frames.py {kind} failed (is python3-scapy installed? scripts/install-deps.sh): {out}"
    );
}

/// Lines that show a VLAN header or one of the tagged probes (ICMP ids
/// 4343-4346, or the tagged ARP request for `dst_ip`).
fn tagged_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            l.contains("802.1Q")
                || l.contains("802.1ad")
                || l.contains("vlan ")
                || (4343..=4346).any(|id| l.contains(&format!("id {id},")))
        })
        .cloned()
        .collect()
}

/// A tenant's VLAN-tagged frames (802.1Q, priority-tagged, 802.1ad over
/// 802.1Q, two 802.1Q headers, tagged ARP) never reach the physical switch
/// nor any instance; the same frame untagged does (the control).
#[test]
fn vlan_tagged_frames_from_a_tenant_are_dropped() {
    let w = World::paper("vl");
    let wire = Capture::start(&w, &w.switch_netns(), "phys", &[]);
    let everyone = ["vm1", "vm2", "vm3", "vm4", "vm5", "vm6"];
    let caps: Vec<(String, Capture)> = everyone
        .iter()
        .map(|name| {
            (
                name.to_string(),
                Capture::start(&w, &w.ns(name), "eth0", &["-Q", "in"]),
            )
        })
        .collect();
    // vm1 (h1) to vm2 (h2) across hosts and to vm4 on its own host.
    for (dst, ip) in [("vm2", "10.0.0.2"), ("vm4", "10.0.0.4")] {
        send_frames(&w, "vm1", "tagged", dst, ip);
        send_frames(&w, "vm1", "plain", dst, ip);
    }
    let on_wire = wire.stop();
    let leaked = tagged_lines(&on_wire);
    assert!(
        leaked.is_empty(),
        "tagged frames crossed the physical switch: {leaked:#?}"
    );
    assert!(
        on_wire.iter().any(|l| l.contains("id 4242,")),
        "the untagged control never crossed the switch, so the capture proves nothing: {on_wire:#?}"
    );
    for (name, cap) in caps {
        let lines = cap.stop();
        let leaked = tagged_lines(&lines);
        assert!(leaked.is_empty(), "{name} received tagged frames: {leaked:#?}");
        let control = lines.iter().any(|l| l.contains("echo request, id 4242,"));
        assert_eq!(
            control,
            name == "vm2" || name == "vm4",
            "{name}: the untagged control reached exactly vm2 and vm4: {lines:#?}"
        );
    }
}

/// `ip -json link` flags of `dev` in `netns`.
fn link_flags(w: &dclab_integration::ClusterGuard, netns: &str, dev: &str) -> Vec<String> {
    let out = w
        .exec(netns, &["ip", "-json", "link", "show", "dev", dev])
        .unwrap();
    dclab_agent::joined_down::parse_flags(&String::from_utf8_lossy(&out.stdout)).unwrap_or_default()
}

/// Userspace OvS turns PROMISC on from flags it read before an IFF_UP set
/// meanwhile, and so clears it: one of Nova's taps stayed down that way in
/// the OpenStack lab. The agent brings up a device that joins its bridge
/// down and promiscuous, once: one set down afterwards stays down.
#[test]
fn a_device_that_joins_the_bridge_down_is_brought_up_once() {
    let c = dclab_integration::cluster("jd", 1, false);
    let ns = c.host_netns("h1");
    /// The veth pair and its port, removed even when an assertion fails.
    struct Veth<'a>(&'a dclab_integration::ClusterGuard, String);
    impl Drop for Veth<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .vsctl("h1", &["--if-exists", "del-port", "br-int", "jdtap0"]);
            let _ = self.0.exec(&self.1, &["ip", "link", "del", "dev", "jdtap0"]);
        }
    }
    let out = c
        .exec(
            &ns,
            &[
                "ip", "link", "add", "jdtap0", "type", "veth", "peer", "name", "jdtap1",
            ],
        )
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _veth = Veth(&c, ns.clone());
    assert!(!link_flags(&c, &ns, "jdtap0").contains(&"UP".to_string()));
    c.vsctl("h1", &["add-port", "br-int", "jdtap0"]).unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut flags = link_flags(&c, &ns, "jdtap0");
    while !flags.contains(&"UP".to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent left the joined device down: {flags:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        flags = link_flags(&c, &ns, "jdtap0");
    }
    assert!(flags.contains(&"PROMISC".to_string()), "{flags:?}");

    let out = c
        .exec(&ns, &["ip", "link", "set", "dev", "jdtap0", "down"])
        .unwrap();
    assert!(out.status.success());
    // The row's link state changes, so the agent looks again: and leaves it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let flags = link_flags(&c, &ns, "jdtap0");
    assert!(
        !flags.contains(&"UP".to_string()),
        "set up a second time: {flags:?}"
    );
}
