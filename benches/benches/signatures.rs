//! What checking who wrote a cluster record costs: signing and verifying a message of an
//! endpoint record's size (160 bytes) with a host certificate's key, ECDSA P-256 (the key
//! type of the certificates `switchctl cluster cert` issues) against Ed25519; and applying
//! endpoint records received as bytes, as gossip delivers them, with and without checking
//! their origin's signature against its certificate. Reported per batch of 10,000, the unit
//! the figures are given in.

use std::hint::black_box;

use std::sync::Arc;

use control_plane::cluster::certs::CertAuthority;
use control_plane::cluster::pki;
use control_plane::cluster::records::{Body, EndpointRecord, Record, RecordKey, Records};
use control_plane::ids::Id;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
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

/// Host `name`'s records, signed with a certificate `ca` issued, and that certificate's record.
fn host(ca: &pki::Pem, name: &str) -> (Records, Record) {
    let now = std::time::SystemTime::now();
    let pem = pki::issue_host(ca, name, 1, now).expect("a host certificate");
    let id = pki::verify(&ca.cert, &pem.cert, now).expect("the certificate holds");
    let der = pki::der(&pem.cert, "host.crt").expect("PEM");
    let signer = Signer::from_pem(&pem.key).expect("its key");
    let auth = CertAuthority::new(signer, ca.cert.clone(), name, &der, id.key);
    let mut r = Records::new(name);
    r.set_authority(Arc::new(auth));
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    r.set_now(ms as u64);
    let cert = r.local(RecordKey::Host(name.into()), Some(Body::Cert(der.into())), 1_000);
    (r, cert)
}

fn apply(c: &mut Criterion) {
    let ca = pki::new_ca("bench", std::time::SystemTime::now()).expect("a CA");
    let (mut a, cert_a) = host(&ca, "a");
    let wire: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| {
            let mut id = [7u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let body = EndpointRecord {
                network: Id::from_random([1; 32]),
                host: "a".into(),
                vtep: "10.0.0.1:4789".parse().expect("an address"),
                sandbox: format!("web-{i}"),
                mac: [2, 0x42, 10, 0, (i >> 8) as u8, i as u8],
                ip: std::net::Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8),
                aliases: vec![],
            };
            let r = a.local(
                RecordKey::endpoint("a", Id::from_random(id)),
                Some(Body::Endpoint(Arc::new(body))),
                2_000,
            );
            r.encode()
        })
        .collect();
    let mut g = c.benchmark_group("record_apply_10k");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(10);
    for checked in [false, true] {
        let name = if checked { "signature_checked" } else { "unchecked" };
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let (mut r, _) = host(&ca, "b");
                    if checked {
                        assert!(r.apply(cert_a.clone()));
                    } else {
                        r = Records::new("b");
                    }
                    r
                },
                |mut r| {
                    for w in &wire {
                        assert!(r.apply_wire(black_box(w)).expect("a record").is_some());
                    }
                    r
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, sign, verify, apply);
criterion_main!(benches);
