//! veth ports: a veth pair whose container end lives in the sandbox namespace (ethN) and whose
//! host end lives in switchd's namespace, read and written through an AF_PACKET socket with
//! PACKET_VNET_HDR, so frames carry the same 10-byte virtio header as on TAP ports and
//! offloaded super-frames pass untouched.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkMessageBuilder, LinkUnspec};
use switch::MacAddr;

use crate::{netdev, netns};

/// The host-end name of an endpoint's veth: `sv` and 12 hex digits of the endpoint ID.
pub fn host_name(endpoint_id: &str) -> String {
    format!("sv{}", &endpoint_id[..12.min(endpoint_id.len())])
}

/// How to set up the container end.
#[derive(Debug, Clone)]
pub struct VethSpec {
    /// Host-end name in switchd's namespace.
    pub host: String,
    /// Container-end name (`eth0`, ...).
    pub name: String,
    /// Container-end MAC.
    pub mac: Option<MacAddr>,
    /// Container-end address and prefix length.
    pub addr: Option<(Ipv4Addr, u8)>,
    /// MTU of both ends.
    pub mtu: u16,
    /// Default route via this gateway, when none exists.
    pub default_gw: Option<Ipv4Addr>,
}

impl VethSpec {
    /// Addresses the container end and brings it up, with the default route when asked; to be
    /// run in the sandbox's namespace.
    pub fn configure(&self) -> io::Result<()> {
        if let Some((ip, len)) = self.addr {
            netdev::set_ipv4(&self.name, ip, len)?;
        }
        netdev::set_up(&self.name)?;
        if let Some(gw) = self.default_gw {
            netdev::add_default_route(gw)?;
        }
        Ok(())
    }
}

pub(crate) fn netlink<T>(f: impl AsyncFnOnce(rtnetlink::Handle) -> Result<T, rtnetlink::Error>) -> io::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(conn);
        let r = f(handle).await.map_err(|e| io::Error::other(e.to_string()));
        task.abort();
        r
    })
}

/// Opens the endpoint's veth port: re-attaches to the host end if it exists (a restart),
/// otherwise creates the pair with the container end configured in the sandbox namespace.
/// Returns the AF_PACKET socket bound to the host end.
pub fn open(sandbox_ns: &Path, spec: &VethSpec) -> io::Result<OwnedFd> {
    if !netdev::exists(&spec.host) {
        create(sandbox_ns, spec)?;
    }
    packet_socket(&spec.host)
}

fn create(sandbox_ns: &Path, spec: &VethSpec) -> io::Result<()> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("veth {} / {}: {e}", spec.host, spec.name));
    let ns = File::open(sandbox_ns).map_err(ctx)?;
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(spec.name.clone())
        .setns_by_fd(ns.as_raw_fd())
        .mtu(u32::from(spec.mtu));
    if let Some(mac) = spec.mac {
        peer = peer.address(mac.0.to_vec());
    }
    let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(spec.host.clone())
        .mtu(u32::from(spec.mtu))
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .up()
        .build();
    netlink(async |h| h.link().add(msg).execute().await).map_err(ctx)?;
    let _ = netdev::write_sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", spec.host), "1");
    let inner = spec.clone();
    let configured = netns::run_in(sandbox_ns, move || inner.configure());
    if let Err(e) = configured {
        let _ = delete(&spec.host);
        return Err(ctx(e));
    }
    Ok(())
}

/// Deletes the pair through its host end (the container end goes with it). A missing
/// interface is not an error.
pub fn delete(host: &str) -> io::Result<()> {
    let c = std::ffi::CString::new(host).map_err(|_| io::Error::other("interface name with NUL"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Ok(());
    }
    netlink(async |h| h.link().del(index).execute().await)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot delete veth {host}: {e}")))
}

/// An AF_PACKET socket on `ifname` that carries virtio-net headers and does not see the
/// frames it sends itself.
fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let ctx = |what: &str| {
        io::Error::other(format!(
            "AF_PACKET socket on {ifname}: {what}: {}",
            io::Error::last_os_error()
        ))
    };
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(ctx("socket"));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let bufsize: libc::c_int = 4 << 20;
    for (level, opt, val, what) in [
        (libc::SOL_PACKET, libc::PACKET_VNET_HDR, &one, "PACKET_VNET_HDR"),
        (
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            "PACKET_IGNORE_OUTGOING",
        ),
        (libc::SOL_SOCKET, libc::SO_RCVBUF, &bufsize, "SO_RCVBUF"),
        (libc::SOL_SOCKET, libc::SO_SNDBUF, &bufsize, "SO_SNDBUF"),
    ] {
        // SAFETY: val points to a c_int that outlives the call; the size matches.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                level,
                opt,
                (val as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(ctx(what));
        }
    }
    let c = std::ffi::CString::new(ifname).map_err(|_| io::Error::other("interface name with NUL"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(ctx("no such interface"));
    }
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid before we fill it.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: sll is a valid sockaddr_ll and the length matches.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(ctx("bind"));
    }
    Ok(sock)
}
