//! End-to-end: dual-stack bridge networks on the real switchd in namespaces. Sandboxes get
//! IPv6 addresses, link-local addresses and a default route through the gateway; ping6 runs
//! between them and to the gateway; a hostile sandbox's neighbour advertisements, router
//! advertisements and forged sources are dropped and counted. Needs root; set
//! SWITCH_E2E=require (as CI does) to fail instead of skipping.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::Duration;

use testbed::{json, ping, Host};

/// The `ip -6 -o addr` lines of `ifname` in namespace `ns`.
fn addrs6(h: &Host, ns: &str, ifname: &str) -> String {
    h.exec(ns, &["ip", "-6", "-o", "addr", "show", "dev", ifname])
        .expect_ok("ip -6 addr")
        .to_string()
}

fn mac_of(h: &Host, ns: &str, ifname: &str) -> [u8; 6] {
    let out = h.exec(ns, &["cat", &format!("/sys/class/net/{ifname}/address")]);
    let v: Vec<u8> = out
        .expect_ok("MAC address")
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

fn show_mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// An IPv6 frame from `src_mac` to `dst_mac`, `src` to `dst`, carrying `l4` under `next`.
fn ipv6_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: &str, dst: &str, next: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, 255]);
    f.extend_from_slice(&src.parse::<std::net::Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&dst.parse::<std::net::Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(l4);
    f
}

#[test]
fn a_dual_stack_network_carries_ipv6_between_sandboxes_and_to_the_gateway() {
    let Some(mut h) = testbed::e2e_host!("v6") else { return };
    let gw_if = format!("{}g", h.prefix());
    let bridge_opt = format!("com.docker.network.bridge.name={gw_if}");
    h.ctl([
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.70.0.0/24",
        "--subnet",
        "fd70::/64",
        "--gateway",
        "fd70::1",
        "-o",
        &bridge_opt,
        "n6",
    ])
    .expect_ok("dual-stack network");
    let (a, b) = (h.name("a"), h.name("b"));
    h.ctl(["sandbox", "create", "--network", "n6", &a]).expect_ok("a");
    h.ctl(["sandbox", "create", "--network", "n6", "--ip6", "fd70::50", &b])
        .expect_ok("b");

    let n = json(h.ctl(["network", "inspect", "n6"]).expect_ok("inspect"));
    assert_eq!(n[0]["EnableIPv6"], true);
    assert_eq!(
        n[0]["IPAM"]["Config"],
        serde_json::json!([
            {"Subnet": "10.70.0.0/24", "Gateway": "10.70.0.1"},
            {"Subnet": "fd70::/64", "Gateway": "fd70::1"},
        ])
    );
    let mut v6: Vec<String> = n[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["IPv6Address"].as_str().unwrap().to_string())
        .collect();
    v6.sort();
    assert_eq!(v6, ["fd70::2/64", "fd70::50/64"]);
    let s = json(h.ctl(["sandbox", "inspect", &a]).expect_ok("sandbox inspect"));
    assert_eq!(s[0]["Networks"][0]["GlobalIPv6Address"], "fd70::2");
    assert_eq!(s[0]["Networks"][0]["GlobalIPv6PrefixLen"], 64);
    assert_eq!(s[0]["Networks"][0]["IPv6Gateway"], "fd70::1");

    // The address is usable at once (no DAD), beside the link-local address of the MAC.
    let a_addrs = addrs6(&h, &a, "eth0");
    assert!(a_addrs.contains("inet6 fd70::2/64"), "{a_addrs}");
    assert!(!a_addrs.contains("tentative"), "{a_addrs}");
    let m = mac_of(&h, &a, "eth0");
    let link_local = std::net::Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 2,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ]);
    assert!(
        a_addrs.contains(&format!("inet6 {link_local}/64")),
        "{link_local} in {a_addrs}"
    );
    let routes = h.exec(&a, &["ip", "-6", "route", "show", "default"]);
    assert!(
        routes.expect_ok("routes").contains("default via fd70::1 dev eth0"),
        "{}",
        routes.stdout
    );
    assert!(addrs6(&h, h.ns(), &gw_if).contains("inet6 fd70::1/64"));

    assert!(ping(&h, &a, "fd70::1"), "a reaches the gateway over IPv6");
    assert!(ping(&h, &a, "fd70::50"), "a reaches b over IPv6");
    assert!(ping(&h, &b, "fd70::2"), "b reaches a over IPv6");
    assert!(ping(&h, &a, "10.70.0.3"), "IPv4 still runs beside it");
    assert!(ping(&h, &a, "::1"), "the sandbox's loopback holds ::1");
    let hosts = h.exec(&a, &["cat", "/etc/hosts"]);
    assert!(
        hosts.expect_ok("hosts").contains(&format!("fd70::2\t{a}")),
        "{}",
        hosts.stdout
    );

    // The embedded DNS answers AAAA and ip6.arpa PTR, asked over IPv4 or IPv6.
    let dig = |server: &str, args: &[&str]| {
        let mut cmd = vec!["dig", "+short", "+time=2", "+tries=1", server];
        cmd.extend_from_slice(args);
        h.exec(&a, &cmd).expect_ok("dig").trim().to_string()
    };
    assert_eq!(dig("@10.70.0.1", &["AAAA", &b]), "fd70::50");
    assert_eq!(dig("@fd70::1", &["AAAA", &b]), "fd70::50");
    assert_eq!(dig("@fd70::1", &["A", &b]), "10.70.0.3");
    assert_eq!(dig("@fd70::1", &["-x", "fd70::50"]), format!("{b}.n6."));

    // A network asked for IPv6 without a subnet takes a /64 of the host's unique local /48.
    h.ctl(["network", "create", "--ipv6", "auto6"])
        .expect_ok("automatic IPv6");
    let auto = json(h.ctl(["network", "inspect", "auto6"]).expect_ok("inspect"));
    let subnet = auto[0]["IPAM"]["Config"][1]["Subnet"].as_str().unwrap().to_string();
    assert!(subnet.starts_with("fd") && subnet.ends_with("::/64"), "{subnet}");

    // A sandbox of a network without IPv6 has none, not even link-local.
    let c = h.name("c");
    h.ctl(["network", "create", "n4"]).expect_ok("IPv4 network");
    h.ctl(["sandbox", "create", "--network", "n4", &c]).expect_ok("c");
    assert_eq!(addrs6(&h, &c, "eth0"), "");

    // Networks stay apart over IPv6 as over IPv4: a's packets to auto6's sandbox are
    // forwarded by the host, and dropped by the isolation rules; auto6's DNS, bound to its
    // own gateway interface, never hears a.
    let d = h.name("d");
    h.ctl(["sandbox", "create", "--network", "auto6", &d]).expect_ok("d");
    let d_inspect = json(h.ctl(["sandbox", "inspect", &d]).expect_ok("inspect"));
    let d_ip = d_inspect[0]["Networks"][0]["GlobalIPv6Address"].as_str().unwrap();
    let auto_gw = auto[0]["IPAM"]["Config"][1]["Gateway"].as_str().unwrap().to_string();
    assert!(ping(&h, &d, &auto_gw), "d reaches its own gateway");
    assert!(!ping(&h, &a, d_ip), "a reached d on another network");
    assert!(!ping(&h, &d, "fd70::2"), "d reached a on another network");
    // Multicast stays inside its network: a's frames to all nodes (33:33:00:00:00:01) reach b,
    // never d.
    let a_mac = show_mac(mac_of(&h, &a, "eth0"));
    let filter = format!("ether src {a_mac} and ether dst 33:33:00:00:00:01");
    let (on_b, on_d) = (
        testbed::Capture::start(&b, "eth0", &filter, 3),
        testbed::Capture::start(&d, "eth0", &filter, 3),
    );
    let _ = h.exec(
        &a,
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", "eth0", "ff02::1"],
    );
    let (on_b, on_d) = (on_b.finish(), on_d.finish());
    assert!(on_b.contains("ICMP6, echo request"), "b saw a's multicast: {on_b}");
    assert_eq!(on_d.trim(), "", "d, on another network, saw a's multicast");
    let refused = h.exec(&a, &["dig", "+time=2", "+tries=1", &format!("@{auto_gw}"), "AAAA", &d]);
    assert!(
        !refused.stdout.contains(d_ip) && refused.stdout.contains("connection refused"),
        "{}",
        refused.stdout
    );

    // Outbound: the host masquerades IPv6 as IPv4. The outside has no route back to
    // fd70::/64, so an answer comes only through the host's NAT.
    outside6(&h);
    assert!(ping(&h, &a, "fd99::2"), "a reaches the outside over IPv6");

    // Refusals name the value and change nothing.
    let bad = h.ctl(["network", "create", "--subnet", "fd72::/64", "n7"]);
    assert!(
        bad.expect_err("IPv6 subnet without --ipv6")
            .contains("subnet fd72::/64 is IPv6, but IPv6 is off on the network: add --ipv6"),
        "{}",
        bad.stderr
    );
    let bad = h.ctl(["sandbox", "create", "--network", "n4", "--ip6", "fd70::9", "x"]);
    assert!(
        bad.expect_err("--ip6 on an IPv4 network")
            .contains("--ip6 needs a network created with --ipv6"),
        "{}",
        bad.stderr
    );
    let bad = h.ctl(["sandbox", "create", "--network", "n6", "--ip6", "fd70::50", "y"]);
    assert!(
        bad.expect_err("a held address")
            .contains("address fd70::50 is already in use on network n6"),
        "{}",
        bad.stderr
    );
    let bad = h.ctl(["network", "create", "--ipv6", "--subnet", "fd70::/56", "n8"]);
    assert!(
        bad.expect_err("overlap").contains("overlaps network n6 (fd70::/64)"),
        "{}",
        bad.stderr
    );
    let nets = h.ctl(["network", "ls", "-q"]);
    assert_eq!(
        nets.expect_ok("ls").lines().count(),
        6,
        "bridge, host, none, n6, auto6, n4: {}",
        nets.stdout
    );

    // A connect gives the second interface its own IPv6 address, and a restart keeps both.
    h.ctl(["network", "connect", "--ip6", "fd70::60", "n6", &c])
        .expect_ok("connect");
    assert!(addrs6(&h, &c, "eth1").contains("inet6 fd70::60/64"));
    assert!(ping(&h, &c, "fd70::2"), "c reaches a through its second interface");
    h.restart();
    assert!(addrs6(&h, &c, "eth1").contains("inet6 fd70::60/64"));
    assert!(ping(&h, &a, "fd70::60"), "a reaches c after a restart");
    assert!(ping(&h, &b, "fd70::1"), "b reaches the gateway after a restart");
}

/// The outside of [`Host::add_outside`] over IPv6 too: the host holds fd99::1/64 on its
/// uplink, the outside fd99::2/64, and the host's IPv6 default route points there. The
/// outside has no route back to the host's networks: an answer comes through the host's NAT.
fn outside6(h: &Host) -> String {
    let out = h.add_outside();
    for (ns, dev, addr) in [(h.ns(), "uplink0", "fd99::1/64"), (out.as_str(), "eth0", "fd99::2/64")] {
        for key in [
            "net.ipv6.conf.all.disable_ipv6=0".to_string(),
            format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
        ] {
            testbed::run("ip", ["netns", "exec", ns, "sysctl", "-qw", &key]).expect_ok("sysctl");
        }
        testbed::run("ip", ["-n", ns, "addr", "add", addr, "dev", dev, "nodad"]).expect_ok("ip addr");
    }
    testbed::run("ip", ["-n", h.ns(), "-6", "route", "add", "default", "via", "fd99::2"]).expect_ok("route");
    out
}

/// An HTTP server on port 80 of namespace `ns`, both families, answering each request with the
/// client's address, until the flag is set.
fn peer_server(ns: &str) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = testbed::in_netns(&Path::new(testbed::netns::NETNS_DIR).join(ns), move || {
        let l = TcpListener::bind("[::]:80").unwrap();
        l.set_nonblocking(true).unwrap();
        while !flag.load(Ordering::Relaxed) {
            if let Ok((mut s, peer)) = l.accept() {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let _ = s.read(&mut [0u8; 512]);
                let body = peer.ip().to_canonical().to_string();
                let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            }
            sleep(Duration::from_millis(5));
        }
    });
    (stop, t)
}

fn curl(h: &Host, ns: &str, url: &str) -> Option<String> {
    let o = h.exec(ns, &["curl", "-s", "-g", "--max-time", "3", url]);
    o.ok().then_some(o.stdout)
}

#[test]
fn published_ports_serve_ipv6_clients() {
    let Some(h) = testbed::e2e_host!("v6p") else { return };
    let out = outside6(&h);
    h.ctl([
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.73.0.0/24",
        "--subnet",
        "fd73::/64",
        "n6",
    ])
    .expect_ok("dual-stack network");
    h.ctl(["network", "create", "--subnet", "10.74.0.0/24", "n4"])
        .expect_ok("IPv4 network");
    let (web, old) = (h.name("web"), h.name("old"));
    h.ctl([
        "sandbox",
        "create",
        "--network",
        "n6",
        "-p",
        "8080:80",
        "-p",
        "[::1]:9090:80",
        &web,
    ])
    .expect_ok("web");
    h.ctl(["sandbox", "create", "--network", "n4", "-p", "8181:80", &old])
        .expect_ok("old");
    let servers = [peer_server(&web), peer_server(&old)];

    assert_eq!(
        h.ctl(["port", &web]).expect_ok("port"),
        "80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n80/tcp -> [::1]:9090\n"
    );
    // From outside over IPv6: DNAT to the sandbox's IPv6 address keeps the client's address.
    assert_eq!(curl(&h, &out, "http://[fd99::1]:8080/").as_deref(), Some("fd99::2"));
    assert_eq!(curl(&h, &out, "http://10.99.0.1:8080/").as_deref(), Some("10.99.0.2"));
    // A sandbox without IPv6 is reached over IPv6 through the userland proxy.
    assert!(
        curl(&h, &out, "http://[fd99::1]:8181/").is_some(),
        "IPv6 client, IPv4 sandbox"
    );
    // [::1]: the host reaches it, the outside does not; the host reaches [::]:8080 too.
    assert!(curl(&h, h.ns(), "http://[::1]:9090/").is_some(), "host to [::1]:9090");
    assert_eq!(
        curl(&h, &out, "http://[fd99::1]:9090/"),
        None,
        "[::1] is unreachable from outside"
    );
    assert!(curl(&h, h.ns(), "http://[::1]:8080/").is_some(), "host to [::1]:8080");
    let nft = testbed::run(
        "ip",
        ["netns", "exec", h.ns(), "nft", "list", "table", "inet", "switchd"],
    )
    .stdout;
    assert!(nft.contains("dport 8080 dnat ip6 to [fd73::2]:80"), "{nft}");

    let bad = h.ctl(["sandbox", "create", "-p", "[::g]:80:80", "x"]);
    assert!(
        bad.expect_err("bad -p").contains("invalid host IP \"::g\""),
        "{}",
        bad.stderr
    );
    let taken = h.ctl(["sandbox", "create", "--network", "n6", "-p", "[::]:8080:80", "y"]);
    assert!(
        taken
            .expect_err("taken")
            .contains(&format!("already published by sandbox {web}")),
        "{}",
        taken.stderr
    );
    for (stop, t) in servers {
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }
}

#[test]
fn a_sandbox_cannot_speak_for_another_s_ipv6_address() {
    let Some(h) = testbed::e2e_host!("v6h") else { return };
    let gw_if = format!("{}g", h.prefix());
    let bridge_opt = format!("com.docker.network.bridge.name={gw_if}");
    h.ctl([
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd71::/64",
        "-o",
        &bridge_opt,
        "n1",
    ])
    .expect_ok("network");
    let (v, att) = (h.name("v"), h.name("att"));
    h.ctl(["sandbox", "create", "--network", "n1", "--ip6", "fd71::10", &v])
        .expect_ok("victim");
    h.ctl(["sandbox", "create", "--network", "n1", "--ip6", "fd71::20", &att])
        .expect_ok("attacker");
    let (gw_mac, v_mac, att_mac) = (
        mac_of(&h, h.ns(), &gw_if),
        mac_of(&h, &v, "eth0"),
        mac_of(&h, &att, "eth0"),
    );
    // The host's neighbour entry for the victim, to attack; the kernel ignores a changed
    // address for a second after an update, so wait that out.
    assert!(ping(&h, h.ns(), "fd71::10"));
    sleep(Duration::from_millis(1500));
    let neighbour = || {
        testbed::run("ip", ["-n", h.ns(), "-6", "neigh", "show", "fd71::10"])
            .stdout
            .clone()
    };
    assert!(neighbour().contains(&show_mac(v_mac)), "{}", neighbour());

    let wire = Path::new(testbed::netns::NETNS_DIR).join(&att);
    // "fd71::10 is at the attacker's MAC", solicited and overriding, checksum right.
    let ask = overlay::nd::Solicitation {
        sender_mac: gw_mac,
        sender_ip: "fd71::1".parse().unwrap(),
        target: "fd71::10".parse().unwrap(),
    };
    let mut na = vec![0u8; overlay::nd::NA_FRAME_LEN];
    overlay::nd::write_advertisement(&ask, att_mac, &mut na);
    testbed::send_raw(&wire, "eth0", na);
    // A router advertisement, and an echo request from the victim's address.
    let ra = [134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    testbed::send_raw(
        &wire,
        "eth0",
        ipv6_frame(att_mac, [0x33, 0x33, 0, 0, 0, 1], "fe80::1", "ff02::1", 58, &ra),
    );
    let echo = [128, 0, 0, 0, 0, 1, 0, 1];
    testbed::send_raw(
        &wire,
        "eth0",
        ipv6_frame(att_mac, gw_mac, "fd71::10", "fd71::1", 58, &echo),
    );
    // A redirect, and a DHCPv6 server's advertise (UDP 547 -> 546), from its own addresses.
    let mut redirect = vec![137, 0, 0, 0, 0, 0, 0, 0];
    redirect.extend_from_slice(&[0; 32]);
    let redirect = ipv6_frame(att_mac, v_mac, "fe80::1", "fd71::10", 58, &redirect);
    testbed::send_raw(&wire, "eth0", redirect);
    let dhcp6 = [2, 0x23, 2, 0x22, 0, 12, 0, 0, 2, 0, 0, 1];
    let dhcp6 = ipv6_frame(att_mac, v_mac, "fd71::20", "fd71::10", 17, &dhcp6);
    testbed::send_raw(&wire, "eth0", dhcp6);

    let port = format!("{att}/eth0");
    assert_eq!(h.drops_reach(&port, "neighbor_spoof", 1), 1);
    assert_eq!(
        h.drops_reach(&port, "router_message", 2),
        2,
        "the advertisement and the redirect"
    );
    assert_eq!(h.drops_reach(&port, "dhcp_server", 1), 1);
    assert_eq!(h.drops_reach(&port, "ip_spoof", 1), 1);
    assert!(
        neighbour().contains(&show_mac(v_mac)),
        "the host's entry for the victim: {}",
        neighbour()
    );
    assert!(ping(&h, &v, "fd71::1"), "the victim still reaches the gateway");
    assert!(ping(&h, &att, "fd71::1"), "the attacker's own traffic still passes");
}

#[test]
fn an_ipv6_only_network_works_without_ipv4() {
    let Some(h) = testbed::e2e_host!("v6o") else { return };
    let out = outside6(&h);
    let bad = h.ctl(["network", "create", "--ipv4=false", "no6"]);
    assert!(
        bad.expect_err("no IPv6").contains("a network without IPv4 needs IPv6"),
        "{}",
        bad.stderr
    );
    let bad = h.ctl([
        "network",
        "create",
        "--ipv4=false",
        "--ipv6",
        "--subnet",
        "10.75.0.0/24",
        "mixed",
    ]);
    assert!(
        bad.expect_err("an IPv4 subnet")
            .contains("10.75.0.0/24 is IPv4, but IPv4 is off on the network"),
        "{}",
        bad.stderr
    );
    let bad = h.ctl(["network", "create", "-d", "overlay", "--ipv4=false", "--ipv6", "o"]);
    assert!(
        bad.expect_err("overlay").contains("an overlay network needs IPv4"),
        "{}",
        bad.stderr
    );
    h.ctl([
        "network",
        "create",
        "--ipv4=false",
        "--ipv6",
        "--subnet",
        "fd75::/64",
        "only6",
    ])
    .expect_ok("IPv6-only network");
    let n = json(h.ctl(["network", "inspect", "only6"]).expect_ok("inspect"));
    assert_eq!(
        (n[0]["EnableIPv4"].as_bool(), n[0]["EnableIPv6"].as_bool()),
        (Some(false), Some(true)),
        "{n}"
    );
    assert_eq!(n[0]["IPAM"]["Config"].as_array().map(Vec::len), Some(1), "{n}");
    assert_eq!(n[0]["IPAM"]["Config"][0]["Gateway"], "fd75::1", "{n}");

    let (a, b) = (h.name("a"), h.name("b"));
    h.ctl(["sandbox", "create", "--network", "only6", "-p", "8083:80", &a])
        .expect_ok("a");
    h.ctl(["sandbox", "create", "--network", "only6", "--ip6", "fd75::50", &b])
        .expect_ok("b");
    let bad = h.ctl(["sandbox", "create", "--network", "only6", "--ip", "10.75.0.9", "c"]);
    assert!(
        bad.expect_err("--ip").contains("has no IPv4 (--ipv4=false)"),
        "{}",
        bad.stderr
    );
    // No IPv4 at all in the sandbox, IPv6 with its default route.
    let v4 = h.exec(&a, &["ip", "-4", "-o", "addr", "show", "eth0"]).stdout;
    assert_eq!(v4.trim(), "", "no IPv4 address");
    assert_eq!(h.exec(&a, &["ip", "-4", "route"]).stdout.trim(), "", "no IPv4 route");
    assert!(
        addrs6(&h, &a, "eth0").contains("fd75::2/64"),
        "{}",
        addrs6(&h, &a, "eth0")
    );
    let route = h.exec(&a, &["ip", "-6", "route", "show", "default"]).stdout;
    assert!(route.contains("via fd75::1"), "{route}");
    let s = json(h.ctl(["sandbox", "inspect", &a]).expect_ok("sandbox inspect"));
    let e = &s[0]["Networks"][0];
    assert_eq!(
        (e["IPAddress"].as_str(), e["GlobalIPv6Address"].as_str()),
        (Some(""), Some("fd75::2")),
        "{s}"
    );
    // Its MAC is no IPv4 address's: locally administered and unicast.
    let mac = mac_of(&h, &a, "eth0");
    assert_eq!(mac[0] & 0x03, 0x02, "{}", show_mac(mac));

    assert!(ping(&h, &a, "fd75::50"), "a to b");
    assert!(ping(&h, &b, "fd75::1"), "b to its gateway");
    // Names: the embedded DNS at the IPv6 gateway, named in resolv.conf.
    let resolv = std::fs::read_to_string(format!("/etc/netns/{a}/resolv.conf")).unwrap();
    assert_eq!(resolv, "nameserver fd75::1\noptions ndots:0\n");
    let aaaa = h.exec(&a, &["dig", "+short", "+time=2", "+tries=1", "AAAA", &b]);
    assert_eq!(aaaa.expect_ok("dig AAAA").trim(), "fd75::50");
    let none = h.exec(&a, &["dig", "+short", "+time=2", "+tries=1", "A", &b]);
    assert_eq!(none.expect_ok("dig A").trim(), "", "no IPv4 address to give");
    // Out through NAT66, and isolated from another network's sandbox (which routes IPv6
    // through its own gateway).
    assert!(ping(&h, &a, "fd99::2"), "to the outside");
    h.ctl([
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.76.0.0/24",
        "--subnet",
        "fd76::/64",
        "ds",
    ])
    .expect_ok("ds");
    let d = h.name("d");
    h.ctl(["sandbox", "create", "--network", "ds", &d]).expect_ok("d");
    assert!(ping(&h, &d, "fd76::1"), "d to its own gateway");
    assert!(!ping(&h, &d, "fd75::2"), "d to another network's sandbox");
    assert!(!ping(&h, &a, "fd76::2"), "a to another network's sandbox");
    let nft = testbed::run(
        "ip",
        ["netns", "exec", h.ns(), "nft", "list", "table", "inet", "switchd"],
    )
    .stdout;
    assert!(nft.contains("ip6 saddr fd75::/64 oifname != "), "{nft}");

    // A published port: IPv6 clients DNATed to the sandbox, IPv4 ones through the proxy.
    let server = peer_server(&a);
    assert_eq!(curl(&h, &out, "http://[fd99::1]:8083/").as_deref(), Some("fd99::2"));
    assert!(
        curl(&h, &out, "http://10.99.0.1:8083/").is_some(),
        "an IPv4 client of an IPv6-only sandbox"
    );
    server.0.store(true, Ordering::Relaxed);
    server.1.join().unwrap();

    // After a restart, as before.
    let mut h = h;
    h.kill9();
    h.restart();
    assert!(ping(&h, &a, "fd75::50"), "after restart");
    assert_eq!(
        h.exec(&a, &["ip", "-4", "-o", "addr", "show", "eth0"]).stdout.trim(),
        ""
    );
}
