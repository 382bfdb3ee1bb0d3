//! The systemd units of `deploy/systemd` pass `systemd-analyze verify`
//! (through `scripts/verify-units.sh`) with this build's coordinator and
//! agent standing in for /usr/local/bin, and the same script fails on a
//! copy with one misspelt key, which systemd-analyze only warns about: a
//! passing run means the units were read, not skipped.

use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/verify-units.sh");
const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/systemd");

/// Runs the script on `units`: (success, what it printed).
fn verify(units: &Path) -> (bool, String) {
    let out = Command::new("sh")
        .arg(SCRIPT)
        .arg("--bin-dir")
        .arg(dclab_integration::built_bins(&["coordinator", "agent"]))
        .arg(units)
        .output()
        .expect("running sh scripts/verify-units.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_shipped_units_verify() {
    let (ok, text) = verify(Path::new(UNITS));
    assert!(ok, "verify-units.sh failed:\n{text}");
    for unit in ["dclab-coordinator.service", "dclab-agent.service"] {
        assert!(text.contains(unit), "{unit} was not checked:\n{text}");
    }
}

#[test]
fn a_misspelt_key_fails() {
    let good = std::fs::read_to_string(Path::new(UNITS).join("dclab-agent.service")).unwrap();
    assert!(
        good.contains("\nRestart=on-failure\n"),
        "the unit changed; pick another key"
    );
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("dclab-agent.service");
    std::fs::write(
        &broken,
        good.replace("\nRestart=on-failure\n", "\nRestartt=on-failure\n"),
    )
    .unwrap();
    let (ok, text) = verify(&broken);
    assert!(!ok, "verify-units.sh passed a unit with Restartt=:\n{text}");
    assert!(
        text.contains("Restartt"),
        "the failure does not name the key:\n{text}"
    );
}
