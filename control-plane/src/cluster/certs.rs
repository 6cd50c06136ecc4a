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
        }
    }
}

impl Authority for CertAuthority {
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.signer.sign(msg).to_vec()
    }

    fn check(&self, origin: &str, msg: &[u8], sig: &[u8]) -> Check {
        match self.known.lock().expect("lock poisoned").get(origin) {
            None => Check::UnknownOrigin,
            Some(k) if k.key.verify(msg, sig) => Check::Valid,
            Some(_) => Check::Invalid,
        }
    }

    fn learn(&self, host: &str, cert: &[u8], now_ms: u64) -> bool {
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

    use crate::cluster::records::{Body, RecordKey, Records};

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
        let key = RecordKey::Endpoint(crate::ids::Id::from_random([3; 32]));
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
}
