//! Experiment runs as tests judge them.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ctl::Ctl;

/// The record a `-o json experiment run` printed, once it is known that the
/// run passed; a run that did not names every check that failed and why
/// the run stopped.
pub fn passed_record(code: i32, stdout: &str, stderr: &str) -> Value {
    let record: Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("no record ({e}):\n{stdout}{stderr}"));
    let failed: Vec<&Value> = record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] != true)
        .collect();
    assert!(
        code == 0 && record["verdict"] == "passed" && failed.is_empty(),
        "{} {} (exit {code}); failed checks: {failed:#?}; stopped: {}\n{stderr}",
        record["experiment"],
        record["verdict"],
        record["error"]
    );
    record
}

/// Runs experiment `name` (built-in or a file) on `lab` and returns its
/// record after checking that it passed.
pub fn run_passed(ctl: &Ctl, name: &str, lab: &str) -> Value {
    let run = ctl.run(&["-o", "json", "experiment", "run", name, "--lab", lab]);
    passed_record(run.code, &run.stdout, &run.stderr)
}

/// The runs of `lab`, oldest first.
pub fn runs(ctl: &Ctl, lab: &str) -> Vec<Value> {
    ctl.json(&["experiment", "ls", "--lab", lab])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until a run newer than the lab's first `before` runs has an
/// event whose text contains `what`, and returns that run.
pub fn wait_for_event(ctl: &Ctl, lab: &str, before: usize, what: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    loop {
        if let Some(run) = runs(ctl, lab).get(before) {
            let shown = ctl.json(&["experiment", "show", run["id"].as_str().unwrap()]);
            let seen = shown["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["what"].as_str().unwrap_or("").contains(what));
            if seen {
                return shown;
            }
            last = shown;
        }
        assert!(
            Instant::now() < deadline,
            "no event {what:?} in run {before} of lab {lab} within {timeout:?}; the run's timeline: {:#}, error: {}",
            last["timeline"],
            last["error"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `ok` holds; returns how long that took.
pub fn until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < timeout,
            "{what} did not happen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// Whether `node` of `lab` gets an answer to one ping of `ip`.
pub fn pings(ctl: &Ctl, lab: &str, node: &str, ip: &str) -> bool {
    ctl.run(&[
        "lab",
        "exec",
        lab,
        node,
        "--timeout",
        "20",
        "--",
        &format!("ping -c 1 -W 1 {ip}"),
    ])
    .ok()
}

/// An experiment file in `dir` that applies `fault` (TOML step lines, on
/// node a or between a and b) and then waits `hold` (e.g. "60s"), so
/// whoever is killed meanwhile is killed while the fault is in effect.
pub fn held(dir: &std::path::Path, name: &str, fault: &str, hold: &str) -> String {
    let text = format!(
        "[experiment]\nname = \"held-{name}\"\n\n[[target]]\nname = \"a\"\nnode = \"a\"\n\n\
         [[target]]\nname = \"b\"\nnode = \"b\"\n\n[[stage]]\nname = \"hold\"\n\
         [[stage.step]]\n{fault}\nid = \"held\"\n[[stage.step]]\nwait = \"{hold}\"\n"
    );
    let path = dir.join(format!("held-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}
