//! End-to-end: outbound NAT, --internal, L3 isolation between networks and the firewall table's
//! lifecycle, with an "outside" namespace behind the host. Needs root (SWITCH_E2E=require).

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use testbed::{in_netns, ping, Host};

fn nft_table(h: &Host) -> String {
    h.exec(h.ns(), &["nft", "list", "table", "inet", "switchd"]).stdout
}

/// A TCP server in `ns` that answers each of `n` connections with the peer's address.
fn echo_peer(ns: &str, addr: &'static str, n: usize) -> std::thread::JoinHandle<()> {
    in_netns(&Path::new("/run/netns").join(ns), move || {
        let l = TcpListener::bind(addr).unwrap();
        for _ in 0..n {
            let (mut s, peer) = l.accept().unwrap();
            let _ = s.write_all(peer.ip().to_string().as_bytes());
        }
    })
}

fn connect_from(sb: &str, addr: &'static str) -> std::io::Result<String> {
    in_netns(&Path::new("/run/netns").join(sb), move || {
        let sa: std::net::SocketAddr = addr.parse().unwrap();
        // The server thread may still be binding: a refusal is retried briefly.
        let mut tries = 0;
        let mut s = loop {
            match std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2)) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                r => break r?,
            }
        };
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .join()
    .unwrap()
}

#[test]
fn outbound_nat_internal_networks_and_l3_isolation() {
    let Some(mut h) = testbed::e2e_host!("gw") else { return };
    let out = h.add_outside();
    let (a, b, i) = (h.name("a"), h.name("b"), h.name("i"));
    h.ctl(["network", "create", "net_a"]).expect_ok("net_a");
    h.ctl(["network", "create", "net_b"]).expect_ok("net_b");
    h.ctl(["network", "create", "--internal", "net_i"]).expect_ok("net_i");
    h.ctl(["sandbox", "create", "--network", "net_a", &a]).expect_ok("a");
    h.ctl(["sandbox", "create", "--network", "net_b", &b]).expect_ok("b");
    h.ctl(["sandbox", "create", "--network", "net_i", &i]).expect_ok("i");
    let fwd = h.exec(h.ns(), &["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout;
    assert_eq!(fwd.trim(), "1", "switchd enables forwarding in its namespace");

    // Outbound: the outside sees the host's address, not the sandbox's.
    let server = echo_peer(&out, "10.99.0.2:7000", 1);
    assert_eq!(
        connect_from(&a, "10.99.0.2:7000").expect("a reaches the outside"),
        "10.99.0.1"
    );
    server.join().unwrap();
    assert!(ping(&h, &b, "10.99.0.2"));

    // --internal: no way out, but the network itself works.
    assert!(!ping(&h, &i, "10.99.0.2"), "an internal network must have no way out");
    assert!(connect_from(&i, "10.99.0.2:7000").is_err());

    // L3 isolation: with forwarding on, a still cannot reach b through the gateways.
    let b_ip = "172.19.0.2";
    assert!(h
        .exec(&b, &["ip", "-o", "-4", "addr", "show", "eth0"])
        .stdout
        .contains(b_ip));
    assert!(!ping(&h, &a, b_ip), "net_a must not reach net_b");
    assert!(!ping(&h, &b, "172.18.0.2"), "net_b must not reach net_a");
    assert!(!ping(&h, &i, "172.18.0.2"), "net_i must not reach net_a");

    // The firewall table follows the networks and goes with a clean stop.
    let t = nft_table(&h);
    let inspect = h.ctl(["network", "inspect", "net_i"]).stdout;
    let id_i = inspect.split("\"Id\": \"").nth(1).unwrap()[..12].to_string();
    assert!(t.contains(&format!("iifname \"sw-{id_i}\" drop")), "{t}");
    h.ctl(["sandbox", "rm", &i]).expect_ok("rm i");
    h.ctl(["network", "rm", "net_i"]).expect_ok("rm net_i");
    assert!(!nft_table(&h).contains(&id_i), "rules of a removed network must go");
    h.stop();
    let tables = h.exec(h.ns(), &["nft", "list", "tables"]).stdout;
    assert!(!tables.contains("switchd"), "a clean stop removes the table: {tables}");
    h.restart();
    assert!(nft_table(&h).contains("masquerade"), "a restart puts the table back");
    let server = echo_peer(&out, "10.99.0.2:7001", 1);
    assert_eq!(
        connect_from(&a, "10.99.0.2:7001").expect("outbound after restart"),
        "10.99.0.1"
    );
    server.join().unwrap();
}

/// A tiny HTTP server in `ns` on port 80 answering every request with the peer's address,
/// until the returned flag is set.
fn http_peer_server(ns: &str) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = in_netns(&Path::new("/run/netns").join(ns), move || {
        let l = TcpListener::bind("0.0.0.0:80").unwrap();
        l.set_nonblocking(true).unwrap();
        let u = UdpSocket::bind("0.0.0.0:53").unwrap();
        u.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((mut s, peer)) = l.accept() {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let _ = s.read(&mut buf);
                let body = peer.ip().to_string();
                let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            }
            if let Ok((n, peer)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], peer);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    (stop, t)
}

fn curl(h: &Host, ns: &str, url: &str) -> Option<String> {
    let o = h.exec(ns, &["curl", "-s", "--max-time", "3", url]);
    o.ok().then_some(o.stdout)
}

fn udp_echo(ns: &str, to: &'static str) -> Option<Vec<u8>> {
    in_netns(&Path::new("/run/netns").join(ns), move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send_to(b"ping-udp", to).unwrap();
        let mut b = [0u8; 64];
        s.recv(&mut b).ok().map(|n| b[..n].to_vec())
    })
    .join()
    .unwrap()
}

#[test]
fn published_ports_from_everywhere_and_conflicts() {
    let Some(h) = testbed::e2e_host!("pp") else { return };
    let out = h.add_outside();
    let (web, sib, far) = (h.name("web"), h.name("sib"), h.name("far"));
    h.ctl(["network", "create", "--subnet", "10.70.0.0/24", "pnet"])
        .expect_ok("pnet");
    let p = ["-p", "8080:80", "-p", "127.0.0.1:9090:80", "-p", "5300:53/udp"];
    let mut args = vec!["sandbox", "create", "--network", "pnet"];
    args.extend_from_slice(&p);
    args.push(&web);
    h.ctl(&args).expect_ok("web with ports");
    h.ctl(["sandbox", "create", "--network", "pnet", &sib])
        .expect_ok("sibling");
    h.ctl(["sandbox", "create", &far])
        .expect_ok("far, on the default bridge");
    let (stop, server) = http_peer_server(&web);

    // `switchctl port`, in Docker's format.
    let ports = h.ctl(["port", &web]).expect_ok("port").to_string();
    assert_eq!(
        ports,
        "80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n80/tcp -> 127.0.0.1:9090\n53/udp -> 0.0.0.0:5300\n53/udp -> [::]:5300\n"
    );
    assert_eq!(
        h.ctl(["port", &web, "80/tcp"]).expect_ok("port 80").to_string(),
        "0.0.0.0:8080\n[::]:8080\n127.0.0.1:9090\n"
    );
    assert!(h
        .ctl(["port", &web, "81"])
        .expect_err("port 81")
        .contains("No public port '81/tcp' published"));
    let js: serde_json::Value = serde_json::from_str(
        h.ctl(["port", &web, "53/udp", "--format", "json"])
            .expect_ok("port json"),
    )
    .unwrap();
    assert_eq!(
        js,
        serde_json::json!([
            {"HostIp": "0.0.0.0", "HostPort": 5300, "ContainerPort": 53, "Protocol": "udp"},
            {"HostIp": "::", "HostPort": 5300, "ContainerPort": 53, "Protocol": "udp"},
        ])
    );

    // From outside: DNAT keeps the client's address.
    assert_eq!(curl(&h, &out, "http://10.99.0.1:8080/").as_deref(), Some("10.99.0.2"));
    // From the host itself, to 127.0.0.1 and to its own address (the userland proxy).
    assert!(
        curl(&h, h.ns(), "http://127.0.0.1:8080/").is_some(),
        "host to 127.0.0.1:8080"
    );
    assert!(
        curl(&h, h.ns(), "http://10.99.0.1:8080/").is_some(),
        "host to its own address"
    );
    // From a sibling through the host (hairpin) and from another network.
    assert!(
        curl(&h, &sib, "http://10.99.0.1:8080/").is_some(),
        "hairpin from a sibling"
    );
    assert!(
        curl(&h, &far, "http://10.99.0.1:8080/").is_some(),
        "from another network"
    );
    // A 127.0.0.1 binding: the host reaches it, the outside does not.
    assert!(curl(&h, h.ns(), "http://127.0.0.1:9090/").is_some());
    assert_eq!(
        curl(&h, &out, "http://10.99.0.1:9090/"),
        None,
        "a loopback binding is unreachable from outside"
    );
    // UDP from outside (DNAT) and from the host (proxy).
    assert_eq!(udp_echo(&out, "10.99.0.1:5300").as_deref(), Some(&b"ping-udp"[..]));
    assert_eq!(udp_echo(h.ns(), "127.0.0.1:5300").as_deref(), Some(&b"ping-udp"[..]));
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();

    // Conflicts: published by another sandbox, or held by another program; nothing created.
    let other = h.name("other");
    let err = h.ctl(["sandbox", "create", "--network", "pnet", "-p", "8080:81", &other]);
    assert!(err
        .expect_err("taken port")
        .contains(&format!("already published by sandbox {web}")));
    let holder = in_netns(&Path::new("/run/netns").join(h.ns()), || {
        TcpListener::bind("0.0.0.0:7777").unwrap()
    })
    .join()
    .unwrap();
    let err = h.ctl(["sandbox", "create", "--network", "pnet", "-p", "7777:80", &other]);
    assert!(err
        .expect_err("busy port")
        .contains("already in use on this host by another program"));
    drop(holder);
    assert!(
        !Path::new("/run/netns").join(&other).exists(),
        "a refused sandbox leaves nothing"
    );
    let err = h.ctl(["sandbox", "create", "-p", "1:2:3:4", &other]);
    assert!(err
        .expect_err("bad -p")
        .contains("expected [[HOSTIP:][HOSTPORT]:]CONTAINERPORT"));
    assert!(nft_table(&h).contains("dport 8080 dnat ip to 10.70.0.2:80"));

    // rm frees the port.
    h.ctl(["sandbox", "rm", &web]).expect_ok("rm web");
    assert!(!nft_table(&h).contains("dport 8080"), "DNAT rules go with the sandbox");
    h.ctl(["sandbox", "create", "--network", "pnet", "-p", "8080:80", &other])
        .expect_ok("port is free again");
}

#[test]
fn docker_s_masquerade_and_host_binding_options() {
    let Some(h) = testbed::e2e_host!("gwo") else { return };
    let out = h.add_outside();
    let (r, l) = (h.name("r"), h.name("l"));
    let routed = [
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
        "--subnet",
        "10.77.7.0/24",
    ];
    let mut args = vec!["network", "create"];
    args.extend(routed);
    args.push("routed");
    h.ctl(&args).expect_ok("routed");
    h.ctl([
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
        "--subnet",
        "10.77.8.0/24",
        "local",
    ])
    .expect_ok("local");
    h.ctl(["sandbox", "create", "--network", "routed", &r]).expect_ok("r");
    h.ctl(["sandbox", "create", "--network", "local", "-p", "8090:80", &l])
        .expect_ok("l");
    // No masquerade: the outside sees the sandbox's own address (it routes back through the
    // host here; as with Docker, routing such a subnet is the operator's).
    let t = nft_table(&h);
    assert!(!t.contains("ip saddr 10.77.7.0/24 oifname"), "{t}");
    assert!(t.contains("ip saddr 10.77.8.0/24 oifname"), "{t}");
    let server = echo_peer(&out, "10.99.0.2:7002", 1);
    assert_eq!(connect_from(&r, "10.99.0.2:7002").expect("routed out"), "10.77.7.2");
    server.join().unwrap();
    // host_binding_ipv4: a port published without an address binds the network's.
    assert_eq!(h.ctl(["port", &l]).expect_ok("port"), "80/tcp -> 127.0.0.1:8090\n");
    let web = http_peer_server(&l);
    assert!(
        curl(&h, h.ns(), "http://127.0.0.1:8090/").is_some(),
        "the host, on loopback"
    );
    assert_eq!(curl(&h, &out, "http://10.99.0.1:8090/"), None, "not the outside");
    web.0.store(true, Ordering::Relaxed);
    web.1.join().unwrap();
    let bad = h.ctl([
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=maybe",
        "x",
    ]);
    assert!(bad.expect_err("bad value").contains("true or false"), "{}", bad.stderr);
}

#[test]
fn icc_off_keeps_sandboxes_to_the_gateway_and_aux_addresses_stay_free() {
    let Some(h) = testbed::e2e_host!("icc") else { return };
    let out = h.add_outside();
    let (a, b) = (h.name("a"), h.name("b"));
    let bridge = format!("{}-i", h.prefix());
    h.ctl([
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "-o",
        &format!("com.docker.network.bridge.name={bridge}"),
        "--subnet",
        "10.77.9.0/24",
        "--aux-address",
        "printer=10.77.9.4",
        "apart",
    ])
    .expect_ok("apart");
    h.ctl(["sandbox", "create", "--network", "apart", "--ip", "10.77.9.2", &a])
        .expect_ok("a");
    h.ctl([
        "sandbox",
        "create",
        "--network",
        "apart",
        "--ip",
        "10.77.9.3",
        "-p",
        "8091:80",
        &b,
    ])
    .expect_ok("b");
    // As with Docker: the gateway, the outside and names, but not the other sandbox.
    assert!(ping(&h, &a, "10.77.9.1"), "a reaches its gateway");
    assert!(ping(&h, &b, "10.77.9.1"), "b reaches its gateway");
    assert!(!ping(&h, &a, "10.77.9.3"), "a must not reach b");
    assert!(!ping(&h, &b, "10.77.9.2"), "b must not reach a");
    let server = echo_peer(&out, "10.99.0.2:7003", 1);
    assert_eq!(connect_from(&a, "10.99.0.2:7003").expect("a out"), "10.99.0.1");
    server.join().unwrap();
    let dig = h.exec(&a, &["dig", "+short", "+tries=1", "+time=2", "@10.77.9.1", &b]);
    assert_eq!(dig.expect_ok("dig").trim(), "10.77.9.3");
    // A sandbox that knows b's MAC anyway is stopped by the switch; one that sends b's
    // traffic to the gateway's MAC is not routed back in by the host.
    let mac_of = |ns: &str, ifname: &str| {
        let o = h.exec(ns, &["cat", &format!("/sys/class/net/{ifname}/address")]);
        o.expect_ok("MAC address").trim().to_string()
    };
    let neigh = |ns: &str, ip: &str, mac: &str| {
        let cmd = ["ip", "neigh", "replace", ip, "lladdr", mac, "dev", "eth0"];
        h.exec(ns, &cmd).expect_ok("ip neigh");
    };
    neigh(&a, "10.77.9.3", &mac_of(&b, "eth0"));
    neigh(&b, "10.77.9.2", &mac_of(&a, "eth0"));
    assert!(!ping(&h, &a, "10.77.9.3"), "a must not reach b by its MAC");
    assert!(h.drops_reach(&format!("{a}/eth0"), "isolated_port", 1) >= 1);
    let gw_mac = mac_of(h.ns(), &bridge);
    neigh(&a, "10.77.9.3", &gw_mac);
    neigh(&b, "10.77.9.2", &gw_mac);
    assert!(!ping(&h, &a, "10.77.9.3"), "a must not reach b through the host");
    // b's published port serves a (through the host, seen from the gateway) and the outside.
    let web = http_peer_server(&b);
    assert_eq!(curl(&h, &a, "http://10.77.9.1:8091/").as_deref(), Some("10.77.9.1"));
    assert_eq!(curl(&h, &out, "http://10.99.0.1:8091/").as_deref(), Some("10.99.0.2"));
    web.0.store(true, Ordering::Relaxed);
    web.1.join().unwrap();
    let t = nft_table(&h);
    assert!(
        t.contains(&format!("iifname \"{bridge}\" oifname \"{bridge}\" drop")),
        "{t}"
    );
    // --aux-address: shown with its subnet, and never handed out.
    let aux = [
        "network",
        "inspect",
        "-f",
        "{{json (index .IPAM.Config 0).AuxiliaryAddresses}}",
        "apart",
    ];
    assert_eq!(h.ctl(aux).expect_ok("inspect").trim(), r#"{"printer":"10.77.9.4"}"#);
    let c = h.name("c");
    h.ctl(["sandbox", "create", "--network", "apart", &c]).expect_ok("c");
    let ip = [
        "sandbox",
        "inspect",
        "-f",
        "{{range .Networks}}{{.IPAddress}}{{end}}",
        &c,
    ];
    assert_eq!(h.ctl(ip).expect_ok("inspect c").trim(), "10.77.9.5");
    let taken = h.ctl([
        "sandbox",
        "create",
        "--network",
        "apart",
        "--ip",
        "10.77.9.4",
        &h.name("d"),
    ]);
    assert!(
        taken
            .expect_err("aux")
            .contains("reserved as auxiliary address \"printer\""),
        "{}",
        taken.stderr
    );
}

#[test]
fn open_host_ports_are_chosen_and_sctp_is_published() {
    let Some(h) = testbed::e2e_host!("pick") else { return };
    let out = h.add_outside();
    let (a, b) = (h.name("a"), h.name("b"));
    h.ctl(["network", "create", "--subnet", "10.77.10.0/24", "pick"])
        .expect_ok("pick");
    // Another program holds the first port of the ephemeral range: it is skipped.
    let ns = Path::new("/run/netns").join(h.ns());
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let holder = in_netns(&ns, move || {
        let _l = TcpListener::bind("0.0.0.0:49153").unwrap();
        held_tx.send(()).unwrap();
        let _ = hold_rx.recv();
    });
    held_rx.recv().unwrap();
    let create = [
        "sandbox",
        "create",
        "--network",
        "pick",
        "--ip",
        "10.77.10.2",
        "-p",
        "80",
        "-p",
        "127.0.0.1::53/udp",
        "--expose",
        "81",
        "--expose",
        "82/udp",
        "-P",
        "-p",
        "9132:132/sctp",
        &a,
    ];
    h.ctl(create).expect_ok("a");
    let ports = h.ctl(["port", &a]).expect_ok("port").to_string();
    assert_eq!(
        ports,
        "80/tcp -> 0.0.0.0:49154\n80/tcp -> [::]:49154\n\
         53/udp -> 127.0.0.1:49153\n\
         132/sctp -> 0.0.0.0:9132\n132/sctp -> [::]:9132\n\
         81/tcp -> 0.0.0.0:49155\n81/tcp -> [::]:49155\n\
         82/udp -> 0.0.0.0:49154\n82/udp -> [::]:49154\n",
        "as docker port lists them"
    );
    hold_tx.send(()).unwrap();
    holder.join().unwrap();
    let exposed = ["sandbox", "inspect", "-f", "{{json .ExposedPorts}}", &a];
    assert_eq!(
        h.ctl(exposed).expect_ok("inspect").trim(),
        r#"{"132/sctp":{},"53/udp":{},"80/tcp":{},"81/tcp":{},"82/udp":{}}"#
    );
    // The chosen port serves the outside and the host, as a given one does.
    let web = http_peer_server(&a);
    assert_eq!(curl(&h, &out, "http://10.99.0.1:49154/").as_deref(), Some("10.99.0.2"));
    assert!(
        curl(&h, h.ns(), "http://127.0.0.1:49155/").is_none(),
        "81 has no server"
    );
    web.0.store(true, Ordering::Relaxed);
    web.1.join().unwrap();
    // SCTP: the firewall carries an association's first packet to the sandbox's port 132.
    let t = nft_table(&h);
    assert!(t.contains("sctp dport 9132 dnat ip to 10.77.10.2:132"), "{t}");
    let cap = testbed::Capture::start(&a, "eth0", "sctp", 4);
    let outside = Path::new("/run/netns").join(&out);
    testbed::send_sctp_init(&outside, "10.99.0.1".parse().unwrap(), 5000, 9132);
    let seen = cap.finish();
    assert!(seen.contains("10.99.0.2.5000 > 10.77.10.2.132: sctp"), "{seen}");
    // A second sandbox's open ports go past the first's; a loopback SCTP port is refused.
    h.ctl(["sandbox", "create", "--network", "pick", "-p", "80", &b])
        .expect_ok("b");
    assert_eq!(
        h.ctl(["port", &b, "80"]).expect_ok("port b"),
        "0.0.0.0:49153\n[::]:49153\n"
    );
    let bad = h.ctl([
        "sandbox",
        "create",
        "--network",
        "pick",
        "-p",
        "127.0.0.1:9133:132/sctp",
        &h.name("c"),
    ]);
    assert!(
        bad.expect_err("sctp on loopback")
            .contains("a loopback address never passes"),
        "{}",
        bad.stderr
    );
}
