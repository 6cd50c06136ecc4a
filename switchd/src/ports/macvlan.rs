//! macvlan ports: a kernel macvlan child of the parent interface, created straight into the
//! sandbox's namespace. The kernel forwards; switchd only creates, configures and removes.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use rtnetlink::packet_route::link::MacVlanMode;
use rtnetlink::{LinkMacVlan, LinkMessageBuilder};

use crate::kernel::netdev;
use crate::kernel::netns;
use crate::ports::veth::{netlink, VethSpec};

fn mode(m: &str) -> MacVlanMode {
    match m {
        "private" => MacVlanMode::Private,
        "vepa" => MacVlanMode::Vepa,
        "passthru" => MacVlanMode::Passthrough,
        _ => MacVlanMode::Bridge,
    }
}

/// Creates the child (named and addressed as `spec` says) of `parent` in `sandbox_ns`, unless
/// it exists already (a restart).
pub fn open(sandbox_ns: &Path, parent: &str, macvlan_mode: &str, spec: &VethSpec) -> io::Result<()> {
    let name = spec.name.clone();
    if netns::run_in(sandbox_ns, move || Ok(netdev::exists(&name)))? {
        return Ok(());
    }
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("macvlan {} on {parent}: {e}", spec.name));
    let index = parent_index(parent).map_err(ctx)?;
    let ns = File::open(sandbox_ns).map_err(ctx)?;
    let mut b: LinkMessageBuilder<LinkMacVlan> =
        LinkMacVlan::new(&spec.name, index, mode(macvlan_mode)).setns_by_fd(ns.as_raw_fd());
    if let Some(mac) = spec.mac {
        b = b.address(mac.0.to_vec());
    }
    let msg = b.build();
    netlink(async |h| h.link().add(msg).execute().await).map_err(ctx)?;
    let inner = spec.clone();
    netns::run_in(sandbox_ns, move || inner.configure()).map_err(ctx)
}

/// Deletes the child `name` from `sandbox_ns` (missing: nothing to do).
pub fn delete(sandbox_ns: &Path, name: &str) -> io::Result<()> {
    let name = name.to_string();
    netns::run_in(sandbox_ns, move || netdev::delete_link(&name))
}

/// The host's own child on a macvlan network (`host_access`): `name` in switchd's namespace
/// with `addr`, so the host reaches sandboxes it otherwise cannot (a macvlan parent and its
/// children do not talk to each other). Nothing happens when it exists.
pub fn open_host(
    parent: &str,
    macvlan_mode: &str,
    name: &str,
    addr: Option<(std::net::Ipv4Addr, u8)>,
    ipv6: Option<&netdev::Ipv6Setup>,
) -> io::Result<()> {
    if netdev::exists(name) {
        return Ok(());
    }
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("host macvlan {name} on {parent}: {e}"));
    let index = parent_index(parent).map_err(ctx)?;
    let msg = LinkMacVlan::new(name, index, mode(macvlan_mode)).build();
    netlink(async |h| h.link().add(msg).execute().await).map_err(ctx)?;
    let configured = addr
        .map_or(Ok(()), |(ip, len)| netdev::set_ipv4(name, ip, len))
        .and_then(|()| netdev::set_up(name))
        .and_then(|()| netdev::set_ipv6(name, ipv6));
    if let Err(e) = configured {
        let _ = netdev::delete_link(name);
        return Err(ctx(e));
    }
    Ok(())
}

/// Removes the host's own child (missing: nothing to do).
pub fn delete_host(name: &str) -> io::Result<()> {
    netdev::delete_link(name)
}

fn parent_index(parent: &str) -> io::Result<u32> {
    netdev::index(parent).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => crate::kernel::KernelError::NoParent(parent.to_string()).into(),
        _ => e,
    })
}
