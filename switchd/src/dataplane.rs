//! The dataplane thread: owns the switch core and every port's descriptor, waits on epoll,
//! reads frames in bursts, asks the core for a verdict and writes them out.
//!
//! Control requests come through a channel and an eventfd that wakes the loop, so the core
//! and the descriptors are touched by this thread only: no lock on the frame path.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use switch::{
    DropReason, FdbEntry, MacAddr, NetworkConfig, NetworkId, PortConfig, PortCounters, PortId, Switch, Verdict,
};
use tun_rs::SyncDevice;

use crate::tap::VNET_HDR_LEN;

/// Largest frame a TAP port with segmentation offload hands us: a 64 KB super-frame plus
/// link headers.
const MAX_FRAME: usize = 65_535 + 64;
/// Frames read from one port before the loop turns to the next ready port.
const BURST: usize = 64;
const WAKE_TOKEN: u64 = u64::MAX;

/// What a port is, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// A sandbox's TAP interface.
    Tap,
    /// A sandbox's veth interface, read through AF_PACKET on the host end.
    Veth,
    /// The host side of a bridge network.
    Gateway,
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
}

impl Device {
    fn raw(&self) -> RawFd {
        match self {
            Device::Tap(d) => d.as_raw_fd(),
            Device::Packet { fd, .. } => fd.as_raw_fd(),
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Device::Tap(d) => d.as_fd(),
            Device::Packet { fd, .. } => fd.as_fd(),
        }
    }
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

/// A request to the dataplane thread.
pub enum Command {
    /// Adds a network to the switch.
    AddNetwork(NetworkId, NetworkConfig, mpsc::Sender<Result<(), String>>),
    /// Removes a network without ports.
    RemoveNetwork(NetworkId, mpsc::Sender<Result<(), String>>),
    /// Adds a port over a TAP device, with the static MAC of the endpoint behind it.
    AddPort(Box<NewPort>, mpsc::Sender<Result<PortId, String>>),
    /// Removes a port and hands its device back.
    RemovePort(PortId, mpsc::Sender<Result<Device, String>>),
    /// Lists the ports and their counters.
    Ports(mpsc::Sender<Vec<PortInfo>>),
    /// Lists the MAC table.
    Fdb(mpsc::Sender<Vec<FdbEntry>>),
}

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

    /// Adds a network.
    pub fn add_network(&self, id: NetworkId, cfg: NetworkConfig) -> io::Result<()> {
        self.call(|tx| Command::AddNetwork(id, cfg, tx))?
            .map_err(io::Error::other)
    }

    /// Removes a network.
    pub fn remove_network(&self, id: NetworkId) -> io::Result<()> {
        self.call(|tx| Command::RemoveNetwork(id, tx))?
            .map_err(io::Error::other)
    }

    /// Adds a port.
    pub fn add_port(&self, p: NewPort) -> io::Result<PortId> {
        self.call(|tx| Command::AddPort(Box::new(p), tx))?
            .map_err(io::Error::other)
    }

    /// Removes a port, deleting its TAP device when `delete`.
    pub fn remove_port(&self, port: PortId) -> io::Result<Device> {
        self.call(|tx| Command::RemovePort(port, tx))?.map_err(io::Error::other)
    }

    /// Port listing.
    pub fn ports(&self) -> io::Result<Vec<PortInfo>> {
        self.call(Command::Ports)
    }

    /// MAC table listing.
    pub fn fdb(&self) -> io::Result<Vec<FdbEntry>> {
        self.call(Command::Fdb)
    }
}

/// Starts the dataplane thread.
pub fn spawn(seed: u64) -> io::Result<Handle> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
    let wake = std::sync::Arc::new(
        EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(io::Error::from)?,
    );
    epoll
        .add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE_TOKEN))
        .map_err(io::Error::from)?;
    let (tx, rx) = mpsc::channel();
    let handle = Handle { tx, wake: wake.clone() };
    std::thread::Builder::new().name("dataplane".into()).spawn(move || {
        let mut dp = Dataplane {
            switch: Switch::new(Instant::now(), seed),
            ports: Vec::new(),
            epoll,
            wake,
            rx,
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
}

impl Dataplane {
    fn run(&mut self) {
        let mut buf = vec![0u8; VNET_HDR_LEN + MAX_FRAME];
        let mut events = vec![EpollEvent::empty(); 64];
        let mut next_expire: Option<Instant> = None;
        loop {
            let timeout = next_expire.map_or(EpollTimeout::NONE, |t| {
                let ms = t.saturating_duration_since(Instant::now()).as_millis().min(60_000) as u16;
                EpollTimeout::from(ms)
            });
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!("dataplane epoll failed: {e}; the dataplane stops");
                    return;
                }
            };
            for ev in &events[..n] {
                if ev.data() == WAKE_TOKEN {
                    let _ = self.wake.read();
                    if !self.commands() {
                        return;
                    }
                } else {
                    self.drain(PortId(ev.data() as u32), &mut buf);
                }
            }
            let now = Instant::now();
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
            Command::AddNetwork(id, cfg, tx) => {
                let _ = tx.send(self.switch.add_network(id, cfg).map_err(|e| e.to_string()));
            }
            Command::RemoveNetwork(id, tx) => {
                let _ = tx.send(self.switch.remove_network(id).map_err(|e| e.to_string()));
            }
            Command::AddPort(p, tx) => {
                let _ = tx.send(self.add_port(*p));
            }
            Command::RemovePort(id, tx) => {
                let _ = tx.send(self.remove_port(id));
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
        }
    }

    fn add_port(&mut self, p: NewPort) -> Result<PortId, String> {
        let net = p.cfg.network;
        let id = self.switch.add_port(p.cfg).map_err(|e| e.to_string())?;
        if let Some(mac) = p.static_mac {
            if let Err(e) = self.switch.add_static(Instant::now(), net, mac, id) {
                let _ = self.switch.remove_port(id);
                return Err(e.to_string());
            }
        }
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, u64::from(id.0));
        if let Err(e) = self.epoll.add(p.dev.fd(), ev) {
            let _ = self.switch.remove_port(id);
            return Err(format!("cannot poll port {}: {e}", p.label));
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

    fn remove_port(&mut self, id: PortId) -> Result<Device, String> {
        let io = self
            .ports
            .get_mut(id.0 as usize)
            .and_then(Option::take)
            .ok_or_else(|| format!("unknown port {id}"))?;
        let _ = self.epoll.delete(io.dev.fd());
        self.switch.remove_port(id).map_err(|e| e.to_string())?;
        Ok(io.dev)
    }

    /// Reads up to a burst of frames from `port` and forwards each.
    fn drain(&mut self, port: PortId, buf: &mut [u8]) {
        let Some(Some(pio)) = self.ports.get(port.0 as usize) else {
            return;
        };
        if pio.dead {
            return;
        }
        let fd = pio.dev.raw();
        // One clock read per burst: a burst takes microseconds, aging works in milliseconds.
        let now = Instant::now();
        for _ in 0..BURST {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes; fd is a live descriptor.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => return,
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        self.mark_dead(port, &e);
                        return;
                    }
                }
            }
            let n = n as usize;
            if n < VNET_HDR_LEN {
                self.switch.record_drop(port, DropReason::TooShort);
                continue;
            }
            self.forward(now, port, &buf[..n]);
        }
    }

    fn forward(&mut self, now: Instant, ingress: PortId, packet: &[u8]) {
        let frame = &packet[VNET_HDR_LEN..];
        let bytes = frame.len();
        // The verdict borrows the switch; collect the egress descriptors first.
        let mut out: [(PortId, i32); 32] = [(PortId(0), -1); 32];
        let mut n_out = 0usize;
        let mut overflow: Vec<(PortId, i32)> = Vec::new();
        match self.switch.process(now, ingress, frame) {
            Verdict::Drop(_) => return,
            Verdict::Forward(p) => {
                if let Some(fd) = self.fd_of(p) {
                    out[0] = (p, fd);
                    n_out = 1;
                }
            }
            Verdict::Flood(f) => {
                for p in f.ports() {
                    let Some(Some(pio)) = self.ports.get(p.0 as usize) else {
                        continue;
                    };
                    let entry = (p, pio.dev.raw());
                    if n_out < out.len() {
                        out[n_out] = entry;
                        n_out += 1;
                    } else {
                        overflow.push(entry);
                    }
                }
            }
        }
        for &(p, fd) in out[..n_out].iter().chain(overflow.iter()) {
            // SAFETY: packet is a valid buffer; fd is a live TAP descriptor owned by self.ports.
            let w = unsafe { libc::write(fd, packet.as_ptr().cast(), packet.len()) };
            if w < 0 {
                self.switch.record_drop(p, DropReason::TxFailed);
            } else {
                self.switch.record_tx(p, bytes);
            }
        }
    }

    fn fd_of(&self, p: PortId) -> Option<i32> {
        match self.ports.get(p.0 as usize) {
            Some(Some(pio)) if !pio.dead => Some(pio.dev.raw()),
            _ => None,
        }
    }

    fn mark_dead(&mut self, port: PortId, e: &io::Error) {
        if let Some(Some(pio)) = self.ports.get_mut(port.0 as usize) {
            tracing::warn!(port = %port, label = %pio.label, "port read failed: {e}; the port stops being polled");
            let _ = self.epoll.delete(pio.dev.fd());
            pio.dead = true;
        }
    }
}
