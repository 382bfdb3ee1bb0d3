//! Labs for tests: lab files written to a directory, labs taken down
//! when the test ends however it ends, and what libvirt says of domains.

use std::path::Path;
use std::process::Command;

use crate::ctl::Ctl;

/// Nodes get `ip` on lan (10.0.0.0/24) and the same host part on mgmt
/// (10.1.0.0/24), their second interface.
pub fn lab_file(dir: &Path, name: &str, nodes: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "[lab]\nname = \"{name}\"\nimage = \"micro\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n\
         \n[[network]]\nname = \"mgmt\"\ncidr = \"10.1.0.0/24\"\n"
    );
    for (node, host, ip) in nodes {
        let mgmt = ip.replace("10.0.", "10.1.");
        text.push_str(&format!(
            "\n[[node]]\nname = \"{node}\"\nmemory = \"192MiB\"\nhost = \"{host}\"\n\
             disks = [\"16MiB\"]\ninterfaces = [{{ network = \"lan\", ip = \"{ip}\" }}, {{ network = \"mgmt\", ip = \"{mgmt}\" }}]\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A lab of container nodes on lan (10.0.0.0/24); `nodes`: (name, host, ip).
pub fn container_lab_file(dir: &Path, name: &str, nodes: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "[lab]\nname = \"{name}\"\nimage = \"micro\"\n\n[[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n"
    );
    for (node, host, ip) in nodes {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{node}\"\nkind = \"container\"\nmemory = \"128MiB\"\nhost = \"{host}\"\n\
             interfaces = [{{ network = \"lan\", ip = \"{ip}\" }}]\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Brings up the lab of an example file as `lab` (its name `example_name`
/// replaced, so runs of a test do not meet), from a copy in `dir`, and
/// checks that it became ready within `timeout` seconds.
pub fn up_example(ctl: &Ctl, dir: &Path, example: &str, example_name: &str, lab: &str, timeout: &str) {
    let file = dir.join(format!("{lab}.toml"));
    let renamed = example.replace(&format!("\"{example_name}\""), &format!("\"{lab}\""));
    assert_ne!(renamed, example, "the example is not named {example_name:?}");
    std::fs::write(&file, renamed).unwrap();
    let up = ctl.json(&["lab", "up", file.to_str().unwrap(), "--timeout", timeout]);
    assert_eq!(up["ready"], true, "{up}");
}

/// Takes the labs down even when an assertion fails.
pub struct Labs<'a>(pub &'a Ctl, pub Vec<String>);

impl Drop for Labs<'_> {
    fn drop(&mut self) {
        for lab in &self.1 {
            let _ = self.0.run(&["lab", "down", lab]);
        }
    }
}

/// Links named `dl…` (node taps and veths) in `ns`, or in the root
/// namespace.
pub fn node_links(ns: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let out = cmd.args(["-o", "link", "show"]).output().expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with("dl"))
        .collect()
}

/// Both of libvirt's drivers dclab uses: VMs and containers.
const URIS: [&str; 2] = ["qemu:///system", "lxc:///system"];

pub fn domains_named(part: &str) -> Vec<String> {
    let mut names = Vec::new();
    for uri in URIS {
        let out = Command::new("virsh")
            .args(["-c", uri, "list", "--all", "--name"])
            .output()
            .expect("virsh runs");
        names.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains(part))
                .map(String::from),
        );
    }
    names
}

/// What virsh says of the domain, from whichever driver has it.
pub fn domain_state(domain: &str) -> String {
    for uri in URIS {
        let out = Command::new("virsh")
            .args(["-c", uri, "domstate", domain])
            .output()
            .expect("virsh runs");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
    }
    format!("no domain {domain}")
}
