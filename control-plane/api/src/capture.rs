//! Port captures: the pcapng stream switchd sends for `GET /ports/{port}/capture` (one
//! Ethernet interface, nanosecond times, each frame marked inbound or outbound), reading it
//! back, and a one-line summary of a frame.
//!
//! ```text
//! Section Header Block | Interface Description Block (Ethernet, ns) | Enhanced Packet Block ...
//!                                                          epb_flags: 1 inbound, 2 outbound
//! ```

use std::net::Ipv4Addr;

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
    pub fn next_frame(&mut self) -> Result<Option<Captured>, String> {
        loop {
            if self.buf.len() < 12 {
                return Ok(None);
            }
            let kind = u32::from_le_bytes(self.buf[0..4].try_into().expect("4 bytes"));
            let total = u32::from_le_bytes(self.buf[4..8].try_into().expect("4 bytes")) as usize;
            if total < 12 || !total.is_multiple_of(4) {
                return Err(format!("not a pcapng stream: a block of {total} bytes"));
            }
            if self.buf.len() < total {
                return Ok(None);
            }
            let body: Vec<u8> = self.buf[8..total - 4].to_vec();
            self.buf.drain(..total);
            match kind {
                SHB if body.len() < 4 || u32::from_le_bytes(body[0..4].try_into().expect("4 bytes")) != BYTE_ORDER => {
                    return Err("not a little-endian pcapng section".into());
                }
                EPB => return parse_epb(&body).map(Some),
                _ => {}
            }
        }
    }
}

fn parse_epb(b: &[u8]) -> Result<Captured, String> {
    let word = |i: usize| {
        b.get(i..i + 4)
            .map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes")))
    };
    let bad = || "a cut-short packet block".to_string();
    let (hi, lo, caplen) = (
        word(4).ok_or_else(bad)?,
        word(8).ok_or_else(bad)?,
        word(12).ok_or_else(bad)?,
    );
    let start = 20;
    let end = start + caplen as usize;
    let frame = b.get(start..end).ok_or_else(bad)?.to_vec();
    let mut dir = None;
    let mut i = end.div_ceil(4) * 4;
    while let (Some(code), Some(len)) = (b.get(i..i + 2), b.get(i + 2..i + 4)) {
        let code = u16::from_le_bytes([code[0], code[1]]);
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        if code == 0 {
            break;
        }
        if code == 2 && len == 4 {
            dir = match word(i + 4).map(|f| f & 3) {
                Some(1) => Some(Direction::Inbound),
                Some(2) => Some(Direction::Outbound),
                _ => None,
            };
        }
        i += 4 + len.div_ceil(4) * 4;
    }
    Ok(Captured {
        ns: (u64::from(hi) << 32) | u64::from(lo),
        dir,
        frame,
    })
}

/// One line about a frame: addresses, and for ARP, IPv4 (ICMP, TCP, UDP) what it carries.
pub fn summary(f: &[u8]) -> String {
    if f.len() < 14 {
        return format!("runt frame of {} bytes", f.len());
    }
    let mac = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":");
    let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let (mut et, mut l3) = (u16::from_be_bytes([f[12], f[13]]), 14);
    let mut vlan = String::new();
    if et == 0x8100 && f.len() >= 18 {
        vlan = format!(" vlan {}", u16::from_be_bytes([f[14], f[15]]) & 0x0fff);
        et = u16::from_be_bytes([f[16], f[17]]);
        l3 = 18;
    }
    let p = &f[l3..];
    let what = match et {
        0x0806 if p.len() >= 28 => match u16::from_be_bytes([p[6], p[7]]) {
            1 => format!("ARP who-has {} tell {}", ip(&p[24..28]), ip(&p[14..18])),
            2 => format!("ARP {} is-at {}", ip(&p[14..18]), mac(&p[8..14])),
            op => format!("ARP op {op}"),
        },
        0x0800 if p.len() >= 20 && p[0] >> 4 == 4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let (src, dst) = (ip(&p[12..16]), ip(&p[16..20]));
            let l4 = p.get(ihl..).unwrap_or_default();
            let port = |i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
            match p[9] {
                1 if l4.len() >= 2 => format!("IPv4 {src} > {dst} ICMP type {} code {}", l4[0], l4[1]),
                6 if l4.len() >= 14 => {
                    let flags: String = [(0x02, 'S'), (0x01, 'F'), (0x04, 'R'), (0x08, 'P'), (0x10, '.')]
                        .iter()
                        .filter(|(bit, _)| l4[13] & bit != 0)
                        .map(|(_, c)| *c)
                        .collect();
                    format!("IPv4 {src}.{} > {dst}.{} TCP [{flags}]", port(0), port(2))
                }
                17 if l4.len() >= 4 => format!("IPv4 {src}.{} > {dst}.{} UDP", port(0), port(2)),
                proto => format!("IPv4 {src} > {dst} proto {proto}"),
            }
        }
        0x86dd => "IPv6".to_string(),
        other => format!("type 0x{other:04x}"),
    };
    format!("{} > {}{vlan} {what}, {} bytes", mac(&f[6..12]), mac(&f[0..6]), f.len())
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
        assert!(r.next_frame().is_err());
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
    }
}
