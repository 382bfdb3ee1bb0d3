use super::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/experiments");

fn error(text: &str) -> String {
    parse("x.toml", text).unwrap_err().to_string()
}

const HEAD: &str =
    "[experiment]\nname = \"x\"\n[[target]]\nname = \"v\"\n[[target]]\nname = \"p\"\nnot = [\"v\"]\n";

#[test]
fn every_shipped_experiment_parses() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(EXAMPLES).unwrap() {
        let path = entry.unwrap().path();
        let spec = load(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            format!("{}.toml", spec.name),
            path.file_name().unwrap().to_string_lossy()
        );
        names.push(spec.name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "compute-unreachable",
            "controller-crash",
            "controller-crash-power-off",
            "freeze",
            "network-delay",
            "node-crash",
            "partition",
            "token-loss"
        ]
    );
    let crash = load(&format!("{EXAMPLES}/node-crash.toml")).unwrap();
    assert_eq!(crash.targets[1].exclude, ["victim"]);
    assert_eq!(crash.probes[0].interval_ms, 100);
    assert!(
        matches!(crash.stages[1].steps[0], Step::Fault { ref id, fault: Fault::PowerOff, .. } if id == "crash")
    );
    assert_eq!(crash.stages[2].checks[0].expect, Expect::Within(60_000));
}

#[test]
fn errors_name_the_line_and_the_field() {
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.step]]\nfault = \"explode\"\non = \"v\"\n"
    ));
    assert!(e.starts_with("x.toml:11: fault \"explode\" is unknown"), "{e}");
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.step]]\nfault = \"freeze\"\non = \"w\"\n"
    ));
    assert!(
        e.starts_with("x.toml:12: target \"w\" is not defined (targets: p, v)"),
        "{e}"
    );
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.step]]\nwait = \"soon\"\n"
    ));
    assert!(e.starts_with("x.toml:11: wait \"soon\" is not a duration"), "{e}");
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.step]]\nwait = \"1s\"\nexec = \"true\"\non = \"v\"\n"
    ));
    assert!(
        e.contains("give exactly one of exec, wait, fault, heal or prompt"),
        "{e}"
    );
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.step]]\nheal = \"nothing\"\n"
    ));
    assert!(
        e.starts_with("x.toml:11: heal \"nothing\": no earlier fault"),
        "{e}"
    );
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.check]]\nname = \"c\"\nreach = {{ from = \"p\", to = \"v\" }}\nexpect = \"eventually\"\n"
    ));
    assert!(e.starts_with("x.toml:13: expect \"eventually\""), "{e}");
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.check]]\nname = \"c\"\ncommand = {{ on = \"v\", run = \"x\", output = \"(\" }}\n"
    ));
    assert!(
        e.starts_with("x.toml:12: output \"(\" is not a regular expression"),
        "{e}"
    );
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.step]]\nfault = \"netem\"\non = \"v\"\nloss = 150.0\n"
    ));
    assert!(e.starts_with("x.toml:13: loss 150 is not a percentage"), "{e}");
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage.step]]\nfault = \"partition\"\ngroups = [[\"v\"]]\n"
    ));
    assert!(e.contains("groups must be two non-empty lists"), "{e}");
    let e = error(
        "[experiment]\nname = \"x\"\n[[target]]\nname = \"a\"\npick = \"some\"\n[[stage]]\nname = \"s\"\n",
    );
    assert!(e.starts_with("x.toml:5: pick \"some\""), "{e}");
    let e = error("[experiment]\nname = \"x\"\nmood = \"grim\"\n");
    assert!(e.starts_with("x.toml:3: unknown field `mood`"), "{e}");
    let e = error("[experiment]\nname = \"x\"\n");
    assert!(e.contains("has no [[stage]]"), "{e}");
    let e = error(&format!(
        "{HEAD}[[stage]]\nname = \"s\"\n[[stage]]\nname = \"s\"\n"
    ));
    assert!(e.starts_with("x.toml:11: stage s is defined twice"), "{e}");
}

#[test]
fn a_port_block_is_parsed_into_its_proto_message_and_a_bad_port_or_protocol_is_refused() {
    let step = |lines: &str| {
        format!("{HEAD}[[stage]]\nname = \"s\"\n[[stage.step]]\nfault = \"port-block\"\non = \"v\"\n{lines}")
    };
    let spec = parse("x.toml", &step("port = 3306\n")).unwrap();
    let Step::Fault {
        ref fault, ref on, ..
    } = spec.stages[0].steps[0]
    else {
        panic!("{spec:?}")
    };
    assert_eq!(on.as_deref(), Some("v"));
    let want = dclab_proto::v1::PortBlockFault {
        protocol: "tcp".into(),
        port: 3306,
    };
    assert_eq!(fault, &Fault::PortBlock(want.clone()));
    assert_eq!(
        fault.forwarded(),
        Some(dclab_proto::v1::fault::Kind::PortBlock(want))
    );
    assert_eq!(fault.target(), FaultTarget::Nodes);
    // Stored with the run's record and read back.
    let json = serde_json::to_string(fault).unwrap();
    assert_eq!(json, r#"{"port-block":{"protocol":"tcp","port":3306}}"#);
    assert_eq!(&serde_json::from_str::<Fault>(&json).unwrap(), fault);
    let udp = parse("x.toml", &step("protocol = \"udp\"\nport = 53\n")).unwrap();
    assert!(
        matches!(&udp.stages[0].steps[0], Step::Fault { fault: Fault::PortBlock(p), .. } if p.protocol == "udp" && p.port == 53)
    );

    let e = error(&step("protocol = \"sctp\"\nport = 80\n"));
    assert!(
        e.starts_with("x.toml:13: protocol \"sctp\" is not \"tcp\" or \"udp\""),
        "{e}"
    );
    let e = error(&step("port = 0\n"));
    assert!(e.starts_with("x.toml:13: port must be 1 to 65535"), "{e}");
    let e = error(&step("port = 70000\n"));
    assert!(e.starts_with("x.toml:13:") && e.contains("70000"), "{e}");
    let e = error(&step(""));
    assert!(e.contains("fault port-block needs port = 1 to 65535"), "{e}");
}
