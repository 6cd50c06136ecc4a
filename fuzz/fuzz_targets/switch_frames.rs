//! Container frames into the switch, through guarded and unguarded ports. The harness is `switch::fuzzing::switch_frames`, which the crate's tests
//! also run over `fuzz/corpus/switch_frames/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switch::fuzzing::switch_frames(data));
