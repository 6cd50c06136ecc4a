//! Interface and route settings through rtnetlink, in the calling thread's namespace.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use rtnetlink::LinkUnspec;

use crate::kernel::KernelError;
use crate::ports::veth::netlink;

/// `r`, but an address or route that exists already (EEXIST) is done.
fn or_exists(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// A failed `step` on interface `name`, with the kernel's error.
fn interface(step: &str, name: &str, source: io::Error) -> io::Error {
    KernelError::Interface {
        step: step.to_string(),
        name: name.to_string(),
        source,
    }
    .into()
}

/// Sets or clears the promiscuous flag of `name`.
pub fn set_promisc(name: &str, on: bool) -> io::Result<()> {
    let i = index(name)?;
    let msg = LinkUnspec::new_with_index(i).promiscuous(on).build();
    netlink(async |h| h.link().set(msg).execute().await).map_err(|e| interface("set the flags of", name, e))
}

/// Sets interface `name` administratively up.
pub fn set_up(name: &str) -> io::Result<()> {
    let i = index(name)?;
    let msg = LinkUnspec::new_with_index(i).up().build();
    netlink(async |h| h.link().set(msg).execute().await).map_err(|e| interface("set the flags of", name, e))
}

/// The index of interface `name` in the calling thread's namespace; `NotFound` when there is
/// no such interface.
pub fn index(name: &str) -> io::Result<u32> {
    use futures_util::TryStreamExt;
    if name.is_empty() || name.len() > 15 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}: 1-15 bytes"),
        ));
    }
    let found = netlink(async |h| h.link().get().match_name(name.to_string()).execute().try_next().await);
    match found {
        Ok(Some(link)) => Ok(link.header.index),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {name} does not exist"),
        )),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {name} does not exist"),
        )),
        Err(e) => Err(interface("find", name, e)),
    }
}

/// Whether an interface called `name` exists in the calling thread's namespace.
pub fn exists(name: &str) -> bool {
    index(name).is_ok()
}

/// Deletes interface `name` of the calling thread's namespace (missing: nothing to do).
pub fn delete_link(name: &str) -> io::Result<()> {
    let Ok(i) = index(name) else { return Ok(()) };
    netlink(async |h| h.link().del(i).execute().await)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot delete interface {name}: {e}")))
}

/// Caps the segments of the super-frames the stack hands interface `name` (its
/// `gso_max_segs`), in the calling thread's namespace.
pub fn set_gso_max_segs(name: &str, segs: u32) -> io::Result<()> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let i = index(name)?;
    let msg = LinkUnspec::new_with_index(i)
        .append_extra_attribute(LinkAttribute::GsoMaxSegs(segs))
        .build();
    netlink(async |h| h.link().set(msg).execute().await)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot set gso_max_segs of {name} to {segs}: {e}")))
}

/// Adds `default via gw`. An existing default route is left as it is.
pub fn add_default_route(gw: Ipv4Addr) -> io::Result<()> {
    let route = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build();
    or_exists(netlink(async |h| h.route().add(route).execute().await))
        .map_err(|source| KernelError::Route { gw, source }.into())
}

/// IPv6 on an interface: its addresses with their prefix lengths, and the gateway of a default
/// route when the interface carries one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ipv6Setup {
    /// Global addresses.
    pub addrs: Vec<(Ipv6Addr, u8)>,
    /// Default route via this gateway, when none exists.
    pub default_gw: Option<Ipv6Addr>,
    /// Also turn IPv6 on for the namespace's loopback (a sandbox's: `::1`, as Docker's
    /// containers on IPv6 networks have it).
    pub loopback: bool,
}

/// Sets IPv6 on interface `name` of the calling thread's namespace as `setup` says, or turns
/// it off (`None`: no router solicitation or MLD report reaches the switch from it). On, the
/// interface takes no router advertisement and runs no duplicate address detection (the
/// switch hands out every address once, and a fresh sandbox must not wait a second for
/// DAD), makes its link-local address from its MAC (EUI-64, which port security allows), and
/// holds the addresses and the default route. A kernel without IPv6 has none of these keys:
/// off is then already so, and on fails.
pub fn set_ipv6(name: &str, setup: Option<&Ipv6Setup>) -> io::Result<()> {
    let key = |k: &str| format!("net/ipv6/conf/{name}/{k}");
    let Some(setup) = setup else {
        let _ = write_sysctl(&key("disable_ipv6"), "1");
        return Ok(());
    };
    for (k, v) in [
        ("accept_dad", "0"),
        ("accept_ra", "0"),
        ("addr_gen_mode", "0"),
        ("disable_ipv6", "0"),
    ] {
        write_sysctl(&key(k), v)?;
    }
    if setup.loopback {
        write_sysctl("net/ipv6/conf/lo/disable_ipv6", "0")?;
    }
    let i = index(name)?;
    for &(ip, len) in &setup.addrs {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
        or_exists(netlink(async |h| {
            let mut req = h.address().add(i, ip.into(), len);
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
            req.execute().await
        }))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot add {ip}/{len} to {name}: {e}")))?;
    }
    if let Some(gw) = setup.default_gw {
        let route = rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gw)
            .output_interface(i)
            .build();
        or_exists(netlink(async |h| h.route().add(route).execute().await)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot add the default route via {gw} on {name}: {e}"),
            )
        })?;
    }
    Ok(())
}

/// Writes a value under /proc/sys (as seen from the calling thread's network namespace).
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("cannot write {path}: {e}")))
}

/// Gives `name` the IPv4 address `ip/prefix_len` (its broadcast address with it); one it holds
/// already stays.
pub fn set_ipv4(name: &str, ip: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
    let i = index(name)?;
    or_exists(netlink(async |h| {
        h.address().add(i, ip.into(), prefix_len).execute().await
    }))
    .map_err(|e| interface(&format!("set address {ip}/{prefix_len} on"), name, e))
}

/// The name of the interface of the calling thread's namespace whose hardware address is
/// `mac`, if any.
pub fn find_by_mac(mac: [u8; 6]) -> io::Result<Option<String>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    Ok(addrs
        .filter(|a| a.address.as_ref().and_then(|s| s.as_link_addr()).and_then(|l| l.addr()) == Some(mac))
        .map(|a| a.interface_name)
        .next())
}
