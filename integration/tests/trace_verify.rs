//! `ctl trace` and `ctl verify isolation` on a running deployment, read
//! from what OvS really has installed.

use dclab_integration::ctl::Ctl;
use dclab_integration::world::World;
use serde_json::Value;

fn ofport(w: &World, host: &str, instance: &str) -> String {
    let out = w
        .vsctl(host, &["get", "Interface", &format!("i-{instance}"), "ofport"])
        .unwrap();
    out.trim().to_string()
}

fn delivered(trace: &Value) -> Vec<String> {
    let mut ports: Vec<String> = trace["endings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["port"].as_str().map(str::to_string))
        .collect();
    ports.sort();
    ports
}

#[test]
fn trace_follows_packets_across_hosts_through_the_installed_flows() {
    let w = World::paper("tr");
    let ctl = Ctl::new(&w.cluster);
    let hosts = w.api.hosts();
    let ports = w.api.ports();
    let key = |name: &str| ports.iter().find(|p| p.name == name).unwrap().key.clone();
    let mac = |host: &str| hosts.iter().find(|h| h.id == host).unwrap().mac.to_lowercase();

    let t = ctl.json(&["trace", "--from", "vm1", "--to", "10.0.0.2"]);
    let hops: Vec<&str> = t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hops, ["h1", "h2"], "{t:#}");
    assert_eq!(delivered(&t), ["vm2"]);
    // What crossed the switch: host MACs and mapping keys only.
    let wire = &t["hops"][1]["packet"]["fields"];
    assert_eq!(wire["dl_src"], mac("h1"));
    assert_eq!(wire["dl_dst"], mac("h2"));
    assert_eq!(wire["nw_src"], key("vm1"));
    assert_eq!(wire["nw_dst"], key("vm2"));
    // Delivered with the tenant's own addresses back.
    let end = &t["endings"][0]["packet"]["fields"];
    assert_eq!(
        (end["nw_src"].as_str(), end["nw_dst"].as_str()),
        (Some("10.0.0.1"), Some("10.0.0.2"))
    );
    let tables: Vec<u64> = t["hops"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["table"].as_u64().unwrap())
        .collect();
    assert_eq!(tables, [0, 10, 11]);

    let bcast = ctl.json(&["trace", "--from", "vm1", "--to", "10.0.0.255"]);
    assert_eq!(
        delivered(&bcast),
        ["vm2", "vm3", "vm4"],
        "every other member of a, once: {bcast:#}"
    );

    for forged in [
        &["--vlan", "100"][..],
        &["--src-ip", "10.0.0.77"],
        &["--src-mac", "02:66:66:66:66:66"],
    ] {
        let args = [&["trace", "--from", "vm1", "--to", "10.0.0.2"][..], forged].concat();
        let t = ctl.json(&args);
        assert!(delivered(&t).is_empty(), "{forged:?} was delivered: {t:#}");
        let why = t["endings"][0]["why"].as_str().unwrap();
        assert!(
            why.starts_with("dropped in table 0 (classify)"),
            "{forged:?}: {why}"
        );
    }
    let arp = ctl.json(&["trace", "--from", "vm1", "--to", "10.0.0.5", "--proto", "arp"]);
    assert!(
        delivered(&arp).is_empty(),
        "vm1 got an answer for tenant b's address: {arp:#}"
    );
    let arp = ctl.json(&["trace", "--from", "vm1", "--to", "10.0.0.4", "--proto", "arp"]);
    assert_eq!(delivered(&arp), ["vm1"], "answered by OvS, back to the asker");

    let human = ctl.ok(&["trace", "--from", "vm1", "--to", "10.0.0.2"]);
    assert!(
        human.contains("delivered to vm2 (a/net 10.0.0.2) on h2"),
        "{human}"
    );
    let bad = ctl.run(&["trace", "--from", "nope", "--to", "10.0.0.2"]);
    assert!(
        !bad.ok() && bad.stderr.contains("no port \"nope\""),
        "{}",
        bad.stderr
    );
}

#[test]
fn verify_isolation_passes_and_names_a_leaking_flow_added_by_hand() {
    let w = World::paper("vf");
    let ctl = Ctl::new(&w.cluster);
    let clean = ctl.run(&["verify", "isolation"]);
    assert!(
        clean.ok() && clean.stdout.contains("no violations"),
        "{}{}",
        clean.stdout,
        clean.stderr
    );

    // vm2 (tenant a) and vm5 (tenant b) share h2: join them behind dclab's back.
    let (vm2, vm5) = (ofport(&w, "h2", "vm2"), ofport(&w, "h2", "vm5"));
    let leak = format!("table=0,priority=500,in_port={vm2},actions=output:{vm5}");
    w.ofctl("h2", &["add-flow", &leak]).unwrap();
    let run = ctl.run(&["-o", "json", "verify", "isolation"]);
    assert_eq!(
        run.code, 1,
        "a leak must fail the check: {}{}",
        run.stdout, run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let violations = report["violations"].as_array().unwrap();
    let cross = violations
        .iter()
        .find(|v| v["kind"] == "cross-network-delivery")
        .unwrap_or_else(|| panic!("no cross-network delivery in {report:#}"));
    assert!(cross["from"].as_str().unwrap().starts_with("vm2 "), "{cross:#}");
    assert!(cross["to"].as_str().unwrap().starts_with("vm5 "), "{cross:#}");
    let named = cross["flows"].as_array().unwrap().iter().any(|f| {
        f.as_str()
            .unwrap()
            .contains(&format!("in_port={vm2} actions=output:{vm5}"))
            && f.as_str().unwrap().contains("not installed by dclab")
    });
    assert!(named, "the responsible flow is not named: {cross:#}");
    // Tenant b's own frames do not pass that flow.
    let only_b = ctl.run(&["verify", "isolation", "--tenant", "b"]);
    assert!(only_b.ok(), "{}", only_b.stdout);

    w.ofctl(
        "h2",
        &[
            "--strict",
            "del-flows",
            &format!("table=0,priority=500,in_port={vm2}"),
        ],
    )
    .unwrap();
    let again = ctl.run(&["verify", "isolation"]);
    assert!(again.ok(), "{}", again.stdout);
    let bad = ctl.run(&["verify", "isolation", "--tenant", "nobody"]);
    assert!(
        !bad.ok() && bad.stderr.contains("tenant \"nobody\" has no networks"),
        "{}",
        bad.stderr
    );
}
