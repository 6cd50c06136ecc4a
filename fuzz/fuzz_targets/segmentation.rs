//! Offloaded super-frames cut into segments and coalesced again. The harness is `overlay::fuzzing::segmentation`, which the crate's tests
//! also run over `fuzz/corpus/segmentation/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| overlay::fuzzing::segmentation(data));
