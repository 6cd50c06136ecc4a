//! Per-port counters and the reasons a frame is dropped.

use std::fmt;

/// Why a frame was not forwarded. Dropping is not an error: it is counted on the ingress port
/// (or, for [`DropReason::TxFailed`], on the egress port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an Ethernet header, or a VLAN tag cut short.
    TooShort,
    /// Longer than the port's maximum frame length.
    Oversized,
    /// Source address is multicast, broadcast or all-zero.
    InvalidSource,
    /// An 802.1Q/802.1ad tagged frame arrived on an access (untagged) port.
    TaggedOnAccessPort,
    /// The source address is a static entry of another port (MAC spoofing).
    SourceMacConflict,
    /// The destination is on the port the frame came from.
    Hairpin,
    /// The destination is on a port of the ingress port's split-horizon group (e.g. a frame
    /// from one VXLAN peer to another).
    SplitHorizon,
    /// The frame arrived on a port the switch does not know.
    UnknownPort,
    /// The lookup pointed at a port of another network (defensive check; never expected).
    IsolationViolation,
    /// The driver could not hand the frame to the egress port.
    TxFailed,
    /// A frame on a VLAN uplink that is untagged or of another VLAN (the kernel filter
    /// normally keeps these away).
    WrongVlan,
    /// A super-frame whose segmentation is not sane (segments under 536 bytes or over the
    /// MTU, more than 64 of them, not TCP or UDP over IP), counted on the sandbox's port it
    /// came from; or one (or a frame with its checksum left to the device) that could not be
    /// segmented for a tunnel, counted on the egress port.
    BadOffload,
    /// A sandbox sent from a MAC address that is not its endpoint's.
    MacSpoof,
    /// A sandbox sent ARP whose sender is not its endpoint (or ARP that is not IPv4 over
    /// Ethernet).
    ArpSpoof,
    /// A sandbox sent IP from an address that is not its endpoint's.
    IpSpoof,
    /// A sandbox sent a DHCP (or DHCPv6) server message.
    DhcpServer,
    /// A sandbox sent an IPv6 router advertisement or redirect.
    RouterMessage,
    /// A sandbox sent broadcast, multicast or unknown-unicast frames over its port's rate.
    StormControl,
    /// A frame on a locked port (a cluster member's VXLAN peer) from a source that is not one
    /// of the addresses pinned to it: a forged datagram, or an endpoint not announced yet.
    UnpinnedSource,
    /// A sandbox sent neighbour discovery for an address that is not its endpoint's, or
    /// naming a link-layer address that is not its own, or cut short.
    NeighborSpoof,
    /// Both the ingress and the egress port are isolated: sandboxes of a network with
    /// inter-container communication off.
    IsolatedPort,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 21] = [
        DropReason::TooShort,
        DropReason::Oversized,
        DropReason::InvalidSource,
        DropReason::TaggedOnAccessPort,
        DropReason::SourceMacConflict,
        DropReason::Hairpin,
        DropReason::SplitHorizon,
        DropReason::UnknownPort,
        DropReason::IsolationViolation,
        DropReason::TxFailed,
        DropReason::WrongVlan,
        DropReason::BadOffload,
        DropReason::MacSpoof,
        DropReason::ArpSpoof,
        DropReason::IpSpoof,
        DropReason::DhcpServer,
        DropReason::RouterMessage,
        DropReason::StormControl,
        DropReason::UnpinnedSource,
        DropReason::NeighborSpoof,
        DropReason::IsolatedPort,
    ];

    /// A stable snake_case name for APIs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooShort => "too_short",
            DropReason::Oversized => "oversized",
            DropReason::InvalidSource => "invalid_source",
            DropReason::TaggedOnAccessPort => "tagged_on_access_port",
            DropReason::SourceMacConflict => "source_mac_conflict",
            DropReason::Hairpin => "hairpin",
            DropReason::SplitHorizon => "split_horizon",
            DropReason::UnknownPort => "unknown_port",
            DropReason::IsolationViolation => "isolation_violation",
            DropReason::TxFailed => "tx_failed",
            DropReason::WrongVlan => "wrong_vlan",
            DropReason::BadOffload => "bad_offload",
            DropReason::MacSpoof => "mac_spoof",
            DropReason::ArpSpoof => "arp_spoof",
            DropReason::IpSpoof => "ip_spoof",
            DropReason::DhcpServer => "dhcp_server",
            DropReason::RouterMessage => "router_message",
            DropReason::StormControl => "storm_control",
            DropReason::UnpinnedSource => "unpinned_source",
            DropReason::NeighborSpoof => "neighbor_spoof",
            DropReason::IsolatedPort => "isolated_port",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counters of one port. Plain integers: the core is single-threaded per switch instance and
/// drivers read them through [`crate::Switch::counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received from the port (including dropped ones).
    pub rx_packets: u64,
    /// Bytes received from the port.
    pub rx_bytes: u64,
    /// Frames handed to the port.
    pub tx_packets: u64,
    /// Bytes handed to the port.
    pub tx_bytes: u64,
    /// Source addresses not learned because the port reached its learning limit.
    pub learn_refused: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl PortCounters {
    /// Frames dropped for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count.
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops(*r)))
            .filter(|(_, n)| *n > 0)
    }

    pub(crate) fn count_rx(&mut self, bytes: usize) {
        self.rx_packets += 1;
        self.rx_bytes += bytes as u64;
    }

    pub(crate) fn count_tx(&mut self, bytes: usize) {
        self.tx_packets += 1;
        self.tx_bytes += bytes as u64;
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_by_reason() {
        let mut c = PortCounters::default();
        c.count_drop(DropReason::Hairpin);
        c.count_drop(DropReason::Hairpin);
        c.count_drop(DropReason::TxFailed);
        assert_eq!(c.drops(DropReason::Hairpin), 2);
        assert_eq!(c.total_drops(), 3);
        let v: Vec<_> = c.drops_by_reason().collect();
        assert_eq!(v, vec![(DropReason::Hairpin, 2), (DropReason::TxFailed, 1)]);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
