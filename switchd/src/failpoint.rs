//! Crashes on purpose, for the tests that prove recovery: with `SWITCHD_FAILPOINT=NAME` in
//! its environment, switchd kills itself with SIGKILL when it reaches the point `NAME`, as a
//! power cut or the OOM killer would at that instant. Without the variable a point costs one
//! comparison.
//!
//! The points, each right after a kernel step of an operation:
//! `sandbox-create:namespace`, `sandbox-create:interface`, `sandbox-create:files`,
//! `sandbox-create:proxies`, `sandbox-create:committed`, `connect:interface`,
//! `connect:committed`, `disconnect:interface`, `sandbox-rm:interfaces`,
//! `sandbox-rm:namespace`, `docker-join:interface`.

use std::sync::OnceLock;

/// Crashes here if this is the point the environment names.
pub fn hit(point: &str) {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var("SWITCHD_FAILPOINT").ok());
    if chosen.as_deref() == Some(point) {
        tracing::warn!("failpoint {point}: crashing as asked (SWITCHD_FAILPOINT)");
        // SAFETY: kill has no memory-safety preconditions; it ends this process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
