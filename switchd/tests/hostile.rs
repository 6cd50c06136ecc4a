//! End-to-end: a hostile container against the real switchd in namespaces. Each test plays an
//! attack (raw AF_PACKET frames, offload metadata through PACKET_VNET_HDR, requests for
//! another port's MAC), asserts what the victims still see, and the counter the defence
//! raises. Needs root; set SWITCH_E2E=require (as CI does) to fail instead of skipping.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use testbed::{json, ping, Host};

fn netns(name: &str) -> PathBuf {
    Path::new(testbed::netns::NETNS_DIR).join(name)
}

fn mac_of(h: &Host, netns: &str, ifname: &str) -> [u8; 6] {
    let out = h.exec(netns, &["cat", &format!("/sys/class/net/{ifname}/address")]);
    parse_mac(out.expect_ok("MAC address").trim())
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect();
    v.try_into().unwrap_or_else(|_| panic!("not a MAC: {s}"))
}

fn show_mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The link-layer address `ip neigh` holds for `ip` in namespace `ns` (`ip -n`), if any.
fn neighbour(ns: &str, ip: &str) -> Option<String> {
    let out = testbed::run("ip", ["-n", ns, "neigh", "show", ip]);
    let s = out.expect_ok("ip neigh").to_string();
    let mut words = s.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

fn octets(ip: &str) -> [u8; 4] {
    ip.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A broadcast ARP reply: "`spa` is at `sha`", the gratuitous ARP hosts update their
/// neighbour entries from.
fn gratuitous_arp(src: [u8; 6], sha: [u8; 6], spa: &str) -> Vec<u8> {
    let mut f = eth([0xff; 6], src, 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&octets(spa));
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&octets(spa));
    f
}

/// An IPv4 header for `payload_len` bytes of `proto`, with its checksum.
fn ipv4(src: &str, dst: &str, proto: u8, payload_len: usize) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&octets(src));
    h.extend_from_slice(&octets(dst));
    let mut sum: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    h
}

fn udp_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ipv4(src, dst, 17, 8 + 32));
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&40u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[0; 32]);
    f
}

/// A TCP super-frame of `payload` bytes with the virtio-net header that asks the kernel to cut
/// it into segments of `gso_size` (TCPv4, checksum left to the device).
fn tcp_super_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: &str,
    dst: &str,
    payload: usize,
    gso_size: u16,
) -> ([u8; 10], Vec<u8>) {
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ipv4(src, dst, 6, 20 + payload));
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5001u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.resize(f.len() + payload, 0x5a);
    let mut vnet = [0u8; 10];
    vnet[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    vnet[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
    vnet[2..4].copy_from_slice(&54u16.to_le_bytes());
    vnet[4..6].copy_from_slice(&gso_size.to_le_bytes());
    vnet[6..8].copy_from_slice(&34u16.to_le_bytes());
    vnet[8..10].copy_from_slice(&16u16.to_le_bytes());
    (vnet, f)
}

#[test]
fn no_sandbox_takes_a_mac_that_a_port_holds() {
    let Some(h) = testbed::e2e_host!("hm") else { return };
    let gw_if = format!("{}g", h.prefix());
    let bridge_opt = format!("com.docker.network.bridge.name={gw_if}");
    h.ctl(["network", "create", "--subnet", "10.61.0.0/24", "-o", &bridge_opt, "n1"])
        .expect_ok("network");
    let (v, att) = (h.name("v"), h.name("att"));
    h.ctl(["sandbox", "create", "--network", "n1", "--ip", "10.61.0.10", &v])
        .expect_ok("victim");
    let gw_mac = show_mac(mac_of(&h, h.ns(), &gw_if));
    let v_mac = show_mac(mac_of(&h, &v, "eth0"));

    // The gateway's MAC: refused with a sentence that says whose it is, and nothing made.
    let err = h.ctl(["sandbox", "create", "--network", "n1", "--mac", &gw_mac, &att]);
    let msg = err.expect_err("the gateway's MAC").to_string();
    assert!(
        msg.contains(&format!("MAC address {gw_mac}")) && msg.contains("gateway"),
        "{msg}"
    );
    let err = h.ctl(["sandbox", "create", "--network", "n1", "--mac", &v_mac, &att]);
    let msg = err.expect_err("the victim's MAC").to_string();
    assert!(
        msg.contains(&format!("MAC address {v_mac}")) && msg.contains(&v),
        "{msg}"
    );
    let ls = h.ctl(["sandbox", "ls"]).expect_ok("sandbox ls").to_string();
    assert!(!ls.contains(&att), "{ls}");
    assert!(
        !testbed::run("ip", ["netns", "list"]).stdout.contains(&att),
        "no namespace left"
    );

    // The same name is free and works with a MAC of its own; the gateway is still the gateway.
    h.ctl(["sandbox", "create", "--network", "n1", &att])
        .expect_ok("attacker, own MAC");
    assert!(ping(&h, &v, "10.61.0.1"), "the victim reaches the gateway");
    assert!(ping(&h, &att, "10.61.0.10"), "and the other sandbox");
    let fdb = json(h.ctl(["fdb", "--format", "json"]).expect_ok("fdb"));
    let gw_entry = fdb
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Mac"] == gw_mac)
        .unwrap_or_else(|| panic!("{gw_mac} in {fdb}"));
    assert_eq!(gw_entry["Kind"], "static", "{gw_entry}");
    assert_eq!(gw_entry["Interface"], gw_if.as_str(), "{gw_entry}");
}

#[test]
fn a_sandbox_sends_only_as_itself() {
    let Some(h) = testbed::e2e_host!("hs") else { return };
    let gw_if = format!("{}g", h.prefix());
    let bridge_opt = format!("com.docker.network.bridge.name={gw_if}");
    h.ctl(["network", "create", "--subnet", "10.62.0.0/24", "-o", &bridge_opt, "n1"])
        .expect_ok("network");
    let (v, att, c) = (h.name("v"), h.name("att"), h.name("c"));
    for (sb, ip) in [(&v, "10.62.0.10"), (&att, "10.62.0.20"), (&c, "10.62.0.30")] {
        h.ctl(["sandbox", "create", "--network", "n1", "--ip", ip, sb])
            .expect_ok("sandbox");
    }
    let gw_mac = mac_of(&h, h.ns(), &gw_if);
    let v_mac = mac_of(&h, &v, "eth0");
    let att_mac = mac_of(&h, &att, "eth0");
    // Neighbour entries to attack: the host's and c's for v, v's for the gateway.
    assert!(ping(&h, &v, "10.62.0.1"));
    assert!(ping(&h, &c, "10.62.0.10"));
    assert_eq!(neighbour(h.ns(), "10.62.0.10"), Some(show_mac(v_mac)));
    // The kernel ignores a changed address for a second after an update (locktime): wait, so
    // that without port security the forged answers below would be taken.
    sleep(Duration::from_millis(1500));

    let port = format!("{att}/eth0");
    let wire = netns(&att);
    testbed::send_raw(&wire, "eth0", gratuitous_arp(att_mac, att_mac, "10.62.0.10"));
    testbed::send_raw(&wire, "eth0", gratuitous_arp(att_mac, att_mac, "10.62.0.1"));
    // Another port's MAC as the Ethernet source: that port's static entry stops it.
    testbed::send_raw(&wire, "eth0", gratuitous_arp(v_mac, v_mac, "10.62.0.10"));
    // v's address on an echo request to the gateway, and a DHCP server's offer.
    let mut echo = eth(gw_mac, att_mac, 0x0800);
    echo.extend_from_slice(&ipv4("10.62.0.10", "10.62.0.1", 1, 8));
    echo.extend_from_slice(&[8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    testbed::send_raw(&wire, "eth0", echo);
    testbed::send_raw(
        &wire,
        "eth0",
        udp_frame(att_mac, [0xff; 6], "10.62.0.20", "255.255.255.255", 67, 68),
    );
    sleep(Duration::from_millis(300));

    assert_eq!(
        neighbour(h.ns(), "10.62.0.10"),
        Some(show_mac(v_mac)),
        "the host's entry for v"
    );
    let c_ns = testbed::run("ip", ["netns", "exec", &c, "ip", "neigh", "show", "10.62.0.10"]);
    assert!(
        c_ns.stdout.contains(&show_mac(v_mac)),
        "c's entry for v: {}",
        c_ns.stdout
    );
    let v_ns = testbed::run("ip", ["netns", "exec", &v, "ip", "neigh", "show", "10.62.0.1"]);
    assert!(
        v_ns.stdout.contains(&show_mac(gw_mac)),
        "v's entry for the gateway: {}",
        v_ns.stdout
    );
    assert_eq!(h.drops_reach(&port, "arp_spoof", 2), 2);
    assert_eq!(h.drops_reach(&port, "mac_spoof", 1), 1);
    assert_eq!(h.drops_reach(&port, "ip_spoof", 1), 1);
    assert_eq!(h.drops_reach(&port, "dhcp_server", 1), 1);
    assert!(ping(&h, &v, "10.62.0.1"), "the victim still reaches the gateway");
    assert!(ping(&h, &att, "10.62.0.1"), "the attacker's own traffic still passes");

    // A network that turns port security off lets a sandbox route for others.
    h.ctl([
        "network",
        "create",
        "--subnet",
        "10.63.0.0/24",
        "-o",
        "port_security=false",
        "n2",
    ])
    .expect_ok("network without port security");
    let r = h.name("r");
    h.ctl(["sandbox", "create", "--network", "n2", "--ip", "10.63.0.5", &r])
        .expect_ok("router");
    let r_mac = mac_of(&h, &r, "eth0");
    testbed::send_raw(&netns(&r), "eth0", gratuitous_arp(r_mac, r_mac, "10.63.0.99"));
    sleep(Duration::from_millis(200));
    assert_eq!(h.drops(&format!("{r}/eth0"), "arp_spoof"), 0);
    let inspect = json(h.ctl(["network", "inspect", "n2"]).expect_ok("inspect"));
    assert_eq!(inspect[0]["Options"]["port_security"], "false");
    let bad = h.ctl(["network", "create", "-o", "port_security=maybe", "n3"]);
    assert!(
        bad.expect_err("bad option")
            .contains("invalid value \"maybe\" for option port_security: true or false"),
        "{}",
        bad.stderr
    );
}

#[test]
fn offloaded_frames_are_cut_only_when_sane() {
    let Some(h) = testbed::e2e_host!("ho") else { return };
    let k = h.add_outside();
    h.add_kernel_vxlan(&k, 4096);
    h.ctl(["network", "create", "-d", "overlay", "--subnet", "10.87.0.0/24", "ovl"])
        .expect_ok("overlay network");
    h.ctl(["network", "vtep", "add", "ovl", "10.99.0.2"]).expect_ok("vtep");
    let att = h.name("att");
    h.ctl(["sandbox", "create", "--network", "ovl", "--ip", "10.87.0.20", &att])
        .expect_ok("sandbox");
    let att_mac = mac_of(&h, &att, "eth0");
    let port = format!("{att}/eth0");
    // Frames to an address no one has learned go to the VXLAN peer too. The underlay's bytes
    // tell what crossed (its packet count does not: a veth carries UDP GSO trains whole).
    let unknown = [0x02, 0, 0, 0, 0, 0x99];
    let underlay_bytes = || -> u64 {
        let s = testbed::run("ip", ["-n", &k, "-j", "-s", "link", "show", "eth0"]);
        json(s.expect_ok("link stats"))[0]["stats64"]["rx"]["bytes"]
            .as_u64()
            .unwrap()
    };

    // 20 KB cut into 1-byte segments: 20,000 datagrams (about 2 MB) if honoured.
    let before = underlay_bytes();
    let (vnet, frame) = tcp_super_frame(att_mac, unknown, "10.87.0.20", "10.87.0.99", 20_000, 1);
    testbed::send_raw_offloaded(&netns(&att), "eth0", Some(vnet), frame);
    assert_eq!(h.drops_reach(&port, "bad_offload", 1), 1);
    sleep(Duration::from_millis(300));
    let crossed = underlay_bytes() - before;
    assert!(crossed < 5_000, "{crossed} bytes reached the peer");

    // A sane one (MSS 1400) is cut and crosses as it should: 15 datagrams.
    let before = underlay_bytes();
    let (vnet, frame) = tcp_super_frame(att_mac, unknown, "10.87.0.20", "10.87.0.99", 20_000, 1400);
    testbed::send_raw_offloaded(&netns(&att), "eth0", Some(vnet), frame);
    let mut crossed = 0;
    for _ in 0..50 {
        crossed = underlay_bytes() - before;
        if crossed >= 20_000 {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_millis(200));
    let crossed = crossed.max(underlay_bytes() - before);
    assert!(
        (20_000..25_000).contains(&crossed),
        "{crossed} bytes crossed for a 20 KB super-frame at MSS 1400"
    );
    assert_eq!(h.drops(&port, "bad_offload"), 1);
}

#[test]
fn interface_names_are_literal() {
    let Some(h) = testbed::e2e_host!("hi") else { return };
    let sb = h.name("s");
    let err = h.ctl(["sandbox", "create", "--interface", "e%d", &sb]);
    let msg = err.expect_err("a template name").to_string();
    assert!(
        msg.contains("invalid interface name \"e%d\"") && msg.contains("'%'"),
        "{msg}"
    );
    let ls = h.ctl(["sandbox", "ls"]).expect_ok("sandbox ls").to_string();
    assert!(!ls.contains(&sb), "{ls}");
}

#[test]
fn names_stay_inside_their_network() {
    let Some(h) = testbed::e2e_host!("hd") else { return };
    let out = h.add_outside();
    testbed::run("ip", ["-n", &out, "route", "add", "10.64.0.0/16", "via", "10.99.0.1"]).expect_ok("route");
    h.ctl(["network", "create", "--subnet", "10.64.1.0/24", "na"])
        .expect_ok("na");
    h.ctl(["network", "create", "--subnet", "10.64.2.0/24", "nb"])
        .expect_ok("nb");
    let (a, b) = (h.name("a"), h.name("b"));
    h.ctl(["sandbox", "create", "--network", "na", "--ip", "10.64.1.10", &a])
        .expect_ok("a");
    h.ctl(["sandbox", "create", "--network", "nb", "--ip", "10.64.2.10", &b])
        .expect_ok("b");
    let dig = |ns: &str, server: &str, name: &str| -> String {
        let at = format!("@{server}");
        testbed::run("ip", ["netns", "exec", ns, "dig", "+time=2", "+tries=1", &at, name]).stdout
    };
    // nb's own sandbox is answered.
    let own = dig(&b, "10.64.2.1", &b);
    assert!(own.contains("status: NOERROR") && own.contains("10.64.2.10"), "{own}");
    // Another network's sandbox, the host and the underlay are not: no answer, no recursion.
    for (who, ns) in [
        ("another network's sandbox", a.as_str()),
        ("the host", h.ns()),
        ("the underlay", out.as_str()),
    ] {
        for name in [b.as_str(), "www.example.org"] {
            let got = dig(ns, "10.64.2.1", name);
            assert!(
                !got.contains("status: NOERROR") && !got.contains("10.64.2.10"),
                "{who} asked nb's DNS for {name}: {got}"
            );
        }
    }
    let own = dig(&b, "10.64.2.1", &b);
    assert!(own.contains("10.64.2.10"), "nb's DNS still serves nb: {own}");
}

/// Echoes UDP datagrams on `port` inside namespace `ns` until `stop` is set.
fn udp_echo(ns: &str, port: u16, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
    testbed::in_netns(&netns(ns), move || {
        let s = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("echo bind");
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut b = [0u8; 2048];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((n, from)) = s.recv_from(&mut b) {
                let _ = s.send_to(&b[..n], from);
            }
        }
    })
}

/// Whether a new client in `ns` gets its datagram echoed through `to` within a few tries.
fn echoed(ns: &str, to: &'static str) -> bool {
    testbed::in_netns(&netns(ns), move || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut b = [0u8; 64];
        (0..10).any(|_| {
            let _ = s.send_to(b"ping", to);
            matches!(s.recv_from(&mut b), Ok((4, _)))
        })
    })
    .join()
    .unwrap()
}

#[test]
fn switchd_stays_up_when_clients_flood_it() {
    if !testbed::e2e_allowed("hf") {
        return;
    }
    let bins = Path::new(env!("CARGO_BIN_EXE_switchd")).parent().expect("target dir");
    let mut h = Host::start_limited(
        &testbed::prefix("hf"),
        bins,
        &["--metrics", "127.0.0.1:9323"],
        Some(1024),
    );
    h.ctl(["network", "create", "--subnet", "10.65.9.0/24", "nf"])
        .expect_ok("network");
    let web = h.name("web");
    h.ctl(["sandbox", "create", "--network", "nf", "-p", "5353:5353/udp", &web])
        .expect_ok("sandbox with a published UDP port");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let echo = udp_echo(&web, 5353, stop.clone());
    assert!(echoed(h.ns(), "127.0.0.1:5353"), "the proxy serves before the flood");

    // A local user's 1,500 UDP flows from 15 loopback addresses: one socket each in switchd
    // if nothing capped them, past its 1,024 descriptors.
    testbed::in_netns(&netns(h.ns()), || {
        for i in 0..1500u32 {
            let from = format!("127.0.0.{}:0", 2 + i % 15);
            let s = std::net::UdpSocket::bind(from).unwrap();
            let _ = s.send_to(b"x", "127.0.0.1:5353");
            if i % 50 == 49 {
                // Paced so that the proxy's socket buffer takes every client's datagram.
                sleep(Duration::from_millis(5));
            }
        }
    })
    .join()
    .unwrap();
    // A local user's DNS from 150 loopback addresses to the network's gateway, over UDP and
    // TCP: no name is answered and no connection is held open.
    let answered = testbed::in_netns(&netns(h.ns()), || {
        use std::io::{Read, Write};
        let query = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        let mut answered = 0;
        for i in 0..150u32 {
            let ip = std::net::Ipv4Addr::new(127, 0, 1, 1 + (i % 250) as u8);
            let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
            let _ = s.send_to(&query, "10.65.9.1:53");
            let to = std::net::SocketAddr::from(([10, 65, 9, 1], 53));
            if let Ok(mut t) = std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)) {
                let _ = t.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = t.write_all(&[0, query.len() as u8]).and_then(|()| t.write_all(&query));
                if matches!(t.read(&mut [0u8; 64]), Ok(n) if n > 0) {
                    answered += 1;
                }
            }
        }
        answered
    })
    .join()
    .unwrap();
    assert_eq!(
        answered, 0,
        "a local user got an answer over TCP from the network's DNS"
    );
    // 200 connections to the metrics listener, held open without a request.
    let held: Vec<std::net::TcpStream> = testbed::in_netns(&netns(h.ns()), || {
        (0..200)
            .filter_map(|_| std::net::TcpStream::connect("127.0.0.1:9323").ok())
            .collect()
    })
    .join()
    .unwrap();
    // The daemon may still be working through the flood: wait (at most 10 s) until the
    // metrics listener has refused what is beyond its cap.
    let refused = |h: &Host, name: &str| -> u64 {
        let s = json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"));
        s["Descriptors"]["Caps"]
            .as_array()
            .and_then(|caps| caps.iter().find(|c| c["Name"] == name))
            .and_then(|c| c["Refused"].as_u64())
            .unwrap_or(0)
    };
    for _ in 0..100 {
        if refused(&h, "metrics_connections") > 100 && refused(&h, "proxy_udp_flows") > 1000 {
            break;
        }
        sleep(Duration::from_millis(100));
    }

    assert!(h.is_running(), "switchd exited:\n{}", h.log());
    h.ctl(["network", "ls"]).expect_ok("network ls answers");
    let open = std::fs::read_dir(format!("/proc/{}/fd", h.pid().unwrap()))
        .unwrap()
        .count();
    assert!(open < 1000, "{open} descriptors open");
    let stats = json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"));
    let d = &stats["Descriptors"];
    assert_eq!(d["Limit"], 1024, "{d}");
    let cap = |name: &str| {
        d["Caps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == name)
            .unwrap_or_else(|| panic!("{name} in {d}"))
            .clone()
    };
    let flows = cap("proxy_udp_flows");
    assert!(
        flows["Refused"].as_u64().unwrap() > 1000,
        "the oldest flows were evicted: {flows}"
    );
    assert!(flows["Used"].as_u64() <= flows["Max"].as_u64(), "{flows}");
    // The host's queries reach the gateway's server (the kernel delivers local traffic as if
    // it came in on the gateway) and are refused: nothing answered, forwarded or held.
    let dns = stats["Dns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["Network"] == "nf")
        .unwrap()
        .clone();
    assert_eq!(
        (dns["Answered"].as_u64(), dns["Forwarded"].as_u64()),
        (Some(0), Some(0)),
        "{dns}"
    );
    assert!(dns["Refused"].as_u64().unwrap() >= 300, "{dns}");
    let metrics = cap("metrics_connections");
    assert!(metrics["Refused"].as_u64().unwrap() > 100, "{metrics}");
    // A new client of the published port is served, and metrics answer once the flood is gone.
    assert!(echoed(h.ns(), "127.0.0.1:5353"), "a new client after the flood");
    drop(held);
    sleep(Duration::from_millis(300));
    let text = h.exec(h.ns(), &["curl", "-s", "-m", "5", "http://127.0.0.1:9323/metrics"]);
    assert!(
        text.expect_ok("metrics")
            .contains("switchd_held_for_others_refused_total{consumer=\"proxy_udp_flows\"}"),
        "{}",
        text.stdout
    );

    // Half a request is closed after the header timeout (10 s), not held for ever.
    let closed = testbed::in_netns(&netns(h.ns()), || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect("127.0.0.1:9323").unwrap();
        s.write_all(b"GET /metr").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let t0 = std::time::Instant::now();
        let mut b = [0u8; 256];
        let closed = s.read(&mut b).is_ok();
        (closed, t0.elapsed())
    })
    .join()
    .unwrap();
    assert!(closed.0 && closed.1 < Duration::from_secs(15), "{closed:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    echo.join().unwrap();
}

/// Removes everything under a test prefix when dropped, the test failing or not.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        testbed::netns::remove_prefix(&self.0);
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("switch-test-{}", self.0)));
    }
}

#[test]
fn without_nftables_switchd_fails_closed() {
    if !testbed::e2e_allowed("hn") {
        return;
    }
    let prefix = testbed::prefix("hn");
    let _cleanup = Cleanup(prefix.clone());
    testbed::netns::remove_prefix(&prefix);
    let ns = format!("{prefix}-h");
    testbed::run("ip", ["netns", "add", &ns]).expect_ok("ip netns add");
    let dir = std::env::temp_dir().join(format!("switch-test-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let bins = Path::new(env!("CARGO_BIN_EXE_switchd")).parent().expect("target dir");
    let sock = dir.join("s.sock");
    // switchd with no nft on its PATH, as on a host without nftables.
    let switchd = |extra: &[&str]| {
        let mut c = std::process::Command::new("/usr/bin/nsenter");
        c.arg(format!("--net=/run/netns/{ns}"))
            .arg(bins.join("switchd"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(&sock)
            .arg("--netns-dir")
            .arg(dir.join("netns"))
            .args(extra)
            .env("PATH", "/nonexistent")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c
    };
    let out = switchd(&[]).output().expect("run switchd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "switchd started without a firewall: {err}");
    assert!(
        err.contains("cannot install the firewall") && err.contains("--firewall=off"),
        "{err}"
    );
    assert!(!sock.exists(), "nothing served");

    // Told to run bare, it starts and says so.
    let child = switchd(&["--firewall=off"]).spawn().expect("spawn switchd");
    let ctl = bins.join("switchctl");
    let up = (0..100).any(|_| {
        sleep(Duration::from_millis(100));
        testbed::run(&ctl, ["-H", sock.to_str().unwrap(), "network", "ls", "-q"]).ok()
    });
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().expect("switchd output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(up, "switchd --firewall=off did not answer: {err}");
    assert!(err.contains("running without the firewall (--firewall=off)"), "{err}");
}

#[test]
fn a_broadcast_storm_is_cut_to_the_networks_rate() {
    let Some(h) = testbed::e2e_host!("hb") else { return };
    h.ctl([
        "network",
        "create",
        "--subnet",
        "10.67.0.0/24",
        "-o",
        "bum_pps=100",
        "storm",
    ])
    .expect_ok("network with a storm limit");
    let (att, v) = (h.name("att"), h.name("v"));
    for (sb, ip) in [(&att, "10.67.0.20"), (&v, "10.67.0.10")] {
        h.ctl(["sandbox", "create", "--network", "storm", "--ip", ip, sb])
            .expect_ok("sandbox");
    }
    let att_mac = mac_of(&h, &att, "eth0");
    let port = format!("{att}/eth0");
    // 2,000 broadcast ARP requests at once, from the sandbox's own addresses (so port security
    // lets them through). What reaches the switch (the TAP's queue may drop some) passes at
    // 100/s after a burst of 100; the rest is cut, however slowly it comes.
    let rx_of = |h: &Host| -> u64 {
        let ports = json(h.ctl(["ports", "--format", "json"]).expect_ok("ports"));
        ports
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Interface"] == port)
            .and_then(|p| p["RxPackets"].as_u64())
            .unwrap_or(0)
    };
    let rx_before = rx_of(&h);
    let t0 = std::time::Instant::now();
    let mut storm = eth([0xff; 6], att_mac, 0x0806);
    storm.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    storm.extend_from_slice(&att_mac);
    storm.extend_from_slice(&octets("10.67.0.20"));
    storm.extend_from_slice(&[0; 6]);
    storm.extend_from_slice(&octets("10.67.0.99"));
    testbed::send_raw_repeated(&netns(&att), "eth0", storm, 2000);
    // Until the switch has read all that came (its count stops moving).
    let mut rx = rx_of(&h);
    for _ in 0..50 {
        sleep(Duration::from_millis(100));
        let now = rx_of(&h);
        if now == rx {
            break;
        }
        rx = now;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let came = rx - rx_before;
    let cut = h.drops(&port, "storm_control");
    let allowed = 100.0 + 100.0 * elapsed.ceil() + 20.0;
    assert!(came >= 500, "only {came} frames of the storm reached the switch");
    assert!(
        ((came - cut) as f64) <= allowed,
        "{} of {came} flooded frames passed in {elapsed:.1} s (at most {allowed} allowed)",
        came - cut
    );
    // The bucket refills: after a second the sandbox resolves and reaches its neighbour.
    sleep(Duration::from_millis(1200));
    assert!(ping(&h, &att, "10.67.0.10"), "the sandbox is cut off for good");
}
