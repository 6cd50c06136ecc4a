use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0x42, 0, 0, 0, n])
}

fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

fn flood_ports(v: &Verdict<'_>) -> Vec<PortId> {
    match v {
        Verdict::Flood(f) => f.ports().collect(),
        other => panic!("expected flood, got {other:?}"),
    }
}

struct Fixture {
    sw: Switch,
    t0: Instant,
    a: PortId,
    b: PortId,
    c: PortId,
    x: PortId,
}

/// Network 1 has ports a, b, c; network 2 has port x.
fn fixture() -> Fixture {
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 42);
    sw.add_network(NetworkId(1), NetworkConfig::default()).unwrap();
    sw.add_network(NetworkId(2), NetworkConfig::default()).unwrap();
    let a = sw.add_port(PortConfig::new(NetworkId(1))).unwrap();
    let b = sw.add_port(PortConfig::new(NetworkId(1))).unwrap();
    let c = sw.add_port(PortConfig::new(NetworkId(1))).unwrap();
    let x = sw.add_port(PortConfig::new(NetworkId(2))).unwrap();
    Fixture { sw, t0, a, b, c, x }
}

#[test]
fn unknown_unicast_floods_within_the_network_then_learned_goes_to_one_port() {
    let Fixture {
        mut sw, t0, a, b, c, ..
    } = fixture();
    let v = sw.process(t0, a, &frame(mac(2), mac(1)));
    assert_eq!(flood_ports(&v), vec![b, c]);
    assert_eq!(sw.process(t0, b, &frame(mac(1), mac(2))), Verdict::Forward(a));
    assert_eq!(sw.process(t0, a, &frame(mac(2), mac(1))), Verdict::Forward(b));
    assert_eq!(sw.counters(a).unwrap().rx_packets, 2);
    assert_eq!(sw.learned_on(a), Some(1));
}

#[test]
fn broadcast_never_reaches_another_network() {
    let Fixture { mut sw, t0, a, b, c, x } = fixture();
    assert_eq!(
        flood_ports(&sw.process(t0, a, &frame(MacAddr::BROADCAST, mac(1)))),
        vec![b, c]
    );
    let v = sw.process(t0, x, &frame(MacAddr::BROADCAST, mac(9)));
    assert_eq!(flood_ports(&v), Vec::<PortId>::new());
    // The same address in the other network is a different entry.
    let v = sw.process(t0, x, &frame(mac(1), mac(9)));
    assert_eq!(flood_ports(&v), Vec::<PortId>::new());
}

#[test]
fn a_moved_mac_moves_at_once() {
    let Fixture {
        mut sw, t0, a, b, c, ..
    } = fixture();
    sw.process(t0, a, &frame(MacAddr::BROADCAST, mac(1)));
    assert_eq!(sw.process(t0, c, &frame(mac(1), mac(3))), Verdict::Forward(a));
    sw.process(t0, b, &frame(MacAddr::BROADCAST, mac(1)));
    assert_eq!(sw.process(t0, c, &frame(mac(1), mac(3))), Verdict::Forward(b));
    assert_eq!((sw.learned_on(a), sw.learned_on(b)), (Some(0), Some(1)));
}

#[test]
fn learned_entries_age_per_network() {
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 1);
    sw.add_network(
        NetworkId(1),
        NetworkConfig {
            aging: Duration::from_secs(10),
        },
    )
    .unwrap();
    let a = sw.add_port(PortConfig::new(NetworkId(1))).unwrap();
    let b = sw.add_port(PortConfig::new(NetworkId(1))).unwrap();
    sw.process(t0, a, &frame(MacAddr::BROADCAST, mac(1)));
    assert_eq!(
        sw.process(t0 + Duration::from_secs(10), b, &frame(mac(1), mac(2))),
        Verdict::Forward(a)
    );
    // b's address was refreshed at 10 s; a's was last seen at 0 s.
    let later = t0 + Duration::from_secs(11);
    assert!(matches!(
        sw.process(later, b, &frame(mac(1), mac(2))),
        Verdict::Flood(_)
    ));
    let next = sw.expire(later).unwrap();
    assert_eq!(sw.fdb().count(), 1, "only b's address is left");
    assert_eq!(sw.learned_on(a), Some(0));
    assert_eq!(next, t0 + Duration::from_secs(21));
    assert_eq!(sw.expire(t0 + Duration::from_secs(22)), None);
}

#[test]
fn static_entries_stay_and_spoofed_sources_are_dropped() {
    let Fixture { mut sw, t0, a, b, .. } = fixture();
    sw.add_static(t0, NetworkId(1), mac(7), a).unwrap();
    let later = t0 + Duration::from_secs(100_000);
    assert_eq!(sw.process(later, b, &frame(mac(7), mac(2))), Verdict::Forward(a));
    assert_eq!(
        sw.process(later, b, &frame(mac(2), mac(7))),
        Verdict::Drop(DropReason::SourceMacConflict)
    );
    assert_eq!(sw.counters(b).unwrap().drops(DropReason::SourceMacConflict), 1);
    assert_eq!(sw.process(later, a, &frame(mac(2), mac(7))), Verdict::Forward(b));
    assert_eq!(
        sw.add_static(t0, NetworkId(2), mac(8), a),
        Err(SwitchError::WrongNetwork(a, NetworkId(2)))
    );
}

#[test]
fn learning_stops_at_the_port_limit_but_frames_still_flow() {
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 1);
    sw.add_network(NetworkId(1), NetworkConfig::default()).unwrap();
    let a = sw
        .add_port(PortConfig {
            learn_limit: 3,
            ..PortConfig::new(NetworkId(1))
        })
        .unwrap();
    let b = sw.add_port(PortConfig::new(NetworkId(1))).unwrap();
    for n in 1..=10 {
        let v = sw.process(t0, a, &frame(MacAddr::BROADCAST, mac(n)));
        assert_eq!(flood_ports(&v), vec![b]);
    }
    assert_eq!(sw.learned_on(a), Some(3));
    assert_eq!(sw.counters(a).unwrap().learn_refused, 7);
    assert_eq!(sw.fdb().count(), 3);
}

#[test]
fn hairpin_and_bad_frames_are_dropped_with_reasons() {
    let Fixture { mut sw, t0, a, .. } = fixture();
    sw.process(t0, a, &frame(MacAddr::BROADCAST, mac(1)));
    sw.process(t0, a, &frame(MacAddr::BROADCAST, mac(2)));
    assert_eq!(
        sw.process(t0, a, &frame(mac(2), mac(1))),
        Verdict::Drop(DropReason::Hairpin)
    );
    assert_eq!(sw.process(t0, a, &[0u8; 10]), Verdict::Drop(DropReason::TooShort));
    assert_eq!(
        sw.process(t0, a, &vec![2u8; 2000]),
        Verdict::Drop(DropReason::Oversized)
    );
    assert_eq!(
        sw.process(t0, PortId(99), &frame(mac(2), mac(1))),
        Verdict::Drop(DropReason::UnknownPort)
    );
    let c = sw.counters(a).unwrap();
    assert_eq!(
        (
            c.drops(DropReason::Hairpin),
            c.drops(DropReason::TooShort),
            c.drops(DropReason::Oversized)
        ),
        (1, 1, 1)
    );
    assert_eq!(c.rx_packets, 5);
}

#[test]
fn removing_a_port_forgets_its_addresses_and_frees_its_id() {
    let Fixture {
        mut sw, t0, a, b, c, ..
    } = fixture();
    sw.process(t0, a, &frame(MacAddr::BROADCAST, mac(1)));
    sw.remove_port(a).unwrap();
    assert_eq!(flood_ports(&sw.process(t0, b, &frame(mac(1), mac(2)))), vec![c]);
    assert_eq!(
        sw.remove_network(NetworkId(1)),
        Err(SwitchError::NetworkHasPorts(NetworkId(1), 2))
    );
    assert_eq!(sw.add_port(PortConfig::new(NetworkId(1))).unwrap(), a);
    assert_eq!(sw.remove_port(PortId(77)), Err(SwitchError::UnknownPort(PortId(77))));
}

#[test]
fn split_horizon_keeps_vxlan_peers_apart() {
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 3);
    sw.add_network(NetworkId(1), NetworkConfig::default()).unwrap();
    let local = sw.add_port(PortConfig::new(NetworkId(1))).unwrap();
    let peer = PortConfig {
        split_horizon_group: 1,
        ..PortConfig::new(NetworkId(1))
    };
    let (va, vb) = (sw.add_port(peer).unwrap(), sw.add_port(peer).unwrap());
    // A broadcast from one peer reaches the local port only; one from the local port reaches both.
    assert_eq!(
        flood_ports(&sw.process(t0, va, &frame(MacAddr::BROADCAST, mac(1)))),
        vec![local]
    );
    assert_eq!(
        flood_ports(&sw.process(t0, local, &frame(MacAddr::BROADCAST, mac(3)))),
        vec![va, vb]
    );
    // A known address behind another peer is not reached from a peer.
    sw.process(t0, vb, &frame(MacAddr::BROADCAST, mac(2)));
    assert_eq!(
        sw.process(t0, va, &frame(mac(2), mac(1))),
        Verdict::Drop(DropReason::SplitHorizon)
    );
    assert_eq!(sw.process(t0, local, &frame(mac(2), mac(3))), Verdict::Forward(vb));
    assert_eq!(sw.counters(va).unwrap().drops(DropReason::SplitHorizon), 1);
}

#[test]
fn isolated_ports_reach_the_others_but_not_each_other() {
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 5);
    sw.add_network(NetworkId(1), NetworkConfig::default()).unwrap();
    let gateway = sw.add_port(PortConfig::new(NetworkId(1))).unwrap();
    let sandbox = PortConfig {
        isolated: true,
        ..PortConfig::new(NetworkId(1))
    };
    let (a, b) = (sw.add_port(sandbox).unwrap(), sw.add_port(sandbox).unwrap());
    // A's broadcast (ARP for anyone) reaches the gateway only; the gateway's reaches both.
    assert_eq!(
        flood_ports(&sw.process(t0, a, &frame(MacAddr::BROADCAST, mac(1)))),
        vec![gateway]
    );
    assert_eq!(
        flood_ports(&sw.process(t0, b, &frame(MacAddr::BROADCAST, mac(2)))),
        vec![gateway]
    );
    assert_eq!(
        flood_ports(&sw.process(t0, gateway, &frame(MacAddr::BROADCAST, mac(9)))),
        vec![a, b]
    );
    // Known unicast: to and from the gateway, never between the two.
    assert_eq!(sw.process(t0, a, &frame(mac(9), mac(1))), Verdict::Forward(gateway));
    assert_eq!(sw.process(t0, gateway, &frame(mac(2), mac(9))), Verdict::Forward(b));
    assert_eq!(
        sw.process(t0, a, &frame(mac(2), mac(1))),
        Verdict::Drop(DropReason::IsolatedPort)
    );
    assert_eq!(sw.counters(a).unwrap().drops(DropReason::IsolatedPort), 1);
    let t = sw.trace(t0, b, &frame(mac(1), mac(2)));
    assert_eq!(t.verdict, TraceVerdict::Drop(DropReason::IsolatedPort));
    assert!(t.stages.last().unwrap().decision.contains("both isolated"), "{t:?}");
}

// Property: against a model of learning switches (one per network), every verdict sends a
// frame to exactly the model's port, or floods to exactly the other ports of its network;
// never from one isolated port to another.
#[derive(Debug, Clone)]
struct Step {
    port: usize,
    src: u8,
    dst: Option<u8>,
}

fn step(nports: usize) -> impl Strategy<Value = Step> {
    (0..nports, 1..12u8, proptest::option::weighted(0.8, 1..12u8)).prop_map(|(port, src, dst)| Step { port, src, dst })
}

proptest! {
    #[test]
    fn verdicts_agree_with_a_model_and_never_cross_networks(
        nets in proptest::collection::vec(0..3u32, 2..8),
        isolated in proptest::collection::vec(any::<bool>(), 8),
        steps in proptest::collection::vec(step(8), 0..300),
    ) {
        let t0 = Instant::now();
        let mut sw = Switch::new(t0, 9);
        for n in 0..3 {
            sw.add_network(NetworkId(n), NetworkConfig::default()).unwrap();
        }
        let ports: Vec<PortId> = nets
            .iter()
            .zip(&isolated)
            .map(|(n, iso)| sw.add_port(PortConfig { isolated: *iso, ..PortConfig::new(NetworkId(*n)) }).unwrap())
            .collect();
        let apart = |i: usize, j: usize| isolated[i] && isolated[j];
        let mut model: HashMap<(u32, u8), usize> = HashMap::new();
        for s in steps {
            let i = s.port % ports.len();
            let net = nets[i];
            let dst = s.dst.map_or(MacAddr::BROADCAST, mac);
            let v = sw.process(t0, ports[i], &frame(dst, mac(s.src)));
            model.insert((net, s.src), i);
            let expected_out = s.dst.and_then(|d| model.get(&(net, d)).copied());
            match (v, expected_out) {
                (Verdict::Forward(p), Some(j)) if apart(i, j) => prop_assert!(false, "{:?} reached isolated {:?}", i, p),
                (Verdict::Drop(DropReason::Hairpin), Some(j)) => prop_assert_eq!(j, i),
                (Verdict::Drop(DropReason::IsolatedPort), Some(j)) => prop_assert!(j != i && apart(i, j)),
                (Verdict::Forward(p), Some(j)) => prop_assert_eq!(p, ports[j]),
                (Verdict::Flood(f), None) => {
                    let got: Vec<PortId> = f.ports().collect();
                    let want: Vec<PortId> = (0..ports.len())
                        .filter(|j| *j != i && nets[*j] == net && !apart(i, *j))
                        .map(|j| ports[j])
                        .collect();
                    prop_assert_eq!(got, want);
                }
                (v, e) => prop_assert!(false, "verdict {:?} but model says {:?}", v, e),
            }
        }
    }
}

proptest! {
    // No frame a container sends can panic the switch, and whatever it decides is counted.
    #[test]
    fn arbitrary_bytes_never_panic_and_drops_are_counted(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..200),
    ) {
        let Fixture { mut sw, t0, a, .. } = fixture();
        let mut dropped = 0u64;
        for f in &frames {
            if let Verdict::Drop(_) = sw.process(t0, a, f) {
                dropped += 1;
            }
        }
        let c = sw.counters(a).unwrap();
        prop_assert_eq!(c.rx_packets, frames.len() as u64);
        prop_assert_eq!(c.total_drops(), dropped);
    }
}

/// One step of the trace property: a frame (from/to a small set of addresses, 0 meaning
/// multicast) on a port, after time passes and maybe a static entry is written.
#[derive(Debug, Clone)]
struct TraceStep {
    port: usize,
    src: u8,
    dst: u8,
    advance_s: u64,
    make_static: bool,
}

fn trace_step() -> impl Strategy<Value = TraceStep> {
    (
        0..6usize,
        0..6u8,
        0..6u8,
        prop_oneof![Just(0u64), 0..400u64],
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(port, src, dst, advance_s, make_static)| TraceStep {
            port,
            src,
            dst,
            advance_s,
            make_static,
        })
}

fn addr(n: u8) -> MacAddr {
    if n == 0 {
        MacAddr([0x01, 0, 0x5e, 0, 0, 1])
    } else {
        mac(n)
    }
}

proptest! {
    // A trace gives exactly the verdict processing the same frame gives, and changes nothing:
    // with learning limits, split-horizon groups, static entries, aging, hairpins and spoofing.
    #[test]
    fn traces_predict_verdicts_and_change_nothing(
        limits in proptest::collection::vec(1..4u32, 6),
        groups in proptest::collection::vec(0..2u8, 6),
        steps in proptest::collection::vec(trace_step(), 0..200),
        junk in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let t0 = Instant::now();
        let mut sw = Switch::new(t0, 5);
        for n in 0..2 {
            sw.add_network(NetworkId(n), NetworkConfig { aging: Duration::from_secs(300) }).unwrap();
        }
        let ports: Vec<PortId> = (0..6)
            .map(|i| {
                let cfg = PortConfig {
                    network: NetworkId((i % 2) as u32),
                    max_frame_len: 1514,
                    learn_limit: limits[i],
                    split_horizon_group: groups[i],
                    isolated: false,
                    guard: None,
                    locked: false,
                };
                sw.add_port(cfg).unwrap()
            })
            .collect();
        let mut now = t0;
        let counters = |sw: &Switch| ports.iter().map(|p| (sw.counters(*p).cloned(), sw.learned_on(*p))).collect::<Vec<_>>();
        let table = |sw: &Switch| { let mut v: Vec<_> = sw.fdb().collect(); v.sort_by_key(|e| (e.network.0, e.mac.0)); v };
        for s in steps {
            now += Duration::from_secs(s.advance_s);
            let p = ports[s.port];
            if s.make_static && s.src != 0 {
                let _ = sw.add_static(now, NetworkId((s.port % 2) as u32), addr(s.src), p);
            }
            let f = frame(addr(s.dst), addr(s.src));
            let (before, fdb) = (counters(&sw), table(&sw));
            let t = sw.trace(now, p, &f);
            prop_assert_eq!(&before, &counters(&sw));
            prop_assert_eq!(&fdb, &table(&sw));
            let v = match sw.process(now, p, &f) {
                Verdict::Forward(o) => TraceVerdict::Forward(o),
                Verdict::Flood(fl) => TraceVerdict::Flood(fl.ports().collect()),
                Verdict::Drop(r) => TraceVerdict::Drop(r),
            };
            prop_assert_eq!(&t.verdict, &v, "{:?}", t.stages);
        }
        let t = sw.trace(now, ports[0], &junk);
        let v = sw.process(now, ports[0], &junk);
        if let Verdict::Drop(r) = v {
            prop_assert_eq!(t.verdict, TraceVerdict::Drop(r));
        }
    }
}

#[test]
fn a_trace_names_each_stage() {
    let Fixture { mut sw, t0, a, b, .. } = fixture();
    sw.add_static(t0, NetworkId(1), mac(2), b).unwrap();
    let t = sw.trace(t0, a, &frame(mac(2), mac(1)));
    let stages: Vec<&str> = t.stages.iter().map(|s| s.stage).collect();
    assert_eq!(stages, ["parse", "learn", "lookup", "isolate", "forward"]);
    assert!(
        t.stages[1].decision.contains("is new: learned on port"),
        "{:?}",
        t.stages[1]
    );
    assert!(
        t.stages[2].decision.ends_with(&format!("is on port {b} (static)")),
        "{:?}",
        t.stages[2]
    );
    assert_eq!(t.verdict, TraceVerdict::Forward(b));
    // Spoofing b's static address from a: the learn stage drops it, and says why.
    let t = sw.trace(t0, a, &frame(mac(1), mac(2)));
    assert_eq!(t.verdict, TraceVerdict::Drop(DropReason::SourceMacConflict));
    assert_eq!(t.stages.last().unwrap().stage, "learn");
    assert!(
        t.stages[1].decision.contains(&format!("static address of port {b}")),
        "{:?}",
        t.stages[1]
    );
    // Nothing was learned by tracing.
    assert!(sw.fdb().all(|e| e.mac != mac(1)));
}
