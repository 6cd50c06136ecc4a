//! Stage 4: the frame may only leave on a port of its own network, and never where it came in.

use crate::counters::DropReason;
use crate::ids::{NetworkId, PortId};

use super::Port;

/// Confirms that `out` belongs to `net` and is not the ingress port.
#[inline]
pub(crate) fn isolate(
    ports: &[Option<Port>],
    net: NetworkId,
    ingress: PortId,
    out: PortId,
) -> Result<PortId, DropReason> {
    if out == ingress {
        return Err(DropReason::Hairpin);
    }
    match ports.get(out.0 as usize) {
        Some(Some(p)) if p.cfg.network == net => Ok(out),
        _ => Err(DropReason::IsolationViolation),
    }
}
