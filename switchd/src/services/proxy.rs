//! The userland proxy of published ports: a listening socket on HOSTIP:HOSTPORT per binding.
//!
//! nftables DNAT carries traffic that arrives at the host from elsewhere; what the proxy adds
//! is what DNAT cannot see: connections made on the host itself (to 127.0.0.1:PORT or to the
//! host's own addresses), and a held socket, so a port in use by another program is refused
//! and a published port cannot be taken by one.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control_plane::ports::{PortBinding, Proto};
use control_plane::Id;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::kernel::limits::{Limits, Permit};

/// UDP flows idle this long are forgotten.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// Datagrams waiting for one UDP flow's socket; more are dropped, as a full socket buffer would.
const UDP_QUEUE: usize = 64;

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
    /// An SCTP port, held but not served: the firewall's DNAT carries SCTP (`None`: the
    /// kernel has no SCTP, so nothing else can take the port either).
    Held(Option<socket2::Socket>),
}

/// The proxies of all sandboxes.
pub struct Proxies {
    rt: tokio::runtime::Handle,
    running: Mutex<HashMap<Id, Vec<JoinHandle<()>>>>,
    limits: Arc<Limits>,
    flows: Arc<UdpFlows>,
}

impl Proxies {
    /// No proxies yet; tasks will run on `rt`, within the caps of `limits` (UDP flows and
    /// TCP connections of all published ports together).
    pub fn new(rt: tokio::runtime::Handle, limits: Arc<Limits>) -> Proxies {
        Proxies {
            rt,
            running: Mutex::new(HashMap::new()),
            limits,
            flows: Arc::new(UdpFlows::default()),
        }
    }

    /// Binds every binding of sandbox `sb`, then serves them towards `target`. Either all are
    /// bound or none is (the failing binding is returned with its error).
    pub fn start(&self, sb: &Id, bindings: &[PortBinding], target: IpAddr) -> Result<(), (PortBinding, io::Error)> {
        self.stop(sb);
        let mut bound = Vec::with_capacity(bindings.len());
        for b in bindings {
            bound.push((*b, bind(b).map_err(|e| (*b, e))?));
        }
        let tasks = bound
            .into_iter()
            .map(|(b, sock)| {
                let to = SocketAddr::new(target, b.container_port);
                let (limits, flows) = (self.limits.clone(), self.flows.clone());
                self.rt.spawn(async move {
                    let failed = match sock {
                        Bound::Tcp(l) => match TcpListener::from_std(l) {
                            Ok(l) => return serve_tcp(l, to, limits).await,
                            Err(e) => e,
                        },
                        Bound::Udp(u) => match UdpSocket::from_std(u) {
                            Ok(u) => return serve_udp(Arc::new(u), to, limits, flows).await,
                            Err(e) => e,
                        },
                        Bound::Held(s) => {
                            let _held = s;
                            return std::future::pending().await;
                        }
                    };
                    tracing::warn!(binding = %b, "port proxy did not start: {failed}");
                })
            })
            .collect();
        self.running.lock().expect("lock poisoned").insert(sb.clone(), tasks);
        Ok(())
    }

    /// Closes the sockets of sandbox `sb`.
    pub fn stop(&self, sb: &Id) {
        for t in self
            .running
            .lock()
            .expect("lock poisoned")
            .remove(sb)
            .unwrap_or_default()
        {
            t.abort();
        }
    }
}

/// Serves a TCP binding for good: a connection beyond the cap is closed at once, and running
/// out of descriptors makes it wait, never stop.
async fn serve_tcp(l: TcpListener, to: SocketAddr, limits: Arc<Limits>) {
    loop {
        let ((mut client, _), permit) = limits.admit("port proxy", &limits.proxy_tcp, || l.accept()).await;
        tokio::spawn(async move {
            let Ok(Ok(mut upstream)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to)).await
            else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            drop(permit);
        });
    }
}

/// Every UDP flow of every published port. A flow's permit lives here, so evicting a flow
/// gives its share back at once (its task, aborted, closes the socket).
#[derive(Default)]
struct UdpFlows {
    flows: Mutex<HashMap<u64, FlowEntry>>,
    next: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

struct FlowEntry {
    _permit: Permit,
    last_ms: Arc<AtomicU64>,
    abort: Option<tokio::task::AbortHandle>,
}

impl UdpFlows {
    fn now_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    /// Registers a flow holding `permit`; returns its ID and its last-use clock.
    fn register(&self, permit: Permit) -> (u64, Arc<AtomicU64>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let last_ms = Arc::new(AtomicU64::new(self.now_ms()));
        let entry = FlowEntry {
            _permit: permit,
            last_ms: last_ms.clone(),
            abort: None,
        };
        self.flows.lock().expect("lock poisoned").insert(id, entry);
        (id, last_ms)
    }

    fn set_abort(&self, id: u64, abort: tokio::task::AbortHandle) {
        if let Some(e) = self.flows.lock().expect("lock poisoned").get_mut(&id) {
            e.abort = Some(abort);
        }
    }

    fn remove(&self, id: u64) {
        self.flows.lock().expect("lock poisoned").remove(&id);
    }

    /// Ends the flow used longest ago, whichever port it belongs to.
    fn evict_oldest(&self) {
        let mut flows = self.flows.lock().expect("lock poisoned");
        let oldest = flows
            .iter()
            .min_by_key(|(_, e)| e.last_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        if let Some(e) = oldest.and_then(|id| flows.remove(&id)) {
            if let Some(a) = e.abort {
                a.abort();
            }
        }
    }
}

/// Serves a UDP binding for good: each client gets a flow (a socket towards the sandbox)
/// until it is idle for [`UDP_IDLE`]; at the cap on flows the oldest of all ports' goes first.
async fn serve_udp(front: Arc<UdpSocket>, to: SocketAddr, limits: Arc<Limits>, flows: Arc<UdpFlows>) {
    let mut mine: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, client) = match front.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                limits.back_off("port proxy receive", &e).await;
                continue;
            }
        };
        if let Some(tx) = mine.get(&client) {
            match tx.try_send(buf[..n].to_vec()) {
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    mine.remove(&client);
                }
                _ => continue,
            }
        }
        if mine.len() >= limits.proxy_udp.max() {
            mine.retain(|_, tx| !tx.is_closed());
        }
        let permit = match limits.proxy_udp.try_take() {
            Some(p) => p,
            None => {
                flows.evict_oldest();
                match limits.proxy_udp.try_take() {
                    Some(p) => p,
                    None => continue,
                }
            }
        };
        // Towards the sandbox in its address's family (an IPv6-only sandbox's is IPv6).
        let any = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" };
        let sock = match UdpSocket::bind(any).await {
            Ok(s) => s,
            Err(e) => {
                limits.back_off("port proxy flow", &e).await;
                continue;
            }
        };
        if sock.connect(to).await.is_err() {
            continue;
        }
        let (tx, rx) = mpsc::channel(UDP_QUEUE);
        let _ = tx.try_send(buf[..n].to_vec());
        let (id, last_ms) = flows.register(permit);
        let task = tokio::spawn(flow(sock, rx, front.clone(), client, last_ms, flows.clone(), id));
        flows.set_abort(id, task.abort_handle());
        mine.insert(client, tx);
    }
}

/// One client's flow: datagrams from the client go out of `sock` to the sandbox, answers go
/// back through `front`; it ends after [`UDP_IDLE`] without traffic either way.
async fn flow(
    sock: UdpSocket,
    mut rx: mpsc::Receiver<Vec<u8>>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    last_ms: Arc<AtomicU64>,
    flows: Arc<UdpFlows>,
    id: u64,
) {
    let mut b = vec![0u8; 65_535];
    loop {
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => {
                    let _ = sock.send(&d).await;
                }
                None => break,
            },
            r = sock.recv(&mut b) => match r {
                Ok(n) => {
                    let _ = front.send_to(&b[..n], client).await;
                }
                Err(_) => break,
            },
            () = tokio::time::sleep(UDP_IDLE) => break,
        }
        last_ms.store(flows.now_ms(), Ordering::Relaxed);
    }
    flows.remove(id);
}

/// The host socket of a binding, bound and non-blocking. A binding on every address
/// (`0.0.0.0`) is one IPv6 socket that takes IPv4 too, as `0.0.0.0` and `[::]` both; on a host
/// without IPv6, an IPv4 one. An IPv6 address is served for IPv6 alone.
fn bind(b: &PortBinding) -> io::Result<Bound> {
    let addr = SocketAddr::new(b.host_ip, b.host_port);
    if b.host_ip != IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
        return open(addr, b.proto, false);
    }
    match open(
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), b.host_port),
        b.proto,
        true,
    ) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)) => {
            open(addr, b.proto, false)
        }
        r => r,
    }
}

/// A non-blocking socket bound to `addr` (listening, for TCP; bound alone, for SCTP); an IPv6
/// one takes IPv4 too when `dual`.
fn open(addr: SocketAddr, proto: Proto, dual: bool) -> io::Result<Bound> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (ty, protocol) = match proto {
        Proto::Tcp => (Type::STREAM, None),
        Proto::Udp => (Type::DGRAM, None),
        Proto::Sctp => (Type::STREAM, Some(Protocol::from(libc::IPPROTO_SCTP))),
    };
    let s = match Socket::new(Domain::for_address(addr), ty.cloexec(), protocol) {
        Err(e) if proto == Proto::Sctp && e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => {
            return Ok(Bound::Held(None));
        }
        r => r?,
    };
    if addr.is_ipv6() {
        s.set_only_v6(!dual)?;
    }
    if proto == Proto::Tcp {
        // As std's listeners: a port whose connections linger in TIME_WAIT binds again.
        s.set_reuse_address(true)?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(match proto {
        Proto::Tcp => {
            s.listen(1024)?;
            Bound::Tcp(s.into())
        }
        Proto::Udp => Bound::Udp(s.into()),
        Proto::Sctp => Bound::Held(Some(s)),
    })
}

/// Whether the host lets switchd bind the binding's socket now.
pub fn can_bind(b: &PortBinding) -> bool {
    bind(b).is_ok()
}
