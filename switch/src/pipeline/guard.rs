//! Stage 2: port security. A sandbox's port sends only as its endpoint, only what a host
//! sends (no DHCP server replies, no router advertisements or redirects), and only offloaded
//! super-frames whose segmentation is sane.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::counters::DropReason;
use crate::wire::{proto, udp_ports, ArpPacket, EtherType, EthernetFrame, Ipv4Packet, Ipv6Packet, MacAddr};

/// Broadcast, multicast and unknown-unicast frames a sandbox's port may send per second by
/// default (and in one burst): far above a busy host's ARP, DHCP and neighbour discovery,
/// far below what floods a network.
pub const DEFAULT_BUM_PPS: u32 = 1000;

/// The smallest segment an offloaded super-frame may be cut into: the least MSS a TCP stack
/// must accept (RFC 9293, 536 bytes). Smaller ones only multiply frames.
pub const MIN_SEGMENT_SIZE: u16 = 536;

/// The most segments one offloaded super-frame may become (sandbox TAPs announce this as
/// their `gso_max_segs`, so a kernel's own super-frames stay within it).
pub const MAX_SEGMENTS: usize = 64;

/// What a sandbox's port is held to. Ports the host itself owns (gateways, VXLAN peers,
/// uplinks) have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// The addresses the port sends from; `None` lets it send from any (a network with
    /// `port_security=false`, whose sandboxes route other subnets). MAC ownership, storm
    /// control and the offload checks hold either way.
    pub source: Option<Source>,
    /// The port's MTU: the most one segment of an offloaded super-frame may carry.
    pub mtu: u16,
    /// Broadcast, multicast and unknown-unicast frames per second (also the burst); 0: no
    /// limit.
    pub bum_pps: u32,
}

impl Guard {
    /// A port that sends as `mac` (and `ipv4`), with an MTU and the default storm limit.
    pub fn new(mac: MacAddr, ipv4: Option<Ipv4Addr>, mtu: u16) -> Guard {
        Guard {
            source: Some(Source { mac, ipv4, ipv6: None }),
            mtu,
            bum_pps: DEFAULT_BUM_PPS,
        }
    }

    /// The same port, holding the IPv6 address `ip` too (and its MAC's link-local one).
    pub fn with_ipv6(mut self, ip: Ipv6Addr) -> Guard {
        if let Some(s) = self.source.as_mut() {
            s.ipv6 = Some(ip);
        }
        self
    }
}

/// The addresses an endpoint sends from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Its MAC address: the Ethernet source and the ARP sender.
    pub mac: MacAddr,
    /// Its IPv4 address; `None` allows only DHCP discovery from 0.0.0.0.
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address, beside which it sends from the link-local address its MAC makes
    /// (EUI-64, RFC 4291); `None`: the endpoint has no IPv6, and every IPv6 packet it sends is
    /// a spoof.
    pub ipv6: Option<Ipv6Addr>,
}

impl Source {
    /// The link-local address the endpoint's MAC makes (fe80::/64, modified EUI-64).
    pub fn link_local(&self) -> Ipv6Addr {
        let m = self.mac.0;
        Ipv6Addr::from([
            0xfe,
            0x80,
            0,
            0,
            0,
            0,
            0,
            0,
            m[0] ^ 0x02,
            m[1],
            m[2],
            0xff,
            0xfe,
            m[3],
            m[4],
            m[5],
        ])
    }

    /// Whether `ip` is one of the endpoint's IPv6 addresses.
    fn holds_v6(&self, ip: Ipv6Addr) -> bool {
        self.ipv6.is_some_and(|own| own == ip || ip == self.link_local())
    }
}

/// Segmentation offload metadata a driver received with a frame (a virtio-net header's
/// `gso_size` when its `gso_type` is not none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    /// The payload bytes each segment carries.
    pub segment_size: u16,
}

const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const DHCP6_SERVER_PORT: u16 = 547;
const DHCP6_CLIENT_PORT: u16 = 546;
const ICMPV6_ROUTER_SOLICITATION: u8 = 133;
const ICMPV6_ROUTER_ADVERTISEMENT: u8 = 134;
const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
const ICMPV6_REDIRECT: u8 = 137;
const ICMPV6_MLD2_REPORT: u8 = 143;
/// Neighbour discovery options (RFC 4861 §4.6): the sender's and the target's link-layer
/// addresses.
const ND_SOURCE_LINK_LAYER: u8 = 1;
const ND_TARGET_LINK_LAYER: u8 = 2;
const TCP: u8 = 6;

/// Checks a frame from a guarded port. `frame` has passed [`super::parse::parse`].
#[inline]
pub(crate) fn check(guard: &Guard, gso: Option<Gso>, frame: &[u8]) -> Result<(), DropReason> {
    let eth = EthernetFrame::new_unchecked(frame);
    if let Some(gso) = gso {
        offload(guard, gso, &eth)?;
    }
    match guard.source {
        Some(src) => source(&src, &eth),
        None => Ok(()),
    }
}

/// A super-frame is honoured only when cutting it is sane: segments between
/// [`MIN_SEGMENT_SIZE`] and the MTU, at most [`MAX_SEGMENTS`] of them, TCP or UDP over IP.
fn offload(guard: &Guard, gso: Gso, eth: &EthernetFrame<&[u8]>) -> Result<(), DropReason> {
    let size = gso.segment_size;
    if size < MIN_SEGMENT_SIZE || size > guard.mtu {
        return Err(DropReason::BadOffload);
    }
    let payload = l4_payload_len(eth).ok_or(DropReason::BadOffload)?;
    if payload.div_ceil(usize::from(size)) > MAX_SEGMENTS {
        return Err(DropReason::BadOffload);
    }
    Ok(())
}

/// Bytes of TCP or UDP payload in the frame; `None` when it is neither over IPv4 or IPv6.
fn l4_payload_len(eth: &EthernetFrame<&[u8]>) -> Option<usize> {
    match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            segmentable_len(ip.protocol(), ip.payload())
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let (protocol, l4) = ip.upper_layer()?;
            segmentable_len(protocol, l4)
        }
        _ => None,
    }
}

fn segmentable_len(protocol: u8, l4: &[u8]) -> Option<usize> {
    let header = match protocol {
        TCP => usize::from(*l4.get(12)? >> 4) * 4,
        proto::UDP => 8,
        _ => return None,
    };
    l4.len().checked_sub(header)
}

#[inline]
fn source(src: &Source, eth: &EthernetFrame<&[u8]>) -> Result<(), DropReason> {
    if eth.src() != src.mac {
        return Err(DropReason::MacSpoof);
    }
    match eth.ethertype() {
        EtherType::ARP => arp(src, eth.payload()),
        EtherType::IPV4 => ipv4(src, eth.payload()),
        EtherType::IPV6 => ipv6(src, eth.payload()),
        _ => Ok(()),
    }
}

/// The sender must be the endpoint; 0.0.0.0 is a probe (RFC 5227). ARP that cannot be read as
/// IPv4 over Ethernet cannot be checked and does not pass.
#[inline]
fn arp(src: &Source, payload: &[u8]) -> Result<(), DropReason> {
    let arp = ArpPacket::new_checked(payload).map_err(|_| DropReason::ArpSpoof)?;
    let ip = arp.sender_ip();
    if arp.sender_mac() != src.mac || !(ip.is_unspecified() || Some(ip) == src.ipv4) {
        return Err(DropReason::ArpSpoof);
    }
    Ok(())
}

#[inline]
fn ipv4(src: &Source, payload: &[u8]) -> Result<(), DropReason> {
    let ip = Ipv4Packet::new_checked(payload).map_err(|_| DropReason::IpSpoof)?;
    let ports = ip.udp_ports();
    if ports.is_some_and(|(s, _)| s == DHCP_SERVER_PORT) {
        return Err(DropReason::DhcpServer);
    }
    let discovery = ip.src().is_unspecified() && ports == Some((DHCP_CLIENT_PORT, DHCP_SERVER_PORT));
    if Some(ip.src()) == src.ipv4 || discovery {
        Ok(())
    } else {
        Err(DropReason::IpSpoof)
    }
}

/// Router and DHCPv6 server messages are named for what they are (walking extension headers,
/// so they cannot hide behind them). Neighbour discovery speaks only for the endpoint: an
/// advertisement only of its own addresses, and any link-layer address it carries its own. The
/// source is one of the endpoint's addresses, or `::` for what a host sends before it holds
/// one (duplicate address detection, router solicitations, MLD reports); an endpoint without
/// IPv6 sends none.
fn ipv6(src: &Source, payload: &[u8]) -> Result<(), DropReason> {
    let ip = Ipv6Packet::new_checked(payload).map_err(|_| DropReason::IpSpoof)?;
    let upper = ip.upper_layer();
    let icmp = match upper {
        Some((proto::ICMPV6, l4)) => l4.first().copied().map(|t| (t, l4)),
        _ => None,
    };
    match (upper, icmp) {
        (_, Some((ICMPV6_ROUTER_ADVERTISEMENT | ICMPV6_REDIRECT, _))) => return Err(DropReason::RouterMessage),
        (Some((proto::UDP, l4)), _)
            if udp_ports(l4).is_some_and(|(s, d)| {
                // Servers and relay agents both send from 547.
                s == DHCP6_SERVER_PORT && d == DHCP6_CLIENT_PORT
            }) =>
        {
            return Err(DropReason::DhcpServer)
        }
        _ => {}
    }
    if src.ipv6.is_none() {
        return Err(DropReason::IpSpoof);
    }
    if let Some((t @ (ICMPV6_NEIGHBOR_SOLICITATION | ICMPV6_NEIGHBOR_ADVERTISEMENT), l4)) = icmp {
        neighbor(src, t, l4)?;
    }
    let from = ip.src();
    let before_an_address = from.is_unspecified()
        && matches!(
            icmp,
            Some((
                ICMPV6_NEIGHBOR_SOLICITATION | ICMPV6_ROUTER_SOLICITATION | ICMPV6_MLD2_REPORT,
                _
            ))
        );
    if src.holds_v6(from) || before_an_address {
        Ok(())
    } else {
        Err(DropReason::IpSpoof)
    }
}

/// A neighbour solicitation or advertisement (`kind`) from the endpoint: an advertisement's
/// target is one of its addresses, and a link-layer address option names its MAC.
fn neighbor(src: &Source, kind: u8, l4: &[u8]) -> Result<(), DropReason> {
    // Type, code, checksum, flags or reserved (8 bytes), target (16), options.
    let target: [u8; 16] = l4
        .get(8..24)
        .and_then(|t| t.try_into().ok())
        .ok_or(DropReason::NeighborSpoof)?;
    if kind == ICMPV6_NEIGHBOR_ADVERTISEMENT && !src.holds_v6(Ipv6Addr::from(target)) {
        return Err(DropReason::NeighborSpoof);
    }
    let mut options = &l4[24..];
    while let [t, len, ..] = *options {
        let n = usize::from(len) * 8;
        if n == 0 || n > options.len() {
            return Err(DropReason::NeighborSpoof);
        }
        let names_mac = t == ND_SOURCE_LINK_LAYER || t == ND_TARGET_LINK_LAYER;
        if names_mac && options.get(2..8) != Some(&src.mac.0[..]) {
            return Err(DropReason::NeighborSpoof);
        }
        options = &options[n..];
    }
    if options.is_empty() {
        Ok(())
    } else {
        Err(DropReason::NeighborSpoof)
    }
}

/// A token bucket per port for broadcast, multicast and unknown-unicast frames, in thousandths
/// of a frame so that any rate refills smoothly at millisecond resolution.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Storm {
    milli_tokens: u64,
    last_ms: u64,
    primed: bool,
}

impl Storm {
    /// Takes one frame's token at `now_ms` for a port limited to `pps`; false: over the limit.
    #[inline]
    pub(crate) fn admit(&mut self, pps: u32, now_ms: u64) -> bool {
        if pps == 0 {
            return true;
        }
        let cap = u64::from(pps) * 1000;
        if !self.primed {
            (self.milli_tokens, self.primed) = (cap, true);
        } else {
            let refill = now_ms.saturating_sub(self.last_ms).saturating_mul(u64::from(pps));
            self.milli_tokens = self.milli_tokens.saturating_add(refill).min(cap);
        }
        self.last_ms = now_ms;
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([2, 0x42, 172, 18, 0, 2]);
    const OTHER: MacAddr = MacAddr([2, 0x42, 172, 18, 0, 3]);
    const IP: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);

    fn guard() -> Guard {
        Guard::new(MAC, Some(IP), 1500)
    }

    fn eth(src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn arp(op: u16, sha: MacAddr, spa: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4];
        p.extend_from_slice(&op.to_be_bytes());
        p.extend_from_slice(&sha.0);
        p.extend_from_slice(&spa.octets());
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&[172, 18, 0, 1]);
        eth(MAC, 0x0806, &p)
    }

    fn ipv4(src: Ipv4Addr, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&[172, 18, 0, 1]);
        p.extend_from_slice(l4);
        eth(MAC, 0x0800, &p)
    }

    fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let mut u = sport.to_be_bytes().to_vec();
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        u
    }

    fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
        ipv6_from(LINK_LOCAL, next, l4)
    }

    /// The endpoint's MAC's link-local address.
    const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x42, 0xacff, 0xfe12, 2);
    const IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdb8, 1, 0, 0, 0, 0, 2);

    fn ipv6_from(src: Ipv6Addr, next: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 255];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(l4);
        eth(MAC, 0x86dd, &p)
    }

    /// A neighbour solicitation or advertisement (`kind`) of `target`, with a link-layer
    /// address option naming `mac` when given.
    fn nd(kind: u8, target: Ipv6Addr, mac: Option<MacAddr>) -> Vec<u8> {
        let mut m = vec![kind, 0, 0, 0, 0x60, 0, 0, 0];
        m.extend_from_slice(&target.octets());
        if let Some(mac) = mac {
            let option = if kind == 135 { 1 } else { 2 };
            m.extend_from_slice(&[option, 1]);
            m.extend_from_slice(&mac.0);
        }
        m
    }

    fn tcp4_super(payload: usize) -> Vec<u8> {
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        tcp.resize(20 + payload, 0);
        ipv4(IP, TCP, &tcp)
    }

    #[test]
    fn the_endpoint_passes() {
        let g = guard();
        assert_eq!(check(&g, None, &arp(1, MAC, IP)), Ok(()));
        assert_eq!(check(&g, None, &arp(1, MAC, Ipv4Addr::UNSPECIFIED)), Ok(()), "probe");
        assert_eq!(check(&g, None, &ipv4(IP, 17, &udp(5353, 53))), Ok(()));
        assert_eq!(
            check(&g, None, &ipv4(Ipv4Addr::UNSPECIFIED, 17, &udp(68, 67))),
            Ok(()),
            "DHCP discovery"
        );
        assert_eq!(check(&g, None, &eth(MAC, 0x88cc, &[0; 46])), Ok(()), "other ethertypes");
    }

    #[test]
    fn spoofs_are_dropped_by_reason() {
        let g = guard();
        let mut f = ipv4(IP, 17, &udp(5353, 53));
        f[6..12].copy_from_slice(&OTHER.0);
        assert_eq!(check(&g, None, &f), Err(DropReason::MacSpoof));
        assert_eq!(
            check(&g, None, &arp(2, MAC, Ipv4Addr::new(172, 18, 0, 3))),
            Err(DropReason::ArpSpoof)
        );
        assert_eq!(check(&g, None, &arp(2, OTHER, IP)), Err(DropReason::ArpSpoof));
        assert_eq!(
            check(&g, None, &eth(MAC, 0x0806, &[0, 1, 8, 0])),
            Err(DropReason::ArpSpoof)
        );
        assert_eq!(
            check(&g, None, &ipv4(Ipv4Addr::new(172, 18, 0, 1), 1, &[8, 0, 0, 0])),
            Err(DropReason::IpSpoof)
        );
        assert_eq!(
            check(&g, None, &ipv4(Ipv4Addr::UNSPECIFIED, 17, &udp(68, 53))),
            Err(DropReason::IpSpoof),
            "only DHCP discovery comes from 0.0.0.0"
        );
        assert_eq!(check(&g, None, &eth(MAC, 0x0800, &[0x45, 0])), Err(DropReason::IpSpoof));
        assert_eq!(
            check(&g, None, &ipv6(proto::UDP, &udp(546, 547))),
            Err(DropReason::IpSpoof),
            "the endpoint has no IPv6 address"
        );
    }

    #[test]
    fn server_and_router_messages_are_named() {
        let g = guard();
        assert_eq!(
            check(&g, None, &ipv4(IP, 17, &udp(67, 68))),
            Err(DropReason::DhcpServer)
        );
        assert_eq!(
            check(&g, None, &ipv6(proto::UDP, &udp(547, 546))),
            Err(DropReason::DhcpServer)
        );
        assert_eq!(
            check(&g, None, &ipv6(proto::ICMPV6, &[134, 0, 0, 0])),
            Err(DropReason::RouterMessage)
        );
        assert_eq!(
            check(&g, None, &ipv6(proto::ICMPV6, &[137, 0, 0, 0])),
            Err(DropReason::RouterMessage)
        );
        // Behind a hop-by-hop header it is still a router advertisement.
        let hidden = [proto::ICMPV6, 0, 0, 0, 0, 0, 0, 0, 134, 0, 0, 0];
        assert_eq!(
            check(&g, None, &ipv6(proto::HOP_BY_HOP, &hidden)),
            Err(DropReason::RouterMessage)
        );
    }

    #[test]
    fn an_ipv6_endpoint_sends_only_from_its_addresses_and_speaks_only_for_them() {
        let g = guard().with_ipv6(IP6);
        assert_eq!(g.source.unwrap().link_local(), LINK_LOCAL);
        let icmp = proto::ICMPV6;
        let echo = [128, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(check(&g, None, &ipv6_from(IP6, icmp, &echo)), Ok(()));
        assert_eq!(check(&g, None, &ipv6_from(LINK_LOCAL, icmp, &echo)), Ok(()));
        let other = Ipv6Addr::new(0xfd00, 0xdb8, 1, 0, 0, 0, 0, 3);
        assert_eq!(
            check(&g, None, &ipv6_from(other, icmp, &echo)),
            Err(DropReason::IpSpoof)
        );
        assert_eq!(
            check(&g, None, &ipv6_from(Ipv6Addr::UNSPECIFIED, icmp, &echo)),
            Err(DropReason::IpSpoof),
            "only neighbour and router solicitations and MLD come from ::"
        );
        // Duplicate address detection and address resolution.
        let dad = nd(135, IP6, None);
        assert_eq!(check(&g, None, &ipv6_from(Ipv6Addr::UNSPECIFIED, icmp, &dad)), Ok(()));
        let ask = nd(135, other, Some(MAC));
        assert_eq!(check(&g, None, &ipv6_from(IP6, icmp, &ask)), Ok(()), "who has another");
        let ask = nd(135, other, Some(OTHER));
        assert_eq!(
            check(&g, None, &ipv6_from(IP6, icmp, &ask)),
            Err(DropReason::NeighborSpoof),
            "asking in another's MAC"
        );
        // Advertisements of its own addresses only, in its own MAC.
        for own in [IP6, LINK_LOCAL] {
            let na = nd(136, own, Some(MAC));
            assert_eq!(check(&g, None, &ipv6_from(LINK_LOCAL, icmp, &na)), Ok(()), "{own}");
        }
        let claim = nd(136, other, Some(MAC));
        assert_eq!(
            check(&g, None, &ipv6_from(IP6, icmp, &claim)),
            Err(DropReason::NeighborSpoof),
            "another's address"
        );
        let redirect = nd(136, IP6, Some(OTHER));
        assert_eq!(
            check(&g, None, &ipv6_from(IP6, icmp, &redirect)),
            Err(DropReason::NeighborSpoof),
            "its address to another MAC"
        );
        let mut cut = nd(136, IP6, Some(MAC));
        cut.truncate(20);
        assert_eq!(
            check(&g, None, &ipv6_from(IP6, icmp, &cut)),
            Err(DropReason::NeighborSpoof)
        );
        let mut zero_option = nd(136, IP6, Some(MAC));
        zero_option[25] = 0;
        assert_eq!(
            check(&g, None, &ipv6_from(IP6, icmp, &zero_option)),
            Err(DropReason::NeighborSpoof),
            "an option of length zero"
        );
        // Router and DHCPv6 server messages stay named, from any source.
        assert_eq!(
            check(&g, None, &ipv6_from(IP6, icmp, &[134, 0, 0, 0])),
            Err(DropReason::RouterMessage)
        );
        assert_eq!(
            check(&g, None, &ipv6_from(IP6, proto::UDP, &udp(547, 546))),
            Err(DropReason::DhcpServer)
        );
        assert_eq!(check(&g, None, &ipv6_from(IP6, proto::UDP, &udp(546, 547))), Ok(()));
    }

    #[test]
    fn without_source_checks_anything_goes_but_offload_is_still_checked() {
        let g = Guard {
            source: None,
            ..guard()
        };
        assert_eq!(check(&g, None, &arp(2, OTHER, Ipv4Addr::new(10, 0, 0, 9))), Ok(()));
        assert_eq!(check(&g, None, &ipv4(IP, 17, &udp(67, 68))), Ok(()));
        let gso = Some(Gso { segment_size: 1 });
        assert_eq!(check(&g, gso, &tcp4_super(20_000)), Err(DropReason::BadOffload));
    }

    #[test]
    fn offload_is_sane_before_it_is_honoured() {
        let g = guard();
        let seg = |n| Some(Gso { segment_size: n });
        assert_eq!(check(&g, seg(1448), &tcp4_super(65_000)), Ok(()));
        assert_eq!(check(&g, seg(536), &tcp4_super(64 * 536)), Ok(()), "64 segments");
        assert_eq!(
            check(&g, seg(536), &tcp4_super(64 * 536 + 1)),
            Err(DropReason::BadOffload)
        );
        assert_eq!(check(&g, seg(1), &tcp4_super(20_000)), Err(DropReason::BadOffload));
        assert_eq!(check(&g, seg(535), &tcp4_super(2_000)), Err(DropReason::BadOffload));
        assert_eq!(check(&g, seg(1501), &tcp4_super(2_000)), Err(DropReason::BadOffload));
        assert_eq!(
            check(&g, seg(1448), &ipv4(IP, 1, &[0; 3000])),
            Err(DropReason::BadOffload),
            "only TCP and UDP are segmented"
        );
        assert_eq!(
            check(&g, seg(1448), &eth(MAC, 0x0806, &[0; 28])),
            Err(DropReason::BadOffload)
        );
    }

    #[test]
    fn storm_bucket_allows_a_burst_then_the_rate() {
        let mut s = Storm::default();
        assert!((0..100).all(|_| s.admit(100, 5)), "a full second's burst");
        assert!(!s.admit(100, 5));
        assert!(s.admit(100, 15), "10 ms refill one frame at 100 pps");
        assert!(!s.admit(100, 15));
        assert!((0..100).all(|_| s.admit(100, 10_000)), "refills up to the burst");
        assert!(!s.admit(100, 10_000));
        assert!((0..10_000).all(|_| s.admit(0, 10_000)), "0 is no limit");
    }
}
