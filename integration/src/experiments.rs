//! Experiment runs as tests judge them.

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
