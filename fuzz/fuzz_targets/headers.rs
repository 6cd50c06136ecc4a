//! ARP, IPv4 and IPv6 headers as containers send them. The harness is `switch::fuzzing::headers`, which the crate's tests
//! also run over `fuzz/corpus/headers/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switch::fuzzing::headers(data));
