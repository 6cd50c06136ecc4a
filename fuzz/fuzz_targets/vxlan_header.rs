//! Remote UDP payloads into the VXLAN decoder. The harness is `overlay::fuzzing::vxlan_header`, which the crate's tests
//! also run over `fuzz/corpus/vxlan_header/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| overlay::fuzzing::vxlan_header(data));
