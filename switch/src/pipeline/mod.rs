//! The switch: ports grouped into networks, the MAC table, and the per-frame pipeline
//! `parse -> guard -> learn -> lookup -> storm -> isolate -> verdict`.

mod forward;
mod guard;
mod isolate;
mod learn;
mod lookup;
mod parse;
mod trace;

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::counters::{DropReason, PortCounters};
use crate::fdb::{FdbEntry, MacTable};
use crate::ids::{NetworkId, PortId};
use crate::wire::MacAddr;

pub use forward::{Flood, Verdict};
use forward::{Horizon, Member};
use guard::Storm;
pub use guard::{Gso, Guard, Source, DEFAULT_BUM_PPS, MAX_SEGMENTS, MIN_SEGMENT_SIZE};
use lookup::Destination;
pub use trace::{Trace, TraceStage, TraceVerdict};

/// Settings of one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkConfig {
    /// How long a learned address stays valid without a frame from it (default 300 s).
    pub aging: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            aging: Duration::from_secs(300),
        }
    }
}

/// Settings of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// The network the port belongs to.
    pub network: NetworkId,
    /// Longest frame accepted, without FCS (1514 for a plain 1500-MTU port; drivers that carry
    /// offloaded super-frames set up to 65535 plus headers).
    pub max_frame_len: usize,
    /// Most addresses the port may have learned at once (default 64).
    pub learn_limit: u32,
    /// Ports sharing a non-zero group never exchange frames (split horizon: the VXLAN peers
    /// of a network, which reach each other directly). 0: no group.
    pub split_horizon_group: u8,
    /// An isolated port exchanges frames with the network's other ports, but not with its other
    /// isolated ports (a private VLAN's isolated port: the sandboxes of a network with
    /// inter-container communication off, which reach only their gateway).
    pub isolated: bool,
    /// Port security, storm control and offload checks for a sandbox's port; `None` for the
    /// ports the host owns (gateways, VXLAN peers, uplinks).
    pub guard: Option<Guard>,
    /// Learns nothing: a frame enters only from a source address pinned to this port with
    /// [`Switch::add_static`] (a cluster member's VXLAN peer, whose endpoints the control
    /// plane announces, so that a datagram forged with the member's address cannot teach the
    /// switch a new address).
    pub locked: bool,
}

impl PortConfig {
    /// A port on `network` with a 1500-byte MTU and the default learning limit.
    pub fn new(network: NetworkId) -> Self {
        PortConfig {
            network,
            max_frame_len: 1514,
            learn_limit: 64,
            split_horizon_group: 0,
            isolated: false,
            guard: None,
            locked: false,
        }
    }
}

/// A configuration change the switch refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchError {
    /// No network with this ID exists.
    UnknownNetwork(NetworkId),
    /// A network with this ID already exists.
    NetworkExists(NetworkId),
    /// The network still has ports.
    NetworkHasPorts(NetworkId, usize),
    /// No port with this ID exists.
    UnknownPort(PortId),
    /// The port is not on the network named.
    WrongNetwork(PortId, NetworkId),
    /// The MAC address is a static address of another port of the network.
    MacTaken {
        /// The address.
        mac: MacAddr,
        /// The network.
        network: NetworkId,
        /// The port that holds it.
        owner: PortId,
    },
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::UnknownNetwork(n) => write!(f, "unknown network {n}"),
            SwitchError::NetworkExists(n) => write!(f, "network {n} already exists"),
            SwitchError::NetworkHasPorts(n, k) => write!(f, "network {n} still has {k} port(s)"),
            SwitchError::UnknownPort(p) => write!(f, "unknown port {p}"),
            SwitchError::WrongNetwork(p, n) => write!(f, "port {p} is not on network {n}"),
            SwitchError::MacTaken { mac, network, owner } => {
                write!(f, "MAC address {mac} belongs to port {owner} on network {network}")
            }
        }
    }
}

impl std::error::Error for SwitchError {}

pub(crate) struct Port {
    pub cfg: PortConfig,
    pub aging: Duration,
    pub learned: u32,
    pub counters: PortCounters,
    pub storm: Storm,
}

struct Network {
    cfg: NetworkConfig,
    members: Vec<Member>,
}

/// An L2 switch instance. Single-threaded: a driver owns it and feeds it frames.
pub struct Switch {
    ports: Vec<Option<Port>>,
    networks: HashMap<NetworkId, Network>,
    fdb: MacTable,
}

/// Sweeps of the table happen at most this often; lookups check age themselves, so a late
/// sweep costs memory, never correctness.
const EXPIRE_GRANULARITY: Duration = Duration::from_secs(1);

impl Switch {
    /// An empty switch. `now` is its epoch; `seed` keys the MAC table's hash.
    pub fn new(now: Instant, seed: u64) -> Switch {
        Switch {
            ports: Vec::new(),
            networks: HashMap::new(),
            fdb: MacTable::new(now, seed),
        }
    }

    /// Adds a network.
    ///
    /// # Errors
    /// [`SwitchError::NetworkExists`] if the ID is taken.
    pub fn add_network(&mut self, id: NetworkId, cfg: NetworkConfig) -> Result<(), SwitchError> {
        if self.networks.contains_key(&id) {
            return Err(SwitchError::NetworkExists(id));
        }
        self.networks.insert(
            id,
            Network {
                cfg,
                members: Vec::new(),
            },
        );
        Ok(())
    }

    /// Removes a network that has no ports, with its static entries.
    ///
    /// # Errors
    /// [`SwitchError::UnknownNetwork`], or [`SwitchError::NetworkHasPorts`] while ports remain.
    pub fn remove_network(&mut self, id: NetworkId) -> Result<(), SwitchError> {
        let net = self.networks.get(&id).ok_or(SwitchError::UnknownNetwork(id))?;
        if !net.members.is_empty() {
            return Err(SwitchError::NetworkHasPorts(id, net.members.len()));
        }
        self.networks.remove(&id);
        self.fdb.retain(|e| e.network != id, |_| {});
        Ok(())
    }

    /// Adds a port and returns its ID (the lowest free one).
    ///
    /// # Errors
    /// [`SwitchError::UnknownNetwork`] if the port's network does not exist.
    pub fn add_port(&mut self, cfg: PortConfig) -> Result<PortId, SwitchError> {
        let net = self
            .networks
            .get_mut(&cfg.network)
            .ok_or(SwitchError::UnknownNetwork(cfg.network))?;
        let idx = self.ports.iter().position(Option::is_none).unwrap_or(self.ports.len());
        let id = PortId(idx as u32);
        let port = Port {
            cfg,
            aging: net.cfg.aging,
            learned: 0,
            counters: PortCounters::default(),
            storm: Storm::default(),
        };
        if idx == self.ports.len() {
            self.ports.push(Some(port));
        } else {
            self.ports[idx] = Some(port);
        }
        net.members.push(Member {
            port: id,
            horizon: Horizon::of(&cfg),
        });
        Ok(id)
    }

    /// Removes a port and every MAC entry pointing at it; returns its final counters.
    ///
    /// # Errors
    /// [`SwitchError::UnknownPort`].
    pub fn remove_port(&mut self, id: PortId) -> Result<PortCounters, SwitchError> {
        let port = self
            .ports
            .get_mut(id.0 as usize)
            .and_then(Option::take)
            .ok_or(SwitchError::UnknownPort(id))?;
        if let Some(net) = self.networks.get_mut(&port.cfg.network) {
            net.members.retain(|m| m.port != id);
        }
        self.fdb.retain(|e| e.port != id, |_| {});
        Ok(port.counters)
    }

    /// Adds a static entry: `mac` lives on `port` (an endpoint the daemon created). It never
    /// ages, never moves, and a frame from that address on another port is dropped as spoofed.
    /// A learned entry for the address gives way; a static one of the same port stays as it is.
    ///
    /// # Errors
    /// [`SwitchError::UnknownPort`], [`SwitchError::WrongNetwork`] if the port is elsewhere, or
    /// [`SwitchError::MacTaken`] if another port holds the address statically. Nothing changed.
    pub fn add_static(&mut self, now: Instant, net: NetworkId, mac: MacAddr, port: PortId) -> Result<(), SwitchError> {
        let p = self.port(port)?;
        if p.cfg.network != net {
            return Err(SwitchError::WrongNetwork(port, net));
        }
        match self.fdb.get(net, mac) {
            Some(e) if e.is_static && e.port != port => {
                return Err(SwitchError::MacTaken {
                    mac,
                    network: net,
                    owner: e.port,
                })
            }
            Some(e) if e.is_static => return Ok(()),
            _ => {}
        }
        if let Some(old) = self.fdb.insert_static(net, mac, port, now) {
            if !old.is_static {
                learn::adjust(&mut self.ports, old.port, -1);
            }
        }
        Ok(())
    }

    /// Removes the entry of `mac` on `net`, static or learned.
    pub fn remove_mac(&mut self, net: NetworkId, mac: MacAddr) -> Option<FdbEntry> {
        let e = self.fdb.remove(net, mac)?;
        if !e.is_static {
            learn::adjust(&mut self.ports, e.port, -1);
        }
        Some(e)
    }

    fn port(&self, id: PortId) -> Result<&Port, SwitchError> {
        self.ports
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(SwitchError::UnknownPort(id))
    }

    /// Runs one frame from `ingress` through the pipeline. Allocation-free; counts the frame on
    /// the ingress port and every drop by reason. Egress counting is the driver's, through
    /// [`Switch::record_tx`], once a frame was actually handed to a port.
    #[inline]
    pub fn process(&mut self, now: Instant, ingress: PortId, frame: &[u8]) -> Verdict<'_> {
        self.process_offloaded(now, ingress, None, frame)
    }

    /// [`Switch::process`] for a frame the driver received with segmentation offload metadata
    /// (`gso`: a super-frame to be cut into segments of that size). On a guarded port the
    /// segmentation must be sane, or the frame is dropped as [`DropReason::BadOffload`].
    #[inline]
    pub fn process_offloaded(&mut self, now: Instant, ingress: PortId, gso: Option<Gso>, frame: &[u8]) -> Verdict<'_> {
        let Some(Some(port)) = self.ports.get_mut(ingress.0 as usize) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        port.counters.count_rx(frame.len());
        let (net, aging, max_len) = (port.cfg.network, port.aging, port.cfg.max_frame_len);
        let horizon = Horizon::of(&port.cfg);
        match self.decide(now, ingress, net, aging, max_len, gso, frame) {
            Ok(Destination::Port(out)) => Verdict::Forward(out),
            Ok(Destination::Flood) => match self.networks.get(&net) {
                Some(n) => Verdict::Flood(Flood::new(&n.members, ingress, horizon)),
                None => Verdict::Drop(DropReason::IsolationViolation),
            },
            Err(reason) => {
                if let Some(Some(p)) = self.ports.get_mut(ingress.0 as usize) {
                    p.counters.count_drop(reason);
                }
                Verdict::Drop(reason)
            }
        }
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &mut self,
        now: Instant,
        ingress: PortId,
        net: NetworkId,
        aging: Duration,
        max_len: usize,
        gso: Option<Gso>,
        frame: &[u8],
    ) -> Result<Destination, DropReason> {
        let hdr = parse::parse(frame, max_len)?;
        let (horizon, guard, locked) = match &self.ports[ingress.0 as usize] {
            Some(p) => (Horizon::of(&p.cfg), p.cfg.guard, p.cfg.locked),
            None => return Err(DropReason::UnknownPort),
        };
        if let Some(g) = &guard {
            guard::check(g, gso, frame)?;
        }
        let now_ms = self.fdb.tick(now);
        if locked {
            learn::pinned(&self.fdb, net, ingress, hdr.src)?;
        } else {
            learn::learn(&mut self.fdb, &mut self.ports, net, ingress, hdr.src, now_ms)?;
        }
        match lookup::lookup(&self.fdb, net, hdr.dst, now_ms, aging) {
            Destination::Port(out) => isolate::isolate(&self.ports, net, ingress, horizon, out).map(Destination::Port),
            Destination::Flood => {
                let pps = guard.map_or(0, |g| g.bum_pps);
                let admitted = self.ports[ingress.0 as usize]
                    .as_mut()
                    .is_none_or(|p| p.storm.admit(pps, now_ms));
                if admitted {
                    Ok(Destination::Flood)
                } else {
                    Err(DropReason::StormControl)
                }
            }
        }
    }

    /// Counts a frame of `bytes` handed to `port` by the driver.
    pub fn record_tx(&mut self, port: PortId, bytes: usize) {
        if let Some(Some(p)) = self.ports.get_mut(port.0 as usize) {
            p.counters.count_tx(bytes);
        }
    }

    /// Counts a drop the driver decided (e.g. [`DropReason::TxFailed`]) on `port`.
    pub fn record_drop(&mut self, port: PortId, reason: DropReason) {
        if let Some(Some(p)) = self.ports.get_mut(port.0 as usize) {
            p.counters.count_drop(reason);
        }
    }

    /// Removes learned entries older than their network's aging time. Returns when to call
    /// again: the earliest remaining deadline, but not sooner than one second from `now`.
    /// Work: one pass over the table.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        let networks = &self.networks;
        let aging_of = |net: NetworkId| networks.get(&net).map_or(Duration::ZERO, |n| n.cfg.aging);
        let mut removed_from: Vec<PortId> = Vec::new();
        self.fdb.retain(
            |e| e.is_static || now.saturating_duration_since(e.last_seen) <= aging_of(e.network),
            |e| removed_from.push(e.port),
        );
        for p in removed_from {
            learn::adjust(&mut self.ports, p, -1);
        }
        self.fdb
            .iter()
            .filter(|e| !e.is_static)
            .map(|e| e.last_seen + aging_of(e.network))
            .min()
            .map(|t| t.max(now + EXPIRE_GRANULARITY))
    }

    /// Counters of a port.
    pub fn counters(&self, port: PortId) -> Option<&PortCounters> {
        self.port(port).ok().map(|p| &p.counters)
    }

    /// The network of a port.
    pub fn port_network(&self, port: PortId) -> Option<NetworkId> {
        self.port(port).ok().map(|p| p.cfg.network)
    }

    /// Addresses currently learned on a port (static entries excluded).
    pub fn learned_on(&self, port: PortId) -> Option<u32> {
        self.port(port).ok().map(|p| p.learned)
    }

    /// The MAC table's entry for `mac` on `net`, aged or not.
    pub fn fdb_entry(&self, net: NetworkId, mac: MacAddr) -> Option<FdbEntry> {
        self.fdb.get(net, mac)
    }

    /// Every MAC table entry.
    pub fn fdb(&self) -> impl Iterator<Item = FdbEntry> + '_ {
        self.fdb.iter()
    }

    /// Bytes held by the MAC table.
    pub fn fdb_memory_bytes(&self) -> usize {
        self.fdb.memory_bytes()
    }

    /// The ports of a network.
    pub fn network_ports(&self, net: NetworkId) -> impl Iterator<Item = PortId> + '_ {
        self.networks
            .get(&net)
            .into_iter()
            .flat_map(|n| n.members.iter().map(|m| m.port))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod security_tests;
