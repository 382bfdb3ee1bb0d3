//! The role images' packages and the units left disabled in them, from
//! `playbooks/openstack/manifest.toml`. Compiled in: agents build images
//! on hosts where the source tree is not, and a role is a change under
//! `playbooks/` (and a rebuild), not here.

use std::sync::LazyLock;

use anyhow::bail;
use serde::Deserialize;

const MANIFEST: &str = include_str!("../../../playbooks/openstack/manifest.toml");

/// The parts of the manifest the image builder reads (ctl reads the chapters).
#[derive(Debug, Deserialize)]
struct Manifest {
    image: ImageSection,
    role: Vec<Role>,
}

#[derive(Debug, Deserialize)]
struct ImageSection {
    base: Vec<String>,
    leave_disabled: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Role {
    name: String,
    packages: Vec<String>,
}

static ROLES: LazyLock<Manifest> = LazyLock::new(|| {
    // A unit test parses it: a broken manifest never reaches a build.
    toml::from_str(MANIFEST).expect("playbooks/openstack/manifest.toml does not parse")
});

/// The image a role builds: `debian` for the base, `debian-<role>`.
pub fn image_name(role: &str) -> String {
    if role == "base" {
        "debian".into()
    } else {
        format!("debian-{role}")
    }
}

/// The role an image name stands for, if it is one of the manifest's.
pub fn role_of(image: &str) -> Option<&'static str> {
    ROLES
        .role
        .iter()
        .map(|r| r.name.as_str())
        .find(|role| image_name(role) == image)
}

/// The base packages and the role's own, in the manifest's order.
pub fn packages(role: &str) -> anyhow::Result<Vec<&'static str>> {
    let Some(found) = ROLES.role.iter().find(|r| r.name == role) else {
        let known: Vec<&str> = ROLES.role.iter().map(|r| r.name.as_str()).collect();
        bail!("no role {role:?}; roles are {}", known.join(", "));
    };
    Ok(ROLES
        .image
        .base
        .iter()
        .chain(&found.packages)
        .map(String::as_str)
        .collect())
}

/// The units every role image leaves disabled (shell globs), space-separated.
pub fn leave_disabled() -> String {
    ROLES.image.leave_disabled.join(" ")
}
