//! Which flow an inner frame belongs to, for the VXLAN UDP source port (RFC 7348 section 5:
//! "a hash of fields from the inner packet", so the underlay's ECMP spreads flows while a
//! flow stays on one path).

use switch::wire::{proto, EtherType, EthernetFrame, Ipv4Packet};

/// A hash of the inner frame's addresses: the Ethernet pair, and for IPv4 the address pair and
/// (TCP/UDP, not fragmented) the port pair. Never panics, whatever the bytes.
pub fn flow_hash(frame: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    mix(frame.get(..12).unwrap_or(frame));
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return (h ^ (h >> 32)) as u32;
    };
    if eth.ethertype() == EtherType::IPV4 {
        if let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) {
            let [a, b, c, d] = ip.src().octets();
            let [e, f, g, i] = ip.dst().octets();
            mix(&[a, b, c, d, e, f, g, i]);
            if (ip.protocol() == proto::TCP || ip.protocol() == proto::UDP) && !ip.is_fragment() {
                if let Some(ports) = ip.payload().get(..4) {
                    mix(ports);
                }
            }
        }
    }
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tcp(src_port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[0..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f[34..36].copy_from_slice(&src_port.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f
    }

    #[test]
    fn flows_differ_and_a_flow_is_stable() {
        assert_eq!(flow_hash(&tcp(1000)), flow_hash(&tcp(1000)));
        assert_ne!(flow_hash(&tcp(1000)), flow_hash(&tcp(1001)));
        let mut f = tcp(1000);
        f[40] = 99; // payload bytes do not matter
        assert_eq!(flow_hash(&f), flow_hash(&tcp(1000)));
    }

    proptest! {
        #[test]
        fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = flow_hash(&bytes);
        }
    }
}
