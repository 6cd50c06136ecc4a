//! The VTEP sockets: one UDP socket receiving on the VXLAN port, and a pool of sending sockets
//! on ephemeral ports, one chosen per inner flow, so the outer UDP source port varies by flow
//! as RFC 7348 asks. The kernel builds the outer IP/UDP headers and checksums.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

use overlay::{flow_hash, Vni, VxlanHeader, VXLAN_HEADER_LEN};

/// Sending sockets in the pool.
const POOL: usize = 16;
/// Segments one UDP send with segmentation offload may carry (the kernel's UDP_MAX_SEGMENTS).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// The most bytes one UDP send may carry over IPv4.
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
    /// The sender's address.
    pub from: Ipv4Addr,
}

/// Receives the next datagram or train of datagrams (UDP_GRO) on `sock` into `buf` (64 KB
/// holds any); `None` when nothing is waiting.
pub fn recv_train(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<Train>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};
    use std::os::fd::AsRawFd;
    loop {
        let mut cmsg = nix::cmsg_space!(i32);
        let mut iov = [io::IoSliceMut::new(&mut *buf)];
        let r = recvmsg::<SockaddrIn>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty());
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
        // An IPv4 socket always names the sender; a datagram without one is passed over.
        let Some(from) = msg.address else { continue };
        return Ok(Some(Train {
            len: n,
            seg: seg.max(1),
            from: from.ip(),
        }));
    }
}

/// Binds a receiving UDP socket on `addr` for trains of datagrams: non-blocking, with a
/// large buffer and UDP_GRO.
pub fn bind_rx(addr: SocketAddrV4, what: &str) -> io::Result<UdpSocket> {
    let rx = UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind the {what} port {addr}: {e}")))?;
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
    pub fn bind(addr: SocketAddrV4, stats: VxlanStats) -> io::Result<Vtep> {
        let rx = bind_rx(addr, "VXLAN")?;
        let pool = (0..POOL)
            .map(|_| {
                let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Vtep { rx, pool, stats })
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
        to: SocketAddrV4,
    ) -> io::Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};
        use std::os::fd::AsRawFd;
        for head in heads.chunks_exact_mut(cut.head_len).take(cut.count) {
            VxlanHeader { vni }.emit(&mut head[..VXLAN_HEADER_LEN]);
        }
        let heads = &*heads;
        let stride = cut.stride();
        let sock = &self.pool[flow_hash(&heads[VXLAN_HEADER_LEN..cut.head_len]) as usize % self.pool.len()];
        let per_send = (MAX_UDP_PAYLOAD / stride).clamp(1, GSO_MAX_SEGMENTS);
        // Only a train (more than one segment a send) needs the segment size, which then fits.
        let size = u16::try_from(stride).unwrap_or(u16::MAX);
        let addr = SockaddrIn::from(to);
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
    pub fn send(&mut self, packet: &mut [u8], vni: Vni, to: SocketAddrV4) -> io::Result<()> {
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
