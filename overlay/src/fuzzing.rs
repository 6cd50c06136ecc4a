//! Harnesses for the parsers of untrusted input in this crate (remote VXLAN and ESP
//! datagrams, containers' offloaded super-frames, ARP requests and neighbour solicitations): each takes arbitrary bytes, must never
//! panic, and asserts what must hold for any input. The fuzz targets in `fuzz/` call them
//! under libFuzzer; `sim/tests/fuzz_corpus.rs` replays the committed corpus and seeded
//! random inputs through them.

use crate::arp::{parse_request, write_reply, ARP_FRAME_LEN};
use crate::offload::{
    checksum, cut_tcp, Coalescer, VirtioNetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4,
    VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_LEN,
};
use crate::VxlanHeader;

/// Headers in front of a plain TCP/IPv4 segment: Ethernet, IPv4 without options, TCP
/// without options.
const HEADERS: usize = 14 + 20 + 20;
/// Headers in front of a plain TCP/IPv6 segment: Ethernet, IPv6, TCP without options.
const HEADERS6: usize = 14 + 40 + 20;

/// Sealed tunnels. The first byte chooses: odd, the rest is a datagram from the underlay
/// opened under a fixed SA (never a panic; what opens is no longer than what came); even,
/// the rest is sealed and opened again (it comes out as it went in, once: a replay is refused)
/// and, altered in the byte the first byte names, refused.
pub fn esp(data: &[u8]) {
    use crate::esp::{Opener, Sa, Sealer, KEY_LEN, NEXT_HEADER_UDP};
    let sa = || Sa::new(0x100, &[9; KEY_LEN]);
    let Some((sel, rest)) = data.split_first() else { return };
    let mut opener = Opener::new(sa());
    if sel & 1 == 1 {
        let mut d = rest.to_vec();
        let n = d.len();
        if let Ok(o) = opener.open(&mut d) {
            assert!(o.payload.len() < n);
        }
        return;
    }
    let mut sealed = Vec::new();
    Sealer::new(sa())
        .seal(NEXT_HEADER_UDP, &[rest], &mut sealed)
        .expect("a fresh SA seals");
    let mut altered = sealed.clone();
    let at = usize::from(*sel) % altered.len();
    altered[at] ^= 0x40;
    assert!(opener.open(&mut altered).is_err(), "altered at byte {at}, still opened");
    let mut again = sealed.clone();
    let o = opener.open(&mut sealed).expect("what was sealed opens");
    assert_eq!((o.next_header, o.payload), (NEXT_HEADER_UDP, rest));
    assert!(opener.open(&mut again).is_err(), "a replay opened");
}

/// Remote UDP payloads into the VXLAN decoder: what parses re-emits to the same header.
pub fn vxlan_header(data: &[u8]) {
    if let Ok(h) = VxlanHeader::parse(data) {
        let mut b = [0u8; 8];
        h.emit(&mut b);
        assert_eq!(VxlanHeader::parse(&b).expect("an emitted header parses"), h);
    }
}

/// Segmentation and coalescing. The first byte chooses: odd, arbitrary bytes as a virtio-net
/// header and frame are cut (never a panic; every segment at most the segment size plus its
/// head); even, the rest builds a valid TCP super-frame (over IPv6 when the byte's second bit
/// is set, else IPv4; two bytes of segment size, then the payload) that is cut, and the
/// segments are coalesced again: every segment carries at most the segment size, and the
/// payload comes out as it went in.
pub fn segmentation(data: &[u8]) {
    match data.split_first() {
        Some((sel, rest)) if sel & 1 == 1 => cut_arbitrary(rest),
        Some((sel, [a, b, payload @ ..])) => round_trip(u16::from_le_bytes([*a, *b]), payload, sel & 2 != 0),
        _ => {}
    }
}

fn cut_arbitrary(data: &[u8]) {
    let Some(hdr) = VirtioNetHdr::parse(data) else { return };
    let frame = &data[VIRTIO_NET_HDR_LEN..];
    let mut heads = Vec::new();
    if let Ok(cut) = cut_tcp(&hdr, frame, 8, &mut heads) {
        assert_eq!(heads.len(), cut.count * cut.head_len);
        for (head, payload) in cut.segments(&heads, frame) {
            assert!(head.len() == cut.head_len && payload.len() <= cut.mss.max(frame.len()));
        }
    } else {
        assert!(heads.is_empty(), "a refused frame leaves the heads as they were");
    }
}

fn round_trip(mss: u16, payload: &[u8], v6: bool) {
    let mss = usize::from(mss).clamp(536, 1460);
    let payload = &payload[..payload.len().min(usize::from(u16::MAX) - 40)];
    let (frame, headers, gso_type) = match v6 {
        true => (super_frame6(payload), HEADERS6, VIRTIO_NET_HDR_GSO_TCPV6),
        false => (super_frame(payload), HEADERS, VIRTIO_NET_HDR_GSO_TCPV4),
    };
    let hdr = VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type,
        hdr_len: headers as u16,
        gso_size: mss as u16,
        csum_start: (headers - 20) as u16,
        csum_offset: 16,
    };
    let mut heads = Vec::new();
    let cut = cut_tcp(&hdr, &frame, 0, &mut heads).expect("a valid super-frame is cut");
    let mut out: Vec<u8> = Vec::new();
    let mut c = Coalescer::new();
    for (head, slice) in cut.segments(&heads, &frame) {
        assert!(
            slice.len() <= mss,
            "a segment of {} bytes for an MSS of {mss}",
            slice.len()
        );
        let mut segment = head.to_vec();
        segment.extend_from_slice(slice);
        assert!(segment.len() <= headers + mss);
        if c.add(&segment) {
            continue;
        }
        if !c.is_empty() {
            take_payload(&mut c, &mut out, v6);
        }
        if !c.add(&segment) {
            // Not a segment to coalesce (no payload): it goes on as it is.
            out.extend_from_slice(&segment[headers..]);
        }
    }
    if !c.is_empty() {
        take_payload(&mut c, &mut out, v6);
    }
    assert!(out == payload, "the payload changed across cut and coalesce");
}

/// Appends the payload of what `c` holds (behind its virtio-net header) to `out`.
fn take_payload(c: &mut Coalescer, out: &mut Vec<u8>, v6: bool) {
    let f = c.take();
    // IPv4's total length counts its header; IPv6's payload length does not.
    let (at, ip_header, headers) = if v6 { (18, 40, HEADERS6) } else { (16, 0, HEADERS) };
    let ip_len = usize::from(u16::from_be_bytes([
        f[VIRTIO_NET_HDR_LEN + at],
        f[VIRTIO_NET_HDR_LEN + at + 1],
    ]));
    assert_eq!(
        ip_len + 14 + ip_header,
        f.len() - VIRTIO_NET_HDR_LEN,
        "the IP length covers the frame"
    );
    out.extend_from_slice(&f[VIRTIO_NET_HDR_LEN + headers..]);
}

/// An Ethernet + IPv4 + TCP frame (ACK, PSH on the last data) holding `payload`, with its
/// IPv4 checksum and the TCP pseudo-header sum a sender leaves for the device.
fn super_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (40 + payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[
        0x9c, 0x40, 0x13, 0x89, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f.extend_from_slice(payload);
    f
}

/// As [`super_frame`], over IPv6 (fd00::1 to fd00::2); IPv6 has no header checksum.
fn super_frame6(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0];
    f.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[6, 64]);
    for last in [1, 2] {
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
    }
    f.extend_from_slice(&[
        0x9c, 0x40, 0x13, 0x89, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f.extend_from_slice(payload);
    f
}

/// ARP requests from containers: what parses gets a reply that answers it.
pub fn arp_request(data: &[u8]) {
    neighbor_solicitation(data);
    let Some(req) = parse_request(data) else { return };
    let mut out = [0u8; ARP_FRAME_LEN];
    let mac = [2, 0, 0, 0, 0, 9];
    assert_eq!(write_reply(&req, mac, &mut out), ARP_FRAME_LEN);
    assert_eq!(&out[0..6], &req.sender_mac);
    assert_eq!(out[21], 2, "a reply");
    assert_eq!(&out[28..32], &req.target_ip.octets());
    assert_eq!(&out[38..42], &req.sender_ip.octets());
    assert!(parse_request(&out).is_none(), "a reply is no request");
}

/// IPv6's counterpart: a solicitation this host may answer gets an advertisement of its
/// target, to its asker, which is no solicitation.
fn neighbor_solicitation(data: &[u8]) {
    use crate::nd::{parse_solicitation, write_advertisement, NA_FRAME_LEN};
    let Some(ns) = parse_solicitation(data) else { return };
    assert!(!ns.sender_ip.is_unspecified() && !ns.target.is_multicast());
    let mut out = [0u8; NA_FRAME_LEN];
    assert_eq!(write_advertisement(&ns, [2, 0, 0, 0, 0, 9], &mut out), NA_FRAME_LEN);
    assert_eq!(&out[0..6], &ns.sender_mac);
    assert_eq!(
        (&out[22..38], &out[38..54]),
        (&ns.target.octets()[..], &ns.sender_ip.octets()[..])
    );
    assert_eq!(out[54], 136, "an advertisement");
    assert!(
        parse_solicitation(&out).is_none(),
        "an advertisement is no solicitation"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn super_frames_of_both_families_survive_cut_and_coalesce() {
        let payload: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
        for sel in [0u8, 2] {
            let mut input = vec![sel, 0xdc, 0x05];
            input.extend_from_slice(&payload);
            segmentation(&input);
        }
        let v6 = super_frame6(&payload);
        assert_eq!(
            (v6.len(), &v6[12..14], v6[20]),
            (HEADERS6 + payload.len(), &[0x86, 0xdd][..], 6)
        );
    }
}
