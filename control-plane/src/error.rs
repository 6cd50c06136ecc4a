//! Errors of model operations. Every one leaves the state unchanged.

use thiserror::Error;

/// Why a request was refused. The message is one sentence naming the bad value and, where it
/// helps, what would be accepted; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// The request is malformed or a value is out of range (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// A named network does not exist (HTTP 404).
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// A named sandbox does not exist (HTTP 404).
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    /// Another named object (a switch port) does not exist (HTTP 404); the message says what.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with what exists: a name or address taken, a network in use (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The operation is never allowed on this object, e.g. removing a built-in network (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// A static address of an overlay network that another host owns (HTTP 409 when it will
    /// not give it).
    #[error("address {ip} of network {name} is not this host's to hand out: its owner is {owner}")]
    OwnedElsewhere {
        /// The network.
        network: crate::Id,
        /// Its name.
        name: String,
        /// The address.
        ip: std::net::Ipv4Addr,
        /// Its offset in the network's subnet.
        offset: u32,
        /// The host that owns it.
        owner: String,
    },
    /// Every address this host owns on an overlay network is in use; other hosts may have
    /// some to give (HTTP 409 when they do not).
    #[error("no available IPv4 addresses on network {name}")]
    OutOfClaims {
        /// The network.
        network: crate::Id,
        /// Its name.
        name: String,
    },
}

impl ModelError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            ModelError::Invalid(_) => 400,
            ModelError::NetworkNotFound(_) | ModelError::SandboxNotFound(_) | ModelError::NotFound(_) => 404,
            ModelError::Conflict(_) | ModelError::OutOfClaims { .. } | ModelError::OwnedElsewhere { .. } => 409,
            ModelError::Forbidden(_) => 403,
        }
    }
}
