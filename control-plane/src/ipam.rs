//! IP address management, as Docker's default IPAM does it.
//!
//! - Automatic subnets: 172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/16 cut into /20s,
//!   the first that overlaps no existing network.
//! - The gateway is the first host address unless given.
//! - Addresses are handed out lowest-free first from the ip-range (or the subnet), never the
//!   network, broadcast or gateway address, never one held by another endpoint. Leases are
//!   the endpoints themselves, so releasing an endpoint releases its address.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::cidr::{Cidr, Family, Ipv4Cidr, Ipv6Cidr};

/// The automatic pools, in the order they are tried.
pub fn default_pools() -> impl Iterator<Item = Ipv4Cidr> {
    let sixteens = (17..=31u8).map(|b| Ipv4Cidr::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let twenties = (0..16u8).map(|i| Ipv4Cidr::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    sixteens
        .chain(twenties)
        .map(|c| c.expect("pool constants are valid prefixes"))
}

/// The first default pool that overlaps none of `taken`.
pub fn pick_subnet<'a>(taken: impl Iterator<Item = &'a Ipv4Cidr> + Clone) -> Option<Ipv4Cidr> {
    default_pools().find(|p| !taken.clone().any(|t| t.overlaps(p)))
}

/// Most subnets one address pool is cut into.
pub const MAX_POOL_SUBNETS: u64 = 1 << 16;

/// An address pool automatic subnets are cut from, as Docker's `--default-address-pool
/// base=10.10.0.0/16,size=24`: subnets of prefix length `size` inside `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool<A: Family> {
    /// The prefix the subnets lie in.
    pub base: Cidr<A>,
    /// Their prefix length.
    pub size: u8,
}

impl<A: Family> AddressPool<A> {
    /// The first subnet of the pool that overlaps none of `taken`. A candidate that overlaps
    /// one is skipped past it whole, so a crowded pool is searched in steps of what is taken.
    pub fn pick(&self, taken: &[Cidr<A>]) -> Option<Cidr<A>> {
        let step = 1u128 << (A::BITS - self.size);
        let (start, end) = (self.base.network().bits(), self.base.last().bits());
        let mut at = start;
        while at <= end {
            let c = Cidr::new(A::from_bits(at), self.size).ok()?;
            match taken.iter().filter(|t| t.overlaps(&c)).map(|t| t.last().bits()).max() {
                None => return Some(c),
                // The next candidate starts past what it overlaps, on a subnet boundary.
                Some(last) => at = (last.max(at) / step + 1).checked_mul(step)?,
            }
        }
        None
    }
}

impl<A: Family> fmt::Display for AddressPool<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base={},size={}", self.base, self.size)
    }
}

impl<A: Family> FromStr for AddressPool<A> {
    type Err = String;

    /// `base=PREFIX,size=LEN`, in either order; `size` at least the base's prefix length, at
    /// most what holds a gateway and an endpoint, and the base cut into at most
    /// [`MAX_POOL_SUBNETS`].
    fn from_str(s: &str) -> Result<Self, String> {
        let form = || format!("invalid address pool {s:?}: expected base={},size=LEN", A::EXAMPLE);
        let (mut base, mut size) = (None, None);
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("base", v)) if base.is_none() => {
                    base = Some(
                        v.parse::<Cidr<A>>()
                            .map_err(|e| format!("invalid address pool {s:?}: {e}"))?,
                    )
                }
                Some(("size", v)) if size.is_none() => size = Some(v.parse::<u8>().map_err(|_| form())?),
                _ => return Err(form()),
            }
        }
        let (Some(base), Some(size)) = (base, size) else {
            return Err(form());
        };
        let most = A::BITS - 2;
        if size < base.prefix_len() || size > most {
            return Err(format!(
                "invalid address pool {s:?}: size must be from the base's prefix length {} to {most}",
                base.prefix_len()
            ));
        }
        if size - base.prefix_len() > 16 {
            return Err(format!(
                "invalid address pool {s:?}: it cuts into more than {MAX_POOL_SUBNETS} subnets; give a longer base or a shorter size"
            ));
        }
        Ok(AddressPool { base, size })
    }
}

/// The first subnet of `pools` (Docker's defaults when there are none) that overlaps none of
/// `taken`.
pub fn pick_subnet_in(pools: &[AddressPool<Ipv4Addr>], taken: &[Ipv4Cidr]) -> Option<Ipv4Cidr> {
    if pools.is_empty() {
        return pick_subnet(taken.iter());
    }
    pools.iter().find_map(|p| p.pick(taken))
}

/// A host's unique local /48 (RFC 4193: `fd`, then a 40-bit global ID drawn at random once),
/// from which networks that ask for IPv6 without a subnet take /64s.
pub fn ula_prefix(global_id: [u8; 5]) -> Ipv6Cidr {
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[1..6].copy_from_slice(&global_id);
    Ipv6Cidr::new(Ipv6Addr::from(b), 48).expect("a /48 with no host bits")
}

/// The lowest /64 of `ula` that overlaps none of `taken`.
pub fn pick_subnet6<'a>(ula: Ipv6Cidr, taken: impl Iterator<Item = &'a Ipv6Cidr> + Clone) -> Option<Ipv6Cidr> {
    let ula = ipnet::Ipv6Net::new(ula.network(), ula.prefix_len()).expect("a prefix");
    ula.subnets(64)
        .ok()?
        .map(|p| Ipv6Cidr::new(p.network(), 64).expect("a /64 inside the /48"))
        .find(|p| !taken.clone().any(|t| t.overlaps(p)))
}

/// The lowest address of `range` (or of the subnet) that is not the subnet's first address
/// (the subnet-router anycast address, RFC 4291), not `gateway`, and not in `used`.
pub fn allocate6(
    subnet: Ipv6Cidr,
    range: Option<Ipv6Cidr>,
    gateway: Ipv6Addr,
    used: &BTreeSet<Ipv6Addr>,
) -> Option<Ipv6Addr> {
    let range = range.unwrap_or(subnet);
    let (first, last) = (u128::from(range.network()), u128::from(range.last()));
    let anycast = subnet.network();
    // Each address skipped is held: at most `used.len() + 2` steps.
    (first..=last)
        .map(Ipv6Addr::from)
        .find(|ip| *ip != anycast && *ip != gateway && !used.contains(ip))
}

/// The destinations of the routes in the text of /proc/net/route, but default routes.
pub fn parse_proc_net_route(text: &str) -> Vec<Ipv4Cidr> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints network-order words as host integers: their in-memory bytes
            // are the address bytes.
            let (dst, mask) = (dst.to_ne_bytes(), mask.to_ne_bytes());
            // (A mask that is not a prefix is refused.)
            let net = ipnet::Ipv4Net::with_netmask(Ipv4Addr::from(dst), Ipv4Addr::from(mask)).ok()?;
            if net.prefix_len() == 0 {
                return None;
            }
            Ipv4Cidr::new(net.network(), net.prefix_len()).ok()
        })
        .collect()
}

/// The destinations of the routes in the text of /proc/net/ipv6_route, but default routes,
/// the host's own addresses (local routes), and link-local and multicast prefixes (which no
/// network's subnet may overlap anyway).
pub fn parse_proc_net_ipv6_route(text: &str) -> Vec<Ipv6Cidr> {
    /// RTF_LOCAL: a route of the local table, to one of the host's own addresses.
    const LOCAL: u32 = 0x8000_0000;
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u128::from_str_radix(f.first()?, 16).ok().map(Ipv6Addr::from)?;
            let len = u8::from_str_radix(f.get(1)?, 16).ok()?;
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            if len == 0 || flags & LOCAL != 0 || dst.is_multicast() || dst.is_unicast_link_local() {
                return None;
            }
            let net = ipnet::Ipv6Net::new(dst, len).ok()?;
            Ipv6Cidr::new(net.network(), len).ok()
        })
        .collect()
}

/// Addresses per block of a host's share of an overlay network.
pub const SHARE_BLOCK: u32 = 8;

/// A host's share of an overlay network's addresses: blocks of [`SHARE_BLOCK`] addresses dealt
/// round-robin to `max_hosts` host indexes. Every host computes the same deal from its own
/// index, so two hosts never hand out the same address, even across a partition, and no
/// coordination is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// This host's index (from its certificate), below `max_hosts`.
    pub index: u32,
    /// How many hosts the network's addresses are dealt to.
    pub max_hosts: u32,
}

impl Share {
    /// Whether the address at `offset` from the subnet's first address is this host's.
    pub fn owns(&self, offset: u32) -> bool {
        (offset / SHARE_BLOCK) % self.max_hosts == self.index
    }
}

/// Which of a network's addresses this host may hand out, by their offset from the subnet's
/// first address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// All of them: a network of this host's alone.
    All,
    /// A fixed share: an overlay network made before addresses were claimed on demand.
    Share(Share),
    /// The ranges this host owns ([`crate::cluster::space`]), in order.
    Owned(Vec<(u32, u32)>),
}

impl Part {
    /// Whether the address at `offset` is this host's to hand out.
    pub fn owns(&self, offset: u32) -> bool {
        match self {
            Part::All => true,
            Part::Share(s) => s.owns(offset),
            Part::Owned(ranges) => ranges.iter().any(|(a, b)| (*a..*b).contains(&offset)),
        }
    }
}

/// An address pool of one network.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The network's subnet.
    pub subnet: Ipv4Cidr,
    /// Where dynamic addresses come from, if narrower than the subnet.
    pub ip_range: Option<Ipv4Cidr>,
    /// The gateway address, never handed out.
    pub gateway: Ipv4Addr,
    /// The part of the addresses this host may hand out.
    pub part: Part,
}

/// Why an address cannot be held by an endpoint of a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Outside the network's subnet.
    #[error("invalid address {0}: it is not in the network's subnet {1}")]
    OutsideSubnet(Ipv4Addr, Ipv4Cidr),
    /// Outside the network's `--ip-range`.
    #[error("invalid address {0}: it is not in the network's ip-range {1}")]
    OutsideRange(Ipv4Addr, Ipv4Cidr),
    /// The subnet's network or broadcast address.
    #[error("invalid address {0}: the network and broadcast addresses of {1} cannot be assigned")]
    Reserved(Ipv4Addr, Ipv4Cidr),
    /// The gateway's.
    #[error("invalid address {0}: it is the network's gateway")]
    Gateway(Ipv4Addr),
}

impl Pool {
    /// Whether `ip` may be held by an endpoint at all (inside the subnet, not reserved).
    ///
    /// # Errors
    /// [`AddressError`] saying why not.
    pub fn check_static(&self, ip: Ipv4Addr) -> Result<(), AddressError> {
        if !self.subnet.contains(ip) {
            return Err(AddressError::OutsideSubnet(ip, self.subnet));
        }
        if let Some(r) = self.ip_range.filter(|r| !r.contains(ip)) {
            return Err(AddressError::OutsideRange(ip, r));
        }
        if ip == self.subnet.network() || ip == self.subnet.broadcast() {
            return Err(AddressError::Reserved(ip, self.subnet));
        }
        if ip == self.gateway {
            return Err(AddressError::Gateway(ip));
        }
        Ok(())
    }

    /// Whether [`Pool::allocate`] could ever hand out `ip` (in the range, in this host's
    /// share); reserved addresses are not excluded here.
    pub fn may_allocate(&self, ip: Ipv4Addr) -> bool {
        let range = self.ip_range.unwrap_or(self.subnet);
        range.contains(ip) && self.part.owns(u32::from(ip) - u32::from(self.subnet.network()))
    }

    /// The lowest address of the range that is neither reserved nor in `used`.
    pub fn allocate(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let first = u32::from(range.network());
        let last = u32::from(range.broadcast());
        let base = u32::from(self.subnet.network());
        let free = |a: &u32| {
            let ip = Ipv4Addr::from(*a);
            self.check_static(ip).is_ok() && !used.contains(&ip)
        };
        match &self.part {
            // Only the ranges owned, not the whole subnet: a host may own a few addresses at
            // the end of a /16.
            Part::Owned(ranges) => ranges
                .iter()
                .filter(|(a, b)| a < b)
                .flat_map(|(a, b)| (base + a).max(first)..=(base + b - 1).min(last))
                .find(free)
                .map(Ipv4Addr::from),
            part => (first..=last)
                .filter(|a| part.owns(a - base))
                .find(free)
                .map(Ipv4Addr::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn address_pools_are_cut_in_order_past_what_is_taken() {
        let c = |s: &str| -> Ipv4Cidr { s.parse().unwrap() };
        let p: AddressPool<Ipv4Addr> = "base=10.10.0.0/16,size=24".parse().unwrap();
        assert_eq!(p.to_string(), "base=10.10.0.0/16,size=24");
        assert_eq!(p.pick(&[]), Some(c("10.10.0.0/24")));
        // A wide taken prefix is skipped whole; a narrow one takes its /24.
        let taken = [c("10.10.0.0/22"), c("10.10.4.128/25"), c("10.9.0.0/16")];
        assert_eq!(p.pick(&taken), Some(c("10.10.5.0/24")));
        assert_eq!(p.pick(&[c("10.0.0.0/8")]), None);
        assert_eq!(pick_subnet_in(&[p], &[c("10.10.0.0/17")]), Some(c("10.10.128.0/24")));
        assert_eq!(pick_subnet_in(&[], &[]), Some(c("172.17.0.0/16")), "Docker's defaults");
        // A full first pool gives way to the next.
        let q: AddressPool<Ipv4Addr> = "size=28,base=192.168.50.0/24".parse().unwrap();
        assert_eq!(
            pick_subnet_in(&[p, q], &[c("10.10.0.0/16")]),
            Some(c("192.168.50.0/28"))
        );
        let six: AddressPool<Ipv6Addr> = "base=fd00:1::/48,size=64".parse().unwrap();
        assert_eq!(
            six.pick(&["fd00:1::/63".parse().unwrap()]).unwrap().to_string(),
            "fd00:1:0:2::/64"
        );
        for (bad, says) in [
            ("base=10.10.0.0/16", "expected base=192.168.0.0/24,size=LEN"),
            ("base=10.10.0.0/16,size=24,size=25", "expected base="),
            ("base=10.10.0.1/16,size=24", "host bits"),
            (
                "base=10.10.0.0/16,size=15",
                "size must be from the base's prefix length 16 to 30",
            ),
            ("base=10.10.0.0/16,size=31", "to 30"),
            ("base=10.0.0.0/8,size=25", "more than 65536 subnets"),
            ("base=10.0.0.0/8,mask=24", "expected base="),
        ] {
            let e = bad.parse::<AddressPool<Ipv4Addr>>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn c(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn pools_follow_docker_order() {
        let v: Vec<String> = default_pools().map(|p| p.to_string()).collect();
        assert_eq!(v[0], "172.17.0.0/16");
        assert_eq!(v[14], "172.31.0.0/16");
        assert_eq!(v[15], "192.168.0.0/20");
        assert_eq!(v[30], "192.168.240.0/20");
        let taken = [c("172.17.0.0/16"), c("172.18.5.0/24")];
        assert_eq!(pick_subnet(taken.iter()), Some(c("172.19.0.0/16")));
        let all: Vec<Ipv4Cidr> = default_pools().collect();
        assert_eq!(pick_subnet(all.iter()), None);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn reads_proc_net_route() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    br0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let v: Vec<String> = parse_proc_net_route(text).iter().map(|c| c.to_string()).collect();
        assert_eq!(v, ["192.0.2.0/24", "172.18.0.0/16"]);
    }

    #[test]
    fn reads_proc_net_ipv6_route() {
        // As a host with fd00::2/64 on eth0 and a default route prints it.
        let text = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
20010db8000500000000000000000000 30 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
garbage line
";
        let v: Vec<String> = parse_proc_net_ipv6_route(text).iter().map(|c| c.to_string()).collect();
        assert_eq!(v, ["fd00::/64", "2001:db8:5::/48"]);
    }

    #[test]
    fn allocation_is_lowest_free_and_skips_reserved() {
        let p = Pool {
            subnet: c("192.168.0.0/24"),
            ip_range: None,
            gateway: Ipv4Addr::new(192, 168, 0, 1),
            part: Part::All,
        };
        let mut used = BTreeSet::new();
        assert_eq!(p.allocate(&used), Some(Ipv4Addr::new(192, 168, 0, 2)));
        used.insert(Ipv4Addr::new(192, 168, 0, 2));
        used.insert(Ipv4Addr::new(192, 168, 0, 4));
        assert_eq!(p.allocate(&used), Some(Ipv4Addr::new(192, 168, 0, 3)));
        let small = Pool {
            subnet: c("10.0.0.0/30"),
            ip_range: None,
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            part: Part::All,
        };
        let used: BTreeSet<_> = [Ipv4Addr::new(10, 0, 0, 2)].into();
        assert_eq!(small.allocate(&used), None);
    }

    #[test]
    fn ip_range_narrows_allocation_and_static_checks() {
        let p = Pool {
            subnet: c("10.1.0.0/16"),
            ip_range: Some(c("10.1.2.0/24")),
            gateway: Ipv4Addr::new(10, 1, 0, 1),
            part: Part::All,
        };
        assert_eq!(p.allocate(&BTreeSet::new()), Some(Ipv4Addr::new(10, 1, 2, 0)));
        assert!(p
            .check_static(Ipv4Addr::new(10, 1, 3, 1))
            .unwrap_err()
            .to_string()
            .contains("ip-range 10.1.2.0/24"));
        assert!(p
            .check_static(Ipv4Addr::new(10, 2, 0, 1))
            .unwrap_err()
            .to_string()
            .contains("not in the network's subnet"));
        assert_eq!(
            p.check_static(Ipv4Addr::new(10, 1, 0, 1)),
            Err(AddressError::OutsideRange(Ipv4Addr::new(10, 1, 0, 1), c("10.1.2.0/24")))
        );
    }

    #[test]
    fn hosts_of_a_cluster_deal_the_addresses_without_overlap() {
        let used = BTreeSet::new();
        let pool = |index| Pool {
            subnet: c("10.66.0.0/24"),
            ip_range: None,
            gateway: Ipv4Addr::new(10, 66, 0, 1),
            part: Part::Share(Share { index, max_hosts: 4 }),
        };
        let mut seen = BTreeSet::new();
        for index in 0..4 {
            let p = pool(index);
            let mut mine = BTreeSet::new();
            while let Some(ip) = p.allocate(&mine) {
                mine.insert(ip);
            }
            assert!(!mine.is_empty(), "host {index} has addresses");
            assert!(seen.is_disjoint(&mine), "host {index} overlaps another");
            seen.extend(mine);
        }
        assert_eq!(seen.len(), 253, "together they cover the subnet");
        assert_eq!(pool(1).allocate(&used), Some(Ipv4Addr::new(10, 66, 0, 8)));
    }

    proptest! {
        #[test]
        fn never_hands_out_an_address_twice(ops in proptest::collection::vec(any::<Option<u8>>(), 0..300)) {
            let p = Pool { subnet: c("10.9.0.0/24"), ip_range: None, gateway: Ipv4Addr::new(10, 9, 0, 1), part: Part::All };
            let mut used: BTreeSet<Ipv4Addr> = BTreeSet::new();
            for op in ops {
                match op {
                    None => {
                        if let Some(ip) = p.allocate(&used) {
                            prop_assert!(p.check_static(ip).is_ok());
                            prop_assert!(used.insert(ip), "{} handed out twice", ip);
                        } else {
                            prop_assert_eq!(used.len(), 253);
                        }
                    }
                    Some(i) => {
                        let ip = Ipv4Addr::new(10, 9, 0, i);
                        used.remove(&ip);
                    }
                }
            }
        }
    }

    #[test]
    fn ipv6_subnets_come_from_the_host_s_unique_local_prefix() {
        let ula = ula_prefix([0x12, 0x34, 0x56, 0x78, 0x9a]);
        assert_eq!(ula.to_string(), "fd12:3456:789a::/48");
        let first = pick_subnet6(ula, [].iter()).unwrap();
        assert_eq!(first.to_string(), "fd12:3456:789a::/64");
        let taken = [first, "fd12:3456:789a:1::/64".parse().unwrap()];
        assert_eq!(
            pick_subnet6(ula, taken.iter()).unwrap().to_string(),
            "fd12:3456:789a:2::/64"
        );
        let all: Vec<Ipv6Cidr> = [ula].to_vec();
        assert_eq!(pick_subnet6(ula, all.iter()), None, "the whole /48 taken");
    }

    #[test]
    fn ipv6_addresses_are_handed_out_lowest_free_first() {
        let subnet: Ipv6Cidr = "2001:db8:1::/64".parse().unwrap();
        let gw: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let mut used = BTreeSet::new();
        let a = allocate6(subnet, None, gw, &used).unwrap();
        assert_eq!(
            a.to_string(),
            "2001:db8:1::2",
            "not the anycast address, not the gateway"
        );
        used.insert(a);
        assert_eq!(allocate6(subnet, None, gw, &used).unwrap().to_string(), "2001:db8:1::3");
        let range: Ipv6Cidr = "2001:db8:1::100/126".parse().unwrap();
        used.insert("2001:db8:1::100".parse().unwrap());
        assert_eq!(
            allocate6(subnet, Some(range), gw, &used).unwrap().to_string(),
            "2001:db8:1::101"
        );
        for i in 0x101..=0x103u16 {
            used.insert(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i));
        }
        assert_eq!(allocate6(subnet, Some(range), gw, &used), None, "the range is full");
    }
}
