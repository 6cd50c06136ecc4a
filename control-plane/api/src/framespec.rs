//! Synthetic frames for `switchctl trace`: a short `key=value,...` description turned into the
//! bytes of an Ethernet frame.
//!
//! ```text
//! dst=MAC          destination (default ff:ff:ff:ff:ff:ff)
//! src=MAC          source (default: the ingress port's own static address)
//! type=T           ipv4 | ipv6 | arp | 0xNNNN (default ipv4: an IPv4 header follows)
//! nw_src=IP        the IPv4 source (default: the ingress port's own address, else 0.0.0.0)
//! nw_dst=IP        the IPv4 destination (default 255.255.255.255)
//! vlan=ID          an 802.1Q tag, 1-4094 (access ports drop tagged frames)
//! len=N            the frame's length, 14-65535 bytes (default 60)
//! arp=IP           an ARP request for IP (type arp, sender address from sender=)
//! sender=IP        the ARP request's sender address (default 0.0.0.0)
//! hex=BYTES        the whole frame as hex; no other key with it
//! ```

use std::net::Ipv4Addr;

use switch::wire::{
    proto, trunk_tag, ArpOp, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Ipv4Repr, VlanId, ARP_IPV4_LEN,
    ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
};
use switch::MacAddr;

const KEYS: &str = "dst, src, type, vlan, len, nw_src, nw_dst, arp, sender, hex";

/// Why a frame spec was refused; the message names the bad part and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameSpecError {
    /// An item that is not `KEY=VALUE`.
    #[error("invalid frame spec item {0:?}: expected KEY=VALUE with a key of {KEYS}")]
    Item(String),
    /// A key this language does not have.
    #[error("unknown frame spec key {0:?}: use {KEYS}")]
    UnknownKey(String),
    /// A value its key does not take.
    #[error("invalid {key}={value}: {accepted}")]
    Value {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What the key takes.
        accepted: &'static str,
    },
    /// `hex=` with other keys.
    #[error("hex= gives the whole frame: use it alone")]
    HexNotAlone,
    /// `hex=` with an odd number of digits or fewer than an Ethernet header's.
    #[error("invalid hex frame of {0} digits: give at least the 14-byte Ethernet header as pairs of hex digits")]
    HexLength(usize),
    /// `hex=` with something other than hex digits.
    #[error("invalid hex frame: {0:?} is not a hex byte")]
    HexByte(String),
    /// No `src=` and no address of the ingress port to stand in.
    #[error("the frame needs a source address: give src=MAC (the ingress port has no address of its own)")]
    NoSource,
    /// `len=` below what the headers take.
    #[error("len={len} is shorter than the headers asked for ({headers} bytes)")]
    TooShort {
        /// The length asked for.
        len: usize,
        /// What the headers take.
        headers: usize,
    },
}

/// Builds the frame `spec` describes; `default_src` stands in for a missing `src=`, and
/// `default_ip` for a missing `nw_src=` (the ingress port's own addresses, so that a frame
/// traced from a sandbox is one its port security lets through).
///
/// # Errors
/// An unknown key, a bad value (named, with what is accepted), or no source address.
pub fn build(
    spec: &str,
    default_src: Option<MacAddr>,
    default_ip: Option<Ipv4Addr>,
) -> Result<Vec<u8>, FrameSpecError> {
    let mut x = Fields {
        dst: MacAddr::BROADCAST,
        src: default_src,
        ethertype: 0x0800,
        vlan: None,
        len: None,
        arp_target: None,
        sender: Ipv4Addr::UNSPECIFIED,
        nw_src: default_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        nw_dst: Ipv4Addr::BROADCAST,
    };
    let pairs: Vec<&str> = spec.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    for pair in &pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(FrameSpecError::Item(pair.to_string()));
        };
        let bad = |accepted: &'static str| FrameSpecError::Value {
            key: k.to_string(),
            value: v.to_string(),
            accepted,
        };
        let mac = |v: &str| {
            v.parse::<MacAddr>()
                .map_err(|_| bad("expected a MAC address like 02:42:ac:11:00:02"))
        };
        let ip = |v: &str| {
            v.parse::<Ipv4Addr>()
                .map_err(|_| bad("expected an IPv4 address like 10.0.0.2"))
        };
        match k {
            "hex" => {
                if pairs.len() > 1 {
                    return Err(FrameSpecError::HexNotAlone);
                }
                return hex(v);
            }
            "dst" => x.dst = mac(v)?,
            "src" => x.src = Some(mac(v)?),
            "type" => {
                x.ethertype = match v {
                    "ipv4" => 0x0800,
                    "ipv6" => 0x86dd,
                    "arp" => 0x0806,
                    _ => v
                        .strip_prefix("0x")
                        .and_then(|h| u16::from_str_radix(h, 16).ok())
                        .ok_or_else(|| bad("use ipv4, ipv6, arp or a hex EtherType like 0x88cc"))?,
                }
            }
            "vlan" => {
                x.vlan = Some(
                    v.parse::<u16>()
                        .ok()
                        .and_then(|n| VlanId::new(n).ok())
                        .ok_or_else(|| bad("a VLAN ID is 1-4094"))?,
                )
            }
            "len" => {
                x.len = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| (14..=65535).contains(n))
                        .ok_or_else(|| bad("a frame is 14-65535 bytes"))?,
                )
            }
            "nw_src" => x.nw_src = ip(v)?,
            "nw_dst" => x.nw_dst = ip(v)?,
            "arp" => x.arp_target = Some(ip(v)?),
            "sender" => x.sender = ip(v)?,
            _ => return Err(FrameSpecError::UnknownKey(k.to_string())),
        }
    }
    emit(&x)
}

/// What a spec asked for, defaults filled in.
struct Fields {
    dst: MacAddr,
    src: Option<MacAddr>,
    ethertype: u16,
    vlan: Option<VlanId>,
    len: Option<usize>,
    arp_target: Option<Ipv4Addr>,
    sender: Ipv4Addr,
    nw_src: Ipv4Addr,
    nw_dst: Ipv4Addr,
}

/// Writes the frame: Ethernet, the tag, then an ARP request or an IPv4 header, padded to the
/// length asked for.
fn emit(x: &Fields) -> Result<Vec<u8>, FrameSpecError> {
    let Fields {
        dst,
        src,
        vlan,
        len,
        arp_target,
        sender,
        nw_src,
        nw_dst,
        ..
    } = *x;
    let src = src.ok_or(FrameSpecError::NoSource)?;
    let ethertype = if arp_target.is_some() {
        EtherType::ARP
    } else {
        EtherType(x.ethertype)
    };
    let mut f = vec![0u8; ETHERNET_HEADER_LEN];
    EthernetRepr { dst, src, ethertype }.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    if let Some(id) = vlan {
        f.splice(12..12, trunk_tag(id));
    }
    let l3 = f.len();
    if let Some(target_ip) = arp_target {
        f.resize(l3 + ARP_IPV4_LEN, 0);
        ArpRepr {
            op: ArpOp::REQUEST,
            sender_mac: src,
            sender_ip: sender,
            target_mac: MacAddr([0; 6]),
            target_ip,
        }
        .emit(&mut f[l3..]);
    }
    let ipv4 = ethertype == EtherType::IPV4;
    if ipv4 {
        f.resize(l3 + IPV4_HEADER_LEN, 0);
    }
    let want = len.unwrap_or(60.max(f.len()));
    if want < f.len() {
        return Err(FrameSpecError::TooShort {
            len: want,
            headers: f.len(),
        });
    }
    f.resize(want, 0);
    if ipv4 {
        Ipv4Repr {
            src: nw_src,
            dst: nw_dst,
            protocol: proto::ICMP,
            ttl: 64,
            payload_len: want - l3 - IPV4_HEADER_LEN,
        }
        .emit(&mut f[l3..]);
    }
    Ok(f)
}

fn hex(v: &str) -> Result<Vec<u8>, FrameSpecError> {
    let digits: Vec<u8> = v.bytes().filter(|b| !b":- ".contains(b)).collect();
    if !digits.len().is_multiple_of(2) || digits.len() < 28 {
        return Err(FrameSpecError::HexLength(digits.len()));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| FrameSpecError::HexByte(String::from_utf8_lossy(p).into_owned()))
        })
        .collect()
}

/// Lower-case hex of a frame, for showing what was traced.
pub fn to_hex(f: &[u8]) -> String {
    f.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0x42, 10, 0, 0, 2]);

    #[test]
    fn defaults_make_a_broadcast_ipv4_frame_from_the_port() {
        let f = build("", Some(A), Some(Ipv4Addr::new(10, 0, 0, 2))).unwrap();
        assert_eq!(f.len(), 60);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &A.0);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        // A whole IPv4 header: version, length of the packet, addresses, a checksum that sums.
        assert_eq!((f[14], u16::from_be_bytes([f[16], f[17]])), (0x45, 46));
        assert_eq!(&f[26..30], &[10, 0, 0, 2]);
        assert_eq!(&f[30..34], &[255; 4]);
        let sum: u32 = f[14..34]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
        let f = build("nw_src=10.0.0.9,nw_dst=10.0.0.3", Some(A), None).unwrap();
        assert_eq!((&f[26..30], &f[30..34]), (&[10, 0, 0, 9][..], &[10, 0, 0, 3][..]));
    }

    #[test]
    fn keys_shape_the_frame() {
        let f = build("dst=02:42:0a:00:00:03, type=0x88cc, vlan=10, len=100", Some(A), None).unwrap();
        assert_eq!(f.len(), 100);
        assert_eq!(&f[0..6], &[2, 0x42, 10, 0, 0, 3]);
        assert_eq!(&f[12..18], &[0x81, 0x00, 0, 10, 0x88, 0xcc]);
        let arp = build("arp=10.0.0.3,sender=10.0.0.2", Some(A), None).unwrap();
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        assert_eq!(&arp[20..22], &[0, 1]);
        assert_eq!(&arp[28..32], &[10, 0, 0, 2]);
        assert_eq!(&arp[38..42], &[10, 0, 0, 3]);
        assert_eq!(build(&format!("hex={}", to_hex(&arp)), None, None).unwrap(), arp);
    }

    #[test]
    fn bad_specs_are_named() {
        for (spec, want) in [
            ("colour=red", "unknown frame spec key \"colour\""),
            ("dst=nonsense", "invalid dst=nonsense"),
            ("vlan=4095", "a VLAN ID is 1-4094"),
            ("len=10", "14-65535"),
            ("len=14,vlan=5", "shorter than the headers"),
            ("len=33", "shorter than the headers"),
            ("nw_dst=10.0.0", "invalid nw_dst=10.0.0"),
            ("type=ip", "invalid type=ip"),
            ("src", "expected KEY=VALUE"),
            ("hex=0011", "at least the 14-byte Ethernet header"),
            ("hex=zz00000000000000000000000000", "\"zz\" is not a hex byte"),
            ("hex=00,len=60", "use it alone"),
        ] {
            let e = build(spec, Some(A), None).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        assert_eq!(build("", None, None), Err(FrameSpecError::NoSource));
    }
}
