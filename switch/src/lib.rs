//! The sans-IO L2 switch core.
//!
//! ```text
//!  port rx ──► parse ──► learn ──► lookup ──► isolate ──► Verdict
//!  (bytes)    (view,    (net,src   (net,dst   (same        Forward(port)
//!             checks)    -> port)   -> port)   network)    Flood(ports of the network)
//!                                                          Drop(reason)
//! ```
//!
//! Invariants:
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
pub mod ids;
pub mod pipeline;
pub mod wire;

pub use counters::{DropReason, PortCounters};
pub use fdb::{FdbEntry, MacTable};
pub use ids::{NetworkId, PortId};
pub use pipeline::{Flood, NetworkConfig, PortConfig, Switch, SwitchError, Trace, TraceStage, TraceVerdict, Verdict};
pub use wire::{trunk_rx, trunk_tag, EthernetFrame, MacAddr, TrunkRx, VlanId, VlanTag};
