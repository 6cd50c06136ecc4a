//! The benchmarks: helpers shared by the criterion benchmarks (a switch pre-loaded with learned
//! addresses and the 64-byte frames that run through it), and the data plane against its
//! peers in namespaces (`dataplane`, run by `switchsim bench`).
#![deny(missing_docs)]

pub mod dataplane;

use std::time::Instant;

use switch::{MacAddr, NetworkConfig, NetworkId, PortConfig, PortId, Switch};

/// A switch with one network, `ports` ports and `macs` addresses learned round-robin on them,
/// plus 64-byte unicast frames between learned addresses (each frame's destination is on
/// another port than its source, so every frame is forwarded). With a single learned address
/// the frames come from it to an unknown unicast address and are flooded to the other port.
pub struct Loaded {
    /// The switch.
    pub switch: Switch,
    /// Frames with their ingress port.
    pub frames: Vec<(PortId, [u8; 64])>,
    /// The epoch the switch was built at.
    pub now: Instant,
}

/// The seed of the frames' pattern.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The next value of a xorshift sequence in `x` (the frames' fixed pattern).
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// The address of learned host `i`.
pub fn mac(i: usize) -> MacAddr {
    let b = (i as u32).to_be_bytes();
    MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]])
}

/// A 64-byte IPv4 frame from `src` to `dst`.
pub fn frame(dst: MacAddr, src: MacAddr) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

/// Builds a [`Loaded`] switch. `nframes` frames are generated from a fixed pattern.
pub fn loaded(macs: usize, ports: usize, nframes: usize) -> Loaded {
    let now = Instant::now();
    let mut sw = Switch::new(now, 0x5eed);
    let net = NetworkId(1);
    sw.add_network(net, NetworkConfig::default()).expect("fresh switch");
    let limit = u32::try_from(macs / ports + 1).unwrap_or(u32::MAX);
    let ids: Vec<PortId> = (0..ports)
        .map(|_| {
            sw.add_port(PortConfig {
                learn_limit: limit,
                ..PortConfig::new(net)
            })
            .expect("network exists")
        })
        .collect();
    for i in 0..macs {
        sw.process(now, ids[i % ports], &frame(MacAddr::BROADCAST, mac(i)));
    }
    let mut frames = Vec::with_capacity(nframes);
    let mut x: u64 = SEED;
    for _ in 0..nframes {
        let x = xorshift(&mut x);
        let s = (x as usize) % macs;
        let dst = if macs == 1 {
            mac(usize::MAX)
        } else {
            let mut d = ((x >> 32) as usize) % macs;
            if d % ports == s % ports {
                d = (d + 1) % macs;
            }
            mac(d)
        };
        frames.push((ids[s % ports], frame(dst, mac(s))));
    }
    Loaded {
        switch: sw,
        frames,
        now,
    }
}

/// A switch with one network of `ports` sandbox ports, each holding one endpoint (a static
/// MAC and an IPv4 address), guarded by port security when `guarded`; `nframes` 64-byte IPv4
/// frames from endpoints to endpoints of other ports, each sent as its own endpoint, so every
/// frame passes the guard and is forwarded.
pub fn sandboxes(ports: usize, nframes: usize, guarded: bool) -> Loaded {
    let now = Instant::now();
    let mut sw = Switch::new(now, 0x5eed);
    let net = NetworkId(1);
    sw.add_network(net, NetworkConfig::default()).expect("fresh switch");
    let ip = |i: usize| std::net::Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8);
    let ids: Vec<PortId> = (0..ports)
        .map(|i| {
            let guard = guarded.then(|| switch::Guard::new(mac(i), Some(ip(i)), 1500));
            let p = sw
                .add_port(PortConfig {
                    guard,
                    ..PortConfig::new(net)
                })
                .expect("network exists");
            sw.add_static(now, net, mac(i), p).expect("a fresh address");
            p
        })
        .collect();
    let mut frames = Vec::with_capacity(nframes);
    let mut x: u64 = SEED;
    for _ in 0..nframes {
        let x = xorshift(&mut x);
        let s = (x as usize) % ports;
        let d = (s + 1 + ((x >> 32) as usize) % (ports - 1)) % ports;
        let mut f = frame(mac(d), mac(s));
        f[14] = 0x45;
        f[16..18].copy_from_slice(&50u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&ip(s).octets());
        f[30..34].copy_from_slice(&ip(d).octets());
        frames.push((ids[s], f));
    }
    Loaded {
        switch: sw,
        frames,
        now,
    }
}
