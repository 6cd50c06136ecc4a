//! Kernel plumbing: interfaces and routes (netdev), network namespaces, the nftables ruleset,
//! and the caps on descriptors switchd holds for others.

pub mod firewall;
pub mod limits;
pub mod netdev;
pub mod netns;
