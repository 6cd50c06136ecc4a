//! 256-bit object IDs shown as 64 hex digits, as Docker's.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An object ID: 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    /// An ID from 32 random bytes the caller drew.
    pub fn from_random(bytes: [u8; 32]) -> Id {
        Id(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Accepts exactly 64 hex digits.
    pub fn parse(s: &str) -> Option<Id> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| Id(s.to_ascii_lowercase()))
    }

    /// The full ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, as `docker network ls` shows.
    pub fn short(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_short() {
        let id = Id::from_random([0xab; 32]);
        assert_eq!(id.as_str().len(), 64);
        assert_eq!(id.short(), "abababababab");
        assert_eq!(Id::parse(id.as_str()), Some(id));
        assert_eq!(Id::parse("abc"), None);
    }
}
