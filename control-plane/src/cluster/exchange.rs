//! The anti-entropy exchange, sans-IO: its messages and wire forms, and each side's steps. A
//! transport carries the messages between the steps: switchd over QUIC with mutual TLS
//! (`switchd/src/cluster/sync.rs`), the simulator as values whose encoded size it counts. Everything a
//! peer sends is read here, and checked before any of it is applied.
//!
//! ```text
//!  client ── summary: digest of its records (8 B) · digest of the live members it sees,
//!            0 to leave members out (8 B) ──► server                       [`Client::start`]
//!  client ◄── flags (1 B): 1 records differ, 2 members differ ── server    [`answer`]
//!         ◄── if 1: the server's digest of each of the 1,024 buckets of keys (8 KB)
//!  flags 0: done. Otherwise the client sends its state (the buckets that differ, its
//!  records in them, its member list if 2) [`Client::state`]; the server merges it and
//!  answers with its own for the same buckets [`reply`]; the client merges that
//!  [`merge`]. States are postcard.
//! ```

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use super::membership::MemberState;
use super::records::{differing, Record, Records, BUCKETS};

/// Flag: the records differ.
pub const RECORDS_DIFFER: u8 = 1;
/// Flag: the member lists differ.
pub const MEMBERS_DIFFER: u8 = 2;
/// Bytes of the bucket digests a server sends.
pub const BUCKET_DIGESTS_LEN: usize = BUCKETS * 8;

/// What one side sends once the summaries differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeState {
    /// The buckets whose records are sent (a bitmap of [`BUCKETS`] bits, the client's choice,
    /// which the server's answer follows), or empty when records do not differ.
    pub buckets: Vec<u8>,
    /// The records of those buckets.
    pub records: Vec<Record>,
    /// The sender's member list, when member lists differ.
    pub members: Vec<MemberState>,
}

/// A state or bucket list from a peer that cannot be read; nothing of it was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed state: {0}")]
pub struct ExchangeError(String);

impl ExchangeState {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("exchange states serialize")
    }

    /// Reads a peer's state.
    ///
    /// # Errors
    /// Bytes that are not a state, or a bucket map of another size than [`BUCKETS`] bits.
    pub fn decode(bytes: &[u8]) -> Result<ExchangeState, ExchangeError> {
        let s: ExchangeState = postcard::from_bytes(bytes).map_err(|e| ExchangeError(e.to_string()))?;
        if !s.buckets.is_empty() && s.buckets.len() != BUCKETS / 8 {
            return Err(ExchangeError(format!(
                "a bucket map of {} bytes where {} are expected",
                s.buckets.len(),
                BUCKETS / 8
            )));
        }
        Ok(s)
    }
}

/// A side's summary: its records' digest, and the digest of the members it sees alive (0 to
/// leave members out of the exchange).
pub fn summary(records: u64, members: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&records.to_be_bytes());
    b[8..].copy_from_slice(&members.to_be_bytes());
    b
}

/// What differs between the server's summary (`mine`) and the client's.
pub fn flags(mine: &[u8; 16], theirs: &[u8; 16]) -> u8 {
    let mut f = 0;
    if mine[..8] != theirs[..8] {
        f |= RECORDS_DIFFER;
    }
    if theirs[8..] != [0; 8] && mine[8..] != theirs[8..] {
        f |= MEMBERS_DIFFER;
    }
    f
}

/// Encodes bucket digests as a server sends them.
pub fn encode_bucket_digests(digests: &[u64]) -> Vec<u8> {
    digests.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// Reads the bucket digests a server sent.
///
/// # Errors
/// Any length but [`BUCKET_DIGESTS_LEN`].
pub fn decode_bucket_digests(bytes: &[u8]) -> Result<Vec<u64>, ExchangeError> {
    if bytes.len() != BUCKET_DIGESTS_LEN {
        return Err(ExchangeError(format!(
            "{} bytes of bucket digests where {BUCKET_DIGESTS_LEN} are expected",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("chunks of 8")))
        .collect())
}

/// The server's answer to a summary: what differs, and the bucket digests when records do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// [`RECORDS_DIFFER`] and [`MEMBERS_DIFFER`].
    pub flags: u8,
    /// The server's bucket digests, when records differ (otherwise empty).
    pub digests: Vec<u64>,
}

impl Answer {
    /// The wire length: the flags byte, then the digests.
    pub fn wire_len(&self) -> usize {
        1 + self.digests.len() * 8
    }

    /// Whether the exchange ends here (the summaries agree).
    pub fn done(&self) -> bool {
        self.flags == 0
    }
}

/// The server's first step: its answer to the client's `summary`, from its records and the
/// digest of the members it sees alive.
pub fn answer(records: &Records, members_digest: u64, summary: &[u8; 16]) -> Answer {
    let mine = self::summary(records.digest(), members_digest);
    let flags = flags(&mine, summary);
    let digests = if flags & RECORDS_DIFFER != 0 {
        records.bucket_digests()
    } else {
        Vec::new()
    };
    Answer { flags, digests }
}

/// A side's state as it goes out: the buckets, the sender's records in them (read from its
/// table when encoded or merged, so nothing is copied before then), and its member list.
/// Its wire form is [`ExchangeState`]'s.
pub struct Outgoing<'a> {
    records: &'a Records,
    /// Whether records go at all (they differ).
    with_records: bool,
    buckets: Vec<u8>,
    members: Vec<MemberState>,
}

impl Outgoing<'_> {
    /// A side's state for `buckets`, as `flags` asks: its records there, and its member list
    /// (produced by `members` only when member lists differ).
    fn new(records: &Records, members: impl FnOnce() -> Vec<MemberState>, flags: u8, buckets: Vec<u8>) -> Outgoing<'_> {
        Outgoing {
            records,
            with_records: flags & RECORDS_DIFFER != 0,
            buckets,
            members: if flags & MEMBERS_DIFFER != 0 {
                members()
            } else {
                Vec::new()
            },
        }
    }

    /// The records that go, and their wire lengths' sum.
    fn size(&self) -> (usize, usize) {
        if self.with_records {
            self.records.size_in_buckets(&self.buckets)
        } else {
            (0, 0)
        }
    }

    /// The wire form (an [`ExchangeState`]).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("exchange states serialize")
    }

    /// The length of [`Outgoing::encode`]'s output, from the sender's table alone.
    pub fn wire_len(&self) -> usize {
        let (n, records) = self.size();
        self.wire_len_of(n, records)
    }

    /// The wire length with `n` records of `records` bytes.
    fn wire_len_of(&self, n: usize, records: usize) -> usize {
        let members = postcard::experimental::serialized_size(&self.members).expect("member lists serialize");
        varint_len(self.buckets.len()) + self.buckets.len() + varint_len(n) + records + members
    }
}

/// The bytes of postcard's varint of `n`.
fn varint_len(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

impl Serialize for Outgoing<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Records<'a>(&'a Outgoing<'a>);
        impl Serialize for Records<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let o = self.0;
                let (n, _) = o.size();
                let mut seq = s.serialize_seq(Some(n))?;
                if o.with_records {
                    for r in o.records.in_buckets(&o.buckets) {
                        seq.serialize_element(r)?;
                    }
                }
                seq.end()
            }
        }
        let mut st = s.serialize_struct("ExchangeState", 3)?;
        st.serialize_field("buckets", &self.buckets)?;
        st.serialize_field("records", &Records(self))?;
        st.serialize_field("members", &self.members)?;
        st.end()
    }
}

/// The client's side of one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    summary: [u8; 16],
}

impl Client {
    /// Starts an exchange: the summary to send (member lists compared only when
    /// `with_members`).
    pub fn start(records: &Records, members_digest: u64, with_members: bool) -> Client {
        let members = if with_members { members_digest } else { 0 };
        Client {
            summary: summary(records.digest(), members),
        }
    }

    /// The summary to send first.
    pub fn summary(&self) -> [u8; 16] {
        self.summary
    }

    /// The client's state to send after the server's `answer` (not done): its records in the
    /// buckets whose digests differ, and its member list when those differ.
    pub fn state<'a>(
        &self,
        records: &'a Records,
        members: impl FnOnce() -> Vec<MemberState>,
        answer: &Answer,
    ) -> Outgoing<'a> {
        let buckets = if answer.flags & RECORDS_DIFFER != 0 {
            differing(&records.bucket_digests(), &answer.digests)
        } else {
            Vec::new()
        };
        Outgoing::new(records, members, answer.flags, buckets)
    }
}

/// The server's second step, after merging the client's state: its own state for the same
/// buckets (what it holds now, the client's newer records included).
pub fn reply<'a>(
    records: &'a Records,
    members: impl FnOnce() -> Vec<MemberState>,
    flags: u8,
    merged: &Learned,
) -> Outgoing<'a> {
    Outgoing::new(records, members, flags, merged.buckets.clone())
}

/// What merging a peer's state did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// Records that were newer than what was known.
    pub records: usize,
    /// The peer's member list (empty when it sent none), for the membership to merge.
    pub members: Vec<MemberState>,
    /// The buckets the peer sent, which a server's reply follows.
    pub buckets: Vec<u8>,
}

/// Merges a peer's state read from the wire into `records`.
pub fn merge(records: &mut Records, state: ExchangeState) -> Learned {
    let learned = state
        .records
        .into_iter()
        .map(|r| records.apply(r))
        .filter(|new| *new)
        .count();
    Learned {
        records: learned,
        members: state.members,
        buckets: state.buckets,
    }
}

/// Merges a peer's state straight from its table into `records`, as the simulator's hosts
/// exchange it: what [`merge`] of its decoded wire form does, with the records shared.
/// Returns also the state's wire length, counted in the same pass.
pub fn merge_outgoing(records: &mut Records, state: Outgoing<'_>) -> (Learned, usize) {
    let merged = if state.with_records {
        records.merge_buckets(state.records, &state.buckets)
    } else {
        Default::default()
    };
    let wire = state.wire_len_of(merged.offered, merged.offered_wire);
    let learned = Learned {
        records: merged.newer,
        members: state.members,
        buckets: state.buckets,
    };
    (learned, wire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_say_what_differs() {
        let a = summary(1, 7);
        assert_eq!(flags(&a, &summary(1, 7)), 0);
        assert_eq!(flags(&a, &summary(2, 7)), RECORDS_DIFFER);
        assert_eq!(flags(&a, &summary(1, 8)), MEMBERS_DIFFER);
        assert_eq!(flags(&a, &summary(1, 0)), 0, "0 leaves members out");
    }

    /// One exchange through the steps, every message through its wire form.
    fn exchange(a: &mut Records, b: &mut Records) -> (usize, usize) {
        let client = Client::start(a, 0, false);
        let answer = super::answer(b, 0, &client.summary());
        if answer.done() {
            return (0, 0);
        }
        let digests = decode_bucket_digests(&encode_bucket_digests(&answer.digests)).unwrap();
        let answer = Answer { digests, ..answer };
        let out = client.state(a, Vec::new, &answer);
        let wire = out.encode();
        assert_eq!(out.wire_len(), wire.len());
        let at_b = merge(b, ExchangeState::decode(&wire).unwrap());
        let out = reply(b, Vec::new, answer.flags, &at_b);
        let wire = out.encode();
        assert_eq!(out.wire_len(), wire.len());
        let mut copy = Records::new("c");
        copy.merge_from(a);
        assert_eq!(
            merge_outgoing(&mut copy, reply(b, Vec::new, answer.flags, &at_b)).1,
            wire.len()
        );
        (merge(a, ExchangeState::decode(&wire).unwrap()).records, at_b.records)
    }

    #[test]
    fn an_exchange_leaves_both_sides_with_the_newest_of_each() {
        use crate::cluster::records::RecordKey;
        let key = |i: u8| RecordKey::Network(crate::Id::from_random([i; 32]));
        let (mut a, mut b) = (Records::new("a"), Records::new("b"));
        a.local(key(1), None, 10);
        a.local(key(2), None, 10);
        b.local(key(2), None, 20);
        b.local(key(3), None, 5);
        assert_eq!(exchange(&mut a, &mut b), (2, 1), "a learns 2 and 3; b learns 1");
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.get(&key(2)).unwrap().version.origin.as_ref(), "b");
        // Equal summaries: done after the answer's one byte.
        let client = Client::start(&a, 0, false);
        let answer = super::answer(&b, 0, &client.summary());
        assert!(answer.done() && answer.wire_len() == 1);
        assert_eq!(exchange(&mut a, &mut b), (0, 0));
    }

    #[test]
    fn states_round_trip_and_bad_maps_are_refused() {
        let s = ExchangeState {
            buckets: vec![0xff; BUCKETS / 8],
            records: Vec::new(),
            members: Vec::new(),
        };
        assert_eq!(ExchangeState::decode(&s.encode()), Ok(s));
        let short = ExchangeState {
            buckets: vec![1; 3],
            records: Vec::new(),
            members: Vec::new(),
        };
        assert!(ExchangeState::decode(&short.encode())
            .unwrap_err()
            .to_string()
            .contains("bucket map of 3 bytes"));
        let d: Vec<u64> = (0..BUCKETS as u64).collect();
        assert_eq!(decode_bucket_digests(&encode_bucket_digests(&d)), Ok(d));
        assert!(decode_bucket_digests(&[0; 7]).is_err());
    }
}
