//! The kernel's 802.1Q interfaces (`eth0.10`), for macvlan networks on a VLAN where the
//! kernel has 8021q; where it has not, creating one fails with EOPNOTSUPP and the network is
//! carried by switchd's own 802.1Q instead (see `uplink`).

use std::io;

use rtnetlink::LinkVlan;

use crate::kernel::netdev;
use crate::ports::veth::netlink;

/// What became of the VLAN interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// It existed already: used as it is, and left behind with the network.
    Existing,
    /// switchd created it: deleted with the network.
    Created,
}

/// Whether an error from [`open`] says the kernel has no 802.1Q support.
pub fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
}

/// Makes sure the 802.1Q interface `name` for `vlan` on `iface` exists and is up. An error of
/// kind `Unsupported` means the kernel cannot make one (no 8021q).
pub fn open(iface: &str, name: &str, vlan: u16) -> io::Result<Link> {
    if netdev::exists(name) {
        return Ok(Link::Existing);
    }
    let index = netdev::index(iface)?;
    let msg = LinkVlan::new(name, index, vlan).up().build();
    match netlink(async |h| h.link().add(msg).execute().await) {
        Ok(()) => Ok(Link::Created),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel has no 802.1Q support (no 8021q module)",
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot create VLAN interface {name}: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel path, where the kernel has 8021q: run in a namespace of its own on a veth
    /// pair; on a kernel without it, the detection must say so (and the userspace path is
    /// what the end-to-end tests cover).
    #[test]
    fn kernel_vlan_interfaces_behind_their_feature_detection() {
        if !testbed::is_root() {
            eprintln!("skipped: needs root for a network namespace");
            return;
        }
        let outcome = std::thread::spawn(|| {
            // SAFETY: unshare only changes this thread's namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!("unshare: {}", io::Error::last_os_error()));
            }
            let pair = std::process::Command::new("ip")
                .args(["link", "add", "name", "tv0", "type", "veth", "peer", "name", "tv1"])
                .status()
                .map_err(|e| e.to_string())?;
            if !pair.success() {
                return Err("cannot create the veth pair".into());
            }
            let first = open("tv0", "tv0.10", 10);
            let r = match first {
                Err(e) if is_unsupported(&e) => Ok(None),
                Err(e) => Err(format!("unexpected error: {e}")),
                Ok(link) => {
                    let again = open("tv0", "tv0.10", 10).map_err(|e| e.to_string())?;
                    let d = std::process::Command::new("ip")
                        .args(["-d", "link", "show", "tv0.10"])
                        .output()
                        .map_err(|e| e.to_string())?;
                    let shown = String::from_utf8_lossy(&d.stdout).into_owned();
                    netdev::delete_link("tv0.10").map_err(|e| e.to_string())?;
                    Ok(Some((link, again, shown, netdev::exists("tv0.10"))))
                }
            };
            let missing = open("nope0", "nope0.10", 10).map(|_| ()).map_err(|e| e.kind());
            r.map(|x| (x, missing))
        })
        .join()
        .expect("test thread");
        let (created, missing) = outcome.expect("namespace setup");
        match created {
            None => {
                assert!(!std::path::Path::new("/proc/net/vlan/config").exists());
                eprintln!("the kernel has no 8021q: the userspace path is used");
            }
            Some((link, again, shown, left)) => {
                assert_eq!((link, again), (Link::Created, Link::Existing));
                assert!(shown.contains("vlan protocol 802.1Q id 10"), "{shown}");
                assert!(!left, "deleted");
            }
        }
        assert_eq!(
            missing,
            Err(io::ErrorKind::NotFound),
            "a missing parent is named as such"
        );
    }
}
