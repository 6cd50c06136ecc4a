//! The cluster driver: the sans-IO cluster node (control_plane::cluster::node) over a UDP
//! socket, every message signed by this host ([`control_plane::cluster::envelope`]) and every
//! datagram sealed under the cluster's gossip key, with tokio timers and the anti-entropy
//! exchanges it asks for over QUIC. Datagrams that do not open under the key (non-members,
//! other clusters, tampering), and messages whose sender's signature does not hold, are
//! dropped and counted. What the node decides (whom to sync with, what an event or a record
//! means) is not decided here.

pub mod keys;
pub mod sync;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use control_plane::api::PeerResource;
use control_plane::cluster::envelope::{self, Verdict};
use control_plane::cluster::membership::{Event, HostId};
use control_plane::cluster::node::{self, Node, Output, SyncPlan};
use control_plane::cluster::records::{Authority, Body, Record, RecordKey, Records};
use control_plane::cluster::space::{Claim, Range};
use control_plane::cluster::{pki, seal::GossipKey};
use control_plane::Id;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What `--cluster-dir` and friends say.
pub struct ClusterConfig {
    /// The address other hosts reach this one at.
    pub advertise: IpAddr,
    /// Hosts to join (`HOST[:PORT]`, resolved at start).
    pub join: Vec<SocketAddr>,
    /// The gossip UDP port.
    pub port: u16,
    /// How long sealed tunnels' keys live.
    pub rekey: Duration,
}

/// This host's identity, checked against the cluster CA.
pub struct Credentials {
    /// The host name (the certificate's CN).
    pub name: String,
    /// The host's index in the cluster (from its certificate).
    pub index: u32,
    key: [u8; 32],
    tls: crate::cluster::sync::Tls,
    /// The host certificate in DER, as the host publishes it.
    cert_der: Vec<u8>,
    /// Its public key, which checks what the host signs.
    public_key: control_plane::cluster::sign::PublicKey,
}

impl Credentials {
    /// A signer with the host certificate's key (checked to load when the credentials were).
    fn signer(&self) -> control_plane::cluster::sign::Signer {
        control_plane::cluster::sign::Signer::from_pem(&self.tls.key).expect("checked by load")
    }

    /// The authority that signs this host's records and checks the others'.
    fn authority(&self) -> Arc<control_plane::cluster::certs::CertAuthority> {
        Arc::new(control_plane::cluster::certs::CertAuthority::new(
            self.signer(),
            self.tls.ca.clone(),
            &self.name,
            &self.cert_der,
            self.public_key.clone(),
        ))
    }
}

/// Why a cluster directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The host certificate does not verify against the CA.
    #[error("{}: host.crt {reason}", dir.display())]
    Certificate {
        /// The cluster directory.
        dir: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The gossip key is not 64 hex digits.
    #[error("{}/gossip.key must hold 64 hex digits (written by switchctl cluster cert)", dir.display())]
    GossipKey {
        /// The cluster directory.
        dir: std::path::PathBuf,
    },
}

fn read(dir: &Path, f: &str) -> Result<String, CredentialsError> {
    let path = dir.join(f);
    std::fs::read_to_string(&path).map_err(|source| CredentialsError::Read { path, source })
}

/// Loads and checks the cluster directory: the host certificate must verify against the CA.
///
/// # Errors
/// [`CredentialsError`]: a file missing or unreadable, a certificate the CA did not sign or
/// out of date, a malformed gossip key.
pub fn load(dir: &Path) -> Result<Credentials, CredentialsError> {
    let ca = read(dir, "ca.crt")?;
    let host = read(dir, "host.crt")?;
    let host_key = read(dir, "host.key")?;
    let id = pki::verify(&ca, &host, SystemTime::now()).map_err(|e| CredentialsError::Certificate {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (name, index, public_key) = (id.name, id.index, id.key);
    let bad_key = |e: pki::PkiError| CredentialsError::Certificate {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let signer = control_plane::cluster::sign::Signer::from_pem(&host_key).map_err(bad_key)?;
    if signer.public_key() != public_key {
        return Err(CredentialsError::Certificate {
            dir: dir.to_path_buf(),
            reason: "does not hold the public key of host.key: they are not one pair".into(),
        });
    }
    let cert_der = pki::der(&host, "host.crt").map_err(bad_key)?;
    let key: [u8; 32] = control_plane::cluster::hex::decode(read(dir, "gossip.key")?.trim())
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| CredentialsError::GossipKey { dir: dir.to_path_buf() })?;
    Ok(Credentials {
        name,
        index,
        key,
        cert_der,
        public_key,
        tls: crate::cluster::sync::Tls {
            ca,
            cert: host,
            key: host_key,
        },
    })
}

struct PeerSeen {
    last: Instant,
}

/// What the API reads of the cluster.
#[derive(Default)]
pub struct Status {
    peers: Vec<control_plane::cluster::membership::Peer>,
    heard: HashMap<SocketAddr, Instant>,
    /// Datagrams that did not open under the gossip key.
    pub dropped_unauthenticated: u64,
    /// Gossip datagrams received (authenticated) and sent.
    pub gossip_rx: u64,
    /// Gossip datagrams sent.
    pub gossip_tx: u64,
    /// Authenticated datagrams membership refused as malformed.
    pub gossip_refused: u64,
    /// Authenticated datagrams refused as replays or sent outside the replay window.
    pub gossip_stale: u64,
    /// Gossip messages from revoked hosts, ignored.
    pub gossip_revoked: u64,
    /// Messages whose sender's signature did not hold, or certificates the CA did not issue.
    pub gossip_forged: u64,
    /// Messages from senders whose certificate was not known yet.
    pub gossip_unverified: u64,
    /// Messages refused at their signature because the CA revoked their sender (the node
    /// counts those that reach it).
    revoked_refused: u64,
    /// New members refused because the member table was full.
    pub members_refused: u64,
}

/// A running cluster driver.
#[derive(Clone)]
pub struct Cluster {
    status: Arc<Mutex<Status>>,
    to_node: mpsc::UnboundedSender<ToNode>,
    /// Anti-entropy jobs.
    jobs: mpsc::UnboundedSender<Job>,
    /// The node's records, for claims this host writes itself (their version at once).
    records: Arc<Mutex<Records>>,
    name: String,
    vtep: SocketAddr,
    sync: Arc<crate::cluster::sync::SyncStats>,
    /// The CA certificate (PEM), which revocations are checked against.
    ca: String,
    /// Who signs and checks records, and knows which hosts the CA revoked.
    authority: Arc<control_plane::cluster::certs::CertAuthority>,
    /// The key exchanges of sealed tunnels.
    keys: Arc<keys::Keys>,
}

impl Cluster {
    /// The members, this host first.
    pub fn peers(&self) -> Vec<PeerResource> {
        let s = self.status.lock().expect("lock poisoned");
        let revoked = self.authority.revoked();
        let mut all: Vec<PeerResource> = s
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| PeerResource {
                name: p.id.name.clone(),
                address: p.id.addr.to_string(),
                state: if revoked.contains(&p.id.name) {
                    "revoked".to_string()
                } else {
                    p.state.to_string()
                },
                incarnation: p.incarnation,
                last_heard_seconds: if i == 0 {
                    None
                } else {
                    s.heard.get(&p.id.addr).map(|t| t.elapsed().as_secs())
                },
                is_self: i == 0,
            })
            .collect();
        // Revoked hosts this host has not met (it heard of them, or restarted since).
        for host in revoked {
            if !all.iter().any(|p| p.name == host) {
                all.push(PeerResource {
                    name: host,
                    address: String::new(),
                    state: "revoked".into(),
                    incarnation: 0,
                    last_heard_seconds: None,
                    is_self: false,
                });
            }
        }
        all
    }

    /// Hands a local change to dissemination.
    pub fn publish(&self, key: RecordKey, body: Option<Body>) {
        self.tell(ToNode::Publish(key, body));
    }

    /// Tells the node the host has an overlay network's ports up: its remote endpoints go in
    /// place (as [`Output::Dataplane`] effects).
    pub fn network_up(&self, network: Id) {
        self.tell(ToNode::NetworkUp(network));
    }

    /// Tells the node the host took a network's ports down.
    pub fn network_down(&self, network: Id) {
        self.tell(ToNode::NetworkDown(network));
    }

    /// Writes a claim of this host's: `owner` owns `range` of `network`. The record is in the
    /// node's records at once, with its version; [`Cluster::spread`] or [`Cluster::grant`]
    /// sends it.
    pub fn write_claim(&self, network: &Id, range: Range, owner: &str) -> Record {
        let key = RecordKey::Claim {
            network: network.clone(),
            start: range.0,
            end: range.1,
        };
        let now_ms = now_ms();
        self.records
            .lock()
            .expect("lock poisoned")
            .local(key, Some(Body::Claim(owner.into())), now_ms)
    }

    /// Takes the claims this host wrote, kept from before a restart, into the node's records
    /// (signed again) and spreads them.
    pub fn restore_claims(&self, network: &Id, claims: impl IntoIterator<Item = (Range, Claim)>) {
        for (range, c) in claims {
            let key = RecordKey::Claim {
                network: network.clone(),
                start: range.0,
                end: range.1,
            };
            // Only this host's own claims: another's only its writer can sign, and it stored
            // and spreads them itself.
            let restored =
                self.records
                    .lock()
                    .expect("lock poisoned")
                    .restore(key, c.version, Some(Body::Claim(c.owner)));
            if let Some(r) = restored {
                self.spread(r);
            }
        }
    }

    /// The claims on `network` the node knows (for a network adopted after its claims came).
    pub fn claims_of(&self, network: &Id) -> Vec<(Range, Claim)> {
        self.records.lock().expect("lock poisoned").claims_of(network)
    }

    /// Spreads a record written with [`Cluster::write_claim`].
    pub fn spread(&self, r: Record) {
        self.tell(ToNode::Spread(Box::new(r)));
    }

    /// Sends a claim written with [`Cluster::write_claim`] to `to`, which asked for it.
    pub fn grant(&self, network: Id, r: Record, to: HostId) {
        self.tell(ToNode::Grant {
            network,
            record: Box::new(r),
            to,
        });
    }

    /// Tells `to` this host has no address of `network` to give.
    pub fn no_space(&self, network: Id, to: HostId) {
        self.tell(ToNode::NoSpace { network, to });
    }

    /// Asks `donor` for `count` addresses of `network`, or the one at offset `at`.
    pub fn want(&self, network: Id, count: u32, at: Option<u32>, donor: HostId) {
        self.tell(ToNode::Want {
            network,
            count,
            at,
            donor,
        });
    }

    /// Runs an anti-entropy exchange with every member alive now and waits for them (from a
    /// blocking thread): afterwards this host holds every record any of them held.
    ///
    /// # Errors
    /// The members that could not be reached, with why.
    pub fn exchange_with_all(&self) -> Result<(), ExchangeError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.jobs.send(Job::All(self.alive(), tx)).is_err() {
            return Err(ExchangeError::Gone);
        }
        rx.blocking_recv().unwrap_or(Err(ExchangeError::Gone))
    }

    /// The members alive now, this host excluded, with their identities.
    pub fn alive(&self) -> Vec<HostId> {
        let s = self.status.lock().expect("lock poisoned");
        s.peers
            .iter()
            .skip(1)
            .filter(|p| p.state == "alive")
            .map(|p| p.id.clone())
            .collect()
    }

    fn tell(&self, m: ToNode) {
        if self.to_node.send(m).is_err() {
            tracing::error!("the cluster driver is gone; a change was not disseminated");
        }
    }

    /// Sealed tunnels' keys go to `dp` from now on.
    pub fn attach_dataplane(&self, dp: crate::dataplane::Handle) {
        self.keys.attach(dp);
    }

    /// Key exchanges of sealed tunnels completed and failed.
    pub fn key_exchanges(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.keys.ok.load(Ordering::Relaxed),
            self.keys.failed.load(Ordering::Relaxed),
        )
    }

    /// This host's name in the cluster.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where other hosts send this host's VXLAN frames.
    pub fn vtep(&self) -> SocketAddr {
        self.vtep
    }

    /// Anti-entropy exchanges completed and failed.
    pub fn sync_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.sync.ok.load(Ordering::Relaxed),
            self.sync.failed.load(Ordering::Relaxed),
        )
    }

    /// Datagrams dropped as unauthenticated.
    pub fn dropped_unauthenticated(&self) -> u64 {
        self.status.lock().expect("lock poisoned").dropped_unauthenticated
    }

    /// Gossip messages from hosts the CA revoked, ignored.
    pub fn gossip_revoked(&self) -> u64 {
        let s = self.status.lock().expect("lock poisoned");
        s.gossip_revoked + s.revoked_refused
    }

    /// Gossip messages whose sender's signature did not hold, and messages from senders whose
    /// certificate was not known yet.
    pub fn gossip_forged(&self) -> u64 {
        self.status.lock().expect("lock poisoned").gossip_forged
    }

    /// Messages from senders whose certificate was not known yet (asked for, not taken).
    pub fn gossip_unverified(&self) -> u64 {
        self.status.lock().expect("lock poisoned").gossip_unverified
    }

    /// Authenticated gossip datagrams refused as replays or sent outside the window.
    pub fn gossip_stale(&self) -> u64 {
        self.status.lock().expect("lock poisoned").gossip_stale
    }

    /// New members refused because the member table was full.
    pub fn members_refused(&self) -> u64 {
        self.status.lock().expect("lock poisoned").members_refused
    }

    /// Spreads the CA's revocation `r`, once it holds under the CA: every host then refuses
    /// the revoked host's certificate, records, messages and handshakes, and withdraws its
    /// endpoints.
    ///
    /// # Errors
    /// [`pki::PkiError::Rejected`]: the CA did not sign it, or it revokes this host.
    pub fn revoke(&self, r: &pki::Revocation) -> Result<(), pki::PkiError> {
        pki::verify_revocation(&self.ca, r)?;
        if r.host == self.name {
            return Err(pki::PkiError::Rejected(format!(
                "{} is this host: revoke a host from another one",
                r.host
            )));
        }
        let body = Body::Revocation {
            issued_ms: r.issued_ms,
            sig: r.sig.clone().into(),
        };
        self.publish(RecordKey::Revoked(r.host.as_str().into()), Some(body));
        Ok(())
    }

    /// Records refused for a counter too far ahead of this host's clock.
    pub fn records_ahead(&self) -> u64 {
        self.records.lock().expect("lock poisoned").ahead()
    }

    /// Records refused because their origin's signature did not hold, and records received
    /// before their origin's certificate (held until it comes, [`control_plane::cluster::records::PENDING_MAX`] at most).
    pub fn records_unsigned(&self) -> (u64, u64) {
        let r = self.records.lock().expect("lock poisoned");
        (r.forged(), r.unknown_origin())
    }

    /// Gossip datagrams received, sent, and refused as malformed.
    pub fn gossip_counts(&self) -> (u64, u64, u64) {
        let s = self.status.lock().expect("lock poisoned");
        (s.gossip_rx, s.gossip_tx, s.gossip_refused)
    }
}

/// Starts the driver on `rt`; what the node asks of the host (networks, remote endpoints,
/// hosts down) goes to `changes`. `vxlan_port` is this host's VXLAN port, published with its endpoints.
pub fn start(
    rt: &tokio::runtime::Handle,
    cfg: ClusterConfig,
    creds: Credentials,
    vxlan_port: u16,
    changes: mpsc::UnboundedSender<Vec<Output>>,
) -> io::Result<Cluster> {
    // On the advertise address, so that a message speaks for the address it comes from; the
    // address may come up after switchd does (IP_FREEBIND).
    let bind = SocketAddr::new(cfg.advertise, cfg.port);
    let std_sock =
        bind_free(bind).map_err(|e| io::Error::new(e.kind(), format!("cannot bind the gossip port {bind}: {e}")))?;
    std_sock.set_nonblocking(true)?;
    let bump = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let me = HostId {
        name: creds.name.clone(),
        addr: SocketAddr::new(cfg.advertise, cfg.port),
        bump,
    };
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| {
        // The system's random source failed: its errno, if it gave one.
        e.raw_os_error().map_or(
            io::Error::from(io::ErrorKind::Unsupported),
            io::Error::from_raw_os_error,
        )
    })?;
    let mut node = Node::new(me, u64::from_ne_bytes(seed), cfg.join, node::Config::default());
    // Records are signed with the certificate's key, and the certificate goes out first.
    let authority = creds.authority();
    node.authenticate(authority.clone(), creds.cert_der.clone().into(), now_ms());
    let status = Arc::new(Mutex::new(Status::default()));
    let (to_node, to_node_rx) = mpsc::unbounded_channel();
    let sync = Arc::new(crate::cluster::sync::SyncStats::default());
    let (sync_now, sync_now_rx) = mpsc::unbounded_channel();
    let members: keys::Members = {
        let (status, authority) = (status.clone(), authority.clone());
        Arc::new(move || {
            let s = status.lock().expect("lock poisoned");
            s.peers
                .iter()
                .skip(1)
                .filter(|p| p.state != "down" && !authority.is_revoked(&p.id.name))
                .map(|p| (p.id.name.clone(), p.id.addr))
                .collect()
        })
    };
    let keys = Arc::new(keys::Keys::new(creds.name.clone(), cfg.rekey, members));
    let handle = Cluster {
        keys: keys.clone(),
        jobs: sync_now.clone(),
        status: status.clone(),
        to_node,
        records: node.membership().records_handle(),
        name: creds.name.clone(),
        vtep: SocketAddr::new(cfg.advertise, vxlan_port),
        sync: sync.clone(),
        ca: creds.tls.ca.clone(),
        authority: authority.clone(),
    };
    let sync_port = cfg
        .port
        .checked_add(1)
        .ok_or_else(|| io::Error::other("--gossip-port must be below 65535: anti-entropy uses the next port"))?;
    let (quic, keys_client) = {
        let _guard = rt.enter();
        let authority = authority.clone();
        let revoked: crate::cluster::sync::Revoked = Arc::new(move |h: &str| authority.is_revoked(h));
        crate::cluster::sync::endpoint(
            &creds.tls,
            // Every address of the underlay's family.
            SocketAddr::new(
                match cfg.advertise {
                    IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
                    IpAddr::V6(_) => IpAddr::from([0u16; 8]),
                },
                sync_port,
            ),
            revoked,
        )?
    };
    let (heard, heard_rx) = mpsc::unbounded_channel();
    let shared = crate::cluster::sync::Shared {
        records: node.membership().records_handle(),
        members: Arc::new(Mutex::new((
            node.membership().member_states(),
            node.membership().member_digest(),
        ))),
        heard,
    };
    rt.spawn(crate::cluster::sync::serve(
        quic.clone(),
        shared.clone(),
        sync.clone(),
        keys.clone(),
    ));
    let revocations = {
        let authority = authority.clone();
        move || authority.revoked().len() as u64
    };
    rt.spawn(keys::run(quic.clone(), keys_client, keys.clone(), revocations));
    rt.spawn(anti_entropy(
        quic,
        shared.clone(),
        handle.clone(),
        sync_port,
        sync_now_rx,
    ));
    let loops = Loops {
        to_node: to_node_rx,
        changes,
        sync_now,
        heard: heard_rx,
        members: shared.members,
    };
    let key = GossipKey::from_bytes(&creds.key);
    let signer = Signer {
        auth: authority.clone(),
        name: creds.name.clone(),
        cert: creds.cert_der.clone(),
    };
    // What a signed envelope takes of a datagram goes from what a message may take.
    node.set_max_message(
        control_plane::cluster::membership::MAX_PACKET
            - control_plane::cluster::envelope::overhead(&creds.name, authority.sign(&[]).len()),
    );
    rt.spawn(async move {
        match UdpSocket::from_std(std_sock) {
            Ok(sock) => run(sock, node, (key, signer), status, loops).await,
            Err(e) => tracing::error!("gossip socket: {e}"),
        }
    });
    tracing::info!(name = %creds.name, advertise = %cfg.advertise, port = cfg.port, "cluster membership started");
    Ok(handle)
}

/// An anti-entropy job: one exchange the node planned, or one with each of several members
/// whose outcome someone waits for.
enum Job {
    Plan(SyncPlan),
    All(Vec<HostId>, tokio::sync::oneshot::Sender<Result<(), ExchangeError>>),
}

/// Why an exchange with every live member did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The cluster driver stopped.
    #[error("the cluster driver is gone")]
    Gone,
    /// Members that could not be reached, with why.
    #[error("cannot reach {0}")]
    Unreached(String),
}

/// Runs the anti-entropy exchanges asked for, one at a time.
async fn anti_entropy(
    ep: quinn::Endpoint,
    shared: crate::cluster::sync::Shared,
    cluster: Cluster,
    port: u16,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Plan(plan) => {
                let _ = exchange_once(&ep, &shared, &cluster, port, &plan.peer, plan.members).await;
            }
            Job::All(peers, done) => {
                let mut failed = Vec::new();
                for p in &peers {
                    if let Err(e) = exchange_once(&ep, &shared, &cluster, port, p, false).await {
                        failed.push(format!("{}: {e}", p.name));
                    }
                }
                let _ = done.send(if failed.is_empty() {
                    Ok(())
                } else {
                    Err(ExchangeError::Unreached(failed.join("; ")))
                });
            }
        }
    }
}

/// One exchange with `peer`, counted; what failed, in words.
async fn exchange_once(
    ep: &quinn::Endpoint,
    shared: &crate::cluster::sync::Shared,
    cluster: &Cluster,
    port: u16,
    peer: &HostId,
    members: bool,
) -> Result<(), String> {
    let name = &peer.name;
    let to = SocketAddr::new(peer.addr.ip(), port);
    let done = tokio::time::timeout(
        Duration::from_secs(10),
        crate::cluster::sync::exchange(ep, to, name, shared, members),
    )
    .await;
    match done {
        Ok(Ok(n)) => {
            cluster.sync.ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n > 0 {
                tracing::info!(peer = %name, records = n, "anti-entropy: caught up");
            }
            Ok(())
        }
        Ok(Err(e)) => {
            cluster.sync.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(peer = %name, "anti-entropy exchange failed: {e}");
            Err(e.to_string())
        }
        Err(_) => {
            cluster.sync.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err("no answer within 10 s".into())
        }
    }
}

/// What the daemon tells the node, in order.
enum ToNode {
    /// A local change to disseminate.
    Publish(RecordKey, Option<Body>),
    /// An overlay network's ports are up here.
    NetworkUp(Id),
    /// A network's ports are gone here.
    NetworkDown(Id),
    /// Spread a record written into the records directly.
    Spread(Box<Record>),
    /// Send a claim written into the records to the host that asked, and spread it.
    Grant {
        network: Id,
        record: Box<Record>,
        to: HostId,
    },
    /// Tell a host that asked that there is nothing to give.
    NoSpace { network: Id, to: HostId },
    /// Ask a host for addresses.
    Want {
        network: Id,
        count: u32,
        at: Option<u32>,
        donor: HostId,
    },
}

/// The channels between the gossip loop and the rest of switchd.
struct Loops {
    /// What the daemon tells the node.
    to_node: mpsc::UnboundedReceiver<ToNode>,
    /// What the node asks of the host, for the daemon.
    changes: mpsc::UnboundedSender<Vec<Output>>,
    /// Exchanges to run.
    sync_now: mpsc::UnboundedSender<Job>,
    /// Member lists heard in exchanges.
    heard: mpsc::UnboundedReceiver<Vec<control_plane::cluster::membership::MemberState>>,
    /// This host's member list, published for exchanges.
    members: Arc<Mutex<(Vec<control_plane::cluster::membership::MemberState>, u64)>>,
}

/// A UDP socket bound to `addr`, which need not be up yet on this host.
fn bind_free(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use nix::sys::socket::{bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::IpFreebind, &true)?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(addr))?;
    Ok(std::net::UdpSocket::from(fd))
}

/// Who signs this host's messages, and the certificate that checks them.
struct Signer {
    auth: Arc<control_plane::cluster::certs::CertAuthority>,
    name: String,
    cert: Vec<u8>,
}

/// How often this host's certificate goes unasked to an address it sends to.
const CERT_AGAIN: Duration = Duration::from_secs(600);
/// How often an address is asked for its sender's certificate, or answered with this host's.
const CERT_PACE: Duration = Duration::from_secs(1);
/// Certificates answered per second, and in a burst, to all askers together: what asks from
/// many (forged) addresses can make this host send.
const CERT_ANSWERS: (u64, u64) = (200, 1_000);

/// When something was last done for each address, for at most [`HEARD_MAX`] addresses (the
/// one done for least recently is forgotten).
#[derive(Default)]
struct Pace(HashMap<SocketAddr, Instant>);

impl Pace {
    /// Whether it is due for `a` (never done, or `every` ago); noted as done now when it is.
    fn due(&mut self, a: SocketAddr, every: Duration) -> bool {
        let now = Instant::now();
        if self.0.get(&a).is_some_and(|t| now.duration_since(*t) < every) {
            return false;
        }
        if self.0.len() >= HEARD_MAX && !self.0.contains_key(&a) {
            if let Some(oldest) = self.0.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a) {
                self.0.remove(&oldest);
            }
        }
        self.0.insert(a, now);
        true
    }
}

/// What pacing the certificate traffic keeps.
#[derive(Default)]
struct CertPaces {
    /// This host's certificate sent ahead of a message.
    sent: Pace,
    /// A sender asked for its certificate.
    asked: Pace,
    /// An asker answered.
    answered: Pace,
    /// Answers left in the bucket, and when it was last filled.
    tokens: (u64, Option<Instant>),
}

impl CertPaces {
    /// Whether an answer to `a` may go now.
    fn answer(&mut self, a: SocketAddr) -> bool {
        let now = Instant::now();
        let (rate, burst) = CERT_ANSWERS;
        let (tokens, last) = &mut self.tokens;
        let earned = last.map_or(burst, |t| now.duration_since(t).as_millis() as u64 * rate / 1000);
        if earned > 0 {
            *tokens = (*tokens + earned).min(burst);
            *last = Some(now);
        }
        if *tokens == 0 || !self.answered.due(a, CERT_PACE) {
            return false;
        }
        *tokens -= 1;
        true
    }
}

/// Seals `payload` under `key`, sent now, and sends it to `to`.
async fn send_sealed(sock: &UdpSocket, key: &GossipKey, to: SocketAddr, payload: &[u8]) {
    let mut nonce = [0u8; 12];
    if getrandom::fill(&mut nonce).is_ok() {
        let _ = sock.send_to(&key.seal(nonce, now_ms(), payload), to).await;
    }
}

async fn run(
    sock: UdpSocket,
    mut node: Node,
    (key, signer): (GossipKey, Signer),
    status: Arc<Mutex<Status>>,
    loops: Loops,
) {
    let Loops {
        mut to_node,
        changes,
        sync_now,
        mut heard,
        members,
    } = loops;
    let (timer_tx, mut timer_rx) = mpsc::unbounded_channel();
    let mut buf = vec![0u8; 65_535];
    let mut rejoin = tokio::time::interval(node.config().rejoin_every);
    let mut sync = tokio::time::interval(node.config().sync_every);
    // The first tick of an interval is at once: the first round waits a period.
    sync.reset();
    let mut seen: HashMap<SocketAddr, PeerSeen> = HashMap::new();
    let mut replay = control_plane::cluster::seal::Replay::default();
    let mut certs = CertPaces::default();
    let mut refreshed = Instant::now().checked_sub(STATUS_EVERY).unwrap_or_else(Instant::now);
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let got = {
                    let revoked = |h: &str| signer.auth.is_revoked(h);
                    let mut g = Gossip { revoked: &revoked, node: &mut node, replay: &mut replay, seen: &mut seen, status: &status };
                    g.receive(&key, &*signer.auth, from, &buf[..n])
                };
                match got {
                    Received::Taken => {}
                    Received::Dropped => continue,
                    Received::Unknown => {
                        if certs.asked.due(from, CERT_PACE) {
                            send_sealed(&sock, &key, from, &envelope::who_are_you()).await;
                        }
                        continue;
                    }
                    Received::WhoAreYou => {
                        if certs.answer(from) {
                            send_sealed(&sock, &key, from, &envelope::cert(&signer.cert)).await;
                        }
                        continue;
                    }
                }
            }
            Some(t) = timer_rx.recv() => {
                node.handle_timer(t);
            }
            Some(m) = to_node.recv() => match m {
                ToNode::Publish(k, body) => {
                    if let Err(e) = node.publish(k, body, now_ms()) {
                        tracing::error!("cannot disseminate a record: {e}");
                    }
                }
                ToNode::NetworkUp(id) => node.network_up(id),
                ToNode::NetworkDown(id) => node.network_down(&id),
                ToNode::Spread(r) => node.spread(&r),
                ToNode::Grant { network, record, to } => node.grant_written(network, &record, &to),
                ToNode::NoSpace { network, to } => node.no_space(network, &to),
                ToNode::Want {
                    network,
                    count,
                    at,
                    donor,
                } => node.want_space(network, count, at, &donor),
            },
            Some(states) = heard.recv() => {
                node.apply_member_states(states);
            }
            _ = rejoin.tick() => {
                let m = node.membership();
                *members.lock().expect("lock poisoned") = (m.member_states(), m.member_digest());
                node.rejoin();
            }
            _ = sync.tick() => {
                let mut r = [0u8; 8];
                let _ = getrandom::fill(&mut r);
                if let Some(plan) = node.sync_round(u64::from_ne_bytes(r)) {
                    let _ = sync_now.send(Job::Plan(plan));
                }
            }
        }
        while let Some((to, data)) = node.poll_transmit() {
            // The certificate first, to an address not sent it lately: its message is then
            // taken at once rather than asked about.
            if certs.sent.due(to, CERT_AGAIN) {
                send_sealed(&sock, &key, to, &envelope::cert(&signer.cert)).await;
            }
            let mut nonce = [0u8; 12];
            if getrandom::fill(&mut nonce).is_err() {
                continue;
            }
            let now = now_ms();
            let signed = envelope::signed(&*signer.auth, &signer.name, &nonce, now, &data);
            let _ = sock.send_to(&key.seal(nonce, now, &signed), to).await;
            status.lock().expect("lock poisoned").gossip_tx += 1;
        }
        while let Some((after, t)) = node.poll_timer() {
            let tx = timer_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(t);
            });
        }
        let mut changed_membership = false;
        let mut for_host = Vec::new();
        while let Some(out) = node.poll_output() {
            match out {
                Output::Member(ev) => {
                    changed_membership = true;
                    log_event(&ev);
                }
                Output::Sync(plan) => {
                    let _ = sync_now.send(Job::Plan(plan));
                }
                other => for_host.push(other),
            }
        }
        if !for_host.is_empty() {
            let _ = changes.send(for_host);
        }
        // The API's copy of the member list: at once when membership changed, otherwise at
        // most once a second (a copy per datagram would cost O(members) each).
        if changed_membership || refreshed.elapsed() >= STATUS_EVERY {
            refreshed = Instant::now();
            let mut s = status.lock().expect("lock poisoned");
            s.peers = node.membership().peers();
            s.members_refused = node.membership().refused_members();
            s.gossip_revoked = node.membership().revoked_dropped();
            s.heard = seen.iter().map(|(a, p)| (*a, p.last)).collect();
        }
    }
}

/// What a received gossip datagram goes through.
struct Gossip<'a> {
    /// Whether the CA revoked a host.
    revoked: &'a (dyn Fn(&str) -> bool + Sync),
    node: &'a mut Node,
    replay: &'a mut control_plane::cluster::seal::Replay,
    seen: &'a mut HashMap<SocketAddr, PeerSeen>,
    status: &'a Mutex<Status>,
}

/// What became of a received datagram.
enum Received {
    /// Its message went to the node.
    Taken,
    /// Refused (counted), or a certificate learned: nothing more to do.
    Dropped,
    /// A message from a host whose certificate is not known: ask it.
    Unknown,
    /// A host asks for this host's certificate.
    WhoAreYou,
}

impl Gossip<'_> {
    fn revoked(&self, host: &str) -> bool {
        (self.revoked)(host)
    }

    /// Opens `datagram` from `from`, refuses a replay, checks its sender's signature with
    /// `auth`, and hands the message to the node; what else it was otherwise (each refusal
    /// counted).
    fn receive(
        &mut self,
        key: &GossipKey,
        auth: &dyn control_plane::cluster::records::Authority,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Received {
        let count = |field: fn(&mut Status) -> &mut u64, what: &dyn std::fmt::Display| {
            let mut s = self.status.lock().expect("lock poisoned");
            let n = field(&mut s);
            *n += 1;
            if n.is_power_of_two() {
                tracing::warn!(%from, count = *n, "{what}");
            }
        };
        let Some(d) = key.open(datagram) else {
            count(
                |s| &mut s.dropped_unauthenticated,
                &"gossip datagram not sealed under this cluster's key: dropped",
            );
            return Received::Dropped;
        };
        let now = now_ms();
        if let Err(e) = self.replay.admit(&d, now) {
            count(|s| &mut s.gossip_stale, &format_args!("gossip datagram refused: {e}"));
            return Received::Dropped;
        }
        let (name, message) = match envelope::open(auth, &d, now) {
            Verdict::Message { name, message } => (name, message),
            Verdict::Unknown { name } => {
                count(
                    |s| &mut s.gossip_unverified,
                    &format_args!("gossip message from {name}, whose certificate is not known yet: asked for it"),
                );
                return Received::Unknown;
            }
            Verdict::WhoAreYou => return Received::WhoAreYou,
            Verdict::Cert => return Received::Dropped,
            Verdict::Forged { name } if self.revoked(&name) => {
                self.status.lock().expect("lock poisoned").revoked_refused += 1;
                return Received::Dropped;
            }
            Verdict::Forged { name } => {
                count(
                    |s| &mut s.gossip_forged,
                    &format_args!(
                        "gossip message in the name of {name} whose signature or certificate does not hold: dropped"
                    ),
                );
                return Received::Dropped;
            }
            Verdict::Malformed => {
                count(|s| &mut s.gossip_refused, &"gossip datagram of no known form: dropped");
                return Received::Dropped;
            }
        };
        heard_from(self.seen, from);
        let refused = self.node.handle_signed(message, &name, from, now).err();
        self.status.lock().expect("lock poisoned").gossip_rx += 1;
        if let Some(e) = refused {
            count(|s| &mut s.gossip_refused, &format_args!("gossip message refused: {e}"));
        }
        Received::Taken
    }
}

/// Most sources of gossip remembered for `cluster peers` (last heard): beyond, the one heard
/// least recently is forgotten, so sources that change with every datagram cannot grow it.
const HEARD_MAX: usize = 4_096;

/// Notes that gossip came from `from` now.
fn heard_from(seen: &mut HashMap<SocketAddr, PeerSeen>, from: SocketAddr) {
    if seen.len() >= HEARD_MAX && !seen.contains_key(&from) {
        if let Some(oldest) = seen.iter().min_by_key(|(_, p)| p.last).map(|(a, _)| *a) {
            seen.remove(&oldest);
        }
    }
    seen.insert(from, PeerSeen { last: Instant::now() });
}

/// This host's wall clock, in milliseconds since the epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn log_event(ev: &Event) {
    match ev {
        Event::Up(id) | Event::Renamed(_, id) => tracing::info!(peer = ?id, "peer alive"),
        Event::Down(id) => tracing::warn!(peer = ?id, "peer declared down; its endpoints are withdrawn"),
        Event::Alone => tracing::info!("no other cluster member is known"),
        Event::Suspected(id) => {
            tracing::warn!(peer = ?id, "peer suspected: a probe went unanswered; it is declared down unless it refutes within the suspicion timeout")
        }
        Event::Refuted(id) => tracing::info!(peer = ?id, "peer refuted a suspicion: alive"),
        Event::OtherFamily(id) => tracing::error!(
            peer = ?id,
            "a host of the other address family was heard of and refused: a cluster's underlay is all IPv4 or all IPv6; restart it with an --advertise address of this host's family"
        ),
    }
}

/// How stale the API's member list (suspicions, last heard) may be.
const STATUS_EVERY: Duration = Duration::from_secs(1);
