//! Frames per second through the VXLAN steps switchd's dataplane runs per frame, without the
//! syscalls: encapsulation (header written in front of the frame, the outer UDP source port
//! chosen by flow hash) at 64 and 1,450 bytes, and decapsulation (header parsed, the sending
//! peer's port found by (address, VNI), the inner frame through the switch) at 1,000 learned
//! MACs behind 16 peers; and software segmentation of a 64 KB TCP super-frame into MSS-sized
//! frames with their checksums (bytes per second), and the segments joined back into one
//! super-frame for a receiving TAP (bytes per second); and the sealing of a 1,450-byte VXLAN
//! datagram as ESP with AES-256-GCM, and its opening with the anti-replay check (bytes per
//! second).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv4Addr;

use benches::loaded;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use overlay::offload::{cut_tcp, Coalescer, VirtioNetHdr, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4};
use overlay::{flow_hash, Vni, VxlanHeader, VXLAN_HEADER_LEN};
use switch::{PortId, Verdict};

const BATCH: usize = 4096;
/// switchd's layout: a 10-byte virtio-net header, whose last 8 bytes the VXLAN header reuses.
const FRONT: usize = 2 + VXLAN_HEADER_LEN;

/// An IPv4/UDP frame of `len` bytes from flow `i`.
fn udp_frame(i: usize, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[2, 0x42, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0x42, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, (i >> 8) as u8, i as u8]);
    f[34..36].copy_from_slice(&(1024 + (i % 60_000) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&4789u16.to_be_bytes());
    f
}

fn encap(c: &mut Criterion) {
    let mut g = c.benchmark_group("vxlan_encap");
    g.throughput(Throughput::Elements(BATCH as u64));
    let vni = Vni::new(4096).expect("in range");
    for len in [64usize, 1450] {
        let mut packets: Vec<Vec<u8>> = (0..BATCH)
            .map(|i| {
                let mut p = vec![0u8; FRONT];
                p.extend_from_slice(&udp_frame(i, len));
                p
            })
            .collect();
        g.bench_function(format!("{len}B"), |b| {
            b.iter(|| {
                let mut socks = 0usize;
                for p in &mut packets {
                    VxlanHeader { vni }.emit(&mut p[2..FRONT]);
                    socks += flow_hash(&p[FRONT..]) as usize % 16;
                }
                black_box(socks)
            })
        });
    }
    g.finish();
}

fn decap(c: &mut Criterion) {
    let mut g = c.benchmark_group("vxlan_decap_switch");
    g.throughput(Throughput::Elements(BATCH as u64));
    // 1,000 MACs learned behind 16 ports, each port a VXLAN peer.
    let mut l = loaded(1_000, 16, BATCH);
    let vni = Vni::new(4096).expect("in range");
    let peer = |p: PortId| Ipv4Addr::new(192, 0, 2, p.0 as u8 + 1);
    let peers: HashMap<(Ipv4Addr, Vni), PortId> = l.frames.iter().map(|(p, _)| ((peer(*p), vni), *p)).collect();
    let datagrams: Vec<(Ipv4Addr, Vec<u8>)> = l
        .frames
        .iter()
        .map(|(p, f)| {
            let mut d = vec![0u8; VXLAN_HEADER_LEN];
            VxlanHeader { vni }.emit(&mut d);
            d.extend_from_slice(f);
            (peer(*p), d)
        })
        .collect();
    let now = l.now;
    g.bench_function("64B_1000_macs", |b| {
        b.iter(|| {
            let mut out = 0usize;
            for (from, d) in &datagrams {
                let Ok(h) = VxlanHeader::parse(d) else { continue };
                let Some(&port) = peers.get(&(*from, h.vni)) else {
                    continue;
                };
                out += match l.switch.process(now, port, &d[VXLAN_HEADER_LEN..]) {
                    Verdict::Forward(p) => p.0 as usize,
                    Verdict::Flood(fl) => fl.ports().count(),
                    Verdict::Drop(_) => 0,
                };
            }
            black_box(out)
        })
    });
    g.finish();
}

fn segment(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp4_segmentation");
    // Ethernet + IPv4 + TCP headers (54 bytes) and 64,000 bytes of payload.
    let mut frame = udp_frame(0, 54 + 64_000);
    frame[23] = 6;
    frame[16..18].copy_from_slice(&((20 + 20 + 64_000u32) as u16).to_be_bytes());
    frame[46] = 5 << 4;
    let hdr = VirtioNetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1398,
        csum_start: 34,
        csum_offset: 16,
    };
    g.throughput(Throughput::Bytes(frame.len() as u64));
    // The heads of the segments, their checksums summed over the payload, which stays where it
    // is (the sender gathers heads and payload slices into one send).
    let mut heads = Vec::with_capacity(64 * 64);
    g.bench_function("64KB_mss_1398", |b| {
        b.iter(|| {
            heads.clear();
            let s = cut_tcp(&hdr, &frame, VXLAN_HEADER_LEN, &mut heads).expect("a TCP/IPv4 super-frame");
            black_box((s.count, heads.len()))
        })
    });
    g.finish();
    // The way back: the 46 segments, whole, joined again into one super-frame (each segment's
    // checksum verified on the way), as a receiving TAP with offloads takes them.
    let mut g = c.benchmark_group("tcp4_coalescing");
    heads.clear();
    let cut = cut_tcp(&hdr, &frame, 0, &mut heads).expect("a TCP/IPv4 super-frame");
    let segments: Vec<Vec<u8>> = cut.segments(&heads, &frame).map(|(h, p)| [h, p].concat()).collect();
    g.throughput(Throughput::Bytes(frame.len() as u64));
    let mut co = Coalescer::new();
    g.bench_function("46_segments_mss_1398", |b| {
        b.iter(|| {
            for s in &segments {
                assert!(co.add(s), "a segment of the flow");
            }
            black_box(co.take().len())
        })
    });
    g.finish();
}

fn esp(c: &mut Criterion) {
    use overlay::esp::{Opener, Sa, Sealer, KEY_LEN, NEXT_HEADER_UDP};
    let payload = udp_frame(1, 1450);
    let km = [0x42u8; KEY_LEN];
    let mut g = c.benchmark_group("esp_1450");
    g.throughput(Throughput::Bytes((BATCH * payload.len()) as u64));
    let mut sealer = Sealer::new(Sa::new(1, &km));
    let mut out = Vec::with_capacity(1600);
    g.bench_function("seal", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                out.clear();
                sealer
                    .seal(NEXT_HEADER_UDP, &[black_box(&payload[..])], &mut out)
                    .expect("within the SA's life");
            }
        })
    });
    // Opening needs fresh sequence numbers each round: a batch sealed ahead, copied back in.
    let mut s = Sealer::new(Sa::new(2, &km));
    let sealed: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| {
            let mut p = Vec::new();
            s.seal(NEXT_HEADER_UDP, &[&payload[..]], &mut p)
                .expect("within the SA's life");
            p
        })
        .collect();
    let mut bufs = sealed.clone();
    g.bench_function("open", |b| {
        b.iter_batched_ref(
            || Opener::new(Sa::new(2, &km)),
            |opener| {
                for (buf, orig) in bufs.iter_mut().zip(&sealed) {
                    buf.copy_from_slice(orig);
                    black_box(opener.open(buf).expect("authentic and fresh"));
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, encap, decap, segment, esp);
criterion_main!(benches);
