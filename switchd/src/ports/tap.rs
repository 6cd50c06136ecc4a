//! TAP ports: persistent TAP devices opened with IFF_VNET_HDR and TCP/UDP segmentation
//! offloads, created (or re-attached after a restart) inside a given namespace.
//!
//! Every frame read or written carries the 10-byte `virtio_net_hdr` in front, so offloaded
//! super-frames (up to 64 KB) move between two TAP ports untouched.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use switch::MacAddr;
use tun_rs::{DeviceBuilder, Layer, SyncDevice};

use crate::kernel::{netdev, netns};

/// Length of the virtio-net header in front of each frame (no `num_buffers`).
pub const VNET_HDR_LEN: usize = overlay::offload::VIRTIO_NET_HDR_LEN;

/// How to set up a TAP device when it does not exist yet.
#[derive(Debug, Clone)]
pub struct TapSpec {
    /// Interface name (`eth0`, or the gateway name).
    pub name: String,
    /// Hardware address.
    pub mac: Option<MacAddr>,
    /// Address and prefix length.
    pub addr: Option<(Ipv4Addr, u8)>,
    /// MTU.
    pub mtu: u16,
    /// Gateway for a default route, added when none exists.
    pub default_gw: Option<Ipv4Addr>,
    /// IPv6, on networks with IPv6 on; off otherwise.
    pub ipv6: Option<netdev::Ipv6Setup>,
    /// Which unsegmented super-frames and partial checksums the kernel may hand over.
    pub offload: Offload,
}

/// The offloads a TAP port takes (what the kernel may leave undone in frames it hands over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    /// Checksums and TCP segmentation over IPv4 and IPv6: what the dataplane completes in
    /// software before a frame enters a VXLAN tunnel (overlay networks), `sealed` when it is
    /// an encrypted network's (whose super-frames are cut to what fits one send once sealed).
    Tcp {
        /// The network is encrypted.
        sealed: bool,
    },
    /// Every offload the kernel has (checksums, TCP and UDP segmentation, v4 and v6): frames
    /// that stay on this host pass whole between ports.
    All,
}

/// Where a TAP device lives: switchd's own namespace, or a published one.
#[derive(Debug, Clone)]
pub enum Place {
    /// The daemon's namespace.
    Here,
    /// The namespace published at this path.
    In(PathBuf),
}

/// Opens the TAP described by `spec` in `place`: attaches to it if it exists (a restart),
/// otherwise creates it persistent, configured and up.
pub fn open(place: &Place, spec: TapSpec) -> io::Result<SyncDevice> {
    match place {
        Place::Here => open_here(&spec),
        Place::In(ns) => netns::run_in(ns, move || open_here(&spec)),
    }
}

fn builder(name: &str) -> DeviceBuilder {
    DeviceBuilder::new().name(name).layer(Layer::L2).offload(true)
}

fn open_here(spec: &TapSpec) -> io::Result<SyncDevice> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("TAP device {}: {e}", spec.name));
    if netdev::exists(&spec.name) {
        let dev = builder(&spec.name).build_sync().map_err(ctx)?;
        dev.set_nonblocking(true).map_err(ctx)?;
        set_offloads(&dev, spec.offload).map_err(ctx)?;
        limit_segments(spec);
        return Ok(dev);
    }
    let mut b = builder(&spec.name).mtu(spec.mtu);
    if let Some(mac) = spec.mac {
        b = b.mac_addr(mac.0);
    }
    if let Some((ip, len)) = spec.addr {
        b = b.ipv4(ip, len, None);
    }
    let dev = b.enable(true).build_sync().map_err(ctx)?;
    dev.persist().map_err(ctx)?;
    set_offloads(&dev, spec.offload).map_err(ctx)?;
    limit_segments(spec);
    dev.set_nonblocking(true).map_err(ctx)?;
    let routed = spec
        .default_gw
        .map_or(Ok(()), netdev::add_default_route)
        .and_then(|()| netdev::set_ipv6(&spec.name, spec.ipv6.as_ref()));
    if let Err(e) = routed {
        let _ = unpersist(&dev);
        return Err(ctx(e));
    }
    Ok(dev)
}

/// Caps the segments of the port's super-frames: on a port whose super-frames are cut for the
/// tunnel, to what one UDP send carries; on others, to what the switch accepts from a sandbox
/// (it drops a super-frame of more as a bad offload). A kernel that cannot change it leaves
/// the default.
fn limit_segments(spec: &TapSpec) {
    let segs = match spec.offload {
        Offload::Tcp { sealed } => crate::dataplane::vxlan::tunnel_gso_segments(spec.mtu, sealed),
        Offload::All => switch::MAX_SEGMENTS as u32,
    };
    if let Err(e) = netdev::set_gso_max_segs(&spec.name, segs) {
        tracing::debug!("{e}");
    }
}

/// Narrows the offloads to `o` (the device opens with all of them).
fn set_offloads(dev: &SyncDevice, o: Offload) -> io::Result<()> {
    const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
    let flags = match o {
        Offload::All => return Ok(()),
        Offload::Tcp { .. } => libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6,
    };
    // SAFETY: the descriptor is a live TUN/TAP fd owned by `dev`; TUNSETOFFLOAD takes flags.
    if unsafe { libc::ioctl(dev.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_uint) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Clears the persistent flag so the device goes away when its descriptor closes.
pub fn unpersist(dev: &SyncDevice) -> io::Result<()> {
    const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
    // SAFETY: the descriptor is a live TUN/TAP fd owned by `dev`; TUNSETPERSIST takes an int.
    if unsafe { libc::ioctl(dev.as_raw_fd(), TUNSETPERSIST as _, 0 as libc::c_int) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes a TAP device by name from `ns` if it exists (used when a sandbox is removed while
/// the daemon had no descriptor for it).
pub fn delete_by_name(ns: &Path, name: &str) -> io::Result<()> {
    let name = name.to_string();
    netns::run_in(ns, move || {
        if !netdev::exists(&name) {
            return Ok(());
        }
        let dev = builder(&name).build_sync()?;
        unpersist(&dev)
    })
}
