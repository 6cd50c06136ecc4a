//! Container frames into the switch: the first byte picks the ingress port, the rest is the frame.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switch::{NetworkConfig, NetworkId, PortConfig, PortId, Switch, Verdict};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut sw = Switch::new(t0, 1);
    sw.add_network(NetworkId(1), NetworkConfig::default()).unwrap();
    sw.add_network(NetworkId(2), NetworkConfig { aging: Duration::from_millis(1) }).unwrap();
    let ports: Vec<PortId> =
        (0..4).map(|i| sw.add_port(PortConfig { learn_limit: 2, ..PortConfig::new(NetworkId(1 + i % 2)) }).unwrap()).collect();
    for (i, chunk) in data.split(|b| *b == 0xa5).enumerate() {
        let Some((sel, frame)) = chunk.split_first() else { continue };
        let ingress = ports[*sel as usize % ports.len()];
        let net = sw.port_network(ingress).unwrap();
        let now = t0 + Duration::from_millis(i as u64);
        match sw.process(now, ingress, frame) {
            Verdict::Forward(p) => assert_eq!(sw.port_network(p), Some(net)),
            Verdict::Flood(f) => {
                let out: Vec<PortId> = f.ports().collect();
                assert!(out.iter().all(|p| *p != ingress && sw.port_network(*p) == Some(net)));
            }
            Verdict::Drop(_) => {}
        }
        if i % 7 == 0 {
            sw.expire(now);
        }
    }
});
