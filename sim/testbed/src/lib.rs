//! Real topologies in network namespaces, for the end-to-end tests, the demo and the
//! data-plane bench.
//!
//! ```text
//!  Host::start("t123")  ──► ip netns add t123-h ──► nsenter --net=... switchd --state-dir ...
//!        │                                               │
//!        └── ctl(["network", ...]) ──► switchctl -H <socket> ...
//!  drop(Host) ──► kill switchd (by pid) ──► remove every /run/netns/t123-* ──► remove temp dir
//! ```
//!
//! Everything a test makes carries its prefix (unique per test and process) and is removed in
//! `Drop`, also when the test panics. `docker` runs a Docker Engine inside a host's namespace.
#![deny(missing_docs)]

pub mod docker;
pub mod netns;

pub use netns::{
    clean_own, clean_stale, e2e_allowed, e2e_host, eventually, in_netns, is_root, json, kernel_vxlan, ping, prefix,
    run, send_raw, send_raw_offloaded, send_raw_repeated, send_sctp_init, tcp_bulk, tcp_transfer, Capture, Fabric,
    Host, Output, Pace, Underlay,
};
