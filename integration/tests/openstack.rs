//! OpenStack in a lab, for real: `ctl lab install` runs the environment
//! and identity chapters of playbooks/openstack (MariaDB, RabbitMQ,
//! memcached, Keystone) on a Debian controller container through the
//! coordinator, a second run changes nothing, a failing task is named with
//! its node and log, and the paper's token-loss experiment runs against
//! the installed Keystone.

use std::path::Path;

use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::experiments::run_passed;
use dclab_integration::labs::{up_example, Labs};
use dclab_integration::libvirtd::{vm_dir, Libvirtd};
use serde_json::Value;

const EXAMPLE: &str = include_str!("../../examples/openstack-identity.toml");

/// A playbook whose second play fails on the controller.
fn failing_playbook(dir: &Path) -> String {
    let book = dir.join("books/broken");
    std::fs::create_dir_all(&book).unwrap();
    std::fs::write(book.join("manifest.toml"), "[[chapter]]\nname = \"broken\"\n").unwrap();
    std::fs::write(
        book.join("broken.yml"),
        "- name: \"broken | works\"\n  hosts: controller\n  gather_facts: false\n  tasks:\n\
         \x20   - name: a command that succeeds\n      ansible.builtin.command: \"true\"\n\
         - name: \"broken | fails\"\n  hosts: controller\n  gather_facts: false\n  tasks:\n\
         \x20   - name: a command that fails on purpose\n      ansible.builtin.command: \"false\"\n",
    )
    .unwrap();
    // The callback plugin comes from the playbooks dir given.
    let callbacks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks/callback_plugins");
    std::os::unix::fs::symlink(callbacks, dir.join("books/callback_plugins")).unwrap();
    dir.join("books").display().to_string()
}

fn chapters(summary: &Value) -> Vec<String> {
    summary["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chapter"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn identity_installs_twice_without_change_and_token_loss_runs_on_keystone() {
    let _libvirtd = Libvirtd::ensure_containers();
    let dir = vm_dir("dclab-ostest");
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();
    let c = cluster("os", 2, false);
    let ctl = Ctl::new(&c);
    let lab = format!("os{}", std::process::id());
    let _labs = Labs(&ctl, vec![lab.clone()]);
    // The agent builds debian-controller on first use (a few minutes).
    up_example(&ctl, dir.path(), EXAMPLE, "openstack-identity", &lab, "900");

    // Bad input is refused before anything is written for the lab.
    let bad = ctl.run(&[
        "lab",
        "install",
        &lab,
        "--chapters",
        "identity,compte",
        "--state-dir",
        state_arg,
    ]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("no chapter \"compte\"") && bad.stderr.contains("environment, identity, image"),
        "{}",
        bad.stderr
    );
    let bad = ctl.run(&[
        "lab",
        "install",
        &lab,
        "--playbook",
        "../etc",
        "--state-dir",
        state_arg,
    ]);
    assert!(bad.stderr.contains("--playbook \"../etc\""), "{}", bad.stderr);
    let bad = ctl.run(&["lab", "install", "nosuchlab", "--state-dir", state_arg]);
    assert!(bad.stderr.contains("nosuchlab"), "{}", bad.stderr);
    assert!(!state.join("labs").exists(), "a refused install wrote files");

    let install = |extra: &[&str]| {
        let mut args = vec!["lab", "install", &lab, "--state-dir", state_arg];
        args.extend(extra);
        let run = ctl.run(&[&["-o", "json"], args.as_slice()].concat());
        assert!(
            run.ok(),
            "install failed ({}):\n{}{}",
            run.code,
            run.stdout,
            run.stderr
        );
        (serde_json::from_str::<Value>(&run.stdout).unwrap(), run.stderr)
    };
    let (first, progress) = install(&["--chapters", "environment,identity"]);
    assert_eq!(chapters(&first), ["environment", "identity"], "{first}");
    assert!(first["changed"].as_u64().unwrap() > 10, "{first}");
    // A line per play and host.
    assert!(progress.contains("identity | Keystone ("), "{progress}");
    assert!(progress.contains("    controller: "), "{progress}");
    let (second, _) = install(&["--chapters", "environment,identity"]);
    assert_eq!(second["changed"], 0, "the second run changed something: {second}");

    // Keystone answers through the lab's own network.
    let exec = |cmd: &str| ctl.run(&["lab", "exec", &lab, "controller", "--timeout", "60", "--", cmd]);
    let token = exec(". /root/admin-openrc && openstack token issue -f value -c expires");
    assert!(token.ok(), "{}{}", token.stdout, token.stderr);
    let listed = exec(". /root/admin-openrc && openstack project list -f value -c Name | sort");
    assert_eq!(
        listed.stdout.split_whitespace().collect::<Vec<_>>(),
        ["admin", "demo", "service"]
    );

    // The generated passwords reach no log; the logs are kept.
    let labdir = state.join("labs").join(&lab);
    let secrets: Value =
        serde_json::from_str(&std::fs::read_to_string(labdir.join("secrets.json")).unwrap()).unwrap();
    let logs: Vec<_> = std::fs::read_dir(&labdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    for log in &logs {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(text.contains("TASK [keystone.conf]"), "{}", log.display());
        for (name, value) in secrets.as_object().unwrap() {
            assert!(
                !text.contains(value.as_str().unwrap()),
                "{name} is in {}",
                log.display()
            );
        }
    }
    // No SSH master connection outlives the install.
    assert_eq!(std::fs::read_dir(labdir.join("cp")).unwrap().count(), 0);

    // A failing task: its node, task and log are named; the lab stays up.
    let books = failing_playbook(dir.path());
    let failed = ctl.run(&[
        "lab",
        "install",
        &lab,
        "--playbook",
        "broken",
        "--playbooks",
        &books,
        "--state-dir",
        state_arg,
    ]);
    assert_ne!(failed.code, 0);
    assert!(
        failed
            .stderr
            .contains("failed on node controller at task \"a command that fails on purpose\"")
            && failed.stderr.contains(labdir.to_str().unwrap())
            && failed.stderr.contains(".log"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("broken | works ("), "{}", failed.stderr);
    let status = ctl.json(&["lab", "status", &lab]);
    assert_eq!(status["ready"], true, "{status}");

    // The paper's experiment 2 against the real Keystone.
    let record = run_passed(&ctl, "token-loss", &lab);
    let checks = record["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 6, "{record:#}");
    let lost = checks
        .iter()
        .find(|c| c["name"] == "flushed as well, the token is lost")
        .unwrap();
    assert!(
        lost["observed"].as_str().unwrap().contains("404 invalid"),
        "{lost:#}"
    );
}
