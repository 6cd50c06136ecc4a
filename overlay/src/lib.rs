//! Sans-IO VXLAN for the multi-host overlay (RFC 7348).
//!
//! ```text
//!  inner Ethernet frame ──► encap: [VXLAN 8 B | frame] ──► UDP 4789 ──► remote VTEP
//!  UDP payload ──► decap: check I flag, read VNI ──► (Vni, inner frame)
//! ```
//!
//! This crate holds the header codec, the flow hash that picks the UDP source port, ARP
//! answers for suppression, the edge between a host's switch and its tunnels (`edge`: VNIs,
//! peers, suppressed addresses, the forwarding decision), segmentation and checksums done in
//! software for frames that arrive as super-frames (`offload`), and the sealing of tunnel
//! packets as ESP with AES-256-GCM and an anti-replay window (`esp`). No I/O, no clock.
#![deny(missing_docs)]
// Tests pick their own epoch with `Instant::now()`; the core itself never reads the clock.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod arp;
pub mod edge;
pub mod esp;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod nd;
pub mod offload;
pub mod vxlan;

pub use flow::flow_hash;
pub use vxlan::{Vni, VxlanError, VxlanHeader, VXLAN_HEADER_LEN, VXLAN_PORT};
