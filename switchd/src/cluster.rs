//! The cluster driver: SWIM membership (control_plane::cluster::membership) over a UDP socket,
//! every datagram sealed under the cluster's gossip key. Datagrams that do not open under the
//! key (non-members, other clusters, tampering) are dropped and counted.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use control_plane::api::PeerResource;
use control_plane::cluster::membership::{Event, HostId, Membership};
use control_plane::cluster::records::{Body, Record, RecordKey};
use control_plane::cluster::{pki, seal::GossipKey};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// How often a host that knows no member announces itself to its join targets again.
const REJOIN_EVERY: Duration = Duration::from_secs(2);

/// What `--cluster-dir` and friends say.
pub struct ClusterConfig {
    /// The address other hosts reach this one at.
    pub advertise: IpAddr,
    /// Hosts to join (`HOST[:PORT]`, resolved at start).
    pub join: Vec<SocketAddr>,
    /// The gossip UDP port.
    pub port: u16,
}

/// This host's identity, checked against the cluster CA.
pub struct Credentials {
    /// The host name (the certificate's CN).
    pub name: String,
    /// The host's index in the cluster (from its certificate).
    pub index: u32,
    key: [u8; 32],
    tls: crate::sync::Tls,
}

fn read(dir: &Path, f: &str) -> io::Result<String> {
    std::fs::read_to_string(dir.join(f))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", dir.join(f).display())))
}

/// Loads and checks the cluster directory: the host certificate must verify against the CA.
pub fn load(dir: &Path) -> io::Result<Credentials> {
    let ca = read(dir, "ca.crt")?;
    let host = read(dir, "host.crt")?;
    let host_key = read(dir, "host.key")?;
    let id = pki::verify(&ca, &host, SystemTime::now())
        .map_err(|e| io::Error::other(format!("{}: host.crt {e}", dir.display())))?;
    let (name, index) = (id.name, id.index);
    let hex = read(dir, "gossip.key")?;
    let hex = hex.trim();
    let mut key = [0u8; 32];
    let ok = hex.len() == 64
        && key
            .iter_mut()
            .enumerate()
            .all(|(i, b)| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map(|v| *b = v).is_ok());
    if !ok {
        return Err(io::Error::other(format!(
            "{}/gossip.key must hold 64 hex digits (written by switchctl cluster cert)",
            dir.display()
        )));
    }
    Ok(Credentials {
        name,
        index,
        key,
        tls: crate::sync::Tls {
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
}

/// What the cluster tells the daemon.
pub enum Change {
    /// Records that are newer than what was known (from anyone, this host included).
    Records(Vec<Record>),
    /// A host was declared down: its endpoints are unreachable until it is back.
    HostDown(String),
    /// A host is alive (again): its endpoints as last known.
    HostUp(
        Vec<(
            control_plane::Id,
            std::sync::Arc<control_plane::cluster::records::EndpointRecord>,
        )>,
    ),
}

/// A running cluster driver.
#[derive(Clone)]
pub struct Handle {
    status: Arc<Mutex<Status>>,
    publish: mpsc::UnboundedSender<(RecordKey, Option<Body>)>,
    name: String,
    vtep: SocketAddr,
    sync: Arc<crate::sync::SyncStats>,
}

impl Handle {
    /// The members, this host first.
    pub fn peers(&self) -> Vec<PeerResource> {
        let s = self.status.lock().expect("lock poisoned");
        s.peers
            .iter()
            .enumerate()
            .map(|(i, p)| PeerResource {
                name: p.id.name.clone(),
                address: p.id.addr.to_string(),
                state: p.state.to_string(),
                incarnation: p.incarnation,
                last_heard_seconds: if i == 0 {
                    None
                } else {
                    s.heard.get(&p.id.addr).map(|t| t.elapsed().as_secs())
                },
                is_self: i == 0,
            })
            .collect()
    }

    /// Hands a local change to dissemination.
    pub fn publish(&self, key: RecordKey, body: Option<Body>) {
        if self.publish.send((key, body)).is_err() {
            tracing::error!("the cluster driver is gone; a change was not disseminated");
        }
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

    /// Gossip datagrams received, sent, and refused as malformed.
    pub fn gossip_counts(&self) -> (u64, u64, u64) {
        let s = self.status.lock().expect("lock poisoned");
        (s.gossip_rx, s.gossip_tx, s.gossip_refused)
    }
}

/// Starts the driver on `rt`; records that changed (from other hosts, or written here) go to
/// `changes`. `vxlan_port` is this host's VXLAN port, published with its endpoints.
pub fn start(
    rt: &tokio::runtime::Handle,
    cfg: ClusterConfig,
    creds: Credentials,
    vxlan_port: u16,
    changes: mpsc::UnboundedSender<Change>,
) -> io::Result<Handle> {
    let bind = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), cfg.port);
    let std_sock = std::net::UdpSocket::bind(bind)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind the gossip port {bind}: {e}")))?;
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
    getrandom::fill(&mut seed).map_err(|e| io::Error::other(format!("no random source: {e}")))?;
    let membership = Membership::new(me, u64::from_ne_bytes(seed));
    let status = Arc::new(Mutex::new(Status::default()));
    let (publish, publish_rx) = mpsc::unbounded_channel();
    let sync = Arc::new(crate::sync::SyncStats::default());
    let handle = Handle {
        status: status.clone(),
        publish,
        name: creds.name.clone(),
        vtep: SocketAddr::new(cfg.advertise, vxlan_port),
        sync: sync.clone(),
    };
    let sync_port = cfg
        .port
        .checked_add(1)
        .ok_or_else(|| io::Error::other("--gossip-port must be below 65535: anti-entropy uses the next port"))?;
    let quic = {
        let _guard = rt.enter();
        crate::sync::endpoint(&creds.tls, SocketAddr::new(IpAddr::from([0, 0, 0, 0]), sync_port))?
    };
    let (heard, heard_rx) = mpsc::unbounded_channel();
    let shared = crate::sync::Shared {
        records: membership.records_handle(),
        members: Arc::new(Mutex::new((membership.member_states(), membership.member_digest()))),
        heard,
    };
    let (sync_now, sync_now_rx) = mpsc::unbounded_channel();
    rt.spawn(crate::sync::serve(quic.clone(), shared.clone(), sync.clone()));
    rt.spawn(anti_entropy(
        quic,
        shared.clone(),
        handle.clone(),
        sync_port,
        sync_now_rx,
    ));
    let loops = Loops {
        publish: publish_rx,
        changes,
        sync_now,
        heard: heard_rx,
        members: shared.members,
    };
    let key = GossipKey::from_bytes(&creds.key);
    let join = cfg.join;
    rt.spawn(async move {
        match UdpSocket::from_std(std_sock) {
            Ok(sock) => run(sock, membership, key, join, status, loops).await,
            Err(e) => tracing::error!("gossip socket: {e}"),
        }
    });
    tracing::info!(name = %creds.name, advertise = %cfg.advertise, port = cfg.port, "cluster membership started");
    Ok(handle)
}

/// Every [`crate::sync::SYNC_EVERY`], a state exchange with one random live member; and one
/// at once with each member that comes up (it may have missed what was said meanwhile), with
/// member lists when it is the first this host hears of after being alone (a host joining
/// learns the whole membership at once, as memberlist's join does).
async fn anti_entropy(
    ep: quinn::Endpoint,
    shared: crate::sync::Shared,
    cluster: Handle,
    port: u16,
    mut now: mpsc::UnboundedReceiver<(String, SocketAddr, bool)>,
) {
    let mut tick = tokio::time::interval(crate::sync::SYNC_EVERY);
    let mut round = 0u64;
    loop {
        let chosen = tokio::select! {
            _ = tick.tick() => None,
            Some(peer) = now.recv() => Some(peer),
        };
        // A random alive member; one round in four a member declared down, whose list tells it
        // so if it is alive after all (a healed partition), and it rejoins.
        round += 1;
        let candidates: Vec<(String, SocketAddr)> = {
            let s = cluster.status.lock().expect("lock poisoned");
            let of = |state: &str| -> Vec<(String, SocketAddr)> {
                s.peers
                    .iter()
                    .skip(1)
                    .filter(|p| p.state == state)
                    .map(|p| (p.id.name.clone(), p.id.addr))
                    .collect()
            };
            let down = if round.is_multiple_of(4) {
                of("down")
            } else {
                Vec::new()
            };
            if down.is_empty() {
                of("alive")
            } else {
                down
            }
        };
        // Member lists ride along one exchange in six (about every 30 s, as memberlist's
        // push-pull) and with a member declared down; not with one that came up (SWIM told us
        // of it, and a thousand joining hosts would each send a thousand lists).
        let with_members = match &chosen {
            Some((_, _, first)) => *first,
            None => round.is_multiple_of(4) || round.is_multiple_of(6),
        };
        let (name, addr) = match chosen {
            Some((name, addr, _)) => (name, addr),
            None if candidates.is_empty() => continue,
            None => {
                let mut r = [0u8; 4];
                let _ = getrandom::fill(&mut r);
                candidates[u32::from_ne_bytes(r) as usize % candidates.len()].clone()
            }
        };
        let (name, addr) = (&name, &addr);
        let to = SocketAddr::new(addr.ip(), port);
        match tokio::time::timeout(
            Duration::from_secs(10),
            crate::sync::exchange(&ep, to, name, &shared, with_members),
        )
        .await
        {
            Ok(Ok(n)) => {
                cluster.sync.ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n > 0 {
                    tracing::info!(peer = %name, records = n, "anti-entropy: caught up");
                }
            }
            Ok(Err(e)) => {
                cluster.sync.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(peer = %name, "anti-entropy exchange failed: {e}");
            }
            Err(_) => {
                cluster.sync.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// The channels between the gossip loop and the rest of switchd.
struct Loops {
    /// Local changes to disseminate.
    publish: mpsc::UnboundedReceiver<(RecordKey, Option<Body>)>,
    /// What changed, for the daemon.
    changes: mpsc::UnboundedSender<Change>,
    /// Members to exchange state with at once.
    sync_now: mpsc::UnboundedSender<(String, SocketAddr, bool)>,
    /// Member lists heard in exchanges.
    heard: mpsc::UnboundedReceiver<Vec<control_plane::cluster::membership::MemberState>>,
    /// This host's member list, published for exchanges.
    members: Arc<Mutex<(Vec<control_plane::cluster::membership::MemberState>, u64)>>,
}

async fn run(
    sock: UdpSocket,
    mut m: Membership,
    key: GossipKey,
    join: Vec<SocketAddr>,
    status: Arc<Mutex<Status>>,
    loops: Loops,
) {
    let Loops {
        mut publish,
        changes,
        sync_now,
        mut heard,
        members,
    } = loops;
    let (timer_tx, mut timer_rx) = mpsc::unbounded_channel();
    let mut buf = vec![0u8; 65_535];
    let mut rejoin = tokio::time::interval(REJOIN_EVERY);
    let mut seen: HashMap<SocketAddr, PeerSeen> = HashMap::new();
    let mut refreshed = Instant::now().checked_sub(STATUS_EVERY).unwrap_or_else(Instant::now);
    // No member heard of since start or since the last one went: the next to come up gets a
    // full exchange, member lists included.
    let mut alone = true;
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                match key.open(&buf[..n]) {
                    Some(plain) => {
                        seen.insert(from, PeerSeen { last: Instant::now() });
                        let refused = m.handle_data(&plain).err();
                        let mut s = status.lock().expect("lock poisoned");
                        s.gossip_rx += 1;
                        if let Some(e) = refused {
                            s.gossip_refused += 1;
                            if s.gossip_refused.is_power_of_two() {
                                tracing::warn!(%from, count = s.gossip_refused, "gossip message refused: {e}");
                            }
                        }
                    }
                    None => {
                        let mut s = status.lock().expect("lock poisoned");
                        s.dropped_unauthenticated += 1;
                        if s.dropped_unauthenticated.is_power_of_two() {
                            tracing::warn!(%from, count = s.dropped_unauthenticated, "gossip datagram not sealed under this cluster's key: dropped");
                        }
                        continue;
                    }
                }
            }
            Some(t) = timer_rx.recv() => {
                m.handle_timer(t);
            }
            Some((k, body)) = publish.recv() => {
                let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                if let Err(e) = m.publish(k, body, now_ms) {
                    tracing::error!("cannot disseminate a record: {e}");
                }
            }
            Some(states) = heard.recv() => {
                m.apply_member_states(states);
            }
            _ = rejoin.tick() => {
                *members.lock().expect("lock poisoned") = (m.member_states(), m.member_digest());
                if m.num_members() == 0 {
                    for target in &join {
                        if *target != m.me().addr {
                            m.join(*target);
                        }
                    }
                }
            }
        }
        while let Some((to, data)) = m.poll_transmit() {
            let mut nonce = [0u8; 12];
            if getrandom::fill(&mut nonce).is_err() {
                continue;
            }
            let _ = sock.send_to(&key.seal(nonce, &data), to).await;
            status.lock().expect("lock poisoned").gossip_tx += 1;
        }
        while let Some((after, t)) = m.poll_timer() {
            let tx = timer_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(t);
            });
        }
        let mut changed_membership = false;
        while let Some(ev) = m.poll_event() {
            changed_membership = true;
            match ev {
                Event::Up(id) | Event::Renamed(_, id) => {
                    tracing::info!(peer = ?id, "peer alive");
                    let _ = sync_now.send((id.name.clone(), id.addr, alone));
                    alone = false;
                    let eps = m
                        .records()
                        .endpoints()
                        .filter(|(_, e)| *e.host == *id.name)
                        .map(|(k, e)| (k.clone(), e.clone()))
                        .collect();
                    let _ = changes.send(Change::HostUp(eps));
                }
                Event::Down(id) => {
                    tracing::warn!(peer = ?id, "peer declared down; its endpoints are withdrawn");
                    let _ = changes.send(Change::HostDown(id.name.clone()));
                }
                Event::Alone => {
                    alone = true;
                    tracing::info!("no other cluster member is known");
                }
                Event::Suspected(id) => {
                    tracing::warn!(peer = ?id, "peer suspected: a probe went unanswered; it is declared down unless it refutes within the suspicion timeout");
                }
                Event::Refuted(id) => {
                    tracing::info!(peer = ?id, "peer refuted a suspicion: alive");
                }
            }
        }
        let changed: Vec<Record> = {
            let mut r = m.records();
            let keys = r.take_changes();
            keys.iter().filter_map(|k| r.get(k).cloned()).collect()
        };
        if !changed.is_empty() {
            let _ = changes.send(Change::Records(changed));
        }
        // The API's copy of the member list: at once when membership changed, otherwise at
        // most once a second (a copy per datagram would cost O(members) each).
        if changed_membership || refreshed.elapsed() >= STATUS_EVERY {
            refreshed = Instant::now();
            let mut s = status.lock().expect("lock poisoned");
            s.peers = m.peers();
            s.heard = seen.iter().map(|(a, p)| (*a, p.last)).collect();
        }
    }
}

/// How stale the API's member list (suspicions, last heard) may be.
const STATUS_EVERY: Duration = Duration::from_secs(1);
