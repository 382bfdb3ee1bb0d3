//! Many clients at once on the same names: the coordinator answers every
//! call throughout, and what it keeps is what some serial order of the
//! accepted calls gives (issue 23, item 1: a reply that re-read a port a
//! concurrent delete had removed panicked and poisoned the topology lock).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dclab_integration::cluster;
use dclab_integration::concurrent::{Accepted, Call, Client, Mix, CLIENT_ERRORS};
use dclab_proto::v1;

const CLIENTS: usize = 8;
const RUN_FOR: Duration = Duration::from_secs(30);
const PORT_NAMES: [&str; 3] = ["p0", "p1", "p2"];
const LAB_NAMES: [&str; 2] = ["la", "lb"];

#[test]
fn concurrent_clients_on_the_same_names_leave_a_serial_history() {
    let mut c = cluster("cc", 1, false);
    let config = c.client_config().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let setup = rt.block_on(Client::connect(&config));
    rt.block_on(setup.setup("t", "n", "10.0.0.0/24"));
    let start_revision = rt.block_on(setup.status()).revision;

    let mix = Mix {
        ports: PORT_NAMES.to_vec(),
        labs: LAB_NAMES.to_vec(),
        tenant: "t",
        network: "n",
        host: "h1",
    };
    let (accepted, probe) = rt.block_on(async {
        let deadline = Instant::now() + RUN_FOR;
        let workers = (0..CLIENTS).map(|id| {
            let (config, mix) = (config.clone(), mix.clone());
            tokio::spawn(async move {
                let client = Client::connect(&config).await;
                client.run_mix(id as u32, &mix, deadline).await
            })
        });
        let workers: Vec<_> = workers.collect();
        let probe = tokio::spawn(Client::connect(&config).await.probe_until(deadline));
        let mut accepted = Vec::new();
        for w in workers {
            accepted.extend(w.await.expect("client task"));
        }
        (accepted, probe.await.expect("probe task"))
    });
    let refused_codes: BTreeMap<String, usize> =
        accepted
            .iter()
            .filter_map(|a| a.refused.clone())
            .fold(BTreeMap::new(), |mut m, code| {
                *m.entry(code).or_default() += 1;
                m
            });
    let ok: Vec<&Accepted> = accepted.iter().filter(|a| a.refused.is_none()).collect();
    let mut by_kind: BTreeMap<&str, (usize, Duration)> = BTreeMap::new();
    for a in &ok {
        let e = by_kind.entry(a.call.kind()).or_default();
        e.0 += 1;
        e.1 = e.1.max(a.ended - a.started);
    }
    println!("accepted (count, slowest) by kind: {by_kind:?}");
    println!(
        "{} calls from {CLIENTS} clients in {RUN_FOR:?}: {} accepted, refused {refused_codes:?}; \
         probe: {} status calls, slowest {:?}",
        accepted.len(),
        ok.len(),
        probe.calls,
        probe.slowest
    );
    assert!(
        probe.failures.is_empty(),
        "the coordinator stopped answering ({} failed probes), first: {:?}",
        probe.failures.len(),
        probe.failures.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        probe.calls > 50,
        "the probe got through only {} calls",
        probe.calls
    );
    for a in &accepted {
        if let Some(code) = &a.refused {
            assert!(
                CLIENT_ERRORS.iter().any(|c| format!("{c:?}") == *code),
                "{:?} refused with {code}: {}",
                a.call,
                a.message
            );
        }
    }
    let creates = ok
        .iter()
        .filter(|a| matches!(a.call, Call::CreatePort { .. }))
        .count();
    let deletes = ok
        .iter()
        .filter(|a| matches!(a.call, Call::DeletePort(_)))
        .count();
    assert!(
        creates > 20 && deletes > 20,
        "too little contention: {creates} creates, {deletes} deletes"
    );

    // Every accepted write is exactly one revision: none was lost, none
    // counted twice.
    let writes = ok.iter().filter(|a| a.call.writes()).count() as u64;
    let status = rt.block_on(setup.status());
    assert_eq!(
        status.revision - start_revision,
        writes,
        "revisions against accepted writes"
    );

    let ports = rt.block_on(setup.ports());
    let labs = rt.block_on(setup.labs());
    for name in PORT_NAMES {
        check_port_history(name, &ok, ports.get(name));
    }
    for name in LAB_NAMES {
        check_lab_history(name, &ok, labs.get(name));
    }

    // What was acknowledged is what the store holds: a restart reloads it.
    c.kill_coordinator(9).unwrap();
    c.start_coordinator().unwrap();
    let after = rt.block_on(Client::connect(&config));
    assert_eq!(rt.block_on(after.ports()), ports, "ports after a restart");
    assert_eq!(rt.block_on(after.labs()), labs, "labs after a restart");
    assert_eq!(rt.block_on(after.status()).revision, status.revision);
    let log = std::fs::read_to_string(c.coordinator_log()).unwrap();
    assert!(!log.contains("panicked"), "the coordinator panicked:\n{log}");
}

/// Creates and deletes of one port name must alternate in any serial
/// order (a create of a present name and a delete of an absent one are
/// refused), starting from absent; the port left is the one the last
/// create made, and nothing accepted began after that create ended.
fn check_port_history(name: &str, ok: &[&Accepted], present: Option<&v1::Port>) {
    let of_name: Vec<&&Accepted> = ok.iter().filter(|a| a.call.port_name() == Some(name)).collect();
    let creates = of_name
        .iter()
        .filter(|a| matches!(a.call, Call::CreatePort { .. }))
        .count();
    let deletes = of_name.len() - creates;
    let expected = creates.checked_sub(deletes);
    assert!(
        matches!(expected, Some(0) | Some(1)),
        "port {name}: {creates} accepted creates against {deletes} deletes"
    );
    assert_eq!(
        expected == Some(1),
        present.is_some(),
        "port {name}: present? {present:?}"
    );
    let Some(port) = present else { return };
    let made = of_name
        .iter()
        .find(|a| matches!(&a.call, Call::CreatePort { mac, .. } if *mac == port.mac))
        .unwrap_or_else(|| panic!("port {name} has MAC {} from no accepted create", port.mac));
    let later: Vec<_> = of_name.iter().filter(|a| a.started > made.ended).collect();
    assert!(
        later.is_empty(),
        "port {name}: {later:?} began after its create ended"
    );
}

/// A lab left must carry the tag of an accepted apply that nothing
/// accepted began after; a lab gone must have an accepted delete no
/// accepted apply began after.
fn check_lab_history(name: &str, ok: &[&Accepted], present: Option<&String>) {
    let of_name: Vec<&&Accepted> = ok.iter().filter(|a| a.call.lab_name() == Some(name)).collect();
    match present {
        Some(role) => {
            let made = of_name
                .iter()
                .find(|a| matches!(&a.call, Call::ApplyLab { tag, .. } if tag == role))
                .unwrap_or_else(|| panic!("lab {name} has role {role} from no accepted apply"));
            let later: Vec<_> = of_name.iter().filter(|a| a.started > made.ended).collect();
            assert!(
                later.is_empty(),
                "lab {name}: {later:?} began after its apply ended"
            );
        }
        None => {
            let last_delete = of_name
                .iter()
                .filter(|a| matches!(a.call, Call::DeleteLab(_)))
                .max_by_key(|a| a.ended);
            let applies = of_name.iter().filter(|a| matches!(a.call, Call::ApplyLab { .. }));
            if let Some(d) = last_delete {
                let later: Vec<_> = applies.filter(|a| a.started > d.ended).collect();
                assert!(
                    later.is_empty(),
                    "lab {name} gone, yet {later:?} began after its delete"
                );
            } else {
                assert_eq!(
                    applies.count(),
                    0,
                    "lab {name} applied and never deleted, yet gone"
                );
            }
        }
    }
}
