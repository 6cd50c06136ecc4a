//! Stage 4: the frame may only leave on a port of its own network, never where it came in, and
//! never on a port beyond the ingress port's horizon (its split-horizon group; the other
//! isolated ports, if it is isolated).

use crate::counters::DropReason;
use crate::ids::{NetworkId, PortId};

use super::forward::Horizon;
use super::Port;

/// Confirms that `out` belongs to `net`, is not the ingress port, and is within the ingress
/// port's `horizon`.
#[inline]
pub(crate) fn isolate(
    ports: &[Option<Port>],
    net: NetworkId,
    ingress: PortId,
    horizon: Horizon,
    out: PortId,
) -> Result<PortId, DropReason> {
    if out == ingress {
        return Err(DropReason::Hairpin);
    }
    match ports.get(out.0 as usize) {
        Some(Some(p)) if p.cfg.network != net => Err(DropReason::IsolationViolation),
        Some(Some(p)) => match horizon.bars(Horizon::of(&p.cfg)) {
            Some(reason) => Err(reason),
            None => Ok(out),
        },
        None | Some(None) => Err(DropReason::IsolationViolation),
    }
}
