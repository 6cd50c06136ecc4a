//! End-to-end: macvlan networks on two hosts joined by a wire; their sandboxes sit on the
//! "physical" LAN and reach each other with no tunnel. Needs root (SWITCH_E2E=require).

use std::path::Path;

use serde_json::Value;
use testbed::{ping, Capture, Host, Underlay};

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
    if !testbed::e2e_allowed("macvlan") {
        return;
    }
    let p = testbed::prefix("mv");
    let ul = Underlay::new(&p);
    let h1 = Host::start_with(&format!("{p}a"), testbed::bin_dir!(), &[]);
    let h2 = Host::start_with(&format!("{p}b"), testbed::bin_dir!(), &[]);
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
            "--ipv6",
            "--subnet",
            "fd90::/64",
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
    h1.ctl([
        "sandbox",
        "create",
        "--network",
        "mv",
        "--ip",
        "10.90.0.11",
        "--ip6",
        "fd90::b",
        &s1,
    ])
    .expect_ok("s1");
    h2.ctl([
        "sandbox",
        "create",
        "--network",
        "mv",
        "--ip",
        "10.90.0.12",
        "--ip6",
        "fd90::c",
        &s2,
    ])
    .expect_ok("s2");
    let link = h1.exec(&s1, &["ip", "-d", "link", "show", "eth0"]).stdout;
    assert!(
        link.contains("macvlan mode bridge") && link.contains("02:42:0a:5a:00:0b"),
        "{link}"
    );

    // On the wire: plain frames between the sandboxes' own MACs, no tunnel.
    let dump = Capture::start(ul.ns(), "br0", "icmp or udp port 4789", 4);
    assert!(
        h1.exec(&s1, &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.90.0.12"])
            .ok(),
        "s1 (h1) to s2 (h2)"
    );
    assert!(
        h2.exec(&s2, &["ping", "-c", "1", "-W", "1", "10.90.0.11"]).ok(),
        "s2 (h2) to s1 (h1)"
    );
    let wire = dump.finish();
    assert!(
        wire.contains("02:42:0a:5a:00:0b > 02:42:0a:5a:00:0c") && wire.contains("ICMP echo request"),
        "{wire}"
    );
    assert!(!wire.contains("VXLAN"), "no tunnel: {wire}");
    // IPv6 too, the kernel's neighbour discovery between the children.
    assert!(
        h1.exec(&s1, &["ping", "-c", "1", "-W", "2", "fd90::c"]).ok(),
        "s1 (h1) to s2 (h2) over IPv6"
    );

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
    // Over IPv6 too: the child holds the first IPv6 subnet's last address.
    let addrs6 = h1.exec(h1.ns(), &["ip", "-o", "-6", "addr", "show"]).stdout;
    assert!(
        addrs6
            .lines()
            .any(|l| l.contains("mvh-") && l.contains("fd90::ffff:ffff:ffff:ffff/64")),
        "{addrs6}"
    );
    assert!(
        h1.exec(h1.ns(), &["ping", "-c", "1", "-W", "2", "fd90::b"]).ok(),
        "h1 reaches its sandbox over IPv6"
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

/// A frame from `src` to `dst` behind `tags` (outermost first), of the local experimental
/// EtherType 0x88b5, so captures can pick it out.
fn marked_frame(dst: [u8; 6], src: [u8; 6], tags: &[u16]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for t in tags {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&t.to_be_bytes());
    }
    f.extend_from_slice(&[0x88, 0xb5]);
    f.resize(64, 0x5a);
    f
}

fn inspect(h: &Host, net: &str) -> Value {
    let out = h.ctl(["network", "inspect", net]).expect_ok("inspect").to_string();
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    v[0].clone()
}

fn port(h: &Host, interface: &str) -> Value {
    let out = h.ctl(["ports", "--format", "json"]).expect_ok("ports").to_string();
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    v.as_array()
        .unwrap()
        .iter()
        .find(|p| p["Interface"] == interface)
        .unwrap_or_else(|| panic!("no port {interface}: {v}"))
        .clone()
}

fn macvlan(h: &Host, name: &str, subnet: &str, parent: &str, extra: &[&str]) -> testbed::Output {
    let parent = format!("parent={parent}");
    let mut args = vec!["network", "create", "-d", "macvlan", "--subnet", subnet, "-o", &parent];
    args.extend_from_slice(extra);
    args.push(name);
    h.ctl(args)
}

const S1_MAC: [u8; 6] = [0x02, 0x42, 10, 90, 0, 11];
const S3_MAC: [u8; 6] = [0x02, 0x42, 10, 90, 0, 13];

#[test]
fn vlans_share_the_wire_but_never_frames() {
    if !testbed::e2e_allowed("vlan") {
        return;
    }
    let p = testbed::prefix("vl");
    let ul = Underlay::new(&p);
    let mut h1 = Host::start_with(&format!("{p}a"), testbed::bin_dir!(), &[]);
    let h2 = Host::start_with(&format!("{p}b"), testbed::bin_dir!(), &[]);
    let h3 = Host::start_with(&format!("{p}c"), testbed::bin_dir!(), &[]);
    ul.attach(&h1, "10.89.0.1/24");
    ul.attach(&h2, "10.89.0.2/24");
    ul.attach(&h3, "10.89.0.3/24");
    let links = |h: &Host| -> Vec<String> {
        let out = h.exec(h.ns(), &["ip", "-o", "link", "show"]).stdout;
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    };
    let before = links(&h1);

    // Bad input: one sentence naming the value, and nothing made.
    for (parent, says) in [
        (
            "ul0.4095",
            "invalid VLAN ID 4095 in parent \"ul0.4095\": a VLAN ID is 1-4094",
        ),
        ("ul0.0", "invalid VLAN ID 0"),
        ("ul0.ten", "IFACE.VLAN with a VLAN ID of 1-4094"),
        ("nope0.10", "parent interface nope0 does not exist on this host"),
    ] {
        let e = macvlan(&h1, "v10", "10.90.0.0/24", parent, &[]);
        assert!(e.expect_err(parent).contains(says), "{parent}: {e:?}");
    }
    assert_eq!(links(&h1), before, "a refused network leaves no interface behind");
    assert_eq!(promiscuity(&h1), "0");

    // VLAN 10 on h1 and h2, VLAN 20 on h3, all in one subnet; h1 also has VLAN 20 in another.
    macvlan(&h1, "v10", "10.90.0.0/24", "ul0.10", &["-o", "host_access=true"]).expect_ok("h1 v10");
    macvlan(&h1, "v20", "10.91.0.0/24", "ul0.20", &[]).expect_ok("h1 v20");
    macvlan(&h2, "v10", "10.90.0.0/24", "ul0.10", &[]).expect_ok("h2 v10");
    macvlan(&h3, "v20", "10.90.0.0/24", "ul0.20", &[]).expect_ok("h3 v20");
    let e = macvlan(&h1, "again", "10.92.0.0/24", "ul0.10", &[]);
    assert!(
        e.expect_err("VLAN twice")
            .contains("parent interface ul0.10 is already used by macvlan network v10"),
        "{e:?}"
    );
    let e = macvlan(&h1, "overlap", "10.90.0.0/25", "ul0.30", &[]);
    assert!(e.expect_err("overlap").contains("overlaps"), "{e:?}");

    let native = &inspect(&h1, "v10")["Native"];
    let path = native["Path"].as_str().unwrap_or_default().to_string();
    assert!(path == "userspace-8021q" || path == "kernel-8021q", "{native}");
    assert_eq!(
        (native["Parent"].as_str(), native["VLAN"].as_u64()),
        (Some("ul0"), Some(10))
    );
    assert_eq!(inspect(&h1, "v10")["Options"]["parent"], "ul0.10");
    assert_ne!(
        promiscuity(&h1),
        "0",
        "the parent is promiscuous while VLAN networks use it"
    );

    let (s1, s2, s3, s4) = (h1.name("s1"), h2.name("s2"), h3.name("s3"), h1.name("s4"));
    for (h, net, ip, s) in [
        (&h1, "v10", "10.90.0.11", &s1),
        (&h2, "v10", "10.90.0.12", &s2),
        (&h3, "v20", "10.90.0.13", &s3),
        (&h1, "v20", "10.91.0.14", &s4),
    ] {
        h.ctl(["sandbox", "create", "--network", net, "--ip", ip, s])
            .expect_ok(s);
    }

    // The wire carries tags 10 and 20; VLAN 10 reaches across hosts, VLAN 20 does not reach it.
    let wire = Capture::start(ul.ns(), "br0", "vlan", 5);
    assert!(ping(&h1, &s1, "10.90.0.12"), "VLAN 10: s1 (h1) to s2 (h2)");
    assert!(ping(&h2, &s2, "10.90.0.11"), "VLAN 10: s2 (h2) to s1 (h1)");
    assert!(
        !ping(&h3, &s3, "10.90.0.11"),
        "VLAN 20 must not reach VLAN 10 in the same subnet"
    );
    assert!(
        !ping(&h3, &s3, "10.90.0.12"),
        "VLAN 20 must not reach VLAN 10 in the same subnet"
    );
    assert!(!ping(&h1, &s4, "10.91.0.1"), "nobody answers on h1's VLAN 20");
    let wire = wire.finish();
    assert!(
        wire.lines().any(|l| l.contains("02:42:0a:5a:00:0b > 02:42:0a:5a:00:0c")
            && l.contains("vlan 10")
            && l.contains("ICMP echo request")),
        "{wire}"
    );
    assert!(
        wire.lines()
            .any(|l| l.contains("02:42:0a:5a:00:0d") && l.contains("vlan 20")),
        "{wire}"
    );
    assert!(
        wire.lines()
            .any(|l| l.contains("02:42:0a:5b:00:0e") && l.contains("vlan 20")),
        "h1's second VLAN leaves tagged 20: {wire}"
    );
    assert!(
        !wire
            .lines()
            .any(|l| l.contains("02:42:0a:5a:00:0d") && l.contains("vlan 10")),
        "{wire}"
    );

    // Injected frames: a single tag 20 reaches s3 (the control); outer 10 inner 20 does not,
    // nor does a frame s1 tags itself with 20.
    let netns = |n: &str| Path::new("/run/netns").join(n);
    let at_s3 = Capture::start(&s3, "eth0", "ether proto 0x88b5", 3);
    let at_s1 = Capture::start(&s1, "eth0", "ether proto 0x88b5", 3);
    let (control, double, own) = ([2, 0, 0, 0, 0, 0xc1], [2, 0, 0, 0, 0, 0xd1], [2, 0, 0, 0, 0, 0xe1]);
    testbed::send_raw(&netns(ul.ns()), "br0", marked_frame(S3_MAC, control, &[20]));
    testbed::send_raw(&netns(ul.ns()), "br0", marked_frame(S3_MAC, double, &[10, 20]));
    testbed::send_raw(&netns(ul.ns()), "br0", marked_frame(S1_MAC, double, &[20, 10]));
    testbed::send_raw(&netns(&s1), "eth0", marked_frame(S3_MAC, own, &[20]));
    testbed::send_raw(&netns(&s1), "eth0", marked_frame(S3_MAC, own, &[10, 20]));
    // tcpdump prints a header line per frame, then a hex dump of an unknown EtherType.
    let frames = |dump: String| -> Vec<String> {
        dump.lines()
            .filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
            .map(String::from)
            .collect()
    };
    let (at_s3, at_s1) = (frames(at_s3.finish()), frames(at_s1.finish()));
    assert_eq!(at_s3.len(), 1, "only the control frame reaches s3: {at_s3:?}");
    assert!(
        at_s3[0].contains("02:00:00:00:00:c1 > 02:42:0a:5a:00:0d"),
        "the control frame: {at_s3:?}"
    );
    assert!(at_s1.is_empty(), "nothing reaches s1: {at_s1:?}");
    if path == "userspace-8021q" {
        // Where the extra tags died, by reason: s1's own port, and h1's VLAN 20 uplink (outer
        // 20 lifted, inner 10 refused like any tag on an access port).
        let own = &port(&h1, &format!("{s1}/eth0"))["Drops"];
        assert!(own["tagged_on_access_port"].as_u64() >= Some(2), "{own}");
        let up20 = &port(&h1, "ul0.20")["Drops"];
        assert!(up20["tagged_on_access_port"].as_u64() >= Some(1), "{up20}");
        assert!(
            up20.get("wrong_vlan").is_none(),
            "the kernel filter keeps other VLANs away: {up20}"
        );
    }

    // Bulk TCP across the tagged wire (offloaded super-frames on the way), and host access.
    assert_eq!(testbed::tcp_bulk(&s1, &s2, "10.90.0.12", 16), 16 << 20);
    if path == "userspace-8021q" {
        let p = port(&h1, "ul0.10");
        let avg = p["TxBytes"].as_u64().unwrap() / p["TxPackets"].as_u64().unwrap().max(1);
        assert!(
            avg > 1514,
            "the uplink sent {avg}-byte frames on average: no super-frames {p}"
        );
        assert!(p["Drops"].get("tx_failed").is_none(), "{p}");
    }
    assert!(
        ping(&h1, h1.ns(), "10.90.0.11"),
        "h1 reaches its own sandbox (host_access)"
    );
    assert!(ping(&h1, h1.ns(), "10.90.0.12"), "and h2's over VLAN 10");

    // A crash and a restart bring the uplink back.
    h1.kill9();
    h1.restart();
    assert!(ping(&h1, &s1, "10.90.0.12"), "VLAN 10 after h1's restart");
    assert_eq!(inspect(&h1, "v10")["Native"]["Path"], path.as_str());

    for (h, s) in [(&h1, &s1), (&h2, &s2), (&h3, &s3), (&h1, &s4)] {
        h.ctl(["sandbox", "rm", s]).expect_ok("rm");
    }
    for (h, n) in [(&h1, "v10"), (&h1, "v20"), (&h2, "v10"), (&h3, "v20")] {
        h.ctl(["network", "rm", n]).expect_ok("network rm");
    }
    assert_eq!(
        promiscuity(&h1),
        "0",
        "the parent is restored with its last VLAN network"
    );
    assert_eq!(links(&h1), before, "every interface made for the VLANs is gone");
}

#[test]
fn an_ipv6_only_macvlan_network_reaches_its_host() {
    if !testbed::e2e_allowed("macvlan") {
        return;
    }
    let p = testbed::prefix("mv6");
    let ul = Underlay::new(&p);
    let h = Host::start_with(&format!("{p}a"), testbed::bin_dir!(), &[]);
    ul.attach(&h, "10.88.0.1/24");
    let args = [
        "network",
        "create",
        "-d",
        "macvlan",
        "--ipv4=false",
        "--ipv6",
        "--subnet",
        "fd91::/64",
        "-o",
        "parent=ul0",
        "-o",
        "host_access=true",
        "mv6",
    ];
    h.ctl(args).expect_ok("IPv6-only macvlan network");
    let s = h.name("s");
    h.ctl(["sandbox", "create", "--network", "mv6", &s]).expect_ok("s");
    let v4 = h.exec(&s, &["ip", "-4", "-o", "addr", "show", "eth0"]).stdout;
    assert_eq!(v4.trim(), "", "no IPv4 on an IPv6-only network");
    // The host's own child holds the subnet's last address alone, and reaches the sandbox.
    let child = h.exec(h.ns(), &["ip", "-o", "addr", "show"]).stdout;
    let child: Vec<&str> = child.lines().filter(|l| l.contains("mvh-")).collect();
    assert!(
        child.iter().any(|l| l.contains("fd91::ffff:ffff:ffff:ffff/64")),
        "{child:?}"
    );
    assert!(!child.iter().any(|l| l.contains(" inet ")), "{child:?}");
    assert!(
        h.exec(h.ns(), &["ping", "-c", "1", "-W", "2", "fd91::2"]).ok(),
        "the host reaches its sandbox over IPv6"
    );
}
