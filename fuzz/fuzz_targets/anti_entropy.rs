//! What a peer sends in an anti-entropy exchange. The harness is
//! `control_plane::fuzzing::anti_entropy`, which the workspace's tests also run over
//! `fuzz/corpus/anti_entropy/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| control_plane::fuzzing::anti_entropy(data));
