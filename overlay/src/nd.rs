//! Neighbour discovery suppression (RFC 4861), IPv6's ARP suppression: a host answers the
//! neighbour solicitations for addresses it knows to live on other hosts itself, with the
//! advertisement their owner would send, instead of flooding them through every tunnel.
//! Solicitations for duplicate address detection (from `::`) are not answered here: whether
//! an address is a duplicate is for its owner to say.

use std::net::Ipv6Addr;

use switch::wire::{EtherType, EthernetFrame};

use crate::offload::{fold, sum_words};

/// A neighbour solicitation in an untagged Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Solicitation {
    /// The asker's hardware address (the frame's source).
    pub sender_mac: [u8; 6],
    /// The asker's address.
    pub sender_ip: Ipv6Addr,
    /// The address asked about.
    pub target: Ipv6Addr,
}

/// Length of the advertisement [`write_advertisement`] writes: Ethernet, IPv6, the
/// advertisement and its target link-layer address option.
pub const NA_FRAME_LEN: usize = 14 + 40 + 24 + 8;

const IPV6_HEADER_LEN: usize = 40;
const ICMPV6: u8 = 58;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Solicited and Override (RFC 4861 §4.4): the answer to a question, from the address's owner.
const SOLICITED_OVERRIDE: u8 = 0x60;
const TARGET_LINK_LAYER: u8 = 2;
/// What neighbour discovery is sent with, so that no router forwarded it (RFC 4861 §7.1.1).
const HOP_LIMIT: u8 = 255;

/// The solicitation in `frame`, if it is one this host may answer: untagged Ethernet, IPv6
/// with ICMPv6 straight after its header, hop limit 255, code 0, a unicast target, from an
/// address (not `::`). Never panics.
pub fn parse_solicitation(frame: &[u8]) -> Option<Solicitation> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::IPV6 {
        return None;
    }
    let ip = eth.payload();
    let header = ip.get(..IPV6_HEADER_LEN)?;
    if header[0] >> 4 != 6 || header[6] != ICMPV6 || header[7] != HOP_LIMIT {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let icmp = ip.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len)?;
    if icmp.len() < 24 || icmp[0] != NEIGHBOR_SOLICITATION || icmp[1] != 0 {
        return None;
    }
    let addr = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).expect("16 bytes"));
    let (sender_ip, target) = (addr(&header[8..24]), addr(&icmp[8..24]));
    if sender_ip.is_unspecified() || target.is_multicast() || target.is_unspecified() {
        return None;
    }
    Some(Solicitation {
        sender_mac: eth.src().0,
        sender_ip,
        target,
    })
}

/// Writes into `out` the advertisement answering `ns`: `ns.target` is at `mac`; returns its
/// length.
///
/// # Panics
/// If `out` is shorter than [`NA_FRAME_LEN`].
pub fn write_advertisement(ns: &Solicitation, mac: [u8; 6], out: &mut [u8]) -> usize {
    let out = &mut out[..NA_FRAME_LEN];
    out[..6].copy_from_slice(&ns.sender_mac);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&[0x86, 0xdd]);
    let (ip, icmp) = out[14..].split_at_mut(IPV6_HEADER_LEN);
    let len = icmp.len() as u16;
    ip[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&len.to_be_bytes());
    ip[6] = ICMPV6;
    ip[7] = HOP_LIMIT;
    ip[8..24].copy_from_slice(&ns.target.octets());
    ip[24..40].copy_from_slice(&ns.sender_ip.octets());
    icmp.fill(0);
    icmp[0] = NEIGHBOR_ADVERTISEMENT;
    icmp[4] = SOLICITED_OVERRIDE;
    icmp[8..24].copy_from_slice(&ns.target.octets());
    icmp[24] = TARGET_LINK_LAYER;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac);
    // The checksum covers a pseudo-header: both addresses, the length and the next header.
    let mut pseudo = [0u8; 40];
    pseudo[..32].copy_from_slice(&ip[8..40]);
    pseudo[32..36].copy_from_slice(&u32::from(len).to_be_bytes());
    pseudo[39] = ICMPV6;
    let sum = !fold(sum_words(sum_words(0, &pseudo), icmp));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    NA_FRAME_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv6Type, PacketBuilder, SlicedPacket, TransportSlice};

    const ASKER_MAC: [u8; 6] = [2, 0x42, 0, 0, 0, 2];
    const OWNER_MAC: [u8; 6] = [2, 0x42, 0, 0, 0, 9];

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A solicitation from `src` for `target`, with hop limit `hops`.
    fn solicitation(src: Ipv6Addr, target: Ipv6Addr, hops: u8) -> Vec<u8> {
        let mut ns = vec![NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
        ns.extend_from_slice(&target.octets());
        ns.extend_from_slice(&[1, 1]);
        ns.extend_from_slice(&ASKER_MAC);
        let mut f = vec![0x33, 0x33, 0xff, 0, 0, 9];
        f.extend_from_slice(&ASKER_MAC);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(ns.len() as u16).to_be_bytes());
        f.extend_from_slice(&[ICMPV6, hops]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&ip("ff02::1:ff00:9").octets());
        f.extend_from_slice(&ns);
        f
    }

    #[test]
    fn a_solicitation_is_answered_with_the_owner_s_advertisement() {
        let (asker, target) = (ip("fd00::2"), ip("fd00::9"));
        let ns = parse_solicitation(&solicitation(asker, target, 255)).expect("a solicitation");
        assert_eq!(
            ns,
            Solicitation {
                sender_mac: ASKER_MAC,
                sender_ip: asker,
                target
            }
        );
        let mut out = [0u8; NA_FRAME_LEN];
        assert_eq!(write_advertisement(&ns, OWNER_MAC, &mut out), NA_FRAME_LEN);
        assert_eq!((&out[..6], &out[6..12]), (&ASKER_MAC[..], &OWNER_MAC[..]));
        // An independent reading: addresses, the advertisement, and its checksum.
        let p = SlicedPacket::from_ethernet(&out).expect("an Ethernet frame");
        let Some(etherparse::NetSlice::Ipv6(v6)) = p.net else {
            panic!("not IPv6")
        };
        assert_eq!(
            (v6.header().source_addr(), v6.header().destination_addr()),
            (target, asker)
        );
        assert_eq!(v6.header().hop_limit(), 255);
        let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("not ICMPv6")
        };
        let advertisement = Icmpv6Type::NeighborAdvertisement(etherparse::icmpv6::NeighborAdvertisementHeader {
            router: false,
            solicited: true,
            r#override: true,
        });
        assert_eq!(icmp.icmp_type(), advertisement);
        let want = icmp
            .icmp_type()
            .calc_checksum(target.octets(), asker.octets(), icmp.payload())
            .unwrap();
        assert_eq!(icmp.checksum(), want, "the checksum holds");
        assert_eq!(&icmp.payload()[..16], &target.octets());
        assert_eq!(&icmp.payload()[16..24], &[2, 1, 2, 0x42, 0, 0, 0, 9]);
        // The same bytes a library builds for the same advertisement.
        let mut na = vec![0u8; 0];
        na.extend_from_slice(&target.octets());
        na.extend_from_slice(&[2, 1]);
        na.extend_from_slice(&OWNER_MAC);
        let built = PacketBuilder::ethernet2(OWNER_MAC, ASKER_MAC)
            .ipv6(target.octets(), asker.octets(), 255)
            .icmpv6(advertisement);
        let mut b = Vec::new();
        built.write(&mut b, &na).unwrap();
        assert_eq!(b, out.to_vec());
    }

    #[test]
    fn what_is_not_an_answerable_solicitation_is_left_alone() {
        let (asker, target) = (ip("fd00::2"), ip("fd00::9"));
        assert!(
            parse_solicitation(&solicitation(asker, target, 64)).is_none(),
            "forwarded by a router"
        );
        assert!(
            parse_solicitation(&solicitation(Ipv6Addr::UNSPECIFIED, target, 255)).is_none(),
            "duplicate address detection"
        );
        assert!(parse_solicitation(&solicitation(asker, ip("ff02::1"), 255)).is_none());
        let mut advert = solicitation(asker, target, 255);
        advert[54] = NEIGHBOR_ADVERTISEMENT;
        assert!(parse_solicitation(&advert).is_none());
        let whole = solicitation(asker, target, 255);
        for n in 0..whole.len() - 8 {
            assert!(parse_solicitation(&whole[..n]).is_none(), "cut at {n}");
        }
        let mut long = whole.clone();
        long[18..20].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(parse_solicitation(&long).is_none(), "a length beyond the frame");
    }
}
