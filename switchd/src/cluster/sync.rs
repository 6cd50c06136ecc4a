//! Anti-entropy's transport: the exchanges the cluster node asks for (every few seconds one
//! with a random live member, and one with each member that comes up), over QUIC with mutual
//! TLS against the cluster CA. A host that
//! missed gossip (joined late, was partitioned, lost datagrams) catches up; a host without a
//! certificate of this CA cannot even finish the handshake. The wire form, and the reading of
//! everything a peer sends, is `control_plane::cluster::exchange`'s.
//!
//! Hosts in a settled cluster end an exchange after 17 bytes; hosts with a few records in
//! flight exchange those buckets' records, not the whole state.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control_plane::cluster::exchange::{
    self, decode_bucket_digests, encode_bucket_digests, Answer, Client, ExchangeError, ExchangeState, Learned,
    BUCKET_DIGESTS_LEN, RECORDS_DIFFER,
};
use control_plane::cluster::membership::MemberState;
use control_plane::cluster::records::Records;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio::sync::mpsc;

/// The ALPN protocol of the exchange (4: records by differing bucket).
const ALPN: &[u8] = b"switch-sync/4";
/// The largest state accepted from a peer.
const MAX_STATE: usize = 16 << 20;

/// Counters of the exchanges.
#[derive(Default)]
pub struct SyncStats {
    /// Exchanges completed (either side).
    pub ok: AtomicU64,
    /// Exchanges that failed (handshake refused, peer gone, malformed state).
    pub failed: AtomicU64,
}

/// Why an exchange (of state, or of keys, `crate::cluster::keys`) ended before it was done.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The connection could not be started.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed (the handshake refused, the peer gone).
    #[error("{0}")]
    Connection(#[from] quinn::ConnectionError),
    /// A write failed.
    #[error("cannot send: {0}")]
    Write(#[from] quinn::WriteError),
    /// The peer's stream ended early.
    #[error("cannot read: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// The peer's state could not be read whole (or was over the limit).
    #[error("cannot read the peer's state: {0}")]
    ReadState(#[from] quinn::ReadToEndError),
    /// The stream was closed already.
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    /// What the peer sent is not an exchange's.
    #[error(transparent)]
    Malformed(#[from] ExchangeError),
    /// The peer broke the key exchange, or is no member.
    #[error("{0}")]
    Refused(String),
    /// The dataplane is gone.
    #[error("the dataplane is gone")]
    Dataplane,
    /// It took too long.
    #[error("timed out")]
    Timeout,
}

/// TLS material of this host, PEM.
pub struct Tls {
    /// The cluster CA certificate.
    pub ca: String,
    /// This host's certificate.
    pub cert: String,
    /// This host's key.
    pub key: String,
}

/// TLS material or settings that QUIC could not be set up with.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct TlsSetupError {
    /// The piece refused (a file, or the configuration step).
    what: &'static str,
    /// Why.
    reason: String,
}

fn bad(what: &'static str) -> impl Fn(String) -> std::io::Error {
    move |reason| std::io::Error::new(std::io::ErrorKind::InvalidData, TlsSetupError { what, reason })
}

/// Whether the CA revoked a host, by name.
pub type Revoked = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A peer's certificate chain checked as the inner verifier checks it, then refused when the
/// CA revoked the host it names: a revoked host's handshakes fail both ways.
#[derive(Debug)]
struct NotRevoked<V: ?Sized> {
    inner: Arc<V>,
    revoked: RevokedFn,
}

/// [`Revoked`], printable.
struct RevokedFn(Revoked);

impl std::fmt::Debug for RevokedFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Revoked")
    }
}

impl<V: ?Sized> NotRevoked<V> {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        match control_plane::cluster::pki::name_of(end_entity.as_ref()) {
            Some(name) if (self.revoked.0)(&name) => {
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked))
            }
            _ => Ok(()),
        }
    }
}

/// The handshake-signature methods both verifier traits share, left to the inner verifier:
/// only the certificate check differs.
macro_rules! handshake_signatures_of_inner {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

impl rustls::server::danger::ClientCertVerifier for NotRevoked<dyn rustls::server::danger::ClientCertVerifier> {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let ok = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        self.check(end_entity)?;
        Ok(ok)
    }

    handshake_signatures_of_inner!();
}

impl rustls::client::danger::ServerCertVerifier for NotRevoked<dyn rustls::client::danger::ServerCertVerifier> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        self.check(end_entity)?;
        Ok(ok)
    }

    handshake_signatures_of_inner!();
}

/// A QUIC endpoint on `bind` that serves anti-entropy and key exchanges and can start them
/// (anti-entropy with its default client configuration, key exchanges with the one returned
/// beside it), refusing peers whose host `revoked` says the CA revoked.
pub fn endpoint(
    tls: &Tls,
    bind: SocketAddr,
    revoked: Revoked,
) -> std::io::Result<(quinn::Endpoint, quinn::ClientConfig)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = CertificateDer::from_pem_slice(tls.ca.as_bytes()).map_err(|e| bad("ca.crt")(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| bad("ca.crt")(e.to_string()))?;
    let roots = Arc::new(roots);
    let chain = vec![CertificateDer::from_pem_slice(tls.cert.as_bytes()).map_err(|e| bad("host.crt")(e.to_string()))?];
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).map_err(|e| bad("host.key")(e.to_string()))?;

    let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| bad("client verifier")(e.to_string()))?;
    let verifier = Arc::new(NotRevoked {
        inner: clients as Arc<dyn rustls::server::danger::ClientCertVerifier>,
        revoked: RevokedFn(revoked.clone()),
    });
    let servers = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| bad("server verifier")(e.to_string()))?;
    let server_verifier = Arc::new(NotRevoked {
        inner: servers as Arc<dyn rustls::client::danger::ServerCertVerifier>,
        revoked: RevokedFn(revoked),
    });
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad("TLS")(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| bad("server TLS")(e.to_string()))?;
    server.alpn_protocols = vec![ALPN.to_vec(), crate::cluster::keys::ALPN.to_vec()];
    // No resumption: a resumed session skips the certificate check, and a revoked host must
    // fail every handshake from the moment its revocation is known.
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad("TLS")(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(server_verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("client TLS")(e.to_string()))?;
    client.resumption = rustls::client::Resumption::disabled();
    let mut keys = client.clone();
    keys.alpn_protocols = vec![crate::cluster::keys::ALPN.to_vec()];
    client.alpn_protocols = vec![ALPN.to_vec()];

    let server = QuicServerConfig::try_from(server).map_err(|e| bad("QUIC server")(e.to_string()))?;
    let client = QuicClientConfig::try_from(client).map_err(|e| bad("QUIC client")(e.to_string()))?;
    let keys = QuicClientConfig::try_from(keys).map_err(|e| bad("QUIC client")(e.to_string()))?;
    let mut ep = quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(server)), bind)?;
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(client)));
    Ok((ep, quinn::ClientConfig::new(Arc::new(keys))))
}

/// What an exchange reads and feeds: the records, and the membership as the cluster loop
/// last published it.
#[derive(Clone)]
pub struct Shared {
    /// The records.
    pub records: Arc<Mutex<Records>>,
    /// This host's member list (itself first) and the digest of who it sees alive,
    /// refreshed by the cluster loop.
    pub members: Arc<Mutex<(Vec<MemberState>, u64)>>,
    /// Member lists heard from peers, for the cluster loop to merge.
    pub heard: mpsc::UnboundedSender<Vec<MemberState>>,
}

impl Shared {
    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().expect("lock poisoned")
    }

    fn members(&self) -> Vec<MemberState> {
        self.members.lock().expect("lock poisoned").0.clone()
    }

    fn members_digest(&self) -> u64 {
        self.members.lock().expect("lock poisoned").1
    }

    /// Reads a peer's state and merges it; member lists go to the cluster loop.
    fn merge(&self, bytes: &[u8]) -> Result<Learned, SyncError> {
        let theirs = ExchangeState::decode(bytes)?;
        let mut learned = exchange::merge(&mut self.records(), theirs);
        if !learned.members.is_empty() {
            let _ = self.heard.send(std::mem::take(&mut learned.members));
        }
        Ok(learned)
    }
}

/// Serves exchanges: compare summaries, then read the peer's state, merge it, answer with
/// ours. Key exchanges (their own ALPN) go to `keys`.
pub async fn serve(ep: quinn::Endpoint, shared: Shared, stats: Arc<SyncStats>, keys: Arc<crate::cluster::keys::Keys>) {
    while let Some(incoming) = ep.accept().await {
        let (shared, stats, keys) = (shared.clone(), stats.clone(), keys.clone());
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("anti-entropy or key exchange refused: {e}");
                    return;
                }
            };
            let alpn = conn
                .handshake_data()
                .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|h| h.protocol);
            if alpn.as_deref() == Some(crate::cluster::keys::ALPN) {
                return crate::cluster::keys::answer(conn, keys).await;
            }
            let exchange = async {
                let (mut send, mut recv) = conn.accept_bi().await?;
                // Summaries first: equal states end the exchange after seventeen bytes.
                let mut summary = [0u8; 16];
                recv.read_exact(&mut summary).await?;
                let answer = exchange::answer(&shared.records(), shared.members_digest(), &summary);
                send.write_all(&[answer.flags]).await?;
                if answer.flags & RECORDS_DIFFER != 0 {
                    send.write_all(&encode_bucket_digests(&answer.digests)).await?;
                }
                let mut learned = 0;
                if !answer.done() {
                    let theirs = recv.read_to_end(MAX_STATE).await?;
                    let merged = shared.merge(&theirs)?;
                    learned = merged.records;
                    let mine = exchange::reply(&shared.records(), || shared.members(), answer.flags, &merged).encode();
                    send.write_all(&mine).await?;
                }
                send.finish()?;
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
                Ok::<usize, SyncError>(learned)
            };
            match tokio::time::timeout(Duration::from_secs(15), exchange).await {
                Ok(Ok(n)) => {
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                    if n > 0 {
                        tracing::info!(records = n, "anti-entropy: learned from a peer");
                    }
                }
                Ok(Err(e)) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("anti-entropy exchange refused or failed: {e}");
                }
                Err(_) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// One exchange with `peer` (`name` must be its certificate's name), member lists included
/// when `with_members` and they differ; how many records were new.
pub async fn exchange(
    ep: &quinn::Endpoint,
    peer: SocketAddr,
    name: &str,
    shared: &Shared,
    with_members: bool,
) -> Result<usize, SyncError> {
    let conn = ep.connect(peer, name)?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let client = Client::start(&shared.records(), shared.members_digest(), with_members);
    send.write_all(&client.summary()).await?;
    let mut flags = [0u8; 1];
    recv.read_exact(&mut flags).await?;
    let mut answer = Answer {
        flags: flags[0],
        digests: Vec::new(),
    };
    let mut learned = 0;
    if !answer.done() {
        if answer.flags & RECORDS_DIFFER != 0 {
            let mut theirs = vec![0u8; BUCKET_DIGESTS_LEN];
            recv.read_exact(&mut theirs).await?;
            answer.digests = decode_bucket_digests(&theirs)?;
        }
        let mine = client.state(&shared.records(), || shared.members(), &answer).encode();
        send.write_all(&mine).await?;
        send.finish()?;
        let theirs = recv.read_to_end(MAX_STATE).await?;
        learned = shared.merge(&theirs)?.records;
    } else {
        send.finish()?;
    }
    conn.close(0u32.into(), b"done");
    Ok(learned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_plane::cluster::membership::{HostId, State};
    use control_plane::cluster::pki;
    use control_plane::cluster::records::{Body, RecordKey};
    use std::time::SystemTime;

    fn tls(ca: &pki::Pem, name: &str) -> Tls {
        let h = pki::issue_host(ca, name, 0, SystemTime::now()).unwrap();
        Tls {
            ca: ca.cert.clone(),
            cert: h.cert,
            key: h.key,
        }
    }

    fn no_keys() -> Arc<crate::cluster::keys::Keys> {
        Arc::new(crate::cluster::keys::Keys::new(
            "t".into(),
            Duration::from_secs(600),
            Arc::new(Vec::new),
        ))
    }

    fn shared(name: &str, members: &[&str]) -> (Shared, mpsc::UnboundedReceiver<Vec<MemberState>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = |n: &str, port: u16| HostId {
            name: n.into(),
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            bump: 1,
        };
        let list = members
            .iter()
            .enumerate()
            .map(|(i, n)| MemberState {
                id: id(n, 7000 + i as u16),
                incarnation: 0,
                state: State::Alive,
            })
            .collect();
        let digest = members.len() as u64;
        let s = Shared {
            records: Arc::new(Mutex::new(Records::new(name))),
            members: Arc::new(Mutex::new((list, digest))),
            heard: tx,
        };
        (s, rx)
    }

    #[tokio::test]
    async fn members_exchange_state_and_strangers_are_refused() {
        let now = SystemTime::now();
        let ca = pki::new_ca("test", now).unwrap();
        let other = pki::new_ca("other", now).unwrap();
        // h1 has heard that the CA revoked h4; h2 has heard nothing.
        let revoked: Revoked = Arc::new(|h: &str| h == "h4");
        let server = endpoint(&tls(&ca, "h1"), "127.0.0.1:0".parse().unwrap(), revoked)
            .unwrap()
            .0;
        let addr = server.local_addr().unwrap();
        let (theirs, mut theirs_heard) = shared("h1", &["h1", "h2", "h3"]);
        let key = RecordKey::Network(control_plane::Id::from_random([1; 32]));
        theirs.records.lock().unwrap().local(key.clone(), None, 7);
        tokio::spawn(serve(server, theirs.clone(), Arc::new(SyncStats::default()), no_keys()));

        let none: Revoked = Arc::new(|_: &str| false);
        let member = endpoint(&tls(&ca, "h2"), "127.0.0.1:0".parse().unwrap(), none.clone())
            .unwrap()
            .0;
        let (mine, mut mine_heard) = shared("h2", &["h2", "h1"]);
        let k2 = RecordKey::Network(control_plane::Id::from_random([2; 32]));
        mine.records
            .lock()
            .unwrap()
            .local(k2.clone(), Some(Body::Network(sample())), 9);
        assert_eq!(
            exchange(&member, addr, "h1", &mine, true).await.unwrap(),
            1,
            "learned h1's record"
        );
        assert!(mine.records.lock().unwrap().get(&key).is_some());
        assert_eq!(mine_heard.try_recv().unwrap().len(), 3, "h1's member list, h3 included");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            theirs.records.lock().unwrap().get(&k2).is_some(),
            "h1 learned h2's record"
        );
        assert_eq!(theirs_heard.try_recv().unwrap().len(), 2);
        let digest = |s: &Shared| s.records.lock().unwrap().digest();
        assert_eq!(digest(&mine), digest(&theirs));
        // Equal summaries: nothing more goes either way.
        mine.members.lock().unwrap().1 = theirs.members.lock().unwrap().1;
        assert_eq!(exchange(&member, addr, "h1", &mine, true).await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(mine_heard.try_recv().is_err() && theirs_heard.try_recv().is_err());

        let stranger = endpoint(&tls(&other, "h9"), "127.0.0.1:0".parse().unwrap(), none.clone())
            .unwrap()
            .0;
        let (nothing, _) = shared("h9", &["h9"]);
        assert!(
            exchange(&stranger, addr, "h1", &nothing, true).await.is_err(),
            "another CA's host is refused"
        );
        assert!(
            nothing.records.lock().unwrap().get(&key).is_none(),
            "and learns nothing"
        );
        let revoked = endpoint(&tls(&ca, "h4"), "127.0.0.1:0".parse().unwrap(), none)
            .unwrap()
            .0;
        let (nothing, _) = shared("h4", &["h4"]);
        assert!(
            exchange(&revoked, addr, "h1", &nothing, true).await.is_err(),
            "a revoked host is refused"
        );
        assert!(nothing.records.lock().unwrap().get(&key).is_none());
        // And a revoked server too, by a client that heard of it.
        let (s4, _) = shared("h4", &["h4"]);
        let server4 = endpoint(
            &tls(&ca, "h4"),
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(|_: &str| false),
        )
        .unwrap()
        .0;
        let addr4 = server4.local_addr().unwrap();
        tokio::spawn(serve(server4, s4, Arc::new(SyncStats::default()), no_keys()));
        let client1 = endpoint(
            &tls(&ca, "h1"),
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(|h: &str| h == "h4"),
        )
        .unwrap()
        .0;
        assert!(exchange(&client1, addr4, "h4", &theirs, true).await.is_err());
    }

    fn sample() -> control_plane::cluster::records::NetworkRecord {
        control_plane::cluster::records::NetworkRecord {
            name: "ovl".into(),
            subnet: "10.1.0.0/24".parse().unwrap(),
            gateway: "10.1.0.1".parse().unwrap(),
            vni: 4096,
            max_hosts: 64,
            claimed: false,
            mtu: 1450,
            internal: false,
            created: SystemTime::UNIX_EPOCH,
            encrypted: false,
            subnet6: None,
        }
    }
}
