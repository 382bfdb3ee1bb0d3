//! `ctl doctor` on this host as it is, and with pieces taken away: each
//! missing piece named with its fix, exit 1 when one is.

use std::process::Command;

use serde_json::Value;

fn doctor(env: &[(&str, &str)]) -> (Option<i32>, Vec<Value>) {
    let bin = dclab_integration::built_bins(&["ctl"]).join("ctl");
    let out = Command::new(bin)
        .args(["-o", "json", "doctor"])
        .envs(env.iter().copied())
        .env("DCLAB_LOCAL_CLUSTER", "no-such-cluster")
        .output()
        .unwrap();
    let checks: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), checks.as_array().unwrap().clone())
}

fn status<'a>(checks: &'a [Value], what: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["what"] == what)
        .unwrap_or_else(|| panic!("no check {what}"))
}

#[test]
fn doctor_names_what_is_missing_and_how_to_fix_it() {
    dclab_integration::require_tools();
    // This host (CI installs and starts everything): the pieces CI
    // guarantees are there, and no coordinator is configured yet.
    let (_, checks) = doctor(&[]);
    for what in [
        "ovs-vsctl",
        "ovs-vswitchd",
        "ip",
        "virsh",
        "libvirtd",
        "libvirtd cgroups",
        "root",
        "/dev/net/tun",
    ] {
        assert_eq!(status(&checks, what)["status"], "ok", "{checks:#?}");
    }
    assert_eq!(status(&checks, "coordinator")["status"], "none");

    // No tools on the PATH: each is missing with the install command.
    let empty = tempfile::tempdir().unwrap();
    let (code, checks) = doctor(&[("PATH", empty.path().to_str().unwrap())]);
    assert_eq!(code, Some(1));
    let ovs = status(&checks, "ovs-vsctl");
    assert_eq!(ovs["status"], "missing");
    assert_eq!(ovs["fix"], "scripts/install-deps.sh --vm");
    assert_eq!(status(&checks, "libvirtd")["fix"], "scripts/libvirtd.sh");

    // A coordinator configured but not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, checks) = doctor(&[("DCLAB_COORDINATOR", &url), ("DCLAB_INSECURE", "true")]);
    assert_eq!(code, Some(1));
    let coordinator = status(&checks, "coordinator");
    assert_eq!(coordinator["status"], "missing", "{coordinator}");
    assert!(
        coordinator["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{coordinator}"
    );
}
