//! Port captures: the pcapng stream switchd sends for `GET /ports/{port}/capture` (one
//! Ethernet interface, nanosecond times, each frame marked inbound or outbound), reading it
//! back, and a one-line summary of a frame.
//!
//! ```text
//! Section Header Block | Interface Description Block (Ethernet, ns) | Enhanced Packet Block ...
//!                                                          epb_flags: 1 inbound, 2 outbound
//! ```

use switch::wire::{
    proto, tcp_flag, udp_ports, ArpOp, ArpPacket, EtherType, EthernetFrame, Ipv4Packet, TcpSegment, VlanTag,
    VLAN_TAG_LEN,
};

/// Which way a captured frame went, seen from the port's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from the port's device (sent by the sandbox, the host or the peer).
    Inbound,
    /// Sent to the port's device.
    Outbound,
}

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const EPB: u32 = 6;
const BYTE_ORDER: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let total = (12 + padded) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(8 + padded, 0);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

/// The stream's start: a section header and one Ethernet interface named `name`, with
/// nanosecond timestamps.
pub fn header(name: &str) -> Vec<u8> {
    let mut shb = Vec::new();
    shb.extend_from_slice(&BYTE_ORDER.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut idb = Vec::new();
    idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    let name = &name.as_bytes()[..name.len().min(255)];
    push_option(&mut idb, 2, name); // if_name
    push_option(&mut idb, 9, &[9]); // if_tsresol: 10^-9 s
    push_option(&mut idb, 0, &[]); // opt_endofopt
    let mut out = block(SHB, &shb);
    out.extend(block(IDB, &idb));
    out
}

fn push_option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    b.extend_from_slice(&code.to_le_bytes());
    b.extend_from_slice(&(value.len() as u16).to_le_bytes());
    b.extend_from_slice(value);
    b.resize(b.len().div_ceil(4) * 4, 0);
}

/// One frame, captured `ns` nanoseconds after the Unix epoch.
pub fn packet(ns: u64, dir: Direction, frame: &[u8]) -> Vec<u8> {
    let len = frame.len() as u32;
    let mut epb = Vec::with_capacity(frame.len() + 40);
    epb.extend_from_slice(&0u32.to_le_bytes());
    epb.extend_from_slice(&((ns >> 32) as u32).to_le_bytes());
    epb.extend_from_slice(&(ns as u32).to_le_bytes());
    epb.extend_from_slice(&len.to_le_bytes());
    epb.extend_from_slice(&len.to_le_bytes());
    epb.extend_from_slice(frame);
    epb.resize(epb.len().div_ceil(4) * 4, 0);
    let flags: u32 = match dir {
        Direction::Inbound => 1,
        Direction::Outbound => 2,
    };
    push_option(&mut epb, 2, &flags.to_le_bytes()); // epb_flags
    push_option(&mut epb, 0, &[]);
    block(EPB, &epb)
}

/// A frame read back from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Nanoseconds after the Unix epoch.
    pub ns: u64,
    /// Its direction, when the block says.
    pub dir: Option<Direction>,
    /// The frame.
    pub frame: Vec<u8>,
}

/// Why a capture stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// A block length that pcapng does not allow.
    #[error("not a pcapng stream: a block of {0} bytes (a block is at least 12 bytes, in whole 32-bit words)")]
    BlockLength(usize),
    /// A section header without the little-endian byte-order magic.
    #[error("not a little-endian pcapng section")]
    ByteOrder,
    /// A packet block shorter than the frame it announces.
    #[error("a cut-short packet block")]
    CutShort,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// A view of one whole pcapng block at the front of a buffer: its type and body (between the
/// two length fields).
struct Block<'a> {
    kind: u32,
    body: &'a [u8],
}

impl<'a> Block<'a> {
    /// The block at the front of `b`, with its length; `None` until all of it is there.
    fn new_checked(b: &'a [u8]) -> Result<Option<(Block<'a>, usize)>, CaptureError> {
        let (Some(kind), Some(total)) = (le32(b, 0), le32(b, 4)) else {
            return Ok(None);
        };
        let total = total as usize;
        if total < 12 || !total.is_multiple_of(4) {
            return Err(CaptureError::BlockLength(total));
        }
        if b.len() < total {
            return Ok(None);
        }
        Ok(Some((
            Block {
                kind,
                body: &b[8..total - 4],
            },
            total,
        )))
    }
}

/// A view of an Enhanced Packet Block's body: interface, timestamp, the frame, options.
struct EnhancedPacket<'a> {
    body: &'a [u8],
    frame_end: usize,
}

impl<'a> EnhancedPacket<'a> {
    const FRAME_AT: usize = 20;

    fn new_checked(body: &'a [u8]) -> Result<EnhancedPacket<'a>, CaptureError> {
        let caplen = le32(body, 12).ok_or(CaptureError::CutShort)? as usize;
        let frame_end = Self::FRAME_AT.checked_add(caplen).ok_or(CaptureError::CutShort)?;
        if frame_end > body.len() {
            return Err(CaptureError::CutShort);
        }
        Ok(EnhancedPacket { body, frame_end })
    }

    /// Units of the interface's resolution (here nanoseconds) since the Unix epoch.
    fn timestamp(&self) -> u64 {
        let (hi, lo) = (le32(self.body, 4).unwrap_or(0), le32(self.body, 8).unwrap_or(0));
        (u64::from(hi) << 32) | u64::from(lo)
    }

    fn frame(&self) -> &'a [u8] {
        &self.body[Self::FRAME_AT..self.frame_end]
    }

    /// The options as (code, value), up to `opt_endofopt` or the first that is cut short.
    fn options(&self) -> impl Iterator<Item = (u16, &'a [u8])> + 'a {
        let body = self.body;
        let mut at = self.frame_end.div_ceil(4) * 4;
        std::iter::from_fn(move || {
            let (code, len) = (le16(body, at)?, usize::from(le16(body, at + 2)?));
            let value = body.get(at + 4..at + 4 + len)?;
            at += 4 + len.div_ceil(4) * 4;
            (code != 0).then_some((code, value))
        })
    }
}

/// Reads blocks from a pcapng stream as its bytes arrive.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// Takes more bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one has arrived.
    ///
    /// # Errors
    /// Bytes that are not little-endian pcapng.
    pub fn next_frame(&mut self) -> Result<Option<Captured>, CaptureError> {
        loop {
            let Some((block, total)) = Block::new_checked(&self.buf)? else {
                return Ok(None);
            };
            let got = match block.kind {
                SHB if le32(block.body, 0) != Some(BYTE_ORDER) => Err(CaptureError::ByteOrder),
                EPB => EnhancedPacket::new_checked(block.body).map(|p| Some(captured(&p))),
                _ => Ok(None),
            };
            self.buf.drain(..total);
            if let Some(c) = got? {
                return Ok(Some(c));
            }
        }
    }
}

fn captured(p: &EnhancedPacket<'_>) -> Captured {
    let dir = p
        .options()
        .find(|(code, v)| *code == 2 && v.len() == 4)
        .and_then(|(_, v)| match le32(v, 0).map(|f| f & 3) {
            Some(1) => Some(Direction::Inbound),
            Some(2) => Some(Direction::Outbound),
            _ => None,
        });
    Captured {
        ns: p.timestamp(),
        dir,
        frame: p.frame().to_vec(),
    }
}

/// One line about a frame: addresses, and for ARP, IPv4 (ICMP, TCP, UDP) what it carries.
pub fn summary(f: &[u8]) -> String {
    let Ok(eth) = EthernetFrame::new_checked(f) else {
        return format!("runt frame of {} bytes", f.len());
    };
    let (mut et, mut l3) = (eth.ethertype(), eth.payload());
    let mut vlan = String::new();
    if et == EtherType::VLAN {
        if let Ok(tag) = VlanTag::new_checked(l3) {
            vlan = format!(" vlan {}", tag.vid());
            (et, l3) = (tag.inner_ethertype(), &l3[VLAN_TAG_LEN..]);
        }
    }
    let what = match et {
        EtherType::ARP => match ArpPacket::new_checked(l3) {
            Ok(a) if a.op() == ArpOp::REQUEST => format!("ARP who-has {} tell {}", a.target_ip(), a.sender_ip()),
            Ok(a) if a.op() == ArpOp::REPLY => format!("ARP {} is-at {}", a.sender_ip(), a.sender_mac()),
            Ok(a) => format!("ARP op {}", a.op().0),
            Err(_) => "ARP (not IPv4 over Ethernet)".to_string(),
        },
        EtherType::IPV4 => match Ipv4Packet::new_checked(l3) {
            Ok(ip) => ipv4_summary(&ip),
            Err(_) => "IPv4 (cut short)".to_string(),
        },
        EtherType::IPV6 => "IPv6".to_string(),
        EtherType(other) => format!("type 0x{other:04x}"),
    };
    format!("{} > {}{vlan} {what}, {} bytes", eth.src(), eth.dst(), f.len())
}

fn ipv4_summary(ip: &Ipv4Packet<&[u8]>) -> String {
    let (src, dst, l4) = (ip.src(), ip.dst(), ip.payload());
    match ip.protocol() {
        proto::ICMP if l4.len() >= 2 => format!("IPv4 {src} > {dst} ICMP type {} code {}", l4[0], l4[1]),
        proto::TCP => match TcpSegment::new_checked(l4) {
            Ok(t) => {
                let flags: String = [
                    (tcp_flag::SYN, 'S'),
                    (tcp_flag::FIN, 'F'),
                    (tcp_flag::RST, 'R'),
                    (tcp_flag::PSH, 'P'),
                    (tcp_flag::ACK, '.'),
                ]
                .iter()
                .filter(|(bit, _)| t.flags() & bit != 0)
                .map(|(_, c)| *c)
                .collect();
                format!("IPv4 {src}.{} > {dst}.{} TCP [{flags}]", t.src_port(), t.dst_port())
            }
            Err(_) => format!("IPv4 {src} > {dst} TCP (cut short)"),
        },
        proto::UDP => match udp_ports(l4) {
            Some((sp, dp)) => format!("IPv4 {src}.{sp} > {dst}.{dp} UDP"),
            None => format!("IPv4 {src} > {dst} UDP (cut short)"),
        },
        p => format!("IPv4 {src} > {dst} proto {p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arp_request() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0x42, 10, 0, 0, 2, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0x42, 10, 0, 0, 2, 10, 0, 0, 2]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[10, 0, 0, 3]);
        f
    }

    #[test]
    fn a_stream_reads_back_frame_by_frame_whatever_the_chunks() {
        let frames = [arp_request(), vec![7u8; 61], vec![1u8; 64_000]];
        let mut stream = header("web/eth0");
        for (i, f) in frames.iter().enumerate() {
            let dir = if i % 2 == 0 {
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            stream.extend(packet(1_700_000_000_123_456_789 + i as u64, dir, f));
        }
        for chunk in [1usize, 7, 4096] {
            let mut r = Reader::default();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                r.feed(c);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 3, "chunks of {chunk}");
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g.frame, frames[i]);
                assert_eq!(g.ns, 1_700_000_000_123_456_789 + i as u64);
                let want = if i % 2 == 0 {
                    Direction::Inbound
                } else {
                    Direction::Outbound
                };
                assert_eq!(g.dir, Some(want));
            }
        }
        let mut r = Reader::default();
        r.feed(&[0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.next_frame(), Err(CaptureError::BlockLength(5)));
        // A packet block announcing more frame than it holds.
        let mut r = Reader::default();
        let mut epb = packet(1, Direction::Inbound, &[0; 8]);
        epb[20] = 200;
        r.feed(&epb);
        assert_eq!(r.next_frame(), Err(CaptureError::CutShort));
    }

    #[test]
    fn summaries_name_what_a_frame_carries() {
        assert_eq!(
            summary(&arp_request()),
            "02:42:0a:00:00:02 > ff:ff:ff:ff:ff:ff ARP who-has 10.0.0.3 tell 10.0.0.2, 42 bytes"
        );
        let mut tcp = vec![
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0,
        ];
        tcp.extend_from_slice(&[
            10, 0, 0, 2, 10, 0, 0, 3, 0x1f, 0x90, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12,
        ]);
        tcp.resize(54, 0);
        assert_eq!(
            summary(&tcp),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 IPv4 10.0.0.2.8080 > 10.0.0.3.80 TCP [S.], 54 bytes"
        );
        assert_eq!(summary(&[0; 5]), "runt frame of 5 bytes");
        // Behind a tag: UDP, and a TCP header cut short.
        let mut udp = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0, 7, 0x08, 0x00];
        udp.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 3]);
        udp.extend_from_slice(&[0, 53, 0x30, 0x39, 0, 8, 0, 0]);
        assert_eq!(
            summary(&udp),
            "02:00:00:00:00:02 > 02:00:00:00:00:01 vlan 7 IPv4 10.0.0.2.53 > 10.0.0.3.12345 UDP, 46 bytes"
        );
        udp[27] = 6;
        assert!(summary(&udp).contains("TCP (cut short)"), "{}", summary(&udp));
    }
}
