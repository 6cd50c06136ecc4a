//! The multi-host cluster: its certificate authority, SWIM membership, and the sealing of
//! what hosts say to each other. Route dissemination builds on these.

mod backlog;
pub mod certs;
pub mod cheap;
pub mod envelope;
pub mod exchange;
pub mod membership;
pub mod node;
pub mod records;
pub mod remotes;
pub mod space;

pub use switch_pki::{hex, pki, seal, sign};
