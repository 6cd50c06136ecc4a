//! What hosts tell each other beyond membership: versioned records of overlay networks and
//! their endpoints, merged last-writer-wins.
//!
//! ```text
//!  local change ──► Records::local(key, body) ──► Record{key, version: (lamport, origin), body}
//!                                                     │ encode (postcard)
//!                                                     ▼
//!            membership's record backlog (piggybacked on SWIM messages, sent a few times)
//!                                                     │
//!  remote ──► Records::is_news ──► decode ──► Records::apply ── newer? ──► changed keys
//! ```
//!
//! A version is a Lamport counter with the origin host as tie-break, so every host orders any
//! two versions of a key the same way and all converge on the same record. A removal is a
//! record without a body (a tombstone), ordered like any other version.

use rustc_hash::{FxHashMap, FxHashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cidr::Ipv4Cidr;
use crate::ids::Id;

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RecordKey {
    /// An overlay network, by ID.
    Network(Id),
    /// An endpoint on an overlay network, by ID and by the fingerprint of the host it lives
    /// on ([`RecordKey::endpoint`]): only that host can write it.
    Endpoint {
        /// The endpoint's ID.
        id: Id,
        /// The fingerprint (FNV-1a) of its host's name.
        host: u64,
    },
    /// A claim on the address offsets `start..end` of an overlay network
    /// ([`super::space`]).
    Claim {
        /// The network.
        network: Id,
        /// The range's first offset.
        start: u32,
        /// One past its last.
        end: u32,
    },
    /// A host's certificate, by the host's name: the key its records are checked with.
    Host(Arc<str>),
    /// The CA's revocation of a host, by the host's name.
    Revoked(Arc<str>),
}

impl RecordKey {
    /// The key of endpoint `id`, which lives on host `host`.
    pub fn endpoint(host: &str, id: Id) -> RecordKey {
        RecordKey::Endpoint {
            id,
            host: origin_fingerprint(host),
        }
    }

    /// Whether host `origin` may write a record of this key with body `body`: an endpoint's
    /// only the host it lives on, and only with a body that says so; any other key any host.
    fn writable_by(&self, origin: &str, body: Option<&Body>) -> bool {
        let RecordKey::Endpoint { host, .. } = self else {
            return true;
        };
        *host == origin_fingerprint(origin)
            && match body {
                None => true,
                Some(Body::Endpoint(e)) => *e.host == *origin,
                Some(_) => false,
            }
    }
}

/// A record's version: Lamport counter, then origin host name as tie-break.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Lamport counter.
    pub counter: u64,
    /// The host that wrote this version (shared: a host's records all name it).
    pub origin: Arc<str>,
}

/// Orders (counter, origin) as the tuple would, comparing the short origin names byte by
/// byte in line: hosts compare versions of records they both know all the time (every
/// repeated gossip, every record of an exchange), and mostly find them equal.
fn order(counter: u64, origin: &str, o_counter: u64, o_origin: &str) -> std::cmp::Ordering {
    counter.cmp(&o_counter).then_with(|| {
        let (a, b) = (origin.as_bytes(), o_origin.as_bytes());
        a.iter()
            .zip(b)
            .map(|(x, y)| x.cmp(y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.len().cmp(&b.len()))
    })
}

impl Ord for Version {
    fn cmp(&self, o: &Version) -> std::cmp::Ordering {
        order(self.counter, &self.origin, o.counter, &o.origin)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Version) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// An overlay network as every host must create it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// Name.
    pub name: String,
    /// Subnet.
    pub subnet: Ipv4Cidr,
    /// Gateway (the anycast gateway's address).
    pub gateway: Ipv4Addr,
    /// VNI.
    pub vni: u32,
    /// How many hosts its addresses are dealt to (a network made before claims).
    pub max_hosts: u32,
    /// Whether its addresses are claimed on demand ([`super::space`]) rather than dealt.
    pub claimed: bool,
    /// MTU.
    pub mtu: u16,
    /// `--internal`.
    pub internal: bool,
    /// When it was created.
    pub created: SystemTime,
    /// `-o encrypted`: its frames cross the underlay sealed.
    pub encrypted: bool,
    /// The IPv6 subnet (`--ipv6`), whose addresses are the IPv4 ones' twins.
    pub subnet6: Option<crate::cidr::Ipv6Cidr>,
}

/// An endpoint of an overlay network, as other hosts need it to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The network.
    pub network: Id,
    /// The host it lives on (shared, as [`Version::origin`]).
    pub host: Arc<str>,
    /// That host's VXLAN address.
    pub vtep: SocketAddr,
    /// Sandbox name (for DNS).
    pub sandbox: String,
    /// MAC address.
    pub mac: [u8; 6],
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// Network-scoped aliases (for DNS).
    pub aliases: Vec<String>,
}

/// A record's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// An overlay network.
    Network(NetworkRecord),
    /// An endpoint (shared: the hosts' models hold it as it is).
    Endpoint(Arc<EndpointRecord>),
    /// The owner of a claimed range (shared, as [`Version::origin`]).
    Claim(Arc<str>),
    /// A host's certificate (DER), which the cluster's CA signed.
    Cert(Arc<[u8]>),
    /// The CA's revocation of a host: when it was issued, and the CA's signature
    /// ([`super::pki::Revocation`]).
    Revocation {
        /// Issued at, ms since the epoch.
        issued_ms: u64,
        /// The CA's signature.
        sig: Arc<[u8]>,
    },
}

/// One versioned record; `body: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What it is about.
    pub key: RecordKey,
    /// Its version.
    pub version: Version,
    /// Its content, or `None` when removed.
    pub body: Option<Body>,
    /// Its writer's signature of key, version and body ([`Record::signed_bytes`]), with the
    /// key of the certificate its origin published; relays pass it on unchanged.
    pub sig: Option<Arc<[u8]>>,
    /// The length of its wire form, once asked for (records are immutable).
    #[serde(skip)]
    wire: WireLen,
    /// Whether its signature held, once checked (an unknown origin is not remembered).
    #[serde(skip)]
    checked: Checked,
}

/// What checking a record's signature said, kept with the record. Not part of what a record
/// is, as [`WireLen`].
#[derive(Debug, Clone, Default)]
struct Checked(std::sync::OnceLock<bool>);

impl PartialEq for Checked {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Checked {}

/// What an [`Authority`] says of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The origin's key signed it.
    Valid,
    /// It is not the origin's signature (forged, or altered on the way).
    Invalid,
    /// No key of the origin is known yet.
    UnknownOrigin,
}

/// The seam between the records and the cluster's keys: switchd signs with its host
/// certificate's key and checks against the certificates hosts publish, which the CA signed;
/// the simulator plugs in a cheap deterministic scheme so that a thousand hosts stay fast.
pub trait Authority: Send + Sync + std::fmt::Debug {
    /// This host's signature of `msg`.
    fn sign(&self, msg: &[u8]) -> Vec<u8>;
    /// Whether `sig` is `origin`'s signature of `msg`.
    fn check(&self, origin: &str, msg: &[u8], sig: &[u8]) -> Check;
    /// Takes `cert` as host `host`'s certificate, when it is one the cluster's CA issued to
    /// that host, valid at `now_ms` (ms since the epoch), and the host is not revoked; false
    /// otherwise (nothing learned).
    fn learn(&self, host: &str, cert: &[u8], now_ms: u64) -> bool;
    /// Takes the CA's revocation of `host` (issued at `issued_ms`, the CA's signature `sig`)
    /// when the CA signed it: the host's certificate and signatures are refused from now on.
    /// False when the CA did not sign it (nothing changed).
    fn revoke(&self, host: &str, issued_ms: u64, sig: &[u8]) -> bool;
}

/// A record's wire length, computed once. Not part of what a record is: two records are
/// equal whether or not either was measured.
#[derive(Debug, Clone, Default)]
struct WireLen(std::sync::OnceLock<u32>);

impl PartialEq for WireLen {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for WireLen {}

impl Record {
    /// A record of `key` at `version` with `body` (`None`: a tombstone).
    pub fn new(key: RecordKey, version: Version, body: Option<Body>) -> Record {
        Record {
            key,
            version,
            body,
            sig: None,
            wire: WireLen::default(),
            checked: Checked::default(),
        }
    }

    /// What its writer signs: its key, version and body in their wire form.
    pub fn signed_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(&(&self.key, &self.version, &self.body)).expect("records serialize")
    }

    /// Whether its origin wrote it, by `auth`: a certificate record must be one the CA issued
    /// to its origin (which `auth` then knows), and its signature must hold. The answer is
    /// kept with the record, but for an origin not known yet. `now_ms` is the time a
    /// certificate must be valid at.
    pub fn check(&self, auth: &dyn Authority, now_ms: u64) -> Check {
        // A revocation holds by the CA's signature, whoever relays or writes it; a
        // certificate must be its own host's and the CA's. Either is taken by every host
        // that takes the record, checked before or not.
        let holds = match (&self.key, &self.body) {
            (RecordKey::Revoked(host), Some(Body::Revocation { issued_ms, sig })) => auth.revoke(host, *issued_ms, sig),
            (RecordKey::Host(host), Some(Body::Cert(cert))) => {
                **host == *self.version.origin && auth.learn(host, cert, now_ms)
            }
            (RecordKey::Revoked(_) | RecordKey::Host(_), _) => false,
            _ => true,
        };
        if !holds {
            let _ = self.checked.0.set(false);
            return Check::Invalid;
        }
        if let Some(&ok) = self.checked.0.get() {
            return if ok { Check::Valid } else { Check::Invalid };
        }
        let Some(sig) = &self.sig else {
            let _ = self.checked.0.set(false);
            return Check::Invalid;
        };
        let c = auth.check(&self.version.origin, &self.signed_bytes(), sig);
        if c != Check::UnknownOrigin {
            let _ = self.checked.0.set(c == Check::Valid);
        }
        c
    }

    /// The length of [`Record::encode`]'s output, computed once.
    pub fn wire_len(&self) -> usize {
        *self
            .wire
            .0
            .get_or_init(|| postcard::experimental::serialized_size(self).expect("records serialize") as u32)
            as usize
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("records serialize")
    }

    /// Parses the wire form.
    ///
    /// # Errors
    /// Bytes that are not a record.
    pub fn decode(b: &[u8]) -> Result<Record, RecordError> {
        postcard::from_bytes(b).map_err(|e| RecordError(e.to_string()))
    }
}

/// The front of a record's wire form (its key and version, the origin borrowed), read to
/// decide whether the rest is worth decoding: most gossip repeats what a host knows.
#[derive(Deserialize)]
struct Head<'a> {
    key: RecordKey,
    counter: u64,
    origin: &'a str,
}

/// A record that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed record: {0}")]
pub struct RecordError(String);

/// The records this host knows, merged last-writer-wins. A hash map with a fixed hasher:
/// one probe per lookup (most gossip is checked against it and dropped), and an iteration
/// order that depends only on the operations made, so a simulated run repeats exactly.
#[derive(Debug, Default)]
pub struct Records {
    me: Arc<str>,
    clock: u64,
    /// Host names, each once: the records a host keeps name a few hosts many times over.
    names: FxHashSet<Arc<str>>,
    map: FxHashMap<RecordKey, Known>,
    changed: Vec<RecordKey>,
    digest: u64,
    /// The digest split by key: [`BUCKETS`] XORs, so that an exchange between hosts that
    /// differ sends only the records of the buckets that differ.
    buckets: Vec<u64>,
    /// This host's wall clock as last told (ms since the epoch; 0: not told, nothing checked).
    now_ms: u64,
    /// Records refused for a counter beyond `now_ms` plus [`MAX_SKEW_MS`].
    ahead: u64,
    /// Where records received as bytes are decoded (`None`: here, each its own copy).
    interner: Option<Arc<dyn Interner>>,
    /// Who signs this host's records and checks the others' (`None`: nothing is signed or
    /// checked, as in tests of other things).
    auth: Option<Arc<dyn Authority>>,
    /// Records refused because their signature did not hold.
    forged: u64,
    /// Records refused because no certificate of their origin was known yet (they come again
    /// with gossip or the next exchange).
    unknown_origin: u64,
    /// Records whose origin's certificate has not come yet, by origin, taken once it comes
    /// (at most [`PENDING_MAX`] in all; beyond, refused and left to come again).
    pending: FxHashMap<Arc<str>, FxHashMap<RecordKey, Arc<Record>>>,
    pending_len: usize,
    /// Origins records were held for since [`Records::take_unknown`] last ran.
    unknown: FxHashSet<Arc<str>>,
}

/// Decodes records received as bytes into copies shared by every host that receives them:
/// the simulator's thousand hosts then hold one copy of each record version, as they do of
/// what exchanges bring, where switchd decodes its own.
pub trait Interner: Send + Sync + std::fmt::Debug {
    /// The record whose wire form is `wire`.
    ///
    /// # Errors
    /// Bytes that are not a record.
    fn intern(&self, wire: &[u8]) -> Result<Arc<Record>, RecordError>;
}

/// A record received as bytes that was news.
#[derive(Debug)]
pub struct Taken {
    /// Its key.
    pub key: RecordKey,
    /// The records it released: held until their origin's certificate, which it was.
    pub released: Vec<Arc<Record>>,
}

/// The most records held back for their origin's certificate.
pub const PENDING_MAX: usize = 65_536;

/// How far ahead of this host's wall clock another host's counter may run, in milliseconds.
/// Counters follow their writer's wall clock (a hybrid logical clock), so a counter beyond it
/// was written by a clock a minute fast, or forged to win for ever (a counter of `u64::MAX`
/// would also stop every clock that merged it).
pub const MAX_SKEW_MS: u64 = 60_000;

/// A record as the map holds it. The record is shared: an exchange hands the other side the
/// same allocation (the simulator's hosts then hold one copy of each record between them, and
/// switchd's sync copies nothing). Its version is repeated beside it, the origin as a 64-bit
/// fingerprint, so that comparing versions (every repeated gossip, every record an exchange
/// offers) reads one hash-table entry and follows no pointer.
///
/// Equal counters with equal origin fingerprints are taken as the same version. Two host
/// names whose fingerprints collide, writing the same key at the same counter, would have
/// the later write ignored where the earlier is known: the same 64-bit bet the digests make
/// when they let an exchange be skipped.
#[derive(Debug)]
struct Known {
    counter: u64,
    origin: u64,
    /// The record's wire length, so that sizing an exchange reads the table only.
    wire: u32,
    /// The key's bucket, so that finding an exchange's records reads the table only.
    bucket: u16,
    rec: Arc<Record>,
}

impl Known {
    fn new(rec: Arc<Record>) -> Known {
        Known {
            counter: rec.version.counter,
            origin: origin_fingerprint(&rec.version.origin),
            wire: rec.wire_len() as u32,
            bucket: bucket(&rec.key) as u16,
            rec,
        }
    }

    /// Whether the version (`counter`, origin with fingerprint `fp`) is newer than this one;
    /// `origin` names it in full for the rare tie of counters between different origins.
    fn older_than<'a>(&self, counter: u64, fp: u64, origin: impl FnOnce() -> &'a str) -> bool {
        match self.counter.cmp(&counter) {
            std::cmp::Ordering::Equal => {
                fp != self.origin && order(self.counter, &self.rec.version.origin, counter, origin()).is_lt()
            }
            o => o.is_lt(),
        }
    }
}

/// The fingerprint of a host name.
fn origin_fingerprint(origin: &str) -> u64 {
    fnv1a(origin.bytes())
}

/// How many buckets an exchange compares (8 KB of digests).
pub const BUCKETS: usize = 1024;

/// The bucket of a key: the first ten bits of its ID (random, so buckets fill evenly).
/// A network's claims spread over the buckets that follow its own, by their first offset.
pub fn bucket(key: &RecordKey) -> usize {
    let (id, offset) = match key {
        RecordKey::Network(id) | RecordKey::Endpoint { id, .. } => (id, 0),
        RecordKey::Claim { network, start, .. } => (network, *start as usize),
        RecordKey::Host(name) | RecordKey::Revoked(name) => return fnv1a(name.bytes()) as usize % BUCKETS,
    };
    let b = id.bytes();
    ((usize::from(b[0]) << 2 | usize::from(b[1]) >> 6) + offset) % BUCKETS
}

/// The buckets whose digests differ, as a bitmap of [`BUCKETS`] bits.
pub fn differing(mine: &[u64], theirs: &[u64]) -> Vec<u8> {
    let mut map = vec![0u8; BUCKETS / 8];
    for (i, (a, b)) in mine.iter().zip(theirs).enumerate() {
        if a != b {
            map[i / 8] |= 1 << (i % 8);
        }
    }
    map
}

/// XORs `change` into the digest of `key`'s bucket (allocated on first use).
fn flip(buckets: &mut Vec<u64>, key: &RecordKey, change: u64) {
    if buckets.is_empty() {
        *buckets = vec![0; BUCKETS];
    }
    buckets[bucket(key)] ^= change;
}

/// Whether bucket `b` is set in a bitmap from [`differing`] (an empty bitmap: every bucket).
pub fn in_map(map: &[u8], b: usize) -> bool {
    map.is_empty() || map.get(b / 8).is_some_and(|m| m & (1 << (b % 8)) != 0)
}

/// The fingerprint of a key (kind, ID) and its version (counter, origin).
fn fingerprint(key: &RecordKey, version: &Version) -> u64 {
    let version_bytes = || version.counter.to_le_bytes().into_iter().chain(version.origin.bytes());
    let (kind, id, range) = match key {
        RecordKey::Host(name) => return fnv1a(std::iter::once(3u8).chain(name.bytes()).chain(version_bytes())),
        RecordKey::Revoked(name) => return fnv1a(std::iter::once(4u8).chain(name.bytes()).chain(version_bytes())),
        RecordKey::Network(id) => (0u8, id, (0, 0)),
        RecordKey::Endpoint { id, host } => {
            let key = std::iter::once(1u8)
                .chain(id.bytes().iter().copied())
                .chain(host.to_le_bytes());
            return fnv1a(key.chain(version_bytes()));
        }
        RecordKey::Claim { network, start, end } => (2u8, network, (*start, *end)),
    };
    fnv1a(
        std::iter::once(kind)
            .chain(id.bytes().iter().copied())
            .chain(range.0.to_le_bytes())
            .chain(range.1.to_le_bytes())
            .chain(version_bytes()),
    )
}

/// FNV-1a: stable across hosts, builds and runs, and computed without allocating.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Records {
    /// An empty set; `me` is this host's name (the origin of its versions).
    pub fn new(me: &str) -> Records {
        Records {
            me: me.into(),
            ..Default::default()
        }
    }

    /// Writes a local change (a body, or `None` to remove) and returns the record to broadcast.
    /// `now_ms` (milliseconds since the epoch) keeps the counter ahead of what this host wrote
    /// before a restart, when it remembered nothing (a hybrid logical clock).
    pub fn local(&mut self, key: RecordKey, body: Option<Body>, now_ms: u64) -> Record {
        self.clock = (self.clock + 1).max(now_ms);
        let version = Version {
            counter: self.clock,
            origin: self.me.clone(),
        };
        let (r, _) = self.write_own(Record::new(key, version, body));
        // A revocation this host spreads holds here as everywhere (the caller checked it).
        if let (RecordKey::Revoked(host), Some(Body::Revocation { issued_ms, sig })) = (&r.key, &r.body) {
            if let Some(auth) = &self.auth {
                auth.revoke(host, *issued_ms, sig);
            }
            self.withdraw(host);
        }
        r
    }

    /// Decodes records received as bytes through `interner` from now on.
    pub fn set_interner(&mut self, interner: Arc<dyn Interner>) {
        self.interner = Some(interner);
    }

    /// Merges a record received as its wire form `wire`; when it was newer than what was
    /// known, what it was and released, to be passed on.
    ///
    /// # Errors
    /// Bytes that are not a record.
    pub fn apply_wire(&mut self, wire: &[u8]) -> Result<Option<Taken>, RecordError> {
        let r = match &self.interner {
            Some(i) => i.intern(wire)?,
            None => {
                let mut r = Record::decode(wire)?;
                self.share_names(&mut r);
                Arc::new(r)
            }
        };
        let key = r.key.clone();
        let mut released = Vec::new();
        Ok(self.take(r, &mut released).then_some(Taken { key, released }))
    }

    /// Signs this host's records from now on, and takes another's only when its origin's
    /// signature holds.
    pub fn set_authority(&mut self, auth: Arc<dyn Authority>) {
        self.auth = Some(auth);
    }

    /// A record this host wrote before a restart, kept in its state: signed again (a stored
    /// record keeps no signature) and merged. `None` for another host's record, which only
    /// its origin can sign.
    pub fn restore(&mut self, key: RecordKey, version: Version, body: Option<Body>) -> Option<Record> {
        if *version.origin != *self.me {
            return None;
        }
        let (r, new) = self.write_own(Record::new(key, version, body));
        new.then_some(r)
    }

    /// Signs a record of this host's and merges it: the record as it goes out, and whether it
    /// was newer than what was known.
    fn write_own(&mut self, mut r: Record) -> (Record, bool) {
        if let Some(auth) = &self.auth {
            r.sig = Some(auth.sign(&r.signed_bytes()).into());
        }
        let mut mine = r.clone();
        self.share_names(&mut mine);
        let new = self.insert(Arc::new(mine));
        (r, new)
    }

    /// The origins whose certificates records were held for since the last call: the
    /// membership asks the host that sent them, which took them and so holds those
    /// certificates.
    pub fn take_unknown(&mut self) -> Vec<Arc<str>> {
        self.unknown.drain().collect()
    }

    /// This host's wall clock as last told (ms since the epoch; 0: not told).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Records refused because their signature did not hold.
    pub fn forged(&self) -> u64 {
        self.forged
    }

    /// Records refused because no certificate of their origin was known.
    pub fn unknown_origin(&self) -> u64 {
        self.unknown_origin
    }

    /// Tells the records this host's wall clock (ms since the epoch): a record whose counter
    /// is more than [`MAX_SKEW_MS`] beyond it is refused and counted ([`Records::ahead`]).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// How many records were refused for a counter too far ahead of this host's clock.
    pub fn ahead(&self) -> u64 {
        self.ahead
    }

    /// Merges a record; true when it was newer than what was known (and so changed something).
    pub fn apply(&mut self, mut r: Record) -> bool {
        self.share_names(&mut r);
        self.apply_shared(Arc::new(r))
    }

    /// Points the host names `r` holds at the ones this set keeps.
    fn share_names(&mut self, r: &mut Record) {
        self.share(&mut r.version.origin);
        match r.body.as_mut() {
            Some(Body::Endpoint(e)) => {
                if let Some(e) = Arc::get_mut(e) {
                    self.share(&mut e.host);
                }
            }
            Some(Body::Claim(owner)) => self.share(owner),
            Some(Body::Network(_) | Body::Cert(_) | Body::Revocation { .. }) | None => {}
        }
    }

    /// As [`Records::apply`], for a record held elsewhere too (another host's, in an exchange).
    pub fn apply_shared(&mut self, r: Arc<Record>) -> bool {
        self.take(r, &mut Vec::new())
    }

    /// Merges `r` when it is news and its origin wrote it. A record whose origin's certificate
    /// has not come yet is held (the newest version of each key, [`PENDING_MAX`] in all) and
    /// merged when the certificate comes; those it then merges go into `released`.
    fn take(&mut self, r: Arc<Record>, released: &mut Vec<Arc<Record>>) -> bool {
        if self.now_ms != 0 && r.version.counter > self.now_ms.saturating_add(MAX_SKEW_MS) {
            self.ahead += 1;
            return false;
        }
        if !r.key.writable_by(&r.version.origin, r.body.as_ref()) {
            self.forged += 1;
            return false;
        }
        // Only news is worth a signature check.
        if let Some(known) = self.map.get(&r.key) {
            let (counter, origin) = (r.version.counter, &r.version.origin);
            if !known.older_than(counter, origin_fingerprint(origin), || origin) {
                return false;
            }
        }
        if let Some(auth) = &self.auth {
            match r.check(auth.as_ref(), self.now_ms) {
                Check::Valid => {}
                Check::Invalid => {
                    self.forged += 1;
                    return false;
                }
                Check::UnknownOrigin => {
                    self.unknown_origin += 1;
                    self.hold(r);
                    return false;
                }
            }
        }
        let (cert_of, revoked) = match &r.key {
            RecordKey::Host(h) => (Some(h.clone()), None),
            RecordKey::Revoked(h) => (None, Some(h.clone())),
            _ => (None, None),
        };
        let new = self.insert(r);
        if let Some(host) = revoked.filter(|_| new) {
            self.withdraw(&host);
        }
        if let Some(waiting) = cert_of.filter(|_| new).and_then(|h| self.pending.remove(&h)) {
            self.pending_len -= waiting.len();
            for w in waiting.into_values() {
                if self.take(w.clone(), released) {
                    released.push(w);
                }
            }
        }
        new
    }

    /// Takes back what revoked host `host` wrote: its endpoints and its certificate become
    /// tombstones at their versions, and what waited for its certificate is dropped. The
    /// digest covers keys and versions only, so it does not move, and hosts that have not
    /// heard of the revocation yet exchange nothing for it. Its networks and address claims
    /// stay (`cluster forget` takes the addresses over).
    fn withdraw(&mut self, host: &str) {
        let theirs: Vec<RecordKey> = self
            .map
            .iter()
            .filter(|(k, v)| {
                *v.rec.version.origin == *host
                    && v.rec.body.is_some()
                    && matches!(k, RecordKey::Endpoint { .. } | RecordKey::Host(_))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in theirs {
            if let Some(known) = self.map.get_mut(&k) {
                let tombstone = Record::new(k.clone(), known.rec.version.clone(), None);
                *known = Known::new(Arc::new(tombstone));
                self.changed.push(k);
            }
        }
        if let Some(held) = self.pending.remove(host) {
            self.pending_len -= held.len();
        }
    }

    /// Holds `r` until its origin's certificate comes, in place of an older version of its key.
    fn hold(&mut self, r: Arc<Record>) {
        use std::collections::hash_map::Entry;
        if !self.unknown.contains(&r.version.origin) {
            self.unknown.insert(r.version.origin.clone());
        }
        let full = self.pending_len >= PENDING_MAX;
        let held = self.pending.entry(r.version.origin.clone()).or_default();
        match held.entry(r.key.clone()) {
            Entry::Occupied(mut o) => {
                let v = &o.get().version;
                if order(v.counter, &v.origin, r.version.counter, &r.version.origin).is_lt() {
                    o.insert(r);
                }
            }
            Entry::Vacant(v) if !full => {
                v.insert(r);
                self.pending_len += 1;
            }
            Entry::Vacant(_) => {}
        }
    }

    /// Merges a record that passed the checks (or this host's own).
    fn insert(&mut self, r: Arc<Record>) -> bool {
        use std::collections::hash_map::Entry;
        self.clock = self.clock.max(r.version.counter);
        let new = |r: &Record| fingerprint(&r.key, &r.version);
        match self.map.entry(r.key.clone()) {
            Entry::Occupied(mut o) => {
                let (counter, origin) = (r.version.counter, &r.version.origin);
                if !o.get().older_than(counter, origin_fingerprint(origin), || origin) {
                    return false;
                }
                let change = new(&o.get().rec) ^ new(&r);
                self.digest ^= change;
                flip(&mut self.buckets, &r.key, change);
                self.changed.push(r.key.clone());
                o.insert(Known::new(r));
            }
            Entry::Vacant(v) => {
                let change = new(&r);
                self.digest ^= change;
                flip(&mut self.buckets, &r.key, change);
                self.changed.push(r.key.clone());
                v.insert(Known::new(r));
            }
        }
        true
    }

    /// Whether the record in `wire` (its encoded form) is newer than what is known, read
    /// without decoding its body or allocating.
    ///
    /// # Errors
    /// Bytes that do not start like a record.
    pub fn is_news(&self, wire: &[u8]) -> Result<bool, RecordError> {
        let (head, _) = postcard::take_from_bytes::<Head>(wire).map_err(|e| RecordError(e.to_string()))?;
        Ok(self
            .map
            .get(&head.key)
            .is_none_or(|old| old.older_than(head.counter, origin_fingerprint(head.origin), || head.origin)))
    }

    /// Merges every record of `other` that is newer than ours (a full-state exchange,
    /// without copying what would change nothing); how many were.
    pub fn merge_from(&mut self, other: &Records) -> usize {
        self.merge_buckets(other, &[]).newer
    }

    /// As [`Records::merge_from`], only for the records of the buckets set in `map` (from
    /// [`differing`]; empty: all), which is what an exchange sends; counted in one pass.
    pub fn merge_buckets(&mut self, other: &Records, map: &[u8]) -> Merged {
        let mut merged = Merged::default();
        let mut newer: Vec<Arc<Record>> = other
            .map
            .iter()
            .filter(|(_, r)| in_map(map, usize::from(r.bucket)))
            .inspect(|(_, r)| {
                merged.offered += 1;
                merged.offered_wire += r.wire as usize;
            })
            .filter(|(k, r)| match self.map.get(*k) {
                None => {
                    merged.added += 1;
                    true
                }
                // The same allocation (merged from there before) is the same version.
                Some(m) => !Arc::ptr_eq(&m.rec, &r.rec) && m.older_than(r.counter, r.origin, || &r.rec.version.origin),
            })
            .map(|(_, r)| r.rec.clone())
            .collect();
        merged.newer = newer.len();
        // Revocations first, then certificates: the records of their hosts are checked
        // against them.
        newer.sort_by_key(|r| match r.key {
            RecordKey::Revoked(_) => 0,
            RecordKey::Host(_) => 1,
            _ => 2,
        });
        for r in newer {
            self.apply_shared(r);
        }
        merged
    }

    /// A summary of every (key, version) known: two hosts with the same digest know the same
    /// records (up to a 64-bit collision), so a full-state exchange between them can be skipped.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The digest of each bucket (XOR of its keys' and versions' fingerprints).
    pub fn bucket_digests(&self) -> Vec<u64> {
        if self.buckets.is_empty() {
            vec![0; BUCKETS]
        } else {
            self.buckets.clone()
        }
    }

    /// The records of the buckets set in `map` (empty: all), as an exchange sends them.
    pub fn in_buckets<'a>(&'a self, map: &'a [u8]) -> impl Iterator<Item = &'a Record> + 'a {
        self.map
            .values()
            .filter(move |k| in_map(map, usize::from(k.bucket)))
            .map(|k| &*k.rec)
    }

    /// How many records the buckets set in `map` (empty: all) hold, and the sum of their
    /// wire lengths, read from the table alone.
    pub fn size_in_buckets(&self, map: &[u8]) -> (usize, usize) {
        self.map
            .values()
            .filter(|k| in_map(map, usize::from(k.bucket)))
            .fold((0, 0), |(n, len), k| (n + 1, len + k.wire as usize))
    }

    /// How many records (tombstones included) are known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no record is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The record of `key`, tombstones included.
    pub fn get(&self, key: &RecordKey) -> Option<&Record> {
        self.map.get(key).map(|k| &*k.rec)
    }

    /// As [`Records::get`], the record itself rather than a copy (it is immutable).
    pub fn get_shared(&self, key: &RecordKey) -> Option<Arc<Record>> {
        self.map.get(key).map(|k| k.rec.clone())
    }

    /// The claims on `network`'s addresses known ([`super::space`]), for a network a host
    /// adopts after its claims came.
    pub fn claims_of(&self, network: &Id) -> Vec<(super::space::Range, super::space::Claim)> {
        self.all()
            .filter_map(|rec| match (&rec.key, &rec.body) {
                (RecordKey::Claim { network: n, start, end }, Some(Body::Claim(owner))) if n == network => Some((
                    (*start, *end),
                    super::space::Claim {
                        owner: owner.clone(),
                        version: rec.version.clone(),
                    },
                )),
                _ => None,
            })
            .collect()
    }

    /// Every record, tombstones included (for a full-state sync).
    pub fn all(&self) -> impl Iterator<Item = &Record> {
        self.map.values().map(|k| &*k.rec)
    }

    /// Live endpoint records.
    pub fn endpoints(&self) -> impl Iterator<Item = (&Id, &Arc<EndpointRecord>)> {
        self.map.iter().filter_map(|(k, r)| match (k, &r.rec.body) {
            (RecordKey::Endpoint { id, .. }, Some(Body::Endpoint(e))) => Some((id, e)),
            _ => None,
        })
    }

    /// Points `name` at the copy kept for it (a decoded record brings its own).
    fn share(&mut self, name: &mut Arc<str>) {
        match self.names.get(&**name) {
            Some(kept) => {
                if !Arc::ptr_eq(kept, name) {
                    *name = kept.clone();
                }
            }
            None => {
                self.names.insert(name.clone());
            }
        }
    }

    /// Keys changed since the last call, in the order they changed.
    pub fn take_changes(&mut self) -> Vec<RecordKey> {
        std::mem::take(&mut self.changed)
    }
}

/// What [`Records::merge_buckets`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    /// The other side's records in the buckets merged (what its side of an exchange sends).
    pub offered: usize,
    /// The sum of those records' wire lengths.
    pub offered_wire: usize,
    /// Of those, the keys unknown here before.
    pub added: usize,
    /// Of those, the ones newer than what was known here (added included): how many records
    /// changed here.
    pub newer: usize,
}

/// Records waiting in this host's dissemination backlog above which records heard from
/// others are merged but not relayed: piggybacked gossip carries a few new records a second
/// with low latency, and a burst beyond that (thousands of endpoints made at once, a host
/// coming back) is left to anti-entropy, whose digest-checked full exchanges carry bulk.
/// It also bounds what every outgoing message costs to fill.
pub const RELAY_BACKLOG_MAX: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, ip: [u8; 4]) -> Body {
        Body::Endpoint(Arc::new(EndpointRecord {
            network: Id::from_random([1; 32]),
            host: host.into(),
            vtep: "10.0.0.1:4789".parse().unwrap(),
            sandbox: "web".into(),
            mac: [2, 0x42, ip[0], ip[1], ip[2], ip[3]],
            ip: Ipv4Addr::from(ip),
            aliases: vec![],
        }))
    }

    #[test]
    fn last_writer_wins_the_same_way_everywhere() {
        let key = RecordKey::Network(Id::from_random([9; 32]));
        let mut a = Records::new("a");
        let mut b = Records::new("b");
        let ra = a.local(key.clone(), Some(ep("a", [10, 0, 0, 2])), 0);
        let rb = b.local(key.clone(), Some(ep("b", [10, 0, 0, 3])), 0);
        // Same counter: the origin breaks the tie, identically on both sides.
        assert!(b.apply(ra.clone()) == (ra.version > rb.version));
        assert!(a.apply(rb.clone()) == (rb.version > ra.version));
        assert_eq!(a.get(&key), b.get(&key));
        assert_eq!(a.digest(), b.digest(), "same records, same digest");
        let mut c = Records::new("c");
        assert_eq!(c.merge_from(&a), 1);
        assert_eq!(c.merge_from(&b), 0, "nothing newer");
        assert_eq!(c.digest(), a.digest());
        // A later removal beats both; replaying an old version changes nothing.
        let tomb = a.local(key.clone(), None, 0);
        assert_ne!(a.digest(), b.digest());
        assert!(b.apply(tomb.clone()));
        assert_eq!(a.digest(), b.digest());
        assert!(!b.apply(rb));
        assert_eq!(b.get(&key).unwrap().body, None);
        assert_eq!(b.endpoints().count(), 0);
        assert_eq!(Record::decode(&tomb.encode()).unwrap(), tomb);
        assert!(!b.is_news(&tomb.encode()).unwrap(), "known already");
        assert!(Records::new("d").is_news(&tomb.encode()).unwrap());
        assert!(!b.is_news(&ra.encode()).unwrap(), "older than the removal");
        assert!(b.is_news(&[0xff]).is_err());
        assert!(Record::decode(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn an_exchange_of_differing_buckets_converges_like_a_full_one() {
        let mut a = Records::new("a");
        let mut b = Records::new("b");
        for i in 0..200u8 {
            let key = RecordKey::endpoint("a", Id::from_random([i; 32]));
            a.local(key.clone(), Some(ep("a", [10, 0, 0, i])), 0);
            if i % 10 != 0 {
                b.apply(a.get(&key).unwrap().clone());
            }
        }
        b.local(RecordKey::Network(Id::from_random([7; 32])), None, 0);
        assert_ne!(a.digest(), b.digest());
        let map = differing(&a.bucket_digests(), &b.bucket_digests());
        let set = (0..BUCKETS).filter(|i| in_map(&map, *i)).count();
        assert!((1..=21).contains(&set), "{set} buckets differ");
        let offered = a.in_buckets(&map).count();
        assert!(offered < 40, "only the differing buckets travel");
        let m = b.merge_buckets(&a, &map);
        assert_eq!((m.offered, m.added, m.newer), (offered, 20, 20));
        assert_eq!(a.merge_buckets(&b, &map).newer, 1);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.bucket_digests(), b.bucket_digests());
        assert!(in_map(&[], 5), "an empty map means every bucket");
    }

    #[test]
    fn gossip_is_news_exactly_when_its_version_is_newer() {
        let key = RecordKey::Network(Id::from_random([4; 32]));
        let mut known = Records::new("m");
        let wire = |counter, origin: &str| {
            let version = Version {
                counter,
                origin: origin.into(),
            };
            Record::new(key.clone(), version, None).encode()
        };
        known.apply(Record::decode(&wire(5, "hb")).unwrap());
        for (counter, origin, news) in [
            (5, "hb", false),
            (5, "ha", false),
            (5, "h", false),
            (5, "hc", true),
            (5, "hba", true),
            (4, "zz", false),
            (6, "", true),
        ] {
            assert_eq!(
                known.is_news(&wire(counter, origin)).unwrap(),
                news,
                "({counter}, {origin})"
            );
            // An exchange decides the same way.
            let mut other = Records::new("o");
            other.apply(Record::decode(&wire(counter, origin)).unwrap());
            let mut copy = Records::new("m");
            copy.apply(Record::decode(&wire(5, "hb")).unwrap());
            assert_eq!(
                copy.merge_from(&other),
                usize::from(news),
                "({counter}, {origin}) merged"
            );
        }
    }

    #[test]
    fn a_counter_far_ahead_of_the_clock_is_refused_and_counted() {
        let now = 1_800_000_000_000;
        let key = RecordKey::endpoint("a", Id::from_random([7; 32]));
        let mut a = Records::new("a");
        a.set_now(now);
        let mine = a.local(key.clone(), Some(ep("a", [10, 0, 0, 2])), now);
        let forged = |counter| {
            Record::new(
                key.clone(),
                Version {
                    counter,
                    origin: "a".into(),
                },
                None,
            )
        };
        // A tombstone that would win for ever, and one a minute and a millisecond ahead.
        for counter in [u64::MAX, now + MAX_SKEW_MS + 1] {
            assert!(!a.apply(forged(counter)));
        }
        let mut bulk = Records::new("m");
        bulk.apply(forged(u64::MAX));
        assert_eq!(a.merge_from(&bulk), 1, "offered as newer");
        assert_eq!(a.ahead(), 3);
        assert_eq!(a.get(&key), Some(&mine), "nothing changed");
        // The clock did not follow: this host's next write is still of now.
        let next = a.local(key.clone(), None, now + 1);
        assert_eq!(next.version.counter, now + 1);
        // Within the skew, a record is taken.
        assert!(a.apply(forged(now + MAX_SKEW_MS)));
        assert_eq!(a.ahead(), 3);
    }

    #[test]
    fn versions_order_as_counter_then_origin() {
        let v = |c, o: &str| Version {
            counter: c,
            origin: o.into(),
        };
        let mut all = vec![v(2, "a"), v(1, "b"), v(1, "ab"), v(1, "a"), v(1, ""), v(0, "zz")];
        let mut by_tuple = all.clone();
        all.sort();
        by_tuple.sort_by(|x, y| (x.counter, &x.origin).cmp(&(y.counter, &y.origin)));
        assert_eq!(all, by_tuple);
    }

    #[test]
    fn a_host_learning_a_high_version_writes_above_it() {
        let key = RecordKey::Network(Id::from_random([3; 32]));
        let mut a = Records::new("a");
        let mut far = Records::new("z");
        for _ in 0..10 {
            far.local(key.clone(), None, 0);
        }
        a.apply(far.get(&key).unwrap().clone());
        let mine = a.local(key.clone(), None, 0);
        assert!(mine.version.counter > 10, "{:?}", mine.version);
        assert!(far.apply(mine));
    }

    /// Host `name`'s records, signed and checked by the cheap authority, and the record of its
    /// certificate.
    fn signed(name: &str) -> (Records, Record) {
        use super::super::cheap;
        let mut r = Records::new(name);
        r.set_authority(Arc::new(cheap::Cheap::new(name)));
        let cert = r.local(
            RecordKey::Host(name.into()),
            Some(Body::Cert(cheap::cert(name).into())),
            1_000,
        );
        (r, cert)
    }

    #[test]
    fn only_a_records_origin_can_write_it() {
        use super::super::cheap::{self, Cheap};
        let (mut a, cert_a) = signed("a");
        let (mut b, cert_b) = signed("b");
        let key = RecordKey::endpoint("a", Id::from_random([9; 32]));
        let ra = a.local(key.clone(), Some(ep("a", [10, 0, 0, 2])), 2_000);
        // b knows a's certificate, and takes a's record as relayed: its bytes unchanged.
        assert!(b.apply(cert_a.clone()));
        assert!(b.apply_wire(&ra.encode()).unwrap().is_some());
        // A tombstone in a's name: unsigned, with a's signature of another record, signed by
        // b, or signed by a and altered on the way. All refused and counted.
        let version = Version {
            counter: ra.version.counter + 1,
            origin: "a".into(),
        };
        let unsigned = Record::new(key.clone(), version.clone(), None);
        let mut borrowed = unsigned.clone();
        borrowed.sig = ra.sig.clone();
        let mut by_b = unsigned.clone();
        by_b.sig = Some(Cheap::new("b").sign(&unsigned.signed_bytes()).into());
        let mut altered = a.local(key.clone(), Some(ep("a", [10, 0, 0, 9])), 3_000);
        altered.body = None;
        for forged in [unsigned, borrowed, by_b, altered] {
            assert!(!b.apply(forged));
        }
        assert_eq!(b.forged(), 4);
        assert_eq!(b.get(&key).map(|r| &r.version), Some(&ra.version));
        // A certificate record is its own host's: b cannot publish one for a, even a's.
        let (mut c, _) = signed("c");
        let mut cert_for_a = Record::new(
            RecordKey::Host("a".into()),
            Version {
                counter: 5_000,
                origin: "b".into(),
            },
            Some(Body::Cert(cheap::cert("a").into())),
        );
        cert_for_a.sig = Some(Cheap::new("b").sign(&cert_for_a.signed_bytes()).into());
        assert!(c.apply(cert_b));
        assert!(!c.apply(cert_for_a));
        assert!(!c.apply(ra.clone()), "a's certificate never reached c");
        assert_eq!((c.forged(), c.unknown_origin()), (1, 1));
    }

    #[test]
    fn an_endpoint_is_written_only_by_the_host_it_lives_on() {
        let key = RecordKey::endpoint("a", Id::from_random([8; 32]));
        let mut a = Records::new("a");
        let mine = a.local(key.clone(), Some(ep("a", [10, 0, 0, 2])), 1_000);
        let mut c = Records::new("c");
        assert!(c.apply(mine.clone()));
        // b tombstones a's endpoint, or writes it as its own, or as a's from b: refused.
        let by_b = |body| {
            let version = Version {
                counter: 5_000,
                origin: "b".into(),
            };
            Record::new(key.clone(), version, body)
        };
        for forged in [
            by_b(None),
            by_b(Some(ep("b", [10, 0, 0, 3]))),
            by_b(Some(ep("a", [10, 0, 0, 3]))),
        ] {
            assert!(!c.apply(forged));
        }
        // Nor may a record of a's say it lives elsewhere.
        let mut elsewhere = a.local(key.clone(), Some(ep("b", [10, 0, 0, 4])), 6_000);
        assert!(!c.apply(elsewhere.clone()));
        elsewhere.body = Some(Body::Claim("a".into()));
        assert!(!c.apply(elsewhere));
        assert_eq!((c.forged(), c.get(&key).map(|r| &r.version)), (5, Some(&mine.version)));
    }

    #[test]
    fn records_wait_for_their_origins_certificate() {
        let (mut a, cert_a) = signed("a");
        let (mut b, _) = signed("b");
        let keys: Vec<RecordKey> = (0..3u8)
            .map(|i| RecordKey::endpoint("a", Id::from_random([i; 32])))
            .collect();
        let first: Vec<Record> = keys.iter().map(|k| a.local(k.clone(), None, 2_000)).collect();
        let newer = a.local(keys[0].clone(), Some(ep("a", [10, 0, 0, 5])), 3_000);
        // Before a's certificate: held, not taken; the newest version of a key is kept.
        for r in std::iter::once(&newer).chain(&first) {
            assert!(b.apply_wire(&r.encode()).unwrap().is_none());
        }
        assert_eq!(b.unknown_origin(), 4);
        assert!(keys.iter().all(|k| b.get(k).is_none()));
        // The certificate releases them, to be passed on.
        let Taken { key, released } = b.apply_wire(&cert_a.encode()).unwrap().expect("news");
        assert_eq!(key, cert_a.key);
        assert_eq!(released.len(), 3);
        assert_eq!(b.get(&keys[0]).map(|r| &r.version), Some(&newer.version));
        assert!(keys[1..].iter().all(|k| b.get(k).is_some()));
        assert_eq!(b.forged(), 0);
    }

    #[test]
    fn records_held_for_a_certificate_are_bounded() {
        let (mut b, _) = signed("b");
        let z = super::super::cheap::Cheap::new("z");
        for i in 0..PENDING_MAX as u32 + 10 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            let key = RecordKey::endpoint("z", Id::from_random(id));
            let version = Version {
                counter: 2_000,
                origin: "z".into(),
            };
            let mut r = Record::new(key, version, None);
            r.sig = Some(z.sign(&r.signed_bytes()).into());
            assert!(!b.apply(r));
        }
        assert_eq!(b.pending_len, PENDING_MAX);
        assert_eq!(b.pending.values().map(FxHashMap::len).sum::<usize>(), PENDING_MAX);
    }

    #[test]
    fn a_restarted_host_signs_again_only_what_it_wrote() {
        let (mut a, cert_a) = signed("a");
        let key = RecordKey::endpoint("a", Id::from_random([4; 32]));
        let version = Version {
            counter: 2_000,
            origin: "a".into(),
        };
        let mine = a.restore(key.clone(), version, None).expect("a's own record");
        let theirs = Version {
            counter: 2_001,
            origin: "b".into(),
        };
        assert!(a.restore(key.clone(), theirs, None).is_none());
        let (mut b, _) = signed("b");
        assert!(b.apply(cert_a));
        assert!(b.apply(mine));
    }

    #[test]
    fn a_restarted_host_writes_above_what_it_wrote_before() {
        let key = RecordKey::Network(Id::from_random([6; 32]));
        let mut before = Records::new("a");
        let old = before.local(key.clone(), None, 1_000);
        let mut after = Records::new("a");
        let new = after.local(key.clone(), None, 2_000);
        assert!(new.version > old.version);
    }
}
