//! Anti-entropy: every few seconds a full-state exchange of the cluster's records with one
//! random live member, over QUIC with mutual TLS against the cluster CA. A host that missed
//! gossip (joined late, was partitioned, lost datagrams) catches up; a host without a
//! certificate of this CA cannot even finish the handshake.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control_plane::cluster::records::{Record, Records};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// How often a host syncs with a random live member.
pub const SYNC_EVERY: Duration = Duration::from_secs(5);
/// The ALPN protocol of the exchange.
const ALPN: &[u8] = b"switch-sync/1";
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

/// TLS material of this host, PEM.
pub struct Tls {
    /// The cluster CA certificate.
    pub ca: String,
    /// This host's certificate.
    pub cert: String,
    /// This host's key.
    pub key: String,
}

fn bad(what: &str) -> impl Fn(String) -> std::io::Error + '_ {
    move |e| std::io::Error::other(format!("{what}: {e}"))
}

/// A QUIC endpoint on `bind` that serves exchanges and can start them.
pub fn endpoint(tls: &Tls, bind: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = CertificateDer::from_pem_slice(tls.ca.as_bytes()).map_err(|e| bad("ca.crt")(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| bad("ca.crt")(e.to_string()))?;
    let roots = Arc::new(roots);
    let chain = vec![CertificateDer::from_pem_slice(tls.cert.as_bytes()).map_err(|e| bad("host.crt")(e.to_string()))?];
    let key = PrivateKeyDer::from_pem_slice(tls.key.as_bytes()).map_err(|e| bad("host.key")(e.to_string()))?;

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| bad("client verifier")(e.to_string()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad("TLS")(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| bad("server TLS")(e.to_string()))?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad("TLS")(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("client TLS")(e.to_string()))?;
    client.alpn_protocols = vec![ALPN.to_vec()];

    let server = QuicServerConfig::try_from(server).map_err(|e| bad("QUIC server")(e.to_string()))?;
    let client = QuicClientConfig::try_from(client).map_err(|e| bad("QUIC client")(e.to_string()))?;
    let mut ep = quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(server)), bind)?;
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(client)));
    Ok(ep)
}

fn encode(records: &Mutex<Records>) -> Vec<u8> {
    let all: Vec<Record> = records.lock().expect("lock poisoned").all().cloned().collect();
    postcard::to_stdvec(&all).expect("records serialize")
}

fn merge(records: &Mutex<Records>, bytes: &[u8]) -> Result<usize, String> {
    let theirs: Vec<Record> = postcard::from_bytes(bytes).map_err(|e| format!("malformed state: {e}"))?;
    let mut mine = records.lock().expect("lock poisoned");
    Ok(theirs.into_iter().filter(|r| mine.apply(r.clone())).count())
}

/// Serves exchanges: read the peer's state, merge it, answer with ours.
pub async fn serve(ep: quinn::Endpoint, records: Arc<Mutex<Records>>, stats: Arc<SyncStats>) {
    while let Some(incoming) = ep.accept().await {
        let (records, stats) = (records.clone(), stats.clone());
        tokio::spawn(async move {
            let exchange = async {
                let conn = incoming.await.map_err(|e| e.to_string())?;
                let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
                // Digests first: equal states end the exchange after nine bytes.
                let mut digest = [0u8; 8];
                recv.read_exact(&mut digest).await.map_err(|e| e.to_string())?;
                let same = u64::from_be_bytes(digest) == records.lock().expect("lock poisoned").digest();
                send.write_all(&[u8::from(!same)]).await.map_err(|e| e.to_string())?;
                let mut learned = 0;
                if !same {
                    let theirs = recv.read_to_end(MAX_STATE).await.map_err(|e| e.to_string())?;
                    learned = merge(&records, &theirs)?;
                    send.write_all(&encode(&records)).await.map_err(|e| e.to_string())?;
                }
                send.finish().map_err(|e| e.to_string())?;
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
                Ok::<usize, String>(learned)
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

/// One exchange with `peer` (`name` must be its certificate's name).
pub async fn exchange(
    ep: &quinn::Endpoint,
    peer: SocketAddr,
    name: &str,
    records: &Mutex<Records>,
) -> Result<usize, String> {
    let conn = ep
        .connect(peer, name)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let digest = records.lock().expect("lock poisoned").digest();
    send.write_all(&digest.to_be_bytes()).await.map_err(|e| e.to_string())?;
    let mut differ = [0u8; 1];
    recv.read_exact(&mut differ).await.map_err(|e| e.to_string())?;
    let mut learned = 0;
    if differ[0] != 0 {
        send.write_all(&encode(records)).await.map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        let theirs = recv.read_to_end(MAX_STATE).await.map_err(|e| e.to_string())?;
        learned = merge(records, &theirs)?;
    } else {
        send.finish().map_err(|e| e.to_string())?;
    }
    conn.close(0u32.into(), b"done");
    Ok(learned)
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[tokio::test]
    async fn members_exchange_state_and_strangers_are_refused() {
        let now = SystemTime::now();
        let ca = pki::new_ca("test", now).unwrap();
        let other = pki::new_ca("other", now).unwrap();
        let server = endpoint(&tls(&ca, "h1"), "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let theirs = Arc::new(Mutex::new(Records::new("h1")));
        let key = RecordKey::Network(control_plane::Id::from_random([1; 32]));
        theirs.lock().unwrap().local(key.clone(), None, 7);
        tokio::spawn(serve(server, theirs.clone(), Arc::new(SyncStats::default())));

        let member = endpoint(&tls(&ca, "h2"), "127.0.0.1:0".parse().unwrap()).unwrap();
        let mine = Mutex::new(Records::new("h2"));
        let k2 = RecordKey::Network(control_plane::Id::from_random([2; 32]));
        mine.lock().unwrap().local(k2.clone(), Some(Body::Network(sample())), 9);
        assert_eq!(
            exchange(&member, addr, "h1", &mine).await.unwrap(),
            1,
            "learned h1's record"
        );
        assert!(mine.lock().unwrap().get(&key).is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(theirs.lock().unwrap().get(&k2).is_some(), "h1 learned h2's record");
        assert_eq!(mine.lock().unwrap().digest(), theirs.lock().unwrap().digest());
        assert_eq!(
            exchange(&member, addr, "h1", &mine).await.unwrap(),
            0,
            "equal digests: nothing to learn"
        );

        let stranger = endpoint(&tls(&other, "h9"), "127.0.0.1:0".parse().unwrap()).unwrap();
        let nothing = Mutex::new(Records::new("h9"));
        assert!(
            exchange(&stranger, addr, "h1", &nothing).await.is_err(),
            "another CA's host is refused"
        );
        assert!(nothing.lock().unwrap().get(&key).is_none(), "and learns nothing");
    }

    fn sample() -> control_plane::cluster::records::NetworkRecord {
        control_plane::cluster::records::NetworkRecord {
            name: "ovl".into(),
            subnet: "10.1.0.0/24".parse().unwrap(),
            gateway: "10.1.0.1".parse().unwrap(),
            vni: 4096,
            max_hosts: 64,
            mtu: 1450,
            internal: false,
            created: SystemTime::UNIX_EPOCH,
        }
    }
}
