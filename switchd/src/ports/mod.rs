//! The ports a sandbox or a wire is attached by: TAP devices, veth pairs read through
//! AF_PACKET, uplinks carried by switchd's own 802.1Q, the kernel's VLAN interfaces, and
//! macvlan children the kernel forwards for.

pub mod macvlan;
pub mod packet;
pub mod tap;
pub mod uplink;
pub mod veth;
pub mod vlan;
