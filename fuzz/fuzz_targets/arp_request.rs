//! ARP requests answered by ARP suppression. The harness is `overlay::fuzzing::arp_request`, which the crate's tests
//! also run over `fuzz/corpus/arp_request/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| overlay::fuzzing::arp_request(data));
