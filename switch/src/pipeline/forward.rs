//! Stage 5: the verdict handed back to the driver.

use crate::counters::DropReason;
use crate::ids::PortId;

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

/// A port's membership in its network, with its split-horizon group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub port: PortId,
    pub group: u8,
}

/// The egress ports of a flooded frame: the network's ports without the ingress port and
/// without the ports of the ingress port's split-horizon group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flood<'a> {
    members: &'a [Member],
    except: PortId,
    group: u8,
}

impl<'a> Flood<'a> {
    pub(crate) fn new(members: &'a [Member], except: PortId, group: u8) -> Self {
        Flood { members, except, group }
    }

    /// The egress ports.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + 'a {
        let (except, group) = (self.except, self.group);
        self.members
            .iter()
            .filter(move |m| m.port != except && (group == 0 || m.group != group))
            .map(|m| m.port)
    }
}
