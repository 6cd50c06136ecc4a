//! What a container runtime hands switch-cni: the CNI_* environment and the configuration on
//! stdin. The harness is `switch_client::fuzzing::cni_input`, which the workspace's tests also run
//! over `fuzz/corpus/cni_input/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| switch_client::fuzzing::cni_input(data));
