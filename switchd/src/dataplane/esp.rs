//! Sealed tunnels: the VXLAN datagrams of encrypted overlay networks, carried as ESP in UDP
//! (RFC 3948) between hosts, one security association (SA) per direction of each pair of
//! hosts. The cluster installs the SAs (keys from the TLS exporter of a QUIC connection
//! between the two hosts, `crate::cluster::keys`); this side seals, opens, and counts every
//! packet it refuses. The socket is bound while an encrypted network exists.
//!
//! ```text
//!  IP | UDP 4500 → 4500 | ESP: SPI, seq, IV | sealed: UDP → 4789 | VXLAN | frame | trailer | ICV
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use overlay::esp::{self, EspError, Opener, Sa, Sealer, KEY_LEN, NEXT_HEADER_UDP};
use overlay::{Vni, VxlanHeader, VXLAN_HEADER_LEN, VXLAN_PORT};
use rustc_hash::FxHashMap;

use crate::dataplane::vxlan::{bind_rx, destination, recv_train, Train, GSO_MAX_SEGMENTS, MAX_UDP_PAYLOAD};

/// The UDP header inside the ESP payload.
const UDP_HEADER_LEN: usize = 8;
/// Inbound SAs kept per peer: the newest, the one before (still in use until the peer has
/// switched), and one from a rekeying both hosts started at once.
pub const INBOUND_PER_PEER: usize = 3;
/// Bytes sealing adds in front of and behind a VXLAN datagram at most: ESP header, IV,
/// the inner UDP header, padding and trailer, ICV.
pub const SEALED_OVERHEAD: usize = esp::ESP_HEADER_LEN + esp::IV_LEN + UDP_HEADER_LEN + 3 + 2 + esp::ICV_LEN;

/// Counters of sealed tunnels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EspStats {
    /// Datagrams received on the ESP port.
    pub rx_packets: u64,
    /// Too short, an inner datagram that is not VXLAN over UDP, or a trailer that does not parse.
    pub rx_malformed: u64,
    /// An SPI no SA here has (a forgery, or an SA retired).
    pub rx_unknown_spi: u64,
    /// From an address that is not the SA's peer.
    pub rx_wrong_peer: u64,
    /// Whose integrity check failed: forged or tampered with.
    pub rx_forged: u64,
    /// Replays, or too old for the window.
    pub rx_replayed: u64,
    /// Datagrams sealed and sent.
    pub tx_packets: u64,
    /// Frames for a peer with no SA yet, dropped (never sent in clear).
    pub tx_no_key: u64,
    /// Sends that failed.
    pub tx_errors: u64,
    /// SAs installed, both directions, since start.
    pub sas_installed: u64,
}

/// A change to the SAs, from the cluster's key exchange.
#[derive(Clone)]
pub enum SaChange {
    /// Frames from `peer` sealed under `spi` and `key` open here.
    Inbound {
        /// The peer's VTEP address.
        peer: IpAddr,
        /// The SPI, chosen here.
        spi: u32,
        /// Key and salt.
        key: [u8; KEY_LEN],
    },
    /// Frames to `peer` are sealed under `spi` and `key` from now on.
    Outbound {
        /// The peer's VTEP address.
        peer: IpAddr,
        /// The SPI, chosen by the peer.
        spi: u32,
        /// Key and salt.
        key: [u8; KEY_LEN],
    },
    /// Every SA with `peer` goes (it left, went down or was revoked).
    Forget(IpAddr),
}

impl std::fmt::Debug for SaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaChange::Inbound { peer, spi, .. } => write!(f, "Inbound({peer}, {spi:#010x})"),
            SaChange::Outbound { peer, spi, .. } => write!(f, "Outbound({peer}, {spi:#010x})"),
            SaChange::Forget(peer) => write!(f, "Forget({peer})"),
        }
    }
}

struct Inbound {
    peer: IpAddr,
    opener: Opener,
}

/// The ESP socket and the SAs.
pub struct Esp {
    /// Where it binds (the advertise address and the ESP port), and where peers are sent to
    /// (their address, the same port).
    addr: SocketAddr,
    sock: Option<UdpSocket>,
    outbound: FxHashMap<IpAddr, Sealer>,
    inbound: FxHashMap<u32, Inbound>,
    /// Each peer's inbound SPIs, oldest first.
    by_peer: FxHashMap<IpAddr, VecDeque<u32>>,
    /// Sealed datagrams on their way out.
    sealed: Vec<u8>,
    /// The counters.
    pub stats: EspStats,
}

impl Esp {
    /// No socket, no SAs; the socket binds on `addr` once [`Esp::open`] is called.
    pub fn new(addr: SocketAddr) -> Esp {
        Esp {
            addr,
            sock: None,
            outbound: FxHashMap::default(),
            inbound: FxHashMap::default(),
            by_peer: FxHashMap::default(),
            sealed: Vec::with_capacity(MAX_UDP_PAYLOAD + 4096),
            stats: EspStats::default(),
        }
    }

    /// Binds the socket, when it is not.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn open(&mut self) -> io::Result<Option<std::os::fd::BorrowedFd<'_>>> {
        use std::os::fd::AsFd;
        if self.sock.is_none() {
            self.sock = Some(bind_rx(self.addr, "ESP")?);
            return Ok(self.sock.as_ref().map(|s| s.as_fd()));
        }
        Ok(None)
    }

    /// Closes the socket (the last encrypted network went), handing it back for epoll to forget.
    pub fn close(&mut self) -> Option<UdpSocket> {
        self.sock.take()
    }

    /// Where the socket is bound, if it is.
    pub fn bound(&self) -> Option<SocketAddr> {
        self.sock.as_ref().map(|_| self.addr)
    }

    /// Inbound and outbound SAs held.
    pub fn sa_counts(&self) -> (usize, usize) {
        (self.inbound.len(), self.outbound.len())
    }

    /// Applies a change from the key exchange.
    pub fn apply(&mut self, c: SaChange) {
        match c {
            SaChange::Inbound { peer, spi, key } => {
                if let Some(old) = self.inbound.insert(
                    spi,
                    Inbound {
                        peer,
                        opener: Opener::new(Sa::new(spi, &key)),
                    },
                ) {
                    // The same SPI again (the exchange picks unused ones): its old peer's list
                    // no longer holds it.
                    if let Some(list) = self.by_peer.get_mut(&old.peer) {
                        list.retain(|s| *s != spi);
                    }
                }
                let list = self.by_peer.entry(peer).or_default();
                list.push_back(spi);
                while list.len() > INBOUND_PER_PEER {
                    if let Some(gone) = list.pop_front() {
                        self.inbound.remove(&gone);
                    }
                }
                self.stats.sas_installed += 1;
            }
            SaChange::Outbound { peer, spi, key } => {
                self.outbound.insert(peer, Sealer::new(Sa::new(spi, &key)));
                self.stats.sas_installed += 1;
            }
            SaChange::Forget(peer) => {
                self.outbound.remove(&peer);
                for spi in self.by_peer.remove(&peer).unwrap_or_default() {
                    self.inbound.remove(&spi);
                }
            }
        }
    }

    /// Whether frames to `peer` can be sealed.
    pub fn has_outbound(&self, peer: IpAddr) -> bool {
        self.outbound.contains_key(&peer)
    }

    /// Whether an inbound SA has `spi`.
    #[cfg(test)]
    pub fn has_spi(&self, spi: u32) -> bool {
        self.inbound.contains_key(&spi)
    }

    /// Receives the next train of ESP datagrams into `buf`.
    pub fn recv_train(&mut self, buf: &mut [u8]) -> io::Result<Option<Train>> {
        match &self.sock {
            Some(s) => recv_train(s, buf),
            None => Ok(None),
        }
    }

    /// Opens an ESP datagram from `from` in place: the VXLAN datagram it carries, or `None`
    /// (counted by why).
    pub fn unseal<'a>(&mut self, from: IpAddr, datagram: &'a mut [u8]) -> Option<&'a [u8]> {
        self.stats.rx_packets += 1;
        let Some(spi) = Opener::spi_of(datagram) else {
            self.stats.rx_malformed += 1;
            return None;
        };
        let Some(sa) = self.inbound.get_mut(&spi) else {
            self.stats.rx_unknown_spi += 1;
            return None;
        };
        if sa.peer != from {
            self.stats.rx_wrong_peer += 1;
            return None;
        }
        match sa.opener.open(datagram) {
            Ok(o) if o.next_header == NEXT_HEADER_UDP => match inner_vxlan(o.payload) {
                Some(v) => Some(v),
                None => {
                    self.stats.rx_malformed += 1;
                    None
                }
            },
            Ok(_) | Err(EspError::Malformed) => {
                self.stats.rx_malformed += 1;
                None
            }
            Err(EspError::Forged) => {
                self.stats.rx_forged += 1;
                None
            }
            Err(EspError::Replayed(_)) => {
                self.stats.rx_replayed += 1;
                None
            }
            Err(EspError::UnknownSpi(_) | EspError::Exhausted) => {
                self.stats.rx_unknown_spi += 1;
                None
            }
        }
    }

    /// Seals `frame` for VNI `vni` and sends it to `to`.
    ///
    /// # Errors
    /// No SA for `to` (counted as `tx_no_key`), a worn-out SA, or the send failed.
    pub fn send(&mut self, frame: &[u8], vni: Vni, to: IpAddr) -> io::Result<()> {
        self.sealed.clear();
        let mut vxlan = [0u8; VXLAN_HEADER_LEN];
        VxlanHeader { vni }.emit(&mut vxlan);
        self.seal_one(to, &vxlan, frame)?;
        let sent = match &self.sock {
            Some(s) => {
                destination(self.addr, SocketAddr::new(to, self.addr.port())).and_then(|to| s.send_to(&self.sealed, to))
            }
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        };
        self.count_send(sent.map(|_| 1))
    }

    /// Seals the segments of a cut super-frame (heads in `heads` with 8 bytes of front, from
    /// [`overlay::offload::cut_tcp`]; payload slices in `frame`) for VNI `vni`, one ESP
    /// packet each, and sends them to `to` in as few UDP sends with segmentation offload as
    /// the size limits allow (every sealed segment but the last is the same size).
    ///
    /// # Errors
    /// As [`Esp::send`].
    pub fn send_cut(
        &mut self,
        heads: &mut [u8],
        cut: &overlay::offload::Cut,
        frame: &[u8],
        vni: Vni,
        to: IpAddr,
    ) -> io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
        use std::os::fd::AsRawFd;
        for head in heads.chunks_exact_mut(cut.head_len).take(cut.count) {
            VxlanHeader { vni }.emit(&mut head[..VXLAN_HEADER_LEN]);
        }
        let plain = UDP_HEADER_LEN + cut.stride();
        let stride = plain + esp::overhead(plain);
        let per_send = (MAX_UDP_PAYLOAD / stride).clamp(1, GSO_MAX_SEGMENTS);
        let size = u16::try_from(stride).unwrap_or(u16::MAX);
        let addr = match destination(self.addr, SocketAddr::new(to, self.addr.port())) {
            Ok(a) => SockaddrStorage::from(a),
            Err(e) => return self.count_send(Err(e)),
        };
        let mut segments = cut.segments(heads, frame);
        let mut left = cut.count;
        while left > 0 {
            let k = per_send.min(left);
            self.sealed.clear();
            for (head, payload) in segments.by_ref().take(k) {
                self.seal_one(to, head, payload)?;
            }
            let gso = [ControlMessage::UdpGsoSegments(&size)];
            let cmsg: &[ControlMessage] = if k > 1 { &gso } else { &[] };
            let sent = match &self.sock {
                Some(s) => sendmsg(
                    s.as_raw_fd(),
                    &[io::IoSlice::new(&self.sealed)],
                    cmsg,
                    MsgFlags::empty(),
                    Some(&addr),
                )
                .map_err(io::Error::from),
                None => Err(io::Error::from(io::ErrorKind::NotConnected)),
            };
            self.count_send(sent.map(|_| k as u64))?;
            left -= k;
        }
        Ok(())
    }

    /// Appends to `sealed` the ESP packet for `to` carrying a UDP datagram to the VXLAN port
    /// whose payload is `head` (a VXLAN header, or a segment's head with one in front) and
    /// then `rest` (the frame, or the segment's payload).
    fn seal_one(&mut self, to: IpAddr, head: &[u8], rest: &[u8]) -> io::Result<()> {
        let Some(sealer) = self.outbound.get_mut(&to) else {
            self.stats.tx_no_key += 1;
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no security association yet",
            ));
        };
        let Ok(len) = u16::try_from(UDP_HEADER_LEN + head.len() + rest.len()) else {
            self.stats.tx_errors += 1;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a frame too large for one datagram",
            ));
        };
        let mut udp = [0u8; UDP_HEADER_LEN];
        udp[..2].copy_from_slice(&VXLAN_PORT.to_be_bytes());
        udp[2..4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
        udp[4..6].copy_from_slice(&len.to_be_bytes());
        // Checksum 0: none (RFC 768), the ICV covers the datagram.
        sealer
            .seal(NEXT_HEADER_UDP, &[&udp, head, rest], &mut self.sealed)
            .map_err(|e| {
                self.stats.tx_errors += 1;
                io::Error::other(e)
            })
    }

    fn count_send(&mut self, sent: io::Result<u64>) -> io::Result<()> {
        match sent {
            Ok(n) => {
                self.stats.tx_packets += n;
                Ok(())
            }
            Err(e) => {
                self.stats.tx_errors += 1;
                Err(e)
            }
        }
    }
}

/// The VXLAN datagram inside an opened ESP payload: a UDP header to the VXLAN port whose
/// length is the payload's.
fn inner_vxlan(udp: &[u8]) -> Option<&[u8]> {
    let h = udp.get(..UDP_HEADER_LEN)?;
    let dst = u16::from_be_bytes([h[2], h[3]]);
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    (dst == VXLAN_PORT && len == udp.len()).then(|| &udp[UDP_HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::Ipv6Addr;

    // An IPv6 underlay: SAs are keyed by address, whatever its family.
    const A: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    const B: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

    fn pair() -> (Esp, Esp) {
        let mut a = Esp::new(SocketAddr::new(A, 4500));
        let mut b = Esp::new(SocketAddr::new(B, 4500));
        a.apply(SaChange::Outbound {
            peer: B,
            spi: 0x1234,
            key: [3; KEY_LEN],
        });
        b.apply(SaChange::Inbound {
            peer: A,
            spi: 0x1234,
            key: [3; KEY_LEN],
        });
        (a, b)
    }

    fn sealed(a: &mut Esp, frame: &[u8]) -> Vec<u8> {
        a.sealed.clear();
        let mut vxlan = [0u8; VXLAN_HEADER_LEN];
        VxlanHeader {
            vni: Vni::new(4096).unwrap(),
        }
        .emit(&mut vxlan);
        a.seal_one(B, &vxlan, frame).unwrap();
        a.sealed.clone()
    }

    #[test]
    fn a_sealed_frame_opens_at_its_peer_only() {
        let (mut a, mut b) = pair();
        let frame = [0xabu8; 60];
        let d = sealed(&mut a, &frame);
        let v = b.unseal(A, &mut d.clone()).map(<[u8]>::to_vec).unwrap();
        assert_eq!(&v[VXLAN_HEADER_LEN..], &frame[..]);
        assert_eq!(b.unseal(A, &mut d.clone()), None, "a replay");
        assert_eq!(b.stats.rx_replayed, 1);
        let mut other = sealed(&mut a, &frame);
        assert_eq!(
            b.unseal("2001:db8::9".parse().unwrap(), &mut other),
            None,
            "from elsewhere"
        );
        assert_eq!(b.stats.rx_wrong_peer, 1);
        let mut d = sealed(&mut a, &frame);
        d[30] ^= 0x80;
        assert_eq!(b.unseal(A, &mut d), None, "tampered");
        assert_eq!(b.stats.rx_forged, 1);
        assert_eq!(b.unseal(A, &mut [0, 0, 0, 9, 0, 0, 0, 1]), None);
        assert_eq!(b.stats.rx_unknown_spi, 1);
        // Nothing goes to a peer without an SA.
        assert!(b.seal_one(A, &[1, 2, 3], &[]).is_err());
        // A frame no datagram holds is refused before it is sealed.
        let before = a.outbound[&B].sent();
        assert!(a.seal_one(B, &[0; 8], &[0; 65_530]).is_err());
        assert_eq!((a.stats.tx_errors, a.outbound[&B].sent()), (1, before));
        assert_eq!(b.stats.tx_no_key, 1);
    }

    #[test]
    fn a_peer_keeps_its_newest_inbound_sas_and_forgetting_it_drops_them_all() {
        let (_, mut b) = pair();
        for spi in 0x2000..0x2005 {
            b.apply(SaChange::Inbound {
                peer: A,
                spi,
                key: [4; KEY_LEN],
            });
        }
        assert_eq!(b.sa_counts(), (INBOUND_PER_PEER, 0));
        assert!(b.has_spi(0x2004) && b.has_spi(0x2002) && !b.has_spi(0x2001) && !b.has_spi(0x1234));
        b.apply(SaChange::Forget(A));
        assert_eq!(b.sa_counts(), (0, 0));
    }
}
