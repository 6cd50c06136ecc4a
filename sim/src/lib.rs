//! The virtual-time simulator (`virt`): whole fabrics on the cores switchd runs, with the
//! scenarios' reports; and the products built on the namespace testbed: the demo and
//! multi-host topologies from a file (`switchsim demo`, `switchsim up|down`).
#![deny(missing_docs)]

pub mod demo;
pub mod plot;
pub mod topology;
pub mod virt;
