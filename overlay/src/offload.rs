//! Segmentation and checksum offload done in software, for frames that a TAP with offloads
//! hands over with a virtio-net header: a TCP super-frame over IPv4 or IPv6 (up to 64 KB, one
//! header for the whole payload) is cut into MSS-sized frames with their own IP and TCP
//! headers and checksums, and a frame whose checksum the sender left to the device gets it
//! filled in.
//! This is what a NIC does with TSO and checksum offload; the overlay needs it before
//! encapsulation, because no device below the VXLAN header knows the inner packet.
//!
//! ```text
//!  [virtio-net hdr | Ethernet | IPv4 | TCP | payload (n x gso_size)]
//!        │ cut_tcp(front)                       │ (payload left in place)
//!        ▼                                      ▼
//!  heads: [front | Ethernet | IP' | TCP'] ... one per segment, checksums over its slice
//!  segment i = head i ++ payload slice i
//! ```
//!
//! Every segment but the last has the same length, and each head begins with `front` bytes
//! left for the caller (the VXLAN header): gathered head, slice, head, slice, ... the segments
//! are ready for one UDP send with segmentation
//! offload (UDP_SEGMENT). Input comes from containers, so nothing here trusts it: offsets and
//! lengths are checked and a bad frame is an error, never a panic.

use std::fmt;
use std::net::IpAddr;

use switch::wire::{
    proto, tcp_flag, EtherType, EthernetFrame, EthernetRepr, Ipv4Packet, TcpSegment, VlanTag, WireError,
    ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN, TCP_HEADER_LEN, VLAN_TAG_LEN,
};

/// Length of the virtio-net header without the `num_buffers` field (what a TAP with
/// IFF_VNET_HDR uses by default).
pub const VIRTIO_NET_HDR_LEN: usize = 10;
/// `flags`: the checksum from `csum_start` to the end is to be completed; the field at
/// `csum_start + csum_offset` holds the pseudo-header sum.
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `gso_type`: not a super-frame.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
/// `gso_type`: a TCP/IPv4 super-frame.
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// `gso_type`: a TCP/IPv6 super-frame.
pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
/// `gso_type` bit: ECN was negotiated (CWR goes on the first segment only).
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;

/// A virtio-net header (little-endian fields, as a TAP on x86 and ARM writes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioNetHdr {
    /// [`VIRTIO_NET_HDR_F_NEEDS_CSUM`] or 0.
    pub flags: u8,
    /// [`VIRTIO_NET_HDR_GSO_NONE`], [`VIRTIO_NET_HDR_GSO_TCPV4`], ... (with the ECN bit).
    pub gso_type: u8,
    /// Length of the headers in front of the payload.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS).
    pub gso_size: u16,
    /// Where the checksummed part starts.
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum field is.
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Reads the first 10 bytes of `b`; `None` when shorter.
    pub fn parse(b: &[u8]) -> Option<VirtioNetHdr> {
        let b = b.get(..VIRTIO_NET_HDR_LEN)?;
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// Writes the header into the first 10 bytes of `b`.
    ///
    /// # Panics
    /// If `b` is shorter than 10 bytes.
    pub fn emit(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [self.hdr_len, self.gso_size, self.csum_start, self.csum_offset]
            .into_iter()
            .enumerate()
        {
            b[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Why a frame could not be segmented or checksummed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffloadError {
    /// A super-frame of a kind not handled here (the `gso_type`).
    UnsupportedGso(u8),
    /// Not Ethernet + IP + TCP where the header says a TCP super-frame of that family is (an
    /// IPv6 one with extension headers included).
    NotTcp,
    /// An offset or length that points outside the frame, named with its value.
    Bounds(&'static str, usize),
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffloadError::UnsupportedGso(t) => {
                write!(
                    f,
                    "unsupported segmentation type {t:#x}: only TCP over IPv4 (1) and IPv6 (4) are handled"
                )
            }
            OffloadError::NotTcp => write!(
                f,
                "a TCP super-frame that is not Ethernet + IPv4 or IPv6 (without extension headers) + TCP"
            ),
            OffloadError::Bounds(what, v) => write!(f, "{what} {v} is outside the frame"),
        }
    }
}

impl std::error::Error for OffloadError {}

/// The one's-complement sum of `data` as big-endian 16-bit words, added to `sum` (not folded:
/// call [`fold`]).
///
/// The bulk is summed as little-endian 32-bit words into four 64-bit accumulators (which the
/// compiler turns into vector adds), folded to 16 bits and byte-swapped: the one's-complement
/// sum does not depend on byte order except for that final swap (RFC 1071, 2.(B)).
pub fn sum_words(sum: u64, data: &[u8]) -> u64 {
    let mut acc = [0u64; 4];
    let mut blocks = data.chunks_exact(16);
    for b in &mut blocks {
        for (a, w) in acc.iter_mut().zip(b.chunks_exact(4)) {
            *a += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let native = acc.iter().fold(0u64, |s, a| {
        // Each accumulator stays far below 2^64 (2^32 words of 2^32 at most); fold before
        // adding so the total cannot overflow either.
        s + u64::from(fold(*a))
    });
    let mut sum = sum + u64::from(fold(native).swap_bytes());
    let rest = blocks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// The TCP pseudo-header's sum: the source and destination (IPv4 or IPv6, RFC 8200 §8.1), the
/// protocol and the TCP length.
fn pseudo_sum(src: IpAddr, dst: IpAddr, tcp_len: usize) -> u64 {
    let add = |sum: u64, a: IpAddr| match a {
        IpAddr::V4(a) => sum_words(sum, &a.octets()),
        IpAddr::V6(a) => sum_words(sum, &a.octets()),
    };
    add(add(u64::from(proto::TCP) + tcp_len as u64, src), dst)
}

/// The fixed IPv6 header at `at` of `frame`: its source, destination and payload length, when
/// TCP follows it directly (extension headers are not cut or joined here).
fn tcp6_header(frame: &[u8], at: usize) -> Option<(IpAddr, IpAddr, usize)> {
    let h: &[u8; IPV6_HEADER_LEN] = frame.get(at..at + IPV6_HEADER_LEN)?.try_into().ok()?;
    if h[0] >> 4 != 6 || h[6] != proto::TCP {
        return None;
    }
    let addr = |r: std::ops::Range<usize>| {
        let b: [u8; 16] = h[r].try_into().expect("16 bytes");
        IpAddr::from(b)
    };
    Some((addr(8..24), addr(24..40), usize::from(u16::from_be_bytes([h[4], h[5]]))))
}

/// Folds a sum to 16 bits (end-around carry).
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The internet checksum of `data` (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_words(0, data))
}

/// Completes a checksum left to the device: the 16-bit field at `csum_start + csum_offset`
/// holds the pseudo-header's sum; the sum over `frame[csum_start..]` is taken and its
/// complement written there.
///
/// # Errors
/// [`OffloadError::Bounds`] when the field lies outside the frame.
pub fn finish_checksum(frame: &mut [u8], csum_start: usize, csum_offset: usize) -> Result<(), OffloadError> {
    let at = csum_start + csum_offset;
    if at + 2 > frame.len() {
        return Err(OffloadError::Bounds("checksum field at", at));
    }
    let c = !fold(sum_words(0, &frame[csum_start..]));
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Ethernet header length, with one 802.1Q tag if present; and the ethertype behind it.
fn l2(frame: &[u8]) -> Option<(usize, EtherType)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() == EtherType::VLAN {
        let tag = VlanTag::new_checked(eth.payload()).ok()?;
        Some((ETHERNET_HEADER_LEN + VLAN_TAG_LEN, tag.inner_ethertype()))
    } else {
        Some((ETHERNET_HEADER_LEN, eth.ethertype()))
    }
}

/// A super-frame cut into segments without copying its payload (from [`cut_tcp`]): segment
/// `i` is its head — `front` bytes for the caller, then its own Ethernet, IPv4 and TCP headers —
/// followed by its slice of the super-frame's payload. The heads lie `head_len` apart in the
/// buffer [`cut_tcp`] filled; every segment but the last is `stride()` bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// How many segments.
    pub count: usize,
    /// The length of each head, `front` included.
    pub head_len: usize,
    /// Payload bytes per segment (the last may have fewer).
    pub mss: usize,
    /// Where the payload lies in the frame.
    payload: (usize, usize),
}

impl Cut {
    /// The distance between segment starts once they are laid end to end: a whole segment
    /// but the last.
    pub fn stride(&self) -> usize {
        if self.count == 1 {
            self.head_len + self.payload.1 - self.payload.0
        } else {
            self.head_len + self.mss
        }
    }

    /// Segment `i`'s slice of `frame`'s payload (`frame` as given to [`cut_tcp`]).
    ///
    /// # Panics
    /// If `frame` is not the frame that was cut.
    pub fn payload<'a>(&self, frame: &'a [u8], i: usize) -> &'a [u8] {
        let (at, end) = self.payload;
        let from = (at + i * self.mss).min(end);
        &frame[from..(from + self.mss).min(end)]
    }

    /// The segments as (head, payload) pairs.
    ///
    /// # Panics
    /// If `heads` and `frame` are not what [`cut_tcp`] was given and filled.
    pub fn segments<'a>(&self, heads: &'a [u8], frame: &'a [u8]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let c = *self;
        heads
            .chunks_exact(c.head_len)
            .take(c.count)
            .enumerate()
            .map(move |(i, h)| (h, c.payload(frame, i)))
    }
}

/// Cuts the TCP super-frame `frame` (behind virtio-net header `hdr`, over IPv4 or IPv6) into
/// segments of at most `hdr.gso_size` payload bytes, writing only their heads into `heads`
/// (appended): `front` zero bytes, then the headers with a correct IP header (IPv4: total
/// length, ID counting up, checksum; IPv6: payload length) and TCP header (sequence number, FIN/PSH on the last only, CWR on the first only,
/// checksum over the segment's payload). The payload stays where it is: a sender gathers each
/// head with its slice (`Cut::segments`), so nothing but headers is copied. A frame that is
/// not a super-frame is one segment whose head is the whole frame, its checksum completed if
/// it was left to the device.
///
/// # Errors
/// [`OffloadError`] for frames that do not hold what the header says; `heads` is then left
/// as it was.
pub fn cut_tcp(hdr: &VirtioNetHdr, frame: &[u8], front: usize, heads: &mut Vec<u8>) -> Result<Cut, OffloadError> {
    let start = heads.len();
    let r = cut_inner(hdr, frame, front, heads);
    if r.is_err() {
        heads.truncate(start);
    }
    r
}

fn cut_inner(hdr: &VirtioNetHdr, frame: &[u8], front: usize, heads: &mut Vec<u8>) -> Result<Cut, OffloadError> {
    let gso = hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN;
    if gso == VIRTIO_NET_HDR_GSO_NONE {
        heads.resize(heads.len() + front, 0);
        let at = heads.len();
        heads.extend_from_slice(frame);
        if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
            finish_checksum(
                &mut heads[at..],
                usize::from(hdr.csum_start),
                usize::from(hdr.csum_offset),
            )?;
        }
        return Ok(Cut {
            count: 1,
            head_len: front + frame.len(),
            mss: 0,
            payload: (frame.len(), frame.len()),
        });
    }
    let (ip_at, ethertype) = l2(frame).ok_or(OffloadError::NotTcp)?;
    // The family's addresses, where TCP starts, the IPv4 ID (IPv6 has none), and the bytes
    // the TCP header is read from.
    let (src, dst, tcp_at, ip_id, l4) = match (gso, ethertype) {
        (VIRTIO_NET_HDR_GSO_TCPV4, EtherType::IPV4) => {
            let ip = Ipv4Packet::new_checked(&frame[ip_at..]).map_err(|e| match e {
                WireError::Truncated => OffloadError::Bounds("IPv4 header at", ip_at),
                WireError::Unsupported => OffloadError::NotTcp,
            })?;
            if ip.protocol() != proto::TCP {
                return Err(OffloadError::NotTcp);
            }
            let (at, len) = (ip_at + ip.header_len(), ip.payload().len());
            (
                IpAddr::V4(ip.src()),
                IpAddr::V4(ip.dst()),
                at,
                Some(ip.ident()),
                &frame[at..at + len],
            )
        }
        (VIRTIO_NET_HDR_GSO_TCPV6, EtherType::IPV6) => {
            if frame.len() < ip_at + IPV6_HEADER_LEN {
                return Err(OffloadError::Bounds("IPv6 header at", ip_at));
            }
            let (src, dst, _) = tcp6_header(frame, ip_at).ok_or(OffloadError::NotTcp)?;
            let at = ip_at + IPV6_HEADER_LEN;
            (src, dst, at, None, &frame[at..])
        }
        (VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_TCPV6, _) => return Err(OffloadError::NotTcp),
        _ => return Err(OffloadError::UnsupportedGso(hdr.gso_type)),
    };
    let tcp = TcpSegment::new_checked(l4).map_err(|_| OffloadError::Bounds("TCP header at", tcp_at))?;
    let hdrs = tcp_at + tcp.header_len();
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(OffloadError::Bounds("segment size", 0));
    }
    let cut = Cut {
        count: (frame.len() - hdrs).div_ceil(mss).max(1),
        head_len: front + hdrs,
        mss,
        payload: (hdrs, frame.len()),
    };
    let (seq, flags, doff) = (tcp.seq(), tcp.flags(), tcp.header_len());
    let n = cut.count;
    heads.reserve(n * cut.head_len);
    for i in 0..n {
        let chunk = cut.payload(frame, i);
        heads.resize(heads.len() + front, 0);
        let at = heads.len();
        heads.extend_from_slice(&frame[..hdrs]);
        let (l3, l4) = heads[at + ip_at..].split_at_mut(tcp_at - ip_at);
        match ip_id {
            Some(id) => {
                let mut ip = Ipv4Packet::new_unchecked(l3);
                ip.set_total_len((tcp_at - ip_at + doff + chunk.len()) as u16);
                ip.set_ident(id.wrapping_add(i as u16));
                ip.fill_checksum();
            }
            None => l3[4..6].copy_from_slice(&((doff + chunk.len()) as u16).to_be_bytes()),
        }
        // TCP: sequence, flags, checksum over the header here and the payload in the frame.
        let mut tcp = TcpSegment::new_unchecked(l4);
        tcp.set_seq(seq.wrapping_add((i * mss) as u32));
        let mut f = flags;
        if i + 1 < n {
            f &= !(tcp_flag::FIN | tcp_flag::PSH); // the last segment's
        }
        if i > 0 {
            f &= !tcp_flag::CWR; // the first segment's
        }
        tcp.set_flags(f);
        tcp.set_checksum(0);
        // The header's length is even (a multiple of 4), so the two sums join without a shift.
        let sum = sum_words(pseudo_sum(src, dst, doff + chunk.len()), tcp.into_inner());
        let c = !fold(sum_words(sum, chunk));
        TcpSegment::new_unchecked(&mut heads[at + tcp_at..]).set_checksum(c);
    }
    Ok(cut)
}

/// The most segments one coalesced super-frame takes.
const COALESCE_MAX: usize = 64;
/// The TCP flags a segment may carry and still be joined: ACK, and PSH (which ends the
/// super-frame).
const TCP_FLAGS_MERGEABLE: u8 = 0x10 | 0x08;
/// Where the TCP header of an Ethernet + IPv4 (no options) frame starts.
const TCP_AT: usize = 34;
/// Where the TCP header of an Ethernet + IPv6 (no extension headers) frame starts.
const TCP6_AT: usize = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;

/// Joins consecutive TCP segments of one flow (over IPv4 or IPv6) back into a super-frame
/// behind a virtio-net header (GRO in software), so a receiving TAP takes one write for many
/// segments. A segment joins when it continues the flow exactly: same Ethernet, IP and TCP
/// headers but for length, ID, sequence and checksums; the next sequence number; a valid TCP checksum;
/// only ACK (and PSH, which closes the super-frame); every earlier segment full-sized.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// The virtio-net header room, then the first segment's headers, then every payload.
    buf: Vec<u8>,
    count: usize,
    mss: usize,
    next_seq: u32,
    /// The flow of the first segment, while one is waiting.
    key: Option<FlowKey>,
    /// A short or PSH segment joined: nothing may follow it.
    closed: bool,
}

/// What every segment of one coalesced flow has in common: the Ethernet header; the IP header
/// but for length, ID and checksum; the TCP header but for sequence, flags, checksum and
/// options (compared where they lie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    eth: EthernetRepr,
    /// IPv4: TOS, flags, TTL. IPv6: the first word (version, traffic class, flow label) and
    /// the hop limit.
    ip: (u32, u16, u8),
    addrs: (IpAddr, IpAddr),
    /// Ports, acknowledgment, window.
    tcp: (u16, u16, u32, u16),
    hdrs: usize,
}

/// A plain Ethernet + IPv4 (no options) or IPv6 (no extension headers) + TCP segment that
/// could be coalesced: its flow, where its TCP header starts, where its headers end, where its
/// payload ends, its sequence number and flags.
struct Segment {
    key: FlowKey,
    tcp_at: usize,
    end: usize,
    seq: u32,
    flags: u8,
}

fn tcp_segment(frame: &[u8]) -> Option<Segment> {
    match EthernetFrame::new_checked(frame).ok()?.ethertype() {
        EtherType::IPV4 => tcp4_segment(frame),
        EtherType::IPV6 => tcp6_segment(frame),
        _ => None,
    }
}

fn tcp6_segment(frame: &[u8]) -> Option<Segment> {
    let (src, dst, len) = tcp6_header(frame, ETHERNET_HEADER_LEN)?;
    let tcp = TcpSegment::new_checked(frame.get(TCP6_AT..)?).ok()?;
    let end = TCP6_AT + len;
    let hdrs = TCP6_AT + tcp.header_len();
    if end > frame.len() || end <= hdrs || tcp.flags() & !TCP_FLAGS_MERGEABLE != 0 {
        return None;
    }
    let sum = sum_words(pseudo_sum(src, dst, len), &frame[TCP6_AT..end]);
    if fold(sum) != 0xffff {
        return None;
    }
    let eth = EthernetFrame::new_unchecked(frame);
    let ip = &frame[ETHERNET_HEADER_LEN..];
    Some(Segment {
        key: FlowKey {
            eth: EthernetRepr::parse(&eth),
            ip: (u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]), 0, ip[7]),
            addrs: (src, dst),
            tcp: (tcp.src_port(), tcp.dst_port(), tcp.ack(), tcp.window()),
            hdrs,
        },
        tcp_at: TCP6_AT,
        end,
        seq: tcp.seq(),
        flags: tcp.flags(),
    })
}

fn tcp4_segment(frame: &[u8]) -> Option<Segment> {
    // The fixed headers as one array, so that the views' reads need no bounds checks of
    // their own (the coalescer runs once per received segment).
    let head: &[u8; TCP_AT + TCP_HEADER_LEN] = frame.get(..TCP_AT + TCP_HEADER_LEN)?.try_into().ok()?;
    let eth = EthernetFrame::new_unchecked(&head[..]);
    if eth.ethertype() != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&head[ETHERNET_HEADER_LEN..]).ok()?;
    if ip.header_len() != IPV4_HEADER_LEN || ip.protocol() != proto::TCP || ip.is_fragment() {
        return None;
    }
    let tcp = TcpSegment::new_unchecked(&head[TCP_AT..]);
    let end = ETHERNET_HEADER_LEN + usize::from(ip.total_len());
    let hdrs = TCP_AT + tcp.header_len();
    if tcp.header_len() < TCP_HEADER_LEN || end > frame.len() || end <= hdrs || tcp.flags() & !TCP_FLAGS_MERGEABLE != 0
    {
        return None;
    }
    // The segment's TCP checksum must hold: coalesced data is handed on as verified.
    let (src, dst) = (IpAddr::V4(ip.src()), IpAddr::V4(ip.dst()));
    let sum = sum_words(pseudo_sum(src, dst, end - TCP_AT), &frame[TCP_AT..end]);
    if fold(sum) != 0xffff {
        return None;
    }
    Some(Segment {
        key: FlowKey {
            eth: EthernetRepr::parse(&eth),
            ip: (u32::from(ip.tos()), ip.flags_and_offset(), ip.ttl()),
            addrs: (src, dst),
            tcp: (tcp.src_port(), tcp.dst_port(), tcp.ack(), tcp.window()),
            hdrs,
        },
        tcp_at: TCP_AT,
        end,
        seq: tcp.seq(),
        flags: tcp.flags(),
    })
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new() -> Coalescer {
        Coalescer::default()
    }

    /// Whether no segment is waiting.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds `frame` (a plain Ethernet frame): true when it joined the super-frame (or began
    /// one); false when it cannot: take what is waiting first and add it again, and if an
    /// empty coalescer refuses it too, it is not a segment to coalesce and goes on as it is.
    pub fn add(&mut self, frame: &[u8]) -> bool {
        let Some(seg) = tcp_segment(frame) else {
            return false;
        };
        let tcp_at = seg.tcp_at;
        let hdrs = seg.key.hdrs;
        let payload = &frame[hdrs..seg.end];
        let push = seg.flags & tcp_flag::PSH != 0;
        if self.count == 0 {
            self.buf.clear();
            self.buf.resize(VIRTIO_NET_HDR_LEN, 0);
            self.buf.extend_from_slice(&frame[..seg.end]);
            self.count = 1;
            self.mss = payload.len();
            self.next_seq = seg.seq.wrapping_add(payload.len() as u32);
            self.closed = push;
            self.key = Some(seg.key);
            return true;
        }
        let joins = !self.closed
            && self.count < COALESCE_MAX
            && seg.seq == self.next_seq
            && payload.len() <= self.mss
            && self.buf.len() - VIRTIO_NET_HDR_LEN - ETHERNET_HEADER_LEN + payload.len() <= usize::from(u16::MAX)
            && self.key == Some(seg.key)
            && self.buf[VIRTIO_NET_HDR_LEN + tcp_at + TCP_HEADER_LEN..VIRTIO_NET_HDR_LEN + hdrs]
                == frame[tcp_at + TCP_HEADER_LEN..hdrs];
        if !joins {
            return false;
        }
        self.buf.extend_from_slice(payload);
        self.count += 1;
        self.next_seq = seg.seq.wrapping_add(payload.len() as u32);
        self.closed = payload.len() < self.mss || push;
        if push {
            let mut tcp = TcpSegment::new_unchecked(&mut self.buf[VIRTIO_NET_HDR_LEN + tcp_at..]);
            tcp.set_flags(tcp.flags() | tcp_flag::PSH);
        }
        true
    }

    /// The waiting frame behind its virtio-net header: one segment as it came (a plain
    /// header), or a super-frame (TCP/IPv4 or TCP/IPv6 segmentation type, the segment size,
    /// the checksum to be completed from the pseudo-header sum in place); the coalescer is
    /// empty after.
    pub fn take(&mut self) -> &mut [u8] {
        let count = std::mem::take(&mut self.count);
        if let (true, Some(key)) = (count > 1, self.key) {
            let f = &mut self.buf[VIRTIO_NET_HDR_LEN..];
            let v6 = key.addrs.0.is_ipv6();
            let (tcp_at, gso_type) = match v6 {
                true => (TCP6_AT, VIRTIO_NET_HDR_GSO_TCPV6),
                false => (TCP_AT, VIRTIO_NET_HDR_GSO_TCPV4),
            };
            let tcp_len = f.len() - tcp_at;
            let (l3, l4) = f[ETHERNET_HEADER_LEN..].split_at_mut(tcp_at - ETHERNET_HEADER_LEN);
            if v6 {
                l3[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            } else {
                let mut ip = Ipv4Packet::new_unchecked(l3);
                ip.set_total_len((IPV4_HEADER_LEN + tcp_len) as u16);
                ip.fill_checksum();
            }
            let mut tcp = TcpSegment::new_unchecked(l4);
            tcp.set_checksum(fold(pseudo_sum(key.addrs.0, key.addrs.1, tcp_len)));
            let hdrs = tcp_at + tcp.header_len();
            VirtioNetHdr {
                flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type,
                hdr_len: hdrs as u16,
                gso_size: self.mss as u16,
                csum_start: tcp_at as u16,
                csum_offset: 16,
            }
            .emit(&mut self.buf);
        } else {
            self.buf[..VIRTIO_NET_HDR_LEN].fill(0);
        }
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    /// Cuts `frame` as [`cut_tcp`] does and lays the segments end to end in `out`, each behind
    /// `front` bytes (what a UDP send with segmentation offload takes as one buffer).
    ///
    /// # Errors
    /// As [`cut_tcp`]; `out` is then left as it was.
    fn segment_tcp4(hdr: &VirtioNetHdr, frame: &[u8], front: usize, out: &mut Vec<u8>) -> Result<Cut, OffloadError> {
        let mut heads = Vec::new();
        let cut = cut_tcp(hdr, frame, front, &mut heads)?;
        out.reserve(cut.count * cut.stride());
        for (head, payload) in cut.segments(&heads, frame) {
            out.extend_from_slice(head);
            out.extend_from_slice(payload);
        }
        Ok(cut)
    }

    /// A TCP/IPv4 frame with `payload`, flags FIN|PSH|CWR set, checksums valid.
    fn super_frame(payload: &[u8], seq: u32) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, seq, 64240)
            .psh()
            .fin()
            .cwr()
            .ack(7);
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        f
    }

    fn tso(mss: u16) -> VirtioNetHdr {
        VirtioNetHdr {
            flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
            gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
            hdr_len: 54,
            gso_size: mss,
            csum_start: 34,
            csum_offset: 16,
        }
    }

    /// Splits `out` into its segments (each behind `front` bytes) of `seg_len` but the last.
    fn segments(out: &[u8], front: usize, n: usize, full: usize) -> Vec<&[u8]> {
        (0..n)
            .map(|i| {
                let at = i * (front + full) + front;
                &out[at..(at + full).min(out.len())]
            })
            .collect()
    }

    fn check(payload: &[u8], mss: u16, front: usize) {
        let frame = super_frame(payload, 0xffff_f000);
        let mut out = vec![0xaa; 3];
        let s = segment_tcp4(&tso(mss), &frame, front, &mut out).unwrap();
        let mss = usize::from(mss);
        let n = s.count;
        assert_eq!(n, payload.len().div_ceil(mss).max(1));
        assert_eq!(s.stride(), front + 54 + if n == 1 { payload.len() } else { mss });
        assert_eq!(
            out.len() - 3,
            (n - 1) * s.stride() + front + 54 + (payload.len() - (n - 1) * mss)
        );
        let mut got = Vec::new();
        for (i, seg) in segments(&out[3..], front, n, 54 + mss).into_iter().enumerate() {
            let p = SlicedPacket::from_ethernet(seg).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ipv4)) = p.net else {
                panic!("not IPv4")
            };
            let iph = ipv4.header().to_header();
            assert_eq!(iph.header_checksum, iph.calc_header_checksum(), "segment {i}");
            assert_eq!(usize::from(iph.total_len), seg.len() - 14);
            assert_eq!(iph.identification, i as u16);
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                panic!("not TCP")
            };
            let th = t.to_header();
            let want = th.calc_checksum_ipv4(&iph, t.payload()).unwrap();
            assert_eq!(th.checksum, want, "segment {i}");
            assert_eq!(th.sequence_number, 0xffff_f000u32.wrapping_add((i * mss) as u32));
            let last = i + 1 == n;
            assert_eq!((th.fin, th.psh, th.cwr, th.ack), (last, last, i == 0, true));
            got.extend_from_slice(t.payload());
        }
        assert_eq!(got, payload);
        // The cut itself holds headers only: the payload stays in the frame.
        let mut heads = Vec::new();
        let cut = cut_tcp(&tso(mss as u16), &frame, front, &mut heads).unwrap();
        assert_eq!(heads.len(), n * (front + 54));
        assert_eq!(
            cut.segments(&heads, &frame).map(|(_, p)| p.len()).sum::<usize>(),
            payload.len()
        );
    }

    #[test]
    fn a_super_frame_becomes_valid_segments() {
        let payload: Vec<u8> = (0..65_000u32).map(|i| (i * 7 % 251) as u8).collect();
        check(&payload, 1398, 8);
        check(&payload[..1398], 1398, 0);
        check(&payload[..1399], 1398, 8);
        check(&payload[..1], 1398, 8);
        check(&[], 1398, 8);
    }

    /// RFC 1071's sum the plain way: big-endian 16-bit words, one at a time.
    fn reference_sum(mut sum: u64, data: &[u8]) -> u64 {
        for p in data.chunks(2) {
            sum += u64::from(u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]));
        }
        sum
    }

    proptest! {
        #[test]
        fn the_fast_sum_is_the_plain_sum(data in proptest::collection::vec(any::<u8>(), 0..3000), start in 0u64..1 << 40) {
            prop_assert_eq!(fold(sum_words(start, &data)), fold(reference_sum(start, &data)));
            prop_assert_eq!(checksum(&data), !fold(reference_sum(0, &data)));
        }

        #[test]
        fn any_payload_and_mss(len in 0usize..20_000, mss in 1u16..2000, front in 0usize..16) {
            let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            check(&payload, mss, front);
        }

        #[test]
        fn bad_frames_are_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), mss in 0u16..100) {
            let mut out = vec![1, 2, 3];
            if segment_tcp4(&tso(mss), &bytes, 8, &mut out).is_err() {
                prop_assert_eq!(out, vec![1, 2, 3]);
            }
        }
    }

    #[test]
    fn a_checksum_left_to_the_device_is_completed() {
        let mut frame = super_frame(b"hello, world", 1);
        let want = u16::from_be_bytes([frame[50], frame[51]]);
        // As the sender leaves it: the pseudo-header's sum (not complemented) in the field.
        let tcp_len = (frame.len() - 34) as u64;
        let pseudo = fold(sum_words(sum_words(6 + tcp_len, &frame[26..30]), &frame[30..34]));
        frame[50..52].copy_from_slice(&pseudo.to_be_bytes());
        let hdr = VirtioNetHdr {
            gso_type: VIRTIO_NET_HDR_GSO_NONE,
            ..tso(0)
        };
        let mut out = Vec::new();
        let cut = segment_tcp4(&hdr, &frame, 8, &mut out).unwrap();
        assert_eq!(
            (cut.count, cut.stride(), cut.head_len),
            (1, 8 + frame.len(), 8 + frame.len())
        );
        assert_eq!(cut.payload(&frame, 0), b"");
        assert_eq!(u16::from_be_bytes([out[58], out[59]]), want);
        assert_eq!(
            finish_checksum(&mut frame, 34, 100),
            Err(OffloadError::Bounds("checksum field at", 134))
        );
    }

    #[test]
    fn headers_round_trip_and_errors_name_the_value() {
        let h = tso(1448);
        let mut b = [0u8; 10];
        h.emit(&mut b);
        assert_eq!(VirtioNetHdr::parse(&b), Some(h));
        assert_eq!(VirtioNetHdr::parse(&b[..9]), None);
        let udp = VirtioNetHdr { gso_type: 5, ..h };
        let e = segment_tcp4(&udp, &super_frame(b"x", 0), 0, &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported segmentation type 0x5: only TCP over IPv4 (1) and IPv6 (4) are handled"
        );
    }

    /// Segments `payload` (MSS 1398; ACK on all, PSH on the last, FIN after it as a segment
    /// of its own) and returns the frames, without their front room.
    fn cut(payload: &[u8], seq: u32) -> Vec<Vec<u8>> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, seq, 64240)
            .psh()
            .ack(7);
        let mut frame = Vec::new();
        b.write(&mut frame, payload).unwrap();
        let fin = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, seq.wrapping_add(payload.len() as u32), 64240)
            .fin()
            .ack(7);
        let mut last = Vec::new();
        fin.write(&mut last, &[]).unwrap();
        let mut out = Vec::new();
        let s = segment_tcp4(&tso(1398), &frame, 0, &mut out).unwrap();
        out.chunks(s.stride()).map(<[u8]>::to_vec).chain([last]).collect()
    }

    #[test]
    fn segments_coalesce_back_into_a_super_frame() {
        let payload: Vec<u8> = (0..30_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let segs = cut(&payload, 1000);
        let mut c = Coalescer::new();
        for s in &segs[..segs.len() - 1] {
            assert!(c.add(s));
        }
        // The FIN after them is not merged.
        assert!(!c.add(segs.last().unwrap()));
        let n = segs.len() - 1;
        let out = c.take().to_vec();
        assert!(c.is_empty());
        let h = VirtioNetHdr::parse(&out).unwrap();
        assert_eq!(
            (h.flags, h.gso_type, h.hdr_len, h.gso_size, h.csum_start, h.csum_offset),
            (1, 1, 54, 1398, 34, 16)
        );
        let f = &out[VIRTIO_NET_HDR_LEN..];
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ipv4)) = p.net else {
            panic!("not IPv4")
        };
        let iph = ipv4.header().to_header();
        assert_eq!(iph.header_checksum, iph.calc_header_checksum());
        assert_eq!(usize::from(iph.total_len), f.len() - 14);
        let Some(TransportSlice::Tcp(t)) = p.transport else {
            panic!("not TCP")
        };
        assert_eq!(t.payload(), &payload[..]);
        assert_eq!(t.sequence_number(), 1000);
        assert!(t.psh() && !t.fin(), "the last merged segment's PSH");
        // Segmenting it again gives the same segments (checksums completed from the partial).
        let mut again = Vec::new();
        let s = segment_tcp4(&h, f, 0, &mut again).unwrap();
        assert_eq!(s.count, n);
        for (i, seg) in again.chunks(s.stride()).enumerate() {
            let mut want = segs[i].clone();
            // Same but for the IP ID, counted from the first.
            want[18..20].copy_from_slice(&(i as u16).to_be_bytes());
            let mut got = seg.to_vec();
            got[24..26].copy_from_slice(&want[24..26]);
            got[47] = want[47];
            got[50..52].copy_from_slice(&want[50..52]);
            assert_eq!(got, want, "segment {i}");
        }
    }

    #[test]
    fn only_the_flow_s_next_valid_segment_joins() {
        let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let segs = cut(&payload, 7);
        let mut c = Coalescer::new();
        assert!(c.add(&segs[0]));
        assert!(!c.add(&segs[2]), "a gap in the sequence");
        let mut bad = segs[1].clone();
        bad[60] ^= 1;
        assert!(!c.add(&bad), "a bad checksum");
        let other = cut(&payload, 7_000_000);
        assert!(!c.add(&other[1]), "another sequence");
        assert!(c.add(&segs[1]));
        // A single segment comes out as it went in, behind a plain header.
        let mut one = Coalescer::new();
        assert!(one.add(&segs[0]));
        assert_eq!(one.take(), [&[0u8; 10][..], &segs[0]].concat());
        // Not a TCP segment at all.
        assert!(!Coalescer::new().add(&[0u8; 60]));
    }

    #[test]
    fn the_checksum_matches_rfc_1071() {
        // RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_words(0, &d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
        // Odd length: the last byte is the high half of a word.
        assert_eq!(fold(sum_words(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    /// A TCP/IPv6 frame with `payload`, flags FIN|PSH, checksum valid.
    fn super_frame6(payload: &[u8], seq: u32) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6([0xfd; 16], [0xfe; 16], 64)
            .tcp(40000, 80, seq, 64240)
            .psh()
            .fin()
            .ack(7);
        let mut f = Vec::new();
        b.write(&mut f, payload).unwrap();
        f
    }

    fn tso6(mss: u16) -> VirtioNetHdr {
        VirtioNetHdr {
            gso_type: VIRTIO_NET_HDR_GSO_TCPV6,
            hdr_len: 74,
            csum_start: 54,
            ..tso(mss)
        }
    }

    #[test]
    fn ipv6_super_frames_are_cut_and_joined_again() {
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let frame = super_frame6(&payload, 0xffff_f000);
        let mut out = Vec::new();
        let cut = segment_tcp4(&tso6(1400), &frame, 0, &mut out).unwrap();
        assert_eq!(cut.count, payload.len().div_ceil(1400));
        let mut got = Vec::new();
        let mut c = Coalescer::new();
        let segs: Vec<&[u8]> = out.chunks(cut.stride()).collect();
        for (i, seg) in segs.iter().enumerate() {
            let p = SlicedPacket::from_ethernet(seg).unwrap();
            let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
                panic!("not IPv6")
            };
            let iph = ip.header().to_header();
            assert_eq!(usize::from(iph.payload_length), seg.len() - 54, "segment {i}");
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                panic!("not TCP")
            };
            let th = t.to_header();
            assert_eq!(
                th.checksum,
                th.calc_checksum_ipv6(&iph, t.payload()).unwrap(),
                "segment {i}"
            );
            assert_eq!(th.sequence_number, 0xffff_f000u32.wrapping_add((i * 1400) as u32));
            let last = i + 1 == segs.len();
            assert_eq!((th.fin, th.psh), (last, last), "segment {i}");
            got.extend_from_slice(t.payload());
            if !last {
                assert!(c.add(seg), "segment {i} joins");
            }
        }
        assert_eq!(got, payload);
        // Joined again: one TCP/IPv6 super-frame whose checksum is left to complete.
        let joined = c.take().to_vec();
        let h = VirtioNetHdr::parse(&joined).unwrap();
        assert_eq!(
            (h.gso_type, h.hdr_len, h.gso_size, h.csum_start, h.csum_offset),
            (VIRTIO_NET_HDR_GSO_TCPV6, 74, 1400, 54, 16)
        );
        let f = &joined[VIRTIO_NET_HDR_LEN..];
        assert_eq!(usize::from(u16::from_be_bytes([f[18], f[19]])), f.len() - 54);
        assert_eq!(
            &f[74..],
            &payload[..(segs.len() - 1) * 1400],
            "all but the last (FIN) segment"
        );
        // Cut once more, each segment is a whole, checksummed one.
        let mut again = Vec::new();
        let s = segment_tcp4(&h, f, 0, &mut again).unwrap();
        assert_eq!(s.count, segs.len() - 1);
        for (i, seg) in again.chunks(s.stride()).enumerate() {
            assert_eq!(seg, segs[i], "segment {i}");
        }
    }

    #[test]
    fn an_ipv6_super_frame_with_extension_headers_or_the_wrong_family_is_refused() {
        let frame = super_frame6(&[1; 3000], 1);
        let mut heads = Vec::new();
        // A hop-by-hop header where TCP would be.
        let mut hbh = frame.clone();
        hbh[20] = 0;
        assert_eq!(cut_tcp(&tso6(1400), &hbh, 0, &mut heads), Err(OffloadError::NotTcp));
        // IPv6 behind a TCP/IPv4 header, and the reverse.
        assert_eq!(cut_tcp(&tso(1400), &frame, 0, &mut heads), Err(OffloadError::NotTcp));
        let v4 = super_frame(&[1; 3000], 1);
        assert_eq!(cut_tcp(&tso6(1400), &v4, 0, &mut heads), Err(OffloadError::NotTcp));
        assert_eq!(
            cut_tcp(&tso6(1400), &frame[..40], 0, &mut heads),
            Err(OffloadError::Bounds("IPv6 header at", 14))
        );
        assert_eq!(
            cut_tcp(&tso6(1400), &frame[..60], 0, &mut heads),
            Err(OffloadError::Bounds("TCP header at", 54))
        );
        assert!(heads.is_empty());
    }
}
