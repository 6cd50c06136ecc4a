//! A records [`Authority`] for the simulator and tests, not for a cluster: the seam switchd
//! fills with certificates and ECDSA, filled with a cheap deterministic scheme so that a
//! thousand simulated hosts stay fast. A host's "certificate" is its name padded to a real
//! certificate's size, and its "signature" an unkeyed hash of its name and the message (which
//! anyone can compute), as long as a real one, so that traffic is counted as on the wire.
//! What the records do around it is what they do in switchd: a record is checked once its
//! origin's certificate record was taken, and a forgery is refused and counted.

use std::sync::Mutex;

use super::records::{Authority, Check};
use rustc_hash::FxHashSet;

/// About the size of a host certificate `switchctl cluster cert` issues (ECDSA P-256, in DER:
/// 469 bytes for a short name).
pub const CERT_LEN: usize = 480;
const SIG_LEN: usize = 64;

/// One host's authority.
#[derive(Debug)]
pub struct Cheap {
    me: String,
    known: Mutex<FxHashSet<String>>,
    revoked: Mutex<FxHashSet<String>>,
}

impl Cheap {
    /// The authority of host `me`, which knows only its own certificate at first.
    pub fn new(me: &str) -> Cheap {
        Cheap {
            me: me.to_string(),
            known: Mutex::new(FxHashSet::from_iter([me.to_string()])),
            revoked: Mutex::default(),
        }
    }
}

/// The "certificate" of host `name`.
pub fn cert(name: &str) -> Vec<u8> {
    let mut c = name.as_bytes().to_vec();
    c.resize(CERT_LEN, 0);
    c
}

/// The "CA's" revocation of `host` at `issued_ms`: its signature.
pub fn revocation(host: &str, issued_ms: u64) -> Vec<u8> {
    let mut s = mac(CA, &super::pki::Revocation::signed_bytes(host, issued_ms)).to_vec();
    s.resize(SIG_LEN, 0);
    s
}

/// The name the "CA" signs under (no host can have it: it is not a DNS name).
const CA: &str = "the CA";

/// `name`'s key of `msg`: FNV-1a over the name and the message. Its "signature" is this,
/// then zeros to a real signature's length.
fn mac(name: &str, msg: &[u8]) -> [u8; 8] {
    let fnv = |h: u64, b: &u8| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    let h = name.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325u64, fnv);
    msg.iter().fold(fnv(h, &0xff), fnv).to_le_bytes()
}

impl Authority for Cheap {
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let mut s = mac(&self.me, msg).to_vec();
        s.resize(SIG_LEN, 0);
        s
    }

    fn check(&self, origin: &str, msg: &[u8], s: &[u8]) -> Check {
        if self.revoked.lock().expect("lock poisoned").contains(origin) {
            return Check::Invalid;
        }
        if !self.known.lock().expect("lock poisoned").contains(origin) {
            return Check::UnknownOrigin;
        }
        let ok = s.len() == SIG_LEN && s[..8] == mac(origin, msg) && s[8..].iter().all(|b| *b == 0);
        if ok {
            Check::Valid
        } else {
            Check::Invalid
        }
    }

    fn learn(&self, host: &str, c: &[u8], _now_ms: u64) -> bool {
        let n = host.len();
        let ok = c.len() == CERT_LEN
            && c.get(..n) == Some(host.as_bytes())
            && c[n..].iter().all(|b| *b == 0)
            && !self.revoked.lock().expect("lock poisoned").contains(host);
        if ok {
            let mut known = self.known.lock().expect("lock poisoned");
            if !known.contains(host) {
                known.insert(host.to_string());
            }
        }
        ok
    }

    fn revoke(&self, host: &str, issued_ms: u64, sig: &[u8]) -> bool {
        if sig != revocation(host, issued_ms).as_slice() {
            return false;
        }
        self.known.lock().expect("lock poisoned").remove(host);
        self.revoked.lock().expect("lock poisoned").insert(host.to_string());
        true
    }
}
