//! Cluster membership: SWIM with suspicion and piggybacked dissemination (Das, Gupta and
//! Motivala, 2002), sans-IO, carrying this project's records beside membership updates.
//!
//! ```text
//!  handle_data(bytes) / handle_timer(timer) / join(addr) / publish(record)
//!        │
//!        ▼  probe one member a period (ping · ack; ping-req through 3 others) → suspect → down
//!           gossip every 200 ms to 3 members; every message piggybacks updates and records
//!  poll_transmit() -> (SocketAddr, Bytes)   poll_timer() -> (Duration, Timer)   poll_event() -> Event
//! ```
//!
//! Members are indexed by address, so every update costs O(1) whatever the cluster's size (a
//! linear search per update made membership of a few thousand hosts quadratic). Time and
//! randomness come from the caller (timers are data handed back after a delay; the RNG is
//! seeded by the caller). Encryption of what travels is [`super::seal`]'s job, around this.
//!
//! Wire form of a message: the postcard header ([`Header`]: sender, its incarnation, the
//! kind), then membership updates and then records, each section a LEB128 count followed by
//! LEB128-length-prefixed postcard items.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashTable;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use serde::{Deserialize, Serialize};

use super::backlog::{Backlog, ITEM_OVERHEAD};
use super::records::{Body, Record, RecordKey, Records, Taken, RELAY_BACKLOG_MAX};
use crate::Id;

/// How often a host probes one member. Half memberlist's LAN second: with a thousand members
/// a dead one waits a few probe periods for its first probe (each member picks its target in
/// its own shuffled order), and the 5 s budget for declaring it down needs that wait short.
pub const PROBE_PERIOD: Duration = Duration::from_millis(500);
/// How long a direct probe waits for its answer before asking others to probe indirectly.
pub const PROBE_RTT: Duration = Duration::from_millis(250);
/// How often a host piggybacks what it has to tell on messages of their own, and to how
/// many members (memberlist's LAN gossip).
pub const GOSSIP_PERIOD: Duration = Duration::from_millis(200);
const GOSSIP_FANOUT: usize = 3;
/// The most gossip messages a period sends while a burst drains.
const GOSSIP_BURST: usize = 4 * GOSSIP_FANOUT;
/// How many members are asked to probe a member that did not answer.
const INDIRECT_PROBES: usize = 3;
/// The fewest times a host sends each update it relays.
const MIN_TRANSMISSIONS: u32 = 8;
/// How long a suspected member has to refute the suspicion before it is declared down.
pub const SUSPECT_TO_DOWN: Duration = Duration::from_secs(2);
/// The largest datagram the protocol produces.
pub const MAX_PACKET: usize = 1400;
/// Membership updates a host keeps waiting to be sent; beyond, the most-sent are dropped
/// (a join storm of thousands of hosts) and member-list exchanges repair what they missed.
const UPDATES_MAX: usize = 1024;
/// The dissemination key of this host's own updates.
const ME: u32 = u32::MAX;

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

/// What a member is believed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    /// Answering.
    Alive,
    /// Did not answer a probe; has [`SUSPECT_TO_DOWN`] to refute it.
    Suspect,
    /// Declared down; final for this identity (the host rejoins under a higher bump).
    Down,
}

impl State {
    /// `alive`, `suspect` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Suspect => "suspect",
            State::Down => "down",
        }
    }

    fn active(self) -> bool {
        self != State::Down
    }
}

/// One member's state as updates and exchanges carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// Identity.
    pub id: HostId,
    /// SWIM incarnation: only the member itself raises it, to refute a suspicion.
    pub incarnation: u16,
    /// State.
    pub state: State,
}

/// A timer to hand back to [`Membership::handle_timer`] once its delay passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// Start the next probe (and judge the last one).
    Probe,
    /// The direct probe numbered so got no answer in time: probe indirectly.
    ProbeTimeout(u32),
    /// A suspicion ends: down, unless refuted meanwhile.
    Suspicion {
        /// The member's address.
        addr: SocketAddr,
        /// Its identity's bump.
        bump: u64,
        /// The incarnation it was suspected at.
        incarnation: u16,
    },
    /// Piggyback what is pending on messages of their own.
    Gossip,
    /// The check of another host's claim, by the probe numbered so: after [`PROBE_RTT`]
    /// unanswered, probe indirectly; after twice that (`last`), suspect the member.
    Verify {
        /// The probe.
        n: u32,
        /// Whether this is the check's end.
        last: bool,
    },
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
    /// A member is suspected: a probe went unanswered (here, or at the member that spread the
    /// suspicion); it is declared down unless it refutes in time.
    Suspected(HostId),
    /// A suspected member refuted the suspicion (it answered under a higher incarnation).
    Refuted(HostId),
    /// A host whose address is of the other family than this host's was heard of and refused:
    /// a cluster's underlay is all IPv4 or all IPv6 (told once per address).
    OtherFamily(HostId),
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

#[derive(Debug, Serialize, Deserialize)]
enum Kind {
    Ping(u32),
    Ack(u32),
    /// Probe `target` for me.
    PingReq {
        probe: u32,
        target: HostId,
    },
    /// A probe on behalf of `origin`.
    IndirectPing {
        probe: u32,
        origin: HostId,
    },
    /// The answer to an indirect probe, to the member that sent it.
    IndirectAck {
        probe: u32,
        origin: HostId,
    },
    /// `target` answered the probe made on your behalf.
    ForwardedAck {
        probe: u32,
        target: HostId,
    },
    /// Let me in: answered with a feed of members.
    Announce,
    Feed,
    Gossip,
    /// I need `count` addresses of `network`, or the one at offset `at`: give me some of
    /// yours.
    Want {
        network: Id,
        count: u32,
        at: Option<u32>,
    },
    /// Here is a claim of addresses of `network` for you (the first record carries it).
    Granted {
        network: Id,
    },
    /// I have no address of `network` to give.
    NoSpace {
        network: Id,
    },
    /// Send me the certificates of these hosts (you sent me their records, so you hold
    /// them); answered with the certificates' records, one message each.
    Certs {
        hosts: Vec<String>,
    },
}

/// Certificates asked for in one message, and answered of one.
const CERTS_PER_ASK: usize = 8;
/// How long before an origin's certificate is asked for again, in ms.
const CERT_ASK_AGAIN_MS: u64 = 1_000;
/// Origins remembered as asked for; beyond, those asked longest ago are forgotten.
const CERT_ASKED_MAX: usize = 4_096;
/// Certificates answered per second, and in a burst: a bound on what asks, which anyone
/// holding the gossip key can send from any address, make this host send.
const CERT_ANSWERS_PER_S: u64 = 200;
const CERT_ANSWERS_BURST: u64 = 1_000;

/// What another host asked of this one, or answered it, about overlay addresses
/// ([`super::space`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `from` needs `count` addresses of `network`, or the one at offset `at`.
    Want {
        /// The host asking.
        from: HostId,
        /// The network.
        network: Id,
        /// How many it needs.
        count: u32,
        /// The one address it needs (a static address), if any.
        at: Option<u32>,
    },
    /// `from` granted addresses of `network` (the claim came with it).
    Granted {
        /// The giver.
        from: HostId,
        /// The network.
        network: Id,
    },
    /// `from` has no address of `network` to give.
    NoSpace {
        /// The host asked.
        from: HostId,
        /// The network.
        network: Id,
    },
}

/// Asks waiting for the driver; beyond, new ones are dropped (their senders ask again).
const ASKS_MAX: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    from: HostId,
    incarnation: u16,
    kind: Kind,
}

/// A [`MemberState`] read without copying the name (most updates repeat what is known), or
/// written from a member without copying it; encoded exactly as a [`MemberState`].
#[derive(Serialize, Deserialize)]
struct StateRef<'a> {
    name: &'a str,
    addr: SocketAddr,
    bump: u64,
    incarnation: u16,
    state: State,
}

impl StateRef<'_> {
    fn owned(&self) -> MemberState {
        MemberState {
            id: HostId {
                name: self.name.to_string(),
                addr: self.addr,
                bump: self.bump,
            },
            incarnation: self.incarnation,
            state: self.state,
        }
    }
}

/// Members by address: a table of member indexes, hashed by the member's address (a slot is
/// 4 bytes; the address is read from the member itself). The table and the member list are
/// what grow with the cluster, on every host.
#[derive(Default)]
struct AddrIndex(HashTable<u32>);

fn addr_hash(a: &SocketAddr) -> u64 {
    let mut h = FxHasher::default();
    match a {
        SocketAddr::V4(v) => h.write_u64(u64::from(v.ip().to_bits()) << 16 | u64::from(v.port())),
        SocketAddr::V6(v) => v.hash(&mut h),
    }
    h.finish()
}

impl AddrIndex {
    fn get(&self, members: &[Member], a: &SocketAddr) -> Option<usize> {
        self.0
            .find(addr_hash(a), |&i| members[i as usize].addr == *a)
            .map(|&i| i as usize)
    }

    /// Indexes `members[i]`.
    fn insert(&mut self, members: &[Member], i: usize) {
        let i = u32::try_from(i).expect("fewer than 2^32 members");
        let hash = |&j: &u32| addr_hash(&members[j as usize].addr);
        self.0.insert_unique(hash(&i), i, hash);
    }
}

/// The longest host name a member may have (a DNS name is at most 253 bytes).
pub const MAX_NAME: usize = 255;

/// The most members a host keeps, itself excluded: far above any cluster this fabric runs
/// (10,000 hosts are simulated), and a bound on what a key holder announcing made-up
/// members can make every host hold. Beyond, a new member is refused and counted.
pub const MAX_MEMBERS: usize = 65_536;
/// How many addresses of the other family are told of (each once); later ones are counted.
const OTHER_FAMILY_TOLD: usize = 256;

/// A member, compactly: every host keeps one per member, so a cluster of n hosts holds n²
/// (48 bytes each; the name lives in [`Membership::names`]).
struct Member {
    addr: SocketAddr,
    bump: u64,
    /// Where its name starts in the name arena, and its length.
    name: u32,
    name_len: u8,
    incarnation: u16,
    state: State,
}

struct Probe {
    n: u32,
    target: SocketAddr,
    acked: bool,
}

/// Checks of other hosts' claims running at once; beyond, a claim is left to this host's own
/// round of probes.
const VERIFY_MAX: usize = 256;
/// Claims remembered as checked and relayed.
const CLAIMS_MAX: usize = 4_096;

/// A check of another host's claim about a member.
struct Check {
    probe: Probe,
    /// The claim is that the member is down (not only suspect).
    down: bool,
}

/// SWIM membership of this host.
pub struct Membership {
    /// The most bytes a message takes ([`MAX_PACKET`] unless the driver wraps messages).
    max_packet: usize,
    /// Claims of other hosts that a member is suspect or down, or alive again while suspected
    /// here, each being checked by a probe of this host's own ([`VERIFY_MAX`] at most).
    verifying: Vec<Check>,
    /// Claims heard lately (member, identity, incarnation, state): each is checked and
    /// relayed once ([`CLAIMS_MAX`] held, then forgotten all at once).
    claims: rustc_hash::FxHashSet<(SocketAddr, u64, u16, State)>,
    me: HostId,
    incarnation: u16,
    rng: StdRng,
    members: Vec<Member>,
    index: AddrIndex,
    /// The members' names, end to end.
    names: String,
    /// Bytes of `names` no member uses any more (left by renamed members).
    names_garbage: usize,
    /// New members refused because [`MAX_MEMBERS`] were held, or their address is of the
    /// other family than this host's.
    refused_members: u64,
    /// Addresses of the other family already told of ([`Event::OtherFamily`]), at most
    /// [`OTHER_FAMILY_TOLD`].
    other_family: rustc_hash::FxHashSet<SocketAddr>,
    active: usize,
    /// Fingerprints of the active members, XORed.
    active_xor: u64,
    /// Probe order: indexes of active members, shuffled each round.
    order: Vec<u32>,
    cursor: usize,
    probe: Option<Probe>,
    probe_seq: u32,
    /// Updates by member index ([`ME`] for this host's own).
    updates: Backlog<u32>,
    gossip: Backlog<RecordKey>,
    records: Arc<Mutex<Records>>,
    out: VecDeque<(SocketAddr, Bytes)>,
    timers: VecDeque<(Duration, Timer)>,
    events: VecDeque<Event>,
    asks: VecDeque<Ask>,
    /// Asks dropped because [`ASKS_MAX`] were waiting.
    asks_dropped: u64,
    /// Origins whose certificates were asked for, with when (ms).
    certs_asked: FxHashMap<Arc<str>, u64>,
    /// Certificates this host may still answer (tokens), and when they were last counted.
    cert_tokens: (u64, u64),
    /// Hosts the CA revoked: down, and their messages ignored.
    revoked: FxHashSet<String>,
    /// Messages from revoked hosts ignored.
    revoked_dropped: u64,
}

/// FNV-1a of a host's name, address and bump: stable across hosts and runs.
fn fingerprint(name: &str, addr: SocketAddr, bump: u64) -> u64 {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(a) => a.octets(),
    };
    name.bytes()
        .chain(ip)
        .chain(addr.port().to_le_bytes())
        .chain(bump.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// Pushes onto a list that grows with the cluster by an eighth at a time, not double: the
/// spare room is a cost paid on every host.
fn push_compact<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 8 + 16);
    }
    v.push(x);
}

/// Pops from a queue, giving back its room once it is empty after a burst.
pub(super) fn pop_shrinking<T>(q: &mut VecDeque<T>) -> Option<T> {
    let x = q.pop_front();
    if q.is_empty() && q.capacity() > 64 {
        q.shrink_to(16);
    }
    x
}

/// Refuses a host name longer than [`MAX_NAME`].
fn check_name(name: &str) -> Result<(), MembershipError> {
    if name.len() > MAX_NAME {
        return Err(MembershipError(format!(
            "a host name of {} bytes; at most {MAX_NAME} are accepted",
            name.len()
        )));
    }
    Ok(())
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn take_len(b: &mut &[u8]) -> Result<usize, MembershipError> {
    let mut n = 0usize;
    for shift in (0..28).step_by(7) {
        let (&c, rest) = b
            .split_first()
            .ok_or_else(|| MembershipError("message ends inside a length".into()))?;
        *b = rest;
        n |= usize::from(c & 0x7f) << shift;
        if c & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(MembershipError("a length longer than 4 bytes".into()))
}

fn take_items<'a>(b: &mut &'a [u8]) -> Result<Vec<&'a [u8]>, MembershipError> {
    let n = take_len(b)?;
    if n > b.len() {
        return Err(MembershipError(format!("{n} items announced in {} bytes", b.len())));
    }
    (0..n)
        .map(|_| {
            let len = take_len(b)?;
            if len > b.len() {
                return Err(MembershipError(format!("an item of {len} bytes in {} left", b.len())));
            }
            let (item, rest) = b.split_at(len);
            *b = rest;
            Ok(item)
        })
        .collect()
}

impl Membership {
    /// This host as `me`, randomness seeded with `seed`. How many times an update is sent
    /// follows the cluster's size as this host sees it (memberlist's 4·⌈log10(n+1)⌉, at
    /// least 8).
    pub fn new(me: HostId, seed: u64) -> Membership {
        let records = Arc::new(Mutex::new(Records::new(&me.name)));
        let mut m = Membership {
            me,
            incarnation: 0,
            rng: StdRng::seed_from_u64(seed),
            members: Vec::new(),
            index: AddrIndex::default(),
            names: String::new(),
            names_garbage: 0,
            refused_members: 0,
            other_family: rustc_hash::FxHashSet::default(),
            active: 0,
            active_xor: 0,
            order: Vec::new(),
            cursor: 0,
            probe: None,
            probe_seq: 0,
            updates: Backlog::default(),
            gossip: Backlog::default(),
            records,
            out: VecDeque::new(),
            timers: VecDeque::new(),
            events: VecDeque::new(),
            asks: VecDeque::new(),
            asks_dropped: 0,
            certs_asked: FxHashMap::default(),
            cert_tokens: (CERT_ANSWERS_BURST, 0),
            revoked: Default::default(),
            revoked_dropped: 0,
            max_packet: MAX_PACKET,
            verifying: Vec::new(),
            claims: Default::default(),
        };
        // Spread the first probe and gossip over their periods (hosts started together do
        // not tick together).
        let first = |p: Duration, rng: &mut StdRng| p.mul_f64(rng.random_range(0.0..1.0));
        let (probe, gossip) = (first(PROBE_PERIOD, &mut m.rng), first(GOSSIP_PERIOD, &mut m.rng));
        m.timers.push_back((probe, Timer::Probe));
        m.timers.push_back((gossip, Timer::Gossip));
        m
    }

    /// How many times each update is sent, for the cluster's current size.
    fn transmissions(&self) -> u32 {
        let n = (self.active + 2) as f64;
        (4 * n.log10().ceil() as u32).max(MIN_TRANSMISSIONS)
    }

    /// Records waiting to be piggybacked.
    pub fn backlog(&self) -> usize {
        self.gossip.len()
    }

    /// Writes a local change and hands it to dissemination (piggybacked on messages until
    /// sent a few times); `now_ms` as for [`Records::local`].
    ///
    /// # Errors
    /// [`MembershipError`] when the record does not fit a datagram.
    pub fn publish(&mut self, key: RecordKey, body: Option<Body>, now_ms: u64) -> Result<Record, MembershipError> {
        let r = self.records().local(key, body, now_ms);
        let wire = r.encode();
        if wire.len() + ITEM_OVERHEAD > self.max_packet / 2 {
            return Err(MembershipError(format!(
                "a record of {} bytes does not fit a gossip message",
                wire.len()
            )));
        }
        let times = self.transmissions();
        self.gossip.push(r.key.clone(), Bytes::from(wire), times);
        Ok(r)
    }

    fn state_of_me(&self) -> MemberState {
        MemberState {
            id: self.me.clone(),
            incarnation: self.incarnation,
            state: State::Alive,
        }
    }

    /// Every member this host knows, itself included, as a push-pull exchange sends them
    /// (memberlist's repair for what piggybacked updates missed).
    pub fn member_states(&self) -> Vec<MemberState> {
        std::iter::once(self.state_of_me())
            .chain((0..self.members.len()).map(|i| self.state_ref(i).owned()))
            .collect()
    }

    fn find(&self, a: &SocketAddr) -> Option<usize> {
        self.index.get(&self.members, a)
    }

    fn name_of(&self, m: &Member) -> &str {
        &self.names[m.name as usize..m.name as usize + usize::from(m.name_len)]
    }

    /// Member `i`'s state, borrowed.
    fn state_ref(&self, i: usize) -> StateRef<'_> {
        let m = &self.members[i];
        StateRef {
            name: self.name_of(m),
            addr: m.addr,
            bump: m.bump,
            incarnation: m.incarnation,
            state: m.state,
        }
    }

    fn id_of(&self, i: usize) -> HostId {
        self.state_ref(i).owned().id
    }

    /// Whether member `i` has this name and bump (inline: names are short).
    fn is(&self, i: usize, name: &str, bump: u64) -> bool {
        let m = &self.members[i];
        let known = self.name_of(m);
        m.bump == bump && known.len() == name.len() && known.bytes().zip(name.bytes()).all(|(a, b)| a == b)
    }

    /// Appends a name to the arena: where it starts and its length.
    fn store_name(&mut self, name: &str) -> (u32, u8) {
        let at = u32::try_from(self.names.len()).expect("names under 4 GiB");
        self.names.push_str(name);
        (at, u8::try_from(name.len()).expect("names checked against MAX_NAME"))
    }

    /// Rewrites the arena once most of it is names no member uses.
    fn compact_names(&mut self) {
        if self.names_garbage < 4096 || self.names_garbage < self.names.len() / 2 {
            return;
        }
        let mut names = String::with_capacity(self.names.len() - self.names_garbage);
        for m in &mut self.members {
            let at = u32::try_from(names.len()).expect("names under 4 GiB");
            names.push_str(&self.names[m.name as usize..m.name as usize + usize::from(m.name_len)]);
            m.name = at;
        }
        self.names = names;
        self.names_garbage = 0;
    }

    /// A summary of the live identities this host sees, itself included (XOR of a
    /// fingerprint of each): hosts that agree on who is alive have the same digest, so an
    /// exchange sends member lists only when they do not. Kept up to date as members come
    /// and go, so it costs nothing to read.
    pub fn member_digest(&self) -> u64 {
        self.active_xor ^ fingerprint(&self.me.name, self.me.addr, self.me.bump)
    }

    /// Merges another host's [`Membership::member_states`] (newer incarnations and states
    /// win, as for any SWIM update; what changed is disseminated).
    pub fn apply_member_states(&mut self, states: Vec<MemberState>) {
        for s in states {
            self.hear(s, self.me.addr);
        }
    }

    /// Takes an update `from` a host about a member: what a host says of itself, and news of a
    /// member not known here, are applied; a claim that a member known here is suspect or
    /// down, or alive again while suspected here, is checked with a probe of this host's own
    /// (the member's answer speaks for it; no answer is this host's own evidence).
    fn hear(&mut self, s: MemberState, from: SocketAddr) {
        let claim = s.id.addr != from
            && s.id.addr != self.me.addr
            && self.find(&s.id.addr).is_some_and(|i| {
                let m = &self.members[i];
                match s.state {
                    State::Alive => m.state == State::Suspect,
                    State::Suspect | State::Down => m.state.active(),
                }
            });
        if !claim {
            self.apply(s);
            return;
        }
        if self.claims.len() >= CLAIMS_MAX {
            self.claims.clear();
        }
        if self.claims.insert((s.id.addr, s.id.bump, s.incarnation, s.state)) {
            // Relayed as heard (every host checks it for itself), so that news spreads as
            // fast as SWIM's: the member hears of a suspicion and refutes it.
            self.disseminate(&s);
            self.verify(s.id.addr, s.state == State::Down);
        }
    }

    /// Asks [`INDIRECT_PROBES`] members to probe `target` for this host's probe `n`.
    fn probe_indirectly(&mut self, n: u32, target: SocketAddr) {
        let Some(tid) = self.find(&target).map(|i| self.id_of(i)) else {
            return;
        };
        for helper in self.random_active(INDIRECT_PROBES, Some(target)) {
            let kind = Kind::PingReq {
                probe: n,
                target: tid.clone(),
            };
            self.send(helper, kind);
        }
    }

    /// Declares the member at `addr`, as known here, down.
    fn declare_down(&mut self, addr: SocketAddr) {
        if let Some(i) = self.find(&addr) {
            let down = MemberState {
                state: State::Down,
                ..self.state_ref(i).owned()
            };
            self.apply(down);
        }
    }

    /// Ends the suspicion of the member at `addr` after `after` rather than
    /// [`SUSPECT_TO_DOWN`] (unless it is refuted first).
    fn shorten_suspicion(&mut self, addr: SocketAddr, after: Duration) {
        let Some(i) = self.find(&addr) else { return };
        let m = &self.members[i];
        if m.state == State::Suspect {
            let t = Timer::Suspicion {
                addr,
                bump: m.bump,
                incarnation: m.incarnation,
            };
            self.timers.push_back((after, t));
        }
    }

    /// The member at `addr` answered a check of this host's: if it is suspected here, that
    /// is this host's own evidence that it lives (the rest of the cluster still waits for its
    /// refutation, under a higher incarnation).
    fn answered(&mut self, addr: SocketAddr) {
        let Some(i) = self.find(&addr) else { return };
        if self.members[i].state == State::Suspect {
            self.members[i].state = State::Alive;
            let id = self.id_of(i);
            self.events.push_back(Event::Refuted(id));
        }
    }

    /// Probes the member at `target` to check another host's claim (that it is `down`, or
    /// suspect or alive again), unless a check of it runs (which then checks the graver
    /// claim) or [`VERIFY_MAX`] do.
    fn verify(&mut self, target: SocketAddr, down: bool) {
        if let Some(v) = self.verifying.iter_mut().find(|v| v.probe.target == target) {
            v.down |= down;
            return;
        }
        if self.verifying.len() >= VERIFY_MAX {
            return;
        }
        self.probe_seq = self.probe_seq.wrapping_add(1);
        let n = self.probe_seq;
        self.verifying.push(Check {
            probe: Probe {
                n,
                target,
                acked: false,
            },
            down,
        });
        self.send(target, Kind::Ping(n));
        self.timers.push_back((PROBE_RTT, Timer::Verify { n, last: false }));
    }

    /// Cuts off host `name`, which the CA revoked: declared down here, its messages and news
    /// of it alive from others ignored from now on.
    pub fn revoke(&mut self, name: &str) {
        if !self.revoked.insert(name.to_string()) {
            return;
        }
        let theirs: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].state.active() && self.name_of(&self.members[i]) == name)
            .collect();
        for i in theirs {
            let down = MemberState {
                state: State::Down,
                ..self.state_ref(i).owned()
            };
            self.apply(down);
        }
    }

    /// Messages from revoked hosts ignored.
    pub fn revoked_dropped(&self) -> u64 {
        self.revoked_dropped
    }

    /// The shared records, for an anti-entropy exchange running beside the protocol.
    pub fn records_handle(&self) -> Arc<Mutex<Records>> {
        self.records.clone()
    }

    /// New members refused because [`MAX_MEMBERS`] were held, or because their address is of
    /// the other family than this host's.
    pub fn refused_members(&self) -> u64 {
        self.refused_members
    }

    /// The records this host knows.
    pub fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().expect("lock poisoned")
    }

    /// The largest datagram the protocol produces.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet
    }

    /// Messages take at most `bytes` from now on (the driver's wrapping of each message takes
    /// the rest of a datagram); at least 512.
    pub fn set_max_packet_size(&mut self, bytes: usize) {
        self.max_packet = bytes.max(512);
    }

    /// This host.
    pub fn me(&self) -> &HostId {
        &self.me
    }

    /// Asks the host at `addr` to let us in.
    pub fn join(&mut self, addr: SocketAddr) {
        if addr != self.me.addr {
            self.send(addr, Kind::Announce);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        pop_shrinking(&mut self.out)
    }

    /// The next timer to hand back after its delay.
    pub fn poll_timer(&mut self) -> Option<(Duration, Timer)> {
        pop_shrinking(&mut self.timers)
    }

    /// The next membership change.
    pub fn poll_event(&mut self) -> Option<Event> {
        pop_shrinking(&mut self.events)
    }

    /// The next ask of another host (or answer to one of this host's).
    pub fn poll_ask(&mut self) -> Option<Ask> {
        pop_shrinking(&mut self.asks)
    }

    /// How many asks were dropped because too many waited.
    pub fn asks_dropped(&self) -> u64 {
        self.asks_dropped
    }

    /// Asks the member at `to` for `count` addresses of `network`, or the one at offset
    /// `at`.
    pub fn want_space(&mut self, to: SocketAddr, network: Id, count: u32, at: Option<u32>) {
        self.send(to, Kind::Want { network, count, at });
    }

    /// Sends `claim` (a record this host wrote) to the member at `to`, as the answer to its
    /// ask for addresses of `network`.
    pub fn grant(&mut self, to: SocketAddr, network: Id, claim: &Record) {
        // This host's certificate ahead of the claim, so that the asker can take it at once.
        let me: Arc<str> = self.me.name.as_str().into();
        let cert = self
            .records()
            .get(&RecordKey::Host(me))
            .map(|c| Bytes::from(c.encode()));
        let first = cert.into_iter().chain([Bytes::from(claim.encode())]).collect();
        self.send_with(to, Kind::Granted { network }, first);
    }

    /// Disseminates a record already in [`Membership::records`] (written there directly, or
    /// kept from before a restart).
    pub fn spread(&mut self, r: &Record) {
        let times = self.transmissions();
        self.gossip.push(r.key.clone(), Bytes::from(r.encode()), times);
    }

    /// Tells the member at `to` that this host has no address of `network` to give.
    pub fn no_space(&mut self, to: SocketAddr, network: Id) {
        self.send(to, Kind::NoSpace { network });
    }

    fn asked(&mut self, ask: Ask) {
        if self.asks.len() >= ASKS_MAX {
            self.asks_dropped += 1;
        } else {
            self.asks.push_back(ask);
        }
    }

    /// Every member this host knows, itself first.
    pub fn peers(&self) -> Vec<Peer> {
        std::iter::once(Peer {
            id: self.me.clone(),
            state: "alive",
            incarnation: self.incarnation,
        })
        .chain(self.members.iter().enumerate().map(|(i, m)| Peer {
            id: self.id_of(i),
            state: m.state.as_str(),
            incarnation: m.incarnation,
        }))
        .collect()
    }

    /// The addresses of the members (other than this host) in `state`, without copying the
    /// list.
    pub fn addrs_in(&self, state: State) -> impl Iterator<Item = SocketAddr> + '_ {
        self.members.iter().filter(move |m| m.state == state).map(|m| m.addr)
    }

    /// The `k`-th member (other than this host) in `state`, in the members' order.
    pub fn member_in(&self, state: State, k: usize) -> Option<HostId> {
        let i = (0..self.members.len())
            .filter(|i| self.members[*i].state == state)
            .nth(k)?;
        Some(self.id_of(i))
    }

    /// The member at `addr`, when it is alive here.
    pub fn alive_at(&self, addr: &SocketAddr) -> Option<HostId> {
        let i = self.find(addr)?;
        (self.members[i].state == State::Alive).then(|| self.id_of(i))
    }

    /// Active members other than this host.
    pub fn num_members(&self) -> usize {
        self.active
    }

    /// Feeds a timer handed out by [`Membership::poll_timer`], once its delay passed (a
    /// stale one changes nothing).
    pub fn handle_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Probe => {
                self.timers.push_back((PROBE_PERIOD, Timer::Probe));
                if let Some(p) = self.probe.take() {
                    if !p.acked {
                        self.suspect(p.target);
                    }
                }
                if let Some(target) = self.next_target() {
                    self.probe_seq = self.probe_seq.wrapping_add(1);
                    let n = self.probe_seq;
                    self.probe = Some(Probe {
                        n,
                        target,
                        acked: false,
                    });
                    self.send(target, Kind::Ping(n));
                    self.timers.push_back((PROBE_RTT, Timer::ProbeTimeout(n)));
                }
            }
            Timer::ProbeTimeout(n) => {
                let Some(p) = self.probe.as_ref().filter(|p| p.n == n && !p.acked) else {
                    return;
                };
                self.probe_indirectly(n, p.target);
            }
            Timer::Suspicion {
                addr,
                bump,
                incarnation,
            } => {
                let Some(i) = self.find(&addr) else { return };
                let m = &self.members[i];
                if m.bump == bump && m.incarnation == incarnation && m.state == State::Suspect {
                    self.declare_down(addr);
                }
            }
            Timer::Verify { n, last } => {
                let Some(at) = self.verifying.iter().position(|v| v.probe.n == n) else {
                    return;
                };
                let v = &self.verifying[at];
                if v.probe.acked || last {
                    let v = self.verifying.swap_remove(at);
                    if v.probe.acked {
                        self.answered(v.probe.target);
                    } else if v.down {
                        // Another host gave up on it after its own suspicion ran out, and
                        // neither this host nor three others reach it: down.
                        self.declare_down(v.probe.target);
                    } else {
                        // This host's own evidence: neither it nor three others reached it.
                        // The claimant suspected it a check earlier: the suspicion runs out
                        // when the claimant's does.
                        self.suspect(v.probe.target);
                        self.shorten_suspicion(v.probe.target, SUSPECT_TO_DOWN.saturating_sub(2 * PROBE_RTT));
                    }
                    return;
                }
                self.probe_indirectly(n, v.probe.target);
                self.timers.push_back((PROBE_RTT, Timer::Verify { n, last: true }));
            }
            Timer::Gossip => {
                self.timers.push_back((GOSSIP_PERIOD, Timer::Gossip));
                // Three members a period, and more while a burst is pending (up to
                // GOSSIP_BURST): piggybacking alone carries a few records a second. Not
                // beyond that once the backlog is full: relaying has stopped and anti-entropy
                // carries the bulk, so more messages would mostly repeat.
                let limit = if self.gossip.len() < RELAY_BACKLOG_MAX {
                    GOSSIP_BURST
                } else {
                    GOSSIP_FANOUT
                };
                let mut sent = 0;
                while sent < limit && (!self.updates.is_empty() || !self.gossip.is_empty()) {
                    let to = self.random_active(GOSSIP_FANOUT, None);
                    if to.is_empty() {
                        break;
                    }
                    for to in to {
                        self.send(to, Kind::Gossip);
                        sent += 1;
                    }
                }
            }
        }
    }

    /// Feeds a datagram that passed authentication.
    ///
    /// # Errors
    /// [`MembershipError`] for bytes that are not a message; what came before the fault in
    /// it is applied.
    pub fn handle_data(&mut self, data: &[u8]) -> Result<(), MembershipError> {
        self.handle(data, None)
    }

    /// Feeds a datagram that host `signer` signed, received from `source`: its message must
    /// speak for that host, at that address.
    ///
    /// # Errors
    /// As [`Membership::handle_data`]; and a message that speaks for another host or address
    /// (nothing of it is applied).
    pub fn handle_signed(&mut self, data: &[u8], signer: &str, source: SocketAddr) -> Result<(), MembershipError> {
        self.handle(data, Some((signer, source)))
    }

    fn handle(&mut self, data: &[u8], signed: Option<(&str, SocketAddr)>) -> Result<(), MembershipError> {
        let (h, mut rest) =
            postcard::take_from_bytes::<Header>(data).map_err(|e| MembershipError(format!("malformed header: {e}")))?;
        if let Some((signer, source)) = signed {
            if h.from.name != signer {
                return Err(MembershipError(format!(
                    "a message signed by {signer} speaks for {}",
                    h.from.name
                )));
            }
            if h.from.addr.ip() != source.ip() {
                return Err(MembershipError(format!(
                    "a message from {source} speaks for {}",
                    h.from.addr
                )));
            }
        }
        if h.from.addr == self.me.addr {
            return Ok(());
        }
        check_name(&h.from.name)?;
        if self.revoked.contains(h.from.name.as_str()) {
            self.revoked_dropped += 1;
            return Ok(());
        }
        let from = h.from.addr;
        // A message is news of its sender's life (and how a joining host becomes known).
        let known = self
            .find(&from)
            .filter(|&i| self.is(i, &h.from.name, h.from.bump))
            .map(|i| &self.members[i]);
        match known {
            // Down is final for an identity: tell it, so it rejoins under a new one.
            Some(m) if m.state == State::Down => self.send(from, Kind::Feed),
            // Nothing new (the common case: no copy of its identity).
            Some(m) if m.incarnation >= h.incarnation => {}
            _ => self.apply(MemberState {
                id: h.from.clone(),
                incarnation: h.incarnation,
                state: State::Alive,
            }),
        }
        for item in take_items(&mut rest)? {
            let s: StateRef =
                postcard::from_bytes(item).map_err(|e| MembershipError(format!("malformed update: {e}")))?;
            check_name(s.name)?;
            if !self.knows(&s) {
                self.hear(s.owned(), from);
            }
        }
        for item in take_items(&mut rest)? {
            self.receive_record(item)?;
        }
        self.ask_certs(from);
        match h.kind {
            Kind::Ping(n) => self.send(from, Kind::Ack(n)),
            Kind::Ack(n) => self.acked(n, from),
            Kind::PingReq { probe, target } => {
                let origin = h.from;
                self.send(target.addr, Kind::IndirectPing { probe, origin });
            }
            Kind::IndirectPing { probe, origin } => self.send(from, Kind::IndirectAck { probe, origin }),
            Kind::IndirectAck { probe, origin } => {
                let target = h.from;
                self.send(origin.addr, Kind::ForwardedAck { probe, target });
            }
            Kind::ForwardedAck { probe, target } => self.acked(probe, target.addr),
            Kind::Announce => self.send(from, Kind::Feed),
            Kind::Feed | Kind::Gossip => {}
            Kind::Want { network, count, at } => self.asked(Ask::Want {
                from: h.from,
                network,
                count,
                at,
            }),
            Kind::Granted { network } => self.asked(Ask::Granted { from: h.from, network }),
            Kind::NoSpace { network } => self.asked(Ask::NoSpace { from: h.from, network }),
            Kind::Certs { hosts } => self.answer_certs(from, &hosts),
        }
        Ok(())
    }

    /// Asks `from`, whose message brought records this host held for want of their origin's
    /// certificate, for those certificates: it took the records, so it holds them. An
    /// origin is asked for again only after [`CERT_ASK_AGAIN_MS`].
    fn ask_certs(&mut self, from: SocketAddr) {
        let (missing, now) = {
            let mut r = self.records.lock().expect("lock poisoned");
            (r.take_unknown(), r.now_ms())
        };
        if missing.is_empty() {
            return;
        }
        let again = |t: &u64| now.saturating_sub(*t) >= CERT_ASK_AGAIN_MS;
        if self.certs_asked.len() >= CERT_ASKED_MAX {
            self.certs_asked.retain(|_, t| !again(t));
            if self.certs_asked.len() >= CERT_ASKED_MAX {
                self.certs_asked.clear();
            }
        }
        let mut hosts = Vec::new();
        for origin in missing {
            if hosts.len() == CERTS_PER_ASK {
                break;
            }
            if self.certs_asked.get(&origin).is_none_or(again) {
                hosts.push(origin.to_string());
                self.certs_asked.insert(origin, now);
            }
        }
        if !hosts.is_empty() {
            self.send(from, Kind::Certs { hosts });
        }
    }

    /// Sends `to` the certificate records of `hosts` this host holds, within the rate.
    fn answer_certs(&mut self, to: SocketAddr, hosts: &[String]) {
        let certs: Vec<Bytes> = {
            let r = self.records.lock().expect("lock poisoned");
            let now = r.now_ms();
            let (tokens, last) = &mut self.cert_tokens;
            let earned = now.saturating_sub(*last) * CERT_ANSWERS_PER_S / 1000;
            if earned > 0 {
                *tokens = (*tokens + earned).min(CERT_ANSWERS_BURST);
                *last = now;
            }
            hosts
                .iter()
                .take(CERTS_PER_ASK)
                .filter_map(|h| r.get(&RecordKey::Host(h.as_str().into())))
                // A revoked host's certificate is withdrawn: nothing to send.
                .filter(|c| c.body.is_some())
                .map(|c| Bytes::from(c.encode()))
                .collect()
        };
        // Beyond the rate, the asker asks again after a second, or an exchange brings it.
        for cert in certs {
            if self.cert_tokens.0 == 0 {
                break;
            }
            self.cert_tokens.0 -= 1;
            self.send_with(to, Kind::Gossip, vec![cert]);
        }
    }

    /// Whether an update says exactly what is known already.
    fn knows(&self, s: &StateRef<'_>) -> bool {
        self.find(&s.addr).is_some_and(|i| {
            let m = &self.members[i];
            m.incarnation == s.incarnation && m.state == s.state && self.is(i, s.name, s.bump)
        })
    }

    fn acked(&mut self, n: u32, from: SocketAddr) {
        let probes = self
            .probe
            .iter_mut()
            .chain(self.verifying.iter_mut().map(|v| &mut v.probe));
        for p in probes.filter(|p| p.n == n && p.target == from) {
            p.acked = true;
        }
    }

    fn receive_record(&mut self, item: &[u8]) -> Result<(), MembershipError> {
        let mut records = self.records.lock().expect("lock poisoned");
        if !records.is_news(item).map_err(|e| MembershipError(e.to_string()))? {
            return Ok(());
        }
        let applied = records.apply_wire(item).map_err(|e| MembershipError(e.to_string()))?;
        drop(records);
        let Some(Taken { key, released }) = applied else {
            return Ok(());
        };
        // Passed on as received, with what it released (records that waited for the
        // certificate it was). A burst beyond the relay backlog is left to anti-entropy (see
        // RELAY_BACKLOG_MAX).
        let times = self.transmissions();
        // Certificates travel by asks and exchanges, not gossip.
        let relay = std::iter::once((key, Bytes::copy_from_slice(item)))
            .chain(released.into_iter().map(|r| (r.key.clone(), Bytes::from(r.encode()))))
            .filter(|(key, _)| !matches!(key, RecordKey::Host(_)));
        for (key, wire) in relay {
            if self.gossip.len() >= RELAY_BACKLOG_MAX {
                break;
            }
            self.gossip.push(key, wire, times);
        }
        Ok(())
    }

    /// The next member to probe: round-robin over a shuffled list of the active ones.
    fn next_target(&mut self) -> Option<SocketAddr> {
        for _ in 0..2 {
            while self.cursor < self.order.len() {
                let m = &self.members[self.order[self.cursor] as usize];
                self.cursor += 1;
                if m.state.active() {
                    return Some(m.addr);
                }
            }
            let members = &self.members;
            self.order.clear();
            self.order.reserve_exact(self.active);
            self.order
                .extend((0..members.len() as u32).filter(|&i| members[i as usize].state.active()));
            self.order.shuffle(&mut self.rng);
            self.cursor = 0;
        }
        None
    }

    /// Up to `k` distinct active members other than `except`, at random.
    fn random_active(&mut self, k: usize, except: Option<SocketAddr>) -> Vec<SocketAddr> {
        let except_active = except
            .and_then(|a| self.find(&a))
            .is_some_and(|i| self.members[i].state.active());
        let k = k.min(self.active - usize::from(except_active));
        let mut out: Vec<SocketAddr> = Vec::with_capacity(k);
        if k == 0 {
            return out;
        }
        // Mostly active members: sampling finds k in a few draws; a list of the eligible
        // ones when most are down.
        let mut tries = 0;
        while out.len() < k && tries < 8 * k + 8 {
            tries += 1;
            let m = &self.members[self.rng.random_range(0..self.members.len())];
            if m.state.active() && Some(m.addr) != except && !out.contains(&m.addr) {
                out.push(m.addr);
            }
        }
        if out.len() < k {
            let mut all: Vec<SocketAddr> = self
                .members
                .iter()
                .filter(|m| m.state.active() && Some(m.addr) != except && !out.contains(&m.addr))
                .map(|m| m.addr)
                .collect();
            all.shuffle(&mut self.rng);
            out.extend(all.into_iter().take(k - out.len()));
        }
        out
    }

    fn suspect(&mut self, addr: SocketAddr) {
        let Some(i) = self.find(&addr) else { return };
        if self.members[i].state == State::Alive {
            let s = MemberState {
                state: State::Suspect,
                ..self.state_ref(i).owned()
            };
            self.apply(s);
        }
    }

    /// Queues an update for dissemination.
    fn disseminate(&mut self, s: &MemberState) {
        let wire = postcard::to_stdvec(s).expect("member states serialize");
        let times = self.transmissions();
        let key = self.find(&s.id.addr).map_or(ME, |i| i as u32);
        self.updates.push(key, Bytes::from(wire), times);
        self.updates.cap(UPDATES_MAX);
    }

    /// Applies an update about a member (SWIM's precedence: a higher incarnation wins, a
    /// suspicion beats alive at the same one, down is final for an identity, a newer
    /// identity at the same address replaces the old); what changed is disseminated.
    fn apply(&mut self, s: MemberState) {
        if s.id.addr == self.me.addr {
            self.about_me(s);
            return;
        }
        if s.id.name.len() > MAX_NAME {
            // Refused where messages are read; an exchange's list skips it.
            return;
        }
        if s.state != State::Down && self.revoked.contains(s.id.name.as_str()) {
            // Revoked by the CA: never alive again here.
            return;
        }
        let Some(i) = self.find(&s.id.addr) else {
            if s.state == State::Down {
                // Nothing to forget; a host never seen needs no obituary.
                return;
            }
            if self.members.len() >= MAX_MEMBERS {
                self.refused_members += 1;
                return;
            }
            // A v4-mapped address is an IPv4 host's, as an IPv6 socket sees it.
            let is_v4 = |a: SocketAddr| a.ip().to_canonical().is_ipv4();
            if is_v4(s.id.addr) != is_v4(self.me.addr) {
                self.refused_members += 1;
                if self.other_family.len() < OTHER_FAMILY_TOLD && self.other_family.insert(s.id.addr) {
                    self.events.push_back(Event::OtherFamily(s.id.clone()));
                }
                return;
            }
            let (name, name_len) = self.store_name(&s.id.name);
            let m = Member {
                addr: s.id.addr,
                bump: s.id.bump,
                name,
                name_len,
                incarnation: s.incarnation,
                state: s.state,
            };
            push_compact(&mut self.members, m);
            let i = self.members.len() - 1;
            self.index.insert(&self.members, i);
            self.became_active(i, &s.id);
            self.events.push_back(Event::Up(s.id.clone()));
            self.after_change(&s);
            return;
        };
        let (bump, state, incarnation) = {
            let m = &self.members[i];
            (m.bump, m.state, m.incarnation)
        };
        if s.id.bump < bump || (s.id.bump == bump && !self.is(i, &s.id.name, bump)) {
            return;
        }
        if s.id.bump > bump {
            // The host came back under a new identity.
            let old = self.id_of(i);
            if old.name != s.id.name {
                let (name, name_len) = self.store_name(&s.id.name);
                self.names_garbage += old.name.len();
                let m = &mut self.members[i];
                (m.name, m.name_len) = (name, name_len);
                self.compact_names();
            }
            let m = &mut self.members[i];
            (m.bump, m.incarnation, m.state) = (s.id.bump, s.incarnation, s.state);
            match (state.active(), s.state.active()) {
                (true, true) => {
                    self.active_xor ^=
                        fingerprint(&old.name, old.addr, old.bump) ^ fingerprint(&s.id.name, s.id.addr, s.id.bump);
                    self.events.push_back(Event::Renamed(old, s.id.clone()));
                }
                (false, true) => {
                    self.became_active(i, &s.id);
                    self.events.push_back(Event::Up(s.id.clone()));
                }
                (true, false) => self.became_inactive(&old),
                (false, false) => {}
            }
            self.after_change(&s);
            return;
        }
        let wins = match (s.state, state) {
            (_, State::Down) => false,
            (State::Down, _) => true,
            (State::Alive, _) => s.incarnation > incarnation,
            (State::Suspect, State::Alive) => s.incarnation >= incarnation,
            (State::Suspect, State::Suspect) => s.incarnation > incarnation,
        };
        if !wins {
            return;
        }
        let m = &mut self.members[i];
        let was = m.state;
        (m.incarnation, m.state) = (s.incarnation, s.state);
        match (was, s.state) {
            (_, State::Down) => self.became_inactive(&s.id),
            (State::Alive, State::Suspect) => self.events.push_back(Event::Suspected(s.id.clone())),
            (State::Suspect, State::Alive) => self.events.push_back(Event::Refuted(s.id.clone())),
            _ => {}
        }
        self.after_change(&s);
    }

    fn after_change(&mut self, s: &MemberState) {
        if s.state == State::Suspect {
            let t = Timer::Suspicion {
                addr: s.id.addr,
                bump: s.id.bump,
                incarnation: s.incarnation,
            };
            self.timers.push_back((SUSPECT_TO_DOWN, t));
        }
        self.disseminate(s);
    }

    fn became_active(&mut self, i: usize, id: &HostId) {
        self.active += 1;
        self.active_xor ^= fingerprint(&id.name, id.addr, id.bump);
        // Probed within this round, at a random place among those still to come (it takes
        // that place and whoever held it goes last: no shifting of a long list).
        let at = self.rng.random_range(self.cursor..=self.order.len());
        push_compact(&mut self.order, i as u32);
        let last = self.order.len() - 1;
        self.order.swap(at, last);
    }

    fn became_inactive(&mut self, id: &HostId) {
        self.active -= 1;
        self.active_xor ^= fingerprint(&id.name, id.addr, id.bump);
        self.events.push_back(Event::Down(id.clone()));
        if self.active == 0 {
            self.events.push_back(Event::Alone);
        }
    }

    /// An update about this host: refute a suspicion, rejoin under a new identity when
    /// declared down.
    fn about_me(&mut self, s: MemberState) {
        if s.id.bump < self.me.bump {
            return;
        }
        let refute = match s.state {
            State::Alive => s.incarnation > self.incarnation,
            State::Suspect => s.incarnation >= self.incarnation,
            State::Down => {
                self.me.bump = self.me.bump.max(s.id.bump) + 1;
                self.incarnation = 0;
                let me = self.state_of_me();
                self.disseminate(&me);
                for to in self.random_active(GOSSIP_FANOUT, None) {
                    self.send(to, Kind::Announce);
                }
                return;
            }
        };
        if refute || s.id.bump > self.me.bump {
            self.me.bump = self.me.bump.max(s.id.bump);
            self.incarnation = s.incarnation.wrapping_add(1).max(self.incarnation);
            let me = self.state_of_me();
            self.disseminate(&me);
        }
    }

    /// Sends a message of `kind` to `to`, piggybacking what fits of the pending updates and
    /// records (a feed carries members first).
    fn send(&mut self, to: SocketAddr, kind: Kind) {
        self.send_with(to, kind, Vec::new());
    }

    /// As [`Membership::send`], with `first` records (encoded) ahead of the pending ones.
    fn send_with(&mut self, to: SocketAddr, kind: Kind, first: Vec<Bytes>) {
        let feed = matches!(kind, Kind::Feed);
        // Lifeguard's buddy system: a probe of a member suspected here tells it so first,
        // so it can refute even if the suspicion's gossip went astray.
        let probe = matches!(kind, Kind::Ping(_) | Kind::IndirectPing { .. });
        let header = Header {
            from: self.me.clone(),
            incarnation: self.incarnation,
            kind,
        };
        let mut wire = postcard::to_stdvec(&header).expect("headers serialize");
        let mut budget = self.max_packet.saturating_sub(wire.len() + 2 * ITEM_OVERHEAD);
        let mut updates = Vec::new();
        if probe {
            if let Some(i) = self.find(&to).filter(|&i| self.members[i].state == State::Suspect) {
                let b = postcard::to_stdvec(&self.state_ref(i)).expect("member states serialize");
                budget -= b.len() + ITEM_OVERHEAD;
                updates.push(Bytes::from(b));
            }
        }
        if feed {
            // The receiver's own state first when it is down here, then a random sample.
            if let Some(i) = self.find(&to) {
                let b = postcard::to_stdvec(&self.state_ref(i)).expect("member states serialize");
                updates.push(Bytes::from(b));
            }
            for a in self.random_active(self.max_packet / 40, Some(to)) {
                let i = self.find(&a).expect("an active member is indexed");
                let b = postcard::to_stdvec(&self.state_ref(i)).expect("member states serialize");
                if b.len() + ITEM_OVERHEAD > budget / 2 {
                    break;
                }
                budget -= b.len() + ITEM_OVERHEAD;
                updates.push(Bytes::from(b));
            }
        }
        budget = budget.saturating_sub(first.iter().map(|r| r.len() + ITEM_OVERHEAD).sum());
        self.updates.fill(&mut budget, &mut updates);
        let mut records = first;
        self.gossip.fill(&mut budget, &mut records);
        for section in [updates, records] {
            put_len(&mut wire, section.len());
            for item in section {
                put_len(&mut wire, item.len());
                wire.extend_from_slice(&item);
            }
        }
        self.out.push_back((to, Bytes::from(wire)));
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
        pending: Vec<Option<Timer>>,
        dead: Vec<bool>,
        /// Cut off the network: its timers run, its messages go nowhere, none reach it.
        cut: Vec<bool>,
        events: Vec<Vec<Event>>,
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
                    Membership::new(id, i as u64)
                })
                .collect();
            Sim {
                hosts,
                now: Duration::ZERO,
                timers: BinaryHeap::new(),
                pending: Vec::new(),
                dead: vec![false; n],
                cut: vec![false; n],
                events: vec![Vec::new(); n],
            }
        }

        fn index(&self, addr: SocketAddr) -> Option<usize> {
            self.hosts.iter().position(|h| h.me().addr == addr)
        }

        fn pump(&mut self, i: usize) {
            while let Some((to, data)) = self.hosts[i].poll_transmit() {
                if let Some(j) = self.index(to) {
                    if !self.dead[j] && !self.cut[i] && !self.cut[j] {
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
            while let Some(e) = self.hosts[i].poll_event() {
                self.events[i].push(e);
            }
        }

        fn run_until(&mut self, t: Duration) {
            while let Some(Reverse((at, i, k))) = self.timers.peek().copied() {
                if at > t {
                    break;
                }
                self.timers.pop();
                self.now = at;
                if self.dead[i] {
                    // Frozen (as under SIGSTOP): its timers wait until it runs again.
                    self.timers.push(Reverse((at + Duration::from_millis(100), i, k)));
                    continue;
                }
                if let Some(timer) = self.pending[k as usize].take() {
                    self.hosts[i].handle_timer(timer);
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
    fn a_host_missing_a_certificate_asks_the_sender_for_it() {
        use super::super::cheap::{self, Cheap};
        let mut sim = Sim::new(3);
        for h in &sim.hosts {
            let name = h.me().name.clone();
            h.records().set_authority(Arc::new(Cheap::new(&name)));
        }
        for i in 1..3 {
            let addr = sim.hosts[0].me().addr;
            sim.hosts[i].join(addr);
            sim.pump(i);
        }
        sim.run_until(Duration::from_secs(3));
        // h2's certificate is written, not gossiped; its first record is.
        let cert = Body::Cert(cheap::cert("h2").into());
        sim.hosts[2]
            .records()
            .local(RecordKey::Host("h2".into()), Some(cert), 1);
        let key = RecordKey::endpoint("h2", crate::Id::from_random([5; 32]));
        sim.hosts[2].publish(key.clone(), None, 2).unwrap();
        sim.pump(2);
        sim.run_until(Duration::from_secs(6));
        for i in 0..2 {
            let r = sim.hosts[i].records();
            assert!(r.get(&key).is_some(), "host {i} took h2's record");
            assert!(
                r.get(&RecordKey::Host("h2".into())).is_some(),
                "host {i} asked for the certificate"
            );
            assert!(r.unknown_origin() > 0 && r.forged() == 0, "host {i}");
        }
    }

    #[test]
    fn records_reach_every_host_and_removals_follow() {
        let mut sim = Sim::new(3);
        for i in 1..3 {
            let addr = sim.hosts[0].me().addr;
            sim.hosts[i].join(addr);
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
            claimed: false,
            mtu: 1450,
            internal: false,
            created: std::time::SystemTime::UNIX_EPOCH,
            encrypted: false,
            subnet6: None,
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
            sim.hosts[i].join(addr);
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

    fn joined(n: usize) -> Sim {
        let mut sim = Sim::new(n);
        for i in 1..n {
            let addr = sim.hosts[0].me().addr;
            sim.hosts[i].join(addr);
            sim.pump(i);
        }
        sim.run_until(Duration::from_secs(5));
        for i in 0..n {
            assert_eq!(sim.hosts[i].num_members(), n - 1, "host {i} sees every other");
        }
        sim
    }

    #[test]
    fn a_suspected_host_that_answers_again_refutes_it() {
        let mut sim = joined(4);
        let before = sim.hosts[3].peers()[0].incarnation;
        // Frozen for a second: long enough to miss probes, shorter than the suspicion.
        sim.dead[3] = true;
        sim.run_until(Duration::from_secs(6));
        sim.dead[3] = false;
        sim.run_until(Duration::from_secs(15));
        assert!(
            sim.hosts[3].peers()[0].incarnation > before,
            "host 3 heard it was suspected and raised its incarnation"
        );
        // A host whose own probes went unanswered saw the suspicion come and go, in that
        // order; one that checked the claim when host 3 answered again never suspected it.
        let frozen = sim.hosts[3].me().clone();
        let mut suspected = 0;
        for i in 0..3 {
            let seen: Vec<&Event> = sim.events[i]
                .iter()
                .filter(|e| matches!(e, Event::Suspected(h) | Event::Refuted(h) if *h == frozen))
                .collect();
            assert!(
                matches!(seen.as_slice(), [] | [Event::Suspected(_), Event::Refuted(_), ..]),
                "host {i}: {seen:?}"
            );
            suspected += usize::from(!seen.is_empty());
        }
        assert!(suspected > 0, "{:?}", sim.events);
        for i in 0..4 {
            assert!(
                !sim.events[i].iter().any(|e| matches!(e, Event::Down(_))),
                "host {i} declared nobody down: {:?}",
                sim.events[i]
            );
            assert_eq!(sim.hosts[i].num_members(), 3);
        }
    }

    #[test]
    fn a_host_declared_down_comes_back_under_a_new_identity() {
        let mut sim = joined(3);
        let old = sim.hosts[2].me().clone();
        sim.cut[2] = true;
        sim.run_until(Duration::from_secs(12));
        assert_eq!(sim.state_of(0, 2), Some("down"));
        assert!(sim.events[0].contains(&Event::Down(old.clone())));
        assert_eq!(sim.hosts[0].num_members(), 1);
        // Healed. Alone, it asks to join again (as its owner does for a host that knows no
        // live member); told it was declared down, it takes a new bump and is let back in.
        sim.cut[2] = false;
        assert_eq!(sim.hosts[2].num_members(), 0);
        let addr = sim.hosts[0].me().addr;
        sim.hosts[2].join(addr);
        sim.pump(2);
        sim.run_until(Duration::from_secs(25));
        let new = sim.hosts[2].me().clone();
        assert!(new.bump > old.bump, "{new:?} after {old:?}");
        for i in 0..3 {
            assert_eq!(sim.hosts[i].num_members(), 2, "host {i}: {:?}", sim.hosts[i].peers());
        }
        assert!(sim.events[0].contains(&Event::Up(new)));
        assert_eq!(sim.hosts[0].member_digest(), sim.hosts[2].member_digest());
    }

    /// A gossip message from `from` carrying one update, `about`.
    fn claim(from: &HostId, about: &MemberState) -> Vec<u8> {
        let h = Header {
            from: from.clone(),
            incarnation: 0,
            kind: Kind::Gossip,
        };
        let mut wire = postcard::to_stdvec(&h).unwrap();
        let update = postcard::to_stdvec(about).unwrap();
        put_len(&mut wire, 1);
        put_len(&mut wire, update.len());
        wire.extend_from_slice(&update);
        put_len(&mut wire, 0);
        wire
    }

    #[test]
    fn a_member_s_word_that_a_live_host_is_down_changes_nothing() {
        let mut sim = joined(4);
        let victim = MemberState {
            id: sim.hosts[2].me().clone(),
            incarnation: 40,
            state: State::Down,
        };
        // Host 1 tells host 0 that host 2 is down, at an incarnation far ahead.
        let wire = claim(sim.hosts[1].me(), &victim);
        sim.hosts[0].handle_data(&wire).unwrap();
        sim.pump(0);
        let now = sim.now;
        sim.run_until(now + Duration::from_secs(6));
        // Every host that heard the claim probed host 2 itself, which answered: none declared
        // it suspect or down. (Host 2, told it was down, took a new identity, as a host does
        // that some member may have given up on.)
        let at = victim.id.addr;
        for i in 0..4 {
            assert!(
                !sim.events[i]
                    .iter()
                    .any(|e| matches!(e, Event::Down(h) | Event::Suspected(h) if h.addr == at)),
                "host {i}: {:?}",
                sim.events[i]
            );
            assert_eq!(sim.hosts[i].num_members(), 3, "host {i}");
        }
        // A host that is gone is found out by the host that checks the claim: at once, not
        // after a round of its own probes.
        sim.dead[2] = true;
        let gone = MemberState {
            id: sim.hosts[2].me().clone(),
            incarnation: 41,
            state: State::Down,
        };
        let wire = claim(sim.hosts[1].me(), &gone);
        sim.hosts[0].handle_data(&wire).unwrap();
        sim.pump(0);
        let now = sim.now;
        sim.run_until(now + Duration::from_millis(600));
        assert!(
            sim.events[0]
                .iter()
                .any(|e| matches!(e, Event::Down(h) if h.addr == at)),
            "{:?}",
            sim.events[0]
        );
    }

    #[test]
    fn a_signed_message_speaks_only_for_its_signer_at_its_address() {
        let mut sim = joined(2);
        let before = sim.hosts[0].peers();
        let me = sim.hosts[1].me().clone();
        let h = Header {
            from: me.clone(),
            incarnation: 9,
            kind: Kind::Ping(1),
        };
        let mut wire = postcard::to_stdvec(&h).unwrap();
        // No updates, no records.
        wire.extend_from_slice(&[0, 0]);
        let elsewhere = SocketAddr::from(([10, 9, 9, 9], me.addr.port()));
        let e = sim.hosts[0].handle_signed(&wire, "mallory", me.addr).unwrap_err();
        assert!(e.to_string().contains("signed by mallory speaks for"), "{e}");
        let e = sim.hosts[0].handle_signed(&wire, &me.name, elsewhere).unwrap_err();
        assert!(e.to_string().contains("a message from 10.9.9.9"), "{e}");
        assert_eq!(sim.hosts[0].peers(), before, "nothing applied");
        assert!(sim.hosts[0].poll_transmit().is_none(), "nothing answered");
        sim.hosts[0].handle_signed(&wire, &me.name, me.addr).unwrap();
        assert!(sim.hosts[0].poll_transmit().is_some(), "the ping answered");
    }

    #[test]
    fn malformed_messages_are_refused_and_change_nothing() {
        let mut sim = joined(2);
        let before = sim.hosts[0].peers();
        for bad in [&[][..], &[0xff; 3][..], &[0x80; 40][..]] {
            assert!(sim.hosts[0].handle_data(bad).is_err(), "{bad:?}");
        }
        // A valid header announcing more items than there are bytes.
        let h = Header {
            from: sim.hosts[1].me().clone(),
            incarnation: 0,
            kind: Kind::Gossip,
        };
        let mut wire = postcard::to_stdvec(&h).unwrap();
        wire.extend_from_slice(&[0x7f]);
        let e = sim.hosts[0].handle_data(&wire).unwrap_err().to_string();
        assert!(e.contains("127 items"), "{e}");
        assert_eq!(sim.hosts[0].peers(), before);
        assert!(sim.hosts[0].poll_transmit().is_none());

        // A sender, or a member in an update, named beyond MAX_NAME.
        let long = HostId {
            name: "x".repeat(MAX_NAME + 1),
            addr: "10.0.0.9:7946".parse().unwrap(),
            bump: 1,
        };
        let h = Header {
            from: long.clone(),
            incarnation: 0,
            kind: Kind::Gossip,
        };
        let e = sim.hosts[0]
            .handle_data(&postcard::to_stdvec(&h).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("a host name of 256 bytes; at most 255"), "{e}");
        let h = Header {
            from: sim.hosts[1].me().clone(),
            incarnation: 0,
            kind: Kind::Gossip,
        };
        let mut wire = postcard::to_stdvec(&h).unwrap();
        let update = postcard::to_stdvec(&MemberState {
            id: long.clone(),
            incarnation: 0,
            state: State::Alive,
        })
        .unwrap();
        put_len(&mut wire, 1);
        put_len(&mut wire, update.len());
        wire.extend_from_slice(&update);
        put_len(&mut wire, 0);
        assert!(sim.hosts[0].handle_data(&wire).is_err());
        // An exchange's list skips it.
        sim.hosts[0].apply_member_states(vec![MemberState {
            id: long,
            incarnation: 0,
            state: State::Alive,
        }]);
        assert_eq!(sim.hosts[0].peers(), before);
    }

    #[test]
    fn a_member_is_encoded_from_its_compact_form_as_its_state_is() {
        let mut m = Membership::new(id("me", 1, 1), 1);
        let s = MemberState {
            id: id("h-long-name.example.org", 2, 7),
            incarnation: 3,
            state: State::Suspect,
        };
        m.apply_member_states(vec![s.clone()]);
        let i = m.find(&s.id.addr).unwrap();
        assert_eq!(
            postcard::to_stdvec(&m.state_ref(i)).unwrap(),
            postcard::to_stdvec(&s).unwrap()
        );
        assert_eq!(m.member_states()[1], s);
    }

    fn id(name: &str, host: u8, bump: u64) -> HostId {
        HostId {
            name: name.into(),
            addr: SocketAddr::from(([10, 1, 0, host], 7946)),
            bump,
        }
    }

    #[test]
    fn certificate_asks_are_answered_within_the_rate() {
        use super::super::cheap;
        let mut m = Membership::new(id("me", 1, 1), 1);
        let cert = Body::Cert(cheap::cert("me").into());
        m.records().local(RecordKey::Host("me".into()), Some(cert), 1);
        let asker = id("asker", 2, 1);
        let ask = |hosts: Vec<String>| {
            let header = Header {
                from: asker.clone(),
                incarnation: 0,
                kind: Kind::Certs { hosts },
            };
            let mut wire = postcard::to_stdvec(&header).unwrap();
            put_len(&mut wire, 0);
            put_len(&mut wire, 0);
            wire
        };
        // Unknown and repeated names cost nothing; each ask of a held certificate one answer.
        m.handle_data(&ask(vec!["nobody".into()])).unwrap();
        let answers = |m: &mut Membership| {
            std::iter::from_fn(|| m.poll_transmit())
                .filter(|(to, _)| *to == asker.addr)
                .count()
        };
        assert_eq!(answers(&mut m), 0);
        for _ in 0..CERT_ANSWERS_BURST + 50 {
            m.handle_data(&ask(vec!["me".into()])).unwrap();
        }
        assert_eq!(
            answers(&mut m) as u64,
            CERT_ANSWERS_BURST,
            "a burst, then nothing until time passes"
        );
        m.records().set_now(1_000);
        m.handle_data(&ask(vec!["me".into(); 8])).unwrap();
        assert_eq!(answers(&mut m), 8, "a second later, up to the rate again");
    }

    #[test]
    fn a_host_of_the_other_family_is_refused_and_told_once() {
        let six = |name: &str, n: u16| HostId {
            name: name.into(),
            addr: SocketAddr::from((std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n), 7946)),
            bump: 1,
        };
        let alive = |id: HostId| MemberState {
            id,
            incarnation: 0,
            state: State::Alive,
        };
        // An IPv4 host hears of an IPv6 one, twice, and of an IPv4 one.
        let mut m = Membership::new(id("me", 1, 1), 1);
        m.apply_member_states(vec![alive(six("v6", 2)), alive(six("v6", 2)), alive(id("v4", 3, 1))]);
        assert_eq!(m.num_members(), 1);
        assert_eq!(m.refused_members(), 2);
        let told: Vec<Event> = std::iter::from_fn(|| m.poll_event())
            .filter(|e| matches!(e, Event::OtherFamily(_)))
            .collect();
        assert_eq!(told, vec![Event::OtherFamily(six("v6", 2))]);
        // And the other way round: an IPv6 underlay keeps IPv6 members only, v4-mapped ones
        // being IPv6 sockets' view of IPv4 hosts.
        let mut m = Membership::new(six("me", 1), 1);
        let mapped = HostId {
            addr: "[::ffff:10.1.0.5]:7946".parse().unwrap(),
            ..id("mapped", 5, 1)
        };
        m.apply_member_states(vec![alive(id("v4", 3, 1)), alive(six("v6", 2)), alive(mapped)]);
        assert_eq!(
            m.peers().iter().map(|p| p.id.name.as_str()).collect::<Vec<_>>(),
            ["me", "v6"]
        );
    }

    #[test]
    fn the_member_table_is_bounded() {
        let mut m = Membership::new(id("me", 1, 1), 1);
        let extra = 10;
        let states = (0..MAX_MEMBERS + extra)
            .map(|i| {
                let [_, a, b, c] = (i as u32 + (1 << 24)).to_be_bytes();
                MemberState {
                    id: HostId {
                        name: format!("h{i}"),
                        addr: SocketAddr::from(([11, a, b, c], 7946)),
                        bump: 1,
                    },
                    incarnation: 0,
                    state: State::Alive,
                }
            })
            .collect();
        m.apply_member_states(states);
        assert_eq!(m.num_members(), MAX_MEMBERS);
        assert_eq!(m.refused_members(), extra as u64);
        // A known member still changes state: another host's word that it is suspect is
        // checked with a probe; unanswered directly and through others, it is this host's own.
        let first = m.member_states().into_iter().find(|s| s.id.name == "h0").unwrap();
        let addr = first.id.addr;
        m.apply_member_states(vec![MemberState {
            state: State::Suspect,
            ..first
        }]);
        let state = |m: &Membership| m.member_states().into_iter().find(|s| s.id.name == "h0").unwrap().state;
        assert_eq!(state(&m), State::Alive, "a claim is not evidence");
        assert!(
            std::iter::from_fn(|| m.poll_transmit()).any(|(to, _)| to == addr),
            "h0 probed"
        );
        for _ in 0..2 {
            let t = std::iter::from_fn(|| m.poll_timer())
                .map(|(_, t)| t)
                .find(|t| matches!(t, Timer::Verify { .. }))
                .expect("the check's timer");
            m.handle_timer(t);
        }
        assert_eq!(state(&m), State::Suspect);
    }

    #[test]
    fn renamed_members_keep_their_names_as_the_arena_is_rewritten() {
        let mut m = Membership::new(id("me", 1, 1), 1);
        let hosts = 2..=201u8;
        let states = |round: u64| {
            hosts
                .clone()
                .map(|h| MemberState {
                    id: id(&format!("host-{h}-round-{round:02}-{}", "n".repeat(20)), h, round),
                    incarnation: 0,
                    state: State::Alive,
                })
                .collect::<Vec<_>>()
        };
        for round in 1..=5 {
            m.apply_member_states(states(round));
            assert_eq!(m.member_states()[1..], states(round)[..], "round {round}");
            let digest = states(round)
                .iter()
                .fold(0, |x, s| x ^ fingerprint(&s.id.name, s.id.addr, s.id.bump));
            assert_eq!(m.member_digest(), digest ^ fingerprint("me", m.me().addr, 1));
        }
        // Five rounds of ~10 KB of names: the arena was rewritten, not left to grow.
        assert!(m.names.len() < 3 * 200 * 40, "{} bytes", m.names.len());
        while m.poll_event().is_some() {}
        assert!(m.events.capacity() <= 16);
    }
}
