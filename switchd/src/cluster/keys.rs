//! Keys of sealed tunnels (encrypted overlay networks): every pair of hosts derives its own
//! pair of security associations from the TLS exporter (RFC 8446 §7.5) of a QUIC connection
//! between them, whose handshake both sides authenticated with certificates of the cluster
//! CA (and neither revoked). Nothing secret crosses the wire, and no other host can derive
//! them.
//!
//! One exchange, on its own ALPN, initiator I and responder R, each choosing the SPI it
//! receives under:
//!
//! ```text
//!  I → R   version (1) | SPI_I (4)
//!  R       derives; installs its inbound SA (SPI_R, key I→R)
//!  R → I   SPI_R (4)
//!  I       derives; installs its inbound SA (SPI_I, key R→I), then seals under (SPI_R, key I→R)
//!  I → R   1 (done)
//!  R       seals under (SPI_I, key R→I)
//!
//!  keys = exporter("EXPORTER-switch-esp/1", context SPI_I | SPI_R, 72 bytes):
//!         key I→R = bytes 0..36, key R→I = bytes 36..72 (AES-256 key, then 4-byte salt)
//! ```
//!
//! Each side seals under a new SA only once the other can open it, and a host keeps the
//! inbound SAs before the newest ([`crate::dataplane::esp`]), so a rotation loses no frame.
//! The host whose name sorts first renews the pair's keys every rekey interval, and every
//! pair at once when the CA revokes a host; a host with no keys for a peer starts an
//! exchange itself. A peer that leaves, goes down or is revoked loses its SAs here.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use overlay::esp::KEY_LEN;

use crate::cluster::sync::SyncError;
use crate::dataplane::esp::SaChange;
use crate::dataplane::Handle;

/// The ALPN protocol of the key exchange.
pub const ALPN: &[u8] = b"switch-keys/1";
/// The exporter label.
const LABEL: &[u8] = b"EXPORTER-switch-esp/1";
const VERSION: u8 = 1;
/// SPIs 1-255 are IANA's (RFC 4303); 0 is none.
const MIN_SPI: u32 = 256;
/// How long one exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a failed exchange the next is tried.
const RETRY: Duration = Duration::from_secs(2);

/// The members keys are held with, by name: their address (VXLAN and ESP go to its IP, the
/// key exchange to the next port after its gossip port).
pub type Members = Arc<dyn Fn() -> Vec<(String, SocketAddr)> + Send + Sync>;

struct Peer {
    addr: IpAddr,
    /// When this host last installed an outbound SA for it.
    keyed: Option<Instant>,
    /// An exchange with it is running.
    busy: bool,
    /// No exchange before this (one failed).
    not_before: Option<Instant>,
    /// Its inbound SPIs here, oldest first (as the dataplane keeps them).
    spis: VecDeque<u32>,
}

/// The key exchanges of this host.
pub struct Keys {
    name: String,
    rekey: Duration,
    members: Members,
    dp: OnceLock<Handle>,
    peers: Mutex<HashMap<String, Peer>>,
    /// Exchanges completed and failed (either side).
    pub ok: AtomicU64,
    /// See `ok`.
    pub failed: AtomicU64,
    /// Revocations seen: a new one renews every pair's keys.
    revocations: AtomicU64,
}

impl Keys {
    /// The exchanges of host `name`, renewing keys every `rekey`, with `members`.
    pub fn new(name: String, rekey: Duration, members: Members) -> Keys {
        Keys {
            name,
            rekey,
            members,
            dp: OnceLock::new(),
            peers: Mutex::new(HashMap::new()),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
        }
    }

    /// SAs go to `dp` from now on.
    pub fn attach(&self, dp: Handle) {
        let _ = self.dp.set(dp);
    }

    /// The CA revoked `count` hosts so far: on news of another, every pair's keys are renewed.
    pub fn revocations(&self, count: u64) {
        if self.revocations.swap(count, Ordering::Relaxed) < count {
            for p in self.peers.lock().expect("lock poisoned").values_mut() {
                p.keyed = None;
            }
        }
    }

    async fn install(&self, change: SaChange) -> Result<(), SyncError> {
        let dp = self.dp.get().ok_or(SyncError::Dataplane)?.clone();
        tokio::task::spawn_blocking(move || dp.sa(change))
            .await
            .map_err(|_| SyncError::Dataplane)?
            .map_err(|_| SyncError::Dataplane)
    }

    /// A fresh inbound SPI for `peer` (at `addr`), noted as its newest.
    fn fresh_spi(&self, peer: &str, addr: IpAddr) -> u32 {
        let mut peers = self.peers.lock().expect("lock poisoned");
        let used = |spi: u32| peers.values().any(|p| p.spis.contains(&spi));
        let spi = loop {
            let mut b = [0u8; 4];
            getrandom::fill(&mut b).expect("the system's random source works");
            let spi = u32::from_be_bytes(b);
            if spi >= MIN_SPI && !used(spi) {
                break spi;
            }
        };
        let p = peers.entry(peer.to_string()).or_insert_with(|| Peer::new(addr));
        p.spis.push_back(spi);
        while p.spis.len() > crate::dataplane::esp::INBOUND_PER_PEER {
            p.spis.pop_front();
        }
        spi
    }

    fn keyed(&self, peer: &str) {
        if let Some(p) = self.peers.lock().expect("lock poisoned").get_mut(peer) {
            p.keyed = Some(Instant::now());
        }
    }

    /// The member `name`'s address, if it is a member.
    fn member(&self, name: &str) -> Option<SocketAddr> {
        (self.members)().into_iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// Forgets the peers that are no members any more (their SAs go), and returns the
    /// members an exchange is due with now, marked busy.
    fn due(&self, now: Instant) -> Vec<(String, SocketAddr)> {
        let members = (self.members)();
        let mut peers = self.peers.lock().expect("lock poisoned");
        let gone: Vec<String> = peers
            .keys()
            .filter(|n| !members.iter().any(|(m, _)| m == *n))
            .cloned()
            .collect();
        for n in gone {
            if let (Some(p), Some(dp)) = (peers.remove(&n), self.dp.get()) {
                let dp = dp.clone();
                tokio::task::spawn_blocking(move || dp.sa(SaChange::Forget(p.addr)));
            }
        }
        let mut due = Vec::new();
        for (name, addr) in members {
            let p = peers.entry(name.clone()).or_insert_with(|| Peer::new(addr.ip()));
            if p.busy || p.not_before.is_some_and(|t| now < t) {
                continue;
            }
            // The first host of the pair by name renews; either starts when it has no keys.
            let renew = self.name < name && p.keyed.is_none_or(|t| now.duration_since(t) >= self.rekey);
            if p.keyed.is_none() || renew {
                p.busy = true;
                due.push((name, addr));
            }
        }
        due
    }

    fn done(&self, peer: &str, r: &Result<(), SyncError>) {
        let mut peers = self.peers.lock().expect("lock poisoned");
        if let Some(p) = peers.get_mut(peer) {
            p.busy = false;
            p.not_before = r.is_err().then(|| Instant::now() + RETRY);
        }
        match r {
            Ok(()) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

impl Peer {
    fn new(addr: IpAddr) -> Peer {
        Peer {
            addr,
            keyed: None,
            busy: false,
            not_before: None,
            spis: VecDeque::new(),
        }
    }
}

/// The pair's key material: key I→R, key R→I.
fn derive(conn: &quinn::Connection, spi_i: u32, spi_r: u32) -> Result<([u8; KEY_LEN], [u8; KEY_LEN]), SyncError> {
    let mut context = [0u8; 8];
    context[..4].copy_from_slice(&spi_i.to_be_bytes());
    context[4..].copy_from_slice(&spi_r.to_be_bytes());
    let mut km = [0u8; 2 * KEY_LEN];
    conn.export_keying_material(&mut km, LABEL, &context)
        .map_err(|_| SyncError::Refused("the TLS exporter refused".into()))?;
    let mut to_r = [0u8; KEY_LEN];
    let mut to_i = [0u8; KEY_LEN];
    to_r.copy_from_slice(&km[..KEY_LEN]);
    to_i.copy_from_slice(&km[KEY_LEN..]);
    Ok((to_r, to_i))
}

fn spi(b: [u8; 4]) -> Result<u32, SyncError> {
    let spi = u32::from_be_bytes(b);
    if spi < MIN_SPI {
        return Err(SyncError::Refused(format!(
            "SPI {spi} is reserved: SPIs start at {MIN_SPI}"
        )));
    }
    Ok(spi)
}

/// Starts an exchange with member `name` at `addr` (its gossip address; the exchange goes to
/// the next port).
async fn initiate(
    ep: &quinn::Endpoint,
    cfg: quinn::ClientConfig,
    keys: &Keys,
    name: &str,
    addr: SocketAddr,
) -> Result<(), SyncError> {
    let ip = addr.ip();
    let quic = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1));
    let conn = ep.connect_with(cfg, quic, name)?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let spi_i = keys.fresh_spi(name, ip);
    let mut hello = [VERSION, 0, 0, 0, 0];
    hello[1..].copy_from_slice(&spi_i.to_be_bytes());
    send.write_all(&hello).await?;
    let mut b = [0u8; 4];
    recv.read_exact(&mut b).await?;
    let spi_r = spi(b)?;
    let (to_r, to_i) = derive(&conn, spi_i, spi_r)?;
    keys.install(SaChange::Inbound {
        peer: ip,
        spi: spi_i,
        key: to_i,
    })
    .await?;
    keys.install(SaChange::Outbound {
        peer: ip,
        spi: spi_r,
        key: to_r,
    })
    .await?;
    keys.keyed(name);
    send.write_all(&[1]).await?;
    send.finish()?;
    // The responder closes once it sealed under the new SA (or gave up).
    let mut end = [0u8; 1];
    let _ = recv.read_exact(&mut end).await;
    conn.close(0u32.into(), b"done");
    Ok(())
}

/// Answers an exchange a member started on `conn`.
pub async fn answer(conn: quinn::Connection, keys: Arc<Keys>) {
    let r = tokio::time::timeout(EXCHANGE_TIMEOUT, respond(&conn, &keys)).await;
    let r = r.unwrap_or(Err(SyncError::Timeout));
    if let Err(e) = &r {
        tracing::info!("key exchange refused or failed: {e}");
        keys.failed.fetch_add(1, Ordering::Relaxed);
    } else {
        keys.ok.fetch_add(1, Ordering::Relaxed);
    }
}

async fn respond(conn: &quinn::Connection, keys: &Keys) -> Result<(), SyncError> {
    let name = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
        .and_then(|chain| control_plane::cluster::pki::name_of(chain.first()?.as_ref()))
        .ok_or_else(|| SyncError::Refused("the peer showed no certificate name".into()))?;
    let ip = keys
        .member(&name)
        .ok_or_else(|| SyncError::Refused(format!("{name} is no member")))?
        .ip();
    let (mut send, mut recv) = conn.accept_bi().await?;
    let mut hello = [0u8; 5];
    recv.read_exact(&mut hello).await?;
    if hello[0] != VERSION {
        return Err(SyncError::Refused(format!(
            "{name} speaks key exchange version {}; this host speaks {VERSION}",
            hello[0]
        )));
    }
    let spi_i = spi(hello[1..].try_into().expect("4 bytes"))?;
    let spi_r = keys.fresh_spi(&name, ip);
    let (to_r, to_i) = derive(conn, spi_i, spi_r)?;
    keys.install(SaChange::Inbound {
        peer: ip,
        spi: spi_r,
        key: to_r,
    })
    .await?;
    send.write_all(&spi_r.to_be_bytes()).await?;
    let mut done = [0u8; 1];
    recv.read_exact(&mut done).await?;
    keys.install(SaChange::Outbound {
        peer: ip,
        spi: spi_i,
        key: to_i,
    })
    .await?;
    keys.keyed(&name);
    send.write_all(&[1]).await?;
    send.finish()?;
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    Ok(())
}

/// Every second: forgets peers that left, renews every pair's keys when `revocations` (how
/// many hosts the CA revoked) grew, and starts the exchanges that are due while this host
/// has an encrypted network.
pub async fn run(ep: quinn::Endpoint, cfg: quinn::ClientConfig, keys: Arc<Keys>, revocations: impl Fn() -> u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        keys.revocations(revocations());
        if !keys.dp.get().is_some_and(Handle::sealing) {
            continue;
        }
        for (name, addr) in keys.due(Instant::now()) {
            let (ep, cfg, keys) = (ep.clone(), cfg.clone(), keys.clone());
            tokio::spawn(async move {
                let r = tokio::time::timeout(EXCHANGE_TIMEOUT, initiate(&ep, cfg, &keys, &name, addr)).await;
                let r = r.unwrap_or(Err(SyncError::Timeout));
                if let Err(e) = &r {
                    tracing::info!(peer = %name, "key exchange failed: {e}");
                }
                keys.done(&name, &r);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control_plane::cluster::pki;
    use std::time::SystemTime;

    fn host(ca: &pki::Pem, name: &str) -> (quinn::Endpoint, quinn::ClientConfig) {
        let h = pki::issue_host(ca, name, 1, SystemTime::now()).unwrap();
        let tls = crate::cluster::sync::Tls {
            ca: ca.cert.clone(),
            cert: h.cert,
            key: h.key,
        };
        crate::cluster::sync::endpoint(&tls, "127.0.0.1:0".parse().unwrap(), Arc::new(|_: &str| false)).unwrap()
    }

    fn dataplane() -> Handle {
        crate::dataplane::spawn(1, "127.0.0.1:4789".parse().unwrap(), 4500, Duration::ZERO, false).unwrap()
    }

    /// The gossip address of a host whose exchanges are served on `ep`.
    fn gossip(ep: &quinn::Endpoint) -> SocketAddr {
        let a = ep.local_addr().unwrap();
        SocketAddr::new(a.ip(), a.port() - 1)
    }

    #[tokio::test]
    async fn two_members_derive_a_pair_of_sas_and_renew_them() {
        let ca = pki::new_ca("test", SystemTime::now()).unwrap();
        let (ep1, cfg1) = host(&ca, "h1");
        let (ep2, _) = host(&ca, "h2");
        let (g1, g2) = (gossip(&ep1), gossip(&ep2));
        let k1 = Arc::new(Keys::new(
            "h1".into(),
            Duration::from_secs(600),
            Arc::new(move || vec![("h2".into(), g2)]),
        ));
        let k2 = Arc::new(Keys::new(
            "h2".into(),
            Duration::from_secs(600),
            Arc::new(move || vec![("h1".into(), g1)]),
        ));
        let (dp1, dp2) = (dataplane(), dataplane());
        k1.attach(dp1.clone());
        k2.attach(dp2.clone());
        let server = {
            let (ep2, k2) = (ep2.clone(), k2.clone());
            tokio::spawn(async move {
                for _ in 0..2 {
                    let conn = ep2.accept().await.unwrap().await.unwrap();
                    answer(conn, k2.clone()).await;
                }
            })
        };
        for round in 1..=2u64 {
            initiate(&ep1, cfg1.clone(), &k1, "h2", g2).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (a, b) = (dp1.esp().unwrap(), dp2.esp().unwrap());
            assert_eq!((a.sas_in, a.sas_out), (round as usize, 1), "h1, round {round}");
            assert_eq!((b.sas_in, b.sas_out), (round as usize, 1), "h2, round {round}");
            assert_eq!((a.stats.sas_installed, b.stats.sas_installed), (2 * round, 2 * round));
        }
        server.await.unwrap();
        assert_eq!(k2.ok.load(Ordering::Relaxed), 2);
        // The renewal is h1's (it sorts first), not h2's; a peer that left loses its SAs.
        assert!(k2.due(Instant::now()).is_empty(), "h2 has keys and does not renew");
        let k3 = Keys::new("h3".into(), Duration::from_secs(600), Arc::new(Vec::new));
        k3.attach(dp1.clone());
        k3.peers
            .lock()
            .unwrap()
            .insert("h2".into(), Peer::new(std::net::Ipv4Addr::LOCALHOST.into()));
        assert!(k3.due(Instant::now()).is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(dp1.esp().unwrap().sas_in, 0, "h2 left: its SAs are gone");
    }

    #[tokio::test]
    async fn a_revocation_renews_every_pair_s_keys() {
        let g: SocketAddr = "10.0.0.2:7946".parse().unwrap();
        let k = Keys::new(
            "h1".into(),
            Duration::from_secs(600),
            Arc::new(move || vec![("h2".into(), g)]),
        );
        let now = Instant::now();
        assert_eq!(k.due(now).len(), 1, "no keys yet");
        k.done("h2", &Ok(()));
        k.keyed("h2");
        assert!(k.due(now).is_empty(), "keyed, and the interval has not passed");
        k.revocations(0);
        assert!(k.due(now).is_empty(), "no revocation yet");
        k.revocations(1);
        assert_eq!(k.due(now).len(), 1, "renewed at once after a revocation");
        k.done("h2", &Ok(()));
        k.keyed("h2");
        k.revocations(1);
        assert!(k.due(now).is_empty(), "the same revocation renews once");
        assert_eq!(
            k.due(now + Duration::from_secs(601)).len(),
            1,
            "and the interval renews"
        );
    }

    #[tokio::test]
    async fn a_stranger_of_the_cluster_gets_no_keys() {
        let ca = pki::new_ca("test", SystemTime::now()).unwrap();
        let (ep1, cfg1) = host(&ca, "h1");
        let (ep2, _) = host(&ca, "h2");
        let g2 = gossip(&ep2);
        let k1 = Keys::new(
            "h1".into(),
            Duration::from_secs(600),
            Arc::new(move || vec![("h2".into(), g2)]),
        );
        // h2 does not count h1 among its members.
        let k2 = Arc::new(Keys::new("h2".into(), Duration::from_secs(600), Arc::new(Vec::new)));
        let dp2 = dataplane();
        k1.attach(dataplane());
        k2.attach(dp2.clone());
        let server = tokio::spawn(async move {
            let conn = ep2.accept().await.unwrap().await.unwrap();
            answer(conn, k2.clone()).await;
            k2
        });
        assert!(initiate(&ep1, cfg1, &k1, "h2", g2).await.is_err());
        let k2 = server.await.unwrap();
        assert_eq!(k2.failed.load(Ordering::Relaxed), 1);
        assert_eq!(dp2.esp().unwrap().sas_in, 0);
    }
}
