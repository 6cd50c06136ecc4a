//! Sealed tunnels' datagrams from the underlay, and what is sealed opening once and only
//! unaltered. The harness is `overlay::fuzzing::esp`, which the crate's tests also run over
//! `fuzz/corpus/esp/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| overlay::fuzzing::esp(data));
