//! Interface and route settings through ioctls on a socket of the calling thread's namespace.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::kernel::KernelError;

fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory-safety preconditions; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}"),
        ));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

/// Sets or clears the promiscuous flag of `name`.
pub fn set_promisc(name: &str, on: bool) -> io::Result<()> {
    set_flag(name, libc::IFF_PROMISC, on)
}

/// Sets interface `name` administratively up.
pub fn set_up(name: &str) -> io::Result<()> {
    set_flag(name, libc::IFF_UP, true)
}

/// The last system call's error, as a failed `step` on interface `name`.
fn interface(step: &str, name: &str) -> io::Error {
    KernelError::Interface {
        step: step.to_string(),
        name: name.to_string(),
        source: io::Error::last_os_error(),
    }
    .into()
}

fn set_flag(name: &str, flag: libc::c_int, on: bool) -> io::Result<()> {
    let s = ctl_socket()?;
    let mut req = ifreq(name)?;
    // SAFETY: req is a valid ifreq with a NUL-terminated name; the ioctls read and write it.
    unsafe {
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(interface("read the flags of", name));
        }
        if on {
            req.ifr_ifru.ifru_flags |= flag as libc::c_short;
        } else {
            req.ifr_ifru.ifru_flags &= !(flag as libc::c_short);
        }
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(interface("set the flags of", name));
        }
    }
    Ok(())
}

/// The index of interface `name` in the calling thread's namespace; `NotFound` when there is
/// no such interface.
pub fn index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: c is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {name} does not exist"),
        )),
        i => Ok(i),
    }
}

/// Whether an interface called `name` exists in the calling thread's namespace.
pub fn exists(name: &str) -> bool {
    index(name).is_ok()
}

/// Deletes interface `name` of the calling thread's namespace (missing: nothing to do).
pub fn delete_link(name: &str) -> io::Result<()> {
    let Ok(i) = index(name) else { return Ok(()) };
    crate::ports::veth::netlink(async |h| h.link().del(i).execute().await)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot delete interface {name}: {e}")))
}

/// Caps the segments of the super-frames the stack hands interface `name` (its
/// `gso_max_segs`), in the calling thread's namespace.
pub fn set_gso_max_segs(name: &str, segs: u32) -> io::Result<()> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let i = index(name)?;
    let msg = rtnetlink::LinkUnspec::new_with_index(i)
        .append_extra_attribute(LinkAttribute::GsoMaxSegs(segs))
        .build();
    crate::ports::veth::netlink(async |h| h.link().set(msg).execute().await)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot set gso_max_segs of {name} to {segs}: {e}")))
}

fn sockaddr_in(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; sockaddr is the generic view.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Adds `default via gw`. An existing default route is left as it is.
pub fn add_default_route(gw: Ipv4Addr) -> io::Result<()> {
    let s = ctl_socket()?;
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gw);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: rt is a valid rtentry for SIOCADDRT.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCADDRT, &rt) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(KernelError::Route { gw, source: e }.into());
        }
    }
    Ok(())
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
        crate::ports::veth::netlink(async |h| {
            let mut req = h.address().add(i, ip.into(), len);
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
            req.execute().await
        })
        .or_else(|e| {
            if e.raw_os_error() == Some(libc::EEXIST) {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| io::Error::new(e.kind(), format!("cannot add {ip}/{len} to {name}: {e}")))?;
    }
    if let Some(gw) = setup.default_gw {
        let route = rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gw)
            .output_interface(i)
            .build();
        crate::ports::veth::netlink(async |h| h.route().add(route).execute().await)
            .or_else(|e| {
                if e.raw_os_error() == Some(libc::EEXIST) {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| {
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

/// Sets the IPv4 address and netmask of `name`.
pub fn set_ipv4(name: &str, ip: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
    let s = ctl_socket()?;
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len.min(32)))
    };
    for (req_code, addr, what) in [
        (libc::SIOCSIFADDR, ip, "address"),
        (libc::SIOCSIFNETMASK, Ipv4Addr::from(mask), "netmask"),
    ] {
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_addr = sockaddr_in(addr);
        // SAFETY: req is a valid ifreq carrying a sockaddr_in.
        if unsafe { libc::ioctl(s.as_raw_fd(), req_code, &req) } < 0 {
            return Err(interface(&format!("set {what} {addr} on"), name));
        }
    }
    Ok(())
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
