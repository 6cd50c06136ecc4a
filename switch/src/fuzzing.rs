//! Harnesses for the parsers of untrusted input in this crate: each takes arbitrary bytes,
//! must never panic, and asserts the properties that must hold for any input. The fuzz
//! targets in `fuzz/` call them under libFuzzer, and `sim/tests/fuzz_corpus.rs` replays the
//! committed corpus (`fuzz/corpus/<target>/`) and a batch of seeded random inputs through the
//! same functions.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::wire::{trunk_rx, ArpPacket, EthernetFrame, Ipv4Packet, Ipv6Packet, TrunkRx, VlanId};
use crate::{Gso, Guard, MacAddr, NetworkConfig, NetworkId, PortConfig, PortId, Switch, Verdict};

/// Frames from sandboxes into the switch. Input: frames separated by 0xa5; each frame's first
/// byte picks the ingress port (two guarded sandbox ports, two unguarded, two networks) and,
/// with its high bit, offload metadata whose segment size is the next two bytes. Every verdict
/// stays on the ingress port's network, and whatever a guarded port gets through is sent from
/// its own MAC.
pub fn switch_frames(data: &[u8]) {
    // A harness picks its own epoch, as tests do; the core itself never reads the clock.
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 1);
    sw.add_network(NetworkId(1), NetworkConfig::default())
        .expect("fresh switch");
    sw.add_network(
        NetworkId(2),
        NetworkConfig {
            aging: Duration::from_millis(1),
        },
    )
    .expect("fresh switch");
    let own = |i: u8| MacAddr([2, 0x42, 10, 0, 0, i]);
    let ports: Vec<PortId> = (0..4u8)
        .map(|i| {
            let mut cfg = PortConfig {
                learn_limit: 2,
                ..PortConfig::new(NetworkId(1 + u32::from(i % 2)))
            };
            if i < 2 {
                // One endpoint with IPv6 too, whose neighbour discovery is read.
                let mut g = Guard::new(own(i), Some(Ipv4Addr::new(10, 0, 0, i)), 1500);
                if i == 1 {
                    g = g.with_ipv6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
                }
                g.bum_pps = 5;
                cfg.guard = Some(g);
            }
            let p = sw.add_port(cfg).expect("network exists");
            let _ = sw.add_static(t0, NetworkId(1 + u32::from(i % 2)), own(i), p);
            p
        })
        .collect();
    for (i, chunk) in data.split(|b| *b == 0xa5).enumerate() {
        let Some((&sel, rest)) = chunk.split_first() else {
            continue;
        };
        let (gso, frame) = match rest {
            [a, b, frame @ ..] if sel & 0x80 != 0 => (
                Some(Gso {
                    segment_size: u16::from_le_bytes([*a, *b]),
                }),
                frame,
            ),
            _ => (None, rest),
        };
        let k = usize::from(sel & 0x7f) % ports.len();
        let ingress = ports[k];
        let net = sw.port_network(ingress).expect("port exists");
        let now = t0 + Duration::from_millis(i as u64);
        let _ = sw.trace(now, ingress, frame);
        let out: Option<Vec<PortId>> = match sw.process_offloaded(now, ingress, gso, frame) {
            Verdict::Forward(p) => Some(vec![p]),
            Verdict::Flood(f) => Some(f.ports().collect()),
            Verdict::Drop(_) => None,
        };
        for p in out.iter().flatten() {
            assert!(
                *p != ingress && sw.port_network(*p) == Some(net),
                "sent across networks"
            );
        }
        let passed = out.is_some();
        if passed && k < 2 {
            let src = EthernetFrame::new_checked(frame)
                .expect("a forwarded frame has a header")
                .src();
            assert_eq!(src, own(k as u8), "a guarded port sent as another");
            // A neighbour advertisement (read at fixed offsets: ICMPv6 straight after the
            // IPv6 header) that passed is of the endpoint's own addresses.
            let na = frame.len() >= 78 && frame[12..14] == [0x86, 0xdd] && frame[20] == 58 && frame[54] == 136;
            if na {
                let g = Guard::new(own(1), None, 1500).with_ipv6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
                let s = g.source.expect("guarded");
                let target = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&frame[62..78]).expect("16 bytes"));
                assert!(
                    k == 1 && (s.ipv6 == Some(target) || s.link_local() == target),
                    "advertised {target}"
                );
            }
        }
        if i % 7 == 0 {
            sw.expire(now);
        }
    }
}

/// Frames on a VLAN trunk: two bytes of VLAN, a flags byte (bit 0: the kernel lifted an outer
/// tag, bit 1: its TPID is 802.1Q rather than 802.1ad), two bytes of that tag's TCI, then the
/// frame. Only a frame tagged with the trunk's own VLAN is taken.
pub fn vlan_trunk(data: &[u8]) {
    let [v_hi, v_lo, flags, t_hi, t_lo, frame @ ..] = data else {
        return;
    };
    let Ok(vlan) = VlanId::new(u16::from_be_bytes([*v_hi, *v_lo]) & 0x0fff) else {
        return;
    };
    let tpid = if flags & 2 != 0 { 0x8100 } else { 0x88a8 };
    let outer = (flags & 1 == 1).then_some((tpid, u16::from_be_bytes([*t_hi, *t_lo])));
    match trunk_rx(frame, outer, vlan) {
        TrunkRx::Accept => {
            let (tpid, tci) = outer.expect("only a lifted tag is accepted as it is");
            assert_eq!((tpid, tci & 0x0fff), (0x8100, vlan.get()));
        }
        TrunkRx::StripInline => {
            assert!(outer.is_none() && frame.len() >= 18 && frame[12..14] == [0x81, 0x00]);
            assert_eq!(u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff, vlan.get());
        }
        TrunkRx::Reject => {}
    }
}

/// ARP, IPv4 and IPv6 headers as a sandbox sends them: every view's accessors read inside
/// the bytes it checked.
pub fn headers(data: &[u8]) {
    if let Ok(arp) = ArpPacket::new_checked(data) {
        let _ = (
            arp.op(),
            arp.sender_mac(),
            arp.sender_ip(),
            arp.target_mac(),
            arp.target_ip(),
        );
    }
    if let Ok(ip) = Ipv4Packet::new_checked(data) {
        let _ = (ip.src(), ip.dst(), ip.protocol(), ip.udp_ports());
        assert!(ip.header_len() >= 20 && ip.header_len() <= data.len());
        assert_eq!(ip.payload().len(), data.len() - ip.header_len());
    }
    if let Ok(ip) = Ipv6Packet::new_checked(data) {
        let _ = (ip.src(), ip.dst());
        if let Some((_, upper)) = ip.upper_layer() {
            assert!(upper.len() <= data.len() - crate::wire::IPV6_HEADER_LEN);
        }
    }
}
