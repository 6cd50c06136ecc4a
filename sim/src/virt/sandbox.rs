//! A simulated sandbox: a real IP stack (smoltcp) behind an Ethernet port of its host's switch.
//! It answers ARP, pings and TCP like a container would; time is the simulation's.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpCidr,
};

/// The sandbox's Ethernet device: frames queued in from the switch and out to it.
#[derive(Default)]
pub struct Wire {
    /// Frames for the sandbox.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames the sandbox sent.
    pub tx: VecDeque<Vec<u8>>,
}

impl Device for Wire {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1450 + 14;
        c.checksum = ChecksumCapabilities::default();
        c
    }

    fn receive(&mut self, _: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }
}

/// A received frame.
pub struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Room for a frame to send.
pub struct TxToken<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

/// An outstanding ping: like `ping -c 3 -i 1`, answered when any of its requests is.
pub struct Ping {
    /// Whom.
    pub target: IpAddr,
    /// Sequence number.
    pub seq: u16,
    /// When it was asked for (µs).
    pub asked_at: u64,
    /// Requests sent so far.
    pub sent: u8,
    /// When the last one left (µs).
    pub last: u64,
}

/// Requests per ping. The first may be lost while the target resolves the sender's address
/// (smoltcp drops its automatic echo reply then, where Linux would queue it).
const PING_TRIES: u8 = 3;
/// Between two requests of a ping.
const PING_EVERY_US: u64 = 1_000_000;

/// A TCP flow this sandbox sends.
pub struct Flow {
    /// The socket.
    pub handle: SocketHandle,
    /// Bytes still to hand to the socket.
    pub left: usize,
    /// Index of the flow in the world's list.
    pub id: usize,
}

/// One sandbox.
pub struct SimSandbox {
    /// Name.
    pub name: String,
    /// Address.
    pub ip: Ipv4Addr,
    /// IPv6 address, on a dual-stack network.
    pub ip6: Option<Ipv6Addr>,
    /// MAC.
    pub mac: [u8; 6],
    /// The stack.
    pub iface: Interface,
    /// Its sockets.
    pub sockets: SocketSet<'static>,
    /// Its Ethernet device.
    pub wire: Wire,
    icmp: SocketHandle,
    /// The ICMP identifier of its pings (the low bits of its address: a socket bound to an
    /// identifier also takes the echo requests carrying it, so each sandbox has its own).
    ident: u16,
    /// Pings waiting for their answer.
    pub pings: Vec<Ping>,
    /// The ICMP socket's queue was full at the last poll: the requests due then wait for the
    /// stack to send what is queued (after its address resolution), not for the next instant.
    icmp_full: bool,
    /// Flows it sends.
    pub flows: Vec<Flow>,
    /// Flows it receives: socket, flow index, bytes so far.
    pub sinks: Vec<(SocketHandle, usize, usize)>,
    /// The poll already asked for (µs).
    pub next_poll: Option<u64>,
    /// Senders on the subnet whose MAC the stack has been told.
    neighbours: std::collections::BTreeSet<IpAddr>,
    prefix: u8,
    prefix6: u8,
}

/// What a poll found done.
#[derive(Default)]
pub struct Done {
    /// Pings answered: (asked at µs, target).
    pub pongs: Vec<(u64, IpAddr)>,
    /// Bytes received per flow index.
    pub received: Vec<(usize, usize)>,
}

impl SimSandbox {
    /// A sandbox at `ip/prefix` (and `ip6/len` on a dual-stack network) with `mac`, its clock
    /// at `now` (µs).
    pub fn new(
        name: String,
        (ip, prefix): (Ipv4Addr, u8),
        v6: Option<(Ipv6Addr, u8)>,
        mac: [u8; 6],
        seed: u64,
        now: u64,
    ) -> SimSandbox {
        let mut wire = Wire::default();
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut wire, at(now));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip), prefix));
            if let Some((ip6, len)) = v6 {
                let _ = a.push(IpCidr::new(IpAddress::Ipv6(ip6), len));
            }
        });
        let mut sockets = SocketSet::new(Vec::new());
        let mut s = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 1024]),
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 1024]),
        );
        let ident = (u32::from(ip) & 0xffff) as u16;
        s.bind(icmp::Endpoint::Ident(ident)).expect("fresh socket");
        let icmp = sockets.add(s);
        SimSandbox {
            name,
            ip,
            ip6: v6.map(|(a, _)| a),
            mac,
            iface,
            sockets,
            wire,
            icmp,
            ident,
            pings: Vec::new(),
            icmp_full: false,
            flows: Vec::new(),
            sinks: Vec::new(),
            next_poll: None,
            neighbours: Default::default(),
            prefix,
            prefix6: v6.map_or(128, |(_, l)| l),
        }
    }

    /// Hands a frame from the switch to the stack. Linux queues a reply while it resolves the
    /// asker's address; smoltcp drops it and sends at most one ARP request a second, so a
    /// sandbox asked by many peers at once would lose most answers. Like the Linux neighbour
    /// table once its queued reply went out, the stack is told a same-subnet sender's MAC
    /// first (as an ARP request from it, whose answer goes back to the sender like any).
    pub fn deliver(&mut self, frame: Vec<u8>) {
        if let Some(ns) = self.solicitation_from(&frame) {
            self.wire.rx.push_back(ns);
        }
        if frame.len() >= 34 && frame[12..14] == [0x08, 0x00] {
            let src = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
            let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
            let same = u32::from(src) & mask == u32::from(self.ip) & mask;
            if same && src != self.ip && self.neighbours.insert(src.into()) {
                let mut arp = vec![0u8; 42];
                arp[0..6].copy_from_slice(&self.mac);
                arp[6..12].copy_from_slice(&frame[6..12]);
                arp[12..14].copy_from_slice(&[0x08, 0x06]);
                arp[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
                arp[22..28].copy_from_slice(&frame[6..12]);
                arp[28..32].copy_from_slice(&src.octets());
                arp[38..42].copy_from_slice(&self.ip.octets());
                self.wire.rx.push_back(arp);
            }
        }
        self.wire.rx.push_back(frame);
    }

    /// For an IPv6 packet from a same-subnet sender the stack has not been told of, the
    /// neighbour solicitation that tells it (as [`SimSandbox::deliver`] does with ARP for
    /// IPv4): from the sender, for this sandbox's address, with the sender's MAC.
    fn solicitation_from(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        use smoltcp::wire::{Icmpv6Repr as R, NdiscRepr, RawHardwareAddress};
        let own = self.ip6?;
        if frame.len() < 54 || frame[12..14] != [0x86, 0xdd] {
            return None;
        }
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).ok()?);
        let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix6)).unwrap_or(0);
        let same = u128::from(src) & mask == u128::from(own) & mask;
        if !same || src == own || !self.neighbours.insert(src.into()) {
            return None;
        }
        let repr = R::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: own,
            lladdr: Some(RawHardwareAddress::from_bytes(&frame[6..12])),
        });
        let len = repr.buffer_len();
        let mut f = vec![0u8; 54 + len];
        f[0..6].copy_from_slice(&self.mac);
        f[6..12].copy_from_slice(&frame[6..12]);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&(len as u16).to_be_bytes());
        f[20] = 58;
        f[21] = 255;
        f[22..38].copy_from_slice(&src.octets());
        f[38..54].copy_from_slice(&own.octets());
        repr.emit(
            &src,
            &own,
            &mut Icmpv6Packet::new_unchecked(&mut f[54..]),
            &ChecksumCapabilities::default(),
        );
        Some(f)
    }

    /// Asks for a ping of `target` (sent at the next poll).
    pub fn ping(&mut self, target: IpAddr, now: u64) {
        let seq = self.pings.len() as u16;
        self.pings.push(Ping {
            target,
            seq,
            asked_at: now,
            sent: 0,
            last: 0,
        });
    }

    /// Listens on TCP `port` for flow `id`.
    pub fn listen(&mut self, port: u16, id: usize) {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 65_536]),
            tcp::SocketBuffer::new(vec![0; 4096]),
        );
        s.listen(port).expect("fresh socket");
        let h = self.sockets.add(s);
        self.sinks.push((h, id, 0));
    }

    /// Connects to `to:port` and sends `bytes` as flow `id`.
    pub fn connect(&mut self, to: IpAddr, port: u16, local_port: u16, bytes: usize, id: usize) {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 4096]),
            tcp::SocketBuffer::new(vec![0; 65_536]),
        );
        if s.connect(self.iface.context(), (IpAddress::from(to), port), local_port)
            .is_ok()
        {
            let handle = self.sockets.add(s);
            self.flows.push(Flow {
                handle,
                left: bytes,
                id,
            });
        }
    }

    /// Runs the stack at `now` (µs): reads what arrived, sends what is due. Returns what
    /// completed; frames to send are left in `wire.tx`.
    pub fn poll(&mut self, now: u64) -> Done {
        let mut done = Done::default();
        let t = at(now);
        self.iface.poll(t, &mut self.wire, &mut self.sockets);
        // Pings: send the new ones, take the answers.
        let s = self.sockets.get_mut::<icmp::Socket>(self.icmp);
        let caps = ChecksumCapabilities::default();
        while let Ok((payload, from)) = s.recv() {
            let reply = match (from, self.ip6) {
                (IpAddress::Ipv4(_), _) => {
                    Icmpv4Packet::new_checked(payload)
                        .ok()
                        .and_then(|p| match Icmpv4Repr::parse(&p, &caps) {
                            Ok(Icmpv4Repr::EchoReply { ident, seq_no, .. }) => Some((ident, seq_no)),
                            _ => None,
                        })
                }
                (IpAddress::Ipv6(from), Some(own)) => Icmpv6Packet::new_checked(payload).ok().and_then(|p| {
                    match Icmpv6Repr::parse(&from, &own, &p, &caps) {
                        Ok(Icmpv6Repr::EchoReply { ident, seq_no, .. }) => Some((ident, seq_no)),
                        _ => None,
                    }
                }),
                _ => None,
            };
            let Some((_, seq_no)) = reply.filter(|(ident, _)| *ident == self.ident) else {
                continue;
            };
            if let Some(i) = self.pings.iter().position(|p| p.seq == seq_no && p.sent > 0) {
                let p = self.pings.remove(i);
                done.pongs.push((p.asked_at, p.target));
            }
        }
        let due = |p: &Ping| p.sent == 0 || (p.sent < PING_TRIES && now >= p.last + PING_EVERY_US);
        self.icmp_full = false;
        for p in self.pings.iter_mut().filter(|p| due(p)) {
            let sent = match (p.target, self.ip6) {
                (IpAddr::V4(to), _) => {
                    let repr = Icmpv4Repr::EchoRequest {
                        ident: self.ident,
                        seq_no: p.seq,
                        data: b"switchsim",
                    };
                    s.send(repr.buffer_len(), IpAddress::Ipv4(to))
                        .map(|buf| repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps))
                }
                (IpAddr::V6(to), Some(own)) => {
                    let repr = Icmpv6Repr::EchoRequest {
                        ident: self.ident,
                        seq_no: p.seq,
                        data: b"switchsim",
                    };
                    s.send(repr.buffer_len(), IpAddress::Ipv6(to))
                        .map(|buf| repr.emit(&own, &to, &mut Icmpv6Packet::new_unchecked(buf), &caps))
                }
                // No IPv6 address to ask from: the ping is never sent.
                (IpAddr::V6(_), None) => {
                    p.sent = PING_TRIES;
                    continue;
                }
            };
            if sent.is_err() {
                self.icmp_full = true;
                break;
            }
            p.sent += 1;
            p.last = now;
        }
        // TCP: feed the senders, drain the receivers.
        let chunk = [0x42u8; 4096];
        for f in &mut self.flows {
            let s = self.sockets.get_mut::<tcp::Socket>(f.handle);
            while f.left > 0 && s.can_send() {
                match s.send_slice(&chunk[..f.left.min(chunk.len())]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => f.left -= n,
                }
            }
            if f.left == 0 {
                s.close();
            }
        }
        let mut buf = [0u8; 8192];
        for (h, id, got) in &mut self.sinks {
            let s = self.sockets.get_mut::<tcp::Socket>(*h);
            while s.can_recv() {
                match s.recv_slice(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        *got += n;
                        done.received.push((*id, n));
                    }
                }
            }
        }
        self.iface.poll(t, &mut self.wire, &mut self.sockets);
        done
    }

    /// When the stack next needs a poll (µs), if ever.
    pub fn poll_at(&mut self, now: u64) -> Option<u64> {
        let retry = self
            .pings
            .iter()
            .filter(|p| p.sent < PING_TRIES)
            .map(|p| if p.sent == 0 { now } else { p.last + PING_EVERY_US })
            .filter(|t| !(self.icmp_full && *t <= now))
            .min();
        let stack = self
            .iface
            .poll_at(at(now), &self.sockets)
            .map(|t| (t.total_micros().max(0) as u64).max(now));
        match (retry, stack) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn at(us: u64) -> Instant {
    Instant::from_micros(us as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More pings than the ICMP socket queues, to addresses nobody answers: the stack waits
    /// for address resolution, and the sandbox asks to be polled when that can change, not
    /// at every next instant (which made a simulated second cost a million polls).
    #[test]
    fn a_full_ping_queue_waits_for_the_stack() {
        let t0 = 5_000_000;
        let mut sb = SimSandbox::new(
            "a".into(),
            (Ipv4Addr::new(10, 0, 0, 2), 24),
            None,
            [2, 0, 0, 0, 0, 2],
            1,
            t0,
        );
        for n in 0..20 {
            sb.ping(Ipv4Addr::new(10, 0, 0, 100 + n).into(), t0);
        }
        sb.poll(t0);
        assert!(sb.pings.iter().any(|p| p.sent == 0), "the queue filled up");
        let next = sb.poll_at(t0).expect("pings are outstanding");
        assert!(next > t0, "polled again at {next}, asked at {t0}");
        // Through the pings' three seconds, polls come when something is due.
        let (mut now, mut polls) = (next, 0);
        while now < t0 + 3 * PING_EVERY_US {
            sb.poll(now);
            polls += 1;
            let Some(next) = sb.poll_at(now) else { break };
            assert!(next > now, "polled again at {next}, polled at {now}");
            now = next;
        }
        assert!(polls < 100, "{polls} polls in three seconds");
    }
}
