//! API bodies into the model: JSON the daemon receives, then the model operation it drives.
//! A refused request must leave the state exactly as it was.
#![no_main]

use std::path::Path;
use std::time::SystemTime;

use control_plane::api::{NetworkConnect, NetworkCreate, SandboxCreate};
use control_plane::{Id, State};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = |n: u8| Id::from_random([n; 32]);
    let mut s = State::with_defaults([id(1), id(2), id(3)], SystemTime::UNIX_EPOCH);
    for (i, part) in data.split(|b| *b == b'\n').enumerate() {
        let before = s.clone();
        let n = 10 + (i as u8 % 200);
        let r = match part.first() {
            Some(b'n') => serde_json::from_slice::<NetworkCreate>(&part[1..])
                .ok()
                .map(|req| req.into_spec().and_then(|spec| s.create_network(spec, id(n), SystemTime::UNIX_EPOCH, &[]).map(drop))),
            Some(b's') => serde_json::from_slice::<SandboxCreate>(&part[1..])
                .ok()
                .map(|req| s.create_sandbox(req.spec(), id(n), id(n + 1), Path::new("/run/netns"), SystemTime::UNIX_EPOCH).map(drop)),
            Some(b'c') => serde_json::from_slice::<NetworkConnect>(&part[1..])
                .ok()
                .map(|req| s.connect("bridge", &req.container, req.spec(), id(n)).map(drop)),
            Some(b'r') => Some(s.remove_network(&String::from_utf8_lossy(&part[1..])).map(drop)),
            _ => None,
        };
        if let Some(Err(_)) = r {
            assert_eq!(s, before, "a refused request changed state");
        }
    }
});
