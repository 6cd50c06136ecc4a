use std::net::Ipv4Addr;

use super::{MacAddr, WireError};

/// Length of an ARP packet for IPv4 over Ethernet (RFC 826), after the Ethernet header.
pub const ARP_IPV4_LEN: usize = 28;

/// An ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpOp(pub u16);

impl ArpOp {
    /// Who has the target address?
    pub const REQUEST: ArpOp = ArpOp(1);
    /// The target address is at the sender's hardware address.
    pub const REPLY: ArpOp = ArpOp(2);
}

/// A zero-copy view of an ARP packet for IPv4 over Ethernet: hardware type 1, protocol 0x0800,
/// address lengths 6 and 4. Any other kind of ARP is refused by [`ArpPacket::new_checked`].
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps untrusted bytes (an Ethernet frame's payload).
    ///
    /// # Errors
    /// [`WireError::Truncated`] for fewer than 28 bytes, [`WireError::Unsupported`] for ARP of
    /// another hardware or protocol type or other address lengths.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < ARP_IPV4_LEN {
            return Err(WireError::Truncated);
        }
        if b[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
            return Err(WireError::Unsupported);
        }
        Ok(ArpPacket { buffer })
    }

    /// The operation.
    #[inline]
    pub fn op(&self) -> ArpOp {
        let b = self.buffer.as_ref();
        ArpOp(u16::from_be_bytes([b[6], b[7]]))
    }

    /// The sender's hardware address.
    #[inline]
    pub fn sender_mac(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[8..14])
    }

    /// The sender's protocol address (0.0.0.0 in a probe, RFC 5227).
    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 14)
    }

    /// The target's hardware address.
    #[inline]
    pub fn target_mac(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[18..24])
    }

    /// The target's protocol address.
    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 24)
    }
}

/// An ARP packet for IPv4 over Ethernet, to write ([`ArpRepr::emit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// The operation.
    pub op: ArpOp,
    /// The sender's hardware address.
    pub sender_mac: MacAddr,
    /// The sender's protocol address.
    pub sender_ip: Ipv4Addr,
    /// The target's hardware address.
    pub target_mac: MacAddr,
    /// The target's protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Writes the packet into the first [`ARP_IPV4_LEN`] bytes of `buf`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`ARP_IPV4_LEN`].
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..ARP_IPV4_LEN];
        b[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        b[6..8].copy_from_slice(&self.op.0.to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac.0);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac.0);
        b[24..28].copy_from_slice(&self.target_ip.octets());
    }
}

#[inline(always)]
pub(super) fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    // A request from 02:42:ac:12:00:02 (172.18.0.2) for 172.18.0.1.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0xac, 0x12, 0x00, 0x02, 172, 18, 0, 2, 0, 0, 0, 0,
        0, 0, 172, 18, 0, 1,
    ];

    #[test]
    fn test_deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.op(), ArpOp::REQUEST);
        assert_eq!(p.sender_mac(), MacAddr([2, 0x42, 0xac, 0x12, 0, 2]));
        assert_eq!(p.sender_ip(), Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(p.target_mac(), MacAddr::ZERO);
        assert_eq!(p.target_ip(), Ipv4Addr::new(172, 18, 0, 1));
    }

    #[test]
    fn a_packet_emitted_reads_back_the_same() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        let repr = ArpRepr {
            op: p.op(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        };
        let mut out = [0xff; ARP_IPV4_LEN];
        repr.emit(&mut out);
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn refuses_short_and_foreign_arp() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            WireError::Truncated
        );
        let mut ipv6ish = REQUEST;
        ipv6ish[5] = 16;
        assert_eq!(
            ArpPacket::new_checked(&ipv6ish[..]).unwrap_err(),
            WireError::Unsupported
        );
    }
}
