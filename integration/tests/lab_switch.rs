//! A lab network of kind "switch" on real OvS, libvirtd and micro-VMs: two
//! nodes on it reach each other with addresses that are not their lab
//! addresses (what a nested dclab's uplinks put on its tunnel network, and
//! what the rewrite pipeline drops), an unpinned member is placed with the
//! pinned one, and a node of the same lab on a rewrite network on the same
//! host neither reaches nor sees that traffic.

use std::path::Path;

use dclab_integration::cluster;
use dclab_integration::ctl::Ctl;
use dclab_integration::labs::Labs;
use dclab_integration::libvirtd::{vm_dir, Libvirtd};

/// a (h1): lan + tunnel; b (unpinned): tunnel; c (h1): lan.
fn nested_lab(dir: &Path, name: &str) -> String {
    let text = format!(
        "[lab]\nname = \"{name}\"\nimage = \"micro\"\n\n\
         [[network]]\nname = \"lan\"\ncidr = \"10.0.0.0/24\"\n\n\
         [[network]]\nname = \"tunnel\"\ncidr = \"10.9.0.0/24\"\nkind = \"switch\"\n\n\
         [[node]]\nname = \"a\"\nmemory = \"192MiB\"\nhost = \"h1\"\n\
         interfaces = [{{ network = \"lan\", ip = \"10.0.0.1\" }}, {{ network = \"tunnel\", ip = \"10.9.0.1\" }}]\n\n\
         [[node]]\nname = \"b\"\nmemory = \"192MiB\"\ninterfaces = [{{ network = \"tunnel\", ip = \"10.9.0.2\" }}]\n\n\
         [[node]]\nname = \"c\"\nmemory = \"192MiB\"\nhost = \"h1\"\ninterfaces = [{{ network = \"lan\", ip = \"10.0.0.3\" }}]\n"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_switch_network_carries_any_addresses_between_its_members_only() {
    let _libvirtd = Libvirtd::ensure();
    let c = cluster("sw", 2, false);
    let ctl = Ctl::new(&c);
    let dir = vm_dir("dclab-switchtest");
    let lab = format!("nest{}", std::process::id());
    let file = nested_lab(dir.path(), &lab);
    let _labs = Labs(&ctl, vec![lab.clone()]);

    let checked = ctl.json(&["lab", "check", &file]);
    assert_eq!(checked["networks"][1]["kind"], "switch", "{checked}");
    let up = ctl.json(&["lab", "up", &file]);
    assert_eq!(up["ready"], true, "{up}");
    let hosts: Vec<(&str, &str)> = up["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["host"].as_str().unwrap()))
        .collect();
    // b would go to the emptier h2 alone; the tunnel keeps it with a.
    assert_eq!(hosts, [("a", "h1"), ("b", "h1"), ("c", "h1")]);
    assert_eq!(up["networks"][1]["kind"], "switch", "{up}");

    let exec = |node: &str, cmd: &str| ctl.run(&["lab", "exec", &lab, node, "--timeout", "60", "--", cmd]);
    let must = |node: &str, cmd: &str| {
        let run = exec(node, cmd);
        assert!(run.ok(), "{node}: {cmd}: {}{}", run.stdout, run.stderr);
        run.stdout
    };
    for node in ["a", "b", "c"] {
        must(node, "true");
    }
    must("a", "ping -c 2 -W 2 10.0.0.3");
    must("a", "ping -c 2 -W 2 10.9.0.2");

    // Addresses no lab file gave: carried on the tunnel, dropped on lan.
    must(
        "a",
        "ip addr add 192.168.77.1/24 dev eth1 && ip addr add 192.168.78.1/24 dev eth0",
    );
    must("b", "ip addr add 192.168.77.2/24 dev eth0");
    must("c", "ip addr add 192.168.78.3/24 dev eth0");
    let rx = || {
        must("c", "cat /sys/class/net/eth0/statistics/rx_packets")
            .trim()
            .to_string()
    };
    let before = rx();
    must("a", "ip neigh flush dev eth1; ping -c 5 -i 0.2 -W 2 192.168.77.2");
    assert_eq!(
        rx(),
        before,
        "c received frames while a and b talked on the tunnel"
    );
    let lan = exec("a", "ping -c 2 -W 1 192.168.78.3");
    assert_eq!(
        lan.code, 1,
        "the rewrite network carried foreign addresses: {}",
        lan.stdout
    );
    let cross = exec(
        "c",
        "ip addr add 192.168.77.3/24 dev eth0 && ping -c 2 -W 1 192.168.77.2",
    );
    assert_eq!(cross.code, 1, "c reached b's tunnel address: {}", cross.stdout);

    ctl.ok(&["lab", "down", &lab]);
    let rules = ctl.ok(&["rules", "show", "--host", "h1"]);
    assert!(
        !rules.contains(&format!("port:{lab}.")),
        "hub flows left on h1:\n{rules}"
    );
}
