//! Stage 3: find where the destination lives.

use std::time::Duration;

use crate::fdb::MacTable;
use crate::ids::{NetworkId, PortId};
use crate::wire::MacAddr;

/// Where a frame should go before isolation is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// A known unicast address on this port.
    Port(PortId),
    /// Broadcast, multicast, or an unknown (or aged) unicast address.
    Flood,
}

#[inline]
pub(crate) fn lookup(fdb: &MacTable, net: NetworkId, dst: MacAddr, now_ms: u64, aging: Duration) -> Destination {
    if dst.is_multicast() {
        return Destination::Flood;
    }
    match fdb.lookup(net, dst, now_ms, aging) {
        Some(p) => Destination::Port(p),
        None => Destination::Flood,
    }
}
