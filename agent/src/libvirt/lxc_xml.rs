//! Libvirt domain XML for container nodes (libvirt's LXC driver): the
//! node's overlay rootfs as `/`, veth interfaces whose host ends the
//! agent plugs into its OvS bridge like taps (libvirt sets the guest
//! end's MAC and addresses), `/dev/net/tun` passed in, and memory and CPU
//! limits as cgroup settings.

use std::fmt::Write;
use std::path::PathBuf;

use super::xml::escape;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerNic {
    /// Host end of the veth pair, named like a VM's tap.
    pub host_dev: String,
    /// `eth0`, `eth1`, ... inside.
    pub guest_dev: String,
    pub mac: String,
    /// Address and prefix length, when the lab gives one.
    pub ip: Option<(String, u8)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub rootfs: PathBuf,
    pub init: String,
    /// Environment of init (the micro rootfs reads its hostname here).
    pub env: Vec<(String, String)>,
    pub nics: Vec<ContainerNic>,
}

/// The CFS period the vCPU quota is expressed in.
const CPU_PERIOD_US: u64 = 100_000;

pub fn container_xml(spec: &ContainerSpec) -> String {
    let mut x = String::new();
    x.push_str("<domain type='lxc'>\n");
    let _ = writeln!(x, "  <name>{}</name>", escape(&spec.name));
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", spec.memory_mib);
    let _ = writeln!(x, "  <vcpu>{}</vcpu>", spec.vcpus);
    // A container sees every host CPU; the quota caps what it may use.
    let _ = writeln!(
        x,
        "  <cputune><period>{CPU_PERIOD_US}</period><quota>{}</quota></cputune>",
        CPU_PERIOD_US * u64::from(spec.vcpus)
    );
    x.push_str("  <os>\n    <type>exe</type>\n");
    let _ = writeln!(x, "    <init>{}</init>", escape(&spec.init));
    for (name, value) in &spec.env {
        let _ = writeln!(
            x,
            "    <initenv name='{}'>{}</initenv>",
            escape(name),
            escape(value)
        );
    }
    x.push_str("  </os>\n");
    // privnet: a network namespace of its own even with no interface.
    x.push_str("  <features><privnet/></features>\n");
    x.push_str(
        "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n",
    );
    x.push_str("  <devices>\n");
    let _ = writeln!(
        x,
        "    <filesystem type='mount'><source dir='{}'/><target dir='/'/></filesystem>",
        escape(&spec.rootfs.display().to_string())
    );
    for nic in &spec.nics {
        let _ = write!(
            x,
            "    <interface type='ethernet'><mac address='{}'/><target dev='{}'/><guest dev='{}'/>",
            escape(&nic.mac),
            escape(&nic.host_dev),
            escape(&nic.guest_dev)
        );
        if let Some((ip, prefix)) = &nic.ip {
            let _ = write!(x, "<ip address='{}' prefix='{prefix}'/>", escape(ip));
        }
        x.push_str("</interface>\n");
    }
    x.push_str("    <console type='pty'/>\n");
    x.push_str(
        "    <hostdev mode='capabilities' type='misc'><source><char>/dev/net/tun</char></source></hostdev>\n",
    );
    x.push_str("  </devices>\n</domain>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_xml_has_rootfs_veths_tun_and_limits() {
        let spec = ContainerSpec {
            name: "dclab-l-c1".into(),
            vcpus: 2,
            memory_mib: 512,
            rootfs: "/var/lib/dclab/labs/l/c1/rootfs".into(),
            init: "/sbin/init".into(),
            env: vec![("DCLAB_HOSTNAME".into(), "c<1>".into())],
            nics: vec![
                ContainerNic {
                    host_dev: "dl-c1-0".into(),
                    guest_dev: "eth0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    ip: Some(("10.0.0.5".into(), 24)),
                },
                ContainerNic {
                    host_dev: "dl-c1-1".into(),
                    guest_dev: "eth1".into(),
                    mac: "02:00:00:00:00:02".into(),
                    ip: None,
                },
            ],
        };
        let xml = container_xml(&spec);
        assert!(xml.starts_with("<domain type='lxc'>"));
        assert!(xml.contains("<memory unit='MiB'>512</memory>"));
        assert!(xml.contains("<quota>200000</quota>"));
        assert!(xml.contains("<initenv name='DCLAB_HOSTNAME'>c&lt;1&gt;</initenv>"));
        assert!(xml.contains("<source dir='/var/lib/dclab/labs/l/c1/rootfs'/><target dir='/'/>"));
        assert!(xml.contains(
            "<target dev='dl-c1-0'/><guest dev='eth0'/><ip address='10.0.0.5' prefix='24'/></interface>"
        ));
        assert!(xml.contains("<target dev='dl-c1-1'/><guest dev='eth1'/></interface>"));
        assert!(xml.contains("<char>/dev/net/tun</char>"));
    }
}
