//! Caps on every descriptor switchd holds on behalf of others, so that no client, sandbox or
//! local user can run it out of files.
//!
//! ```text
//!  RLIMIT_NOFILE (raised to the hard limit at start)
//!   ├─ reserve: ports, namespaces, the store, listeners              (RESERVE)
//!   └─ budget, shared out:  proxy UDP flows · proxy TCP connections (2 each)
//!                           DNS upstream queries · DNS TCP connections
//!                           API connections · metrics connections
//! ```
//!
//! A consumer takes a [`Permit`] before it opens a descriptor and holds it as long as the
//! descriptor lives; at the cap it is refused (and counted), and the caller sheds the work
//! (drops the datagram, closes the connection, evicts its oldest flow). Should the process
//! run out of descriptors all the same (EMFILE/ENFILE: ports are the operator's, and
//! uncapped), [`Limits::back_off`] counts it and makes the caller wait before serving again;
//! no listener ever stops for it.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Descriptors kept out of the budget for what is not capped here.
pub const RESERVE: u64 = 256;
/// How long a caller waits after the process ran out of descriptors.
pub const BACK_OFF: Duration = Duration::from_millis(100);

/// One capped resource.
#[derive(Debug)]
pub struct Cap {
    name: &'static str,
    max: usize,
    used: AtomicUsize,
    refused: AtomicU64,
}

/// A unit of a [`Cap`], given back when dropped.
#[derive(Debug)]
pub struct Permit(Arc<Cap>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Cap {
    fn new(name: &'static str, max: usize) -> Arc<Cap> {
        Arc::new(Cap {
            name,
            max,
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// A unit, unless all are taken (then the refusal is counted).
    pub fn try_take(self: &Arc<Self>) -> Option<Permit> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1));
        match taken {
            Ok(_) => Some(Permit(self.clone())),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Its name in stats and metrics.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The most units at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Units held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Units refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The caps of one switchd.
#[derive(Debug)]
pub struct Limits {
    /// The descriptor limit they were shared out of.
    pub nofile: u64,
    /// UDP flows of the published ports' proxies, all ports together (one socket each).
    pub proxy_udp: Arc<Cap>,
    /// TCP connections through the published ports' proxies (two sockets each).
    pub proxy_tcp: Arc<Cap>,
    /// DNS queries waiting on an upstream resolver (a socket each).
    pub dns_upstream: Arc<Cap>,
    /// TCP connections to the embedded DNS servers.
    pub dns_tcp: Arc<Cap>,
    /// Connections to the API socket.
    pub api: Arc<Cap>,
    /// Connections to the metrics listener.
    pub metrics: Arc<Cap>,
    exhausted: AtomicU64,
}

impl Limits {
    /// Caps shared out of `nofile` descriptors: what is left above [`RESERVE`], in fixed
    /// shares, each between a floor (so a small limit still serves) and a ceiling (so a huge
    /// one does not invite unbounded memory).
    pub fn for_descriptors(nofile: u64) -> Limits {
        let budget = nofile.saturating_sub(RESERVE);
        let share = |percent: u64, per_unit: u64, floor: usize, ceiling: usize| {
            let n = (budget * percent / 100 / per_unit) as usize;
            n.clamp(floor, ceiling)
        };
        Limits {
            nofile,
            proxy_udp: Cap::new("proxy_udp_flows", share(25, 1, 16, 8192)),
            proxy_tcp: Cap::new("proxy_tcp_connections", share(25, 2, 8, 4096)),
            dns_upstream: Cap::new("dns_upstream_queries", share(15, 1, 16, 1024)),
            dns_tcp: Cap::new("dns_tcp_connections", share(15, 1, 8, 1024)),
            api: Cap::new("api_connections", share(5, 1, 8, 128)),
            metrics: Cap::new("metrics_connections", share(2, 1, 4, 32)),
            exhausted: AtomicU64::new(0),
        }
    }

    /// Every cap, for stats.
    pub fn caps(&self) -> [&Arc<Cap>; 6] {
        [
            &self.proxy_udp,
            &self.proxy_tcp,
            &self.dns_upstream,
            &self.dns_tcp,
            &self.api,
            &self.metrics,
        ]
    }

    /// Times the process ran out of descriptors (EMFILE/ENFILE) since start.
    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// After a failed accept, socket or bind by `who`: when the process is out of descriptors,
    /// counts it and waits [`BACK_OFF`] (the caller then serves again); other errors pass
    /// without waiting. Never ends the caller.
    pub async fn back_off(&self, who: &str, e: &io::Error) {
        if is_exhaustion(e) {
            let n = self.exhausted.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::warn!("{who}: out of descriptors ({e}); backing off (time {})", n + 1);
            }
            tokio::time::sleep(BACK_OFF).await;
        } else {
            tracing::debug!("{who}: {e}");
        }
    }
}

impl Limits {
    /// The next connection `cap` admits: waits on `accept`, backs off when it fails (see
    /// [`Limits::back_off`]), and closes connections beyond the cap at once.
    pub async fn admit<S, F, Fut>(&self, who: &str, cap: &Arc<Cap>, mut accept: F) -> (S, Permit)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = io::Result<S>>,
    {
        loop {
            match accept().await {
                Ok(s) => {
                    if let Some(p) = cap.try_take() {
                        return (s, p);
                    }
                }
                Err(e) => self.back_off(who, &e).await,
            }
        }
    }
}

/// Whether an error says the process or the system has no descriptor left.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Raises the soft descriptor limit to the hard one; returns the limit in force.
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    if r.rlim_cur < r.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: raised is a valid rlimit; raising the soft limit up to the hard one needs no
        // privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            r.rlim_cur = r.rlim_max;
        }
    }
    r.rlim_cur
}

/// Descriptors the process has open now (entries of /proc/self/fd).
pub fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_capped_counted_and_given_back() {
        let l = Limits::for_descriptors(1024);
        let cap = &l.api;
        let held: Vec<Permit> = (0..cap.max()).map(|_| cap.try_take().unwrap()).collect();
        assert_eq!(cap.used(), cap.max());
        assert!(cap.try_take().is_none());
        assert_eq!(cap.refused(), 1);
        drop(held);
        assert_eq!(cap.used(), 0);
        assert!(cap.try_take().is_some());
    }

    #[test]
    fn shares_fit_the_limit_with_the_reserve() {
        for nofile in [256, 1024, 4096, 65_536, 1 << 20] {
            let l = Limits::for_descriptors(nofile);
            let fds = l.proxy_udp.max()
                + 2 * l.proxy_tcp.max()
                + l.dns_upstream.max()
                + l.dns_tcp.max()
                + l.api.max()
                + l.metrics.max();
            let floors = 16 + 2 * 8 + 16 + 8 + 8 + 4;
            assert!(
                fds as u64 + RESERVE <= nofile.max(floors as u64 + RESERVE),
                "{nofile}: {fds} descriptors"
            );
        }
        let l = Limits::for_descriptors(1024);
        assert_eq!((l.proxy_udp.max(), l.proxy_tcp.max(), l.api.max()), (192, 96, 38));
    }

    #[test]
    fn exhaustion_is_emfile_or_enfile() {
        assert!(is_exhaustion(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_exhaustion(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(libc::ECONNABORTED)));
    }
}
