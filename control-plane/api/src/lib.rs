//! switchd's API as its clients see it, with nothing of the daemon's storage or crypto: the
//! JSON bodies of the HTTP API in Docker Engine API shapes (PascalCase keys) wherever Docker
//! has them, the capture stream (pcapng) and its reader, the frame-spec language `trace`
//! takes, and the rules names follow. switchctl and switch-cni depend on this alone for
//! talking to switchd; the conversions from switchd's model are `control_plane::api`'s.
#![deny(missing_docs)]

pub mod capture;
pub mod framespec;
pub mod names;
mod types;

pub use types::*;
