//! What checking who wrote a cluster record costs: signing and verifying a message of an
//! endpoint record's size (160 bytes) with a host certificate's key, ECDSA P-256 (the key
//! type of the certificates `switchctl cluster cert` issues) against Ed25519. Reported per
//! batch of 10,000, the unit the figures are given in.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switch_pki::sign::Signer;

const BATCH: usize = 10_000;

fn signers() -> [(&'static str, Signer); 2] {
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an Ed25519 key");
    [
        ("p256", Signer::from_pem(&p256.serialize_pem()).expect("P-256 signer")),
        (
            "ed25519",
            Signer::from_pem(&ed.serialize_pem()).expect("Ed25519 signer"),
        ),
    ]
}

fn messages() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let mut m = vec![0x5a; 160];
            m[..8].copy_from_slice(&(i as u64).to_le_bytes());
            m
        })
        .collect()
}

fn sign(c: &mut Criterion) {
    let msgs = messages();
    let mut g = c.benchmark_group("record_sign_10k");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(10);
    for (name, s) in signers() {
        g.bench_function(name, |b| {
            b.iter(|| {
                for m in &msgs {
                    black_box(s.sign(black_box(m)));
                }
            })
        });
    }
    g.finish();
}

fn verify(c: &mut Criterion) {
    let msgs = messages();
    let mut g = c.benchmark_group("record_verify_10k");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(10);
    for (name, s) in signers() {
        let key = s.public_key();
        let sigs: Vec<[u8; 64]> = msgs.iter().map(|m| s.sign(m)).collect();
        g.bench_function(name, |b| {
            b.iter(|| {
                for (m, sig) in msgs.iter().zip(&sigs) {
                    assert!(key.verify(black_box(m), black_box(sig)));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sign, verify);
criterion_main!(benches);
