//! Stage 4: the frame may only leave on a port of its own network, never where it came in, and
//! never on a port of the ingress port's split-horizon group.

use crate::counters::DropReason;
use crate::ids::{NetworkId, PortId};

use super::Port;

/// Confirms that `out` belongs to `net`, is not the ingress port, and is not in the ingress
/// port's split-horizon group (`group`, 0 for none).
#[inline]
pub(crate) fn isolate(
    ports: &[Option<Port>],
    net: NetworkId,
    ingress: PortId,
    group: u8,
    out: PortId,
) -> Result<PortId, DropReason> {
    if out == ingress {
        return Err(DropReason::Hairpin);
    }
    match ports.get(out.0 as usize) {
        Some(Some(p)) if p.cfg.network != net => Err(DropReason::IsolationViolation),
        Some(Some(p)) if group != 0 && p.cfg.split_horizon_group == group => Err(DropReason::SplitHorizon),
        Some(Some(_)) => Ok(out),
        None | Some(None) => Err(DropReason::IsolationViolation),
    }
}
