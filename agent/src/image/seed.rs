//! cloud-init NoCloud seeds for lab nodes that boot a cloud image: an
//! ISO9660 volume labelled `cidata` holding `meta-data`, `user-data` and
//! `network-config` (version 2), attached to the node as a CD-ROM.
//!
//! The YAML is written by hand. Every value that comes from outside
//! (hostname, keys, addresses, URLs, device paths) is emitted as a
//! double-quoted scalar with everything but printable ASCII escaped, so no
//! input can end a value early, add a key or change the document's shape.
//! [`write_seed`] also refuses values that would be quoted safely but still
//! break the node (a newline inside an SSH key would become a second line of
//! `authorized_keys`).
//!
//! # The apt cache node
//!
//! With [`Seed::apt_cache_device`] set, the node installs apt-cacher-ng and
//! keeps its cache on that block device: by convention the node's *last*
//! virtio disk (`/dev/vdb` for a node with the image disk plus one extra
//! disk), since libvirt attaches the disks in order as vda, vdb, ... and the
//! seed CD-ROM sits on SATA, outside that sequence. On every boot `bootcmd`
//! makes an ext4 file system on the device only when `blkid -p` finds
//! nothing on it (exit code 2), so a cache disk carried over from an earlier
//! lab is never reformatted; `mounts` puts it in fstab at
//! `/var/cache/apt-cacher-ng`, and once the package is installed `runcmd`
//! hands the cache to the apt-cacher-ng user and restarts the service.

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// Where apt-cacher-ng keeps its cache (the Debian package's default).
pub const APT_CACHE_DIR: &str = "/var/cache/apt-cacher-ng";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// cloud-init runs its once-per-instance steps again when this changes:
    /// change it when the node is recreated, e.g. `<lab>-<node>-<hash>`.
    pub instance_id: String,
    pub hostname: String,
    /// For the image's default user; root login stays disabled.
    pub ssh_authorized_keys: Vec<String>,
    /// (MAC, "ADDR/PREFIX") per interface, in order: they become eth0, eth1,
    /// ... An empty address leaves that interface up without an address.
    pub nics: Vec<(String, String)>,
    /// `http://ADDR:3142` of the lab's apt-cacher-ng, for apt on this node.
    /// Ignored on the cache node itself, which cannot use its own cache
    /// before it has installed it.
    pub apt_proxy: Option<String>,
    /// This node is the lab's apt cache: install apt-cacher-ng with its cache
    /// on this block device, by convention the last virtio disk (`/dev/vdX`;
    /// see the module doc). Formatted ext4 only when it holds nothing yet.
    pub apt_cache_device: Option<String>,
}

/// The device of the `index`th (from 0) virtio disk of a node, in the order
/// the domain XML lists them: `/dev/vda`, `/dev/vdb`, ...
pub fn virtio_disk(index: usize) -> String {
    // Linux names the 27th disk vdaa; labs never get close to that.
    let mut name = String::new();
    let mut n = index + 1;
    while n > 0 {
        n -= 1;
        name.insert(0, (b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    format!("/dev/vd{name}")
}

/// `text` as a YAML double-quoted scalar. Only printable ASCII is written as
/// is; everything else is escaped (`\uXXXX`/`\UXXXXXXXX`, valid in YAML 1.1
/// and 1.2), so the output is one line that a parser reads back as `text`.
fn q(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// A flow sequence of quoted strings: `["a", "b"]`.
fn q_list(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", items.join(", "))
}

pub fn meta_data(seed: &Seed) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        q(&seed.instance_id),
        q(&seed.hostname)
    )
}

pub fn user_data(seed: &Seed) -> String {
    let mut y = String::from("#cloud-config\n");
    let _ = writeln!(y, "hostname: {}", q(&seed.hostname));
    // So the hostname resolves (sudo and apt-cacher-ng look it up).
    y.push_str("manage_etc_hosts: true\n");
    y.push_str("disable_root: true\nssh_pwauth: false\n");
    if seed.ssh_authorized_keys.is_empty() {
        y.push_str("ssh_authorized_keys: []\n");
    } else {
        y.push_str("ssh_authorized_keys:\n");
        for key in &seed.ssh_authorized_keys {
            let _ = writeln!(y, "  - {}", q(key));
        }
    }
    match (&seed.apt_cache_device, &seed.apt_proxy) {
        (Some(device), _) => apt_cache(&mut y, device),
        (None, Some(proxy)) => {
            let _ = writeln!(y, "apt:\n  proxy: {}", q(proxy));
        }
        (None, None) => {}
    }
    y
}

/// Makes ext4 on block device $1 only when `blkid -p` finds nothing on it
/// (exit code 2): no file system, no partition table, no RAID or LVM
/// signature. Anything it recognises, or cannot decide on, is left alone.
const FORMAT_SCRIPT: &str = "if [ -b \"$1\" ]; then blkid -p \"$1\" >/dev/null 2>&1; \
                             if [ $? -eq 2 ]; then mkfs.ext4 -q -L aptcache \"$1\"; fi; fi";

/// The cache node's part of user-data (see the module doc).
fn apt_cache(y: &mut String, device: &str) {
    // The device reaches the shell as $1, never inside the script text, and
    // cloud-init single-quotes each word of a list command.
    let _ = writeln!(
        y,
        "bootcmd:\n  - {}",
        q_list(&["sh", "-c", FORMAT_SCRIPT, "dclab-aptcache-format", device])
    );
    // nofail: a node whose cache disk is missing still boots.
    let _ = writeln!(
        y,
        "mounts:\n  - {}",
        q_list(&[device, APT_CACHE_DIR, "ext4", "defaults,nofail", "0", "2"])
    );
    y.push_str("packages:\n  - \"apt-cacher-ng\"\n");
    // runcmd runs after packages are installed, once per instance: a cache
    // disk from an earlier lab may carry another uid, hence -R.
    let _ = writeln!(
        y,
        "runcmd:\n  - {}\n  - {}",
        q_list(&["chown", "-R", "apt-cacher-ng:apt-cacher-ng", APT_CACHE_DIR]),
        q_list(&["systemctl", "restart", "apt-cacher-ng"])
    );
}

pub fn network_config(seed: &Seed) -> String {
    let mut y = String::from("version: 2\nethernets:\n");
    if seed.nics.is_empty() {
        // An empty mapping, not a missing one: no interface gets DHCP either.
        y.truncate(y.len() - 1);
        y.push_str(" {}\n");
    }
    for (i, (mac, addr)) in seed.nics.iter().enumerate() {
        let name = format!("eth{i}");
        let _ = writeln!(y, "  {name}:");
        let _ = writeln!(
            y,
            "    match:\n      macaddress: {}",
            q(&mac.to_ascii_lowercase())
        );
        let _ = writeln!(y, "    set-name: {}", q(&name));
        if addr.is_empty() {
            y.push_str("    addresses: []\n");
        } else {
            let _ = writeln!(y, "    addresses:\n      - {}", q(addr));
        }
        y.push_str("    dhcp4: false\n    dhcp6: false\n");
    }
    y
}

/// Why a seed would break its node even though the YAML stays well formed.
fn check(seed: &Seed) -> anyhow::Result<()> {
    let id_ok = |s: &str| {
        !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !id_ok(&seed.instance_id) {
        anyhow::bail!(
            "seed instance id {:?}: use letters, digits, '-', '_' or '.' (like <lab>-<node>-<hash>)",
            seed.instance_id
        );
    }
    let host_ok = seed.hostname.len() <= 63
        && !seed.hostname.starts_with('-')
        && id_ok(&seed.hostname)
        && !seed.hostname.contains('.');
    if !host_ok {
        anyhow::bail!(
            "seed hostname {:?}: use 1 to 63 letters, digits, '-' or '_', not starting with '-'",
            seed.hostname
        );
    }
    for key in &seed.ssh_authorized_keys {
        let mut words = key.split_whitespace();
        let well_formed = key.chars().all(|c| c == ' ' || c.is_ascii_graphic())
            && words.next().is_some()
            && words.next().is_some();
        if !well_formed {
            anyhow::bail!(
                "SSH key {key:?}: give one public key per entry, on one line, like \"ssh-ed25519 AAAA... user@host\""
            );
        }
    }
    for (mac, addr) in &seed.nics {
        let octets: Vec<&str> = mac.split(':').collect();
        if octets.len() != 6
            || !octets
                .iter()
                .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()))
        {
            anyhow::bail!("seed interface MAC {mac:?}: give six hex octets like 52:54:00:12:34:56");
        }
        let addr_ok = addr.is_empty()
            || addr.split_once('/').is_some_and(|(ip, prefix)| {
                ip.parse::<Ipv4Addr>().is_ok() && prefix.parse::<u8>().is_ok_and(|p| p <= 32)
            });
        if !addr_ok {
            anyhow::bail!(
                "seed address {addr:?} of interface {mac}: give ADDR/PREFIX like 10.0.0.5/24 (or nothing)"
            );
        }
    }
    if seed.apt_cache_device.is_none() {
        if let Some(proxy) = &seed.apt_proxy {
            let ok = proxy.starts_with("http://")
                && proxy.len() > "http://".len()
                && proxy.chars().all(|c| c.is_ascii_graphic());
            if !ok {
                anyhow::bail!("apt proxy {proxy:?}: give a URL like http://10.0.0.5:3142");
            }
        }
    }
    if let Some(device) = &seed.apt_cache_device {
        let ok = device.len() > "/dev/".len()
            && device.starts_with("/dev/")
            && !device.contains("/../")
            && device
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.:".contains(c));
        if !ok {
            anyhow::bail!("apt cache device {device:?}: give the block device in the guest, like /dev/vdb");
        }
    }
    Ok(())
}

/// Writes the NoCloud seed ISO for `seed` to `path`, atomically: a reader
/// sees the old file or the complete new one. Needs `genisoimage`.
pub fn write_seed(path: &Path, seed: &Seed) -> anyhow::Result<()> {
    check(seed)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // In the destination's directory, so the final rename stays on one file system.
    let tmp = tempfile::Builder::new()
        .prefix(".seed-")
        .tempdir_in(parent)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot create a temporary directory in {} for seed {}: {e}",
                parent.display(),
                path.display()
            )
        })?;
    let files = tmp.path().join("files");
    std::fs::create_dir(&files)?;
    for (name, text) in [
        ("meta-data", meta_data(seed)),
        ("user-data", user_data(seed)),
        ("network-config", network_config(seed)),
    ] {
        let file = files.join(name);
        std::fs::write(&file, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    }
    let iso = tmp.path().join("seed.iso");
    let out = Command::new("genisoimage")
        .current_dir(&files)
        .arg("-quiet")
        .arg("-output")
        .arg(&iso)
        .args(["-volid", "cidata", "-joliet", "-rock"])
        .args(["meta-data", "user-data", "network-config"])
        .output()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => anyhow::anyhow!(
                "genisoimage not found, needed for the cloud-init seed {}: install the Debian package genisoimage (scripts/install-deps.sh --vm)",
                path.display()
            ),
            _ => anyhow::anyhow!("cannot run genisoimage for seed {}: {e}", path.display()),
        })?;
    if !out.status.success() {
        anyhow::bail!(
            "genisoimage failed ({}) building seed {}: {}",
            out.status,
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // On disk before the rename makes it visible.
    std::fs::File::open(&iso)?.sync_all()?;
    std::fs::rename(&iso, path)
        .map_err(|e| anyhow::anyhow!("cannot move the new seed into {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests;
