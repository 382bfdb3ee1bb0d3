//! `spec.json`: the DesiredNode a node dir was built from. Comparing it
//! with what the coordinator wants now tells whether the node must be
//! rebuilt. Mirrored in serde types so the file stays readable; the two
//! `From` impls fail to compile when the proto grows a field.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use dclab_proto::v1::{DesiredNode, NodeNic};
use serde::{Deserialize, Serialize};

pub const MICRO_IMAGE: &str = "micro";
pub const APT_CACHE_ROLE: &str = "aptcache";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedNic {
    pub network: String,
    pub ip: String,
    pub prefix: u32,
    pub mac: String,
    pub port: String,
    pub tap: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedSpec {
    pub lab: String,
    pub name: String,
    pub role: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub image: String,
    pub disks_mib: Vec<u64>,
    pub nics: Vec<AppliedNic>,
    pub apt_proxy: String,
    pub ssh_keys: Vec<String>,
    /// The proto's NodeKind; specs written before kinds existed are VMs.
    #[serde(default)]
    pub kind: i32,
}

impl From<&DesiredNode> for AppliedSpec {
    fn from(n: &DesiredNode) -> Self {
        AppliedSpec {
            lab: n.lab.clone(),
            name: n.name.clone(),
            role: n.role.clone(),
            vcpus: n.vcpus,
            memory_mib: n.memory_mib,
            image: n.image.clone(),
            disks_mib: n.disks_mib.clone(),
            nics: n
                .nics
                .iter()
                .map(|c| AppliedNic {
                    network: c.network.clone(),
                    ip: c.ip.clone(),
                    prefix: c.prefix,
                    mac: c.mac.clone(),
                    port: c.port.clone(),
                    tap: c.tap.clone(),
                })
                .collect(),
            apt_proxy: n.apt_proxy.clone(),
            ssh_keys: n.ssh_keys.clone(),
            kind: n.kind,
        }
    }
}

impl From<AppliedSpec> for DesiredNode {
    fn from(s: AppliedSpec) -> Self {
        DesiredNode {
            lab: s.lab,
            name: s.name,
            role: s.role,
            vcpus: s.vcpus,
            memory_mib: s.memory_mib,
            image: s.image,
            disks_mib: s.disks_mib,
            nics: s
                .nics
                .into_iter()
                .map(|c| NodeNic {
                    network: c.network,
                    ip: c.ip,
                    prefix: c.prefix,
                    mac: c.mac,
                    port: c.port,
                    tap: c.tap,
                })
                .collect(),
            apt_proxy: s.apt_proxy,
            ssh_keys: s.ssh_keys,
            kind: s.kind,
        }
    }
}

/// What a node dir needs to match the desired node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Same,
    /// Only fields the VM never sees differ: rewrite spec.json, keep the VM.
    SpecOnly,
    /// Domain, disks and seed must be made again.
    Rebuild,
}

impl AppliedSpec {
    /// The fields that shape the VM. A micro-VM has no cloud-init, so the
    /// apt proxy and SSH keys do not reach it: adding an apt cache node to
    /// a lab must not rebuild its micro-VMs.
    fn vm_shape(&self) -> AppliedSpec {
        let mut shape = self.clone();
        if !super::build::ImageRef::of(&shape.image).has_cloud_init() {
            shape.apt_proxy.clear();
            shape.ssh_keys.clear();
        }
        shape
    }

    pub fn compare(&self, desired: &AppliedSpec) -> Change {
        if self == desired {
            Change::Same
        } else if self.vm_shape() == desired.vm_shape() {
            Change::SpecOnly
        } else {
            Change::Rebuild
        }
    }

    /// Short, stable digest of the spec: part of the cloud-init instance
    /// id, so a rebuilt node runs its first-boot steps again.
    pub fn digest(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in json.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{:08x}", hash >> 32)
    }
}

/// The applied spec; None when there is none. A file that does not parse
/// is an error (the caller rebuilds the node).
pub fn read(path: &Path) -> anyhow::Result<Option<AppliedSpec>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is not a node spec", path.display()))
}

/// Writes the spec atomically: a crash leaves the old file or the new one.
pub fn write(path: &Path, spec: &AppliedSpec) -> anyhow::Result<()> {
    let dir = path.parent().context("spec path has no directory")?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".spec-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let json = serde_json::to_string_pretty(spec)?;
    tmp.write_all(json.as_bytes())?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn node(image: &str) -> DesiredNode {
        DesiredNode {
            lab: "lab1".into(),
            name: "web".into(),
            role: "server".into(),
            vcpus: 1,
            memory_mib: 256,
            image: image.into(),
            disks_mib: vec![64],
            nics: vec![NodeNic {
                network: "lan".into(),
                ip: "10.0.0.2".into(),
                prefix: 24,
                mac: "02:00:00:00:00:02".into(),
                port: "lab1.web.0".into(),
                tap: "dl-web-0".into(),
            }],
            apt_proxy: "http://10.0.0.9:3142".into(),
            ssh_keys: vec!["ssh-ed25519 AAAA a@b".into()],
            kind: dclab_proto::v1::NodeKind::Vm.into(),
        }
    }

    #[test]
    fn the_mirror_round_trips_every_field() {
        let n = node("micro");
        let back: DesiredNode = AppliedSpec::from(&n).into();
        assert_eq!(back, n);
    }

    #[test]
    fn only_changes_the_vm_sees_rebuild_it() {
        let old = AppliedSpec::from(&node("micro"));
        assert_eq!(old.compare(&old.clone()), Change::Same);

        let mut n = node("micro");
        n.apt_proxy.clear();
        n.ssh_keys.push("ssh-rsa BBBB c@d".into());
        assert_eq!(
            old.compare(&(&n).into()),
            Change::SpecOnly,
            "micro-VMs have no cloud-init"
        );

        for change in [
            |n: &mut DesiredNode| n.memory_mib = 512,
            |n: &mut DesiredNode| n.disks_mib.push(1),
            |n: &mut DesiredNode| n.nics[0].ip = "10.0.0.3".into(),
            |n: &mut DesiredNode| n.nics[0].tap = "dl-web-9".into(),
            |n: &mut DesiredNode| n.image = "debian-12".into(),
        ] {
            let mut n = node("micro");
            change(&mut n);
            assert_eq!(old.compare(&(&n).into()), Change::Rebuild, "{n:?}");
        }

        let cloud = AppliedSpec::from(&node("debian-12"));
        let mut n = node("debian-12");
        n.apt_proxy.clear();
        assert_eq!(
            cloud.compare(&(&n).into()),
            Change::Rebuild,
            "cloud-init reads the proxy"
        );
        assert_ne!(cloud.digest(), AppliedSpec::from(&n).digest());
        assert_eq!(cloud.digest(), cloud.clone().digest());
    }

    #[test]
    fn specs_are_written_atomically_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spec.json");
        assert!(read(&path).unwrap().is_none());
        let spec = AppliedSpec::from(&node("micro"));
        write(&path, &spec).unwrap();
        write(&path, &spec).unwrap();
        assert_eq!(read(&path).unwrap(), Some(spec));
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary files left");
        std::fs::write(&path, "{").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("spec.json is not a node spec"), "{err}");
    }
}
