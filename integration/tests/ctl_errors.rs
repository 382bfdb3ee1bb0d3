//! Errors that say what to do, as a newcomer meets them: every ctl command
//! of the help's examples against a lab that does not exist, a certificate
//! directory that does not exist, and a coordinator that stopped. Each
//! failure is one line that names the thing and the next step.

use dclab_integration::cluster;
use dclab_integration::ctl::{Ctl, Run};

/// Commands that never talk to a coordinator, or that would start work
/// the checks below do not want (local setups, builds, benches, the demo).
const OFFLINE: &[&str] = &[
    "ctl local",
    "ctl certs",
    "ctl completions",
    "ctl doctor",
    "ctl demo",
    "ctl bench",
    "ctl image",
    "ctl lab check",
    "ctl experiment check",
    "ctl experiment ls --builtin",
];

/// Every example line of every command's help that talks to a coordinator.
fn online_examples() -> Vec<Vec<String>> {
    dclab_ctl::examples::ctl_lines()
        .filter(|words| {
            let line = words.join(" ");
            !OFFLINE.iter().any(|o| line.starts_with(o))
        })
        .collect()
}

/// The one error line (progress lines before it are fine), last.
fn error_line(run: &Run) -> &str {
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one line of error, not: {:?}", run.stderr);
    assert_eq!(
        lines.last(),
        errors.first().copied(),
        "the error ends the output: {:?}",
        run.stderr
    );
    errors[0]
}

fn run_in_repo(ctl: &Ctl, args: &[String], env: &[(&str, &str)]) -> Run {
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let mut cmd = ctl.command(&args);
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::null());
    let out = cmd.output().unwrap();
    Run::from(out)
}

#[test]
fn every_command_says_what_is_wrong_and_what_to_do_in_one_line() {
    let mut c = cluster("err", 1, false);
    let ctl = Ctl::new(&c);
    let examples = online_examples();
    assert!(
        examples.len() > 30,
        "the help's examples cover the commands: {}",
        examples.len()
    );

    // A lab that does not exist: named, with the command that lists labs.
    for args in [
        &["lab", "status", "nolab"][..],
        &["lab", "exec", "nolab", "a", "--", "true"],
        &["lab", "graph", "nolab"],
        &["lab", "install", "nolab"],
        &["lab", "ssh", "nolab", "a"],
        &["lab", "forward", "nolab", "a", "22"],
        &["snapshot", "ls", "--lab", "nolab"],
        &["snapshot", "create", "s", "--lab", "nolab"],
        &["snapshot", "restore", "s", "--lab", "nolab"],
        &["experiment", "run", "node-crash", "--lab", "nolab"],
    ] {
        let run = ctl.run(args);
        assert!(!run.ok(), "{args:?} succeeded on a lab that does not exist");
        let line = error_line(&run);
        assert!(
            line.contains("nolab") && line.contains("`ctl lab ls`"),
            "{args:?}: {line}"
        );
    }

    // A certificate directory that does not exist: every online command
    // names the file it looked for and the option that fixes it.
    let missing = "/nonexistent-dclab-pki";
    for words in &examples {
        let run = run_in_repo(
            &ctl,
            words,
            &[("DCLAB_PKI_DIR", missing), ("DCLAB_LOCAL_CLUSTER", "")],
        );
        assert!(!run.ok(), "{} succeeded without certificates", words.join(" "));
        let line = error_line(&run);
        assert!(
            line.contains(missing) && line.contains("--pki-dir"),
            "{}: {line}",
            words.join(" ")
        );
    }

    // The coordinator stopped: every online command says it is not
    // listening and how to get one, instead of a transport error.
    c.kill_coordinator(libc::SIGKILL).unwrap();
    for words in &examples {
        let run = run_in_repo(&ctl, words, &[]);
        assert!(
            !run.ok(),
            "{} succeeded with the coordinator stopped",
            words.join(" ")
        );
        let line = error_line(&run);
        assert!(
            line.contains("is it running?") && line.contains("ctl local up"),
            "{}: {line}",
            words.join(" ")
        );
    }
}
