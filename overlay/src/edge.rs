//! The overlay's edge of a host's switch, sans-IO: which network each VNI is, which port each
//! VXLAN peer is, the addresses answered here for endpoints on other hosts (ARP suppression),
//! and the forwarding decision for a frame entering the switch. switchd's dataplane and the
//! simulator both hold one and call the same [`Edge::decide`], so the simulator forwards as
//! switchd does.
//!
//! ```text
//!  VXLAN datagram ──► Edge::decap: header, (source address, VNI) → the peer's port
//!  frame on a port ──► Edge::decide: an ARP request or a neighbour solicitation for a
//!                                    pinned address → the reply
//!                                    anything else → the switch's verdict
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use rustc_hash::FxHashMap;
use switch::{MacAddr, NetworkId, PortId, Switch, SwitchError, Verdict};

use crate::arp::{self, ARP_FRAME_LEN};
use crate::nd::{self, NA_FRAME_LEN};

/// The longest reply the edge writes: a neighbour advertisement (an ARP reply is shorter).
pub const REPLY_LEN: usize = if NA_FRAME_LEN > ARP_FRAME_LEN {
    NA_FRAME_LEN
} else {
    ARP_FRAME_LEN
};

/// The addresses a pinned MAC is answered for here: ARP for the IPv4 one, neighbour
/// discovery for the IPv6 one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answered {
    /// IPv4.
    pub ip: Option<Ipv4Addr>,
    /// IPv6.
    pub ip6: Option<Ipv6Addr>,
}

/// A question a host answers for an endpoint on another: who has this address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// An ARP request.
    Arp(arp::ArpRequest),
    /// A neighbour solicitation (RFC 4861).
    Nd(nd::Solicitation),
}

impl Question {
    /// The address asked about.
    pub fn target(&self) -> std::net::IpAddr {
        match self {
            Question::Arp(r) => r.target_ip.into(),
            Question::Nd(s) => s.target.into(),
        }
    }

    /// Writes the answer, `mac` holds the address, into `out`; returns its length.
    pub fn write_answer(&self, mac: [u8; 6], out: &mut [u8; REPLY_LEN]) -> usize {
        match self {
            Question::Arp(r) => arp::write_reply(r, mac, out),
            Question::Nd(s) => nd::write_advertisement(s, mac, out),
        }
    }
}
use crate::vxlan::{Vni, VxlanHeader, VXLAN_HEADER_LEN};

/// A VNI another network of this host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("VNI {0} is in use on this host")]
pub struct VniInUse(pub Vni);

/// Why a VXLAN datagram did not enter the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not VXLAN: too short, or without the I flag.
    Malformed,
    /// A VNI no network of this host has.
    UnknownVni,
    /// A known VNI from an address that is not one of its peers.
    UnknownVtep,
    /// A sealed network's VNI in a datagram that came in clear.
    Unsealed,
}

/// How a VXLAN datagram crossed the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// As it is, on the VXLAN port.
    Clear,
    /// Inside ESP, opened under the sending host's security association.
    Sealed,
}

/// What to do with a frame that entered the switch.
#[derive(Debug)]
pub enum Decision<'a> {
    /// An ARP request or neighbour solicitation answered here: send back on the ingress port
    /// the reply of this length, written into the caller's buffer.
    Reply(usize),
    /// The switch's verdict.
    Switch(Verdict<'a>),
}

/// A host's VNIs, VXLAN peers and suppressed addresses.
#[derive(Debug, Default)]
pub struct Edge {
    vnis: FxHashMap<Vni, NetworkId>,
    /// VXLAN peers by (address, VNI): any source port is accepted, as RFC 7348 says.
    peers: FxHashMap<(IpAddr, Vni), PortId>,
    /// The VNIs of encrypted networks: their frames cross the underlay only sealed.
    sealed: rustc_hash::FxHashSet<Vni>,
    arp: arp::Table,
    nd: arp::Table<Ipv6Addr>,
}

impl Edge {
    /// An edge with no overlay network.
    pub fn new() -> Edge {
        Edge::default()
    }

    /// Gives network `net` the VNI `vni`.
    ///
    /// # Errors
    /// [`VniInUse`]: the VNI is another network's on this host.
    pub fn add_network(&mut self, vni: Vni, net: NetworkId) -> Result<(), VniInUse> {
        match self.vnis.get(&vni) {
            Some(n) if *n != net => Err(VniInUse(vni)),
            _ => {
                self.vnis.insert(vni, net);
                Ok(())
            }
        }
    }

    /// Forgets network `net`'s VNI.
    pub fn remove_network(&mut self, net: NetworkId) {
        let sealed = &mut self.sealed;
        self.vnis.retain(|v, n| {
            let keep = *n != net;
            if !keep {
                sealed.remove(v);
            }
            keep
        });
    }

    /// Makes `vni` an encrypted network's (`sealed`) or a plain one's.
    pub fn set_sealed(&mut self, vni: Vni, sealed: bool) {
        if sealed {
            self.sealed.insert(vni);
        } else {
            self.sealed.remove(&vni);
        }
    }

    /// Whether `vni` is an encrypted network's.
    pub fn is_sealed(&self, vni: Vni) -> bool {
        !self.sealed.is_empty() && self.sealed.contains(&vni)
    }

    /// Whether any encrypted network is here.
    pub fn has_sealed(&self) -> bool {
        !self.sealed.is_empty()
    }

    /// Whether any overlay network is here.
    pub fn has_networks(&self) -> bool {
        !self.vnis.is_empty()
    }

    /// The network of `vni`.
    pub fn network_of(&self, vni: Vni) -> Option<NetworkId> {
        self.vnis.get(&vni).copied()
    }

    /// Whether the peer at `addr` on `vni` has a port.
    pub fn has_peer(&self, addr: IpAddr, vni: Vni) -> bool {
        self.peers.contains_key(&(addr, vni))
    }

    /// Whether `port` is a VXLAN peer's.
    pub fn is_peer_port(&self, port: PortId) -> bool {
        self.peers.values().any(|p| *p == port)
    }

    /// The peer at `addr` on `vni` is port `port`.
    pub fn add_peer(&mut self, addr: IpAddr, vni: Vni, port: PortId) {
        self.peers.insert((addr, vni), port);
    }

    /// Port `port` is gone (a peer's or not).
    pub fn remove_port(&mut self, port: PortId) {
        self.peers.retain(|_, p| *p != port);
    }

    /// Whether no address is answered here.
    pub fn nothing_suppressed(&self) -> bool {
        self.arp.is_empty() && self.nd.is_empty()
    }

    /// Forgets every peer and suppressed address (the switch was rebuilt).
    pub fn clear(&mut self) {
        self.vnis.clear();
        self.sealed.clear();
        self.peers.clear();
        self.arp.clear();
        self.nd.clear();
    }

    /// Pins a remote endpoint's `mac` to the VXLAN peer port `port` of network `net` in
    /// `switch`, answering ARP and neighbour solicitations for the addresses `answered` with
    /// it. A MAC pinned to another peer moves (the
    /// endpoint's newest record says where it is); one that a local port holds stays, and the
    /// pin is refused.
    ///
    /// # Errors
    /// As [`Switch::add_static`].
    pub fn pin(
        &mut self,
        switch: &mut Switch,
        now: Instant,
        net: NetworkId,
        mac: MacAddr,
        port: PortId,
        answered: Answered,
    ) -> Result<(), SwitchError> {
        let held_by_peer = switch
            .fdb_entry(net, mac)
            .is_some_and(|e| e.is_static && e.port != port && self.is_peer_port(e.port));
        if held_by_peer {
            switch.remove_mac(net, mac);
        }
        switch.add_static(now, net, mac, port)?;
        match answered.ip {
            Some(ip) => self.arp.pin(net.0, mac.0, ip),
            None => self.arp.unpin(net.0, mac.0),
        }
        match answered.ip6 {
            Some(ip) => self.nd.pin(net.0, mac.0, ip),
            None => self.nd.unpin(net.0, mac.0),
        }
        Ok(())
    }

    /// Unpins a remote endpoint's `mac` from network `net`.
    pub fn unpin(&mut self, switch: &mut Switch, net: NetworkId, mac: MacAddr) {
        self.arp.unpin(net.0, mac.0);
        self.nd.unpin(net.0, mac.0);
        switch.remove_mac(net, mac);
    }

    /// The port a VXLAN datagram from `from`, `carried` so, enters the switch on, and its
    /// inner frame. An encrypted network takes only sealed datagrams.
    ///
    /// # Errors
    /// [`Refused`]: why it goes no further (each is counted by the caller).
    pub fn decap<'a>(&self, from: IpAddr, datagram: &'a [u8], carried: Carried) -> Result<(PortId, &'a [u8]), Refused> {
        let hdr = VxlanHeader::parse(datagram).map_err(|_| Refused::Malformed)?;
        if datagram.len() == VXLAN_HEADER_LEN {
            return Err(Refused::Malformed);
        }
        if carried == Carried::Clear && self.is_sealed(hdr.vni) {
            return Err(Refused::Unsealed);
        }
        match self.peers.get(&(from, hdr.vni)) {
            Some(&port) => Ok((port, &datagram[VXLAN_HEADER_LEN..])),
            None if self.vnis.contains_key(&hdr.vni) => Err(Refused::UnknownVtep),
            None => Err(Refused::UnknownVni),
        }
    }

    /// The MAC an ARP request or a neighbour solicitation in `frame` from `ingress` is
    /// answered with here: the target is pinned to another host on the port's network.
    pub fn answer(&self, switch: &Switch, ingress: PortId, frame: &[u8]) -> Option<(MacAddr, Question)> {
        if self.nothing_suppressed() {
            return None;
        }
        let net = switch.port_network(ingress)?;
        if let Some(req) = arp::parse_request(frame) {
            return Some((MacAddr(self.arp.lookup(net.0, req.target_ip)?), Question::Arp(req)));
        }
        let ns = nd::parse_solicitation(frame)?;
        Some((MacAddr(self.nd.lookup(net.0, ns.target)?), Question::Nd(ns)))
    }

    /// The forwarding decision for `frame` entering `switch` on `ingress` (with segmentation
    /// metadata `gso`, if any). An ARP request for an address pinned to another host is
    /// answered into `reply`, given when the port can take a reply; the request still counts
    /// and teaches the switch where its sender is, and one that port security drops gets no
    /// answer. Anything else gets the switch's verdict.
    pub fn decide<'s>(
        &self,
        switch: &'s mut Switch,
        now: Instant,
        ingress: PortId,
        gso: Option<switch::Gso>,
        frame: &[u8],
        reply: Option<&mut [u8; REPLY_LEN]>,
    ) -> Decision<'s> {
        if let Some(reply) = reply {
            if let Some((mac, q)) = self.answer(switch, ingress, frame) {
                return match switch.process(now, ingress, frame) {
                    Verdict::Drop(r) => Decision::Switch(Verdict::Drop(r)),
                    _ => Decision::Reply(q.write_answer(mac.0, reply)),
                };
            }
        }
        Decision::Switch(switch.process_offloaded(now, ingress, gso, frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switch::{NetworkConfig, PortConfig};

    const NET: NetworkId = NetworkId(1);

    /// A switch with one network, a local port and two VXLAN peers' ports, and its edge.
    fn fabric(now: Instant) -> (Switch, Edge, [PortId; 3]) {
        let mut sw = Switch::new(now, 1);
        sw.add_network(NET, NetworkConfig::default()).unwrap();
        let local = sw.add_port(PortConfig::new(NET)).unwrap();
        let peer = |sw: &mut Switch| {
            sw.add_port(PortConfig {
                split_horizon_group: 1,
                isolated: false,
                ..PortConfig::new(NET)
            })
            .unwrap()
        };
        let (p1, p2) = (peer(&mut sw), peer(&mut sw));
        let mut edge = Edge::new();
        let vni = Vni::new(4096).unwrap();
        edge.add_network(vni, NET).unwrap();
        edge.add_peer(IpAddr::from([10, 0, 0, 2]), vni, p1);
        // An IPv6 underlay's peer is keyed the same way.
        edge.add_peer("2001:db8::3".parse().unwrap(), vni, p2);
        (sw, edge, [local, p1, p2])
    }

    fn v4(ip: Ipv4Addr) -> Answered {
        Answered {
            ip: Some(ip),
            ip6: None,
        }
    }

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 1, 0, 1]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target.octets());
        f
    }

    #[test]
    fn datagrams_enter_on_their_peer_s_port_or_are_refused_with_a_reason() {
        let (_, edge, [_, p1, p2]) = fabric(Instant::now());
        let mut d = vec![0u8; 8 + 14];
        VxlanHeader {
            vni: Vni::new(4096).unwrap(),
        }
        .emit(&mut d);
        let from = IpAddr::from([10, 0, 0, 2]);
        let clear = Carried::Clear;
        assert_eq!(edge.decap(from, &d, clear).map(|(p, f)| (p, f.len())), Ok((p1, 14)));
        let from6: IpAddr = "2001:db8::3".parse().unwrap();
        assert_eq!(edge.decap(from6, &d, clear).map(|(p, _)| p), Ok(p2));
        for stranger in ["10.0.0.9", "2001:db8::9", "::ffff:10.0.0.2"] {
            assert_eq!(
                edge.decap(stranger.parse().unwrap(), &d, clear),
                Err(Refused::UnknownVtep),
                "{stranger}"
            );
        }
        assert_eq!(
            edge.decap(from, &d[..8], clear),
            Err(Refused::Malformed),
            "a header alone"
        );
        assert_eq!(edge.decap(from, &[0; 22], clear), Err(Refused::Malformed), "no I flag");
        let mut sealed = Edge::new();
        sealed.add_network(Vni::new(4096).unwrap(), NET).unwrap();
        sealed.add_peer(from, Vni::new(4096).unwrap(), p1);
        sealed.set_sealed(Vni::new(4096).unwrap(), true);
        assert_eq!(
            sealed.decap(from, &d, clear),
            Err(Refused::Unsealed),
            "clear on an encrypted network"
        );
        assert_eq!(sealed.decap(from, &d, Carried::Sealed).map(|(p, _)| p), Ok(p1));
        sealed.remove_network(NET);
        assert!(!sealed.has_sealed(), "the network's seal goes with it");
        VxlanHeader {
            vni: Vni::new(7).unwrap(),
        }
        .emit(&mut d);
        assert_eq!(edge.decap(from, &d, clear), Err(Refused::UnknownVni));
    }

    #[test]
    fn a_pinned_address_is_answered_here_and_a_moved_mac_follows_its_record() {
        let now = Instant::now();
        let (mut sw, mut edge, [local, p1, p2]) = fabric(now);
        let (mac, ip) = (MacAddr([2, 0x42, 10, 1, 0, 9]), Ipv4Addr::new(10, 1, 0, 9));
        edge.pin(&mut sw, now, NET, mac, p1, v4(ip)).unwrap();
        let mut reply = [0u8; REPLY_LEN];
        let req = arp_request(ip);
        match edge.decide(&mut sw, now, local, None, &req, Some(&mut reply)) {
            Decision::Reply(n) => assert_eq!((n, &reply[22..28]), (ARP_FRAME_LEN, &mac.0[..])),
            other => panic!("not answered here: {other:?}"),
        }
        // A port that cannot take a reply, or an address no one pinned: the switch decides.
        assert!(matches!(
            edge.decide(&mut sw, now, local, None, &req, None),
            Decision::Switch(_)
        ));
        let other = arp_request(Ipv4Addr::new(10, 1, 0, 77));
        assert!(matches!(
            edge.decide(&mut sw, now, local, None, &other, Some(&mut reply)),
            Decision::Switch(Verdict::Flood(_))
        ));
        // The endpoint moved to the host behind p2: its MAC moves with the newer record.
        edge.pin(&mut sw, now, NET, mac, p2, v4(ip)).unwrap();
        assert_eq!(sw.fdb_entry(NET, mac).map(|e| e.port), Some(p2));
        edge.unpin(&mut sw, NET, mac);
        assert!(edge.nothing_suppressed() && sw.fdb_entry(NET, mac).is_none());
    }

    /// A neighbour solicitation from 2:0:0:0:0:1 (fd00::1) for `target`, to its
    /// solicited-node group.
    fn solicitation(target: Ipv6Addr) -> Vec<u8> {
        let t = target.octets();
        let group: Ipv6Addr = [
            0xff02,
            0,
            0,
            0,
            0,
            1,
            0xff00 | u16::from(t[13]),
            u16::from_be_bytes([t[14], t[15]]),
        ]
        .into();
        let mut f = vec![0x33, 0x33, 0xff, t[13], t[14], t[15], 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
        f.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&group.octets());
        f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&t);
        f.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        f
    }

    #[test]
    fn a_pinned_ipv6_address_is_answered_as_arp_is() {
        let now = Instant::now();
        let (mut sw, mut edge, [local, p1, _]) = fabric(now);
        let mac = MacAddr([2, 0x42, 10, 1, 0, 9]);
        let (ip, ip6): (Ipv4Addr, Ipv6Addr) = ("10.1.0.9".parse().unwrap(), "fd00::9".parse().unwrap());
        edge.pin(
            &mut sw,
            now,
            NET,
            mac,
            p1,
            Answered {
                ip: Some(ip),
                ip6: Some(ip6),
            },
        )
        .unwrap();
        let mut reply = [0u8; REPLY_LEN];
        match edge.decide(&mut sw, now, local, None, &solicitation(ip6), Some(&mut reply)) {
            Decision::Reply(n) => {
                let na = nd::parse_solicitation(&reply[..n]);
                assert!(na.is_none(), "an advertisement, not a solicitation");
                assert_eq!((n, &reply[6..12], reply[54]), (NA_FRAME_LEN, &mac.0[..], 136));
                assert_eq!(&reply[62..78], &ip6.octets(), "the target");
                assert_eq!(&reply[..6], &[2, 0, 0, 0, 0, 1], "to the asker");
            }
            other => panic!("not answered here: {other:?}"),
        }
        let unknown = solicitation("fd00::77".parse().unwrap());
        assert!(matches!(
            edge.decide(&mut sw, now, local, None, &unknown, Some(&mut reply)),
            Decision::Switch(Verdict::Flood(_))
        ));
        // A later record without IPv6 stops the answers for the IPv6 address alone.
        edge.pin(&mut sw, now, NET, mac, p1, v4(ip)).unwrap();
        assert!(matches!(
            edge.decide(&mut sw, now, local, None, &solicitation(ip6), Some(&mut reply)),
            Decision::Switch(_)
        ));
        assert!(matches!(
            edge.decide(&mut sw, now, local, None, &arp_request(ip), Some(&mut reply)),
            Decision::Reply(_)
        ));
    }
}
