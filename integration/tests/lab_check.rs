//! `ctl lab check FILE` and the coordinator's ApplyLab give the same
//! verdict on the same lab: both use `dclab_spec::validate`. A corpus of
//! good and bad specs from the hostile generator is written as lab files
//! and sent both ways.

use dclab_ctl::client::Operator;
use dclab_integration::api::Api;
use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::hostile::{lab_spec, plausible_lab_spec};
use dclab_proto::v1;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use toml::{Table, Value};

const CASES: usize = 150;

/// The spec as a lab file: what `ctl lab check` reads back into the same spec.
fn lab_file(spec: &v1::LabSpec) -> String {
    let s = |v: &str| Value::String(v.to_string());
    let mut lab = Table::new();
    lab.insert("name".into(), s(&spec.name));
    lab.insert(
        "ssh_keys".into(),
        Value::Array(spec.ssh_keys.iter().map(|k| s(k)).collect()),
    );
    let networks = spec
        .networks
        .iter()
        .map(|n| {
            let mut t = Table::new();
            t.insert("name".into(), s(&n.name));
            t.insert("cidr".into(), s(&n.cidr));
            Value::Table(t)
        })
        .collect();
    let nodes = spec
        .nodes
        .iter()
        .map(|n| {
            let mut t = Table::new();
            t.insert("name".into(), s(&n.name));
            if !n.role.is_empty() {
                t.insert("role".into(), s(&n.role));
            }
            t.insert("vcpus".into(), Value::Integer(i64::from(n.vcpus)));
            t.insert("memory".into(), s(&format!("{}MiB", n.memory_mib)));
            if !n.image.is_empty() {
                t.insert("image".into(), s(&n.image));
            }
            let disks = n.disks_mib.iter().map(|d| s(&format!("{d}MiB"))).collect();
            t.insert("disks".into(), Value::Array(disks));
            if !n.host.is_empty() {
                t.insert("host".into(), s(&n.host));
            }
            match n.kind {
                0 => {}
                1 => drop(t.insert("kind".into(), s("vm"))),
                2 => drop(t.insert("kind".into(), s("container"))),
                other => drop(t.insert("kind".into(), s(&format!("kind{other}")))),
            }
            let nics = n
                .interfaces
                .iter()
                .map(|i| {
                    let mut nic = Table::new();
                    nic.insert("network".into(), s(&i.network));
                    if !i.ip.is_empty() {
                        nic.insert("ip".into(), s(&i.ip));
                    }
                    Value::Table(nic)
                })
                .collect();
            t.insert("interfaces".into(), Value::Array(nics));
            Value::Table(t)
        })
        .collect();
    let mut doc = Table::new();
    doc.insert("lab".into(), Value::Table(lab));
    doc.insert("network".into(), Value::Array(networks));
    doc.insert("node".into(), Value::Array(nodes));
    toml::to_string(&doc).expect("a table serializes")
}

#[test]
fn ctl_lab_check_and_apply_lab_agree_on_every_spec() {
    let c = cluster("lc", 1, false);
    let api = Api::connect(&c.client_config().unwrap());
    let ctl = Ctl::new(&c);
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new(Config::default());
    let (hostile, plausible) = (lab_spec(), plausible_lab_spec());
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..CASES {
        let spec = if case % 3 == 0 {
            hostile.new_tree(&mut runner).unwrap().current()
        } else {
            plausible.new_tree(&mut runner).unwrap().current()
        };
        let path = dir.path().join(format!("lab{case}.toml"));
        std::fs::write(&path, lab_file(&spec)).unwrap();
        let checked = ctl.run(&["lab", "check", path.to_str().unwrap()]);
        let applied =
            api.call(
                |mut c: Operator| async move { c.apply_lab(v1::ApplyLabRequest { spec: Some(spec) }).await },
            );
        let refused = matches!(&applied, Err(s) if s.code() == tonic::Code::InvalidArgument);
        assert_eq!(
            checked.ok(),
            !refused,
            "case {case}: ctl lab check {} ({}), ApplyLab {:?}\n{}",
            if checked.ok() { "accepts" } else { "refuses" },
            checked.stderr.trim(),
            applied.as_ref().map(|l| &l.name),
            std::fs::read_to_string(&path)
                .unwrap()
                .chars()
                .take(2000)
                .collect::<String>()
        );
        if refused {
            invalid += 1;
        } else {
            valid += 1;
        }
        if let Ok(lab) = applied {
            let name = lab.name.clone();
            api.call(|mut c: Operator| async move { c.delete_lab(v1::DeleteLabRequest { name }).await })
                .unwrap();
        }
    }
    println!("{valid} specs passed both checks, {invalid} were refused by both");
    assert!(
        valid > 5 && invalid > 5,
        "the corpus needs both kinds: {valid} valid, {invalid} invalid"
    );
}
