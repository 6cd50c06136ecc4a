//! End-to-end: outbound NAT, --internal, L3 isolation between networks and the firewall table's
//! lifecycle, with an "outside" namespace behind the host. Needs root (SWITCH_E2E=require).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use sim::{in_netns, is_root, prefix, Host};

fn host(tag: &str) -> Option<Host> {
    if !is_root() {
        assert_ne!(
            std::env::var("SWITCH_E2E").as_deref(),
            Ok("require"),
            "end-to-end tests need root"
        );
        eprintln!("skipping {tag}: end-to-end tests need root");
        return None;
    }
    let dir = Path::new(env!("CARGO_BIN_EXE_switchd")).parent().expect("target dir");
    Some(Host::start(&prefix(tag), dir))
}

fn ping(h: &Host, from: &str, ip: &str) -> bool {
    h.exec(from, &["ping", "-c", "1", "-W", "1", ip]).ok()
}

fn nft_table(h: &Host) -> String {
    h.exec(h.ns(), &["nft", "list", "table", "ip", "switchd"]).stdout
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
        let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .join()
    .unwrap()
}

#[test]
fn outbound_nat_internal_networks_and_l3_isolation() {
    let Some(mut h) = host("gw") else { return };
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
