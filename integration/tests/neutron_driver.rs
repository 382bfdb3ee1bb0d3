//! The Neutron ML2 driver's own suite (`neutron/networking-dclab/tests`,
//! Python unittest) against real coordinator processes of this build: the
//! gRPC client over mutual TLS and plaintext, translation, the journal with
//! the coordinator killed and restarted, the full sync beside a lab, the
//! driver class as ML2 calls it, and a pip install. It runs under Debian's
//! /usr/bin/python3, where the apt packages of scripts/install-deps.sh
//! live (a pyenv or venv python3 earlier on PATH would not see them); set
//! DCLAB_PYTHON to choose another. A missing package fails the suite with
//! its name, it is never skipped.
//!
//! Beside it, the suite of dclab_os, the helpers the OpenStack playbook
//! installs on its nodes (`playbooks/openstack/tests`, no OpenStack needed).

use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const SUITE: &str = "neutron/networking-dclab/tests";
const DCLAB_OS_SUITE: &str = "playbooks/openstack/tests";

fn python() -> PathBuf {
    if let Some(chosen) = std::env::var_os("DCLAB_PYTHON") {
        return chosen.into();
    }
    let debian = Path::new("/usr/bin/python3");
    if debian.is_file() {
        debian.to_path_buf()
    } else {
        PathBuf::from("python3")
    }
}

/// N from unittest's closing "Ran N tests in 1.234s".
fn tests_run(line: &str) -> Option<u32> {
    let count = line.strip_prefix("Ran ")?.split_whitespace().next()?;
    count.parse().ok()
}

/// Runs `suite` with unittest from the repository root; fails with its
/// report unless it ran tests and all passed.
fn run_suite(suite: &str, envs: &[(&str, PathBuf)]) {
    let python = python();
    let out = Command::new(&python)
        .args(["-m", "unittest", "discover", "-s", suite, "-v"])
        .current_dir(REPO)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    // unittest reports on stderr.
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} -m unittest discover -s {suite} failed:\n{report}",
        python.display()
    );
    let ran = report.lines().find_map(tests_run).unwrap_or(0);
    assert!(ran > 0, "the suite ran no test:\n{report}");
    assert!(
        report.lines().any(|l| l.starts_with("OK")),
        "no OK line:\n{report}"
    );
}

#[test]
fn neutron_driver_python_suite_passes() {
    let bins = dclab_integration::built_bins(&["coordinator", "ctl"]);
    run_suite(SUITE, &[("DCLAB_TARGET_DIR", bins)]);
}

#[test]
fn dclab_os_python_suite_passes() {
    run_suite(DCLAB_OS_SUITE, &[]);
}
