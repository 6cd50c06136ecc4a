//! veth ports: a veth pair whose container end lives in the sandbox namespace (ethN) and whose
//! host end lives in switchd's namespace, read and written through an AF_PACKET socket with
//! PACKET_VNET_HDR, so frames carry the same 10-byte virtio header as on TAP ports and
//! offloaded super-frames pass untouched.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkMessageBuilder, LinkUnspec};
use switch::MacAddr;

use crate::kernel::{netdev, netns};

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
    /// IPv6 of the container end, on networks with IPv6 on; off otherwise.
    pub ipv6: Option<netdev::Ipv6Setup>,
}

impl VethSpec {
    /// Addresses the container end and brings it up, with the default route when asked; to be
    /// run in the sandbox's namespace.
    pub fn configure(&self) -> io::Result<()> {
        if let Some((ip, len)) = self.addr {
            netdev::set_ipv4(&self.name, ip, len)?;
        }
        // The switch drops a sandbox's super-frame of more segments than this (port security):
        // the stack must not make one.
        let segs = switch::MAX_SEGMENTS as u32;
        if let Err(e) = netdev::set_gso_max_segs(&self.name, segs) {
            tracing::debug!("{e}");
        }
        netdev::set_up(&self.name)?;
        if let Some(gw) = self.default_gw {
            netdev::add_default_route(gw)?;
        }
        netdev::set_ipv6(&self.name, self.ipv6.as_ref())
    }
}

pub(crate) fn netlink<T>(f: impl AsyncFnOnce(rtnetlink::Handle) -> Result<T, rtnetlink::Error>) -> io::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(conn);
        let r = f(handle).await.map_err(|e| match e {
            rtnetlink::Error::NetlinkError(m) => m.to_io(),
            e => io::Error::other(e.to_string()),
        });
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
    crate::ports::packet::socket(&spec.host, &crate::ports::packet::Options::default())
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
    netdev::set_ipv6(&spec.host, None)?;
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
    netdev::delete_link(host)
}
