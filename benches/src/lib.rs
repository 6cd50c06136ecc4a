//! Helpers shared by the benchmarks: a switch pre-loaded with learned addresses and the
//! 64-byte frames that run through it.
#![deny(missing_docs)]

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
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..nframes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
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
