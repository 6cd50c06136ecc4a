//! AF_PACKET sockets bound to one interface, carrying the 10-byte virtio-net header on every
//! frame (so offloaded super-frames pass whole) and blind to the frames the host itself sends
//! there. Used for veth host ends and for the parents of userspace 802.1Q networks.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::kernel::netdev;

/// What a socket needs beyond the common settings.
#[derive(Default)]
pub struct Options {
    /// Deliver the VLAN tag the kernel lifted off a received frame (PACKET_AUXDATA).
    pub auxdata: bool,
    /// Keep the interface promiscuous while the socket lives (a kernel-counted membership,
    /// dropped with the socket).
    pub promisc: bool,
    /// A classic BPF program run by the kernel on each frame before it is queued.
    pub filter: Option<Vec<libc::sock_filter>>,
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: val points to a T that outlives the call, and the length given is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens the socket on `ifname`. Nothing is received before the filter is in place: the
/// socket is bound to all protocols only after its options are set.
pub fn socket(ifname: &str, o: &Options) -> io::Result<OwnedFd> {
    let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("AF_PACKET socket on {ifname}: {what}: {e}"));
    let index = netdev::index(ifname)?;
    // SAFETY: plain socket creation; the result is checked. Protocol 0: no frames yet.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(ctx("socket", io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let fd = sock.as_raw_fd();
    let one: libc::c_int = 1;
    let bufsize: libc::c_int = 4 << 20;
    let mut opts = vec![
        (libc::SOL_PACKET, libc::PACKET_VNET_HDR, "PACKET_VNET_HDR"),
        (libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, "PACKET_IGNORE_OUTGOING"),
    ];
    if o.auxdata {
        opts.push((libc::SOL_PACKET, libc::PACKET_AUXDATA, "PACKET_AUXDATA"));
    }
    for (level, opt, what) in opts {
        setsockopt(fd, level, opt, &one).map_err(|e| ctx(what, e))?;
    }
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &bufsize).map_err(|e| ctx("SO_RCVBUF", e))?;
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &bufsize).map_err(|e| ctx("SO_SNDBUF", e))?;
    if let Some(prog) = &o.filter {
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr().cast_mut(),
        };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog).map_err(|e| ctx("SO_ATTACH_FILTER", e))?;
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid before we fill it.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: sll is a valid sockaddr_ll and the length matches.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(ctx("bind", io::Error::last_os_error()));
    }
    if o.promisc {
        // SAFETY: packet_mreq is plain old data; all-zero is valid before we fill it.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = index as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| ctx("PACKET_ADD_MEMBERSHIP", e))?;
    }
    Ok(sock)
}
