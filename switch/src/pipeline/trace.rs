//! A frame's way through the pipeline, stage by stage, without sending it or changing the
//! switch (as Open vSwitch's `ofproto/trace`): the same stage functions as
//! [`Switch::process`], with learning previewed instead of done.

use std::fmt::Write as _;
use std::time::Instant;

use crate::counters::DropReason;
use crate::fdb::Upsert;
use crate::ids::PortId;
use crate::wire::EthernetFrame;

use super::lookup::Destination;
use super::{guard, isolate, learn, lookup, parse, Flood, Guard, Horizon, Port, Switch};

/// One stage's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStage {
    /// `parse`, `learn`, `lookup`, `isolate` or `forward`.
    pub stage: &'static str,
    /// What it decided, in words.
    pub decision: String,
}

/// What would become of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceVerdict {
    /// Sent on this port.
    Forward(PortId),
    /// Sent on these ports.
    Flood(Vec<PortId>),
    /// Dropped for this reason.
    Drop(DropReason),
}

/// A frame's trace: its stages in order and the verdict [`Switch::process`] would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The stages that ran (a drop ends the list).
    pub stages: Vec<TraceStage>,
    /// The verdict.
    pub verdict: TraceVerdict,
}

impl Trace {
    fn push(&mut self, stage: &'static str, decision: String) {
        self.stages.push(TraceStage { stage, decision });
    }

    fn drop(mut self, stage: &'static str, why: String, reason: DropReason) -> Trace {
        self.push(stage, format!("{why}: drop ({})", reason.as_str()));
        self.verdict = TraceVerdict::Drop(reason);
        self
    }
}

impl Switch {
    /// Traces `frame` arriving on `ingress` at `now`. Read-only: nothing is learned or counted.
    pub fn trace(&self, now: Instant, ingress: PortId, frame: &[u8]) -> Trace {
        let t = Trace {
            stages: Vec::new(),
            verdict: TraceVerdict::Drop(DropReason::UnknownPort),
        };
        let Ok(port) = self.port(ingress) else {
            return t.drop(
                "parse",
                format!("port {ingress} does not exist"),
                DropReason::UnknownPort,
            );
        };
        self.trace_stages(t, now, ingress, port, frame)
    }

    fn trace_stages(&self, mut t: Trace, now: Instant, ingress: PortId, port: &Port, frame: &[u8]) -> Trace {
        let (net, aging, max_len) = (port.cfg.network, port.aging, port.cfg.max_frame_len);
        let horizon = Horizon::of(&port.cfg);
        let hdr = match parse::parse(frame, max_len) {
            Ok(h) => h,
            Err(r) => return t.drop("parse", parse_refused(r, frame.len(), max_len), r),
        };
        let ethertype = EthernetFrame::new_checked(frame).map_or(0, |e| e.ethertype().0);
        t.push(
            "parse",
            format!(
                "dst {}, src {}, type 0x{ethertype:04x}, {} bytes, untagged: ok",
                hdr.dst,
                hdr.src,
                frame.len()
            ),
        );
        if let Some(g) = &port.cfg.guard {
            match guard::check(g, None, frame) {
                Ok(()) => t.push("guard", guard_passed(g)),
                Err(r) => return t.drop("guard", guard_refused(g, r), r),
            }
        }
        if port.cfg.locked {
            if let Err(r) = learn::pinned(&self.fdb, net, ingress, hdr.src) {
                let why = format!("{} is not pinned to locked port {ingress}", hdr.src);
                return t.drop("learn", why, r);
            }
        }
        // Learning, previewed (a locked port's source is static on it: nothing changes).
        let u = self
            .fdb
            .preview_upsert(net, hdr.src, ingress, learn::may_add(&self.ports, ingress));
        let said = match u {
            Upsert::Inserted => format!("{} is new: learned on port {ingress}", hdr.src),
            Upsert::Refreshed => format!("{} is known on port {ingress}: refreshed", hdr.src),
            Upsert::Moved(old) => format!("{} moves from port {old} to port {ingress}", hdr.src),
            Upsert::Static(owner) if owner == ingress => format!("{} is static on port {ingress}", hdr.src),
            Upsert::Static(owner) => {
                let why = format!("{} is a static address of port {owner} (spoofed)", hdr.src);
                return t.drop("learn", why, DropReason::SourceMacConflict);
            }
            Upsert::Refused(stale) => {
                let limit = self.port(ingress).map_or(0, |p| p.cfg.learn_limit);
                let mut s = format!("port {ingress} is at its limit of {limit} addresses: not learned");
                if let Some(old) = stale {
                    let _ = write!(s, ", and the stale entry on port {old} is removed");
                }
                s
            }
        };
        t.push("learn", said);
        let now_ms = self.fdb.tick(now);
        // A frame to its own source sees the table as learning left it.
        let dest = if hdr.dst == hdr.src && !hdr.dst.is_multicast() {
            match u {
                Upsert::Inserted | Upsert::Refreshed | Upsert::Moved(_) => Destination::Port(ingress),
                Upsert::Static(owner) => Destination::Port(owner),
                Upsert::Refused(_) => Destination::Flood,
            }
        } else {
            lookup::lookup(&self.fdb, net, hdr.dst, now_ms, aging)
        };
        let out = match dest {
            Destination::Port(out) => {
                let kind = match self.fdb.get(net, hdr.dst) {
                    Some(e) if e.is_static => "static".to_string(),
                    Some(e) => format!(
                        "learned {} ms ago",
                        now.saturating_duration_since(e.last_seen).as_millis()
                    ),
                    None => "just learned".to_string(),
                };
                t.push("lookup", format!("{} is on port {out} ({kind})", hdr.dst));
                out
            }
            Destination::Flood => {
                let why = if hdr.dst.is_broadcast() {
                    "broadcast".to_string()
                } else if hdr.dst.is_multicast() {
                    "multicast".to_string()
                } else if self.fdb.get(net, hdr.dst).is_some() {
                    format!("known, but not seen within the aging time of {} s", aging.as_secs())
                } else {
                    "unknown".to_string()
                };
                t.push("lookup", format!("{} is {why}: flood", hdr.dst));
                return self.trace_flood(t, net, ingress, horizon);
            }
        };
        match isolate::isolate(&self.ports, net, ingress, horizon, out) {
            Ok(p) => {
                t.push("isolate", format!("port {p} is on the frame's network: ok"));
                t.push("forward", format!("to port {p}"));
                t.verdict = TraceVerdict::Forward(p);
                t
            }
            Err(r) => {
                let why = match r {
                    DropReason::Hairpin => format!("port {out} is the port the frame came in on"),
                    DropReason::SplitHorizon => {
                        format!(
                            "port {out} is in the ingress port's split-horizon group {}",
                            horizon.group
                        )
                    }
                    DropReason::IsolatedPort => {
                        format!("ports {ingress} and {out} are both isolated (inter-container communication is off)")
                    }
                    _ => format!("port {out} is not on the frame's network"),
                };
                t.drop("isolate", why, r)
            }
        }
    }

    fn trace_flood(&self, mut t: Trace, net: crate::ids::NetworkId, ingress: PortId, horizon: Horizon) -> Trace {
        let Some(n) = self.networks.get(&net) else {
            return t.drop(
                "isolate",
                "the port's network is gone".into(),
                DropReason::IsolationViolation,
            );
        };
        let ports: Vec<PortId> = Flood::new(&n.members, ingress, horizon).ports().collect();
        let mut said = "every other port of the network".to_string();
        if horizon.group != 0 {
            let _ = write!(said, ", except split-horizon group {}", horizon.group);
        }
        if horizon.isolated {
            said.push_str(", except the other isolated ports");
        }
        t.push("isolate", format!("{said}: ok"));
        let list: Vec<String> = ports.iter().map(ToString::to_string).collect();
        t.push(
            "forward",
            if list.is_empty() {
                "flood to no port (the network has no other)".into()
            } else {
                format!("flood to ports {}", list.join(", "))
            },
        );
        t.verdict = TraceVerdict::Flood(ports);
        t
    }
}

/// Why parsing refused a frame of `len` bytes on a port whose maximum is `max_len`.
fn parse_refused(r: DropReason, len: usize, max_len: usize) -> String {
    match r {
        DropReason::TooShort => format!("{len} bytes, shorter than an Ethernet header (or its VLAN tag)"),
        DropReason::Oversized => format!("{len} bytes, over the port's maximum of {max_len}"),
        DropReason::InvalidSource => "the source address is multicast, broadcast or zero".into(),
        DropReason::TaggedOnAccessPort => "an 802.1Q tag on an access port".into(),
        other => other.as_str().into(),
    }
}

fn guard_passed(g: &Guard) -> String {
    let storm = match g.bum_pps {
        0 => "no storm limit".to_string(),
        n => format!("broadcast, multicast and unknown unicast limited to {n}/s"),
    };
    match g.source {
        Some(src) => {
            let ip = src.ipv4.map_or("no address".to_string(), |ip| ip.to_string());
            format!("sent as the endpoint ({}, {ip}), {storm}: ok", src.mac)
        }
        None => format!("port security off, {storm}: ok"),
    }
}

fn guard_refused(g: &Guard, r: DropReason) -> String {
    let (mac, ip) = g.source.map_or((String::new(), String::new()), |s| {
        (
            s.mac.to_string(),
            s.ipv4.map_or("no address".into(), |ip| ip.to_string()),
        )
    });
    match r {
        DropReason::MacSpoof => format!("the source is not the endpoint's MAC {mac}"),
        DropReason::ArpSpoof => format!("the ARP sender is not the endpoint ({mac}, {ip}) or a probe"),
        DropReason::IpSpoof => format!("the IP source is not the endpoint's address ({ip})"),
        DropReason::DhcpServer => "a DHCP server message from a sandbox".into(),
        DropReason::RouterMessage => "an IPv6 router advertisement or redirect from a sandbox".into(),
        other => other.as_str().into(),
    }
}
