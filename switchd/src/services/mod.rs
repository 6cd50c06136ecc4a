//! The services at a network's gateway: the embedded DNS and the userland proxy of published
//! ports.

pub mod dns;
pub mod proxy;
