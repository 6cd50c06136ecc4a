//! Frames per second through parse -> (guard) -> learn -> lookup -> isolate -> verdict,
//! 64-byte frames, with 1, 1,000 and 100,000 learned addresses, and between 16 sandbox ports
//! with and without port security; and the MAC table's memory per entry at 1,000,000 entries
//! (printed).

use std::hint::black_box;
use std::time::Instant;

use benches::loaded;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switch::{MacTable, NetworkId, PortId, Verdict};

const BATCH: usize = 4096;

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_64B");
    g.throughput(Throughput::Elements(BATCH as u64));
    for macs in [1usize, 1_000, 100_000] {
        let ports = if macs == 1 { 2 } else { 16 };
        let mut l = loaded(macs, ports, BATCH);
        let now = l.now;
        g.bench_function(format!("{macs}_macs"), |b| {
            b.iter(|| {
                let mut out = 0usize;
                for (port, f) in &l.frames {
                    out += match l.switch.process(now, *port, f) {
                        Verdict::Forward(p) => p.0 as usize,
                        Verdict::Flood(fl) => fl.ports().count(),
                        Verdict::Drop(_) => 0,
                    };
                }
                black_box(out)
            })
        });
    }
    // Sandbox ports: the same forwarding with and without port security's checks.
    for guarded in [false, true] {
        let mut l = benches::sandboxes(16, BATCH, guarded);
        let now = l.now;
        let name = if guarded {
            "16_sandboxes_guarded"
        } else {
            "16_sandboxes_unguarded"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut out = 0usize;
                for (port, f) in &l.frames {
                    if let Verdict::Forward(p) = l.switch.process(now, *port, f) {
                        out += p.0 as usize;
                    }
                }
                black_box(out)
            })
        });
    }
    g.finish();
}

fn memory(c: &mut Criterion) {
    let n = 1_000_000usize;
    let mut t = MacTable::new(Instant::now(), 1);
    for i in 0..n {
        t.upsert_dynamic(NetworkId(1), benches::mac(i), PortId((i % 64) as u32), 0, true);
    }
    let per_entry = t.memory_bytes() as f64 / n as f64;
    println!(
        "mac_table_memory: {n} entries, {} bytes, {per_entry:.1} bytes/entry (goal <= 64)",
        t.memory_bytes()
    );
    c.bench_function("mac_table_lookup_1M", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(t.lookup(NetworkId(1), benches::mac(i), 0, std::time::Duration::from_secs(300)))
        })
    });
}

criterion_group!(benches, pipeline, memory);
criterion_main!(benches);
