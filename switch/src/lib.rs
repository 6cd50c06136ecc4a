//! The sans-IO L2 switch core.
//!
//! ```text
//!  port rx ──► parse ──► guard ──► learn ──► lookup ──► storm ──► isolate ──► Verdict
//!  (bytes)    (view,    (source,   (net,src   (net,dst   (BUM      (same        Forward(port)
//!             checks)    offload)   -> port)   -> port)   rate)     network)    Flood(ports)
//!                                                                               Drop(reason)
//! ```
//!
//! Invariants:
//! - A guarded (sandbox) port's frames leave only when they come from its endpoint: the
//!   Ethernet source, the ARP sender and the IP source are its own, and it sends no DHCP
//!   server, router advertisement or redirect messages.
//! - A static MAC entry never moves: learning cannot take it and [`Switch::add_static`]
//!   refuses another port's. Only removing it (or its port) frees the address.
//! - A frame never leaves on a port of another network: the MAC table is keyed by
//!   `(NetworkId, MacAddr)` and the isolate stage re-checks the output port's network.
//! - Nothing on the per-frame path allocates, locks or performs I/O; time comes in as
//!   `now: Instant`, randomness as a seed.
//! - Every dropped frame has a [`DropReason`] and is counted on its ingress port.
//!
//! The same core runs in `switchd` (real TAP/AF_PACKET ports), in the simulator and in the
//! benchmarks.
#![deny(missing_docs)]
// Tests pick their own epoch with `Instant::now()`; the core itself never reads the clock.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod counters;
pub mod fdb;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod pipeline;
pub mod wire;

pub use counters::{DropReason, PortCounters};
pub use fdb::{FdbEntry, MacTable};
pub use ids::{NetworkId, PortId};
pub use pipeline::{
    Flood, Gso, Guard, NetworkConfig, PortConfig, Source, Switch, SwitchError, Trace, TraceStage, TraceVerdict,
    Verdict, DEFAULT_BUM_PPS, MAX_SEGMENTS, MIN_SEGMENT_SIZE,
};
pub use wire::{trunk_rx, trunk_tag, EthernetFrame, MacAddr, TrunkRx, VlanId, VlanTag};
