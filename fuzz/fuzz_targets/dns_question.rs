//! DNS questions to a network's embedded DNS. The harness is `control_plane::fuzzing::dns_question`, which the crate's tests
//! also run over `fuzz/corpus/dns_question/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| control_plane::fuzzing::dns_question(data));
