//! Clients of switchd's API: the HTTP client switchctl and switch-cni share, and the CNI
//! plugin's logic.

pub mod client;
pub mod cni;
#[doc(hidden)]
pub mod fuzzing;
