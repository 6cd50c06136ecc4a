use std::net::{Ipv4Addr, Ipv6Addr};

use super::arp::ipv4_at;
use super::WireError;

/// IP protocol numbers the switch looks at.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// IPv6 destination options.
    pub const DEST_OPTS: u8 = 60;
    /// Authentication header.
    pub const AH: u8 = 51;
}

/// Extension headers walked before giving up on finding an IPv6 packet's upper layer.
const MAX_EXTENSION_HEADERS: usize = 8;

/// A zero-copy view of an IPv4 header and what follows it. The payload is everything after
/// the header in the buffer (an offloaded super-frame's total length field is not trusted).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps bytes known to hold a whole IPv4 header (built or checked here before); the
    /// accessors may panic on anything else.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps untrusted bytes (an Ethernet frame's payload).
    ///
    /// # Errors
    /// [`WireError::Truncated`] when the buffer is shorter than the header it announces, or the
    /// header length is under 20 bytes; [`WireError::Unsupported`] when the version is not 4.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < 20 {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(WireError::Unsupported);
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if ihl < 20 || b.len() < ihl {
            return Err(WireError::Truncated);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// The header's length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }

    /// The source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 12)
    }

    /// The destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 16)
    }

    /// The protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }

    /// Whether the payload starts with the upper layer's header (not a later fragment).
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        self.flags_and_offset() & 0x1fff == 0
    }

    /// Whether the packet is a fragment at all: more fragments follow, or it is a later one.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_and_offset() & 0x3fff != 0
    }

    /// The flags (top three bits) and the fragment offset.
    #[inline]
    pub fn flags_and_offset(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[6], b[7]])
    }

    /// The DSCP and ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The total length the header announces (not checked against the buffer).
    #[inline]
    pub fn total_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[2], b[3]])
    }

    /// The identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    /// The time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// Everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// The UDP source and destination ports, for the first fragment of a UDP packet.
    #[inline]
    pub fn udp_ports(&self) -> Option<(u16, u16)> {
        if self.protocol() != proto::UDP || !self.is_first_fragment() {
            return None;
        }
        udp_ports(self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the identification field.
    #[inline]
    pub fn set_ident(&mut self, id: u16) {
        self.buffer.as_mut()[4..6].copy_from_slice(&id.to_be_bytes());
    }

    /// Computes the header checksum over the header as it is now and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        b[10..12].fill(0);
        let c = internet_checksum(&b[..hl]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// An IPv4 header without options, to write ([`Ipv4Repr::emit`]): version 4, "don't
/// fragment", no identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// The source address.
    pub src: Ipv4Addr,
    /// The destination address.
    pub dst: Ipv4Addr,
    /// The payload's protocol ([`proto`]).
    pub protocol: u8,
    /// The time to live.
    pub ttl: u8,
    /// The payload's length.
    pub payload_len: usize,
}

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

impl Ipv4Repr {
    /// Writes the header, its checksum included, into the first [`IPV4_HEADER_LEN`] bytes of
    /// `buf`; a total length beyond 65,535 is written as 65,535.
    ///
    /// # Panics
    /// If `buf` is shorter than [`IPV4_HEADER_LEN`].
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let total = u16::try_from(IPV4_HEADER_LEN + self.payload_len).unwrap_or(u16::MAX);
        let h = &mut buf[..IPV4_HEADER_LEN];
        h.fill(0);
        h[0] = 0x45;
        h[6] = 0x40;
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let mut p = Ipv4Packet { buffer: h };
        p.set_total_len(total);
        p.fill_checksum();
    }
}

/// The Internet checksum (RFC 1071) of `data`: the complement of its one's-complement sum in
/// 16-bit big-endian words, an odd last byte padded with zero.
#[inline]
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A zero-copy view of an IPv6 header and what follows it.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps untrusted bytes (an Ethernet frame's payload).
    ///
    /// # Errors
    /// [`WireError::Truncated`] for fewer than 40 bytes; [`WireError::Unsupported`] when the
    /// version is not 6.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < IPV6_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::Unsupported);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// The source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[8..24]);
        Ipv6Addr::from(a)
    }

    /// The destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[24..40]);
        Ipv6Addr::from(a)
    }

    /// The upper-layer protocol and its bytes, past any extension headers (at most eight are
    /// walked). `None` when they cannot be found in this packet: a later fragment, a chain cut
    /// short or too long. A filter must treat that as unknown, never as harmless (RFC 7113).
    #[inline]
    pub fn upper_layer(&self) -> Option<(u8, &[u8])> {
        let b = self.buffer.as_ref();
        let mut next = b[6];
        let mut rest = &b[IPV6_HEADER_LEN..];
        for _ in 0..MAX_EXTENSION_HEADERS {
            let len = match next {
                proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS => (usize::from(*rest.get(1)?) + 1) * 8,
                proto::AH => (usize::from(*rest.get(1)?) + 2) * 4,
                proto::FRAGMENT => {
                    let f = rest.get(..8)?;
                    if u16::from_be_bytes([f[2], f[3]]) >> 3 != 0 {
                        return None;
                    }
                    8
                }
                upper => return Some((upper, rest)),
            };
            next = *rest.first()?;
            rest = rest.get(len..)?;
        }
        None
    }
}

/// The source and destination ports at the front of a UDP header, if it is whole.
#[inline]
pub fn udp_ports(udp: &[u8]) -> Option<(u16, u16)> {
    let h = udp.get(..8)?;
    Some((u16::from_be_bytes([h[0], h[1]]), u16::from_be_bytes([h[2], h[3]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 172.18.0.2 -> 172.18.0.1, UDP 68 -> 67, no options.
    const DHCP_V4: [u8; 28] = [
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 172, 18, 0, 2, 172, 18, 0, 1, 0, 68, 0, 67, 0, 8, 0, 0,
    ];

    fn v6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 255];
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn ipv4_repr_writes_a_header_whose_checksum_holds() {
        let mut b = [0xaau8; 28];
        Ipv4Repr {
            src: Ipv4Addr::new(172, 18, 0, 2),
            dst: Ipv4Addr::new(172, 18, 0, 1),
            protocol: proto::UDP,
            ttl: 64,
            payload_len: 8,
        }
        .emit(&mut b);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.total_len(), p.ttl(), p.protocol(), p.flags_and_offset()),
            (28, 64, 17, 0x4000)
        );
        assert_eq!(
            (p.src(), p.dst(), p.ident(), p.tos()),
            (Ipv4Addr::new(172, 18, 0, 2), Ipv4Addr::new(172, 18, 0, 1), 0, 0)
        );
        assert_eq!(
            internet_checksum(p.header()),
            0,
            "a header with its checksum sums to zero"
        );
        assert!(!p.is_fragment());
        let mut q = Ipv4Packet::new_checked(b).unwrap();
        q.set_total_len(1500);
        q.set_ident(7);
        q.fill_checksum();
        assert_eq!((q.total_len(), q.ident()), (1500, 7));
        assert_eq!(internet_checksum(q.header()), 0);
    }

    #[test]
    fn internet_checksum_pads_an_odd_byte() {
        // RFC 1071's example, then the same words with one byte left over.
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        assert_eq!(internet_checksum(&[0x01]), !0x0100);
    }

    #[test]
    fn test_deconstruct_ipv4() {
        let p = Ipv4Packet::new_checked(&DHCP_V4[..]).unwrap();
        assert_eq!(p.src(), Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(p.dst(), Ipv4Addr::new(172, 18, 0, 1));
        assert_eq!(p.udp_ports(), Some((68, 67)));
        let mut later = DHCP_V4;
        later[7] = 1;
        let p = Ipv4Packet::new_checked(&later[..]).unwrap();
        assert_eq!(p.udp_ports(), None, "a later fragment has no UDP header");
    }

    #[test]
    fn ipv4_refuses_what_it_cannot_read() {
        assert_eq!(
            Ipv4Packet::new_checked(&DHCP_V4[..19]).unwrap_err(),
            WireError::Truncated
        );
        let mut bad = DHCP_V4;
        bad[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&bad[..]).unwrap_err(), WireError::Truncated);
        bad[0] = 0x4f;
        assert_eq!(Ipv4Packet::new_checked(&bad[..]).unwrap_err(), WireError::Truncated);
        bad[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&bad[..]).unwrap_err(), WireError::Unsupported);
    }

    #[test]
    fn ipv6_upper_layer_past_extension_headers() {
        let ra = [134, 0, 0, 0];
        let p = v6(proto::ICMPV6, &ra);
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.upper_layer(), Some((proto::ICMPV6, &ra[..])));
        assert_eq!(v.src(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        // Hop-by-hop (8 bytes) then destination options (16 bytes) then ICMPv6.
        let mut chain = vec![proto::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0];
        chain.extend_from_slice(&[proto::ICMPV6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        chain.extend_from_slice(&ra);
        let p = v6(proto::HOP_BY_HOP, &chain);
        let v = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.upper_layer(), Some((proto::ICMPV6, &ra[..])));
    }

    #[test]
    fn ipv6_upper_layer_unknown_when_hidden() {
        // A later fragment.
        let p = v6(proto::FRAGMENT, &[proto::ICMPV6, 0, 0, 8, 0, 0, 0, 1, 134, 0]);
        assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer(), None);
        // A first fragment carries it.
        let p = v6(proto::FRAGMENT, &[proto::ICMPV6, 0, 0, 1, 0, 0, 0, 1, 134, 0]);
        assert_eq!(
            Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer().map(|u| u.0),
            Some(proto::ICMPV6)
        );
        // A chain cut short, and one longer than is walked.
        let p = v6(proto::HOP_BY_HOP, &[proto::ICMPV6, 3, 0, 0]);
        assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer(), None);
        let mut long = Vec::new();
        for _ in 0..9 {
            long.extend_from_slice(&[proto::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let p = v6(proto::DEST_OPTS, &long);
        assert_eq!(Ipv6Packet::new_checked(&p[..]).unwrap().upper_layer(), None);
    }
}
