//! The anti-entropy exchange's wire form, sans-IO: the 16-byte summary each side compares,
//! the flags that say what differs, the bucket digests, and the state a side sends. switchd
//! carries these over QUIC with mutual TLS (`switchd/src/sync.rs`); everything a peer sends is
//! read here, and checked before any of it is applied.
//!
//! ```text
//!  client ── summary: digest of its records (8 B) · digest of the live members it sees,
//!            0 to leave members out (8 B) ──► server
//!  client ◄── flags (1 B): 1 records differ, 2 members differ ── server
//!         ◄── if 1: the server's digest of each of the 1,024 buckets of keys (8 KB)
//!  flags 0: done. Otherwise, both ways: ExchangeState { the buckets that differ (bitmap,
//!  the client's choice), their records, the member list if 2 } (postcard)
//! ```

use serde::{Deserialize, Serialize};

use super::membership::MemberState;
use super::records::{Record, BUCKETS};

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
