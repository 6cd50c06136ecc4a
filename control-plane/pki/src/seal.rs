//! Authenticated encryption of gossip datagrams under the cluster's gossip key.
//!
//! The key is derived from the CA's private key (HKDF-SHA256), so only a host whose
//! certificate the CA holder issued (and handed the derived key with it) can read or write
//! gossip. Datagram = 12-byte random nonce || ChaCha20-Poly1305(payload) with the protocol
//! name as associated data.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hkdf;

const AAD: &[u8] = b"switch-gossip-v1";
/// Bytes a sealed datagram adds to its payload.
pub const OVERHEAD: usize = NONCE_LEN + 16;

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

    /// Seals `payload` with `nonce` (12 random bytes the caller draws).
    pub fn seal(&self, nonce: [u8; NONCE_LEN], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        let mut body = payload.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(AAD), &mut body)
            .expect("payloads are far below ChaCha20-Poly1305's limit");
        out.extend_from_slice(&body);
        out
    }

    /// Opens a sealed datagram; `None` when it was not sealed under this key or was altered.
    pub fn open(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        if datagram.len() < OVERHEAD {
            return None;
        }
        let (n, body) = datagram.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
        let mut body = body.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(AAD), &mut body).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_key_opens_and_tampering_is_refused() {
        let k = GossipKey::from_bytes(&GossipKey::derive("ca key one"));
        let other = GossipKey::from_bytes(&GossipKey::derive("ca key two"));
        let d = k.seal([7; 12], b"hello");
        assert_eq!(k.open(&d).as_deref(), Some(&b"hello"[..]));
        assert_eq!(other.open(&d), None);
        let mut bad = d.clone();
        bad[14] ^= 1;
        assert_eq!(k.open(&bad), None);
        assert_eq!(k.open(&d[..10]), None);
    }
}
