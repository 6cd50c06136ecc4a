//! ARP suppression: a host answers ARP requests for addresses it knows to live on other hosts
//! itself, instead of flooding them through every tunnel.

use std::net::Ipv4Addr;

use rustc_hash::FxHashMap;
use switch::wire::{ArpOp, ArpPacket, ArpRepr, EtherType, EthernetFrame};
use switch::MacAddr;

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
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::ARP {
        return None;
    }
    let arp = ArpPacket::new_checked(eth.payload()).ok()?;
    (arp.op() == ArpOp::REQUEST).then(|| ArpRequest {
        sender_mac: arp.sender_mac().0,
        sender_ip: arp.sender_ip(),
        target_ip: arp.target_ip(),
    })
}

/// Writes into `out` the reply to `req` saying that `target_ip` is at `mac`; returns its length.
///
/// # Panics
/// If `out` is shorter than [`ARP_FRAME_LEN`].
pub fn write_reply(req: &ArpRequest, mac: [u8; 6], out: &mut [u8]) -> usize {
    let mut eth = EthernetFrame::new_unchecked(&mut out[..ARP_FRAME_LEN]);
    eth.set_dst(MacAddr(req.sender_mac));
    eth.set_src(MacAddr(mac));
    eth.set_ethertype(EtherType::ARP);
    ArpRepr {
        op: ArpOp::REPLY,
        sender_mac: MacAddr(mac),
        sender_ip: req.target_ip,
        target_mac: MacAddr(req.sender_mac),
        target_ip: req.sender_ip,
    }
    .emit(eth.payload_mut());
    ARP_FRAME_LEN
}

/// The addresses a host answers for (the addresses of endpoints on other hosts), per network:
/// which MAC holds an address, and the one address each MAC answers for. Both ways are
/// indexed, so moving a MAC to a new address costs two lookups whatever the table's size.
/// One table per address family: IPv4 for ARP, IPv6 for neighbour discovery.
#[derive(Debug)]
pub struct Table<A = Ipv4Addr> {
    by_ip: FxHashMap<(u32, A), [u8; 6]>,
    by_mac: FxHashMap<(u32, [u8; 6]), A>,
}

impl<A> Default for Table<A> {
    fn default() -> Self {
        Table {
            by_ip: FxHashMap::default(),
            by_mac: FxHashMap::default(),
        }
    }
}

impl<A: Copy + Eq + std::hash::Hash> Table<A> {
    /// An empty table.
    pub fn new() -> Table<A> {
        Table::default()
    }

    /// On `network`, `mac` answers for `ip`, and only for it: the address it answered for
    /// before is forgotten, as is whichever MAC answered for `ip` before.
    pub fn pin(&mut self, network: u32, mac: [u8; 6], ip: A) {
        if let Some(old) = self.by_mac.insert((network, mac), ip) {
            if old != ip && self.by_ip.get(&(network, old)) == Some(&mac) {
                self.by_ip.remove(&(network, old));
            }
        }
        if let Some(prev) = self.by_ip.insert((network, ip), mac).filter(|m| *m != mac) {
            self.by_mac.remove(&(network, prev));
        }
    }

    /// `mac` answers for nothing on `network` any more.
    pub fn unpin(&mut self, network: u32, mac: [u8; 6]) {
        if let Some(ip) = self.by_mac.remove(&(network, mac)) {
            if self.by_ip.get(&(network, ip)) == Some(&mac) {
                self.by_ip.remove(&(network, ip));
            }
        }
    }

    /// The MAC answering for `ip` on `network`.
    pub fn lookup(&self, network: u32, ip: A) -> Option<[u8; 6]> {
        self.by_ip.get(&(network, ip)).copied()
    }

    /// How many addresses are answered for.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// Whether no address is answered for (the dataplane then skips looking at ARP at all).
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Forgets everything (a restarted host).
    pub fn clear(&mut self) {
        self.by_ip.clear();
        self.by_mac.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_mac_answers_for_one_address_and_an_address_names_one_mac() {
        let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
        let ip = |n| Ipv4Addr::new(10, 0, 0, n);
        let mut t = Table::new();
        assert!(t.is_empty());
        t.pin(1, a, ip(2));
        t.pin(2, a, ip(2));
        assert_eq!((t.lookup(1, ip(2)), t.lookup(2, ip(2)), t.len()), (Some(a), Some(a), 2));
        // a moves to .3 on network 1: .2 is no longer answered there, still on network 2.
        t.pin(1, a, ip(3));
        assert_eq!(
            (t.lookup(1, ip(2)), t.lookup(1, ip(3)), t.lookup(2, ip(2))),
            (None, Some(a), Some(a))
        );
        // b takes .3: a answers for nothing, so unpinning a leaves b's address alone.
        t.pin(1, b, ip(3));
        t.unpin(1, a);
        assert_eq!(t.lookup(1, ip(3)), Some(b));
        // A later pin of a to .3 again takes the address back; b's unpin then changes nothing.
        t.pin(1, a, ip(3));
        t.unpin(1, b);
        assert_eq!(t.lookup(1, ip(3)), Some(a));
        t.unpin(1, a);
        t.unpin(2, a);
        assert!(t.is_empty());
        t.pin(1, a, ip(9));
        t.clear();
        assert_eq!((t.lookup(1, ip(9)), t.len()), (None, 0));
    }

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
