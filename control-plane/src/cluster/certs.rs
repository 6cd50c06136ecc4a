//! Who wrote a cluster record, as switchd checks it: a host signs its records with its
//! certificate's key, and takes another host's only when the certificate that host published
//! (a record itself) was issued by the cluster's CA to that host, and the signature holds
//! under that certificate's key. A certificate refused is counted with the forged records.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use super::pki;
use super::records::{Authority, Check};
use super::sign::{PublicKey, Signer};

/// The certificates known, by host, and this host's signer.
#[derive(Debug)]
pub struct CertAuthority {
    signer: Signer,
    /// The CA certificate (PEM) the hosts' certificates must chain to.
    ca: String,
    known: Mutex<HashMap<String, Known>>,
    /// Hosts the CA revoked: their certificates and signatures refused.
    revoked: Mutex<std::collections::HashSet<String>>,
}

#[derive(Debug)]
struct Known {
    der: Vec<u8>,
    key: PublicKey,
}

impl CertAuthority {
    /// The authority of a host with `signer` (its certificate's key), whose own certificate
    /// is `cert` (DER, checked already against `ca`).
    pub fn new(signer: Signer, ca: String, name: &str, cert: &[u8], key: PublicKey) -> CertAuthority {
        let known = HashMap::from([(
            name.to_string(),
            Known {
                der: cert.to_vec(),
                key,
            },
        )]);
        CertAuthority {
            signer,
            ca,
            known: Mutex::new(known),
            revoked: Mutex::default(),
        }
    }
}

impl CertAuthority {
    /// Whether the CA revoked `host` (as far as this host has heard).
    pub fn is_revoked(&self, host: &str) -> bool {
        self.revoked.lock().expect("lock poisoned").contains(host)
    }

    /// The hosts the CA revoked, as far as this host has heard, sorted.
    pub fn revoked(&self) -> Vec<String> {
        let mut all: Vec<String> = self.revoked.lock().expect("lock poisoned").iter().cloned().collect();
        all.sort();
        all
    }
}

impl Authority for CertAuthority {
    fn revoke(&self, host: &str, issued_ms: u64, sig: &[u8]) -> bool {
        let r = pki::Revocation {
            host: host.to_string(),
            issued_ms,
            sig: sig.to_vec(),
        };
        if pki::verify_revocation(&self.ca, &r).is_err() {
            return false;
        }
        self.known.lock().expect("lock poisoned").remove(host);
        self.revoked.lock().expect("lock poisoned").insert(host.to_string());
        true
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.signer.sign(msg).to_vec()
    }

    fn check(&self, origin: &str, msg: &[u8], sig: &[u8]) -> Check {
        if self.is_revoked(origin) {
            return Check::Invalid;
        }
        match self.known.lock().expect("lock poisoned").get(origin) {
            None => Check::UnknownOrigin,
            Some(k) if k.key.verify(msg, sig) => Check::Valid,
            Some(_) => Check::Invalid,
        }
    }

    fn learn(&self, host: &str, cert: &[u8], now_ms: u64) -> bool {
        if self.is_revoked(host) {
            return false;
        }
        if self
            .known
            .lock()
            .expect("lock poisoned")
            .get(host)
            .is_some_and(|k| k.der == cert)
        {
            return true;
        }
        let now = UNIX_EPOCH + Duration::from_millis(now_ms);
        match pki::verify_der(&self.ca, cert, now) {
            Ok(id) if id.name == host => {
                let known = Known {
                    der: cert.to_vec(),
                    key: id.key,
                };
                self.known
                    .lock()
                    .expect("lock poisoned")
                    .insert(host.to_string(), known);
                true
            }
            // Another host's certificate, another CA's, expired, or not one.
            Ok(_) | Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::SystemTime;

    use crate::cluster::records::{Body, Record, RecordKey, Records};

    /// A host of the cluster whose CA is `ca`: its authority and its certificate in DER.
    fn host(ca: &pki::Pem, name: &str, index: u32) -> (Arc<CertAuthority>, Vec<u8>) {
        let pem = pki::issue_host(ca, name, index, SystemTime::now()).unwrap();
        let id = pki::verify(&ca.cert, &pem.cert, SystemTime::now()).unwrap();
        let der = pki::der(&pem.cert, "host.crt").unwrap();
        let signer = Signer::from_pem(&pem.key).unwrap();
        let auth = CertAuthority::new(signer, ca.cert.clone(), name, &der, id.key);
        (Arc::new(auth), der)
    }

    #[test]
    fn records_hold_under_the_certificates_the_ca_issued() {
        let now = SystemTime::now();
        let ca = pki::new_ca("test", now).unwrap();
        let other_ca = pki::new_ca("other", now).unwrap();
        let (auth_a, cert_a) = host(&ca, "a", 1);
        let (auth_b, _) = host(&ca, "b", 2);
        let (_, cert_stranger) = host(&other_ca, "a", 1);
        let (mut a, mut b) = (Records::new("a"), Records::new("b"));
        a.set_authority(auth_a);
        b.set_authority(auth_b);
        let ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        b.set_now(ms);
        // a's certificate as a publishes it, and one for "a" from another CA.
        let cert = a.local(RecordKey::Host("a".into()), Some(Body::Cert(cert_a.into())), 1_000);
        let mut stranger = cert.clone();
        stranger.body = Some(Body::Cert(cert_stranger.into()));
        let key = RecordKey::endpoint("a", crate::ids::Id::from_random([3; 32]));
        let r = a.local(key.clone(), None, 2_000);
        assert!(!b.apply(stranger), "a certificate from another CA");
        assert!(!b.apply(r.clone()), "no certificate of a yet");
        assert!(b.apply(cert));
        assert!(b.get(&key).is_some(), "a's record, held, is taken with a's certificate");
        // The same record with its body changed on the way: ECDSA does not hold.
        let mut altered = a.local(key.clone(), None, 3_000);
        altered.version.counter += 1;
        assert!(!b.apply(altered));
        assert_eq!((b.forged(), b.unknown_origin()), (2, 1));
    }

    #[test]
    fn a_revocation_the_ca_signed_cuts_its_host_off() {
        let now = SystemTime::now();
        let ms = now.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let ca = pki::new_ca("test", now).unwrap();
        let (auth_a, cert_a) = host(&ca, "a", 1);
        let (auth_b, der_b) = host(&ca, "b", 2);
        let (auth_c, _) = host(&ca, "c", 3);
        let (mut a, mut b, mut c) = (Records::new("a"), Records::new("b"), Records::new("c"));
        a.set_authority(auth_a);
        b.set_authority(auth_b.clone());
        c.set_authority(auth_c.clone());
        for r in [&mut a, &mut b, &mut c] {
            r.set_now(ms);
        }
        let cert = a.local(RecordKey::Host("a".into()), Some(Body::Cert(cert_a.into())), 1_000);
        let key = RecordKey::endpoint("a", crate::ids::Id::from_random([3; 32]));
        let ep = a.local(key.clone(), None, 2_000);
        for r in [&mut b, &mut c] {
            assert!(r.apply(cert.clone()) && r.apply(ep.clone()));
        }
        // b spreads the CA's revocation of a; a forged one (another CA's) changes nothing.
        let other = pki::new_ca("other", now).unwrap();
        let forged = pki::revoke(&other, "a", ms).unwrap();
        let mut bogus = Record::new(
            RecordKey::Revoked("a".into()),
            c.get(&key).unwrap().version.clone(),
            Some(Body::Revocation {
                issued_ms: forged.issued_ms,
                sig: forged.sig.into(),
            }),
        );
        bogus.version.origin = "b".into();
        assert!(!c.apply(bogus));
        assert!(!auth_c.is_revoked("a"));
        let rev = pki::revoke(&ca, "a", ms).unwrap();
        let body = Body::Revocation {
            issued_ms: rev.issued_ms,
            sig: rev.sig.into(),
        };
        let cert_b = b.local(RecordKey::Host("b".into()), Some(Body::Cert(der_b.into())), 2_500);
        assert!(c.apply(cert_b));
        let spread = b.local(RecordKey::Revoked("a".into()), Some(body), 3_000);
        assert!(auth_b.is_revoked("a"), "the host that spreads it");
        assert!(c.apply(spread));
        assert!(auth_c.is_revoked("a"), "a host that takes it");
        for r in [&b, &c] {
            assert!(r.get(&key).is_some_and(|e| e.body.is_none()), "a's endpoint withdrawn");
        }
        let late = a.local(
            RecordKey::endpoint("a", crate::ids::Id::from_random([4; 32])),
            None,
            4_000,
        );
        assert!(!c.apply(late), "a writes nothing any more");
    }
}
