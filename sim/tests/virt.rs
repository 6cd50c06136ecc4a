//! The simulator on the shipped scenarios, scaled down to run in a debug build: invariants
//! hold, the measures come out, and a seed gives one report.

use std::path::Path;

use sim::virt::scenario::Scenario;
use sim::virt::{run, Options};

fn scenario(name: &str) -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::parse(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn small(name: &str, hosts: u32, seed: u64) -> sim::virt::Outcome {
    run(
        scenario(name),
        &Options {
            seed: Some(seed),
            hosts: Some(hosts),
        },
    )
}

/// `switchsim run` restarts itself with glibc's huge-page heap and faults its heap in from a
/// second thread: the report it prints is still the library's, arguments and all, and so it
/// is when the huge-page tunable is already chosen (no restart).
#[test]
fn the_binary_prints_the_report_the_library_makes() {
    let want = small("converge", 12, 7).report.json();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/converge.toml");
    for tunables in [None, Some("glibc.malloc.hugetlb=0")] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchsim"));
        cmd.arg("run")
            .arg(&file)
            .args(["--hosts", "12", "--seed", "7", "--format", "json"]);
        if let Some(t) = tunables {
            cmd.env("GLIBC_TUNABLES", t);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            want,
            "GLIBC_TUNABLES {tunables:?}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_report_byte_for_byte() {
    let a = small("move", 12, 7).report.json();
    let b = small("move", 12, 7).report.json();
    assert_eq!(a, b);
    let c = small("move", 12, 8).report.json();
    assert_ne!(a, c, "another seed, another run");
    let v: serde_json::Value = serde_json::from_str(&a).unwrap();
    for key in [
        "invariants_held",
        "route_convergence_p99_ms",
        "failure_detection_max_ms",
        "false_positives",
        "control_bytes_per_host_per_s",
    ] {
        assert!(v.get(key).is_some(), "{key} missing from {a}");
    }
}

#[test]
fn converge_reaches_everyone_and_carries_traffic() {
    let r = small("converge", 16, 1).report;
    assert!(r.invariants_held, "{}", r.text());
    assert_eq!(r.endpoints_measured, 20, "the probes");
    assert!(r.route_convergence_p99_ms.is_some_and(|v| v < 3000.0), "{}", r.text());
    assert!(
        r.pings_answered >= r.pings_sent * 9 / 10 && r.pings_sent > 0,
        "{}",
        r.text()
    );
    assert_eq!(r.tcp_flows_completed, r.tcp_flows, "{}", r.text());
    assert!(r.frames_delivered > 0 && r.frames_across_networks == 0);
}

#[test]
fn dual_stack_sandboxes_ping_over_both_families() {
    let r = small("dualstack", 16, 6).report;
    assert!(r.invariants_held, "{}", r.text());
    assert!(r.pings6_sent > 0 && r.pings_sent > r.pings6_sent, "{}", r.text());
    assert!(r.pings6_answered >= r.pings6_sent * 9 / 10, "{}", r.text());
    assert!(r.pings_answered >= r.pings_sent * 9 / 10, "{}", r.text());
    assert_eq!(r.tcp_flows_completed, r.tcp_flows, "{}", r.text());
    assert_eq!(r.frames_across_networks, 0);
}

#[test]
fn crashed_hosts_are_declared_down_and_come_back() {
    let r = small("crash", 24, 2).report;
    assert!(r.invariants_held, "{}", r.text());
    assert_eq!(r.crashes, 5);
    assert_eq!(r.failures_undetected, 0, "{}", r.text());
    assert!(r.failure_detection_max_ms.is_some_and(|v| v < 10_000.0), "{}", r.text());
    assert_eq!(r.false_positives, 0, "{}", r.text());
    assert!(r.reconvergence_ms.is_some(), "{}", r.text());
}

#[test]
fn revoked_hosts_are_cut_off_and_their_endpoints_withdrawn_for_good() {
    let r = small("revoke", 24, 3).report;
    assert!(r.invariants_held, "{}", r.text());
    assert_eq!(r.revocations, 3);
    assert_eq!(r.revoked_endpoints_held, 0, "{}", r.text());
    assert!(r.revocation_cutoff_max_ms.is_some_and(|v| v < 5_000.0), "{}", r.text());
    assert_eq!(r.false_positives, 0, "{}", r.text());
    assert!(
        r.pings_answered >= r.pings_sent * 9 / 10 && r.pings_sent > 0,
        "{}",
        r.text()
    );
}

#[test]
fn a_healed_partition_merges_again() {
    let r = small("partition", 20, 3).report;
    assert!(r.invariants_held, "{}", r.text());
    assert_eq!(r.endpoints_made_during_partition, 10);
    assert_eq!(r.unconverged_hosts, 0, "{}", r.text());
    assert!(r.reconvergence_ms.is_some(), "{}", r.text());
}

#[test]
fn addresses_go_where_they_are_needed_and_none_is_held_twice() {
    let r = small("ipam", 30, 5).report;
    assert!(r.invariants_held, "{}", r.text());
    assert_eq!(
        (r.addresses_held_twice, r.allocation_failures_with_free_space_reachable),
        (0, 0),
        "{}",
        r.text()
    );
    // One host made 500 of the 1,021 addresses: it asked for most of them.
    assert!(r.donations > 30, "{}", r.text());
    assert!(r.donation_wait_p99_ms.is_some_and(|w| w < 1000.0), "{}", r.text());
    // Three hosts crashed for good and were forgotten; their addresses went to a live host.
    assert_eq!(r.hosts_forgotten, 3, "{}", r.text());
}

#[test]
fn moved_endpoints_are_found_at_their_new_host() {
    let r = small("move", 20, 4).report;
    assert!(r.invariants_held, "{}", r.text());
    assert_eq!(r.addresses_held_twice, 0);
    // A moved endpoint keeps its address: the new host asks the old one for it.
    assert_eq!(r.refused_operations, 0, "{}", r.text());
    assert!(
        r.pings_sent > 0 && r.pings_answered >= r.pings_sent * 9 / 10,
        "{}",
        r.text()
    );
}

#[test]
fn five_percent_loss_declares_nobody_alive_down() {
    let r = small("lossy", 20, 5).report;
    assert!(r.invariants_held, "{}", r.text());
    assert_eq!(r.false_positives, 0, "{}", r.text());
    assert!(
        r.frames_dropped.get("link_loss").is_some_and(|n| *n > 0),
        "{}",
        r.text()
    );
}
