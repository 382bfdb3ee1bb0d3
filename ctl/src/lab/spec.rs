//! A checked lab file as the coordinator's LabSpec.

use dclab_proto::v1;

use super::Lab;

pub fn to_spec(lab: &Lab) -> v1::LabSpec {
    v1::LabSpec {
        name: lab.name.clone(),
        networks: lab
            .networks
            .iter()
            .map(|n| v1::LabNetwork {
                name: n.name.clone(),
                cidr: format!("{}/{}", n.addr, n.prefix),
            })
            .collect(),
        nodes: lab
            .nodes
            .iter()
            .map(|n| v1::NodeSpec {
                name: n.name.clone(),
                role: n.role.clone(),
                vcpus: n.vcpus,
                memory_mib: n.memory_mib,
                image: n.image.clone(),
                disks_mib: n.disks_mib.clone(),
                host: n.host.clone().unwrap_or_default(),
                interfaces: n
                    .interfaces
                    .iter()
                    .map(|i| v1::InterfaceSpec {
                        network: i.network.clone(),
                        ip: i.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
        ssh_keys: lab.ssh_keys.clone(),
    }
}
