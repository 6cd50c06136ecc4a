//! Per-sender authentication of gossip datagrams, sans-IO. The shared gossip key keeps
//! strangers out; inside its seal, every membership message is signed by the host that sends
//! it, with its certificate's key, over the seal's nonce and send time too, so that a holder of
//! the gossip key can neither speak for a host nor re-seal a message it captured (the replay
//! window refuses the old nonce, and a new nonce breaks the signature).
//!
//! ```text
//!  sealed payload = 1 | name length (1) | name | signature length (1) | signature | message
//!                 | 2                                  "who are you": send me your certificate
//!                 | 3 | certificate (DER)              a host's certificate
//!  signed bytes   = "switch-gossip-sender/1" | nonce (12) | send time (8) | name length (1) | name | message
//! ```
//!
//! A host sends its certificate in a datagram of its own ahead of its first message to an
//! address, and whenever a host asks for it; the cluster's CA must have issued it to the name
//! it speaks for. A message from a host whose certificate is not known yet is not taken: the
//! receiver asks, and the sender's next messages are. (A certificate inside the message's
//! datagram would push a full one past a 1,500-byte MTU.)

use super::records::{Authority, Check};
use super::seal::Opened;

const CONTEXT: &[u8] = b"switch-gossip-sender/1";
const SIGNED: u8 = 1;
const WHO_ARE_YOU: u8 = 2;
const CERT: u8 = 3;

/// Bytes a signed envelope adds to a message from host `name` under a signature of
/// `sig_len` bytes.
pub fn overhead(name: &str, sig_len: usize) -> usize {
    3 + name.len() + sig_len
}

/// The bytes a sender signs.
fn signed_bytes(nonce: &[u8], sent_ms: u64, name: &str, message: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(CONTEXT.len() + nonce.len() + 9 + name.len() + message.len());
    b.extend_from_slice(CONTEXT);
    b.extend_from_slice(nonce);
    b.extend_from_slice(&sent_ms.to_be_bytes());
    b.push(name.len() as u8);
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(message);
    b
}

/// The payload to seal (with `nonce`, at `sent_ms`) for `message` from host `name`, signed by
/// `auth`.
///
/// # Panics
/// If `name` is longer than 255 bytes (a host's name is checked at start).
pub fn signed(auth: &dyn Authority, name: &str, nonce: &[u8], sent_ms: u64, message: &[u8]) -> Vec<u8> {
    let name_len = u8::try_from(name.len()).expect("host names are at most 255 bytes");
    let sig = auth.sign(&signed_bytes(nonce, sent_ms, name, message));
    let sig_len = u8::try_from(sig.len()).expect("signatures are at most 255 bytes");
    let mut out = Vec::with_capacity(overhead(name, sig.len()) + message.len());
    out.push(SIGNED);
    out.push(name_len);
    out.extend_from_slice(name.as_bytes());
    out.push(sig_len);
    out.extend_from_slice(&sig);
    out.extend_from_slice(message);
    out
}

/// The payload asking a host for its certificate.
pub fn who_are_you() -> Vec<u8> {
    vec![WHO_ARE_YOU]
}

/// The payload answering with this host's certificate.
pub fn cert(der: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + der.len());
    out.push(CERT);
    out.extend_from_slice(der);
    out
}

/// What an opened datagram is.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// A message `name` signed.
    Message {
        /// The sender.
        name: String,
        /// The membership message.
        message: &'a [u8],
    },
    /// Signed by `name`, whose certificate is not known here: ask for it.
    Unknown {
        /// The sender it names.
        name: String,
    },
    /// A signature that does not hold, or a certificate the CA did not issue to its name (or
    /// a revoked host's), by or of host `name` as it says.
    Forged {
        /// The host it names.
        name: String,
    },
    /// The sender asks for this host's certificate.
    WhoAreYou,
    /// A certificate, learned.
    Cert,
    /// Not an envelope of this format.
    Malformed,
}

/// Reads and checks an opened datagram against `auth`, at `now_ms`; a certificate it carries
/// is learned first when the CA issued it.
pub fn open<'a>(auth: &dyn Authority, d: &'a Opened, now_ms: u64) -> Verdict<'a> {
    let p = &d.payload[..];
    let Some((&kind, rest)) = p.split_first() else {
        return Verdict::Malformed;
    };
    match kind {
        WHO_ARE_YOU if rest.is_empty() => Verdict::WhoAreYou,
        CERT => match super::pki::name_of(rest) {
            Some(name) if auth.learn(&name, rest, now_ms) => Verdict::Cert,
            Some(name) => Verdict::Forged { name },
            None => Verdict::Malformed,
        },
        SIGNED => {
            let Some((&len, rest)) = rest.split_first() else {
                return Verdict::Malformed;
            };
            let Some((name, rest)) = rest.split_at_checked(usize::from(len)) else {
                return Verdict::Malformed;
            };
            let Ok(name) = std::str::from_utf8(name) else {
                return Verdict::Malformed;
            };
            let Some((&sig_len, rest)) = rest.split_first() else {
                return Verdict::Malformed;
            };
            let Some((sig, message)) = rest.split_at_checked(usize::from(sig_len)) else {
                return Verdict::Malformed;
            };
            match auth.check(name, &signed_bytes(&d.nonce, d.sent_ms, name, message), sig) {
                Check::Valid => Verdict::Message {
                    name: name.to_string(),
                    message,
                },
                Check::UnknownOrigin => Verdict::Unknown { name: name.to_string() },
                Check::Invalid => Verdict::Forged { name: name.to_string() },
            }
        }
        _ => Verdict::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::certs::CertAuthority;
    use crate::cluster::{pki, sign::Signer};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn host(ca: &pki::Pem, name: &str) -> (CertAuthority, Vec<u8>) {
        let h = pki::issue_host(ca, name, 1, SystemTime::now()).unwrap();
        let der = pki::der(&h.cert, "host.crt").unwrap();
        let signer = Signer::from_pem(&h.key).unwrap();
        let key = signer.public_key();
        (CertAuthority::new(signer, ca.cert.clone(), name, &der, key), der)
    }

    fn opened(nonce: u8, sent_ms: u64, payload: Vec<u8>) -> Opened {
        Opened {
            nonce: [nonce; 12],
            sent_ms,
            payload,
        }
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn a_message_is_taken_under_its_sender_s_certificate_only() {
        let ca = pki::new_ca("test", SystemTime::now()).unwrap();
        let other_ca = pki::new_ca("other", SystemTime::now()).unwrap();
        let ((a, a_cert), (b, _), (x, x_cert)) = (host(&ca, "a"), host(&ca, "b"), host(&other_ca, "a"));
        let t = now();
        // b does not know a yet: asked for, not taken.
        let d = opened(1, t, signed(&a, "a", &[1; 12], t, b"hello"));
        assert_eq!(open(&b, &d, t), Verdict::Unknown { name: "a".into() });
        // a's certificate, then its message: learned, then the signature checked.
        assert_eq!(open(&b, &opened(2, t, cert(&a_cert)), t), Verdict::Cert);
        assert_eq!(
            open(&b, &d, t),
            Verdict::Message {
                name: "a".into(),
                message: b"hello"
            }
        );
        // Re-sealed under another nonce or time, or altered: the signature no longer holds.
        let mut moved = opened(9, t, signed(&a, "a", &[3; 12], t, b"again"));
        assert_eq!(
            open(&b, &moved, t),
            Verdict::Forged { name: "a".into() },
            "another nonce"
        );
        moved.nonce = [3; 12];
        assert!(matches!(open(&b, &moved, t), Verdict::Message { .. }));
        moved.sent_ms += 1;
        assert_eq!(
            open(&b, &moved, t),
            Verdict::Forged { name: "a".into() },
            "another time"
        );
        let mut altered = signed(&a, "a", &[4; 12], t, b"hello");
        let n = altered.len();
        altered[n - 1] ^= 1;
        assert_eq!(
            open(&b, &opened(4, t, altered), t),
            Verdict::Forged { name: "a".into() }
        );
        // Another CA's host of the same name: its certificate is refused, and its word.
        let forged = Verdict::Forged { name: "a".into() };
        assert_eq!(open(&b, &opened(5, t, cert(&x_cert)), t), forged);
        let d = opened(5, t, signed(&x, "a", &[5; 12], t, b"hello"));
        assert_eq!(open(&b, &d, t), forged);
        // b speaking as a.
        let d = opened(6, t, signed(&b, "a", &[6; 12], t, b"hello"));
        assert_eq!(open(&b, &d, t), forged);
        assert_eq!(signed(&a, "a", &[7; 12], t, b"xyz").len(), overhead("a", 64) + 3);
    }

    #[test]
    fn a_certificate_is_asked_for_and_learned_alone() {
        let ca = pki::new_ca("test", SystemTime::now()).unwrap();
        let ((a, a_cert), (b, _)) = (host(&ca, "a"), host(&ca, "b"));
        let t = now();
        assert_eq!(open(&a, &opened(1, t, who_are_you()), t), Verdict::WhoAreYou);
        assert_eq!(open(&b, &opened(2, t, cert(&a_cert)), t), Verdict::Cert);
        let d = opened(3, t, signed(&a, "a", &[3; 12], t, b"hi"));
        assert!(matches!(open(&b, &d, t), Verdict::Message { .. }));
        let mut bad = a_cert.clone();
        bad[40] ^= 0xff;
        assert_ne!(open(&b, &opened(4, t, cert(&bad)), t), Verdict::Cert);
        for junk in [
            vec![],
            vec![0],
            vec![2, 0],
            vec![1],
            vec![1, 5, b'a'],
            vec![1, 1, b'a', 9],
            vec![9],
        ] {
            assert_eq!(open(&b, &opened(5, t, junk.clone()), t), Verdict::Malformed, "{junk:?}");
        }
    }
}
