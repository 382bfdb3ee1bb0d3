//! Address types the topology is made of: MACs and IPv4 CIDRs, parsed strictly.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An Ethernet address, unicast only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("malformed MAC {s:?}: expected six hex pairs like 02:00:00:00:00:01");
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut bytes = [0u8; 6];
        for (byte, part) in bytes.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if bytes[0] & 1 == 1 {
            return Err(format!(
                "MAC {s} is a multicast or broadcast address; a port needs a unicast MAC"
            ));
        }
        if bytes == [0; 6] {
            return Err(format!("MAC {s} is all zeros; a port needs a real unicast MAC"));
        }
        Ok(Mac(bytes))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An IPv4 network in CIDR form, with host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// Addresses usable by ports: all but the network and broadcast addresses
    /// (for /31 and /32 every address is usable).
    pub fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        if !self.contains(ip) {
            return false;
        }
        self.prefix >= 31 || (ip != self.addr && ip != self.broadcast())
    }

    /// The first and last usable host addresses as integers.
    pub fn host_range(&self) -> (u32, u32) {
        let (first, last) = (u32::from(self.addr), u32::from(self.broadcast()));
        if self.prefix >= 31 {
            (first, last)
        } else {
            (first + 1, last - 1)
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("malformed CIDR {s:?}: expected an IPv4 network like 10.0.0.0/24");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let cidr = Cidr { addr, prefix };
        if u32::from(addr) & !cidr.mask() != 0 {
            let net = Ipv4Addr::from(u32::from(addr) & cidr.mask());
            return Err(format!(
                "CIDR {s} has host bits set; did you mean {net}/{prefix}?"
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_rejects_bad_input() {
        let mac: Mac = "02:AB:00:00:00:01".parse().unwrap();
        assert_eq!(mac.to_string(), "02:ab:00:00:00:01");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:0g",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "2:0:0:0:0:1",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cidr_parses_contains_and_overlaps() {
        let net: Cidr = "10.0.0.0/24".parse().unwrap();
        assert!(net.contains("10.0.0.7".parse().unwrap()));
        assert!(!net.contains("10.0.1.7".parse().unwrap()));
        assert_eq!(net.broadcast().to_string(), "10.0.0.255");
        assert!(!net.is_host_address("10.0.0.0".parse().unwrap()));
        assert!(!net.is_host_address("10.0.0.255".parse().unwrap()));
        let wide: Cidr = "10.0.0.0/16".parse().unwrap();
        assert!(net.overlaps(&wide) && wide.overlaps(&net));
        assert!(!net.overlaps(&"10.0.1.0/24".parse().unwrap()));
        for bad in ["10.0.0.1/24", "10.0.0.0/33", "10.0.0.0", "x/24", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} accepted");
        }
    }
}
