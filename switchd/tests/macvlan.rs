//! End-to-end: macvlan networks on two hosts joined by a wire; their sandboxes sit on the
//! "physical" LAN and reach each other with no tunnel. Needs root (SWITCH_E2E=require).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sim::{Host, Underlay};

fn bin_dir() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_switchd")).parent().expect("target dir")
}

fn promiscuity(h: &Host) -> String {
    let d = h.exec(h.ns(), &["ip", "-d", "link", "show", "ul0"]).stdout;
    d.split_whitespace()
        .skip_while(|w| *w != "promiscuity")
        .nth(1)
        .unwrap_or("?")
        .to_string()
}

#[test]
fn macvlan_sandboxes_on_two_hosts_share_the_lan() {
    if !sim::e2e_allowed("macvlan") {
        return;
    }
    let p = sim::prefix("mv");
    let ul = Underlay::new(&p);
    let h1 = Host::start_with(&format!("{p}a"), bin_dir(), &[]);
    let h2 = Host::start_with(&format!("{p}b"), bin_dir(), &[]);
    ul.attach(&h1, "10.89.0.1/24");
    ul.attach(&h2, "10.89.0.2/24");

    // Bad input first: nothing is created.
    let e = h1.ctl(["network", "create", "-d", "macvlan", "--subnet", "10.90.0.0/24", "mv"]);
    assert!(e.expect_err("no parent").contains("needs -o parent=IFACE"));
    let e = h1.ctl([
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.90.0.0/24",
        "-o",
        "parent=nope0",
        "mv",
    ]);
    assert!(e
        .expect_err("missing parent")
        .contains("parent interface nope0 does not exist on this host"));
    let e = h1.ctl([
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.90.0.0/24",
        "-o",
        "parent=ul0",
        "-o",
        "macvlan_mode=weird",
        "mv",
    ]);
    assert!(e
        .expect_err("bad mode")
        .contains("one of bridge, private, vepa, passthru"));
    assert_eq!(promiscuity(&h1), "0");

    // h1 gives its host access to the network; h2 does not.
    for (h, access) in [(&h1, "true"), (&h2, "false")] {
        let opt = format!("host_access={access}");
        let args = [
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            "10.90.0.0/24",
            "--gateway",
            "10.90.0.1",
            "-o",
            "parent=ul0",
            "-o",
            &opt,
            "mv",
        ];
        h.ctl(args).expect_ok("macvlan network");
    }
    assert_ne!(
        promiscuity(&h1),
        "0",
        "the parent is promiscuous while the network exists"
    );
    let e = h1.ctl([
        "network",
        "create",
        "-d",
        "macvlan",
        "--subnet",
        "10.91.0.0/24",
        "-o",
        "parent=ul0",
        "mv2",
    ]);
    assert!(e
        .expect_err("parent twice")
        .contains("already used by macvlan network mv"));

    let (s1, s2) = (h1.name("s1"), h2.name("s2"));
    h1.ctl(["sandbox", "create", "--network", "mv", "--ip", "10.90.0.11", &s1])
        .expect_ok("s1");
    h2.ctl(["sandbox", "create", "--network", "mv", "--ip", "10.90.0.12", &s2])
        .expect_ok("s2");
    let link = h1.exec(&s1, &["ip", "-d", "link", "show", "eth0"]).stdout;
    assert!(
        link.contains("macvlan mode bridge") && link.contains("02:42:0a:5a:00:0b"),
        "{link}"
    );

    // On the wire: plain frames between the sandboxes' own MACs, no tunnel.
    let dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            ul.ns(),
            "timeout",
            "4",
            "tcpdump",
            "-nn",
            "-e",
            "-l",
            "-i",
            "br0",
            "icmp or udp port 4789",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        h1.exec(&s1, &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.90.0.12"])
            .ok(),
        "s1 (h1) to s2 (h2)"
    );
    assert!(
        h2.exec(&s2, &["ping", "-c", "1", "-W", "1", "10.90.0.11"]).ok(),
        "s2 (h2) to s1 (h1)"
    );
    let wire = String::from_utf8_lossy(&dump.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        wire.contains("02:42:0a:5a:00:0b > 02:42:0a:5a:00:0c") && wire.contains("ICMP echo request"),
        "{wire}"
    );
    assert!(!wire.contains("VXLAN"), "no tunnel: {wire}");

    // host_access: h1's own macvlan child holds the subnet's last address and reaches s1.
    let addrs = h1.exec(h1.ns(), &["ip", "-o", "-4", "addr", "show"]).stdout;
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("mvh-") && l.contains("10.90.0.254/24")),
        "{addrs}"
    );
    assert!(
        h1.exec(h1.ns(), &["ping", "-c", "1", "-W", "1", "10.90.0.11"]).ok(),
        "h1 reaches its sandbox"
    );
    let e = h1.ctl([
        "sandbox",
        "create",
        "--network",
        "mv",
        "--ip",
        "10.90.0.254",
        &h1.name("x"),
    ]);
    assert!(e
        .expect_err("reserved")
        .contains("reserved for the host's own interface"));

    h1.ctl(["network", "disconnect", "mv", &s1]).expect_ok("disconnect");
    assert!(
        !h1.exec(&s1, &["ip", "link", "show", "eth0"]).ok(),
        "the macvlan child is gone"
    );
    h1.ctl(["sandbox", "rm", &s1]).expect_ok("rm");
    h1.ctl(["network", "rm", "mv"]).expect_ok("network rm");
    assert_eq!(
        promiscuity(&h1),
        "0",
        "the parent is restored with the last macvlan network"
    );
}
