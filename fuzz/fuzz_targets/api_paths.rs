//! API request lines: paths and capture queries. The harness is
//! `control_plane::fuzzing::api_paths`, which the workspace's tests also run over
//! `fuzz/corpus/api_paths/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| control_plane::fuzzing::api_paths(data));
