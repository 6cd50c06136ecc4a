//! Port security, MAC ownership and storm control, against models.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const NET: NetworkId = NetworkId(1);

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0x42, 10, 0, 0, n])
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

/// A frame a sandbox might write: any source, and for ARP and IPv4 any sender address.
#[derive(Debug, Clone)]
struct Forged {
    src: u8,
    kind: u8,
    sender_mac: u8,
    sender_ip: u8,
    udp: Option<(u16, u16)>,
    cut: Option<usize>,
}

fn forged() -> impl Strategy<Value = Forged> {
    (
        1..5u8,
        0..4u8,
        1..5u8,
        0..5u8,
        proptest::option::of(prop_oneof![
            Just((68u16, 67u16)),
            Just((67, 68)),
            Just((5353, 53)),
            any::<(u16, u16)>()
        ]),
        proptest::option::weighted(0.1, 0..60usize),
    )
        .prop_map(|(src, kind, sender_mac, sender_ip, udp, cut)| Forged {
            src,
            kind,
            sender_mac,
            sender_ip,
            udp,
            cut,
        })
}

impl Forged {
    fn bytes(&self) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac(self.src).0);
        let spa = if self.sender_ip == 0 {
            Ipv4Addr::UNSPECIFIED
        } else {
            ip(self.sender_ip)
        };
        match self.kind {
            0 => {
                f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
                f.extend_from_slice(&mac(self.sender_mac).0);
                f.extend_from_slice(&spa.octets());
                f.extend_from_slice(&[0; 6]);
                f.extend_from_slice(&ip(1).octets());
            }
            1 => {
                let protocol = if self.udp.is_some() { 17 } else { 1 };
                f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, protocol, 0, 0]);
                f.extend_from_slice(&spa.octets());
                f.extend_from_slice(&ip(1).octets());
                let (s, d) = self.udp.unwrap_or((0x0800, 0));
                f.extend_from_slice(&s.to_be_bytes());
                f.extend_from_slice(&d.to_be_bytes());
                f.extend_from_slice(&[0, 8, 0, 0]);
            }
            2 => {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 255]);
                f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, self.sender_ip]);
                f.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
                f.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
            }
            _ => {
                f.extend_from_slice(&[0x88, 0xcc]);
                f.extend_from_slice(&[0; 46]);
            }
        }
        if let Some(n) = self.cut {
            f.truncate(n);
        }
        f
    }
}

/// Whether a frame is one the endpoint (`n`: MAC n, address n) may send, read with the
/// model's own offsets rather than the switch's views.
fn sent_as_endpoint(f: &[u8], n: u8) -> bool {
    if f.len() < 14 || f[6..12] != mac(n).0 {
        return false;
    }
    match [f[12], f[13]] {
        [0x08, 0x06] => f.len() >= 42 && f[22..28] == mac(n).0 && (f[28..32] == ip(n).octets() || f[28..32] == [0; 4]),
        [0x08, 0x00] => {
            if f.len() < 34 {
                return false;
            }
            let ports = (f[23] == 17 && f.len() >= 42).then(|| &f[34..38]);
            if ports.is_some_and(|p| p[0..2] == [0, 67]) {
                return false;
            }
            f[26..30] == ip(n).octets() || (f[26..30] == [0; 4] && ports == Some(&[0, 68, 0, 67][..]))
        }
        [0x86, 0xdd] => false,
        _ => true,
    }
}

fn guarded_switch(t0: Instant) -> (Switch, Vec<PortId>) {
    let mut sw = Switch::new(t0, 3);
    sw.add_network(NET, NetworkConfig::default()).unwrap();
    let mut ports = Vec::new();
    for n in 2..4u8 {
        let mut cfg = PortConfig::new(NET);
        cfg.guard = Some(Guard::new(mac(n), Some(ip(n)), 1500));
        let p = sw.add_port(cfg).unwrap();
        sw.add_static(t0, NET, mac(n), p).unwrap();
        ports.push(p);
    }
    // The gateway: the host's own port, unguarded, holding MAC 1.
    let g = sw.add_port(PortConfig::new(NET)).unwrap();
    sw.add_static(t0, NET, mac(1), g).unwrap();
    ports.push(g);
    (sw, ports)
}

proptest! {
    /// No verdict ever forwards or floods a frame from a guarded port whose sources are not
    /// the port's endpoint's.
    #[test]
    fn a_guarded_port_only_ever_sends_as_its_endpoint(frames in proptest::collection::vec((0..2usize, forged()), 1..200)) {
        let t0 = Instant::now();
        let (mut sw, ports) = guarded_switch(t0);
        for (i, f) in frames {
            let bytes = f.bytes();
            let v = sw.process(t0, ports[i], &bytes);
            let owner = 2 + i as u8;
            if !matches!(v, Verdict::Drop(_)) {
                prop_assert!(sent_as_endpoint(&bytes, owner), "{:?} passed from port {}: {:?}", f, i, v);
            }
        }
        // The statics of the endpoints and the gateway are where they were put.
        for (n, p) in [(1u8, ports[2]), (2, ports[0]), (3, ports[1])] {
            let e = sw.fdb().find(|e| e.mac == mac(n)).unwrap();
            prop_assert!(e.is_static && e.port == p);
        }
    }
}

/// One change to the table: a static entry, a frame, or a removal.
#[derive(Debug, Clone)]
enum Op {
    Static { port: usize, mac: u8 },
    Frame { port: usize, src: u8 },
    Remove { mac: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 1..6u8).prop_map(|(port, mac)| Op::Static { port, mac }),
        (0..4usize, 1..6u8).prop_map(|(port, src)| Op::Frame { port, src }),
        (1..6u8).prop_map(|mac| Op::Remove { mac }),
    ]
}

proptest! {
    /// No static entry ever moves: learning leaves it, another port's `add_static` is refused
    /// naming the owner, and only a removal frees the address.
    #[test]
    fn no_static_entry_ever_moves(ops in proptest::collection::vec(op(), 1..200)) {
        let t0 = Instant::now();
        let mut sw = Switch::new(t0, 5);
        sw.add_network(NET, NetworkConfig::default()).unwrap();
        let ports: Vec<PortId> = (0..4).map(|_| sw.add_port(PortConfig::new(NET)).unwrap()).collect();
        let mut statics: HashMap<u8, usize> = HashMap::new();
        for (k, o) in ops.into_iter().enumerate() {
            let now = t0 + Duration::from_millis(k as u64);
            match o {
                Op::Static { port, mac: m } => {
                    let r = sw.add_static(now, NET, mac(m), ports[port]);
                    match statics.get(&m) {
                        Some(&owner) if owner != port => prop_assert_eq!(
                            r,
                            Err(SwitchError::MacTaken { mac: mac(m), network: NET, owner: ports[owner] })
                        ),
                        _ => {
                            prop_assert_eq!(r, Ok(()));
                            statics.insert(m, port);
                        }
                    }
                }
                Op::Frame { port, src } => {
                    let mut f = vec![0xff; 6];
                    f.extend_from_slice(&mac(src).0);
                    f.extend_from_slice(&[0x88, 0xb5]);
                    f.resize(60, 0);
                    let v = sw.process(now, ports[port], &f);
                    if statics.get(&src).is_some_and(|&o| o != port) {
                        prop_assert_eq!(v, Verdict::Drop(DropReason::SourceMacConflict));
                    }
                }
                Op::Remove { mac: m } => {
                    sw.remove_mac(NET, mac(m));
                    statics.remove(&m);
                }
            }
            for (&m, &owner) in &statics {
                let e = sw.fdb().find(|e| e.mac == mac(m));
                prop_assert!(e.is_some_and(|e| e.is_static && e.port == ports[owner]), "{m} moved: {e:?}");
            }
        }
    }
}

#[test]
fn a_static_entry_outlives_a_refused_claim() {
    let t0 = Instant::now();
    let (mut sw, ports) = guarded_switch(t0);
    let (a, gw) = (ports[0], ports[2]);
    assert_eq!(
        sw.add_static(t0, NET, mac(1), a),
        Err(SwitchError::MacTaken {
            mac: mac(1),
            network: NET,
            owner: gw
        })
    );
    sw.remove_port(a).unwrap();
    let e = sw.fdb().find(|e| e.mac == mac(1)).unwrap();
    assert!(e.is_static && e.port == gw, "{e:?}");
}

#[test]
fn storm_control_limits_floods_but_not_unicast() {
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 3);
    sw.add_network(NET, NetworkConfig::default()).unwrap();
    let mut cfg = PortConfig::new(NET);
    let mut guard = Guard::new(mac(2), Some(ip(2)), 1500);
    guard.bum_pps = 10;
    cfg.guard = Some(guard);
    let a = sw.add_port(cfg).unwrap();
    let b = sw.add_port(PortConfig::new(NET)).unwrap();
    sw.add_static(t0, NET, mac(3), b).unwrap();
    let arp = |dst: MacAddr| {
        let mut f = dst.0.to_vec();
        f.extend_from_slice(&mac(2).0);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&mac(2).0);
        f.extend_from_slice(&ip(2).octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&ip(3).octets());
        f
    };
    for _ in 0..10 {
        assert!(matches!(sw.process(t0, a, &arp(MacAddr::BROADCAST)), Verdict::Flood(_)));
    }
    assert_eq!(
        sw.process(t0, a, &arp(MacAddr::BROADCAST)),
        Verdict::Drop(DropReason::StormControl)
    );
    assert_eq!(
        sw.process(t0, a, &arp(mac(3))),
        Verdict::Forward(b),
        "known unicast is not limited"
    );
    let later = t0 + Duration::from_millis(100);
    assert!(matches!(
        sw.process(later, a, &arp(MacAddr::BROADCAST)),
        Verdict::Flood(_)
    ));
    assert_eq!(sw.counters(a).unwrap().drops(DropReason::StormControl), 1);
}

#[test]
fn a_trace_shows_the_guard() {
    let t0 = Instant::now();
    let (sw, ports) = guarded_switch(t0);
    let ok = Forged {
        src: 2,
        kind: 1,
        sender_mac: 2,
        sender_ip: 2,
        udp: None,
        cut: None,
    };
    let t = sw.trace(t0, ports[0], &ok.bytes());
    let stages: Vec<&str> = t.stages.iter().map(|s| s.stage).collect();
    assert_eq!(
        stages,
        ["parse", "guard", "learn", "lookup", "isolate", "forward"],
        "{t:?}"
    );
    let spoof = Forged { sender_ip: 3, ..ok };
    let t = sw.trace(t0, ports[0], &spoof.bytes());
    assert_eq!(t.verdict, TraceVerdict::Drop(DropReason::IpSpoof));
    assert!(
        t.stages[1].decision.contains("not the endpoint's address (10.0.0.2)"),
        "{t:?}"
    );
}

#[test]
fn a_locked_port_admits_only_sources_pinned_to_it() {
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 1);
    sw.add_network(
        NET,
        NetworkConfig {
            aging: Duration::from_secs(300),
        },
    )
    .unwrap();
    let local = sw.add_port(PortConfig::new(NET)).unwrap();
    let peer = sw
        .add_port(PortConfig {
            split_horizon_group: 1,
            isolated: false,
            locked: true,
            ..PortConfig::new(NET)
        })
        .unwrap();
    let other = sw
        .add_port(PortConfig {
            split_horizon_group: 1,
            isolated: false,
            locked: true,
            ..PortConfig::new(NET)
        })
        .unwrap();
    sw.add_static(t0, NET, mac(7), peer).unwrap();
    sw.add_static(t0, NET, mac(8), other).unwrap();
    let frame = |src: MacAddr| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(64, 0);
        f
    };
    // A new address, and one pinned to another peer: dropped, counted, not learned.
    for src in [mac(9), mac(8)] {
        assert!(matches!(
            sw.process(t0, peer, &frame(src)),
            Verdict::Drop(DropReason::UnpinnedSource)
        ));
    }
    assert_eq!(sw.counters(peer).unwrap().drops(DropReason::UnpinnedSource), 2);
    assert_eq!(sw.learned_on(peer), Some(0));
    assert!(sw.fdb().all(|e| e.mac != mac(9)));
    let t = sw.trace(t0, peer, &frame(mac(9)));
    assert_eq!(t.verdict, TraceVerdict::Drop(DropReason::UnpinnedSource), "{t:?}");
    // The pinned one goes on, to the local port and not to the other peer.
    match sw.process(t0, peer, &frame(mac(7))) {
        Verdict::Flood(f) => assert_eq!(f.ports().collect::<Vec<_>>(), [local]),
        v => panic!("{v:?}"),
    }
    // An unlocked port still learns.
    assert!(!matches!(sw.process(t0, local, &frame(mac(9))), Verdict::Drop(_)));
    assert_eq!(sw.learned_on(local), Some(1));
}
