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

/// The egress ports of a flooded frame: the network's ports without the ingress port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flood<'a> {
    ports: &'a [PortId],
    except: PortId,
}

impl<'a> Flood<'a> {
    pub(crate) fn new(ports: &'a [PortId], except: PortId) -> Self {
        Flood { ports, except }
    }

    /// The egress ports.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + 'a {
        let except = self.except;
        self.ports.iter().copied().filter(move |p| *p != except)
    }
}
