//! Stage 5: the verdict handed back to the driver.

use crate::counters::DropReason;
use crate::ids::PortId;

use super::PortConfig;

/// What to do with a frame. Borrowing the switch, so a driver acts on it before the next frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Send on exactly this port.
    Forward(PortId),
    /// Send on every port of the frame's network but the ingress port.
    Flood(Flood<'a>),
    /// Do not send; counted on the ingress port.
    Drop(DropReason),
}

/// Which ports of its own network a port may not reach: those of its split-horizon group, and,
/// for an isolated port, the other isolated ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Horizon {
    pub group: u8,
    pub isolated: bool,
}

impl Horizon {
    pub fn of(cfg: &PortConfig) -> Horizon {
        Horizon {
            group: cfg.split_horizon_group,
            isolated: cfg.isolated,
        }
    }

    /// Why a frame from a port of this horizon may not leave on a port of `to`'s, if it may not.
    #[inline]
    pub fn bars(self, to: Horizon) -> Option<DropReason> {
        if self.group != 0 && self.group == to.group {
            Some(DropReason::SplitHorizon)
        } else if self.isolated && to.isolated {
            Some(DropReason::IsolatedPort)
        } else {
            None
        }
    }
}

/// A port's membership in its network, with its horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub port: PortId,
    pub horizon: Horizon,
}

/// The egress ports of a flooded frame: the network's ports without the ingress port and
/// without those beyond the ingress port's horizon (its split-horizon group; the other
/// isolated ports, if it is isolated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flood<'a> {
    members: &'a [Member],
    except: PortId,
    horizon: Horizon,
}

impl<'a> Flood<'a> {
    pub(crate) fn new(members: &'a [Member], except: PortId, horizon: Horizon) -> Self {
        Flood {
            members,
            except,
            horizon,
        }
    }

    /// The egress ports.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + 'a {
        let (except, horizon) = (self.except, self.horizon);
        self.members
            .iter()
            .filter(move |m| m.port != except && horizon.bars(m.horizon).is_none())
            .map(|m| m.port)
    }
}
