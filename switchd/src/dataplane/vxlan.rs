//! The VTEP sockets: one UDP socket receiving on the VXLAN port, and a pool of sending sockets
//! on ephemeral ports, one chosen per inner flow, so the outer UDP source port varies by flow
//! as RFC 7348 asks. The kernel builds the outer IP/UDP headers and checksums.
//!
//! The underlay is IPv4 or IPv6, the family of the address the VTEP is bound to. An IPv6
//! socket also takes IPv4 peers (as v4-mapped addresses), so a host without a cluster, bound
//! to `[::]`, serves static VTEPs of both families; senders' addresses are reported in their
//! own family either way.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use overlay::{flow_hash, Vni, VxlanHeader, VXLAN_HEADER_LEN};

/// Sending sockets in the pool.
const POOL: usize = 16;
/// Segments one UDP send with segmentation offload may carry (the kernel's UDP_MAX_SEGMENTS).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// The most bytes one UDP send may carry over IPv4 (over IPv6, 20 more: this serves both).
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// Receive buffer of the VTEP socket: a peer sends a super-frame's segments as one train (up
/// to 64 KB at once, from each flow), which the default buffer (about 200 KB) drops under load.
const RX_BUFFER: usize = 8 << 20;

/// How many segments a super-frame from a port of MTU `mtu` may have so that all of them go
/// into the tunnel in one UDP send (`MAX_UDP_PAYLOAD` bytes of VXLAN header, Ethernet header
/// and IP packet each): overlay ports cap their `gso_max_segs` to it. A super-frame of 46
/// segments at MTU 1450 would go as a send of 44 and one of 2, each received, coalesced and
/// acknowledged on its own; capped at 44, one cross-host TCP stream moved 7-8.5 -> 9-9.5
/// Gbit/s here at a fifth less CPU per byte.
/// A sealed network's segments each carry [`crate::dataplane::esp::SEALED_OVERHEAD`] more.
pub fn tunnel_gso_segments(mtu: u16, sealed: bool) -> u32 {
    let overhead = if sealed {
        crate::dataplane::esp::SEALED_OVERHEAD
    } else {
        0
    };
    let per_segment = VXLAN_HEADER_LEN + 14 + usize::from(mtu) + overhead;
    (MAX_UDP_PAYLOAD / per_segment).clamp(1, GSO_MAX_SEGMENTS) as u32
}

/// Counters of frames the VTEP refused before they reached the switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanStats {
    /// Datagrams received.
    pub rx_packets: u64,
    /// Datagrams that are not VXLAN (short, or without the I flag).
    pub rx_malformed: u64,
    /// VXLAN frames for a VNI no network here has.
    pub rx_unknown_vni: u64,
    /// VXLAN frames from an address that is no peer of the network.
    pub rx_unknown_vtep: u64,
    /// VXLAN frames of an encrypted network that came in clear.
    pub rx_unsealed: u64,
    /// Datagrams sent.
    pub tx_packets: u64,
    /// Sends that failed.
    pub tx_errors: u64,
}

/// The sockets.
pub struct Vtep {
    rx: UdpSocket,
    pool: Vec<UdpSocket>,
    /// Where `rx` is bound: its family is the underlay's.
    bound: SocketAddr,
    /// The counters.
    pub stats: VxlanStats,
}

/// Datagrams of one sender that the kernel coalesced into one receive (UDP_GRO), or a single
/// datagram: `len` bytes, each datagram `seg` bytes but the last.
#[derive(Debug, Clone, Copy)]
pub struct Train {
    /// Bytes received.
    pub len: usize,
    /// The size of each datagram but the last.
    pub seg: usize,
    /// The sender's address (an IPv4 one even when it reached an IPv6 socket).
    pub from: IpAddr,
}

/// Receives the next datagram or train of datagrams (UDP_GRO) on `sock` into `buf` (64 KB
/// holds any); `None` when nothing is waiting.
pub fn recv_train(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<Train>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd;
    loop {
        let mut cmsg = nix::cmsg_space!(i32);
        let mut iov = [io::IoSliceMut::new(&mut *buf)];
        let r = recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty());
        let msg = match r {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let n = msg.bytes;
        let seg = msg
            .cmsgs()
            .ok()
            .into_iter()
            .flatten()
            .find_map(|c| match c {
                ControlMessageOwned::UdpGroSegments(s) => usize::try_from(s).ok(),
                _ => None,
            })
            .filter(|s| *s > 0)
            .unwrap_or(n);
        // A UDP socket always names the sender; a datagram without one is passed over.
        let Some(from) = msg.address.as_ref().and_then(sender) else {
            continue;
        };
        return Ok(Some(Train {
            len: n,
            seg: seg.max(1),
            from,
        }));
    }
}

/// The address a datagram came from, in its own family (a v4-mapped IPv6 address is the
/// IPv4 address it maps).
fn sender(a: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()).to_canonical())
}

/// A UDP socket bound to `addr`; an IPv6 one takes IPv4 datagrams too (v4-mapped), whatever
/// `net.ipv6.bindv6only` says.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(false)?;
    }
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// Where a datagram to `to` goes from a socket of the family `bound` is in: an IPv4 peer of
/// an IPv6 socket as its v4-mapped address.
///
/// # Errors
/// `EAFNOSUPPORT`: an IPv6 peer of an IPv4 socket (the underlay is IPv4).
pub fn destination(bound: SocketAddr, to: SocketAddr) -> io::Result<SocketAddr> {
    match (bound, to) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => Ok(SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port()))),
        (SocketAddr::V4(_), SocketAddr::V6(v6)) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{v6} is an IPv6 peer, and this host's underlay is IPv4 ({})",
                bound.ip()
            ),
        )),
        _ => Ok(to),
    }
}

/// The unspecified address of `addr`'s family, port 0: where sending sockets bind.
fn any_of(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// Binds a receiving UDP socket on `addr` for trains of datagrams: non-blocking, with a
/// large buffer and UDP_GRO.
pub fn bind_rx(addr: SocketAddr, what: &str) -> io::Result<UdpSocket> {
    let rx =
        bind_udp(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot bind the {what} port {addr}: {e}")))?;
    rx.set_nonblocking(true)?;
    // As root the limit in net.core.rmem_max does not apply; otherwise take what it allows.
    if nix::sys::socket::setsockopt(&rx, nix::sys::socket::sockopt::RcvBufForce, &RX_BUFFER).is_err() {
        let _ = nix::sys::socket::setsockopt(&rx, nix::sys::socket::sockopt::RcvBuf, &RX_BUFFER);
    }
    // Trains of datagrams from one flow arrive in one receive, up to 64 KB.
    let _ = nix::sys::socket::setsockopt(&rx, nix::sys::socket::sockopt::UdpGroSegment, &true);
    Ok(rx)
}

impl Vtep {
    /// Binds the receiving socket on `addr` and the sending pool, carrying on `stats`.
    pub fn bind(addr: SocketAddr, stats: VxlanStats) -> io::Result<Vtep> {
        let rx = bind_rx(addr, "VXLAN")?;
        let pool = (0..POOL)
            .map(|_| {
                let s = bind_udp(any_of(addr))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Vtep {
            rx,
            pool,
            bound: addr,
            stats,
        })
    }

    /// Where a datagram to `to` goes, counting a peer of the other family as an error.
    fn destination(&mut self, to: SocketAddr) -> io::Result<SocketAddr> {
        destination(self.bound, to).inspect_err(|_| self.stats.tx_errors += 1)
    }

    /// The receiving socket, for polling.
    pub fn rx_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.rx.as_fd()
    }

    /// Receives the next datagram or train of datagrams into `buf` (64 KB holds any);
    /// `None` when nothing is waiting.
    pub fn recv_train(&mut self, buf: &mut [u8]) -> io::Result<Option<Train>> {
        recv_train(&self.rx, buf)
    }

    /// Sends the segments of a cut super-frame (heads in `heads`, from
    /// [`overlay::offload::cut_tcp`] with 8 bytes of front; payload slices in `frame`) to
    /// `to` under `vni`: the VXLAN header is written into each head's front, and each send
    /// gathers heads and payload slices (nothing copied here) into as few UDP sends with
    /// segmentation offload (UDP_SEGMENT) as the size limits allow, all through the socket
    /// of the first segment's flow.
    pub fn send_cut(
        &mut self,
        heads: &mut [u8],
        cut: &overlay::offload::Cut,
        frame: &[u8],
        vni: Vni,
        to: SocketAddr,
    ) -> io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrStorage};
        use std::os::fd::AsRawFd;
        let addr = SockaddrStorage::from(self.destination(to)?);
        for head in heads.chunks_exact_mut(cut.head_len).take(cut.count) {
            VxlanHeader { vni }.emit(&mut head[..VXLAN_HEADER_LEN]);
        }
        let heads = &*heads;
        let stride = cut.stride();
        let sock = &self.pool[flow_hash(&heads[VXLAN_HEADER_LEN..cut.head_len]) as usize % self.pool.len()];
        let per_send = (MAX_UDP_PAYLOAD / stride).clamp(1, GSO_MAX_SEGMENTS);
        // Only a train (more than one segment a send) needs the segment size, which then fits.
        let size = u16::try_from(stride).unwrap_or(u16::MAX);
        let mut iov = [io::IoSlice::new(&[]); 2 * GSO_MAX_SEGMENTS];
        let mut segments = cut.segments(heads, frame);
        let mut left = cut.count;
        while left > 0 {
            let k = per_send.min(left);
            for (i, (head, payload)) in segments.by_ref().take(k).enumerate() {
                iov[2 * i] = io::IoSlice::new(head);
                iov[2 * i + 1] = io::IoSlice::new(payload);
            }
            let gso = [ControlMessage::UdpGsoSegments(&size)];
            let cmsg: &[ControlMessage] = if k > 1 { &gso } else { &[] };
            if let Err(e) = sendmsg(sock.as_raw_fd(), &iov[..2 * k], cmsg, MsgFlags::empty(), Some(&addr)) {
                self.stats.tx_errors += 1;
                return Err(e.into());
            }
            self.stats.tx_packets += k as u64;
            left -= k;
        }
        Ok(())
    }

    /// Sends the frame in `packet[10..]` to `to` under `vni`, writing the VXLAN header over
    /// `packet[2..10]` (the tail of the virtio-net header, which the caller no longer needs).
    pub fn send(&mut self, packet: &mut [u8], vni: Vni, to: SocketAddr) -> io::Result<()> {
        let to = self.destination(to)?;
        VxlanHeader { vni }.emit(&mut packet[2..10]);
        let sock = &self.pool[flow_hash(&packet[10..]) as usize % self.pool.len()];
        if let Err(e) = sock.send_to(&packet[2..], to) {
            self.stats.tx_errors += 1;
            return Err(e);
        }
        self.stats.tx_packets += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VTEP on `ip`, port chosen by the kernel, and where it is.
    fn vtep(ip: &str) -> (Vtep, SocketAddr) {
        let v = Vtep::bind(SocketAddr::new(ip.parse().unwrap(), 0), VxlanStats::default()).unwrap();
        let at = v.rx.local_addr().unwrap();
        (v, at)
    }

    fn receive(v: &mut Vtep) -> Train {
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..1000 {
            if let Some(t) = v.recv_train(&mut buf).unwrap() {
                return t;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("nothing arrived");
    }

    #[test]
    fn datagrams_cross_an_ipv6_underlay_and_ipv4_peers_reach_an_ipv6_socket() {
        let vni = Vni::new(4096).unwrap();
        // A frame behind 10 bytes of virtio-net header, as a port hands it over.
        let packet = |b: u8| {
            let mut p = vec![0u8; 10 + 60];
            p[10..].fill(b);
            p
        };
        let (mut a, _) = vtep("::1");
        let (mut b, b_at) = vtep("::1");
        a.send(&mut packet(1), vni, b_at).unwrap();
        let t = receive(&mut b);
        assert_eq!((t.from, t.len), ("::1".parse().unwrap(), 8 + 60));
        // A socket on every address of both families hears an IPv4 peer as IPv4, and answers it.
        let (mut any, any_at) = vtep("::");
        let (mut four, four_at) = vtep("127.0.0.1");
        four.send(&mut packet(2), vni, SocketAddr::from(([127, 0, 0, 1], any_at.port())))
            .unwrap();
        assert_eq!(receive(&mut any).from, IpAddr::from([127, 0, 0, 1]));
        any.send(&mut packet(3), vni, four_at).unwrap();
        assert_eq!(receive(&mut four).from, IpAddr::from([127, 0, 0, 1]));
        // An IPv4 underlay cannot reach an IPv6 peer: refused and counted, nothing sent.
        let e = four.send(&mut packet(4), vni, b_at).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("this host's underlay is IPv4"), "{e}");
        assert_eq!((four.stats.tx_packets, four.stats.tx_errors), (1, 1));
    }

    #[test]
    fn a_capped_super_frame_fits_one_udp_send() {
        let n = tunnel_gso_segments(1450, false) as usize;
        assert_eq!(n, 44);
        // As many as fit in one send, and not one more.
        assert!(n * (8 + 14 + 1450) <= MAX_UDP_PAYLOAD && (n + 1) * (8 + 14 + 1450) > MAX_UDP_PAYLOAD);
        assert_eq!(tunnel_gso_segments(9000, false), 7);
        // Small MTUs: no more than the kernel's UDP_MAX_SEGMENTS.
        assert_eq!(tunnel_gso_segments(576, false), 64);
        assert_eq!(tunnel_gso_segments(u16::MAX, false), 1);
        // Sealed: each ESP packet is larger; an encrypted network at its default MTU.
        let n = tunnel_gso_segments(1400, true) as usize;
        let sealed = 8 + 8 + 14 + 1400;
        let sealed = sealed + overlay::esp::overhead(sealed);
        assert!(
            n * sealed <= MAX_UDP_PAYLOAD && (n + 1) * sealed > MAX_UDP_PAYLOAD,
            "{n}"
        );
    }
}
