//! Synthetic frames for `switchctl trace`: a short `key=value,...` description turned into the
//! bytes of an Ethernet frame.
//!
//! ```text
//! dst=MAC          destination (default ff:ff:ff:ff:ff:ff)
//! src=MAC          source (default: the ingress port's own static address)
//! type=T           ipv4 | ipv6 | arp | 0xNNNN (default ipv4: an IPv4 header follows)
//! nw_src=IP        the source, IPv4 or IPv6 (default: the ingress port's own address of the
//!                  frame's family, else 0.0.0.0 or ::)
//! nw_dst=IP        the destination, IPv4 or IPv6 (default 255.255.255.255, or ff02::1); an
//!                  IPv6 address makes the frame IPv6
//! ns=IP6           a neighbour solicitation for IP6 (type ipv6, to its solicited-node group,
//!                  from sender= or the port's IPv6 address, with the source's link-layer
//!                  address)
//! vlan=ID          an 802.1Q tag, 1-4094 (access ports drop tagged frames)
//! len=N            the frame's length, 14-65535 bytes (default 60)
//! arp=IP           an ARP request for IP (type arp, sender address from sender=)
//! sender=IP        the ARP request's or solicitation's sender address (default 0.0.0.0, or
//!                  the port's IPv6 address)
//! hex=BYTES        the whole frame as hex; no other key with it
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use switch::wire::{
    proto, trunk_tag, ArpOp, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Ipv4Repr, VlanId, ARP_IPV4_LEN,
    ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, IPV6_HEADER_LEN,
};
use switch::MacAddr;

const KEYS: &str = "dst, src, type, vlan, len, nw_src, nw_dst, arp, ns, sender, hex";
/// An ICMPv6 neighbour solicitation with a source link-layer address option.
const NS_LEN: usize = 32;

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
    /// Addresses of both families in one frame.
    #[error("the frame mixes IPv4 and IPv6 addresses ({0}): give the addresses of one family")]
    MixedFamilies(String),
    /// `len=` below what the headers take.
    #[error("len={len} is shorter than the headers asked for ({headers} bytes)")]
    TooShort {
        /// The length asked for.
        len: usize,
        /// What the headers take.
        headers: usize,
    },
}

/// The ingress port's own addresses, which stand in for what a spec leaves out, so that a
/// frame traced from a sandbox is one its port security lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortAddresses {
    /// For a missing `src=`.
    pub mac: Option<MacAddr>,
    /// For a missing IPv4 `nw_src=`.
    pub ip: Option<Ipv4Addr>,
    /// For a missing IPv6 `nw_src=` or `sender=` of a solicitation.
    pub ip6: Option<Ipv6Addr>,
}

/// Builds the frame `spec` describes, with the port's addresses `own` where it gives none.
///
/// # Errors
/// An unknown key, a bad value (named, with what is accepted), addresses of both families, or
/// no source address.
pub fn build(spec: &str, own: PortAddresses) -> Result<Vec<u8>, FrameSpecError> {
    let (default_src, default_ip) = (own.mac, own.ip);
    let mut x = Fields {
        dst: MacAddr::BROADCAST,
        src: default_src,
        ethertype: 0x0800,
        vlan: None,
        len: None,
        arp_target: None,
        sender: Ipv4Addr::UNSPECIFIED,
        nw_src: None,
        nw_dst: None,
        ns_target: None,
        sender6: None,
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
        let any_ip = |v: &str| {
            v.parse::<IpAddr>()
                .map_err(|_| bad("expected an IPv4 or IPv6 address like 10.0.0.2 or fd00::2"))
        };
        let ip6 = |v: &str| {
            v.parse::<Ipv6Addr>()
                .map_err(|_| bad("expected an IPv6 address like fd00::2"))
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
            "nw_src" => x.nw_src = Some(any_ip(v)?),
            "nw_dst" => x.nw_dst = Some(any_ip(v)?),
            "arp" => x.arp_target = Some(ip(v)?),
            "ns" => x.ns_target = Some(ip6(v)?),
            "sender" => match any_ip(v)? {
                IpAddr::V4(a) => x.sender = a,
                IpAddr::V6(a) => x.sender6 = Some(a),
            },
            _ => return Err(FrameSpecError::UnknownKey(k.to_string())),
        }
    }
    let v6 = [x.nw_src, x.nw_dst].into_iter().flatten().any(|a| a.is_ipv6());
    if let (Some(a), Some(b)) = (x.nw_src, x.nw_dst) {
        if a.is_ipv6() != b.is_ipv6() {
            return Err(FrameSpecError::MixedFamilies(format!("nw_src={a}, nw_dst={b}")));
        }
    }
    if v6 || x.ns_target.is_some() || x.sender6.is_some() {
        if x.arp_target.is_some() || x.nw_src.is_some_and(|a| a.is_ipv4()) {
            return Err(FrameSpecError::MixedFamilies(
                "an IPv4 address beside an IPv6 one".into(),
            ));
        }
        x.ethertype = 0x86dd;
    }
    if x.ethertype == 0x86dd {
        x.nw_src = x.nw_src.or(x.sender6.or(own.ip6).map(IpAddr::V6));
    } else {
        x.nw_src = x.nw_src.or(default_ip.map(IpAddr::V4));
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
    nw_src: Option<IpAddr>,
    nw_dst: Option<IpAddr>,
    ns_target: Option<Ipv6Addr>,
    sender6: Option<Ipv6Addr>,
}

/// Writes the frame: Ethernet, the tag, then an ARP request, an IPv4 header, or an IPv6
/// header (with a neighbour solicitation), padded to the length asked for.
fn emit(x: &Fields) -> Result<Vec<u8>, FrameSpecError> {
    let Fields {
        dst,
        src,
        vlan,
        len,
        arp_target,
        sender,
        ..
    } = *x;
    let src = src.ok_or(FrameSpecError::NoSource)?;
    if x.ethertype == 0x86dd {
        return emit6(x, src);
    }
    let v4 = |a: Option<IpAddr>, or: Ipv4Addr| match a {
        Some(IpAddr::V4(a)) => a,
        _ => or,
    };
    let (nw_src, nw_dst) = (v4(x.nw_src, Ipv4Addr::UNSPECIFIED), v4(x.nw_dst, Ipv4Addr::BROADCAST));

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

/// An IPv6 frame: the header, then a neighbour solicitation (`ns=`) or nothing (next
/// header 59), padded to the length asked for.
fn emit6(x: &Fields, src: MacAddr) -> Result<Vec<u8>, FrameSpecError> {
    let v6 = |a: Option<IpAddr>| match a {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    };
    let from = v6(x.nw_src).unwrap_or(Ipv6Addr::UNSPECIFIED);
    // A solicitation goes to the target's solicited-node group (RFC 4291 §2.7.1).
    let solicited = x.ns_target.map(|t| {
        let o = t.octets();
        Ipv6Addr::from([
            0xff02,
            0,
            0,
            0,
            0,
            1,
            0xff00 | u16::from(o[13]),
            u16::from_be_bytes([o[14], o[15]]),
        ])
    });
    let to = v6(x.nw_dst)
        .or(solicited)
        .unwrap_or(Ipv6Addr::from([0xff02, 0, 0, 0, 0, 0, 0, 1]));
    let dst = if x.dst == MacAddr::BROADCAST && to.is_multicast() {
        let o = to.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    } else {
        x.dst
    };
    let mut f = vec![0u8; ETHERNET_HEADER_LEN];
    EthernetRepr {
        dst,
        src,
        ethertype: EtherType::IPV6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    if let Some(id) = x.vlan {
        f.splice(12..12, trunk_tag(id));
    }
    let l3 = f.len();
    let body = if x.ns_target.is_some() { NS_LEN } else { 0 };
    let headers = l3 + IPV6_HEADER_LEN + body;
    let want = x.len.unwrap_or(60.max(headers));
    if want < headers {
        return Err(FrameSpecError::TooShort { len: want, headers });
    }
    f.resize(want, 0);
    let payload = u16::try_from(want - l3 - IPV6_HEADER_LEN).unwrap_or(u16::MAX);
    let ip = &mut f[l3..];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&payload.to_be_bytes());
    ip[6] = if body > 0 { 58 } else { 59 };
    ip[7] = 255;
    ip[8..24].copy_from_slice(&from.octets());
    ip[24..40].copy_from_slice(&to.octets());
    if let Some(target) = x.ns_target {
        let l4 = l3 + IPV6_HEADER_LEN;
        let icmp = &mut f[l4..];
        icmp[0] = 135;
        icmp[8..24].copy_from_slice(&target.octets());
        icmp[24] = 1;
        icmp[25] = 1;
        icmp[26..32].copy_from_slice(&src.0);
        // The checksum covers a pseudo-header: both addresses, the length and next header.
        let mut pseudo = Vec::with_capacity(40 + usize::from(payload));
        pseudo.extend_from_slice(&from.octets());
        pseudo.extend_from_slice(&to.octets());
        pseudo.extend_from_slice(&u32::from(payload).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(&f[l4..]);
        let sum = switch::wire::internet_checksum(&pseudo);
        f[l4 + 2..l4 + 4].copy_from_slice(&sum.to_be_bytes());
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

    fn own(mac: Option<MacAddr>, ip: Option<Ipv4Addr>) -> PortAddresses {
        PortAddresses { mac, ip, ip6: None }
    }

    #[test]
    fn defaults_make_a_broadcast_ipv4_frame_from_the_port() {
        let f = build("", own(Some(A), Some(Ipv4Addr::new(10, 0, 0, 2)))).unwrap();
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
        let f = build("nw_src=10.0.0.9,nw_dst=10.0.0.3", own(Some(A), None)).unwrap();
        assert_eq!((&f[26..30], &f[30..34]), (&[10, 0, 0, 9][..], &[10, 0, 0, 3][..]));
    }

    #[test]
    fn keys_shape_the_frame() {
        let f = build(
            "dst=02:42:0a:00:00:03, type=0x88cc, vlan=10, len=100",
            own(Some(A), None),
        )
        .unwrap();
        assert_eq!(f.len(), 100);
        assert_eq!(&f[0..6], &[2, 0x42, 10, 0, 0, 3]);
        assert_eq!(&f[12..18], &[0x81, 0x00, 0, 10, 0x88, 0xcc]);
        let arp = build("arp=10.0.0.3,sender=10.0.0.2", own(Some(A), None)).unwrap();
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        assert_eq!(&arp[20..22], &[0, 1]);
        assert_eq!(&arp[28..32], &[10, 0, 0, 2]);
        assert_eq!(&arp[38..42], &[10, 0, 0, 3]);
        assert_eq!(
            build(&format!("hex={}", to_hex(&arp)), PortAddresses::default()).unwrap(),
            arp
        );
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
            let e = build(spec, own(Some(A), None)).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
        assert_eq!(build("", PortAddresses::default()), Err(FrameSpecError::NoSource));
    }

    #[test]
    fn ipv6_frames_and_neighbour_solicitations() {
        let own6 = PortAddresses {
            ip6: Some("fd00::2".parse().unwrap()),
            ..own(Some(A), Some(Ipv4Addr::new(10, 0, 0, 2)))
        };
        let f = build("nw_dst=fd00::3", own6).unwrap();
        assert_eq!((&f[12..14], f[14] >> 4, f[20], f.len()), (&[0x86, 0xdd][..], 6, 59, 60));
        assert_eq!(
            &f[22..38],
            &"fd00::2".parse::<Ipv6Addr>().unwrap().octets(),
            "the port's own"
        );
        assert_eq!(&f[38..54], &"fd00::3".parse::<Ipv6Addr>().unwrap().octets());
        let ns = build("ns=fd00::1:3", own6).unwrap();
        assert_eq!(&ns[0..6], &[0x33, 0x33, 0xff, 1, 0, 3], "the solicited-node group");
        assert_eq!((ns[20], ns[21], ns[54]), (58, 255, 135));
        assert_eq!(&ns[62..78], &"fd00::1:3".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&ns[80..86], &A.0, "the source link-layer address option");
        // The checksum sums to all ones over the pseudo-header and the message.
        let mut pseudo = ns[22..54].to_vec();
        pseudo.extend_from_slice(&[0, 0, 0, 32, 0, 0, 0, 58]);
        pseudo.extend_from_slice(&ns[54..]);
        assert_eq!(switch::wire::internet_checksum(&pseudo), 0);
        let from = build("ns=fd00::3,sender=fe80::42", own6).unwrap();
        assert_eq!(&from[22..38], &"fe80::42".parse::<Ipv6Addr>().unwrap().octets());
        for (spec, want) in [
            ("nw_src=10.0.0.2,nw_dst=fd00::3", "mixes IPv4 and IPv6"),
            ("arp=10.0.0.3,ns=fd00::3", "mixes IPv4 and IPv6"),
            ("ns=10.0.0.3", "expected an IPv6 address"),
            ("ns=fd00::3,len=70", "shorter than the headers"),
        ] {
            let e = build(spec, own6).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
