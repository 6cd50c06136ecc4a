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

/// How long a suspected member has to refute the suspicion before it is declared down.
pub const SUSPECT_TO_DOWN: Duration = Duration::from_secs(3);

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
}

impl Membership {
    /// This host as `me`, expecting about `cluster_size` hosts (tunes dissemination as
    /// memberlist's LAN defaults do), randomness seeded with `seed`.
    ///
    /// Failure detection: a probe every second, indirect probes after 500 ms without an
    /// answer, and [`SUSPECT_TO_DOWN`] of suspicion: a crashed host is declared down about 4-5 s
    /// after it stops answering.
    pub fn new(me: HostId, cluster_size: u32, seed: u64) -> Membership {
        let mut config = Config::new_lan(NonZeroU32::new(cluster_size.max(1)).expect("max(1) is non-zero"));
        config.suspect_to_down_after = SUSPECT_TO_DOWN;
        let records = Arc::new(Mutex::new(Records::new(&me.name)));
        let gossip = Gossip::new(records.clone());
        Membership {
            foca: Foca::with_custom_broadcast(me, config, StdRng::seed_from_u64(seed), PostcardCodec, gossip),
            rt: AccumulatingRuntime::new(),
            records,
        }
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
        Ok(r)
    }

    /// Queues every known record for dissemination again (a member joined or came back and
    /// has missed what was said before).
    pub fn rebroadcast_all(&mut self) {
        let all: Vec<Vec<u8>> = self.records().all().map(|r| r.encode()).collect();
        for r in all {
            let _ = self.foca.add_broadcast(&r);
        }
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
        self.foca
            .handle_data(data, &mut self.rt)
            .map_err(|e| MembershipError(e.to_string()))
    }

    /// Feeds a timer handed out by [`Membership::poll_timer`], once its delay passed.
    ///
    /// # Errors
    /// [`MembershipError`] as foca reports it (stale timers are ignored by foca).
    pub fn handle_timer(&mut self, timer: Timer<HostId>) -> Result<(), MembershipError> {
        self.foca
            .handle_timer(timer, &mut self.rt)
            .map_err(|e| MembershipError(e.to_string()))
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
                OwnedNotification::MemberUp(id) => return Some(Event::Up(id)),
                OwnedNotification::MemberDown(id) => return Some(Event::Down(id)),
                OwnedNotification::Rename(a, b) => return Some(Event::Renamed(a, b)),
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
