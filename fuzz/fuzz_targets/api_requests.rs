//! API bodies into model operations. The harness is `control_plane::fuzzing::api_requests`, which the crate's tests
//! also run over `fuzz/corpus/api_requests/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| control_plane::fuzzing::api_requests(data));
