//! Authenticated encryption of gossip datagrams under the cluster's gossip key, and the
//! window that refuses replays.
//!
//! The key is derived from the CA's private key (HKDF-SHA256), so only a host whose
//! certificate the CA holder issued (and handed the derived key with it) can read or write
//! gossip. Datagram = 12-byte random nonce || ChaCha20-Poly1305(8-byte send time in ms since
//! the epoch || payload) with the protocol name as associated data. The nonce stays random
//! (a time in it would repeat between hosts sharing the key, and a repeated nonce breaks the
//! cipher); the sealed send time bounds how long a nonce must be remembered ([`Replay`]).

use std::collections::{HashSet, VecDeque};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hkdf;

const AAD: &[u8] = b"switch-gossip-v2";
/// Bytes of the sealed send time.
const TIME_LEN: usize = 8;
/// Bytes a sealed datagram adds to its payload.
pub const OVERHEAD: usize = NONCE_LEN + TIME_LEN + 16;

/// A gossip key.
pub struct GossipKey(LessSafeKey);

impl GossipKey {
    /// The key from its 32 raw bytes.
    pub fn from_bytes(b: &[u8; 32]) -> GossipKey {
        GossipKey(LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, b).expect("32 bytes is the key length"),
        ))
    }

    /// Derives the 32 key bytes from the CA's private key (PEM text).
    pub fn derive(ca_key_pem: &str) -> [u8; 32] {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"switch cluster gossip key");
        let prk = salt.extract(ca_key_pem.trim().as_bytes());
        let mut out = [0u8; 32];
        prk.expand(&[b"v1"], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes is within HKDF's output limit");
        out
    }

    /// Seals `payload`, sent at `now_ms` (ms since the epoch), with `nonce` (12 random bytes
    /// the caller draws).
    pub fn seal(&self, nonce: [u8; NONCE_LEN], now_ms: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        let mut body = Vec::with_capacity(TIME_LEN + payload.len() + 16);
        body.extend_from_slice(&now_ms.to_be_bytes());
        body.extend_from_slice(payload);
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut body)
            .expect("payloads are far below ChaCha20-Poly1305's limit");
        out.extend_from_slice(&body);
        out
    }

    /// Opens a sealed datagram: its nonce, send time and payload; `None` when it was not
    /// sealed under this key or was altered.
    pub fn open(&self, datagram: &[u8]) -> Option<Opened> {
        if datagram.len() < OVERHEAD {
            return None;
        }
        let (n, body) = datagram.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = n.try_into().ok()?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut body)
            .ok()?;
        let (time, payload) = plain.split_at(TIME_LEN);
        Some(Opened {
            nonce,
            sent_ms: u64::from_be_bytes(time.try_into().ok()?),
            payload: payload.to_vec(),
        })
    }
}

/// An opened datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Its nonce: what [`Replay`] remembers.
    pub nonce: [u8; NONCE_LEN],
    /// When its sender sealed it, by the sender's clock.
    pub sent_ms: u64,
    /// What it carries.
    pub payload: Vec<u8>,
}

/// Why [`Replay::admit`] refused a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// Sent further from now than the window, by the clocks of sender and receiver.
    #[error("sent {skew_ms} ms from this host's clock, beyond the replay window of {window_ms} ms")]
    OutsideWindow {
        /// How far from now it was sent (either way).
        skew_ms: u64,
        /// The window.
        window_ms: u64,
    },
    /// Its nonce was seen within the window: a replay.
    #[error("a replay of a datagram received before")]
    Replayed,
}

/// The nonces of the datagrams received within the window, so that each is taken once. A
/// datagram sent more than `window_ms` from the receiver's clock is refused outright, so
/// nonces older than that can be forgotten. The memory is bounded: when `capacity` nonces
/// are held, the oldest is forgotten and nothing sent before it is taken any more.
#[derive(Debug)]
pub struct Replay {
    window_ms: u64,
    capacity: usize,
    seen: HashSet<[u8; NONCE_LEN]>,
    /// The nonces held, by arrival, with their send time.
    order: VecDeque<(u64, [u8; NONCE_LEN])>,
    /// Nothing sent at or before this is taken (the send time of a nonce forgotten early).
    floor_ms: u64,
}

/// How far a gossip datagram's send time may be from the receiver's clock.
pub const REPLAY_WINDOW_MS: u64 = 30_000;
/// How many nonces a host remembers: far above what a host receives in a window (tens of
/// datagrams a second).
pub const REPLAY_CAPACITY: usize = 65_536;

impl Default for Replay {
    fn default() -> Replay {
        Replay::new(REPLAY_WINDOW_MS, REPLAY_CAPACITY)
    }
}

impl Replay {
    /// A window of `window_ms` either side of the clock, remembering at most `capacity` nonces.
    pub fn new(window_ms: u64, capacity: usize) -> Replay {
        Replay {
            window_ms,
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
            floor_ms: 0,
        }
    }

    /// Takes datagram `d` received at `now_ms`, or says why not. Taken, its nonce is
    /// remembered until its send time leaves the window.
    ///
    /// # Errors
    /// [`Stale`]: sent outside the window, or seen before.
    pub fn admit(&mut self, d: &Opened, now_ms: u64) -> Result<(), Stale> {
        while let Some(&(sent, n)) = self.order.front() {
            if sent.saturating_add(self.window_ms) >= now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&n);
        }
        let skew_ms = d.sent_ms.abs_diff(now_ms);
        if skew_ms > self.window_ms || d.sent_ms <= self.floor_ms {
            return Err(Stale::OutsideWindow {
                skew_ms,
                window_ms: self.window_ms,
            });
        }
        if !self.seen.insert(d.nonce) {
            return Err(Stale::Replayed);
        }
        if self.order.len() == self.capacity {
            if let Some((sent, n)) = self.order.pop_front() {
                self.seen.remove(&n);
                self.floor_ms = self.floor_ms.max(sent);
            }
        }
        self.order.push_back((d.sent_ms, d.nonce));
        Ok(())
    }

    /// How many nonces are held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_key_opens_and_tampering_is_refused() {
        let k = GossipKey::from_bytes(&GossipKey::derive("ca key one"));
        let other = GossipKey::from_bytes(&GossipKey::derive("ca key two"));
        let d = k.seal([7; 12], 1_000, b"hello");
        let o = k.open(&d).unwrap();
        assert_eq!((o.nonce, o.sent_ms, &o.payload[..]), ([7; 12], 1_000, &b"hello"[..]));
        assert_eq!(other.open(&d), None);
        for i in [0, 14, d.len() - 1] {
            let mut bad = d.clone();
            bad[i] ^= 1;
            assert_eq!(k.open(&bad), None, "byte {i} flipped");
        }
        assert_eq!(k.open(&d[..10]), None);
        assert_eq!(k.open(&d[..OVERHEAD - 1]), None);
    }

    #[test]
    fn each_datagram_is_taken_once_within_the_window() {
        let k = GossipKey::from_bytes(&GossipKey::derive("ca key"));
        let mut w = Replay::new(1_000, 4);
        let now = 50_000;
        let d = |n: u8, sent| k.open(&k.seal([n; 12], sent, b"x")).unwrap();
        assert_eq!(w.admit(&d(1, now), now), Ok(()));
        assert_eq!(w.admit(&d(1, now), now + 10), Err(Stale::Replayed));
        // A copy of a datagram sent too long ago, or too far ahead.
        for sent in [now - 1_001, now + 1_001] {
            assert!(matches!(w.admit(&d(2, sent), now), Err(Stale::OutsideWindow { .. })));
        }
        // Its nonce is forgotten once its send time leaves the window: a replay then is
        // refused for its age.
        assert!(matches!(
            w.admit(&d(1, now), now + 1_001),
            Err(Stale::OutsideWindow { .. })
        ));
        assert!(w.is_empty());
        // Bounded: the fifth nonce pushes out the first, and nothing sent before it is taken.
        for n in 10..15u8 {
            assert_eq!(w.admit(&d(n, now + u64::from(n)), now), Ok(()));
        }
        assert_eq!(w.len(), 4);
        assert!(matches!(
            w.admit(&d(10, now + 10), now),
            Err(Stale::OutsideWindow { .. })
        ));
        assert_eq!(w.admit(&d(20, now + 20), now), Ok(()));
    }
}
