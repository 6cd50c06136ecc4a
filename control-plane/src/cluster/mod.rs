//! The multi-host cluster: its certificate authority today; membership and route
//! dissemination build on it.

pub mod pki;
