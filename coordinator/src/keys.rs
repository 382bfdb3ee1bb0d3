//! Mapping keys: addresses from the configured key range that stand in for
//! tenant addresses on the physical network. Unique per host only.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use dclab_proto::ApiError;

use crate::addr::Cidr;

#[derive(Debug, Clone, Copy)]
pub struct KeyRange(pub Cidr);

impl KeyRange {
    /// The lowest key of the range not in `used`.
    pub fn allocate(&self, host: &str, used: &BTreeSet<u32>) -> Result<Ipv4Addr, ApiError> {
        self.allocate_from(host, used, 0)
    }

    /// The lowest key not in `used` and not below `from`; callers that know
    /// every key below `from` is taken skip rescanning them.
    pub fn allocate_from(&self, host: &str, used: &BTreeSet<u32>, from: u32) -> Result<Ipv4Addr, ApiError> {
        let (first, last) = self.0.host_range();
        let first = first.max(from);
        let mut candidate = first;
        for &key in used.range(first..=last) {
            if key != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate > last {
            return Err(ApiError::ResourceExhausted(format!(
                "mapping key range {} is exhausted on host {host} ({} keys in use); \
                 restart the coordinator with a wider --key-range",
                self.0,
                used.len()
            )));
        }
        Ok(Ipv4Addr::from(candidate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_reports_exhaustion() {
        let range = KeyRange("100.64.0.0/29".parse().unwrap());
        let mut used = BTreeSet::new();
        let first = range.allocate("h1", &used).unwrap();
        assert_eq!(first.to_string(), "100.64.0.1");
        used.extend([u32::from(first), u32::from(first) + 1, u32::from(first) + 3]);
        assert_eq!(range.allocate("h1", &used).unwrap().to_string(), "100.64.0.3");
        used.extend((1..=6).map(|i| 0x6440_0000 + i));
        let err = range.allocate("h1", &used).unwrap_err();
        assert!(matches!(err, ApiError::ResourceExhausted(_)));
        assert!(err.to_string().contains("h1"));
    }
}
