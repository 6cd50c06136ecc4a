//! The cluster's credentials: its certificate authority, which issues each host a certificate
//! carrying its name and index (`pki`), and the key every gossip datagram is sealed under,
//! derived from the CA's (`seal`); signatures with a host certificate's key, which any host
//! checks against the certificate (`sign`); keys and signatures as hex text (`hex`). switchctl makes them; switchd checks and uses them.
#![deny(missing_docs)]
// Tests pick their own time with `SystemTime::now()`; the code itself takes `now` from callers.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod hex;
pub mod pki;
pub mod seal;
pub mod sign;
