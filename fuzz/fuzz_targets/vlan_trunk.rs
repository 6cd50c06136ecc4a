//! Frames on a VLAN trunk uplink. The harness is `switch::fuzzing::vlan_trunk`, which the crate's tests
//! also run over `fuzz/corpus/vlan_trunk/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switch::fuzzing::vlan_trunk(data));
