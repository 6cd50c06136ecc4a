//! Kernel plumbing: interfaces and routes (netdev), network namespaces, the nftables ruleset,
//! and the caps on descriptors switchd holds for others.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;

pub mod firewall;
pub mod limits;
pub mod netdev;
pub mod netns;

/// Why a step of kernel plumbing failed. It converts into an `io::Error` of the cause's kind,
/// so callers that look at kinds (not found, already exists) still can.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A step on a namespace or its mount point.
    #[error("cannot {step} {}: {source}", path.display())]
    Namespace {
        /// What was being done.
        step: &'static str,
        /// The namespace or mount point.
        path: PathBuf,
        /// The kernel's answer.
        source: Errno,
    },
    /// A new network namespace could not be made.
    #[error("unshare(CLONE_NEWNET): {0}")]
    Unshare(Errno),
    /// A step on an interface.
    #[error("cannot {step} {name}: {source}")]
    Interface {
        /// What was being done.
        step: String,
        /// The interface.
        name: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The default route could not be added.
    #[error("cannot add default route via {gw}: {source}")]
    Route {
        /// The gateway.
        gw: std::net::Ipv4Addr,
        /// The kernel's answer.
        source: io::Error,
    },
    /// A socket could not be bound to an interface.
    #[error("cannot bind to interface {iface}: {source}")]
    BindToDevice {
        /// The interface.
        iface: String,
        /// The kernel's answer.
        source: Errno,
    },
    /// nft refused a ruleset.
    #[error("nft refused the ruleset: {0}")]
    Nft(String),
    /// A macvlan parent that is not there.
    #[error("parent interface {0} does not exist on this host")]
    NoParent(String),
}

impl From<KernelError> for io::Error {
    fn from(e: KernelError) -> io::Error {
        let kind = match &e {
            KernelError::Namespace { source, .. }
            | KernelError::Unshare(source)
            | KernelError::BindToDevice { source, .. } => io::Error::from(*source).kind(),
            KernelError::Interface { source, .. } | KernelError::Route { source, .. } => source.kind(),
            KernelError::Nft(_) | KernelError::NoParent(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
