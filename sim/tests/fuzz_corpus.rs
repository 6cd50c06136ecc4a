//! The fuzz targets' harnesses as ordinary tests: every input of the committed corpus
//! (`fuzz/corpus/<target>/`, seeds and what campaigns kept) and a batch of seeded random
//! inputs through the same function the libFuzzer target calls (`fuzz/fuzz_targets/`).
//! A harness panics on any input that breaks what it asserts.

use std::path::PathBuf;

/// Runs `harness` over the corpus of `target`, then over `random` inputs of up to `max_len`
/// bytes from a seed of the target's name. Returns how many corpus inputs there were.
fn replay(target: &str, random: usize, max_len: usize, harness: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        harness(&bytes);
        inputs += 1;
    }
    assert!(inputs > 0, "{} holds no input", dir.display());
    let mut x = target.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..random {
        let len = (next() as usize) % (max_len + 1);
        let input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        harness(&input);
    }
    inputs
}

#[test]
fn switch_frames() {
    replay("switch_frames", 3000, 400, switch::fuzzing::switch_frames);
}

#[test]
fn vlan_trunk() {
    replay("vlan_trunk", 3000, 64, switch::fuzzing::vlan_trunk);
}

#[test]
fn headers() {
    replay("headers", 3000, 128, switch::fuzzing::headers);
}

#[test]
fn vxlan_header() {
    replay("vxlan_header", 3000, 16, overlay::fuzzing::vxlan_header);
}

#[test]
fn esp() {
    replay("esp", 2000, 1600, overlay::fuzzing::esp);
}

#[test]
fn segmentation() {
    replay("segmentation", 500, 6000, overlay::fuzzing::segmentation);
}

#[test]
fn arp_request() {
    replay("arp_request", 3000, 64, overlay::fuzzing::arp_request);
}

#[test]
fn api_requests() {
    replay("api_requests", 500, 200, control_plane::fuzzing::api_requests);
}

#[test]
fn api_paths() {
    replay("api_paths", 3000, 120, control_plane::fuzzing::api_paths);
}

#[test]
fn dns_question() {
    replay("dns_question", 3000, 80, control_plane::fuzzing::dns_question);
}

#[test]
fn anti_entropy() {
    replay("anti_entropy", 3000, 300, control_plane::fuzzing::anti_entropy);
}

#[test]
fn gossip() {
    replay("gossip", 3000, 200, control_plane::fuzzing::gossip);
}

#[test]
fn specs() {
    replay("specs", 3000, 60, control_plane::fuzzing::specs);
}

#[test]
fn cni_input() {
    replay("cni_input", 3000, 300, switch_client::fuzzing::cni_input);
}
