//! 256-bit object IDs shown as 64 hex digits, as Docker's.
//!
//! An ID is held as its 32 bytes: no allocation, a clone is a copy, and comparing two is four
//! word compares (byte order is the order of the hex strings, so anything sorted by ID sorts
//! as Docker lists it). Human-readable formats (the API's JSON, the store) carry the 64 hex
//! digits; binary ones (postcard, on the wire between hosts) the 32 bytes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An object ID: 32 bytes, shown as 64 lowercase hex digits.
#[derive(Clone, Eq)]
pub struct Id([u8; 32]);

impl std::hash::Hash for Id {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        for w in words(&self.0) {
            h.write_u64(w);
        }
    }
}

fn words(b: &[u8; 32]) -> [u64; 4] {
    std::array::from_fn(|i| u64::from_ne_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes")))
}

impl PartialEq for Id {
    /// Four word compares, inline (hash maps keyed by ID compare on every hit).
    fn eq(&self, o: &Id) -> bool {
        words(&self.0) == words(&o.0)
    }
}

impl Ord for Id {
    /// Byte order, as four big-endian words compared in line: decided by the first in
    /// almost every comparison of different random IDs, and without a call to `memcmp` when
    /// a map finds the ID it looks for (maps keyed by ID compare a lot).
    fn cmp(&self, o: &Id) -> std::cmp::Ordering {
        let be = |b: &[u8; 32]| -> [u64; 4] {
            std::array::from_fn(|i| u64::from_be_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes")))
        };
        be(&self.0).cmp(&be(&o.0))
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, o: &Id) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Id {
    /// An ID from 32 random bytes the caller drew.
    pub fn from_random(bytes: [u8; 32]) -> Id {
        Id(bytes)
    }

    /// Accepts exactly 64 hex digits (either case).
    pub fn parse(s: &str) -> Option<Id> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut b = [0u8; 32];
        for (i, out) in b.iter_mut().enumerate() {
            *out = nibble(s[2 * i])? << 4 | nibble(s[2 * i + 1])?;
        }
        Some(Id(b))
    }

    /// The 32 bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 hex digits, in a buffer on the stack.
    fn hex(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        out
    }

    /// The first 12 digits, as `docker network ls` shows.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }

    /// Whether the hex form starts with `prefix` (a lookup by abbreviated ID; either case).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        let hex = self.hex();
        prefix.len() <= hex.len() && hex[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        if d.is_human_readable() {
            let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
            Id::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("bad ID {s:?}: an ID is exactly 64 hex digits")))
        } else {
            <[u8; 32]>::deserialize(d).map(Id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_short() {
        let id = Id::from_random([0xab; 32]);
        assert_eq!(id.to_string().len(), 64);
        assert_eq!(id.short(), "abababababab");
        assert_eq!(Id::parse(&id.to_string()), Some(id.clone()));
        assert_eq!(Id::parse(&id.to_string().to_uppercase()), Some(id.clone()));
        assert_eq!(Id::parse("abc"), None);
        assert_eq!(Id::parse(&"g".repeat(64)), None);
        assert!(id.has_prefix("abAB") && !id.has_prefix("abc") && id.has_prefix(""));
        assert!(!id.has_prefix(&"a".repeat(65)));
    }

    #[test]
    fn order_is_the_hex_order() {
        let mut tail = [0x10; 32];
        tail[31] = 0x11;
        let mut ids: Vec<Id> = [[0x10; 32], [0x0f; 32], [0xff; 32], [0x00; 32], tail]
            .into_iter()
            .map(Id::from_random)
            .collect();
        let mut by_hex = ids.clone();
        ids.sort();
        by_hex.sort_by_key(|i| i.to_string());
        assert_eq!(ids, by_hex);
    }

    #[test]
    fn json_carries_hex_and_postcard_the_bytes() {
        let id = Id::from_random([7; 32]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "07".repeat(32)));
        assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        let err = serde_json::from_str::<Id>("\"xyz\"").unwrap_err().to_string();
        assert!(err.contains("\"xyz\"") && err.contains("64 hex digits"), "{err}");
        let map: std::collections::BTreeMap<Id, u8> = [(id.clone(), 1)].into();
        let back: std::collections::BTreeMap<Id, u8> =
            serde_json::from_str(&serde_json::to_string(&map).unwrap()).unwrap();
        assert_eq!(back, map);
        let wire = postcard::to_stdvec(&id).unwrap();
        assert_eq!(wire.len(), 32);
        assert_eq!(postcard::from_bytes::<Id>(&wire).unwrap(), id);
    }
}
