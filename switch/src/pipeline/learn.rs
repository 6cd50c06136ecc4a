//! Stage 2: learn the source address on the ingress port, within the port's limit (or, on a
//! locked port, check that it is pinned there).

use crate::counters::DropReason;
use crate::fdb::{MacTable, Upsert};
use crate::ids::{NetworkId, PortId};
use crate::wire::MacAddr;

use super::Port;

/// Learns `src` on `port`. A source that is a static address of another port is spoofed and the
/// frame is dropped; a port at its learning limit forwards but does not learn.
#[inline]
pub(crate) fn learn(
    fdb: &mut MacTable,
    ports: &mut [Option<Port>],
    net: NetworkId,
    port: PortId,
    src: MacAddr,
    now_ms: u64,
) -> Result<(), DropReason> {
    let u = fdb.upsert_dynamic(net, src, port, now_ms, may_add(ports, port));
    match u {
        Upsert::Refreshed | Upsert::Static(_) => {}
        Upsert::Inserted => adjust(ports, port, 1),
        Upsert::Moved(old) => {
            adjust(ports, old, -1);
            adjust(ports, port, 1);
        }
        Upsert::Refused(stale) => {
            if let Some(old) = stale {
                adjust(ports, old, -1);
            }
            if let Some(p) = ports[port.0 as usize].as_mut() {
                p.counters.learn_refused += 1;
            }
        }
    }
    outcome(u, port)
}

/// On a locked port, learns nothing: the frame goes on only when `src` is pinned to `port`.
#[inline]
pub(crate) fn pinned(fdb: &MacTable, net: NetworkId, port: PortId, src: MacAddr) -> Result<(), DropReason> {
    match fdb.get(net, src) {
        Some(e) if e.is_static && e.port == port => Ok(()),
        _ => Err(DropReason::UnpinnedSource),
    }
}

/// Whether a new address may appear on `port` (it is under its learning limit).
#[inline]
pub(crate) fn may_add(ports: &[Option<Port>], port: PortId) -> bool {
    ports[port.0 as usize]
        .as_ref()
        .is_some_and(|p| p.learned < p.cfg.learn_limit)
}

/// The frame's fate after learning: only a static address of another port stops it (spoofing).
#[inline]
pub(crate) fn outcome(u: Upsert, port: PortId) -> Result<(), DropReason> {
    match u {
        Upsert::Static(owner) if owner != port => Err(DropReason::SourceMacConflict),
        _ => Ok(()),
    }
}

pub(crate) fn adjust(ports: &mut [Option<Port>], port: PortId, delta: i32) {
    if let Some(Some(p)) = ports.get_mut(port.0 as usize) {
        p.learned = p.learned.saturating_add_signed(delta);
    }
}
