//! Remote UDP payloads into the VXLAN decoder: parse, and re-emit what parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay::VxlanHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = VxlanHeader::parse(data) {
        let mut b = [0u8; 8];
        h.emit(&mut b);
        assert_eq!(VxlanHeader::parse(&b).unwrap(), h);
    }
});
