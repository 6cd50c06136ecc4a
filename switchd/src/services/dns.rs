//! The embedded DNS servers: one UDP and one TCP listener on port 53 of each user-defined
//! network's gateway addresses (IPv4, and IPv6 where the network has it), answering from the current state (control_plane::dns) and
//! forwarding the rest to the upstream resolvers.
//!
//! Work is bounded per asker: a token bucket on queries and a cap on queries in flight
//! upstream, so a flood from one sandbox cannot starve the others.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use control_plane::model::Network;
use control_plane::{dns, Id, State};

use crate::kernel::limits::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// How long one upstream may take before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Sustained queries per second per asker, and the burst above it (as the kernel's limit on
/// UDP queries in the firewall table; this one covers TCP and any path around it).
const RATE: f64 = control_plane::firewall::DNS_RATE as f64;
const BURST: f64 = control_plane::firewall::DNS_BURST as f64;
/// Queries (or TCP connections) of one asker waiting on upstreams at once.
const MAX_IN_FLIGHT: u32 = 16;

/// The shared, current state the servers answer from.
pub type Snapshot = Arc<RwLock<Arc<State>>>;

struct Bucket {
    tokens: f64,
    at: Instant,
    in_flight: u32,
}

/// Per-asker admission.
#[derive(Default)]
struct Limiter {
    askers: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Limiter {
    fn admit(&self, ip: IpAddr) -> bool {
        let mut m = self.askers.lock().expect("lock poisoned");
        let now = Instant::now();
        if m.len() > 4096 {
            m.retain(|_, b| b.in_flight > 0 || b.tokens + now.duration_since(b.at).as_secs_f64() * RATE < BURST);
        }
        let b = m.entry(ip).or_insert(Bucket {
            tokens: BURST,
            at: now,
            in_flight: 0,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * RATE).min(BURST);
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }

    fn begin(&self, ip: IpAddr) -> bool {
        let mut m = self.askers.lock().expect("lock poisoned");
        let b = m.entry(ip).or_insert(Bucket {
            tokens: BURST,
            at: Instant::now(),
            in_flight: 0,
        });
        if b.in_flight >= MAX_IN_FLIGHT {
            return false;
        }
        b.in_flight += 1;
        true
    }

    fn end(&self, ip: IpAddr) {
        if let Some(b) = self.askers.lock().expect("lock poisoned").get_mut(&ip) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }
}

struct Ctx {
    net: Id,
    state: Snapshot,
    upstreams: Arc<Vec<SocketAddr>>,
    limiter: Limiter,
    counters: Arc<DnsCounters>,
    limits: Arc<Limits>,
}

/// What one network's DNS server has done since it started.
#[derive(Debug, Default)]
pub struct DnsCounters {
    /// Queries received (UDP datagrams and TCP messages), rate-limited ones included.
    pub queries: AtomicU64,
    /// Answered from the fabric's names.
    pub answered: AtomicU64,
    /// Sent on to the upstream resolvers.
    pub forwarded: AtomicU64,
    /// Answered SERVFAIL because no upstream answered.
    pub failures: AtomicU64,
    /// Dropped by the per-asker limits.
    pub limited: AtomicU64,
    /// Refused: the asker is no endpoint of the network.
    pub refused: AtomicU64,
}

impl DnsCounters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl Ctx {
    /// Whether `asker` is an endpoint of the network (who may ask at all).
    fn is_member(&self, asker: IpAddr) -> bool {
        let state = self.state.read().expect("lock poisoned").clone();
        dns::member(&state, &self.net, asker).is_some()
    }

    /// Where `asker`'s queries for names not known here go: its sandbox's own resolvers
    /// (`--dns`), or the host's.
    fn upstreams_for(&self, asker: IpAddr) -> Arc<Vec<SocketAddr>> {
        let state = self.state.read().expect("lock poisoned").clone();
        let own = dns::member(&state, &self.net, asker)
            .and_then(|id| state.sandboxes.get(&id))
            .map(|sb| &state.namespace_owner(sb).dns.servers)
            .filter(|s| !s.is_empty());
        match own {
            Some(servers) => Arc::new(servers.iter().map(|ip| SocketAddr::new(*ip, 53)).collect()),
            None => self.upstreams.clone(),
        }
    }

    fn decide(&self, asker: IpAddr, query: &[u8]) -> dns::Decision {
        let state = self.state.read().expect("lock poisoned").clone();
        let d = dns::decide(&state, &self.net, asker, query);
        match d {
            dns::Decision::Reply(_) => DnsCounters::add(&self.counters.answered),
            dns::Decision::Forward => DnsCounters::add(&self.counters.forwarded),
            dns::Decision::Refuse(_) => DnsCounters::add(&self.counters.refused),
            dns::Decision::Ignore => {}
        }
        d
    }

    /// Counts a query, and whether the asker's limit admits it.
    fn admit(&self, asker: IpAddr) -> bool {
        DnsCounters::add(&self.counters.queries);
        let ok = self.limiter.admit(asker);
        if !ok {
            DnsCounters::add(&self.counters.limited);
        }
        ok
    }

    /// The upstream's answer, or SERVFAIL (counted) when none came.
    fn answer_or_fail(&self, answer: Option<Vec<u8>>, query: &[u8]) -> Option<Vec<u8>> {
        answer.or_else(|| {
            DnsCounters::add(&self.counters.failures);
            dns::servfail(query)
        })
    }
}

/// The DNS servers of all networks.
pub struct Dns {
    rt: tokio::runtime::Handle,
    state: Snapshot,
    upstreams: Arc<Vec<SocketAddr>>,
    servers: Mutex<HashMap<Id, Server>>,
    limits: Arc<Limits>,
}

/// One network's running server tasks and their counters.
type Server = (Vec<JoinHandle<()>>, Arc<DnsCounters>);

impl Dns {
    /// Servers that answer from `state` and forward to `upstreams`, on `rt`, within the
    /// caps of `limits` (upstream queries and TCP connections, all networks together).
    pub fn new(rt: tokio::runtime::Handle, state: Snapshot, upstreams: Vec<SocketAddr>, limits: Arc<Limits>) -> Dns {
        Dns {
            rt,
            state,
            upstreams: Arc::new(upstreams),
            servers: Mutex::new(HashMap::new()),
            limits,
        }
    }

    /// The upstream resolvers.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Starts the servers of a user-defined network on its gateway addresses (already held by
    /// the gateway interface), bound to that interface: a query that comes in on another
    /// (another network's gateway, the underlay) never reaches them; the host's own do, and
    /// are refused with every other stranger's. Built-in networks have none, as in Docker.
    pub fn start(&self, net: &Network) -> io::Result<()> {
        let Some(iface) = net
            .bridge_name
            .as_deref()
            .filter(|_| !net.builtin && net.has_addresses())
        else {
            return Ok(());
        };
        self.stop(&net.id);
        let shared = Arc::new(Ctx {
            net: net.id.clone(),
            state: self.state.clone(),
            upstreams: self.upstreams.clone(),
            limiter: Limiter::default(),
            counters: Arc::new(DnsCounters::default()),
            limits: self.limits.clone(),
        });
        let gateways =
            (net.ipam.iter().map(|i| IpAddr::from(i.gateway))).chain(net.ipam6.iter().map(|p| p.gateway.into()));
        let mut tasks = Vec::new();
        for gw in gateways {
            match self.listen(SocketAddr::new(gw, 53), iface, &shared) {
                Ok(t) => tasks.extend(t),
                Err(e) => {
                    tasks.iter().for_each(JoinHandle::abort);
                    return Err(e);
                }
            }
        }
        self.servers
            .lock()
            .expect("lock poisoned")
            .insert(net.id.clone(), (tasks, shared.counters.clone()));
        tracing::debug!(network = %net.name, "DNS server started");
        Ok(())
    }

    /// Binds UDP and TCP on `addr` of interface `iface` and serves them with `shared`.
    fn listen(&self, addr: SocketAddr, iface: &str, shared: &Arc<Ctx>) -> io::Result<[JoinHandle<()>; 2]> {
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("DNS server on {addr}: {e}"));
        let on_gateway = |fd: std::os::fd::BorrowedFd<'_>| {
            use nix::sys::socket::{setsockopt, sockopt::BindToDevice};
            setsockopt(&fd, BindToDevice, &std::ffi::OsString::from(iface)).map_err(|source| {
                ctx(crate::kernel::KernelError::BindToDevice {
                    iface: iface.to_string(),
                    source,
                }
                .into())
            })
        };
        let udp = std::net::UdpSocket::bind(addr).map_err(ctx)?;
        on_gateway(udp.as_fd())?;
        udp.set_nonblocking(true).map_err(ctx)?;
        let tcp = std::net::TcpListener::bind(addr).map_err(ctx)?;
        on_gateway(tcp.as_fd())?;
        tcp.set_nonblocking(true).map_err(ctx)?;
        let (c, s) = (shared.clone(), shared.clone());
        let u = self.rt.spawn(async move {
            match UdpSocket::from_std(udp) {
                Ok(s) => serve_udp(Arc::new(s), c).await,
                Err(e) => tracing::error!("DNS UDP server on {addr}: {e}"),
            }
        });
        let t = self.rt.spawn(async move {
            match TcpListener::from_std(tcp) {
                Ok(l) => serve_tcp(l, s).await,
                Err(e) => tracing::error!("DNS TCP server on {addr}: {e}"),
            }
        });
        Ok([u, t])
    }

    /// Stops the servers of a network.
    pub fn stop(&self, net: &Id) {
        for h in self
            .servers
            .lock()
            .expect("lock poisoned")
            .remove(net)
            .map(|(h, _)| h)
            .unwrap_or_default()
        {
            h.abort();
        }
    }

    /// The counters of every network's server, by network.
    pub fn counters(&self) -> Vec<(Id, Arc<DnsCounters>)> {
        self.servers
            .lock()
            .expect("lock poisoned")
            .iter()
            .map(|(id, (_, c))| (id.clone(), c.clone()))
            .collect()
    }
}

/// The asker's address as the state holds it (an IPv4-mapped IPv6 address as IPv4).
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

async fn serve_udp(sock: Arc<UdpSocket>, ctx: Arc<Ctx>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                ctx.limits.back_off("DNS UDP receive", &e).await;
                continue;
            }
        };
        let asker = canonical(peer.ip());
        if !ctx.admit(asker) {
            continue;
        }
        let query = buf[..n].to_vec();
        match ctx.decide(asker, &query) {
            dns::Decision::Reply(r) | dns::Decision::Refuse(r) => {
                let _ = sock.send_to(&r, peer).await;
            }
            dns::Decision::Ignore => {}
            dns::Decision::Forward => {
                let Some(permit) = ctx.limits.dns_upstream.try_take() else {
                    DnsCounters::add(&ctx.counters.limited);
                    continue;
                };
                if !ctx.limiter.begin(asker) {
                    DnsCounters::add(&ctx.counters.limited);
                    continue;
                }
                let (sock, ctx) = (sock.clone(), ctx.clone());
                tokio::spawn(async move {
                    let upstreams = ctx.upstreams_for(asker);
                    let answer = ctx.answer_or_fail(forward_udp(&upstreams, &query).await, &query);
                    drop(permit);
                    if let Some(a) = answer {
                        let _ = sock.send_to(&a, peer).await;
                    }
                    ctx.limiter.end(asker);
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                ctx.limits.back_off("DNS TCP accept", &e).await;
                continue;
            }
        };
        let asker = canonical(peer.ip());
        // A stranger's connection is closed before anything is read: it holds nothing.
        if !ctx.is_member(asker) {
            DnsCounters::add(&ctx.counters.refused);
            continue;
        }
        let Some(permit) = ctx.limits.dns_tcp.try_take() else {
            DnsCounters::add(&ctx.counters.limited);
            continue;
        };
        if !ctx.limiter.begin(asker) {
            DnsCounters::add(&ctx.counters.limited);
            continue;
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), tcp_session(stream, asker, &ctx)).await;
            ctx.limiter.end(asker);
            drop(permit);
        });
    }
}

async fn tcp_session(mut stream: TcpStream, asker: IpAddr, ctx: &Ctx) -> io::Result<()> {
    loop {
        let query = match read_framed(&mut stream).await {
            Ok(q) => q,
            Err(_) => return Ok(()),
        };
        if !ctx.admit(asker) {
            return Ok(());
        }
        let answer = match ctx.decide(asker, &query) {
            dns::Decision::Reply(r) => Some(r),
            dns::Decision::Refuse(r) => {
                write_framed(&mut stream, &r).await?;
                return Ok(());
            }
            dns::Decision::Ignore => None,
            dns::Decision::Forward => match ctx.limits.dns_upstream.try_take() {
                Some(_permit) => {
                    let upstreams = ctx.upstreams_for(asker);
                    ctx.answer_or_fail(forward_tcp(&upstreams, &query).await, &query)
                }
                None => {
                    DnsCounters::add(&ctx.counters.limited);
                    ctx.answer_or_fail(None, &query)
                }
            },
        };
        let Some(a) = answer else { return Ok(()) };
        write_framed(&mut stream, &a).await?;
    }
}

async fn read_framed(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = s.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_framed(s: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("DNS message over 64 KB"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out).await
}

/// The largest UDP answer the asker accepts: its EDNS size, or 512.
fn max_udp(query: &[u8]) -> usize {
    hickory_proto::op::Message::from_vec(query).map_or(512, |m| usize::from(m.max_payload().max(512)))
}

/// Forwards over UDP, trying each upstream in turn; a truncated answer is fetched again over
/// TCP and returned whole when it fits what the asker accepts over UDP (else the truncated one
/// goes back, and the asker retries over TCP itself).
async fn forward_udp(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams {
        let Ok(sock) = UdpSocket::bind(if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).await else {
            continue;
        };
        if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65_535];
        let Ok(Ok(n)) = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf)).await else {
            continue;
        };
        let answer = &buf[..n];
        if n < 2 || answer[..2] != query[..2] {
            continue;
        }
        if dns::is_truncated(answer) {
            if let Some(full) = forward_tcp(std::slice::from_ref(up), query).await {
                if full.len() <= max_udp(query) {
                    return Some(full);
                }
            }
        }
        return Some(answer.to_vec());
    }
    None
}

/// Forwards over TCP, trying each upstream in turn.
async fn forward_tcp(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams {
        let attempt = async {
            let mut s = TcpStream::connect(up).await?;
            write_framed(&mut s, query).await?;
            read_framed(&mut s).await
        };
        if let Ok(Ok(a)) = tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            if a.len() >= 2 && a[..2] == query[..2] {
                return Some(a);
            }
        }
    }
    None
}

/// systemd-resolved's stub resolver, which a host's /etc/resolv.conf may name alone.
const RESOLVED_STUB: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53));
/// Where systemd-resolved keeps the resolvers it forwards to.
pub const RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

/// The host's upstream resolvers: those of `etc` (/etc/resolv.conf's text), or, when it names
/// systemd-resolved's stub alone, those of `resolved` (the text at [`RESOLVED_UPSTREAMS`]),
/// as Docker reads them: the stub answers the host alone, so a sandbox could not reach it.
pub fn host_upstreams(etc: &str, resolved: impl FnOnce() -> Option<String>) -> Vec<SocketAddr> {
    let listed = parse_resolv_conf(etc);
    if !listed.is_empty() && listed.iter().all(|a| a.ip() == RESOLVED_STUB) {
        let real = resolved().map(|t| parse_resolv_conf(&t)).unwrap_or_default();
        if !real.is_empty() {
            return real;
        }
    }
    listed
}

/// Upstream resolvers from a resolv.conf text (`nameserver` lines, port 53).
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|v| v.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let v = parse_resolv_conf("# x\nsearch example\nnameserver 10.0.0.2\nnameserver  ::1\noptions ndots:0\n");
        assert_eq!(v, vec!["10.0.0.2:53".parse().unwrap(), "[::1]:53".parse().unwrap()]);
    }

    #[test]
    fn systemd_resolved_s_stub_gives_way_to_its_real_resolvers() {
        let stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n";
        let real = || Some("nameserver 192.0.2.1\nnameserver 2001:db8::53\n".to_string());
        assert_eq!(
            host_upstreams(stub, real),
            vec!["192.0.2.1:53".parse().unwrap(), "[2001:db8::53]:53".parse().unwrap()]
        );
        // resolved's own list missing or empty: the stub is all there is.
        assert_eq!(host_upstreams(stub, || None), vec!["127.0.0.53:53".parse().unwrap()]);
        assert_eq!(host_upstreams(stub, || Some(String::new())).len(), 1);
        // Any other resolver beside the stub, or none at all: the file as it is.
        let mixed = "nameserver 127.0.0.53\nnameserver 10.0.0.2\n";
        assert_eq!(host_upstreams(mixed, || panic!("not read")).len(), 2);
        assert!(host_upstreams("", || panic!("not read")).is_empty());
    }

    #[test]
    fn limiter_bounds_one_asker_not_others() {
        let l = Limiter::default();
        let a = IpAddr::from([10, 0, 0, 2]);
        let admitted = (0..1000).filter(|_| l.admit(a)).count();
        assert!(admitted >= BURST as usize && admitted < 1000, "{admitted}");
        assert!(l.admit(IpAddr::from([10, 0, 0, 3])), "another asker is unaffected");
        assert!((0..MAX_IN_FLIGHT).all(|_| l.begin(a)));
        assert!(!l.begin(a));
        l.end(a);
        assert!(l.begin(a));
    }
}
