//! What a run reports, as text or JSON. Nothing in it depends on the wall clock, so the same
//! scenario and seed give the same report, byte for byte.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// One goal and how the run did against it.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// What is aimed at.
    pub goal: String,
    /// What was measured ("not measured" when the scenario does not exercise it).
    pub measured: String,
    /// Met, missed, or `None` when not measured.
    pub met: Option<bool>,
}

/// A run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Hosts.
    pub hosts: u32,
    /// Sandboxes created (moves included).
    pub sandboxes: u64,
    /// Simulated seconds.
    pub simulated_s: f64,
    /// Whether every invariant held.
    pub invariants_held: bool,
    /// Frames a sandbox received from another network's sandbox.
    pub frames_across_networks: u64,
    /// Times an address was held by two live endpoints of one network.
    pub addresses_held_twice: u64,
    /// Creates that got no address while a host reachable from theirs had one to give.
    pub allocation_failures_with_free_space_reachable: u64,
    /// Creates that got no address at all.
    pub allocation_failures: u64,
    /// Ranges of addresses given to hosts that asked.
    pub donations: u64,
    /// Crashed hosts forgotten, their addresses taken over by a live host.
    pub hosts_forgotten: u64,
    /// Creates that waited for addresses from another host.
    pub donation_waits: u64,
    /// How long those waited, median and p99.
    pub donation_wait_p50_ms: Option<f64>,
    /// p99 of the same.
    pub donation_wait_p99_ms: Option<f64>,
    /// Live hosts that, at the end, did not see every live host alive or did not hold the
    /// same records as the others.
    pub unconverged_hosts: u64,
    /// Endpoints whose convergence was measured (probes if the scenario has any, else all).
    pub endpoints_measured: u64,
    /// Endpoints made while the underlay was split, left out of the measure (they cannot
    /// reach the other side before the heal; `reconvergence_ms` covers them).
    pub endpoints_made_during_partition: u64,
    /// Of those measured, endpoints some live host never heard of.
    pub endpoints_unconverged: u64,
    /// Time until a new endpoint was known to every live host: median.
    pub route_convergence_p50_ms: Option<f64>,
    /// 99th percentile.
    pub route_convergence_p99_ms: Option<f64>,
    /// Worst.
    pub route_convergence_max_ms: Option<f64>,
    /// Crashes measured.
    pub crashes: u64,
    /// Time until a crashed host was declared down by every live host: worst.
    pub failure_detection_max_ms: Option<f64>,
    /// Median over crashes.
    pub failure_detection_p50_ms: Option<f64>,
    /// (observer, crashed host) pairs where the crash was never declared before the run ended
    /// or the host returned.
    pub failures_undetected: u64,
    /// Hosts the CA revoked.
    pub revocations: u64,
    /// Time until a revoked host was cut off (declared down) by every other live host: worst.
    pub revocation_cutoff_max_ms: Option<f64>,
    /// Remote endpoints of revoked hosts that live hosts still held at the end.
    pub revoked_endpoints_held: u64,
    /// Hosts declared down while alive and reachable from the host that declared it.
    pub false_positives: u64,
    /// After the last disruption (crash, restart, partition, heal, move, loss change): time
    /// until every live host saw every other alive with the same records.
    pub reconvergence_ms: Option<f64>,
    /// SWIM datagrams per host per second, over the whole run.
    pub control_messages_per_host_per_s: f64,
    /// SWIM and anti-entropy bytes (sealed, as sent) per host per second, over the whole run.
    pub control_bytes_per_host_per_s: f64,
    /// The same over the idle tail of the run (from 10 s after the last step), if it has one.
    pub idle_control_bytes_per_host_per_s: Option<f64>,
    /// Frames handed to sandboxes.
    pub frames_delivered: u64,
    /// Frames dropped, by reason (switch reasons and the underlay's).
    pub frames_dropped: BTreeMap<String, u64>,
    /// Pings sent.
    pub pings_sent: u64,
    /// Pings answered.
    pub pings_answered: u64,
    /// Of the pings sent, those over IPv6 (on dual-stack networks).
    pub pings6_sent: u64,
    /// Of those, the answered.
    pub pings6_answered: u64,
    /// Median ping round trip.
    pub ping_rtt_p50_ms: Option<f64>,
    /// TCP flows started.
    pub tcp_flows: u64,
    /// TCP flows whose every byte arrived.
    pub tcp_flows_completed: u64,
    /// Operations the model refused (a sandbox on a network the host has not heard of yet,
    /// an address another host still holds...).
    pub refused_operations: u64,
    /// The first refusals, as the model said them.
    pub refusals: Vec<String>,
    /// The goals of the simulator issue, checked.
    pub goals: Vec<Goal>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1} ms"))
}

impl Report {
    /// The JSON form.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize") + "\n"
    }

    /// The text form.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {} · seed {} · {} hosts · {} sandboxes · {:.1} s simulated",
            self.scenario, self.seed, self.hosts, self.sandboxes, self.simulated_s
        );
        let _ = writeln!(
            s,
            "\ninvariants: {}",
            if self.invariants_held { "held" } else { "BROKEN" }
        );
        let _ = writeln!(s, "  frames across networks     {}", self.frames_across_networks);
        let _ = writeln!(s, "  addresses held twice       {}", self.addresses_held_twice);
        let _ = writeln!(
            s,
            "  no address, space reachable {}",
            self.allocation_failures_with_free_space_reachable
        );
        let _ = writeln!(s, "  live hosts not converged   {}", self.unconverged_hosts);
        let _ = writeln!(s, "  endpoints not converged    {}", self.endpoints_unconverged);
        let _ = writeln!(
            s,
            "\naddresses: {} ranges given; {} creates waited for one, p50 {} · p99 {}; {} got none; {} hosts forgotten",
            self.donations,
            self.donation_waits,
            ms(self.donation_wait_p50_ms),
            ms(self.donation_wait_p99_ms),
            self.allocation_failures,
            self.hosts_forgotten
        );
        let _ = writeln!(
            s,
            "\nroutes ({} endpoints measured, {} made during a partition left out)",
            self.endpoints_measured, self.endpoints_made_during_partition
        );
        let _ = writeln!(
            s,
            "  known everywhere after     p50 {} · p99 {} · max {}",
            ms(self.route_convergence_p50_ms),
            ms(self.route_convergence_p99_ms),
            ms(self.route_convergence_max_ms)
        );
        let _ = writeln!(s, "\nfailures ({} crashes)", self.crashes);
        let _ = writeln!(
            s,
            "  declared down everywhere   p50 {} · max {} · never declared {}",
            ms(self.failure_detection_p50_ms),
            ms(self.failure_detection_max_ms),
            self.failures_undetected
        );
        if self.revocations > 0 {
            let _ = writeln!(
                s,
                "  revoked ({})                cut off everywhere after max {} · endpoints still held {}",
                self.revocations,
                ms(self.revocation_cutoff_max_ms),
                self.revoked_endpoints_held
            );
        }
        let _ = writeln!(s, "  false positives            {}", self.false_positives);
        let _ = writeln!(s, "  reconverged after last disruption {}", ms(self.reconvergence_ms));
        let _ = writeln!(s, "\ncontrol traffic per host");
        let _ = writeln!(
            s,
            "  whole run                  {:.1} msg/s · {:.0} B/s ({:.1} kbit/s)",
            self.control_messages_per_host_per_s,
            self.control_bytes_per_host_per_s,
            self.control_bytes_per_host_per_s * 8.0 / 1000.0
        );
        match self.idle_control_bytes_per_host_per_s {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "  idle                       {b:.0} B/s ({:.1} kbit/s)",
                    b * 8.0 / 1000.0
                );
            }
            None => {
                let _ = writeln!(s, "  idle                       not measured (no idle tail)");
            }
        }
        let _ = writeln!(s, "\nframes");
        let _ = writeln!(s, "  delivered to sandboxes     {}", self.frames_delivered);
        for (r, n) in &self.frames_dropped {
            let _ = writeln!(s, "  dropped: {r:<22} {n}");
        }
        let _ = writeln!(
            s,
            "  pings                      {} sent · {} answered · rtt p50 {}{}",
            self.pings_sent,
            self.pings_answered,
            ms(self.ping_rtt_p50_ms),
            match self.pings6_sent {
                0 => String::new(),
                n => format!(" · over IPv6 {n} sent · {} answered", self.pings6_answered),
            }
        );
        let _ = writeln!(
            s,
            "  tcp flows                  {} started · {} completed",
            self.tcp_flows, self.tcp_flows_completed
        );
        let _ = writeln!(s, "  refused operations         {}", self.refused_operations);
        for r in &self.refusals {
            let _ = writeln!(s, "    {r}");
        }
        let _ = writeln!(s, "\ngoals");
        for g in &self.goals {
            let verdict = match g.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            let _ = writeln!(s, "  {verdict:<12} {} — measured {}", g.goal, g.measured);
        }
        s
    }
}

/// The `q` quantile (0-1) of `v` (sorted here), nearest rank.
pub fn quantile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), Some(50.0));
        assert_eq!(quantile(&mut v, 0.99), Some(99.0));
        assert_eq!(quantile(&mut v, 1.0), Some(100.0));
        assert_eq!(quantile(&mut [], 0.5), None);
        assert_eq!(quantile(&mut [7.0], 0.99), Some(7.0));
    }
}
