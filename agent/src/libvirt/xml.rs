//! Libvirt domain XML for lab nodes: direct kernel boot for micro-VMs or
//! disk boot for cloud images, virtio disks (qcow2 overlays), tap
//! interfaces the agent plugs into its OvS bridge, a serial console on a
//! unix socket.

use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// Micro-VM: kernel and initramfs given to qemu directly.
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        cmdline: String,
    },
    /// Cloud image: boot from the first disk.
    Disk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// Tap device libvirt creates; the agent attaches it to the bridge.
    pub tap: String,
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub name: String,
    /// `qemu` (TCG: KVM guests stall on these machines) or `test` for
    /// libvirt's test driver.
    pub domain_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub boot: Boot,
    /// qcow2 files, in order (vda, vdb, ...).
    pub disks: Vec<PathBuf>,
    pub nics: Vec<Nic>,
    pub serial_socket: Option<PathBuf>,
    /// A read-only CD-ROM image (the cloud-init NoCloud seed).
    pub cdrom: Option<PathBuf>,
}

impl VmSpec {
    /// A bare domain for libvirt's test driver (`test:///default`).
    #[cfg(test)]
    pub fn for_test_driver(name: &str) -> VmSpec {
        VmSpec {
            name: name.into(),
            domain_type: "test".into(),
            vcpus: 1,
            memory_mib: 128,
            boot: Boot::Disk,
            disks: vec![],
            nics: vec![],
            serial_socket: None,
            cdrom: None,
        }
    }
}

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn path(p: &std::path::Path) -> String {
    escape(&p.display().to_string())
}

pub fn domain_xml(spec: &VmSpec) -> String {
    let mut x = String::new();
    let _ = writeln!(x, "<domain type='{}'>", escape(&spec.domain_type));
    let _ = writeln!(x, "  <name>{}</name>", escape(&spec.name));
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", spec.memory_mib);
    let _ = writeln!(x, "  <vcpu>{}</vcpu>", spec.vcpus);
    x.push_str("  <os>\n    <type arch='x86_64'>hvm</type>\n");
    match &spec.boot {
        Boot::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            let _ = writeln!(x, "    <kernel>{}</kernel>", path(kernel));
            let _ = writeln!(x, "    <initrd>{}</initrd>", path(initrd));
            let _ = writeln!(x, "    <cmdline>{}</cmdline>", escape(cmdline));
        }
        Boot::Disk => x.push_str("    <boot dev='hd'/>\n"),
    }
    x.push_str("  </os>\n  <on_poweroff>destroy</on_poweroff>\n  <devices>\n");
    for (i, disk) in spec.disks.iter().enumerate() {
        let dev = format!("vd{}", (b'a' + i as u8) as char);
        let _ = writeln!(
            x,
            "    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='{}'/><target dev='{dev}' bus='virtio'/></disk>",
            path(disk)
        );
    }
    if let Some(iso) = &spec.cdrom {
        let _ = writeln!(
            x,
            "    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>\
             <source file='{}'/><target dev='sda' bus='sata'/><readonly/></disk>",
            path(iso)
        );
    }
    for nic in &spec.nics {
        let _ = writeln!(
            x,
            "    <interface type='ethernet'><mac address='{}'/><target dev='{}' managed='yes'/>\
             <model type='virtio'/></interface>",
            escape(&nic.mac),
            escape(&nic.tap)
        );
    }
    if let Some(socket) = &spec.serial_socket {
        let _ = writeln!(
            x,
            "    <serial type='unix'><source mode='bind' path='{}'/><target port='0'/></serial>",
            path(socket)
        );
    }
    x.push_str("  </devices>\n</domain>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_vm_xml_has_kernel_disks_taps_and_serial() {
        let spec = VmSpec {
            name: "dclab-lab1-a".into(),
            domain_type: "qemu".into(),
            vcpus: 1,
            memory_mib: 256,
            boot: Boot::Kernel {
                kernel: "/img/vmlinuz".into(),
                initrd: "/img/initrd.img".into(),
                cmdline: "console=ttyS0 dclab.ip=10.0.0.1/24 x=<&>".into(),
            },
            disks: vec!["/var/lib/dclab/a.qcow2".into(), "/var/lib/dclab/a-1.qcow2".into()],
            nics: vec![Nic {
                tap: "dl-a-0".into(),
                mac: "02:00:00:00:00:01".into(),
            }],
            serial_socket: Some("/run/dclab/a.sock".into()),
            cdrom: Some("/var/lib/dclab/seed.iso".into()),
        };
        let xml = domain_xml(&spec);
        assert!(xml.starts_with("<domain type='qemu'>"));
        assert!(xml.contains("<cmdline>console=ttyS0 dclab.ip=10.0.0.1/24 x=&lt;&amp;&gt;</cmdline>"));
        assert!(
            xml.contains("<target dev='vda' bus='virtio'/>")
                && xml.contains("<target dev='vdb' bus='virtio'/>")
        );
        assert!(xml.contains("<target dev='dl-a-0' managed='yes'/>"));
        assert!(xml.contains("<source mode='bind' path='/run/dclab/a.sock'/>"));
        assert!(xml.contains("device='cdrom'") && xml.contains("<source file='/var/lib/dclab/seed.iso'/>"));
        assert_eq!(escape("a'b\"c"), "a&apos;b&quot;c");
    }
}
