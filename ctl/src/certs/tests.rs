use std::os::unix::fs::PermissionsExt;

use dclab_runtime::identity::{identity_of, Role};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_owner_only_files_and_never_replaces_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let report = init(
        &dir,
        &["10.1.2.3".into(), "coord.example".into()],
        &["h1".into()],
        "alice",
        30,
    )
    .unwrap();
    assert!(report[0].starts_with("created a new CA"), "{report:?}");
    assert_eq!(mode(&dir), 0o700);
    for file in [
        "ca.crt",
        "ca.key",
        "coordinator.crt",
        "coordinator.key",
        "agent-h1.crt",
        "agent-h1.key",
        "operator.key",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let again = init(
        &dir,
        &["10.1.2.3".into()],
        &["h1".into(), "h2".into()],
        "alice",
        30,
    )
    .unwrap();
    assert!(again[0].starts_with("using the existing CA"), "{again:?}");
    assert!(
        again.iter().any(|l| l == "kept existing agent-h1.crt"),
        "{again:?}"
    );
    assert!(
        again.iter().any(|l| l.starts_with("issued agent-h2.crt")),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read(dir.join("ca.crt")).unwrap(),
        ca,
        "the CA was replaced"
    );

    let id = |stem: &str| {
        identity_of(&CertificateDer::from_pem_file(dir.join(format!("{stem}.crt"))).unwrap()).unwrap()
    };
    assert_eq!(
        (id("agent-h2").role, id("agent-h2").name.as_str()),
        (Role::Agent, "h2")
    );
    assert_eq!(
        (id("operator").role, id("operator").name.as_str()),
        (Role::Operator, "alice")
    );
    assert_eq!(id("coordinator").role, Role::Coordinator);

    // A half-written pair is reported, not silently replaced.
    std::fs::remove_file(dir.join("agent-h2.key")).unwrap();
    let err = init(&dir, &[], &["h2".into()], "alice", 30).unwrap_err();
    assert!(err.to_string().contains("only half of agent-h2"), "{err}");
}

#[test]
fn bad_names_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let err = init(tmp.path(), &[], &["../evil".into()], "admin", 30).unwrap_err();
    assert!(err.to_string().contains("../evil"), "{err}");
    assert!(
        !tmp.path().join("ca.crt").exists(),
        "a CA was written despite the refusal"
    );
}
