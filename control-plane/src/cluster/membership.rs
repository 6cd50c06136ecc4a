//! Cluster membership: SWIM (the `foca` crate) wrapped in this project's sans-IO vocabulary.
//!
//! ```text
//!  handle_data(bytes) / handle_timer(timer) / join(addr)
//!        │
//!        ▼ foca (probe, indirect probe, suspect -> down, piggybacked dissemination)
//!  poll_transmit() -> (SocketAddr, Bytes)   poll_timer() -> (Duration, Timer)   poll_event() -> Event
//! ```
//!
//! Time and randomness come from the caller (timers are data handed back after a delay; the RNG
//! is seeded by the caller). Encryption of what travels is [`super::seal`]'s job, around this.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use foca::{AccumulatingRuntime, Config, Foca, Identity, OwnedNotification, PostcardCodec, State, Timer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::records::{Body, Gossip, Record, RecordKey, Records};

/// How often a host probes one member. Half memberlist's LAN second: with a thousand members
/// a dead one waits a few probe periods for its first probe (each member picks its target in
/// its own shuffled order), and the 5 s budget for declaring it down needs that wait short.
pub const PROBE_PERIOD: Duration = Duration::from_millis(500);
/// How long a direct probe waits for its answer before asking others to probe indirectly.
pub const PROBE_RTT: Duration = Duration::from_millis(250);
/// The fewest times a host sends each update it relays.
const MIN_TRANSMISSIONS: std::num::NonZeroU8 = std::num::NonZeroU8::new(8).expect("non-zero");
/// How long a suspected member has to refute the suspicion before it is declared down.
pub const SUSPECT_TO_DOWN: Duration = Duration::from_secs(2);

/// A host's identity in the cluster: its name (the certificate's), its gossip address, and a
/// bump that grows when the host rejoins so the cluster prefers the newer incarnation.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostId {
    /// The host name.
    pub name: String,
    /// The address it gossips on.
    pub addr: SocketAddr,
    /// Rejoin counter (seconds since the epoch at start, then +1 per rejoin).
    pub bump: u64,
}

impl fmt::Debug for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.bump)
    }
}

impl Identity for HostId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(HostId {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// A membership change worth telling the operator (logged once each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A host became an active member.
    Up(HostId),
    /// A host was declared down by the cluster.
    Down(HostId),
    /// A host came back under a newer identity.
    Renamed(HostId, HostId),
    /// This host knows no other member.
    Alone,
}

/// One member as `cluster peers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Identity.
    pub id: HostId,
    /// `alive`, `suspect` or `down`.
    pub state: &'static str,
    /// SWIM incarnation.
    pub incarnation: u16,
}

/// Errors of the membership protocol (malformed or unexpected messages); nothing changed.
#[derive(Debug, thiserror::Error)]
#[error("membership: {0}")]
pub struct MembershipError(String);

/// SWIM membership of this host.
pub struct Membership {
    foca: Foca<HostId, PostcardCodec, StdRng, Gossip>,
    rt: AccumulatingRuntime<HostId>,
    records: Arc<Mutex<Records>>,
    backlog: Arc<std::sync::atomic::AtomicUsize>,
    /// Active members as the events told them, and the XOR of their fingerprints.
    active: std::collections::HashSet<HostId>,
    active_xor: u64,
}

/// FNV-1a of a host's name, address and bump: stable across hosts and runs.
fn fingerprint(id: &HostId) -> u64 {
    let ip = match id.addr.ip() {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(a) => a.octets(),
    };
    id.name
        .bytes()
        .chain(ip)
        .chain(id.addr.port().to_le_bytes())
        .chain(id.bump.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

impl Membership {
    /// This host as `me`, expecting about `cluster_size` hosts (tunes dissemination as
    /// memberlist's LAN defaults do), randomness seeded with `seed`.
    ///
    /// Failure detection: a probe every [`PROBE_PERIOD`], indirect probes after
    /// [`PROBE_RTT`] without an answer, and [`SUSPECT_TO_DOWN`] of suspicion (the simulator's
    /// crash and lossy scenarios measure what that gives).
    pub fn new(me: HostId, cluster_size: u32, seed: u64) -> Membership {
        let mut config = Config::new_lan(NonZeroU32::new(cluster_size.max(1)).expect("max(1) is non-zero"));
        config.suspect_to_down_after = SUSPECT_TO_DOWN;
        // memberlist's 4·log10(n+1) sends each update 4 times in a 16-host cluster, and one
        // host in a few hundred then hears of it from anti-entropy seconds later; a floor of
        // 8 costs a small cluster little.
        config.max_transmissions = config.max_transmissions.max(MIN_TRANSMISSIONS);
        config.probe_period = PROBE_PERIOD;
        config.probe_rtt = PROBE_RTT;
        let records = Arc::new(Mutex::new(Records::new(&me.name)));
        let backlog = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gossip = Gossip::new(records.clone(), backlog.clone());
        Membership {
            foca: Foca::with_custom_broadcast(me, config, StdRng::seed_from_u64(seed), PostcardCodec, gossip),
            rt: AccumulatingRuntime::new(),
            records,
            backlog,
            active: Default::default(),
            active_xor: 0,
        }
    }

    fn note_backlog(&self) {
        self.backlog.store(
            self.foca.custom_broadcast_backlog(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Records waiting to be piggybacked.
    pub fn backlog(&self) -> usize {
        self.foca.custom_broadcast_backlog()
    }

    /// Writes a local change and hands it to dissemination (piggybacked on SWIM messages until
    /// every member has had it a few times); `now_ms` as for [`Records::local`].
    ///
    /// # Errors
    /// [`MembershipError`] when the record does not fit a datagram.
    pub fn publish(&mut self, key: RecordKey, body: Option<Body>, now_ms: u64) -> Result<Record, MembershipError> {
        let r = self.records().local(key, body, now_ms);
        self.foca
            .add_broadcast(&r.encode())
            .map_err(|e| MembershipError(e.to_string()))?;
        self.note_backlog();
        Ok(r)
    }

    /// Every member this host knows, itself included, as a push-pull exchange sends them
    /// (memberlist's repair for what piggybacked updates missed).
    pub fn member_states(&self) -> Vec<foca::Member<HostId>> {
        let mut v = vec![foca::Member::alive(self.foca.identity().clone())];
        v.extend(self.foca.iter_membership_state().cloned());
        v
    }

    /// A summary of the live identities this host sees, itself included (XOR of a
    /// fingerprint of each): hosts that agree on who is alive have the same digest, so an
    /// exchange sends member lists only when they do not. Kept up to date from the membership
    /// events, so it costs nothing to read (it is current once [`Membership::poll_event`] has
    /// drained them).
    pub fn member_digest(&self) -> u64 {
        self.active_xor ^ fingerprint(self.foca.identity())
    }

    /// Merges another host's [`Membership::member_states`] (newer incarnations and states
    /// win, as for any SWIM update).
    ///
    /// # Errors
    /// [`MembershipError`] as foca reports it.
    pub fn apply_member_states(&mut self, states: Vec<foca::Member<HostId>>) -> Result<(), MembershipError> {
        // foca finds a member by a linear search: hand it only what is news.
        let rank = |s: State| match s {
            State::Alive => 0u8,
            State::Suspect => 1,
            State::Down => 2,
        };
        let known: std::collections::HashMap<&HostId, (u16, u8)> = self
            .foca
            .iter_membership_state()
            .map(|m| (m.id(), (m.incarnation(), rank(m.state()))))
            .collect();
        let news: Vec<foca::Member<HostId>> = states
            .into_iter()
            .filter(|m| known.get(m.id()) != Some(&(m.incarnation(), rank(m.state()))))
            .collect();
        drop(known);
        let r = self
            .foca
            .apply_many(news.into_iter(), true, &mut self.rt)
            .map_err(|e| MembershipError(e.to_string()));
        self.note_backlog();
        r
    }

    /// The shared records, for an anti-entropy exchange running beside the protocol.
    pub fn records_handle(&self) -> Arc<Mutex<Records>> {
        self.records.clone()
    }

    /// The records this host knows.
    pub fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().expect("lock poisoned")
    }

    /// The largest datagram the protocol produces.
    pub fn max_packet_size(&self) -> usize {
        1400
    }

    /// This host.
    pub fn me(&self) -> &HostId {
        self.foca.identity()
    }

    /// Asks the host at `addr` to let us in.
    ///
    /// # Errors
    /// [`MembershipError`] when the announcement cannot be encoded.
    pub fn join(&mut self, addr: SocketAddr) -> Result<(), MembershipError> {
        let dst = HostId {
            name: String::new(),
            addr,
            bump: 0,
        };
        self.foca
            .announce(dst, &mut self.rt)
            .map_err(|e| MembershipError(e.to_string()))
    }

    /// Feeds a datagram that passed authentication.
    ///
    /// # Errors
    /// [`MembershipError`] for a message the protocol rejects.
    pub fn handle_data(&mut self, data: &[u8]) -> Result<(), MembershipError> {
        let r = self
            .foca
            .handle_data(data, &mut self.rt)
            .map_err(|e| MembershipError(e.to_string()));
        self.note_backlog();
        r
    }

    /// Feeds a timer handed out by [`Membership::poll_timer`], once its delay passed.
    ///
    /// # Errors
    /// [`MembershipError`] as foca reports it (stale timers are ignored by foca).
    pub fn handle_timer(&mut self, timer: Timer<HostId>) -> Result<(), MembershipError> {
        let r = self
            .foca
            .handle_timer(timer, &mut self.rt)
            .map_err(|e| MembershipError(e.to_string()));
        self.note_backlog();
        r
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.rt.to_send().map(|(to, data)| (to.addr, data))
    }

    /// The next timer to hand back after its delay.
    pub fn poll_timer(&mut self) -> Option<(Duration, Timer<HostId>)> {
        self.rt.to_schedule()
    }

    /// The next membership change.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            let n = self.rt.to_notify()?;
            match n {
                OwnedNotification::MemberUp(id) => {
                    if self.active.insert(id.clone()) {
                        self.active_xor ^= fingerprint(&id);
                    }
                    return Some(Event::Up(id));
                }
                OwnedNotification::MemberDown(id) => {
                    if self.active.remove(&id) {
                        self.active_xor ^= fingerprint(&id);
                    }
                    return Some(Event::Down(id));
                }
                OwnedNotification::Rename(a, b) => {
                    // Both active: only the rename is told; a down side follows with its own
                    // MemberUp or MemberDown.
                    if self.active.remove(&a) {
                        self.active_xor ^= fingerprint(&a) ^ fingerprint(&b);
                        self.active.insert(b.clone());
                    }
                    return Some(Event::Renamed(a, b));
                }
                OwnedNotification::Idle => return Some(Event::Alone),
                _ => continue,
            }
        }
    }

    /// Every member this host knows, itself first.
    pub fn peers(&self) -> Vec<Peer> {
        let mut v = vec![Peer {
            id: self.foca.identity().clone(),
            state: "alive",
            incarnation: 0,
        }];
        v.extend(self.foca.iter_membership_state().map(|m| Peer {
            id: m.id().clone(),
            state: match m.state() {
                State::Alive => "alive",
                State::Suspect => "suspect",
                State::Down => "down",
            },
            incarnation: m.incarnation(),
        }));
        v
    }

    /// Active members other than this host.
    pub fn num_members(&self) -> usize {
        self.foca.num_members()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// Three hosts over a perfect in-memory network, in virtual time.
    struct Sim {
        hosts: Vec<Membership>,
        now: Duration,
        timers: BinaryHeap<Reverse<(Duration, usize, u64)>>,
        pending: Vec<Option<Timer<HostId>>>,
        dead: Vec<bool>,
    }

    impl Sim {
        fn new(n: usize) -> Sim {
            let hosts = (0..n)
                .map(|i| {
                    let id = HostId {
                        name: format!("h{i}"),
                        addr: format!("10.0.0.{}:7946", i + 1).parse().unwrap(),
                        bump: 1,
                    };
                    Membership::new(id, n as u32, i as u64)
                })
                .collect();
            Sim {
                hosts,
                now: Duration::ZERO,
                timers: BinaryHeap::new(),
                pending: Vec::new(),
                dead: vec![false; n],
            }
        }

        fn index(&self, addr: SocketAddr) -> Option<usize> {
            self.hosts.iter().position(|h| h.me().addr == addr)
        }

        fn pump(&mut self, i: usize) {
            while let Some((to, data)) = self.hosts[i].poll_transmit() {
                if let Some(j) = self.index(to) {
                    if !self.dead[j] {
                        let _ = self.hosts[j].handle_data(&data);
                        self.pump(j);
                    }
                }
            }
            while let Some((after, t)) = self.hosts[i].poll_timer() {
                self.pending.push(Some(t));
                self.timers
                    .push(Reverse((self.now + after, i, (self.pending.len() - 1) as u64)));
            }
            while self.hosts[i].poll_event().is_some() {}
        }

        fn run_until(&mut self, t: Duration) {
            while let Some(Reverse((at, i, k))) = self.timers.peek().copied() {
                if at > t {
                    break;
                }
                self.timers.pop();
                self.now = at;
                if self.dead[i] {
                    continue;
                }
                if let Some(timer) = self.pending[k as usize].take() {
                    let _ = self.hosts[i].handle_timer(timer);
                    self.pump(i);
                }
            }
            self.now = t;
        }

        fn state_of(&self, at: usize, of: usize) -> Option<&'static str> {
            let name = self.hosts[of].me().name.clone();
            self.hosts[at]
                .peers()
                .into_iter()
                .find(|p| p.id.name == name)
                .map(|p| p.state)
        }
    }

    #[test]
    fn records_reach_every_host_and_removals_follow() {
        let mut sim = Sim::new(3);
        for i in 1..3 {
            let addr = sim.hosts[0].me().addr;
            sim.hosts[i].join(addr).unwrap();
            sim.pump(i);
        }
        sim.run_until(Duration::from_secs(3));
        let key = RecordKey::Network(crate::Id::from_random([5; 32]));
        let body = Body::Network(super::super::records::NetworkRecord {
            name: "ovl".into(),
            subnet: "10.88.0.0/24".parse().unwrap(),
            gateway: "10.88.0.1".parse().unwrap(),
            vni: 4096,
            max_hosts: 64,
            mtu: 1450,
            internal: false,
            created: std::time::SystemTime::UNIX_EPOCH,
        });
        sim.hosts[2].publish(key.clone(), Some(body.clone()), 1).unwrap();
        sim.pump(2);
        sim.run_until(Duration::from_secs(6));
        for i in 0..3 {
            let r = sim.hosts[i].records().get(&key).cloned();
            assert_eq!(r.and_then(|r| r.body), Some(body.clone()), "host {i}");
        }
        assert!(sim.hosts[0].records().take_changes().contains(&key));
        sim.hosts[0].publish(key.clone(), None, 2).unwrap();
        sim.pump(0);
        sim.run_until(Duration::from_secs(9));
        for i in 0..3 {
            assert_eq!(
                sim.hosts[i].records().get(&key).unwrap().body,
                None,
                "host {i} saw the removal"
            );
        }
    }

    #[test]
    fn hosts_join_and_a_dead_one_is_declared_down() {
        let mut sim = Sim::new(3);
        for i in 1..3 {
            let addr = sim.hosts[0].me().addr;
            sim.hosts[i].join(addr).unwrap();
            sim.pump(i);
        }
        sim.run_until(Duration::from_secs(5));
        for i in 0..3 {
            assert_eq!(sim.hosts[i].num_members(), 2, "host {i} sees both others");
        }
        sim.dead[2] = true;
        sim.run_until(Duration::from_secs(20));
        assert_eq!(sim.state_of(0, 2), Some("down"));
        assert_eq!(sim.state_of(1, 2), Some("down"));
        assert_eq!(sim.state_of(0, 1), Some("alive"));
    }
}
