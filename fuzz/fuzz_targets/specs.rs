//! Frame specs and port specs. The harness is `control_plane::fuzzing::specs`, which the crate's tests
//! also run over `fuzz/corpus/specs/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| control_plane::fuzzing::specs(data));
