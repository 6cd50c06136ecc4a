//! The cluster's certificate authority, made and used offline.
//!
//! `switchctl cluster init` makes a self-signed CA (ten years); `switchctl cluster cert` issues
//! a host certificate (two years, CN and DNS name = the host name, usable as TLS server and
//! client) signed by it. Hosts prove membership with these; [`verify`] checks one against the
//! CA.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use thiserror::Error;
use x509_parser::prelude::{FromDer, X509Certificate};

/// How long a cluster CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a host certificate is valid.
pub const HOST_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

/// How a host certificate carries the host's index (in its organizational unit).
const HOST_INDEX_PREFIX: &str = "host-index ";

/// Who a verified certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// The host name (common name).
    pub name: String,
    /// The host's index in the cluster.
    pub index: u32,
    /// The public key its signatures are checked with.
    pub key: crate::sign::PublicKey,
}

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

/// Why a certificate could not be made or was not accepted.
#[derive(Debug, Error)]
pub enum PkiError {
    /// A host name that cannot be a DNS name.
    #[error("invalid host name {0:?}: use 1-63 characters from [a-zA-Z0-9-], not starting or ending with '-'")]
    InvalidName(String),
    /// The CA files do not hold a CA certificate and its key.
    #[error("the CA certificate or key is unreadable: {0}")]
    BadCa(String),
    /// The certificate is not valid for the cluster.
    #[error("certificate rejected: {0}")]
    Rejected(String),
    /// Generation failed.
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn check_host(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidName(name.to_string()))
    }
}

fn validity(p: &mut CertificateParams, now: SystemTime, span: Duration) {
    // A minute of slack for hosts whose clocks are slightly behind the issuer's.
    p.not_before = (now - Duration::from_secs(60)).into();
    p.not_after = (now + span).into();
}

/// A new cluster CA named `name`, valid from `now` for [`CA_VALIDITY`].
///
/// # Errors
/// Key or certificate generation failed.
pub fn new_ca(name: &str, now: SystemTime) -> Result<Pem, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "switch cluster");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p, now, CA_VALIDITY);
    let key = KeyPair::generate()?;
    let cert = p.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A host certificate for `host`, signed by `ca`, valid from `now` for [`HOST_VALIDITY`].
/// `index` is the host's number in the cluster, unique per CA (the CA's directory counts
/// them): it gives the host its own share of every overlay network's addresses.
///
/// # Errors
/// An invalid host name, an unreadable CA, or generation failure.
pub fn issue_host(ca: &Pem, host: &str, index: u32, now: SystemTime) -> Result<Pem, PkiError> {
    check_host(host)?;
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| PkiError::BadCa(e.to_string()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(|e| PkiError::BadCa(e.to_string()))?;
    let mut p = CertificateParams::new(vec![host.to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, host);
    dn.push(DnType::OrganizationName, "switch cluster");
    dn.push(DnType::OrganizationalUnitName, format!("{HOST_INDEX_PREFIX}{index}"));
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut p, now, HOST_VALIDITY);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The key a certificate holds.
fn key_of(cert: &X509Certificate<'_>) -> Result<crate::sign::PublicKey, PkiError> {
    let spki = cert.public_key();
    crate::sign::PublicKey::from_spki(
        &spki.algorithm.algorithm.to_id_string(),
        spki.algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string())
            .as_deref(),
        &spki.subject_public_key.data,
    )
    .ok_or_else(|| PkiError::Rejected("its key is neither ECDSA P-256 nor Ed25519".into()))
}

/// The CA's word that host `host`'s certificates are no longer the cluster's, from
/// `issued_ms` (ms since the epoch) on: `switchctl cluster revoke` makes one with the CA's
/// key, and every host checks it against the CA certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The host revoked.
    pub host: String,
    /// When it was issued.
    pub issued_ms: u64,
    /// The CA's signature of [`Revocation::signed_bytes`].
    pub sig: Vec<u8>,
}

impl Revocation {
    /// What the CA signs: a context string, the host name, and the time.
    pub fn signed_bytes(host: &str, issued_ms: u64) -> Vec<u8> {
        let mut m = b"switch-revocation-v1\0".to_vec();
        m.extend_from_slice(host.as_bytes());
        m.push(0);
        m.extend_from_slice(&issued_ms.to_le_bytes());
        m
    }
}

/// A revocation of `host`'s certificates, signed with `ca`'s key at `now_ms`.
///
/// # Errors
/// An invalid host name, or a CA key that cannot sign.
pub fn revoke(ca: &Pem, host: &str, now_ms: u64) -> Result<Revocation, PkiError> {
    check_host(host)?;
    let signer = crate::sign::Signer::from_pem(&ca.key)?;
    Ok(Revocation {
        host: host.to_string(),
        issued_ms: now_ms,
        sig: signer.sign(&Revocation::signed_bytes(host, now_ms)).to_vec(),
    })
}

/// Checks that the CA whose certificate is `ca_cert` signed `r`.
///
/// # Errors
/// [`PkiError::Rejected`] naming what is wrong.
pub fn verify_revocation(ca_cert: &str, r: &Revocation) -> Result<(), PkiError> {
    check_host(&r.host)?;
    let ca_der = der(ca_cert, "the CA certificate")?;
    let (_, ca) =
        X509Certificate::from_der(&ca_der).map_err(|e| PkiError::Rejected(format!("bad CA certificate: {e}")))?;
    if key_of(&ca)?.verify(&Revocation::signed_bytes(&r.host, r.issued_ms), &r.sig) {
        Ok(())
    } else {
        Err(PkiError::Rejected(format!(
            "the revocation of {} was not signed by this cluster's CA: give --ca the directory of the CA that issued the cluster's certificates",
            r.host
        )))
    }
}

/// The host a certificate (DER) names, as its common name, unchecked.
pub fn name_of(cert_der: &[u8]) -> Option<String> {
    let (_, c) = X509Certificate::from_der(cert_der).ok()?;
    let cn = c.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

/// The DER bytes of a PEM certificate.
///
/// # Errors
/// [`PkiError::Rejected`] when it is not PEM.
pub fn der(pem_text: &str, what: &str) -> Result<Vec<u8>, PkiError> {
    let p = pem::parse(pem_text).map_err(|e| PkiError::Rejected(format!("{what} is not PEM: {e}")))?;
    Ok(p.contents().to_vec())
}

/// Checks that `host_cert` was signed by `ca_cert` and is valid at `now`; returns the host's
/// name and index.
///
/// # Errors
/// [`PkiError::Rejected`] naming what is wrong.
pub fn verify(ca_cert: &str, host_cert: &str, now: SystemTime) -> Result<HostIdentity, PkiError> {
    let host_der = der(host_cert, "the host certificate")?;
    verify_der(ca_cert, &host_der, now)
}

/// As [`verify`], for a host certificate in DER (as hosts publish theirs to the cluster).
///
/// # Errors
/// [`PkiError::Rejected`] naming what is wrong.
pub fn verify_der(ca_cert: &str, host_der: &[u8], now: SystemTime) -> Result<HostIdentity, PkiError> {
    let ca_der = der(ca_cert, "the CA certificate")?;
    let (_, ca) =
        X509Certificate::from_der(&ca_der).map_err(|e| PkiError::Rejected(format!("bad CA certificate: {e}")))?;
    let (_, host) =
        X509Certificate::from_der(host_der).map_err(|e| PkiError::Rejected(format!("bad host certificate: {e}")))?;
    host.verify_signature(Some(ca.public_key()))
        .map_err(|_| PkiError::Rejected("it was not signed by this cluster's CA".into()))?;
    let t = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let v = host.validity();
    if t < v.not_before.timestamp() || t > v.not_after.timestamp() {
        return Err(PkiError::Rejected(format!(
            "it is not valid now (valid {} to {})",
            v.not_before, v.not_after
        )));
    }
    let cn = host
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .ok_or_else(|| PkiError::Rejected("it has no common name".into()))?;
    let index = host
        .subject()
        .iter_organizational_unit()
        .filter_map(|u| u.as_str().ok()?.strip_prefix(HOST_INDEX_PREFIX)?.parse().ok())
        .next()
        .ok_or_else(|| {
            PkiError::Rejected("it carries no host index (issue it again with switchctl cluster cert)".into())
        })?;
    let key = key_of(&host)?;
    Ok(HostIdentity {
        name: cn.to_string(),
        index,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_certificate_verifies_against_its_ca_only() {
        let now = SystemTime::now();
        let ca = new_ca("test CA", now).unwrap();
        let host = issue_host(&ca, "host-1", 7, now).unwrap();
        assert!(host.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(host.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let id = verify(&ca.cert, &host.cert, now).unwrap();
        assert_eq!((id.name.as_str(), id.index), ("host-1", 7));
        let other = new_ca("another CA", now).unwrap();
        let e = verify(&other.cert, &host.cert, now).unwrap_err();
        assert!(e.to_string().contains("not signed by this cluster's CA"), "{e}");
        let later = now + HOST_VALIDITY + Duration::from_secs(3600);
        assert!(verify(&ca.cert, &host.cert, later)
            .unwrap_err()
            .to_string()
            .contains("not valid now"));
        // A certificate a host signs with its own key is not a member's.
        let forged = issue_host(&host, "h2", 8, now).unwrap();
        assert!(
            verify(&ca.cert, &forged.cert, now).is_err(),
            "a certificate signed by a host is not a member"
        );
    }

    #[test]
    fn bad_names_and_bad_ca_files() {
        let now = SystemTime::now();
        let ca = new_ca("c", now).unwrap();
        for n in ["", "-x", "x-", "a b", "a.b", &"x".repeat(64)] {
            assert!(
                matches!(issue_host(&ca, n, 0, now), Err(PkiError::InvalidName(_))),
                "{n:?}"
            );
        }
        let broken = Pem {
            cert: ca.cert.clone(),
            key: "not a key".into(),
        };
        assert!(matches!(issue_host(&broken, "h", 0, now), Err(PkiError::BadCa(_))));
    }

    #[test]
    fn a_revocation_holds_under_its_ca_only() {
        let now = SystemTime::now();
        let (ca, other) = (new_ca("c", now).unwrap(), new_ca("o", now).unwrap());
        let r = revoke(&ca, "h3", 1_000).unwrap();
        assert!(verify_revocation(&ca.cert, &r).is_ok());
        assert!(verify_revocation(&other.cert, &r).is_err(), "another CA's");
        let mut moved = r.clone();
        moved.host = "h2".into();
        assert!(verify_revocation(&ca.cert, &moved).is_err(), "moved to another host");
        let mut later = r.clone();
        later.issued_ms += 1;
        assert!(verify_revocation(&ca.cert, &later).is_err(), "its time changed");
        assert!(matches!(revoke(&ca, "a b", 0), Err(PkiError::InvalidName(_))));
        let h = issue_host(&ca, "h3", 3, now).unwrap();
        assert_eq!(name_of(&der(&h.cert, "h").unwrap()).as_deref(), Some("h3"));
    }
}
