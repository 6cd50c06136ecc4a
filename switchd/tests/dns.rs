//! End-to-end: the embedded DNS (names, aliases, PTR, scoping, forwarding over UDP and TCP to
//! a dnsmasq in the outside namespace, SERVFAIL when it is down, answers following connect,
//! disconnect and rm, bounded work per sandbox), the default bridge's resolv.conf, --link and
//! container: mode over localhost. Real clients: dig, getent, ping. Needs root.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testbed::{in_netns, json, Host};

/// dnsmasq in the outside namespace, stopped by pid when dropped.
struct Upstream(Child);

impl Upstream {
    fn start(ns: &str) -> Upstream {
        Upstream::start_at(ns, "10.99.0.2", "10.99.0.2")
    }

    /// dnsmasq on `listen` in `ns`, answering www.ext.test with `answer`.
    fn start_at(ns: &str, listen: &str, answer: &str) -> Upstream {
        let chunk = "x".repeat(250);
        let big: Vec<String> = (0..12).map(|i| format!("{i}{chunk}")).collect();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=53",
            ])
            .arg(format!("--listen-address={listen}"))
            .args(["--bind-interfaces", "--no-resolv", "--no-hosts"])
            .arg("--local=/ext.test/")
            .arg(format!("--host-record=www.ext.test,{answer}"))
            .arg(format!("--txt-record=big.ext.test,{}", big.join(",")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        std::thread::sleep(Duration::from_millis(300));
        Upstream(child)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dig(h: &Host, sb: &str, args: &[&str]) -> String {
    let mut a = vec!["dig", "+time=3", "+tries=1"];
    a.extend_from_slice(args);
    h.exec(sb, &a).stdout
}

fn short(h: &Host, sb: &str, name: &str) -> String {
    dig(h, sb, &["+short", name]).trim().to_string()
}

#[test]
fn embedded_dns_names_scoping_and_forwarding() {
    let Some(h) = testbed::e2e_host!("dn") else { return };
    let out = h.add_outside();
    let mut up = Some(Upstream::start(&out));
    let (vm1, vm2, vm3) = (h.name("vm1"), h.name("vm2"), h.name("vm3"));
    h.ctl(["network", "create", "--subnet", "10.50.0.0/24", "dnsnet"])
        .expect_ok("dnsnet");
    h.ctl(["network", "create", "--subnet", "10.60.0.0/24", "othernet"])
        .expect_ok("othernet");
    h.ctl(["sandbox", "create", "--network", "dnsnet", "--alias", "web", &vm1])
        .expect_ok("vm1");
    h.ctl(["sandbox", "create", "--network", "dnsnet", &vm2])
        .expect_ok("vm2");
    h.ctl(["sandbox", "create", "--network", "othernet", &vm3])
        .expect_ok("vm3");
    let rc = h.exec(&vm1, &["cat", "/etc/resolv.conf"]).stdout;
    assert_eq!(rc, "nameserver 10.50.0.1\noptions ndots:0\n");

    // Names and aliases on the same network; getent and ping use them.
    assert_eq!(short(&h, &vm1, &vm2), "10.50.0.3");
    assert_eq!(short(&h, &vm2, "web"), "10.50.0.2");
    assert_eq!(short(&h, &vm2, &format!("{vm1}.dnsnet")), "10.50.0.2");
    let g = h.exec(&vm1, &["getent", "hosts", &vm2]).stdout;
    assert!(g.starts_with("10.50.0.3"), "{g}");
    assert_eq!(
        dig(&h, &vm1, &["+short", "-x", "10.50.0.3"]).trim(),
        format!("{vm2}.dnsnet.")
    );
    let p = h.exec(&vm1, &["ping", "-c", "1", "-W", "1", &vm2]).stdout;
    assert!(p.contains(&format!("from {vm2}.dnsnet (10.50.0.3)")), "{p}");
    // Over TCP too.
    assert_eq!(dig(&h, &vm1, &["+tcp", "+short", &vm2]).trim(), "10.50.0.3");

    // No leak across networks: vm3 on othernet does not learn vm1's address.
    assert_eq!(short(&h, &vm3, &vm1), "");
    assert_eq!(dig(&h, &vm3, &["+short", "-x", "10.50.0.2"]).trim(), "");

    // Forwarding to the upstream over UDP and TCP; a truncated UDP answer is fetched over TCP.
    assert_eq!(short(&h, &vm1, "www.ext.test"), "10.99.0.2");
    assert_eq!(dig(&h, &vm1, &["+tcp", "+short", "www.ext.test"]).trim(), "10.99.0.2");
    let big = dig(&h, &vm1, &["+bufsize=4096", "+ignore", "TXT", "big.ext.test"]);
    assert!(!big.contains(" tc"), "the answer should have come back whole: {big}");
    assert!(big.contains("11xxxx"), "all TXT strings present: {big}");

    // connect/disconnect/rm change answers at once.
    h.ctl(["network", "connect", "dnsnet", &vm3]).expect_ok("connect");
    assert_eq!(short(&h, &vm1, &vm3), "10.50.0.4");
    assert_eq!(
        short(&h, &vm3, &vm1),
        "10.50.0.2",
        "vm3 now sees dnsnet through its new interface"
    );
    h.ctl(["network", "disconnect", "dnsnet", &vm3]).expect_ok("disconnect");
    assert_eq!(short(&h, &vm1, &vm3), "");
    h.ctl(["sandbox", "rm", &vm2]).expect_ok("rm");
    assert_eq!(short(&h, &vm1, &vm2), "");

    // A flood from one sandbox does not starve another on the same server: vm3 (on dnsnet
    // again) sends as fast as it can for 3 s while vm1 keeps asking.
    h.ctl(["network", "connect", "dnsnet", &vm3]).expect_ok("connect again");
    let flood = in_netns(&Path::new("/run/netns").join(&vm3), || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let q = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1,
        ];
        let t0 = std::time::Instant::now();
        let mut sent = 0u64;
        while t0.elapsed() < Duration::from_secs(3) {
            if s.send_to(&q, "10.50.0.1:53").is_ok() {
                sent += 1;
            }
        }
        sent
    });
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..5 {
        assert_eq!(
            short(&h, &vm1, "web"),
            "10.50.0.2",
            "vm1 answered during vm3's flood (query {i})"
        );
    }
    let sent = flood.join().unwrap();
    assert!(sent > 10_000, "the flood was a flood: {sent} queries");
    let input = h
        .exec(h.ns(), &["nft", "list", "chain", "inet", "switchd", "input"])
        .stdout;
    let dropped: u64 = input
        .lines()
        .find(|l| l.contains("udp dport 53"))
        .and_then(|l| l.split("counter packets ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "the flood was limited in the kernel: {input}");

    // Upstream down: SERVFAIL, not silence.
    drop(up.take());
    let r = dig(&h, &vm1, &["www.ext.test"]);
    assert!(r.contains("status: SERVFAIL"), "{r}");
    assert_eq!(short(&h, &vm1, "web"), "10.50.0.2", "local names still answer");
}

#[test]
fn default_bridge_links_and_container_mode() {
    let Some(h) = testbed::e2e_host!("lk") else { return };
    let out = h.add_outside();
    let _up = Upstream::start(&out);
    let (b1, b2, b3, side) = (h.name("b1"), h.name("b2"), h.name("b3"), h.name("side"));
    h.ctl(["sandbox", "create", &b1]).expect_ok("b1");
    h.ctl(["sandbox", "create", &b2]).expect_ok("b2");
    // The default bridge: upstream resolvers, no container names (as in Docker).
    assert_eq!(
        h.exec(&b1, &["cat", "/etc/resolv.conf"]).stdout,
        "nameserver 10.99.0.2\n"
    );
    assert!(
        !h.exec(&b1, &["getent", "hosts", &b2]).ok(),
        "no names on the default bridge"
    );
    assert_eq!(
        short(&h, &b1, "www.ext.test"),
        "10.99.0.2",
        "the upstream, reached through NAT"
    );
    // --link writes the alias and the name into the hosts file.
    h.ctl(["sandbox", "create", "--link", &format!("{b1}:db"), &b3])
        .expect_ok("b3 with link");
    let g = h.exec(&b3, &["getent", "hosts", "db"]).stdout;
    assert!(g.starts_with("172.17.0.2") && g.contains(&b1), "{g}");
    assert!(h.exec(&b3, &["ping", "-c", "1", "-W", "1", "db"]).ok());
    let sb = h.ctl(["sandbox", "inspect", &b3]).stdout;
    assert!(sb.contains(&format!("\"{b1}:db\"")), "{sb}");
    let err = h.ctl(["sandbox", "create", "--link", "ghost:x", &h.name("b4")]);
    assert!(err.expect_err("bad link").contains("sandbox ghost not found"));

    // On a user-defined network a link is the linking sandbox's own name for another, given
    // at create or at connect; others do not know it.
    h.ctl(["network", "create", "--subnet", "10.77.11.0/24", "lnk"])
        .expect_ok("lnk");
    let (u1, u2) = (h.name("u1"), h.name("u2"));
    h.ctl(["sandbox", "create", "--network", "lnk", "--ip", "10.77.11.2", &u1])
        .expect_ok("u1");
    h.ctl([
        "sandbox",
        "create",
        "--network",
        "lnk",
        "--link",
        &format!("{u1}:cache"),
        &u2,
    ])
    .expect_ok("u2");
    assert_eq!(short(&h, &u2, "cache"), "10.77.11.2");
    assert_eq!(short(&h, &u1, "cache"), "", "u1 has no link named cache");
    let connect = [
        "network",
        "connect",
        "--link",
        &format!("{u1}:store"),
        "--driver-opt",
        "com.docker.network.endpoint.ifname=lan1",
        "lnk",
        &b3,
    ];
    h.ctl(connect).expect_ok("connect b3");
    // (b3's resolv.conf is the default bridge's: it asks the network's DNS by address.)
    let store = dig(&h, &b3, &["+short", "@10.77.11.1", "store"]);
    assert_eq!(store.trim(), "10.77.11.2");
    assert!(
        h.exec(&b3, &["ip", "link", "show", "lan1"]).ok(),
        "the driver option names the interface"
    );
    let links = [
        "sandbox",
        "inspect",
        "-f",
        "{{range .Networks}}{{join .Links \",\"}};{{end}}",
        &b3,
    ];
    assert_eq!(h.ctl(links).expect_ok("inspect").trim(), format!(";{u1}:store;"));
    let bad = h.ctl(["network", "connect", "--driver-opt", "mtu=9000", "lnk", &b2]);
    assert!(
        bad.expect_err("driver option")
            .contains("unknown driver option \"mtu\""),
        "{}",
        bad.stderr
    );
    let bad = h.ctl(["network", "connect", "--link", &b1, "bridge", &u1]);
    assert!(
        bad.expect_err("bridge link").contains("only for user-defined networks"),
        "{}",
        bad.stderr
    );

    // container: mode shares localhost.
    h.ctl(["sandbox", "create", "--network", &format!("container:{b1}"), &side])
        .expect_ok("side");
    let server = in_netns(&Path::new("/run/netns").join(&b1), || {
        let l = TcpListener::bind("127.0.0.1:8000").unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"hello from b1").unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    let got = in_netns(&Path::new("/run/netns").join(&side), || {
        let mut s = TcpStream::connect("127.0.0.1:8000").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .join()
    .unwrap();
    server.join().unwrap();
    assert_eq!(got, "hello from b1");
    assert_eq!(
        h.exec(&side, &["cat", "/etc/hosts"]).stdout,
        h.exec(&b1, &["cat", "/etc/hosts"]).stdout
    );
}

#[test]
fn a_sandbox_s_own_resolvers_search_domains_and_hosts() {
    let Some(h) = testbed::e2e_host!("own") else { return };
    let out = h.add_outside();
    // The host's resolver, and another that only two sandboxes use, each with its own answer.
    let _host = Upstream::start(&out);
    testbed::run("ip", ["-n", &out, "addr", "add", "10.99.0.3/24", "dev", "eth0"]).expect_ok("second address");
    let _own = Upstream::start_at(&out, "10.99.0.3", "10.99.0.33");
    h.ctl(["network", "create", "--subnet", "10.51.0.0/24", "ownnet"])
        .expect_ok("ownnet");
    let (a, b, c) = (h.name("a"), h.name("b"), h.name("c"));
    let own = [
        "--dns",
        "10.99.0.3",
        "--dns-search",
        "ext.test",
        "--dns-option",
        "timeout:2",
        "--add-host",
        "db.local:192.0.2.7",
        "--add-host",
        "gw.local:host-gateway",
    ];
    let mut args = vec!["sandbox", "create", "--network", "ownnet"];
    args.extend(own);
    args.push(&a);
    h.ctl(&args).expect_ok("a");
    h.ctl(["sandbox", "create", "--network", "ownnet", &b]).expect_ok("b");
    // On a user network: the embedded DNS still answers first, the search and options follow.
    let rc = h.exec(&a, &["cat", "/etc/resolv.conf"]).stdout;
    assert_eq!(rc, "nameserver 10.51.0.1\nsearch ext.test\noptions ndots:0 timeout:2\n");
    // What it does not know goes to a's own resolver for a, to the host's for b.
    assert_eq!(short(&h, &a, "www.ext.test"), "10.99.0.33");
    assert_eq!(short(&h, &b, "www.ext.test"), "10.99.0.2");
    // The search domain completes a bare name; names on the network still answer first.
    assert_eq!(
        h.exec(&a, &["getent", "hosts", "www"]).stdout.split_whitespace().next(),
        Some("10.99.0.33")
    );
    assert_eq!(short(&h, &a, &b), "10.51.0.3");
    // The hosts file: the names asked for, host-gateway as the host's address on the network.
    let hosts = h.exec(&a, &["cat", "/etc/hosts"]).stdout;
    assert!(hosts.ends_with("192.0.2.7\tdb.local\n10.51.0.1\tgw.local\n"), "{hosts}");
    assert!(
        h.exec(&a, &["ping", "-c", "1", "-W", "1", "gw.local"]).ok(),
        "the host, by name"
    );
    let s = json(h.ctl(["sandbox", "inspect", &a]).expect_ok("inspect"));
    assert_eq!(s[0]["Dns"][0], "10.99.0.3", "{s}");
    assert_eq!(s[0]["ExtraHosts"][1], "gw.local:host-gateway", "{s}");
    // On the default bridge, --dns is resolv.conf's own.
    let mut args = vec!["sandbox", "create"];
    args.extend(own);
    args.push(&c);
    h.ctl(&args).expect_ok("c");
    let rc = h.exec(&c, &["cat", "/etc/resolv.conf"]).stdout;
    assert_eq!(rc, "nameserver 10.99.0.3\nsearch ext.test\noptions timeout:2\n");
    assert_eq!(short(&h, &c, "www.ext.test"), "10.99.0.33");
    // Bad values: refused by name, nothing made; and none in host mode.
    let bad = h.ctl(["sandbox", "create", "--dns", "127.0.0.1", &h.name("x")]);
    assert!(
        bad.expect_err("loopback --dns").contains("invalid --dns 127.0.0.1"),
        "{}",
        bad.stderr
    );
    let bad = h.ctl([
        "sandbox",
        "create",
        "--network",
        "host",
        "--add-host",
        "a:192.0.2.1",
        &h.name("y"),
    ]);
    assert!(
        bad.expect_err("host mode").contains("conflicting options"),
        "{}",
        bad.stderr
    );
    // After a restart, the same files and the same forwarding.
    let mut h = h;
    h.kill9();
    h.restart();
    assert_eq!(short(&h, &a, "www.ext.test"), "10.99.0.33");
}
