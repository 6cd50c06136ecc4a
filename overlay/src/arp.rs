//! ARP suppression: a host answers ARP requests for addresses it knows to live on other hosts
//! itself, instead of flooding them through every tunnel.

use std::net::Ipv4Addr;

/// An Ethernet frame carrying an ARP request for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRequest {
    /// The asker's hardware address.
    pub sender_mac: [u8; 6],
    /// The asker's address.
    pub sender_ip: Ipv4Addr,
    /// The address asked about.
    pub target_ip: Ipv4Addr,
}

/// Length of an ARP frame for IPv4 over Ethernet (without padding).
pub const ARP_FRAME_LEN: usize = 42;

/// The request in `frame`, if it is one (untagged, Ethernet/IPv4, opcode 1). Never panics.
pub fn parse_request(frame: &[u8]) -> Option<ArpRequest> {
    let f = frame.get(..ARP_FRAME_LEN)?;
    let header_ok = f[12..14] == [0x08, 0x06] && f[14..22] == [0, 1, 0x08, 0x00, 6, 4, 0, 1];
    if !header_ok {
        return None;
    }
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&f[22..28]);
    Some(ArpRequest {
        sender_mac,
        sender_ip: Ipv4Addr::new(f[28], f[29], f[30], f[31]),
        target_ip: Ipv4Addr::new(f[38], f[39], f[40], f[41]),
    })
}

/// Writes into `out` the reply to `req` saying that `target_ip` is at `mac`; returns its length.
///
/// # Panics
/// If `out` is shorter than [`ARP_FRAME_LEN`].
pub fn write_reply(req: &ArpRequest, mac: [u8; 6], out: &mut [u8]) -> usize {
    let f = &mut out[..ARP_FRAME_LEN];
    f[0..6].copy_from_slice(&req.sender_mac);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&req.target_ip.octets());
    f[32..38].copy_from_slice(&req.sender_mac);
    f[38..42].copy_from_slice(&req.sender_ip.octets());
    ARP_FRAME_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // who-has 10.0.0.3 tell 10.0.0.2, from 02:42:0a:00:00:02.
    const REQ: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0x0a, 0, 0, 2, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1, 0x02,
        0x42, 0x0a, 0, 0, 2, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 3,
    ];

    #[test]
    fn request_and_reply() {
        let r = parse_request(&REQ).unwrap();
        assert_eq!(
            (r.sender_ip, r.target_ip),
            (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3))
        );
        let mut out = [0u8; 64];
        let n = write_reply(&r, [2, 0x42, 10, 0, 0, 3], &mut out);
        let reply = &out[..n];
        assert_eq!(&reply[0..6], &[2, 0x42, 10, 0, 0, 2]);
        assert_eq!(&reply[20..22], &[0, 2], "opcode reply");
        assert_eq!(&reply[28..32], &[10, 0, 0, 3]);
        assert_eq!(parse_request(reply), None, "a reply is not a request");
        let mut tagged = REQ;
        tagged[12] = 0x81;
        assert_eq!(parse_request(&tagged), None);
        assert_eq!(parse_request(&REQ[..41]), None);
    }

    proptest! {
        #[test]
        fn any_bytes(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_request(&b);
        }
    }
}
