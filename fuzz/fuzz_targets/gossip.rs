//! Gossip datagrams, messages and records. The harness is `control_plane::fuzzing::gossip`, which the crate's tests
//! also run over `fuzz/corpus/gossip/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| control_plane::fuzzing::gossip(data));
