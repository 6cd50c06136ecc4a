//! The dataplane thread: owns the switch core and every port's descriptor, waits on epoll,
//! reads frames in bursts, asks the core for a verdict and writes them out.
//!
//! Control requests come through a channel and an eventfd that wakes the loop, so the core
//! and the descriptors are touched by this thread only: no lock on the frame path.

pub mod batch;
pub mod esp;
pub mod vxlan;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use control_plane::capture::Direction;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use overlay::edge::{Carried, Decision, Edge, Refused, VniInUse};
use overlay::offload::{cut_tcp, Coalescer, VirtioNetHdr};
use overlay::{Vni, VXLAN_HEADER_LEN};
use switch::{
    trunk_rx, DropReason, FdbEntry, Gso, MacAddr, NetworkConfig, NetworkId, PortConfig, PortCounters, PortId, Switch,
    TraceStage, TraceVerdict, TrunkRx, Verdict, VlanId,
};
use tun_rs::SyncDevice;

use crate::dataplane::esp::{Esp, EspStats, SaChange};
use crate::dataplane::vxlan::{Vtep, VxlanStats};
use crate::ports::tap::VNET_HDR_LEN;
use crate::ports::uplink;

/// Largest frame a TAP port with segmentation offload hands us: a 64 KB super-frame plus
/// link headers.
const MAX_FRAME: usize = 65_535 + 64;
/// Frames read from one port before the loop turns to the next ready port.
const BURST: usize = 64;
const WAKE_TOKEN: u64 = u64::MAX;
const VXLAN_TOKEN: u64 = u64::MAX - 1;
const ESP_TOKEN: u64 = u64::MAX - 2;

/// An overlay network's tunnel: its VNI, and whether its frames cross the underlay sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// The VNI.
    pub vni: Vni,
    /// `-o encrypted`: sealed as ESP, never sent or taken in clear.
    pub sealed: bool,
}

/// The ESP port's state, as shown.
#[derive(Debug, Clone, Default)]
pub struct EspReport {
    /// Where it is bound (`None`: no encrypted network here).
    pub bound: Option<SocketAddr>,
    /// Its counters since switchd started.
    pub stats: EspStats,
    /// Inbound SAs held.
    pub sas_in: usize,
    /// Outbound SAs held.
    pub sas_out: usize,
}

/// What a port is, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// A sandbox's TAP interface.
    Tap,
    /// A sandbox's veth interface, read through AF_PACKET on the host end.
    Veth,
    /// A VXLAN peer of an overlay network.
    Vtep,
    /// The host side of a bridge network (or the host's own interface on a macvlan network).
    Gateway,
    /// The parent interface of a macvlan network on switchd's own 802.1Q.
    Uplink,
}

/// The descriptor of a port. Both kinds carry the 10-byte virtio-net header on every frame.
pub enum Device {
    /// A TAP device.
    Tap(SyncDevice),
    /// An AF_PACKET socket bound to the veth host end `ifname`.
    Packet {
        /// The socket.
        fd: OwnedFd,
        /// The host end's name.
        ifname: String,
    },
    /// An AF_PACKET socket on the parent of a macvlan network on a VLAN: frames go out
    /// tagged with `vlan`, and only frames tagged with it come in.
    Uplink {
        /// The socket.
        fd: OwnedFd,
        /// The network's VLAN.
        vlan: VlanId,
    },
    /// A VXLAN peer, reached through the shared VTEP sockets.
    Vtep {
        /// The peer's address.
        addr: SocketAddr,
        /// The network's VNI.
        vni: Vni,
    },
}

impl Device {
    fn egress(&self) -> Egress {
        match self {
            Device::Tap(d) => Egress::Fd(d.as_raw_fd()),
            Device::Packet { fd, .. } => Egress::Fd(fd.as_raw_fd()),
            Device::Uplink { fd, vlan } => Egress::Tagged(fd.as_raw_fd(), *vlan),
            Device::Vtep { addr, vni } => Egress::Vtep(*addr, *vni),
        }
    }

    /// The descriptor to poll; VXLAN peers have none of their own.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Device::Tap(d) => Some(d.as_fd()),
            Device::Packet { fd, .. } | Device::Uplink { fd, .. } => Some(fd.as_fd()),
            Device::Vtep { .. } => None,
        }
    }
}

/// Where a frame goes out.
#[derive(Clone, Copy)]
enum Egress {
    Fd(RawFd),
    Tagged(RawFd, VlanId),
    Vtep(SocketAddr, Vni),
}

/// A port's identity and counters, as listed.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// The port.
    pub port: PortId,
    /// Its network.
    pub network: NetworkId,
    /// What it is.
    pub kind: PortKind,
    /// `SANDBOX/ethN` or the gateway interface name.
    pub label: String,
    /// Counters.
    pub counters: PortCounters,
}

/// Why the dataplane refused a command.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The switch refused it (an unknown or busy network or port, a full table).
    #[error(transparent)]
    Switch(switch::SwitchError),
    /// The VNI is another network's.
    #[error(transparent)]
    VniInUse(#[from] VniInUse),
    /// No such port.
    #[error("port {0} does not exist")]
    NoPort(PortId),
    /// A static MAC another port holds.
    #[error("MAC address {mac} is already in use on this network by {holder}")]
    MacTaken {
        /// The MAC.
        mac: MacAddr,
        /// Who holds it, in words.
        holder: String,
    },
    /// VXLAN is not available on this host.
    #[error("the VXLAN port is not bound on this host (see switchd's log)")]
    NoVtep,
    /// A peer port for a VNI that is not its network's.
    #[error("VNI {0} does not belong to this port's network")]
    ForeignVni(Vni),
    /// The peer has a port already.
    #[error("{addr} is already a peer of VNI {vni}")]
    PeerExists {
        /// The peer's address.
        addr: IpAddr,
        /// The VNI.
        vni: Vni,
    },
    /// The port's descriptor cannot be polled.
    #[error("cannot poll port {label}: {source}")]
    Poll {
        /// The port.
        label: String,
        /// Why.
        source: nix::Error,
    },
}

impl From<DataplaneError> for io::Error {
    fn from(e: DataplaneError) -> io::Error {
        let kind = match e {
            DataplaneError::MacTaken { .. } => io::ErrorKind::AddrInUse,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// A request to the dataplane thread.
pub enum Command {
    /// Adds a network to the switch, with its tunnel when it is an overlay network.
    AddNetwork(
        NetworkId,
        NetworkConfig,
        Option<Tunnel>,
        mpsc::Sender<Result<(), DataplaneError>>,
    ),
    /// Removes a network without ports.
    RemoveNetwork(NetworkId, mpsc::Sender<Result<(), DataplaneError>>),
    /// Adds a port over a TAP device, with the static MAC of the endpoint behind it.
    AddPort(Box<NewPort>, mpsc::Sender<Result<PortId, DataplaneError>>),
    /// Removes a port and hands its device back.
    RemovePort(PortId, mpsc::Sender<Result<Device, DataplaneError>>),
    /// Names a port anew (its sandbox was renamed).
    Relabel(PortId, String),
    /// Lists the ports and their counters.
    Ports(mpsc::Sender<Vec<PortInfo>>),
    /// Lists the MAC table.
    Fdb(mpsc::Sender<Vec<FdbEntry>>),
    /// Traces a frame arriving on a port, without sending it or changing anything.
    Trace(PortId, Vec<u8>, mpsc::Sender<TraceOut>),
    /// Mirrors a port's frames, both ways, until the receiver goes; the counter counts frames
    /// dropped because the receiver fell behind.
    Capture(PortId, CaptureReply),
    /// Where the VXLAN socket is bound, and its counters.
    Vxlan(mpsc::Sender<(Option<SocketAddr>, VxlanStats)>),
    /// Installs or retires SAs.
    Sa(SaChange, mpsc::Sender<()>),
    /// The ESP port's state.
    Esp(mpsc::Sender<EspReport>),
    /// How frames go to port descriptors and how the loop waits.
    Io(mpsc::Sender<IoStats>),
    /// Pins a MAC (with the addresses ARP requests and neighbour solicitations are answered
    /// for) to a port (`Some`), or forgets it (`None`).
    Static(
        NetworkId,
        MacAddr,
        Option<(PortId, Answered)>,
        mpsc::Sender<Result<(), DataplaneError>>,
    ),
}

pub use overlay::edge::Answered;

/// A traced frame as the dataplane would handle it: ARP suppression first, then the switch's
/// stages, then how each egress port would send it.
#[derive(Debug, Clone)]
pub struct TraceOut {
    /// The stages in order.
    pub stages: Vec<TraceStage>,
    /// The outcome in words.
    pub verdict: String,
    /// The ports the frame would leave on.
    pub out_ports: Vec<PortId>,
}

/// A capture's end: the mirrored frames and the count of those dropped for a slow reader.
pub type CaptureRx = (
    tokio::sync::mpsc::Receiver<Mirrored>,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
);

/// The answer to [`Command::Capture`].
pub type CaptureReply = mpsc::Sender<Result<CaptureRx, DataplaneError>>;

/// A port to add.
pub struct NewPort {
    /// The device (its descriptor is non-blocking).
    pub dev: Device,
    /// Port settings.
    pub cfg: PortConfig,
    /// The address of the endpoint behind the port, entered as static.
    pub static_mac: Option<MacAddr>,
    /// What it is.
    pub kind: PortKind,
    /// For listings.
    pub label: String,
}

struct PortIo {
    dev: Device,
    kind: PortKind,
    label: String,
    /// Set after a fatal read error (device gone): the port stays listed but is not polled.
    dead: bool,
}

/// The daemon's handle on the dataplane thread.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    wake: std::sync::Arc<EventFd>,
    sealing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Handle {
    fn call<T>(&self, make: impl FnOnce(mpsc::Sender<T>) -> Command) -> io::Result<T> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| io::Error::other("dataplane thread is gone"))?;
        self.wake.write(1).map_err(io::Error::from)?;
        rx.recv().map_err(|_| io::Error::other("dataplane thread is gone"))
    }

    /// Adds a network (`tunnel` for an overlay network).
    pub fn add_network(&self, id: NetworkId, cfg: NetworkConfig, tunnel: Option<Tunnel>) -> io::Result<()> {
        Ok(self.call(|tx| Command::AddNetwork(id, cfg, tunnel, tx))??)
    }

    /// Installs or retires security associations of sealed tunnels; returns once the
    /// dataplane applied the change.
    pub fn sa(&self, change: SaChange) -> io::Result<()> {
        self.call(|tx| Command::Sa(change, tx))
    }

    /// Whether an encrypted network is here (its hosts then need keys).
    pub fn sealing(&self) -> bool {
        self.sealing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where the ESP socket is bound, its counters and how many SAs it holds.
    pub fn esp(&self) -> io::Result<EspReport> {
        self.call(Command::Esp)
    }

    /// Removes a network.
    pub fn remove_network(&self, id: NetworkId) -> io::Result<()> {
        Ok(self.call(|tx| Command::RemoveNetwork(id, tx))??)
    }

    /// Adds a port.
    ///
    /// # Errors
    /// [`io::ErrorKind::AddrInUse`] when its static MAC is another port's, naming that port.
    pub fn add_port(&self, p: NewPort) -> io::Result<PortId> {
        Ok(self.call(|tx| Command::AddPort(Box::new(p), tx))??)
    }

    /// Removes a port, deleting its TAP device when `delete`.
    pub fn remove_port(&self, port: PortId) -> io::Result<Device> {
        Ok(self.call(|tx| Command::RemovePort(port, tx))??)
    }

    /// Names a port anew, as listings, traces and captures show it.
    pub fn relabel(&self, port: PortId, label: String) {
        if self.tx.send(Command::Relabel(port, label)).is_ok() {
            let _ = self.wake.write(1);
        }
    }

    /// Port listing.
    pub fn ports(&self) -> io::Result<Vec<PortInfo>> {
        self.call(Command::Ports)
    }

    /// Pins `mac` on `net` to a port (`Some`), answering ARP requests and neighbour
    /// solicitations for its addresses locally; or forgets it (`None`).
    pub fn set_static(&self, net: NetworkId, mac: MacAddr, at: Option<(PortId, Answered)>) -> io::Result<()> {
        Ok(self.call(|tx| Command::Static(net, mac, at, tx))??)
    }

    /// Where the VXLAN socket is bound (`None`: no overlay network is here, or the port could
    /// not be bound), and its counters since switchd started.
    pub fn vxlan(&self) -> io::Result<(Option<SocketAddr>, VxlanStats)> {
        self.call(Command::Vxlan)
    }

    /// How frames go to port descriptors and how the loop waits.
    pub fn io(&self) -> io::Result<IoStats> {
        self.call(Command::Io)
    }

    /// MAC table listing.
    pub fn fdb(&self) -> io::Result<Vec<FdbEntry>> {
        self.call(Command::Fdb)
    }

    /// Starts mirroring `port`'s frames: they arrive on the receiver until it is dropped; the
    /// counter says how many were dropped because the receiver fell behind.
    pub fn capture(&self, port: PortId) -> io::Result<CaptureRx> {
        Ok(self.call(|tx| Command::Capture(port, tx))??)
    }

    /// Traces `frame` (an Ethernet frame, no virtio-net header) arriving on `port`.
    pub fn trace(&self, port: PortId, frame: Vec<u8>) -> io::Result<TraceOut> {
        self.call(|tx| Command::Trace(port, frame, tx))
    }
}

/// Starts the dataplane thread; `vxlan` is where VXLAN peers are heard (a failure to bind
/// it is logged and leaves overlay networks without peers), and `esp_port` the port on the
/// same address where sealed tunnels are. After handling traffic the
/// thread keeps polling for `poll` before it sleeps (zero: it sleeps at once). With `batch`,
/// a burst's writes to port descriptors go out in one io_uring submission when the kernel
/// allows it.
pub fn spawn(seed: u64, vxlan: SocketAddr, esp_port: u16, poll: Duration, batch: bool) -> io::Result<Handle> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
    let wake = std::sync::Arc::new(
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(io::Error::from)?,
    );
    epoll
        .add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN))
        .map_err(io::Error::from)?;
    let (tx, rx) = mpsc::channel();
    let sealing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = Handle {
        tx,
        wake: wake.clone(),
        sealing: sealing.clone(),
    };
    std::thread::Builder::new().name("dataplane".into()).spawn(move || {
        let mut dp = Dataplane {
            switch: Switch::new(Instant::now(), seed),
            ports: Vec::new(),
            epoll,
            wake,
            rx,
            vtep: None,
            vxlan,
            vxlan_kept: VxlanStats::default(),
            esp: Esp::new(SocketAddr::new(vxlan.ip(), esp_port)),
            sealing,
            edge: Edge::new(),
            heads: Vec::with_capacity(64 * 128),
            vxlan_rx: vec![0; 1 << 16],
            esp_rx: vec![0; 1 << 16],
            coalescer: Coalescer::new(),
            captures: Vec::new(),
            rx_bufs: (0..BURST).map(|_| vec![0u8; VNET_HDR_LEN + MAX_FRAME]).collect(),
            unsettled: false,
            writer: match batch.then(crate::dataplane::batch::Writer::new) {
                Some(Ok(w)) => Some(w),
                Some(Err(e)) => {
                    tracing::info!("no io_uring ({e}): frames are written to ports one at a time");
                    None
                }
                None => None,
            },
            deferring: false,
            poll,
            polled: 0,
        };
        dp.run();
    })?;
    Ok(handle)
}

struct Dataplane {
    switch: Switch,
    ports: Vec<Option<PortIo>>,
    epoll: Epoll,
    wake: std::sync::Arc<EventFd>,
    rx: mpsc::Receiver<Command>,
    /// The VXLAN socket, bound while an overlay network exists (nothing listens for VXLAN on
    /// a host without one).
    vtep: Option<Vtep>,
    /// Where it binds: the cluster's advertise address, or every address without a cluster.
    vxlan: SocketAddr,
    /// Its counters while it is closed, carried into the next one.
    vxlan_kept: VxlanStats,
    /// The ESP socket of sealed tunnels (bound while an encrypted network exists) and the SAs.
    esp: Esp,
    /// Whether an encrypted network is here, for the cluster's key exchange to read.
    sealing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// VNIs, VXLAN peers and the addresses answered here (ARP suppression), with the
    /// forwarding decision the simulator shares. (Its maps use a fixed hasher: every key in
    /// them is one the daemon inserted, and a remote sender's address only looks up, so no
    /// sender can steer them into long probe chains.)
    edge: Edge,
    /// The segments' heads of a super-frame on its way into VXLAN tunnels (reused; the
    /// payload is sent from where it was read).
    heads: Vec<u8>,
    /// VXLAN datagrams as received (a train of them with UDP_GRO, up to 64 KB).
    vxlan_rx: Vec<u8>,
    /// ESP datagrams as received, opened in place.
    esp_rx: Vec<u8>,
    /// Segments received from the tunnels, joined into a super-frame for one write.
    coalescer: Coalescer,
    /// Ports being captured, and where their frames go.
    captures: Vec<Capture>,
    /// Frames read in one burst from a port, each in its own buffer, so that their writes can
    /// wait for the end of the burst.
    rx_bufs: Vec<Vec<u8>>,
    /// The burst's writes to port descriptors, submitted together (`None`: the kernel has no
    /// io_uring for us, and each frame is written as it is forwarded).
    writer: Option<crate::dataplane::batch::Writer>,
    /// Whether `forward` queues descriptor writes in `writer` (while a port's burst is read
    /// into `rx_bufs`) rather than writing at once.
    deferring: bool,
    /// The ring failed with writes of this burst submitted and not known to be done: the
    /// kernel may still read the burst's buffers, so they are never used again.
    unsettled: bool,
    /// How long the loop keeps polling after a round with traffic.
    poll: Duration,
    /// Rounds with traffic after which the loop kept polling.
    polled: u64,
}

/// How the dataplane writes frames to port descriptors and how its loop waits for them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IoStats {
    /// Whether a burst's writes go in one io_uring submission.
    pub batched: bool,
    /// Frames written in bursts.
    pub frames: u64,
    /// The bursts that carried them.
    pub bursts: u64,
    /// How long the loop keeps polling after traffic (zero: never).
    pub poll: Duration,
    /// Rounds with traffic after which it kept polling.
    pub polled: u64,
}

/// A frame mirrored from a captured port.
#[derive(Debug)]
pub struct Mirrored {
    /// Nanoseconds after the Unix epoch.
    pub ns: u64,
    /// Into the switch from the port's device, or out to it.
    pub dir: control_plane::capture::Direction,
    /// The Ethernet frame (a super-frame as it passed, when offloads made one).
    pub frame: Vec<u8>,
}

/// How many mirrored frames may wait for a slow reader before more are dropped.
const CAPTURE_QUEUE: usize = 4096;

struct Capture {
    port: PortId,
    tx: tokio::sync::mpsc::Sender<Mirrored>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Dataplane {
    /// The loop: wait for ports, the VTEP or commands; handle what is ready. After a round
    /// that had frames, the next waits do not sleep until `poll` has passed without work: a
    /// stream's next frames usually come within microseconds, and a sleeping thread's wake-up
    /// costs tens of them on a VM. A poll that finds nothing yields the CPU to any thread
    /// waiting for it.
    fn run(&mut self) {
        let poll = self.poll;
        let mut buf = vec![0u8; VNET_HDR_LEN + MAX_FRAME];
        let mut events = vec![EpollEvent::empty(); 64];
        let mut next_expire: Option<Instant> = None;
        let mut poll_until: Option<Instant> = None;
        let mut now = Instant::now();
        loop {
            let timeout = if poll_until.is_some_and(|t| now < t) {
                EpollTimeout::ZERO
            } else {
                next_expire.map_or(EpollTimeout::NONE, |t| {
                    EpollTimeout::from(wait_ms(t.saturating_duration_since(Instant::now())))
                })
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!("dataplane epoll failed: {e}; the dataplane stops");
                    return;
                }
            };
            if n == 0 && timeout == EpollTimeout::ZERO {
                // Polling found nothing: let a thread that shares this CPU run first. What this
                // loop waits for is often made there (a sandbox's TCP, the other end of a
                // tunnel); spinning past it cost a cross-host stream 10% and 60 µs of RTT.
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
            let mut traffic = false;
            for ev in &events[..n] {
                if ev.data() == WAKE_TOKEN {
                    let _ = self.wake.read();
                    if !self.commands() {
                        return;
                    }
                } else if ev.data() == VXLAN_TOKEN {
                    self.drain_vxlan(&mut buf);
                    traffic = true;
                } else if ev.data() == ESP_TOKEN {
                    self.drain_esp(&mut buf);
                    traffic = true;
                } else {
                    self.drain(PortId(ev.data() as u32));
                    traffic = true;
                }
            }
            now = Instant::now();
            // A command (a listing, a port added) says nothing of frames to come.
            if traffic && !poll.is_zero() {
                poll_until = Some(now + poll);
                self.polled += 1;
            }
            if next_expire.is_none_or(|t| t <= now) {
                next_expire = self.switch.expire(now).or(Some(now + Duration::from_secs(1)));
            }
        }
    }

    /// Handles pending commands; false when the daemon hung up.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(cmd) => self.command(cmd),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::AddNetwork(id, cfg, tunnel, tx) => {
                let r = match tunnel {
                    Some(t) if self.edge.network_of(t.vni).is_some() => Err(VniInUse(t.vni).into()),
                    _ => self.switch.add_network(id, cfg).map_err(DataplaneError::Switch),
                };
                if let (Ok(()), Some(t)) = (&r, tunnel) {
                    let _ = self.edge.add_network(t.vni, id);
                    self.edge.set_sealed(t.vni, t.sealed);
                    self.open_vtep();
                    if t.sealed {
                        self.open_esp();
                    }
                }
                let _ = tx.send(r);
            }
            Command::RemoveNetwork(id, tx) => {
                let r = self.switch.remove_network(id).map_err(DataplaneError::Switch);
                if r.is_ok() {
                    self.edge.remove_network(id);
                    if !self.edge.has_networks() {
                        self.close_vtep();
                    }
                    if !self.edge.has_sealed() {
                        self.close_esp();
                    }
                }
                let _ = tx.send(r);
            }
            Command::Sa(change, tx) => {
                self.esp.apply(change);
                let _ = tx.send(());
            }
            Command::Esp(tx) => {
                let (sas_in, sas_out) = self.esp.sa_counts();
                let _ = tx.send(EspReport {
                    bound: self.esp.bound(),
                    stats: self.esp.stats.clone(),
                    sas_in,
                    sas_out,
                });
            }
            Command::Static(net, mac, at, tx) => {
                let r = match at {
                    Some((p, ip)) => self.pin(net, mac, p, ip),
                    None => {
                        self.edge.unpin(&mut self.switch, net, mac);
                        Ok(())
                    }
                };
                let _ = tx.send(r);
            }
            Command::Vxlan(tx) => {
                let _ = tx.send(match &self.vtep {
                    Some(v) => (Some(self.vxlan), v.stats.clone()),
                    None => (None, self.vxlan_kept.clone()),
                });
            }
            Command::Io(tx) => {
                let (frames, bursts) = self.writer.as_ref().map_or((0, 0), |w| w.counts());
                let _ = tx.send(IoStats {
                    batched: self.writer.is_some(),
                    frames,
                    bursts,
                    poll: self.poll,
                    polled: self.polled,
                });
            }
            Command::AddPort(p, tx) => {
                let _ = tx.send(self.add_port(*p));
            }
            Command::RemovePort(id, tx) => {
                let _ = tx.send(self.remove_port(id));
            }
            Command::Relabel(id, label) => {
                if let Some(Some(p)) = self.ports.get_mut(id.0 as usize) {
                    p.label = label;
                }
            }
            Command::Ports(tx) => {
                let list = self
                    .ports
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        let p = p.as_ref()?;
                        let id = PortId(i as u32);
                        Some(PortInfo {
                            port: id,
                            network: self.switch.port_network(id)?,
                            kind: p.kind.clone(),
                            label: p.label.clone(),
                            counters: self.switch.counters(id)?.clone(),
                        })
                    })
                    .collect();
                let _ = tx.send(list);
            }
            Command::Fdb(tx) => {
                let _ = tx.send(self.switch.fdb().collect());
            }
            Command::Trace(port, frame, tx) => {
                let _ = tx.send(self.trace(port, &frame));
            }
            Command::Capture(port, tx) => {
                let r = if self.switch.port_network(port).is_some() {
                    let (mtx, mrx) = tokio::sync::mpsc::channel(CAPTURE_QUEUE);
                    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                    self.captures.retain(|c| !c.tx.is_closed());
                    self.captures.push(Capture {
                        port,
                        tx: mtx,
                        dropped: dropped.clone(),
                    });
                    Ok((mrx, dropped))
                } else {
                    Err(DataplaneError::NoPort(port))
                };
                let _ = tx.send(r);
            }
        }
    }

    fn trace(&self, ingress: PortId, frame: &[u8]) -> TraceOut {
        let t = self.switch.trace(Instant::now(), ingress, frame);
        if let Some((mac, q)) = self.answer(ingress, frame) {
            let ip = q.target();
            let (stage, what, suppression) = match q {
                overlay::edge::Question::Arp(_) => ("arp", "an ARP request", "ARP suppression"),
                overlay::edge::Question::Nd(_) => ("nd", "a neighbour solicitation", "neighbour suppression"),
            };
            // The request still teaches the switch its sender; it goes no further.
            let mut stages = vec![TraceStage {
                stage,
                decision: format!(
                    "{what} for {ip}, which lives on another host as {mac}: answered here on port {ingress}, not forwarded"
                ),
            }];
            stages.extend(t.stages.into_iter().filter(|s| matches!(s.stage, "parse" | "learn")));
            return TraceOut {
                stages,
                verdict: format!("answered here ({suppression})"),
                out_ports: vec![ingress],
            };
        }
        let mut stages = t.stages;
        let (verdict, out) = match t.verdict {
            TraceVerdict::Drop(r) => (format!("drop ({})", r.as_str()), Vec::new()),
            TraceVerdict::Forward(p) => (format!("forward to port {p}"), vec![p]),
            TraceVerdict::Flood(ports) => {
                let list: Vec<String> = ports.iter().map(ToString::to_string).collect();
                (format!("flood to ports {}", list.join(", ")), ports)
            }
        };
        let mut out_ports = Vec::new();
        for p in out {
            let how = match self.ports.get(p.0 as usize) {
                Some(Some(pio)) if pio.dead => format!("port {p} ({}): its device is gone, skipped", pio.label),
                Some(Some(pio)) => {
                    out_ports.push(p);
                    match pio.dev.egress() {
                        Egress::Fd(_) => format!("port {p} ({}): written to its interface", pio.label),
                        Egress::Tagged(_, vlan) => {
                            format!(
                                "port {p} ({}): tagged with VLAN {} on the uplink",
                                pio.label,
                                vlan.get()
                            )
                        }
                        Egress::Vtep(addr, vni) if self.edge.is_sealed(vni) => format!(
                            "port {p} ({}): VXLAN to {addr}, VNI {vni}, sealed as ESP to {}{}",
                            pio.label,
                            addr.ip(),
                            if self.esp.has_outbound(addr.ip()) {
                                ""
                            } else {
                                " (no key with that host yet: dropped, tx_no_key)"
                            }
                        ),
                        Egress::Vtep(addr, vni) => match &self.vtep {
                            Some(_) => format!("port {p} ({}): VXLAN to {addr}, VNI {vni}", pio.label),
                            None => format!(
                                "port {p} ({}): no VXLAN socket on this host, dropped (tx_failed)",
                                pio.label
                            ),
                        },
                    }
                }
                _ => format!("port {p}: not attached, skipped"),
            };
            stages.push(TraceStage {
                stage: "output",
                decision: how,
            });
        }
        TraceOut {
            stages,
            verdict,
            out_ports,
        }
    }

    /// Binds the VXLAN socket, when it is not (the first overlay network came). A port that
    /// cannot be bound is logged, and the overlay networks have no VXLAN peers meanwhile.
    fn open_vtep(&mut self) {
        if self.vtep.is_some() {
            return;
        }
        let opened = Vtep::bind(self.vxlan, std::mem::take(&mut self.vxlan_kept)).and_then(|v| {
            self.epoll
                .add(v.rx_fd(), EpollEvent::new(EpollFlags::EPOLLIN, VXLAN_TOKEN))
                .map_err(io::Error::from)?;
            Ok(v)
        });
        match opened {
            Ok(v) => {
                tracing::info!(addr = %self.vxlan, "VXLAN port bound");
                self.vtep = Some(v);
            }
            Err(e) => tracing::error!("{e}; overlay networks have no VXLAN peers until it can be bound"),
        }
    }

    /// Binds the ESP socket, when it is not (the first encrypted network came). A port that
    /// cannot be bound is logged; the encrypted networks then reach no other host.
    fn open_esp(&mut self) {
        self.sealing.store(true, std::sync::atomic::Ordering::Relaxed);
        let opened = self.esp.open().and_then(|fd| match fd {
            Some(fd) => self
                .epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, ESP_TOKEN))
                .map(|()| true)
                .map_err(io::Error::from),
            None => Ok(false),
        });
        match opened {
            Ok(true) => tracing::info!(addr = ?self.esp.bound(), "ESP port bound: encrypted overlay networks are here"),
            Ok(false) => {}
            Err(e) => {
                self.esp.close();
                tracing::error!("{e}; encrypted overlay networks reach no other host until it can be bound");
            }
        }
    }

    /// Closes the ESP socket (the last encrypted network went); the SAs stay for the next.
    fn close_esp(&mut self) {
        self.sealing.store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = self.esp.close() {
            let _ = self.epoll.delete(&s);
            tracing::info!("ESP port closed: no encrypted network is left");
        }
    }

    /// Closes the VXLAN socket (the last overlay network went), keeping its counters.
    fn close_vtep(&mut self) {
        if let Some(v) = self.vtep.take() {
            let _ = self.epoll.delete(v.rx_fd());
            self.vxlan_kept = v.stats.clone();
            tracing::info!(addr = %self.vxlan, "VXLAN port closed: no overlay network is left");
        }
    }

    fn add_port(&mut self, p: NewPort) -> Result<PortId, DataplaneError> {
        let net = p.cfg.network;
        let peer = match &p.dev {
            Device::Vtep { addr, vni } => {
                if self.vtep.is_none() {
                    return Err(DataplaneError::NoVtep);
                }
                if self.edge.network_of(*vni) != Some(net) {
                    return Err(DataplaneError::ForeignVni(*vni));
                }
                if self.edge.has_peer(addr.ip(), *vni) {
                    return Err(DataplaneError::PeerExists {
                        addr: addr.ip(),
                        vni: *vni,
                    });
                }
                Some((addr.ip(), *vni))
            }
            _ => None,
        };
        let id = self.switch.add_port(p.cfg).map_err(DataplaneError::Switch)?;
        if let Some(mac) = p.static_mac {
            if let Err(e) = self.switch.add_static(Instant::now(), net, mac, id) {
                let _ = self.switch.remove_port(id);
                return Err(self.static_refused(e));
            }
        }
        if let Some(fd) = p.dev.fd() {
            let ev = EpollEvent::new(EpollFlags::EPOLLIN, u64::from(id.0));
            if let Err(e) = self.epoll.add(fd, ev) {
                let _ = self.switch.remove_port(id);
                return Err(DataplaneError::Poll {
                    label: p.label,
                    source: e,
                });
            }
        }
        if let Some((addr, vni)) = peer {
            self.edge.add_peer(addr, vni, id);
        }
        let idx = id.0 as usize;
        if self.ports.len() <= idx {
            self.ports.resize_with(idx + 1, || None);
        }
        self.ports[idx] = Some(PortIo {
            dev: p.dev,
            kind: p.kind,
            label: p.label,
            dead: false,
        });
        Ok(id)
    }

    /// Pins a remote endpoint's `mac` to the VXLAN peer port `port` ([`Edge::pin`]).
    fn pin(&mut self, net: NetworkId, mac: MacAddr, port: PortId, a: Answered) -> Result<(), DataplaneError> {
        self.edge
            .pin(&mut self.switch, Instant::now(), net, mac, port, a)
            .map_err(|e| self.static_refused(e))
    }

    /// A refused static MAC, naming who holds it when another port does.
    fn static_refused(&self, e: switch::SwitchError) -> DataplaneError {
        match e {
            switch::SwitchError::MacTaken { mac, owner, .. } => {
                let holder = match self.ports.get(owner.0 as usize) {
                    Some(Some(pio)) => match pio.kind {
                        PortKind::Gateway => format!("the gateway interface {}", pio.label),
                        PortKind::Vtep => format!("a sandbox on another host (reached through {})", pio.label),
                        _ => pio.label.clone(),
                    },
                    _ => format!("port {owner}"),
                };
                DataplaneError::MacTaken { mac, holder }
            }
            other => DataplaneError::Switch(other),
        }
    }

    fn remove_port(&mut self, id: PortId) -> Result<Device, DataplaneError> {
        let io = self
            .ports
            .get_mut(id.0 as usize)
            .and_then(Option::take)
            .ok_or(DataplaneError::NoPort(id))?;
        if let Some(fd) = io.dev.fd() {
            let _ = self.epoll.delete(fd);
        }
        self.edge.remove_port(id);
        // Its captures end with it (their readers see the stream close), so a port that later
        // takes the same number is not captured by mistake.
        self.captures.retain(|c| c.port != id);
        self.switch.remove_port(id).map_err(DataplaneError::Switch)?;
        Ok(io.dev)
    }

    /// Reads up to a burst of frames from `port` and forwards each.
    fn drain(&mut self, port: PortId) {
        let Some(Some(pio)) = self.ports.get(port.0 as usize) else {
            return;
        };
        let (fd, vlan) = match pio.dev.egress() {
            Egress::Fd(fd) => (fd, None),
            Egress::Tagged(fd, vlan) => (fd, Some(vlan)),
            Egress::Vtep(..) => return,
        };
        if pio.dead {
            return;
        }
        // One clock read per burst: a burst takes microseconds, aging works in milliseconds.
        let now = Instant::now();
        // Each frame in its own buffer, out of self while they are forwarded; their writes
        // to descriptors are queued and go out together at the end.
        let mut bufs = std::mem::take(&mut self.rx_bufs);
        self.deferring = self.writer.is_some();
        for buf in bufs.iter_mut() {
            let buf = &mut buf[..];
            let got = match vlan {
                None => {
                    // SAFETY: buf is a valid writable buffer of buf.len() bytes; fd is a live descriptor.
                    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok((n as usize, None))
                    }
                }
                Some(_) => uplink::recv(fd, buf),
            };
            let (mut n, lifted) = match got {
                Ok(r) => r,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        self.mark_dead(port, &e);
                        break;
                    }
                },
            };
            if n < VNET_HDR_LEN {
                self.switch.record_drop(port, DropReason::TooShort);
                continue;
            }
            if let Some(v) = vlan {
                match trunk_rx(&buf[VNET_HDR_LEN..n], lifted, v) {
                    TrunkRx::Accept => {}
                    TrunkRx::StripInline => n = uplink::strip_inline(buf, n),
                    TrunkRx::Reject => {
                        self.switch.record_drop(port, DropReason::WrongVlan);
                        continue;
                    }
                }
            }
            self.forward(now, port, &mut buf[..n]);
        }
        self.flush_writes();
        self.deferring = false;
        self.rx_bufs = settle(bufs, std::mem::take(&mut self.unsettled));
    }

    /// Queues the write of `packet` (one of the burst's buffers in `drain`) to `fd` for port
    /// `p`, flushing first when the queue is full; false when there is no ring (any more) and
    /// the caller writes it now.
    fn queue_write(&mut self, fd: RawFd, packet: &[u8], p: PortId, bytes: usize) -> bool {
        if self.writer.as_ref().is_some_and(|w| !w.has_room()) {
            self.flush_writes();
        }
        let Some(w) = self.writer.as_mut() else { return false };
        // SAFETY: packet is one of the burst's buffers (`drain`), untouched until the flush at
        // the end of the burst; fd is a live descriptor owned by self.ports, which no command
        // changes during the burst.
        unsafe { w.push(fd, packet, p, bytes) };
        true
    }

    /// Submits the writes `forward` queued and counts each as sent or failed. A ring that
    /// failed itself is dropped: from then on frames are written one at a time.
    fn flush_writes(&mut self) {
        let Some(w) = self.writer.as_mut() else { return };
        if w.is_empty() {
            return;
        }
        let switch = &mut self.switch;
        let r = w.flush(|p, bytes, ok| {
            if ok {
                switch.record_tx(p, bytes);
            } else {
                switch.record_drop(p, DropReason::TxFailed);
            }
        });
        if let Err(e) = r {
            tracing::warn!("batched port writes failed ({e}): frames are written one at a time from now on");
            self.writer = None;
            self.deferring = false;
            self.unsettled = true;
        }
    }

    /// Reads VXLAN trains (datagrams the kernel joined, UDP_GRO) until a burst of datagrams
    /// has come, and forwards their inner frames from the peer's port; datagrams of unknown
    /// VNIs or from unknown peers are counted and dropped. Consecutive TCP segments of one flow
    /// from one peer are joined into a super-frame first, read where they were received
    /// (within this burst: nothing waits for a later one); any other frame is copied behind a
    /// plain virtio-net header into `buf` and forwarded alone.
    fn drain_vxlan(&mut self, buf: &mut [u8]) {
        let now = Instant::now();
        let mut held: Option<PortId> = None;
        // Out of self while its frames are forwarded (which needs all of self).
        let mut rx = std::mem::take(&mut self.vxlan_rx);
        let mut datagrams = 0;
        while datagrams < BURST {
            let Some(vtep) = self.vtep.as_mut() else { break };
            let train = match vtep.recv_train(&mut rx) {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("VXLAN receive: {e}");
                    break;
                }
            };
            for datagram in rx[..train.len].chunks(train.seg) {
                datagrams += 1;
                let Some(vtep) = self.vtep.as_mut() else { break };
                vtep.stats.rx_packets += 1;
                self.tunnelled(now, &mut held, buf, train.from, datagram, Carried::Clear);
            }
        }
        self.forward_held(now, &mut held);
        self.vxlan_rx = rx;
    }

    /// Reads ESP trains (sealed datagrams of encrypted networks) until a burst has come, opens
    /// each in place under its SA, and forwards the VXLAN datagrams inside as
    /// [`Dataplane::drain_vxlan`] does; what does not open is counted and dropped.
    fn drain_esp(&mut self, buf: &mut [u8]) {
        let now = Instant::now();
        let mut held: Option<PortId> = None;
        let mut rx = std::mem::take(&mut self.esp_rx);
        let mut datagrams = 0;
        while datagrams < BURST {
            let train = match self.esp.recv_train(&mut rx) {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("ESP receive: {e}");
                    break;
                }
            };
            for sealed in rx[..train.len].chunks_mut(train.seg) {
                datagrams += 1;
                if let Some(datagram) = self.esp.unseal(train.from, sealed) {
                    self.tunnelled(now, &mut held, buf, train.from, datagram, Carried::Sealed);
                }
            }
        }
        self.forward_held(now, &mut held);
        self.esp_rx = rx;
    }

    /// Forwards the frame in a VXLAN `datagram` from `from`, `carried` so, from its peer's
    /// port: joined to the super-frame held for that port when it can be, or alone through
    /// `buf`. Refused datagrams are counted.
    fn tunnelled(
        &mut self,
        now: Instant,
        held: &mut Option<PortId>,
        buf: &mut [u8],
        from: IpAddr,
        datagram: &[u8],
        carried: Carried,
    ) {
        let (port, frame) = match self.edge.decap(from, datagram, carried) {
            Ok(x) => x,
            Err(why) => {
                let s = match self.vtep.as_mut() {
                    Some(v) => &mut v.stats,
                    None => &mut self.vxlan_kept,
                };
                match why {
                    Refused::Malformed => s.rx_malformed += 1,
                    Refused::UnknownVtep => s.rx_unknown_vtep += 1,
                    Refused::UnknownVni => s.rx_unknown_vni += 1,
                    Refused::Unsealed => s.rx_unsealed += 1,
                }
                return;
            }
        };
        if *held == Some(port) && self.coalescer.add(frame) {
            return;
        }
        self.forward_held(now, held);
        if self.coalescer.add(frame) {
            *held = Some(port);
            return;
        }
        let n = VNET_HDR_LEN + frame.len();
        buf[..VNET_HDR_LEN].fill(0);
        buf[VNET_HDR_LEN..n].copy_from_slice(frame);
        self.forward(now, port, &mut buf[..n]);
    }

    /// Forwards what the coalescer holds, received on port `held`.
    fn forward_held(&mut self, now: Instant, held: &mut Option<PortId>) {
        if let Some(port) = held.take() {
            let mut c = std::mem::take(&mut self.coalescer);
            self.forward(now, port, c.take());
            self.coalescer = c;
        }
    }

    /// Sends the reply to an ARP request or a neighbour solicitation from a local port for an
    /// address known to live on another host ([`Edge::decide`] answered it instead of
    /// flooding it through the tunnels).
    fn send_reply(&mut self, ingress: PortId, frame: &[u8]) {
        let Some(Egress::Fd(fd)) = egress_of(&self.ports, ingress) else {
            return;
        };
        let mut reply = [0u8; VNET_HDR_LEN + overlay::edge::REPLY_LEN];
        let n = VNET_HDR_LEN + frame.len();
        reply[VNET_HDR_LEN..n].copy_from_slice(frame);
        // SAFETY: reply is a valid buffer of n bytes; fd is a live descriptor owned by self.ports.
        if unsafe { libc::write(fd, reply.as_ptr().cast(), n) } < 0 {
            self.switch.record_drop(ingress, DropReason::TxFailed);
        } else {
            self.switch.record_tx(ingress, frame.len());
            if !self.captures.is_empty() {
                self.mirror(ingress, Direction::Outbound, frame);
            }
        }
    }

    /// Copies a frame to the captures of `port`; captures whose reader went are dropped.
    #[cold]
    fn mirror(&mut self, port: PortId, dir: control_plane::capture::Direction, frame: &[u8]) {
        use std::sync::atomic::Ordering;
        use tokio::sync::mpsc::error::TrySendError;
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.captures.retain(|c| {
            if c.port != port {
                return !c.tx.is_closed();
            }
            let m = Mirrored {
                ns,
                dir,
                frame: frame.to_vec(),
            };
            match c.tx.try_send(m) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }

    /// The MAC (and question) an ARP request or a neighbour solicitation in `frame` from
    /// `ingress` is answered with here: the target is pinned to another host and the port can
    /// take the reply.
    fn answer(&self, ingress: PortId, frame: &[u8]) -> Option<(MacAddr, overlay::edge::Question)> {
        let answer = self.edge.answer(&self.switch, ingress, frame)?;
        matches!(egress_of(&self.ports, ingress), Some(Egress::Fd(_))).then_some(answer)
    }

    fn forward(&mut self, now: Instant, ingress: PortId, packet: &mut [u8]) {
        if !self.captures.is_empty() {
            self.mirror(ingress, Direction::Inbound, &packet[VNET_HDR_LEN..]);
        }
        let can_reply =
            !self.edge.nothing_suppressed() && matches!(egress_of(&self.ports, ingress), Some(Egress::Fd(_)));
        let bytes = packet.len() - VNET_HDR_LEN;
        // The verdict borrows the switch; collect the egress ports first.
        let mut out: [(PortId, Egress); 32] = [(PortId(0), Egress::Fd(-1)); 32];
        let mut n_out = 0usize;
        let mut overflow: Vec<(PortId, Egress)> = Vec::new();
        let mut reply = [0u8; overlay::edge::REPLY_LEN];
        let verdict = match self.edge.decide(
            &mut self.switch,
            now,
            ingress,
            gso_of(packet),
            &packet[VNET_HDR_LEN..],
            can_reply.then_some(&mut reply),
        ) {
            Decision::Reply(n) => {
                self.send_reply(ingress, &reply[..n]);
                return;
            }
            Decision::Switch(v) => v,
        };
        match verdict {
            Verdict::Drop(_) => return,
            Verdict::Forward(p) => {
                if let Some(e) = egress_of(&self.ports, p) {
                    out[0] = (p, e);
                    n_out = 1;
                }
            }
            Verdict::Flood(f) => {
                for p in f.ports() {
                    let Some(e) = egress_of(&self.ports, p) else { continue };
                    if n_out < out.len() {
                        out[n_out] = (p, e);
                        n_out += 1;
                    } else {
                        overflow.push((p, e));
                    }
                }
            }
        }
        // Descriptors first, with the virtio-net header intact; then the VXLAN peers, for which
        // the header's tail is overwritten with the VXLAN header.
        let (mut peers, mut queued) = (false, false);
        for &(p, e) in out[..n_out].iter().chain(overflow.iter()) {
            let sent = match e {
                Egress::Fd(fd) if self.deferring && self.queue_write(fd, packet, p, bytes) => {
                    queued = true;
                    if !self.captures.is_empty() {
                        self.mirror(p, Direction::Outbound, &packet[VNET_HDR_LEN..]);
                    }
                    continue;
                }
                Egress::Fd(fd) => {
                    // SAFETY: packet is a valid buffer; fd is a live descriptor owned by self.ports.
                    unsafe { libc::write(fd, packet.as_ptr().cast(), packet.len()) >= 0 }
                }
                Egress::Tagged(fd, vlan) => uplink::send(fd, packet, vlan).is_ok(),
                Egress::Vtep(..) => {
                    peers = true;
                    continue;
                }
            };
            if sent {
                self.switch.record_tx(p, bytes);
                if !self.captures.is_empty() {
                    self.mirror(p, Direction::Outbound, &packet[VNET_HDR_LEN..]);
                }
            } else {
                self.switch.record_drop(p, DropReason::TxFailed);
            }
        }
        if peers {
            self.send_to_peers(packet, bytes, queued, &out[..n_out], &overflow);
        }
    }

    /// Sends `packet` (`bytes` of frame) to the VXLAN peers among `egress` and `overflow`;
    /// `queued` when writes for descriptors are queued with it still.
    fn send_to_peers(
        &mut self,
        packet: &mut [u8],
        bytes: usize,
        queued: bool,
        egress: &[(PortId, Egress)],
        overflow: &[(PortId, Egress)],
    ) {
        // A tunnelled frame must be whole: a super-frame is cut into segments and a checksum
        // left to the device is completed, once for all the peers.
        let plain = packet[0] == 0 && packet[1] == 0;
        if plain && queued {
            // A plain frame is encapsulated in place, over its virtio-net header's tail, which
            // the writes queued for it still have to send as it is.
            self.flush_writes();
        }
        let segments = if plain {
            None
        } else {
            let hdr = VirtioNetHdr::parse(packet).unwrap_or_default();
            self.heads.clear();
            Some(cut_tcp(
                &hdr,
                &packet[VNET_HDR_LEN..],
                VXLAN_HEADER_LEN,
                &mut self.heads,
            ))
        };
        for &(p, e) in egress.iter().chain(overflow) {
            let Egress::Vtep(addr, vni) = e else { continue };
            if let Some(Err(_)) = &segments {
                self.switch.record_drop(p, DropReason::BadOffload);
                continue;
            }
            let sent = if self.edge.is_sealed(vni) {
                match &segments {
                    Some(Ok(cut)) => self
                        .esp
                        .send_cut(&mut self.heads, cut, &packet[VNET_HDR_LEN..], vni, addr.ip()),
                    _ => self.esp.send(&packet[VNET_HDR_LEN..], vni, addr.ip()),
                }
            } else {
                let Some(vtep) = self.vtep.as_mut() else {
                    self.switch.record_drop(p, DropReason::TxFailed);
                    continue;
                };
                match &segments {
                    Some(Ok(cut)) => vtep.send_cut(&mut self.heads, cut, &packet[VNET_HDR_LEN..], vni, addr),
                    _ => vtep.send(packet, vni, addr),
                }
            };
            if sent.is_ok() {
                self.switch.record_tx(p, bytes);
                if !self.captures.is_empty() {
                    self.mirror(p, Direction::Outbound, &packet[VNET_HDR_LEN..]);
                }
            } else {
                self.switch.record_drop(p, DropReason::TxFailed);
            }
        }
    }

    fn mark_dead(&mut self, port: PortId, e: &io::Error) {
        if let Some(Some(pio)) = self.ports.get_mut(port.0 as usize) {
            tracing::warn!(port = %port, label = %pio.label, "port read failed: {e}; the port stops being polled");
            if let Some(fd) = pio.dev.fd() {
                let _ = self.epoll.delete(fd);
            }
            pio.dead = true;
        }
    }
}

/// The epoll timeout, in whole milliseconds, for a deadline `left` away: rounded up, since a
/// wait cut to 0 ms would return at once and the loop would spin until the deadline; at most a
/// minute (the deadline is looked at again after any wake-up anyway).
fn wait_ms(left: Duration) -> u16 {
    left.as_nanos().div_ceil(1_000_000).min(60_000) as u16
}

/// The buffers for the next burst: `bufs` again, or, when writes the kernel may not have
/// finished still point into them (`unsettled`), fresh ones. The old ones are then leaked on
/// purpose: a write still in flight reads them unchanged, never the next burst's frames.
fn settle(bufs: Vec<Vec<u8>>, unsettled: bool) -> Vec<Vec<u8>> {
    if !unsettled {
        return bufs;
    }
    let fresh = bufs.iter().map(|b| vec![0u8; b.len()]).collect();
    std::mem::forget(bufs);
    fresh
}

/// The segmentation a frame's virtio-net header announces, if any.
#[inline]
fn gso_of(packet: &[u8]) -> Option<Gso> {
    let h = overlay::offload::VirtioNetHdr::parse(packet)?;
    let gso_type = h.gso_type & !overlay::offload::VIRTIO_NET_HDR_GSO_ECN;
    (gso_type != overlay::offload::VIRTIO_NET_HDR_GSO_NONE).then_some(Gso {
        segment_size: h.gso_size,
    })
}

fn egress_of(ports: &[Option<PortIo>], p: PortId) -> Option<Egress> {
    match ports.get(p.0 as usize) {
        Some(Some(pio)) if !pio.dead => Some(pio.dev.egress()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn buffers_a_failed_ring_may_still_read_are_never_used_again() {
        let bufs = vec![vec![7u8; 32], vec![8u8; 32]];
        let at: Vec<*const u8> = bufs.iter().map(|b| b.as_ptr()).collect();
        let same = settle(bufs, false);
        assert_eq!(same.iter().map(|b| b.as_ptr()).collect::<Vec<_>>(), at);
        let fresh = settle(same, true);
        assert_eq!(fresh.iter().map(Vec::len).collect::<Vec<_>>(), [32, 32]);
        assert!(
            fresh.iter().all(|b| !at.contains(&b.as_ptr())),
            "a buffer was handed out again"
        );
    }

    use super::*;

    #[test]
    fn a_wait_for_the_next_tick_is_rounded_up_to_whole_milliseconds() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_nanos(1), 1),
            (Duration::from_micros(999), 1),
            (Duration::from_millis(1), 1),
            (Duration::from_micros(1_001), 2),
            (Duration::from_millis(999), 999),
            (Duration::from_secs(60), 60_000),
            (Duration::from_secs(3_600), 60_000),
        ];
        for (left, ms) in cases {
            assert_eq!(wait_ms(left), ms, "{left:?}");
        }
    }
}
