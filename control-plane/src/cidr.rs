//! IP prefixes such as `192.168.0.0/24` and `2001:db8:1::/64`, one type over both families:
//! ipnet's prefixes, held to having no host bits set, with messages that name what is wrong.

use std::fmt;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address family, as [`Cidr`] computes with it: its ipnet prefix type.
pub trait Family: Copy + Eq + fmt::Display + FromStr {
    /// ipnet's prefix of the family.
    type Net: Copy + Eq + Hash + fmt::Debug + fmt::Display;
    /// Bits in an address.
    const BITS: u8;
    /// Its name in messages.
    const NAME: &'static str;
    /// A prefix of it, for messages.
    const EXAMPLE: &'static str;
    /// The address as a number.
    fn bits(self) -> u128;
    /// The address of a number (the low [`Family::BITS`] bits).
    fn from_bits(b: u128) -> Self;
    /// The prefix of `addr` and `len` (`None`: a length beyond the address's bits).
    fn net(addr: Self, len: u8) -> Option<Self::Net>;
    /// Its first address.
    fn network(net: &Self::Net) -> Self;
    /// Its last address.
    fn last(net: &Self::Net) -> Self;
    /// Its length.
    fn prefix_len(net: &Self::Net) -> u8;
    /// Whether it holds `ip`.
    fn contains(net: &Self::Net, ip: Self) -> bool;
    /// Whether it holds all of `other`.
    fn covers(net: &Self::Net, other: &Self::Net) -> bool;
}

impl Family for Ipv4Addr {
    type Net = Ipv4Net;
    const BITS: u8 = 32;
    const NAME: &'static str = "IPv4";
    const EXAMPLE: &'static str = "192.168.0.0/24";
    fn bits(self) -> u128 {
        u128::from(u32::from(self))
    }
    fn from_bits(b: u128) -> Self {
        Ipv4Addr::from(b as u32)
    }
    fn net(addr: Self, len: u8) -> Option<Ipv4Net> {
        Ipv4Net::new(addr, len).ok()
    }
    fn network(net: &Ipv4Net) -> Self {
        net.network()
    }
    fn last(net: &Ipv4Net) -> Self {
        net.broadcast()
    }
    fn prefix_len(net: &Ipv4Net) -> u8 {
        net.prefix_len()
    }
    fn contains(net: &Ipv4Net, ip: Self) -> bool {
        net.contains(&ip)
    }
    fn covers(net: &Ipv4Net, other: &Ipv4Net) -> bool {
        net.contains(other)
    }
}

impl Family for Ipv6Addr {
    type Net = Ipv6Net;
    const BITS: u8 = 128;
    const NAME: &'static str = "IPv6";
    const EXAMPLE: &'static str = "2001:db8:1::/64";
    fn bits(self) -> u128 {
        u128::from(self)
    }
    fn from_bits(b: u128) -> Self {
        Ipv6Addr::from(b)
    }
    fn net(addr: Self, len: u8) -> Option<Ipv6Net> {
        Ipv6Net::new(addr, len).ok()
    }
    fn network(net: &Ipv6Net) -> Self {
        net.network()
    }
    fn last(net: &Ipv6Net) -> Self {
        net.broadcast()
    }
    fn prefix_len(net: &Ipv6Net) -> u8 {
        net.prefix_len()
    }
    fn contains(net: &Ipv6Net, ip: Self) -> bool {
        net.contains(&ip)
    }
    fn covers(net: &Ipv6Net, other: &Ipv6Net) -> bool {
        net.contains(other)
    }
}

/// A network: an ipnet prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr<A: Family> {
    net: A::Net,
}

/// An IPv4 network.
pub type Ipv4Cidr = Cidr<Ipv4Addr>;
/// An IPv6 network.
pub type Ipv6Cidr = Cidr<Ipv6Addr>;

/// Why a subnet was refused; the message names it and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/` between an address and a length.
    #[error("invalid subnet \"{text}\": expected an {family} prefix like {example}")]
    Syntax {
        /// The subnet as given.
        text: String,
        /// The family expected.
        family: &'static str,
        /// A prefix of it.
        example: &'static str,
    },
    /// The part before the `/` is not an address of the family.
    #[error("invalid subnet \"{text}\": \"{addr}\" is not an {family} address")]
    Address {
        /// The whole subnet as given.
        text: String,
        /// Its address part.
        addr: String,
        /// The family expected.
        family: &'static str,
    },
    /// A prefix length beyond the address's bits.
    #[error("invalid subnet \"{text}\": prefix length must be 0-{max}")]
    PrefixLength {
        /// The subnet as given.
        text: String,
        /// The address's bits.
        max: u8,
    },
    /// Bits set beyond the prefix.
    #[error("invalid subnet \"{addr}/{len}\": host bits are set; did you mean {network}/{len}?")]
    HostBits {
        /// The address given.
        addr: String,
        /// The prefix length.
        len: u8,
        /// The network the prefix covers.
        network: String,
    },
}

impl<A: Family> Cidr<A> {
    /// A prefix from its parts.
    ///
    /// # Errors
    /// [`CidrError`] when the length exceeds the address's bits or host bits are set.
    pub fn new(addr: A, len: u8) -> Result<Cidr<A>, CidrError> {
        let net = A::net(addr, len).ok_or_else(|| CidrError::PrefixLength {
            text: format!("{addr}/{len}"),
            max: A::BITS,
        })?;
        let network = A::network(&net);
        if network != addr {
            return Err(CidrError::HostBits {
                addr: addr.to_string(),
                len,
                network: network.to_string(),
            });
        }
        Ok(Cidr { net })
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        A::prefix_len(&self.net)
    }

    /// The network (first) address.
    pub fn network(&self) -> A {
        A::network(&self.net)
    }

    /// The last address (IPv4's broadcast address).
    pub fn last(&self) -> A {
        A::last(&self.net)
    }

    /// The first address after the network address (the default gateway).
    pub fn first_host(&self) -> A {
        A::from_bits(self.network().bits().wrapping_add(1))
    }

    /// Whether `ip` lies in this prefix.
    pub fn contains(&self, ip: A) -> bool {
        A::contains(&self.net, ip)
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr<A>) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// Whether `other` lies wholly inside this prefix.
    pub fn covers(&self, other: &Cidr<A>) -> bool {
        A::covers(&self.net, &other.net)
    }

    /// The number of addresses (`u64::MAX` for more).
    pub fn size(&self) -> u64 {
        let host_bits = u32::from(A::BITS - self.prefix_len());
        if host_bits >= 64 {
            u64::MAX
        } else {
            1u64 << host_bits
        }
    }
}

impl Cidr<Ipv4Addr> {
    /// The broadcast (last) address.
    pub fn broadcast(&self) -> Ipv4Addr {
        self.last()
    }
}

impl<A: Family> fmt::Display for Cidr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net.fmt(f)
    }
}

impl<A: Family> FromStr for Cidr<A> {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').ok_or_else(|| CidrError::Syntax {
            text: s.to_string(),
            family: A::NAME,
            example: A::EXAMPLE,
        })?;
        let addr: A = a.parse().map_err(|_| CidrError::Address {
            text: s.to_string(),
            addr: a.to_string(),
            family: A::NAME,
        })?;
        let len: u8 = l.parse().map_err(|_| CidrError::PrefixLength {
            text: s.to_string(),
            max: A::BITS,
        })?;
        Cidr::new(addr, len)
    }
}

impl<A: Family> Serialize for Cidr<A> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, A: Family> Deserialize<'de> for Cidr<A> {
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

    #[test]
    fn ipv6_prefixes_compute_as_ipv4_ones_do() {
        let c: Ipv6Cidr = "2001:db8:1::/64".parse().unwrap();
        assert_eq!(c.first_host(), "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            c.last(),
            "2001:db8:1:0:ffff:ffff:ffff:ffff".parse::<Ipv6Addr>().unwrap()
        );
        assert!(c.contains("2001:db8:1::77".parse().unwrap()));
        assert!(!c.contains("2001:db8:2::1".parse().unwrap()));
        assert_eq!(c.size(), u64::MAX, "2^64 addresses saturate");
        assert_eq!("fd00::/120".parse::<Ipv6Cidr>().unwrap().size(), 256);
        let big: Ipv6Cidr = "2001:db8::/32".parse().unwrap();
        assert!(big.overlaps(&c) && c.overlaps(&big) && big.covers(&c) && !c.covers(&big));
        assert!("::/0".parse::<Ipv6Cidr>().unwrap().contains("ff02::1".parse().unwrap()));
        assert_eq!(
            "2001:db8::1/64".parse::<Ipv6Cidr>().unwrap_err().to_string(),
            "invalid subnet \"2001:db8::1/64\": host bits are set; did you mean 2001:db8::/64?"
        );
        assert_eq!(
            "2001:db8::/129".parse::<Ipv6Cidr>().unwrap_err().to_string(),
            "invalid subnet \"2001:db8::/129\": prefix length must be 0-128"
        );
        assert!("10.0.0.0/8"
            .parse::<Ipv6Cidr>()
            .unwrap_err()
            .to_string()
            .contains("is not an IPv6 address"));
        assert!("2001:db8::"
            .parse::<Ipv6Cidr>()
            .unwrap_err()
            .to_string()
            .contains("expected an IPv6 prefix like 2001:db8:1::/64"));
    }
}
