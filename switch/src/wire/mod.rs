//! Zero-copy views over frame bytes.
//!
//! Each view wraps `T: AsRef<[u8]>`; `new_checked` validates lengths for untrusted input and
//! `new_unchecked` is for bytes we built ourselves. Accessors never panic on a checked view.

mod arp;
mod ethernet;
mod ip;
mod mac;
mod tcp;
mod vlan;

pub use arp::{ArpOp, ArpPacket, ArpRepr, ARP_IPV4_LEN};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, ETHERNET_HEADER_LEN};
pub use ip::{internet_checksum, proto, udp_ports, Ipv4Packet, Ipv4Repr, Ipv6Packet, IPV4_HEADER_LEN, IPV6_HEADER_LEN};
pub use mac::{MacAddr, ParseMacError};
pub use tcp::{tcp_flag, TcpSegment, TCP_HEADER_LEN};
pub use vlan::{trunk_rx, trunk_tag, InvalidVlanId, TrunkRx, VlanId, VlanTag, TPID_8021Q, VLAN_TAG_LEN};

/// Why bytes could not be viewed as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header needs.
    Truncated,
    /// A version or kind of header the view does not read.
    Unsupported,
}
