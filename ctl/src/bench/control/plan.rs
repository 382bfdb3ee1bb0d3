//! Synthetic topologies for the scale benchmark: tenants of realistic
//! size (5 to 40 ports, one network each, all on the same overlapping
//! 10.0.0.0/22), their ports spread over random hosts.

use dclab_proto::v1;

pub struct TenantPlan {
    pub name: String,
    pub cidr: &'static str,
    pub ports: Vec<v1::CreatePortRequest>,
}

/// A small deterministic generator (SplitMix64): same seed, same topology.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

pub fn host_name(i: usize) -> String {
    format!("h{}", i + 1)
}

/// The address of a tenant's `i`-th port inside 10.0.0.0/22.
pub fn port_ip(i: usize) -> String {
    format!("10.0.{}.{}", i / 250, 1 + i % 250)
}

/// A MAC unique across the whole benchmark.
pub fn port_mac(global: usize) -> String {
    let b = (global as u32).to_be_bytes();
    format!("02:d0:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

pub fn plan(hosts: usize, ports: usize, rng: &mut Rng) -> Vec<TenantPlan> {
    let mut tenants = Vec::new();
    let mut placed = 0;
    while placed < ports {
        let size = (5 + rng.below(36)).min(ports - placed);
        let name = format!("t{}", tenants.len());
        let ports = (0..size)
            .map(|i| v1::CreatePortRequest {
                name: format!("{name}-p{i}"),
                tenant: name.clone(),
                network: "net".into(),
                host: host_name(rng.below(hosts)),
                mac: port_mac(placed + i),
                ip: port_ip(i),
                kind: v1::PortKind::Vm.into(),
            })
            .collect();
        tenants.push(TenantPlan {
            name,
            cidr: "10.0.0.0/22",
            ports,
        });
        placed += size;
    }
    tenants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_have_the_asked_size_and_realistic_tenants() {
        let tenants = plan(100, 2000, &mut Rng::new(7));
        assert_eq!(tenants.iter().map(|t| t.ports.len()).sum::<usize>(), 2000);
        assert!(tenants[..tenants.len() - 1]
            .iter()
            .all(|t| (5..=40).contains(&t.ports.len())));
        let again = plan(100, 2000, &mut Rng::new(7));
        assert_eq!(tenants[3].ports[2].host, again[3].ports[2].host);
    }
}
