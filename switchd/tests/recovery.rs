//! End-to-end: switchd killed (SIGKILL, through its failpoints) right after each kernel step
//! of create, connect, disconnect and rm; the next start leaves no namespace, interface, /etc
//! file or firewall element of an operation that did not commit, and the same names can be
//! used again. Needs root; set SWITCH_E2E=require (as CI does) to fail instead of skipping.

use std::path::Path;

use testbed::Host;

const FAILPOINT: &str = "SWITCHD_FAILPOINT";

/// The interfaces of switchd's namespace (veth host ends and gateways live there).
fn links(h: &Host) -> Vec<String> {
    let out = testbed::run("ip", ["-n", h.ns(), "-o", "link", "show"]);
    let mut v: Vec<String> = out
        .expect_ok("ip link")
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    v.sort();
    v
}

fn ruleset(h: &Host) -> String {
    testbed::run("ip", ["netns", "exec", h.ns(), "nft", "list", "ruleset"])
        .expect_ok("nft list ruleset")
        .to_string()
}

/// Runs `args` with switchd set to crash at `point`, then starts it again without.
fn crash_at(h: &mut Host, point: &str, args: &[&str]) {
    h.set_env(FAILPOINT, Some(point));
    h.restart();
    let out = h.ctl(args);
    assert!(!out.ok(), "{point}: the request was answered: {}", out.stdout);
    // The client sees the socket close while the kernel is still ending the process.
    let crashed = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        !h.is_running()
    });
    assert!(crashed, "{point}: switchd did not crash there: {}", out.stderr);
    h.set_env(FAILPOINT, None);
    h.restart();
}

fn assert_gone(h: &Host, point: &str, sb: &str, links_before: &[String]) {
    let ls = h.ctl(["sandbox", "ls"]).expect_ok("sandbox ls").to_string();
    assert!(!ls.contains(sb), "{point}: {sb} is listed: {ls}");
    assert!(
        !Path::new("/run/netns").join(sb).exists(),
        "{point}: its namespace is left"
    );
    assert!(
        !Path::new("/etc/netns").join(sb).exists(),
        "{point}: its /etc files are left"
    );
    assert_eq!(
        links(h),
        links_before,
        "{point}: interfaces left in switchd's namespace"
    );
    assert!(
        !ruleset(h).contains("18080"),
        "{point}: its published port is left in nftables"
    );
}

#[test]
fn a_crash_at_any_step_leaves_nothing_behind() {
    let Some(mut h) = testbed::e2e_host!("rc") else { return };
    h.ctl(["network", "create", "--subnet", "10.66.3.0/24", "n1"])
        .expect_ok("n1");
    h.ctl(["network", "create", "--subnet", "10.66.4.0/24", "n2"])
        .expect_ok("n2");
    let base = links(&h);
    let sb = h.name("s");

    // sandbox create: after each kernel step, with a TAP and with a veth.
    let steps = [
        "sandbox-create:namespace",
        "sandbox-create:interface",
        "sandbox-create:files",
        "sandbox-create:proxies",
    ];
    for (i, point) in steps.iter().enumerate() {
        let kind = if i % 2 == 0 { "tap" } else { "veth" };
        let create = [
            "sandbox",
            "create",
            "--network",
            "n1",
            "--port-kind",
            kind,
            "-p",
            "18080:80",
            &sb,
        ];
        crash_at(&mut h, point, &create);
        assert_gone(&h, point, &sb, &base);
        h.ctl(create).expect_ok("the same name again");
        assert!(
            h.exec(&sb, &["ping", "-c", "1", "-W", "2", "10.66.3.1"]).ok(),
            "{point}"
        );
        h.ctl(["sandbox", "rm", &sb]).expect_ok("rm");
        assert_gone(&h, point, &sb, &base);
    }
    // Committed just before the crash: the sandbox is whole.
    crash_at(
        &mut h,
        "sandbox-create:committed",
        &["sandbox", "create", "--network", "n1", &sb],
    );
    assert!(
        h.exec(&sb, &["ping", "-c", "1", "-W", "2", "10.66.3.1"]).ok(),
        "committed"
    );

    // connect: the interface exists, the endpoint does not.
    crash_at(&mut h, "connect:interface", &["network", "connect", "n2", &sb]);
    let eth1 = h.exec(&sb, &["ip", "link", "show", "eth1"]);
    assert!(
        !eth1.ok(),
        "the interface of the interrupted connect is left: {}",
        eth1.stdout
    );
    h.ctl(["network", "connect", "n2", &sb]).expect_ok("connect again");
    assert!(
        h.exec(&sb, &["ping", "-c", "1", "-W", "2", "10.66.4.1"]).ok(),
        "connected"
    );

    // disconnect and rm take the kernel side down before the record: the record stays, and
    // the same request finishes the job.
    crash_at(&mut h, "disconnect:interface", &["network", "disconnect", "n2", &sb]);
    h.ctl(["network", "disconnect", "n2", &sb])
        .expect_ok("disconnect again");
    for point in ["sandbox-rm:interfaces", "sandbox-rm:namespace"] {
        crash_at(&mut h, point, &["sandbox", "rm", &sb]);
        h.ctl(["sandbox", "rm", &sb]).expect_ok("rm again");
        assert_gone(&h, point, &sb, &base);
        h.ctl(["sandbox", "create", "--network", "n1", &sb])
            .expect_ok("the same name again");
    }
    h.ctl(["sandbox", "rm", &sb]).expect_ok("rm");
    assert_gone(&h, "end", &sb, &base);
}

#[test]
fn a_crash_leaves_no_macvlan_child_in_an_adopted_namespace() {
    if !testbed::e2e_allowed("rm") {
        return;
    }
    let p = testbed::prefix("rm");
    let ul = testbed::Underlay::new(&p);
    let bins = Path::new(env!("CARGO_BIN_EXE_switchd")).parent().expect("target dir");
    let mut h = Host::start_with(&format!("{p}a"), bins, &[]);
    ul.attach(&h, "10.91.0.1/24");
    h.ctl([
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.92.0.0/24",
        "-o",
        "parent=ul0",
        "lan",
    ])
    .expect_ok("macvlan network");
    // A runtime's namespace, adopted by the sandbox (as switch-cni does for a pod).
    let runtime = h.name("pod");
    testbed::run("ip", ["netns", "add", &runtime]).expect_ok("ip netns add");
    let path = format!("/run/netns/{runtime}");
    let sb = h.name("s");
    let create = ["sandbox", "create", "--network", "lan", "--netns", &path, &sb];
    for point in ["sandbox-create:interface", "sandbox-create:files"] {
        crash_at(&mut h, point, &create);
        let ls = h.ctl(["sandbox", "ls"]).expect_ok("sandbox ls").to_string();
        assert!(!ls.contains(&sb), "{point}: {ls}");
        assert!(
            Path::new(&path).exists(),
            "{point}: the runtime's namespace is not switchd's to remove"
        );
        let links = testbed::run("ip", ["-n", &runtime, "-o", "link", "show"]).stdout;
        assert!(!links.contains("eth0"), "{point}: the macvlan child is left: {links}");
        assert!(
            !Path::new("/run/netns").join(&sb).exists(),
            "{point}: the publication is left"
        );
        h.ctl(create).expect_ok("the same sandbox again");
        h.ctl(["sandbox", "rm", &sb]).expect_ok("rm");
    }
}
