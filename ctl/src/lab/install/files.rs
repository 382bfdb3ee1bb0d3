//! What `ctl lab install` writes into the lab's install directory: the
//! inventory (from the lab: groups are roles, addresses per network), the
//! SSH configuration that reaches every node through `ctl lab proxy`,
//! ansible.cfg, the node key and the lab's generated passwords (named in
//! the playbook's manifest).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use dclab_proto::v1;
use serde_json::{json, Map, Value};

/// Paths in the install directory.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn inventory(&self) -> PathBuf {
        self.dir.join("inventory.json")
    }
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }
    pub fn ansible_cfg(&self) -> PathBuf {
        self.dir.join("ansible.cfg")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    pub fn secrets(&self) -> PathBuf {
        self.dir.join("secrets.json")
    }
    /// Variables given with `--var`, remembered for later installs.
    pub fn vars(&self) -> PathBuf {
        self.dir.join("vars.json")
    }
    pub fn control_dir(&self) -> PathBuf {
        self.dir.join("cp")
    }
    /// The SSH master connection Ansible keeps to `node` (control_path).
    pub fn control_socket(&self, node: &str) -> PathBuf {
        self.control_dir().join(node)
    }
}

/// Ansible group names may not hold `-`: `object-storage` is `object_storage`.
pub fn group_name(role: &str) -> String {
    role.replace('-', "_")
}

/// The inventory as JSON (which Ansible's YAML inventory plugin reads).
pub fn inventory(lab: &v1::Lab) -> Value {
    let mut hosts = Map::new();
    let mut groups: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for node in &lab.nodes {
        let Some(spec) = &node.spec else { continue };
        let addresses: Map<String, Value> = node
            .nics
            .iter()
            .map(|n| (n.network.clone(), Value::String(n.ip.clone())))
            .collect();
        let kind = crate::lab::show::kind_name(spec.kind);
        hosts.insert(
            spec.name.clone(),
            json!({"dclab_kind": kind, "dclab_host": node.host, "dclab_addresses": addresses}),
        );
        if !spec.role.is_empty() {
            groups
                .entry(group_name(&spec.role))
                .or_default()
                .insert(spec.name.clone(), json!({}));
        }
    }
    let children: Map<String, Value> = groups
        .into_iter()
        .map(|(g, members)| (g, json!({"hosts": members})))
        .collect();
    json!({"all": {"hosts": hosts, "children": children}})
}

/// Every node by its lab name, through `ctl lab proxy` (`proxy` is this
/// ctl and its connection options, shell-quoted).
pub fn ssh_config(layout: &Layout, proxy: &str, lab: &str) -> String {
    format!(
        "# Written by ctl lab install: every node of lab {lab}, reached through the coordinator.\n\
         Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n\
         \x20 # A node's host key is new after every rebuild of the lab.\n\
         \x20 StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n\
         \x20 ServerAliveInterval 15\n  ProxyCommand {proxy} lab proxy {lab} %n 22\n",
        key = layout.key().display(),
    )
}

pub fn ansible_cfg(layout: &Layout, playbooks: &Path) -> String {
    format!(
        "# Written by ctl lab install.\n[defaults]\ninventory = {inventory}\n\
         stdout_callback = dclab_progress\ncallback_plugins = {callbacks}\n\
         host_key_checking = False\nforks = 10\ninterpreter_python = /usr/bin/python3\n\
         retry_files_enabled = False\ntimeout = 60\nnocolor = True\n\
         # The lab's generated passwords never reach the log.\ndisplay_args_to_stdout = False\n\n\
         [ssh_connection]\nssh_args = -F {ssh} -o ControlMaster=auto -o ControlPersist=300s\n\
         control_path_dir = {cp}\ncontrol_path = %(directory)s/%%h\npipelining = True\n\
         # sshd in a node that just started may not listen yet.\nretries = 5\n",
        inventory = layout.inventory().display(),
        callbacks = playbooks.join("callback_plugins").display(),
        ssh = layout.ssh_config().display(),
        cp = layout.control_dir().display(),
    )
}

/// The lab's passwords (`names`, from the playbook's manifest): kept ones
/// stay, missing ones are made (hex, so they need no quoting in URLs, INI
/// files or shells).
pub fn secrets(existing: Option<&str>, names: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut map: Map<String, Value> = match existing {
        Some(text) => serde_json::from_str(text).context("the lab's secrets.json is not a JSON object")?,
        None => Map::new(),
    };
    for name in names {
        if !map.get(name).is_some_and(Value::is_string) {
            map.insert(name.clone(), Value::String(random_hex(12)?));
        }
    }
    Ok(map)
}

/// `--var KEY=VALUE` arguments, checked before anything is written: the key
/// is an Ansible variable name, the value a string.
pub fn parse_vars(given: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    given
        .iter()
        .map(|arg| {
            let Some((key, value)) = arg.split_once('=') else {
                anyhow::bail!("--var {arg:?}: give KEY=VALUE, e.g. --var neutron_backend=dclab");
            };
            let mut chars = key.chars();
            let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                anyhow::bail!(
                    "--var {arg:?}: {key:?} is no variable name (letters, digits and _, not starting with a digit)"
                );
            }
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// The remembered variables with the given ones laid over them: a lab
/// installed with `--var neutron_backend=dclab` keeps it when installed
/// again without the flag.
pub fn vars(existing: Option<&str>, given: &[(String, String)]) -> anyhow::Result<Map<String, Value>> {
    let mut map: Map<String, Value> = match existing {
        Some(text) => serde_json::from_str(text).context("the lab's vars.json is not a JSON object")?,
        None => Map::new(),
    };
    for (key, value) in given {
        map.insert(key.clone(), Value::String(value.clone()));
    }
    Ok(map)
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `text` beside `path` and renames it in: a reader never sees
/// half a file.
pub fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The node key (made once) and its public half.
pub fn node_key(layout: &Layout) -> anyhow::Result<String> {
    let key = layout.key();
    if !key.exists() {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "dclab-lab-install", "-f"])
            .arg(&key)
            .output()
            .context("cannot run ssh-keygen; install openssh-client")?;
        if !out.status.success() {
            bail!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let public = key.with_extension("pub");
    Ok(std::fs::read_to_string(&public)
        .with_context(|| format!("reading {}", public.display()))?
        .trim()
        .to_string())
}
