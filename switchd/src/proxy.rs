//! The userland proxy of published ports: a listening socket on HOSTIP:HOSTPORT per binding.
//!
//! nftables DNAT carries traffic that arrives at the host from elsewhere; what the proxy adds
//! is what DNAT cannot see: connections made on the host itself (to 127.0.0.1:PORT or to the
//! host's own addresses), and a held socket, so a port in use by another program is refused
//! and a published port cannot be taken by one.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control_plane::ports::{PortBinding, Proto};
use control_plane::Id;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// UDP flows idle this long are forgotten.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// UDP flows one binding keeps at once.
const UDP_FLOWS: usize = 1024;

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// The proxies of all sandboxes.
pub struct Proxies {
    rt: tokio::runtime::Handle,
    running: Mutex<HashMap<Id, Vec<JoinHandle<()>>>>,
}

impl Proxies {
    /// No proxies yet; tasks will run on `rt`.
    pub fn new(rt: tokio::runtime::Handle) -> Proxies {
        Proxies {
            rt,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Binds every binding of sandbox `sb`, then serves them towards `target`. Either all are
    /// bound or none is (the failing binding is returned with its error).
    pub fn start(&self, sb: &Id, bindings: &[PortBinding], target: Ipv4Addr) -> Result<(), (PortBinding, io::Error)> {
        self.stop(sb);
        let mut bound = Vec::with_capacity(bindings.len());
        for b in bindings {
            let addr = SocketAddr::from((b.host_ip, b.host_port));
            let sock = match b.proto {
                Proto::Tcp => {
                    std::net::TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| Bound::Tcp(l)))
                }
                Proto::Udp => {
                    std::net::UdpSocket::bind(addr).and_then(|u| u.set_nonblocking(true).map(|()| Bound::Udp(u)))
                }
            };
            bound.push((*b, sock.map_err(|e| (*b, e))?));
        }
        let tasks = bound
            .into_iter()
            .map(|(b, sock)| {
                let to = SocketAddr::from((target, b.container_port));
                self.rt.spawn(async move {
                    let r = match sock {
                        Bound::Tcp(l) => match TcpListener::from_std(l) {
                            Ok(l) => serve_tcp(l, to).await,
                            Err(e) => Err(e),
                        },
                        Bound::Udp(u) => match UdpSocket::from_std(u) {
                            Ok(u) => serve_udp(Arc::new(u), to).await,
                            Err(e) => Err(e),
                        },
                    };
                    if let Err(e) = r {
                        tracing::warn!(binding = %b, "port proxy stopped: {e}");
                    }
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

async fn serve_tcp(l: TcpListener, to: SocketAddr) -> io::Result<()> {
    loop {
        let (mut client, _) = l.accept().await?;
        tokio::spawn(async move {
            let Ok(Ok(mut upstream)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to)).await
            else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

struct Flow {
    sock: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
    task: JoinHandle<()>,
}

async fn serve_udp(front: Arc<UdpSocket>, to: SocketAddr) -> io::Result<()> {
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, client) = front.recv_from(&mut buf).await?;
        if !flows.contains_key(&client) {
            if flows.len() >= UDP_FLOWS {
                flows.retain(|_, f| {
                    let live = f.last.lock().expect("lock poisoned").elapsed() < UDP_IDLE;
                    if !live {
                        f.task.abort();
                    }
                    live
                });
                if flows.len() >= UDP_FLOWS {
                    continue;
                }
            }
            let sock = Arc::new(UdpSocket::bind("0.0.0.0:0").await?);
            sock.connect(to).await?;
            let last = Arc::new(Mutex::new(Instant::now()));
            let (back, front2, last2) = (sock.clone(), front.clone(), last.clone());
            let task = tokio::spawn(async move {
                let mut b = vec![0u8; 65_535];
                while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, back.recv(&mut b)).await {
                    *last2.lock().expect("lock poisoned") = Instant::now();
                    let _ = front2.send_to(&b[..n], client).await;
                }
            });
            flows.insert(client, Flow { sock, last, task });
        }
        let f = &flows[&client];
        *f.last.lock().expect("lock poisoned") = Instant::now();
        let _ = f.sock.send(&buf[..n]).await;
    }
}
