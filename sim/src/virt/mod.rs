//! Deterministic simulation at scale: whole fabrics in virtual time.
//!
//! Hosts run the real cores (control-plane membership, records, remote-endpoint reconciler,
//! model and IPAM; the switch; the VXLAN codec and ARP suppression) over a simulated underlay;
//! sandboxes are smoltcp stacks. A scenario file says what happens; the report says how the
//! fabric did, and the same seed gives the same report.

pub mod pcap;
pub mod report;
pub mod sandbox;
pub mod scenario;
mod world;

pub use world::{run, run_watched, Options, Outcome, Progress};
