use dclab_proto::v1;
use serde_json::json;

use super::files::{self, Layout};
use super::manifest::{self, Manifest};
use super::progress::{chapter_of, Event, Progress};
use super::{pick_chapters, PLAYBOOKS};

fn node(name: &str, role: &str, nics: &[(&str, &str)]) -> v1::LabNode {
    v1::LabNode {
        spec: Some(v1::NodeSpec {
            name: name.into(),
            role: role.into(),
            kind: v1::NodeKind::Container as i32,
            ..Default::default()
        }),
        host: "h1".into(),
        nics: nics
            .iter()
            .map(|(net, ip)| v1::NodeNic {
                network: (*net).into(),
                ip: (*ip).into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn the_inventory_groups_nodes_by_role_with_their_addresses() {
    let lab = v1::Lab {
        name: "os".into(),
        nodes: vec![
            node("controller", "controller", &[("management", "10.0.0.11")]),
            node("object1", "object-storage", &[("management", "10.0.0.41")]),
            node(
                "c1",
                "compute",
                &[("management", "10.0.0.31"), ("tunnel", "10.0.1.31")],
            ),
            node("loose", "", &[]),
        ],
        ..Default::default()
    };
    let inv = files::inventory(&lab);
    assert_eq!(
        inv["all"]["hosts"]["c1"],
        json!({"dclab_kind": "container", "dclab_host": "h1",
               "dclab_addresses": {"management": "10.0.0.31", "tunnel": "10.0.1.31"}})
    );
    let children = inv["all"]["children"].as_object().unwrap();
    let groups: Vec<&String> = children.keys().collect();
    assert_eq!(groups, ["compute", "controller", "object_storage"]);
    assert_eq!(children["object_storage"]["hosts"], json!({"object1": {}}));
    // A node without a role is only in `all`.
    assert!(inv["all"]["hosts"]["loose"].is_object());
}

#[test]
fn ssh_goes_through_ctl_lab_proxy_with_the_install_key() {
    let layout = Layout {
        dir: "/s/labs/os".into(),
    };
    let cfg = files::ssh_config(&layout, "'/bin/ctl' '--insecure'", "os");
    assert!(
        cfg.contains("ProxyCommand '/bin/ctl' '--insecure' lab proxy os %n 22\n"),
        "{cfg}"
    );
    assert!(cfg.contains("IdentityFile /s/labs/os/id_ed25519\n"), "{cfg}");
    let ansible = files::ansible_cfg(&layout, "/p".as_ref());
    assert!(
        ansible.contains("ssh_args = -F /s/labs/os/ssh_config "),
        "{ansible}"
    );
    assert!(
        ansible.contains("callback_plugins = /p/callback_plugins\n"),
        "{ansible}"
    );
}

#[test]
fn secrets_are_made_once_and_kept() {
    let names: Vec<String> = ["admin_password", "demo_password"].map(String::from).into();
    let first = files::secrets(None, &names).unwrap();
    assert_eq!(first.len(), 2);
    for name in &names {
        let v = first[name].as_str().unwrap();
        assert_eq!(v.len(), 24);
        assert!(v.chars().all(|c| c.is_ascii_hexdigit()));
    }
    let text = json!({"admin_password": "kept", "extra": "x"}).to_string();
    let again = files::secrets(Some(&text), &names).unwrap();
    assert_eq!(again["admin_password"], "kept");
    assert_eq!(again["extra"], "x");
    assert_ne!(again["demo_password"], first["demo_password"]);
    assert!(files::secrets(Some("[1]"), &names).is_err());
}

#[test]
fn vars_are_checked_and_laid_over_the_remembered_ones() {
    let given =
        files::parse_vars(&["neutron_backend=dclab".into(), "empty=".into(), "a_1=x=y".into()]).unwrap();
    assert_eq!(given[0], ("neutron_backend".into(), "dclab".into()));
    assert_eq!(given[1], ("empty".into(), "".into()));
    assert_eq!(given[2], ("a_1".into(), "x=y".into()));
    for bad in ["novalue", "=dclab", "1x=y", "neutron-backend=dclab", "a b=c"] {
        let err = files::parse_vars(&[bad.into()]).unwrap_err().to_string();
        assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
    }
    let kept = json!({"neutron_backend": "dclab", "other": "x"}).to_string();
    let none = files::vars(Some(&kept), &[]).unwrap();
    assert_eq!(none["neutron_backend"], "dclab");
    let over = files::vars(Some(&kept), &[("neutron_backend".into(), "linuxbridge".into())]).unwrap();
    assert_eq!(over["neutron_backend"], "linuxbridge");
    assert_eq!(over["other"], "x");
    assert!(files::vars(Some("[]"), &[]).is_err());
}

#[test]
fn chapters_come_from_the_manifest_and_unknown_ones_are_named() {
    let text = "[[chapter]]\nname = \"environment\"\nsecrets = [\"a\", \"b\"]\n\
                [[chapter]]\nname = \"identity\"\nsecrets = [\"b\", \"c\"]\n";
    let m = Manifest::parse(text, "m.toml".as_ref()).unwrap();
    let all = m.chapter_names();
    assert_eq!(all, ["environment", "identity"]);
    assert_eq!(m.secrets(), ["a", "b", "c"]);
    let only = pick_chapters(all.clone(), &["identity".into()], "m.toml".as_ref()).unwrap();
    assert_eq!(only, ["identity"]);
    let err = pick_chapters(all, &["compute".into()], "m.toml".as_ref()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no chapter \"compute\" in m.toml; its chapters are environment, identity"
    );
    let err = Manifest::parse("[[chapter]]\nsecrets = []\n", "m.toml".as_ref()).unwrap_err();
    assert!(format!("{err:#}").contains("m.toml does not parse"), "{err:#}");
    assert!(Manifest::parse("", "m.toml".as_ref()).is_err());
}

/// The OpenStack manifest: the chapters site.yml imports (for Ansible run
/// by hand), in its order, and every password labs installed before it got.
#[test]
fn the_openstack_manifest_agrees_with_site_yml_and_keeps_every_password() {
    let book = std::path::Path::new(PLAYBOOKS).join("openstack");
    let path = manifest::path(&book);
    let m = Manifest::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    let site = std::fs::read_to_string(book.join("site.yml")).unwrap();
    let imported: Vec<String> = site
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- import_playbook:"))
        .map(|f| f.trim().trim_end_matches(".yml").to_string())
        .collect();
    assert_eq!(m.chapter_names(), imported);
    for chapter in &imported {
        assert!(book.join(format!("{chapter}.yml")).is_file(), "{chapter}");
    }
    let before = [
        "rabbit_password",
        "keystone_db_password",
        "admin_password",
        "demo_password",
        "glance_db_password",
        "glance_password",
        "placement_db_password",
        "placement_password",
        "nova_db_password",
        "nova_password",
        "neutron_db_password",
        "neutron_password",
        "metadata_secret",
        "swift_password",
        "swift_hash_prefix",
        "swift_hash_suffix",
        "horizon_secret_key",
    ];
    let secrets = m.secrets();
    for name in before {
        assert!(secrets.iter().any(|s| s == name), "{name} is no longer generated");
    }
}

fn event(json: serde_json::Value) -> Event {
    serde_json::from_value(json).unwrap()
}

#[test]
fn progress_counts_hosts_per_play_times_chapters_and_keeps_the_first_failure() {
    let mut p = Progress::default();
    assert!(p
        .take(event(
            json!({"event": "play", "play": "environment | SQL database", "time": 10.0})
        ))
        .is_empty());
    let result = |status: &str, changed: bool, task: &str| {
        event(
            json!({"event": "result", "status": status, "play": "environment | SQL database",
                     "task": task, "host": "controller", "changed": changed, "msg": "boom", "time": 11.0}),
        )
    };
    p.take(result("ok", true, "a"));
    p.take(result("ok", false, "b"));
    p.take(result("skipped", false, "c"));
    let lines = p.take(event(
        json!({"event": "play", "play": "environment | memcached", "time": 12.5}),
    ));
    assert_eq!(
        lines,
        [
            "environment | SQL database (2.5 s)",
            "  controller: 2 ok, 1 changed, 1 skipped"
        ]
    );
    p.take(result("failed", false, "d"));
    p.take(result("failed", false, "e"));
    p.take(event(
        json!({"event": "play", "play": "identity | Keystone", "time": 13.0}),
    ));
    let lines = p.take(event(json!({"event": "stats", "time": 20.0})));
    assert_eq!(lines[0], "identity | Keystone (7.0 s)");
    assert_eq!(
        p.chapters,
        [("environment".to_string(), 3.0), ("identity".to_string(), 7.0)]
    );
    assert_eq!(p.changed, 1);
    let f = p.failure.unwrap();
    assert_eq!(
        (f.host.as_str(), f.task.as_str(), f.msg.as_str()),
        ("controller", "d", "boom")
    );
    assert_eq!(chapter_of("no chapter"), "no chapter");
}
