//! Issuing certificates with rcgen: one CA per deployment, and leaf
//! certificates whose Organization carries the dclab role and whose Common
//! Name carries the host id or operator name.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use dclab_runtime::identity::Role;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate to issue.
pub struct Leaf<'a> {
    pub role: Role,
    pub name: &'a str,
    /// Server addresses (IPs or DNS names); only the coordinator has them.
    pub sans: &'a [String],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl<'a> Leaf<'a> {
    /// Valid from now for `days`.
    pub fn new(role: Role, name: &'a str, sans: &'a [String], days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Leaf {
            role,
            name,
            sans,
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(days),
        }
    }
}

pub fn cert_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.crt"))
}

pub fn key_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.key"))
}

/// Creates the PKI directory, owner-only.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))
}

/// Whether `stem`'s certificate and key both exist; an error if only one does.
pub fn pair_exists(dir: &Path, stem: &str) -> anyhow::Result<bool> {
    match (cert_path(dir, stem).exists(), key_path(dir, stem).exists()) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        _ => bail!(
            "{} holds only half of {stem}'s certificate and key; remove the other file to issue a new pair",
            dir.display()
        ),
    }
}

/// Creates a new CA in `dir` (ca.crt, ca.key).
pub fn create_ca(dir: &Path) -> anyhow::Result<()> {
    let key = KeyPair::generate()?;
    // A unique name per deployment: issuers are looked up by name.
    let tag: String = key
        .public_key_raw()
        .iter()
        .rev()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("dclab CA {tag}"), None);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(3650);
    let cert = params.self_signed(&key)?;
    write_pair(dir, "ca", &cert.pem(), &key.serialize_pem())
}

fn load_ca(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let read = |p: PathBuf| fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()));
    let key = KeyPair::from_pem(&read(key_path(dir, "ca"))?).context("ca.key is not a private key")?;
    Issuer::from_ca_cert_pem(&read(cert_path(dir, "ca"))?, key).context("ca.crt is not a CA certificate")
}

/// Issues `leaf` signed by the CA in `dir`, as `stem`.crt / `stem`.key.
pub fn issue(dir: &Path, stem: &str, leaf: &Leaf) -> anyhow::Result<()> {
    let ca = load_ca(dir)?;
    let mut params = CertificateParams::new(leaf.sans.to_vec()).context("bad address for the certificate")?;
    params.distinguished_name = name(leaf.name, Some(leaf.role.organization()));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match leaf.role {
        Role::Coordinator => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Role::Agent | Role::Operator => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.not_before = leaf.not_before;
    params.not_after = leaf.not_after;
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    write_pair(dir, stem, &cert.pem(), &key.serialize_pem())
}

fn name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

/// Writes both files owner-only and never over an existing file: each goes
/// to a temporary name first and is then hard-linked into place, which
/// fails if the name is taken.
fn write_pair(dir: &Path, stem: &str, cert: &str, key: &str) -> anyhow::Result<()> {
    for (path, text) in [(key_path(dir, stem), key), (cert_path(dir, stem), cert)] {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        let linked = fs::hard_link(&tmp, &path);
        fs::remove_file(&tmp)?;
        linked.with_context(|| format!("{} already exists; not overwriting it", path.display()))?;
    }
    Ok(())
}
