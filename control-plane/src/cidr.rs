//! IPv4 prefixes such as `192.168.0.0/24`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 network: an address with no host bits set and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    len: u8,
}

/// Why a subnet was refused; the message names it and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/` between an address and a length.
    #[error("invalid subnet \"{0}\": expected an IPv4 prefix like 192.168.0.0/24")]
    Syntax(String),
    /// The part before the `/` is not an IPv4 address.
    #[error("invalid subnet \"{text}\": \"{addr}\" is not an IPv4 address")]
    Address {
        /// The whole subnet as given.
        text: String,
        /// Its address part.
        addr: String,
    },
    /// A prefix length that is not 0-32.
    #[error("invalid subnet \"{0}\": prefix length must be 0-32")]
    PrefixLength(String),
    /// Bits set beyond the prefix.
    #[error("invalid subnet \"{addr}/{len}\": host bits are set; did you mean {network}/{len}?")]
    HostBits {
        /// The address given.
        addr: Ipv4Addr,
        /// The prefix length.
        len: u8,
        /// The network the prefix covers.
        network: Ipv4Addr,
    },
}

impl Ipv4Cidr {
    /// A prefix from its parts.
    ///
    /// # Errors
    /// [`CidrError`] when the length exceeds 32 or host bits are set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Ipv4Cidr, CidrError> {
        if len > 32 {
            return Err(CidrError::PrefixLength(format!("{addr}/{len}")));
        }
        let c = Ipv4Cidr { addr, len };
        if c.network() != addr {
            return Err(CidrError::HostBits {
                addr,
                len,
                network: c.network(),
            });
        }
        Ok(c)
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The netmask as a number.
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The network (first) address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The broadcast (last) address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The first address after the network address (the default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()).wrapping_add(1))
    }

    /// Whether `ip` lies in this prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// Whether `other` lies wholly inside this prefix.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        other.len >= self.len && self.contains(other.network())
    }

    /// The number of addresses.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').ok_or_else(|| CidrError::Syntax(s.to_string()))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| CidrError::Address {
            text: s.to_string(),
            addr: a.to_string(),
        })?;
        let len: u8 = l.parse().map_err(|_| CidrError::PrefixLength(s.to_string()))?;
        Ipv4Cidr::new(addr, len)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_computes() {
        let c: Ipv4Cidr = "192.168.0.0/24".parse().unwrap();
        assert_eq!(c.first_host(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(c.broadcast(), Ipv4Addr::new(192, 168, 0, 255));
        assert!(c.contains(Ipv4Addr::new(192, 168, 0, 77)));
        assert!(!c.contains(Ipv4Addr::new(192, 168, 1, 1)));
        assert_eq!(c.size(), 256);
        let big: Ipv4Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(big.overlaps(&c) && c.overlaps(&big) && big.covers(&c) && !c.covers(&big));
        assert!(!c.overlaps(&"192.168.1.0/24".parse().unwrap()));
    }

    #[test]
    fn clear_errors() {
        assert_eq!(
            "10.0.0.0/33".parse::<Ipv4Cidr>().unwrap_err().to_string(),
            "invalid subnet \"10.0.0.0/33\": prefix length must be 0-32"
        );
        assert_eq!(
            "10.0.0.1/24".parse::<Ipv4Cidr>().unwrap_err().to_string(),
            "invalid subnet \"10.0.0.1/24\": host bits are set; did you mean 10.0.0.0/24?"
        );
        assert!("10.0.0.0"
            .parse::<Ipv4Cidr>()
            .unwrap_err()
            .to_string()
            .contains("expected an IPv4 prefix"));
        assert!("10.0.0.300/24"
            .parse::<Ipv4Cidr>()
            .unwrap_err()
            .to_string()
            .contains("is not an IPv4 address"));
    }
}
