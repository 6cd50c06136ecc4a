//! The fabric's control plane: what exists and why, independent of how frames move.
//!
//! ```text
//!  API request (api) ──► validate + plan on a copy of State (model, ipam) ──► switchd does I/O
//!                                                   │                              │
//!                                                   └──── commit: Store::save ◄────┘
//! ```
//!
//! Invariants:
//! - Every operation validates all input before it changes anything; an error leaves the
//!   state as it was.
//! - No address is held by two endpoints of a network; subnets of networks never overlap.
//! - Time and randomness come in from the caller (`created: SystemTime`, IDs given).
#![deny(missing_docs)]
// Tests pick their own epoch with `Instant::now()`; the core itself never reads the clock.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod api;
pub mod cidr;
pub mod cluster;
pub mod dns;
pub mod error;
pub mod etc;
pub mod firewall;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod ipam;
pub mod metrics;
pub mod model;
pub mod plugin;
pub mod ports;
pub mod request;
pub mod store;

pub use switch_api::{capture, framespec};

pub use cidr::Ipv4Cidr;
pub use error::ModelError;
pub use ids::Id;
pub use model::{Driver, Endpoint, HostFacts, Network, Sandbox, SandboxMode, State};
