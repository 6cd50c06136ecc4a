//! Who may hand out which address of an overlay network, sans-IO: the network's addresses
//! are cut into ranges, each owned by one host, and only a range's owner hands out its
//! addresses or gives the range (or part of it) to another host. Weave Net's IPAM is the
//! model; this is its ring of tokens over the cluster's records.
//!
//! ```text
//!  offsets 0 .. size of the network's addresses
//!  tokens:  0 ──► h1      40 ──► h2      48 ──► h1      200 ──► h3
//!           [0, 40) h1    [40, 48) h2    [48, 200) h1   [200, size) h3
//! ```
//!
//! A claim says that a host owns `[start, end)`, as of a write with a record [`Version`]
//! (Lamport counter, then origin). Claims are never rewritten in place: a gift is a new claim
//! on the range given, newer than every claim on it, and a replica keeps one claim per range
//! (the newest written on exactly that range). An address belongs to the newest claim that
//! covers it; an address no claim covers is nobody's (yet, in this replica's view). Merging is
//! keeping the newer claim per range, so replicas that have merged the same claims agree, in
//! any order.
//!
//! Why no address is ever owned by two hosts: a host writes a claim only on addresses its own
//! view says it owns, after merging the claim that gave them to it, so with a higher Lamport
//! counter. The claims covering an address thus form one chain, each written by the owner the
//! one before named. A host believes it owns an address only when the newest claim it knows on
//! it names it; any later claim on that address would be its own write, which it knows. So at
//! most one host believes it owns an address at any moment. A claim says where it ends, so a
//! replica that missed a later, finer claim never stretches an older one over addresses it
//! does not cover. The property tests below check this under any interleaving of gifts,
//! deliveries, duplicates, allocations and partitions.
//!
//! The one exception is taking over the space of a host gone for good
//! ([`Space::take_over`]): it writes over another host's claims. It is safe for a host that is
//! really gone, long enough that nothing it sent is still on its way, done by one host that
//! first holds every claim any live host holds (an exchange with each) and writes after the
//! gone host's last write (the hybrid clock does that when the host went down long before,
//! so a late copy of a claim it sent loses). Without the exchange, or with the gone host's
//! claims still on their way, the property test finds two owners.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::records::Version;

/// A range of offsets, `start..end`.
pub type Range = (u32, u32);

/// A claim on a range: who owns it, as of which write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The owner of the range.
    pub owner: Arc<str>,
    /// The write that said so.
    pub version: Version,
}

/// A claim to write (with a version of the writer's) and send to every host: `owner` owns
/// `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The range.
    pub range: Range,
    /// Its owner.
    pub owner: Arc<str>,
}

/// Why a gift was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaceError {
    /// An empty range, or one past the end of the space.
    #[error("invalid range {start}-{end} of a space of {size} addresses")]
    Range {
        /// Its first offset.
        start: u32,
        /// One past its last.
        end: u32,
        /// The space's size.
        size: u32,
    },
    /// Part of the range is not the giver's (as far as it knows).
    #[error("offset {offset} is not {host}'s to give")]
    NotOwned {
        /// The first offset not owned.
        offset: u32,
        /// The would-be giver.
        host: String,
    },
}

/// One network's space of `size` addresses (offsets `0..size`) and the claims on it that this
/// replica knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Stored", try_from = "Stored")]
pub struct Space {
    size: u32,
    claims: BTreeMap<Range, Claim>,
    /// Who owns what, worked out from the claims when first asked after a change.
    owners: Owners,
}

/// The ranges each host owns, kept until a merge changes the claims: asking who owns what
/// (every allocation, every donation, every estimate of free addresses) then costs a lookup,
/// not a sweep over every claim. Not part of what a space is: two spaces are equal whether
/// or not either worked it out.
#[derive(Debug, Clone, Default)]
struct Owners(std::sync::OnceLock<Arc<Effective>>);

#[derive(Debug)]
struct Effective {
    /// [`Space::ranges`].
    ranges: Vec<(u32, u32, Arc<str>)>,
    /// The same by owner.
    by_owner: BTreeMap<Arc<str>, Vec<Range>>,
}

impl PartialEq for Owners {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Owners {}

/// A space as it is stored: its size and its claims in a list (JSON keys are strings).
#[derive(Serialize, Deserialize)]
struct Stored {
    size: u32,
    claims: Vec<(u32, u32, Claim)>,
}

impl From<Space> for Stored {
    fn from(s: Space) -> Stored {
        Stored {
            size: s.size,
            claims: s.claims.into_iter().map(|((a, b), c)| (a, b, c)).collect(),
        }
    }
}

impl TryFrom<Stored> for Space {
    type Error = String;

    /// Refuses claims outside the space (a stored state written wrong, or tampered with).
    fn try_from(s: Stored) -> Result<Space, String> {
        let mut space = Space::new(s.size);
        for (a, b, c) in s.claims {
            if a >= b || b > s.size {
                return Err(format!("a claim on {a}-{b} outside a space of {} addresses", s.size));
            }
            space.merge((a, b), c);
        }
        Ok(space)
    }
}

impl Space {
    /// A space of `size` addresses that nobody owns yet.
    pub fn new(size: u32) -> Space {
        Space {
            size,
            claims: BTreeMap::new(),
            owners: Owners::default(),
        }
    }

    /// How many addresses the space has.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Merges a claim on `range`; true when it was newer than what was known. A claim on an
    /// empty range or one reaching outside the space is ignored.
    pub fn merge(&mut self, range: Range, claim: Claim) -> bool {
        if range.0 >= range.1 || range.1 > self.size {
            return false;
        }
        match self.claims.get(&range) {
            Some(known) if known.version >= claim.version => false,
            _ => {
                self.claims.insert(range, claim);
                self.owners = Owners::default();
                true
            }
        }
    }

    /// The claims known, by range.
    pub fn claims(&self) -> impl Iterator<Item = (Range, &Claim)> {
        self.claims.iter().map(|(r, c)| (*r, c))
    }

    /// Who owns `offset`, as far as this replica knows: the owner the newest claim covering it
    /// names.
    pub fn owner(&self, offset: u32) -> Option<&str> {
        self.claims
            .range(..=(offset, u32::MAX))
            .filter(|((_, e), _)| *e > offset)
            .map(|(_, c)| c)
            .max_by(|a, b| a.version.cmp(&b.version))
            .map(|c| &*c.owner)
    }

    /// Every range with its owner, in order, neighbours of one owner joined; addresses no
    /// claim covers are not listed.
    pub fn ranges(&self) -> Vec<(u32, u32, &str)> {
        self.effective().ranges.iter().map(|(s, e, o)| (*s, *e, &**o)).collect()
    }

    /// The ranges `host` owns.
    pub fn owned_by<'a>(&'a self, host: &str) -> impl Iterator<Item = Range> + 'a {
        self.effective().by_owner.get(host).into_iter().flatten().copied()
    }

    fn effective(&self) -> &Effective {
        self.owners.0.get_or_init(|| {
            let ranges = self.sweep();
            let mut by_owner: BTreeMap<Arc<str>, Vec<Range>> = BTreeMap::new();
            for (s, e, o) in &ranges {
                by_owner.entry(o.clone()).or_default().push((*s, *e));
            }
            Arc::new(Effective { ranges, by_owner })
        })
    }

    /// Who owns what: one sweep over the claims' ends, the claims covering the point in a
    /// heap with the newest on top, O(k log k) for k claims.
    fn sweep(&self) -> Vec<(u32, u32, Arc<str>)> {
        let mut cuts: Vec<u32> = self.claims.keys().flat_map(|(s, e)| [*s, *e]).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut covering: std::collections::BinaryHeap<(&Version, u32, &Arc<str>)> =
            std::collections::BinaryHeap::new();
        let mut claims = self.claims.iter().peekable();
        let mut out: Vec<(u32, u32, Arc<str>)> = Vec::new();
        for w in cuts.windows(2) {
            let at = w[0];
            while let Some(((_, e), c)) = claims.next_if(|((s, _), _)| *s <= at) {
                covering.push((&c.version, *e, &c.owner));
            }
            // Claims that ended are dropped when they come to the top: below the newest one
            // covering `at`, they do not matter.
            while covering.peek().is_some_and(|(_, e, _)| *e <= at) {
                covering.pop();
            }
            let Some(&(_, _, owner)) = covering.peek() else {
                continue;
            };
            match out.last_mut() {
                Some((_, e, o)) if *e == at && **o == **owner => *e = w[1],
                _ => out.push((at, w[1], owner.clone())),
            }
        }
        out
    }

    /// How many addresses each host owns.
    pub fn held(&self) -> BTreeMap<&str, u32> {
        let by_owner = &self.effective().by_owner;
        by_owner
            .iter()
            .map(|(o, r)| (&**o, r.iter().map(|(s, e)| e - s).sum()))
            .collect()
    }

    /// The claim that makes `creator` the owner of the whole space, for a network just made.
    pub fn create(&self, creator: &str) -> Write {
        Write {
            range: (0, self.size),
            owner: creator.into(),
        }
    }

    /// The claim by which `me` gives `[start, end)` to `to`.
    ///
    /// # Errors
    /// [`SpaceError`] when the range is empty or outside the space, or `me` does not own all
    /// of it as far as this replica knows; nothing is to be written then.
    pub fn give(&self, me: &str, to: &str, start: u32, end: u32) -> Result<Write, SpaceError> {
        if start >= end || end > self.size {
            return Err(SpaceError::Range {
                start,
                end,
                size: self.size,
            });
        }
        let mine = self.owned_by(me).any(|(s, e)| s <= start && end <= e);
        if !mine {
            let offset = (start..end).find(|o| self.owner(*o) != Some(me)).unwrap_or(start);
            return Err(SpaceError::NotOwned {
                offset,
                host: me.to_string(),
            });
        }
        Ok(Write {
            range: (start, end),
            owner: to.into(),
        })
    }

    /// The claims by which `me` takes over every range of `gone`, a host that will never act
    /// again (removed from the cluster for good).
    pub fn take_over(&self, gone: &str, me: &str) -> Vec<Write> {
        let me: Arc<str> = me.into();
        self.owned_by(gone)
            .map(|range| Write {
                range,
                owner: me.clone(),
            })
            .collect()
    }

    /// The lowest offset `me` owns for which `used` is false.
    pub fn allocate(&self, me: &str, used: impl Fn(u32) -> bool) -> Option<u32> {
        self.owned_by(me).flat_map(|(s, e)| s..e).find(|o| !used(*o))
    }

    /// What `me` would give to a host that asked for space: the upper half (rounded up) of
    /// its longest run of offsets not in `used`, at most `want` of them. It walks the gaps
    /// between used offsets, not every offset owned.
    pub fn donation(&self, me: &str, used: &std::collections::BTreeSet<u32>, want: u32) -> Option<Range> {
        let mut best: Option<Range> = None;
        for (s, e) in self.owned_by(me) {
            let mut from = s;
            for to in used.range(s..e).copied().chain([e]) {
                if to > from && best.is_none_or(|(bs, be)| to - from > be - bs) {
                    best = Some((from, to));
                }
                from = to + 1;
            }
        }
        let (s, e) = best?;
        let n = (e - s).div_ceil(2).min(want.max(1));
        Some((e - n, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A host's replica: its view, its Lamport clock, the addresses it handed out, and the
    /// claims sent to it and not yet delivered.
    #[derive(Debug)]
    struct Replica {
        name: Arc<str>,
        space: Space,
        clock: u64,
        allocated: BTreeSet<u32>,
        inbox: Vec<(Range, Claim)>,
        gone: bool,
    }

    impl Replica {
        fn merge(&mut self, range: Range, c: Claim) {
            self.clock = self.clock.max(c.version.counter);
            self.space.merge(range, c);
        }

        /// Stamps `writes` with this host's clock and applies them here; the claims to send.
        fn write(&mut self, writes: Vec<Write>) -> Vec<(Range, Claim)> {
            writes
                .into_iter()
                .map(|w| {
                    self.clock += 1;
                    let c = Claim {
                        owner: w.owner,
                        version: Version {
                            counter: self.clock,
                            origin: self.name.clone(),
                        },
                    };
                    self.space.merge(w.range, c.clone());
                    (w.range, c)
                })
                .collect()
        }
    }

    const SIZE: u32 = 48;

    fn cluster(n: usize) -> Vec<Replica> {
        let mut r: Vec<Replica> = (0..n)
            .map(|i| Replica {
                name: format!("h{i}").into(),
                space: Space::new(SIZE),
                clock: 0,
                allocated: BTreeSet::new(),
                inbox: Vec::new(),
                gone: false,
            })
            .collect();
        let create = r[0].space.create("h0");
        let first = r[0].write(vec![create]);
        send(&mut r, 0, first);
        r
    }

    fn send(r: &mut [Replica], from: usize, claims: Vec<(Range, Claim)>) {
        for (i, x) in r.iter_mut().enumerate() {
            if i != from {
                x.inbox.extend(claims.iter().cloned());
            }
        }
    }

    /// No address is handed out by two hosts, and no address is believed owned by two live
    /// hosts.
    fn check(r: &[Replica]) -> Result<(), TestCaseError> {
        for o in 0..SIZE {
            let holders: Vec<&str> = r
                .iter()
                .filter(|x| x.allocated.contains(&o))
                .map(|x| &*x.name)
                .collect();
            prop_assert!(holders.len() <= 1, "offset {o} handed out by {holders:?}");
            let owners: Vec<&str> = r
                .iter()
                .filter(|x| !x.gone && x.space.owner(o) == Some(&*x.name))
                .map(|x| &*x.name)
                .collect();
            prop_assert!(owners.len() <= 1, "offset {o} believed owned by {owners:?}");
        }
        Ok(())
    }

    /// What a host does in one step of a run.
    #[derive(Debug, Clone)]
    enum Op {
        /// Host `.0` gives space to host `.1` (at most `.2` addresses of its free ones).
        Give(usize, usize, u32),
        /// Host `.0` receives the `.1`-th claim sent to it (any order: delays, partitions).
        Deliver(usize, usize),
        /// Host `.0` receives the `.1`-th claim again (a duplicate).
        Duplicate(usize, usize),
        /// Host `.0` hands out an address.
        Allocate(usize),
        /// Host `.0` frees its `.1`-th address.
        Free(usize, usize),
        /// Host `.0` is gone for good and host `.1` takes over its space.
        Forget(usize, usize),
    }

    fn op(n: usize) -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..n, 0..n, 1u32..20).prop_map(|(a, b, w)| Op::Give(a, b, w)),
            6 => (0..n, any::<prop::sample::Index>()).prop_map(|(a, i)| Op::Deliver(a, i.index(1 << 16))),
            1 => (0..n, any::<prop::sample::Index>()).prop_map(|(a, i)| Op::Duplicate(a, i.index(1 << 16))),
            4 => (0..n).prop_map(Op::Allocate),
            2 => (0..n, any::<prop::sample::Index>()).prop_map(|(a, i)| Op::Free(a, i.index(1 << 16))),
            1 => (0..n, 0..n).prop_map(|(a, b)| Op::Forget(a, b)),
        ]
    }

    fn run(r: &mut [Replica], op: Op) {
        match op {
            Op::Give(a, b, want) => {
                if a == b || r[a].gone || r[b].gone {
                    return;
                }
                let x = &r[a];
                let Some((s, e)) = x.space.donation(&x.name, &x.allocated, want) else {
                    return;
                };
                let to = r[b].name.clone();
                let w = r[a]
                    .space
                    .give(&r[a].name, &to, s, e)
                    .expect("a donation is the giver's");
                let claims = r[a].write(vec![w]);
                send(r, a, claims);
            }
            Op::Deliver(a, i) | Op::Duplicate(a, i) => {
                if r[a].gone || r[a].inbox.is_empty() {
                    return;
                }
                let k = i % r[a].inbox.len();
                let (range, c) = if matches!(op, Op::Deliver(..)) {
                    r[a].inbox.remove(k)
                } else {
                    r[a].inbox[k].clone()
                };
                r[a].merge(range, c);
            }
            Op::Allocate(a) => {
                let x = &r[a];
                if x.gone {
                    return;
                }
                if let Some(o) = x.space.allocate(&x.name, |o| x.allocated.contains(&o)) {
                    r[a].allocated.insert(o);
                }
            }
            Op::Free(a, i) => {
                let x = &mut r[a];
                if let Some(o) = x.allocated.iter().nth(i % x.allocated.len().max(1)).copied() {
                    x.allocated.remove(&o);
                }
            }
            Op::Forget(a, b) => {
                // A host gone for good is forgotten long after it went down (nothing it sent is
                // still on its way), by one survivor, which first exchanges with every live
                // host (so it holds every claim any of them holds) and writes after the gone
                // host's last write (a hybrid clock).
                if a == b || r[a].gone || r[b].gone {
                    return;
                }
                r[a].gone = true;
                r[a].allocated.clear();
                let name = r[a].name.clone();
                for x in r.iter_mut() {
                    x.inbox.retain(|(_, c)| c.version.origin != name);
                }
                let held: Vec<(Range, Claim)> = r
                    .iter()
                    .filter(|x| !x.gone)
                    .flat_map(|x| x.space.claims().map(|(range, c)| (range, c.clone())))
                    .collect();
                for (range, c) in held {
                    r[b].merge(range, c);
                }
                r[b].clock = r[b].clock.max(r[a].clock);
                let writes = r[b].space.take_over(&r[a].name, &r[b].name);
                let claims = r[b].write(writes);
                send(r, b, claims);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_address_is_ever_owned_or_handed_out_twice(ops in prop::collection::vec(op(4), 1..300)) {
            let mut r = cluster(4);
            check(&r)?;
            for o in ops {
                run(&mut r, o);
                check(&r)?;
            }
            // Once every claim is delivered and the live replicas have exchanged what they
            // hold (anti-entropy), they agree, and every address is owned by someone.
            for x in r.iter_mut() {
                for (range, c) in std::mem::take(&mut x.inbox) {
                    x.merge(range, c);
                }
            }
            let held: Vec<(Range, Claim)> = r
                .iter()
                .filter(|x| !x.gone)
                .flat_map(|x| x.space.claims().map(|(range, c)| (range, c.clone())))
                .collect();
            for x in r.iter_mut().filter(|x| !x.gone) {
                for (range, c) in &held {
                    x.merge(*range, c.clone());
                }
            }
            let live: Vec<&Replica> = r.iter().filter(|x| !x.gone).collect();
            for x in &live[1..] {
                prop_assert_eq!(&x.space.ranges(), &live[0].space.ranges());
            }
            // Space is lost only with a host forgotten before anyone heard of it.
            if live.len() == r.len() {
                prop_assert!((0..SIZE).all(|o| live[0].space.owner(o).is_some()));
            }
            check(&r)?;
        }

        #[test]
        fn merging_is_order_free(
            claims in prop::collection::vec((0u32..SIZE, 1u32..SIZE, 0u64..20, 0usize..3, 0usize..3), 0..40),
            seed in any::<u64>(),
        ) {
            // A host writes one claim per version: versions are unique.
            let mut seen = BTreeSet::new();
            let claims: Vec<(Range, Claim)> = claims
                .into_iter()
                .filter(|(_, _, n, origin, _)| seen.insert((*n, *origin)))
                .map(|(s, len, n, origin, owner)| {
                    ((s, s + len), Claim {
                        owner: format!("h{owner}").into(),
                        version: Version { counter: n, origin: format!("h{origin}").into() },
                    })
                })
                .collect();
            let mut a = Space::new(SIZE);
            for (range, c) in &claims {
                a.merge(*range, c.clone());
            }
            let mut shuffled = claims.clone();
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut b = Space::new(SIZE);
            for (range, c) in shuffled.iter().chain(&claims) {
                b.merge(*range, c.clone());
            }
            prop_assert_eq!(a, b);
        }
    }

    fn claim(owner: &str, counter: u64) -> Claim {
        Claim {
            owner: owner.into(),
            version: Version {
                counter,
                origin: "h0".into(),
            },
        }
    }

    proptest! {
        #[test]
        fn ranges_say_what_owner_says_of_every_offset(
            claims in prop::collection::vec((0u32..SIZE, 1u32..SIZE, 0u64..30, 0usize..3), 0..30),
        ) {
            let mut s = Space::new(SIZE);
            for (i, (start, len, n, owner)) in claims.into_iter().enumerate() {
                let end = (start + len).min(SIZE);
                s.merge((start, end), Claim {
                    owner: format!("h{owner}").into(),
                    version: Version { counter: n, origin: format!("o{i}").into() },
                });
            }
            let mut flat = vec![None; SIZE as usize];
            for (a, b, o) in s.ranges() {
                for x in a..b {
                    flat[x as usize] = Some(o);
                }
            }
            for o in 0..SIZE {
                prop_assert_eq!(flat[o as usize], s.owner(o), "offset {}", o);
            }
        }
    }

    #[test]
    fn a_gift_moves_exactly_its_range() {
        let mut s = Space::new(100);
        let w = s.create("a");
        s.merge(w.range, claim(&w.owner, 1));
        let w = s.give("a", "b", 40, 60).unwrap();
        assert_eq!(
            w,
            Write {
                range: (40, 60),
                owner: "b".into()
            }
        );
        s.merge(w.range, claim(&w.owner, 2));
        assert_eq!(s.ranges(), [(0, 40, "a"), (40, 60, "b"), (60, 100, "a")]);
        assert_eq!(s.owned_by("a").collect::<Vec<_>>(), [(0, 40), (60, 100)]);
        assert_eq!(s.held(), BTreeMap::from([("a", 80), ("b", 20)]));
        // b's range is not a's to give, nor past the end anyone's.
        assert_eq!(
            s.give("a", "c", 30, 50),
            Err(SpaceError::NotOwned {
                offset: 40,
                host: "a".into()
            })
        );
        assert!(matches!(s.give("a", "c", 90, 101), Err(SpaceError::Range { .. })));
        // Given back, the range is a's again and the space one range.
        let back = s.give("b", "a", 40, 60).unwrap();
        s.merge(back.range, claim(&back.owner, 3));
        assert_eq!(s.ranges(), [(0, 100, "a")]);
        // A replica that missed a later, finer claim does not stretch an older one.
        let mut stale = Space::new(100);
        stale.merge((40, 50), claim("c", 9));
        assert_eq!(stale.owner(55), None);
    }

    #[test]
    fn taking_over_claims_a_gone_host_s_ranges() {
        let mut s = Space::new(64);
        s.merge((0, 64), claim("a", 1));
        s.merge((16, 32), claim("b", 2));
        s.merge((48, 64), claim("b", 3));
        assert_eq!(
            s.take_over("b", "c"),
            vec![
                Write {
                    range: (16, 32),
                    owner: "c".into()
                },
                Write {
                    range: (48, 64),
                    owner: "c".into()
                }
            ]
        );
    }

    #[test]
    fn a_space_is_stored_and_read_back_whole() {
        let mut s = Space::new(64);
        s.merge((0, 64), claim("a", 1));
        s.merge((16, 32), claim("b", 2));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Space>(&json).unwrap(), s);
        let bad = json.replace("[16,32,", "[16,99,");
        let e = serde_json::from_str::<Space>(&bad).unwrap_err().to_string();
        assert!(e.contains("a claim on 16-99 outside a space of 64 addresses"), "{e}");
    }

    #[test]
    fn donations_take_the_upper_half_of_the_longest_free_run() {
        let mut s = Space::new(64);
        s.merge((0, 64), claim("a", 1));
        let used: BTreeSet<u32> = (0..10).chain([40]).collect();
        // Free runs: 10-40 (30) and 41-64 (23): half of the first, its upper end.
        assert_eq!(s.donation("a", &used, 100), Some((25, 40)));
        assert_eq!(s.donation("a", &used, 4), Some((36, 40)));
        assert_eq!(s.donation("b", &used, 4), None);
        assert_eq!(s.donation("a", &(0..64).collect(), 4), None);
        assert_eq!(s.allocate("a", |o| used.contains(&o)), Some(10));
        assert_eq!(s.allocate("a", |_| true), None);
    }
}
