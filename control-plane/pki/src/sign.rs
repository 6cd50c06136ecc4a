//! Signatures by a host with the key of its certificate: what a host writes can be checked
//! by every other against the public key in that certificate, which the CA signed. The
//! certificate's own key type decides the scheme: ECDSA P-256 with SHA-256 (fixed-length
//! signatures of 64 bytes) or Ed25519 (64 bytes).

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::pki::PkiError;

/// Bytes of a signature, whichever the scheme.
pub const SIGNATURE_LEN: usize = 64;

/// The signature scheme of a host's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// ECDSA over P-256 with SHA-256.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

/// The OIDs of the public keys a certificate may carry, as x509-parser prints them.
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";

/// A host's private key, ready to sign.
pub struct Signer {
    key: Key,
    rng: SystemRandom,
}

enum Key {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("scheme", &self.scheme()).finish()
    }
}

impl Signer {
    /// The signer of the PKCS#8 private key in `key_pem` (a host's `host.key`).
    ///
    /// # Errors
    /// [`PkiError::Rejected`] when it is not PEM or not a P-256 or Ed25519 key.
    pub fn from_pem(key_pem: &str) -> Result<Signer, PkiError> {
        let p = pem::parse(key_pem).map_err(|e| PkiError::Rejected(format!("the host key is not PEM: {e}")))?;
        let rng = SystemRandom::new();
        let der = p.contents();
        let key = match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
            Ok(k) => Key::Ecdsa(k),
            Err(_) => Key::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| {
                PkiError::Rejected("the host key is neither an ECDSA P-256 nor an Ed25519 key in PKCS#8".into())
            })?),
        };
        Ok(Signer { key, rng })
    }

    /// The scheme its key signs with.
    pub fn scheme(&self) -> Scheme {
        match self.key {
            Key::Ecdsa(_) => Scheme::EcdsaP256,
            Key::Ed25519(_) => Scheme::Ed25519,
        }
    }

    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        let bytes = match &self.key {
            Key::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            Key::Ed25519(k) => k.public_key().as_ref().to_vec(),
        };
        PublicKey {
            scheme: self.scheme(),
            bytes,
        }
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        match &self.key {
            Key::Ecdsa(k) => {
                let s = k
                    .sign(&self.rng, msg)
                    .expect("P-256 signing fails only without randomness");
                out.copy_from_slice(s.as_ref());
            }
            Key::Ed25519(k) => out.copy_from_slice(k.sign(msg).as_ref()),
        }
        out
    }
}

/// A host's public key, from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    scheme: Scheme,
    bytes: Vec<u8>,
}

impl PublicKey {
    /// The key of a certificate's subject public key info (`algorithm` and `parameters` as
    /// OIDs in dotted form, `key` the bit string's bytes), or `None` for another kind of key.
    pub fn from_spki(algorithm: &str, parameters: Option<&str>, key: &[u8]) -> Option<PublicKey> {
        let scheme = match (algorithm, parameters) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256)) => Scheme::EcdsaP256,
            (OID_ED25519, _) => Scheme::Ed25519,
            _ => return None,
        };
        Some(PublicKey {
            scheme,
            bytes: key.to_vec(),
        })
    }

    /// Its scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether `sig` is this key's signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.scheme {
            Scheme::EcdsaP256 => &signature::ECDSA_P256_SHA256_FIXED,
            Scheme::Ed25519 => &signature::ED25519,
        };
        UnparsedPublicKey::new(alg, &self.bytes).verify(msg, sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::pki::{issue_host, new_ca, verify};

    #[test]
    fn a_host_signs_with_its_certificate_s_key_and_only_that_key_verifies() {
        let now = SystemTime::now();
        let ca = new_ca("c", now).unwrap();
        let (h1, h2) = (
            issue_host(&ca, "h1", 1, now).unwrap(),
            issue_host(&ca, "h2", 2, now).unwrap(),
        );
        let signer = Signer::from_pem(&h1.key).unwrap();
        assert_eq!(signer.scheme(), Scheme::EcdsaP256);
        let id1 = verify(&ca.cert, &h1.cert, now).unwrap();
        let id2 = verify(&ca.cert, &h2.cert, now).unwrap();
        assert_eq!(
            id1.key,
            signer.public_key(),
            "the certificate carries the key that signs"
        );
        let msg = b"endpoint 10.0.0.2 on h1";
        let sig = signer.sign(msg);
        assert!(id1.key.verify(msg, &sig));
        assert!(!id2.key.verify(msg, &sig), "another host's key");
        assert!(!id1.key.verify(b"endpoint 10.0.0.3 on h1", &sig), "another message");
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!id1.key.verify(msg, &bad));
        assert!(!id1.key.verify(msg, &sig[..63]));
    }

    #[test]
    fn ed25519_keys_sign_too() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let signer = Signer::from_pem(&pair.serialize_pem()).unwrap();
        assert_eq!(signer.scheme(), Scheme::Ed25519);
        let sig = signer.sign(b"x");
        assert!(signer.public_key().verify(b"x", &sig));
        assert!(!signer.public_key().verify(b"y", &sig));
        let e = Signer::from_pem("not pem").unwrap_err();
        assert!(e.to_string().contains("the host key is not PEM"), "{e}");
    }
}
