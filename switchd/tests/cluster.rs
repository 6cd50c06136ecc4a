//! End-to-end: three hosts on an underlay bridge form a cluster (SWIM, sealed under the CA's
//! gossip key); a host with a certificate from another CA is not admitted and learns nothing;
//! kill -9 of a member is detected and it rejoins after restart; a holder of the gossip key
//! alone changes no record; a revoked host is cut off. Needs root.

use std::path::Path;
use std::time::{Duration, Instant};

use testbed::{json, prefix, run, Host};

fn peers(h: &Host) -> Vec<(String, String)> {
    let out = h.ctl(["cluster", "peers", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["Name"].as_str().unwrap_or("").to_string(),
                        p["State"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Frames a port has dropped for `reason`, the port found by a part of its interface name
/// (a VXLAN peer's is its address), as `switchctl ports` lists it.
fn drops(h: &Host, interface: &str, reason: &str) -> u64 {
    let ports = json(h.ctl(["ports", "--format", "json"]).expect_ok("ports"));
    let port = ports.as_array().and_then(|a| {
        a.iter()
            .find(|p| p["Interface"].as_str().is_some_and(|i| i.contains(interface)))
    });
    let port = port.unwrap_or_else(|| panic!("no port {interface} in {ports}"));
    port["Drops"][reason].as_u64().unwrap_or(0)
}

/// An Ethernet frame to `to`'s underlay interface holding a VXLAN datagram from `src` (any
/// address: the frame is written whole) to `dst` on `vni`, with an inner broadcast frame
/// from `inner_src`.
fn forged_vxlan(to: &Host, src: &str, dst: &str, vni: u32, inner_src: [u8; 6]) -> Vec<u8> {
    let mac = run("ip", ["netns", "exec", to.ns(), "cat", "/sys/class/net/ul0/address"]).stdout;
    let mac: Vec<u8> = mac
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("a MAC"))
        .collect();
    let mut inner = vec![0xff; 6];
    inner.extend_from_slice(&inner_src);
    inner.extend_from_slice(&[0x08, 0x06]);
    inner.resize(60, 0);
    let udp_len = 8 + 8 + inner.len();
    let mut f = mac;
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x42, 0x08, 0x00]);
    let ip = f.len();
    f.resize(ip + switch::wire::IPV4_HEADER_LEN, 0);
    switch::wire::Ipv4Repr {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol: 17,
        ttl: 64,
        payload_len: udp_len,
    }
    .emit(&mut f[ip..]);
    let len = (udp_len as u16).to_be_bytes();
    f.extend_from_slice(&[0x12, 0xb5, 0x12, 0xb5, len[0], len[1], 0, 0]);
    let at = f.len();
    f.resize(at + 8, 0);
    overlay::vxlan::VxlanHeader {
        vni: overlay::vxlan::Vni::new(vni).expect("a VNI"),
    }
    .emit(&mut f[at..]);
    f.extend_from_slice(&inner);
    f
}

/// The UDP payload of one gossip datagram to `to`, as it crossed the underlay bridge.
fn capture_gossip(f: &Fabric, to: &str) -> Vec<u8> {
    let frame = capture_frame(f, &format!("udp dst port 7946 and dst host {to}"));
    frame[udp_at(&frame) + 8..].to_vec()
}

/// Where the UDP header of an Ethernet frame holding IPv4 starts.
fn udp_at(frame: &[u8]) -> usize {
    14 + usize::from(frame[14] & 0x0f) * 4
}

/// One Ethernet frame matching `filter` as it crossed the underlay bridge (read from a pcap
/// file tcpdump writes: a 24-byte file header, a 16-byte record header, then the frame).
fn capture_frame(f: &Fabric, filter: &str) -> Vec<u8> {
    let file = std::env::temp_dir().join(format!("{}-one.pcap", f.0.underlay.ns()));
    let path = file.to_str().unwrap();
    run(
        "ip",
        [
            "netns",
            "exec",
            f.0.underlay.ns(),
            "timeout",
            "10",
            "tcpdump",
            "-c",
            "1",
            "-i",
            "br0",
            "-w",
            path,
            filter,
        ],
    )
    .expect_ok("tcpdump");
    let pcap = std::fs::read(&file).expect("the capture");
    let _ = std::fs::remove_file(&file);
    pcap[24 + 16..].to_vec()
}

/// tcpdump on the underlay bridge for `secs` seconds with `args` (options, then a filter),
/// its output piped; started when this returns.
fn dump_underlay(f: &Fabric, secs: u32, args: &[&str]) -> std::process::Child {
    let secs = secs.to_string();
    let ns = f.0.underlay.ns();
    let mut all = vec!["netns", "exec", ns, "timeout", &secs, "tcpdump", "-i", "br0"];
    all.extend_from_slice(args);
    let child = std::process::Command::new("ip")
        .args(&all)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    // tcpdump needs a moment to open the interface.
    std::thread::sleep(Duration::from_millis(500));
    child
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if ok() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within {limit:?}");
}

/// A test cluster: certificates, and an underlay 10.`net`.0.0/24 whose hosts join host 1.
struct Fabric(testbed::Fabric);

impl Fabric {
    fn new(tag: &str, net: u8) -> Fabric {
        Fabric(testbed::Fabric::new(&prefix(tag), net, testbed::bin_dir!()))
    }

    /// A fabric whose hosts `names` hold certificates of the CA "ca".
    fn certified(tag: &str, net: u8, names: &[&str]) -> Fabric {
        let f = Fabric::new(tag, net);
        for h in names {
            f.cert("ca", h);
        }
        f
    }

    fn cert(&self, ca: &str, name: &str) {
        self.0.cert(ca, name);
    }

    fn start(&self, i: u8, name: &str) -> Host {
        self.0.start(i, name)
    }

    fn start_with(&self, i: u8, name: &str, extra: &[&str]) -> Host {
        self.0.start_with(i, name, extra)
    }
}

#[test]
fn three_hosts_form_a_cluster_and_strangers_stay_out() {
    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric::certified("cl", 98, &["h1", "h2", "h3"]);
    f.cert("other-ca", "intruder");
    let h1 = f.start(1, "h1");
    let h2 = f.start(2, "h2");
    let mut h3 = f.start(3, "h3");
    let hosts = [&h1, &h2, &h3];
    let took = wait_for("three hosts see each other alive", Duration::from_secs(20), || {
        hosts.iter().all(|h| {
            let ps = peers(h);
            ps.len() == 3 && ps.iter().all(|(_, s)| s == "alive")
        })
    });
    eprintln!("cluster of 3 formed in {took:?}");
    let table = h1.ctl(["cluster", "peers"]).expect_ok("peers").to_string();
    assert!(
        table.starts_with("NAME") && table.contains("10.98.0.2:7946") && table.contains("alive"),
        "{table}"
    );

    // A host whose certificate comes from another CA is not admitted and learns nothing.
    let intruder = f.start(9, "intruder");
    std::thread::sleep(Duration::from_secs(4));
    assert!(peers(&h1).iter().all(|(n, _)| n != "intruder"), "{:?}", peers(&h1));
    assert_eq!(
        peers(&intruder).len(),
        1,
        "the intruder knows only itself: {:?}",
        peers(&intruder)
    );
    let c = run(
        "curl",
        ["-s", "--unix-socket", h1.socket().to_str().unwrap(), "http://x/cluster"],
    )
    .stdout;
    let c: serde_json::Value = serde_json::from_str(&c).unwrap();
    assert!(c["DroppedUnauthenticated"].as_u64().unwrap() > 0, "{c}");
    drop(intruder);

    // A gossip datagram to h1, taken off the underlay and sent again: refused as a replay.
    let datagram = capture_gossip(&f, "10.98.0.1");
    let stale = || {
        let s = json(h1.ctl(["stats", "--format", "json"]).expect_ok("stats"));
        s["Cluster"]["GossipStale"].as_u64().unwrap_or(0)
    };
    let before = stale();
    let ul = Path::new("/run/netns").join(f.0.underlay.ns());
    run(
        "ip",
        ["-n", f.0.underlay.ns(), "addr", "add", "10.98.0.250/24", "dev", "br0"],
    )
    .expect_ok("an address on the underlay");
    testbed::in_netns(&ul, move || {
        let s = std::net::UdpSocket::bind("10.98.0.250:0").unwrap();
        s.send_to(&datagram, "10.98.0.1:7946").unwrap();
    })
    .join()
    .unwrap();
    wait_for("the replay refused", Duration::from_secs(5), || stale() > before);

    // kill -9 of h3 is detected by the others; after a restart it is alive again.
    h3.kill9();
    let down = wait_for("h3 declared down everywhere", Duration::from_secs(30), || {
        [&h1, &h2]
            .iter()
            .all(|h| peers(h).iter().any(|(n, s)| n == "h3" && s == "down"))
    });
    eprintln!("h3 declared down {down:?} after kill -9");
    h3.restart();
    wait_for("h3 alive again", Duration::from_secs(20), || {
        peers(&h1).iter().any(|(n, s)| n == "h3" && s == "alive")
    });

    // Anti-entropy runs over QUIC (mutual TLS against the CA).
    wait_for("an anti-entropy exchange", Duration::from_secs(15), || {
        let c = run(
            "curl",
            ["-s", "--unix-socket", h1.socket().to_str().unwrap(), "http://x/cluster"],
        )
        .stdout;
        serde_json::from_str::<serde_json::Value>(&c).is_ok_and(|v| v["SyncOk"].as_u64().unwrap_or(0) > 0)
    });

    // A partition of h3 heals, and what was created meanwhile reaches it.
    run("ip", ["-n", h3.ns(), "link", "set", "ul0", "down"]).expect_ok("partition h3");
    wait_for("h3 declared down", Duration::from_secs(30), || {
        peers(&h1).iter().any(|(n, s)| n == "h3" && s == "down")
    });
    h1.ctl([
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.67.0.0/24",
        "during",
    ])
    .expect_ok("create during");
    let sb = h1.name("p1");
    h1.ctl(["sandbox", "create", "--network", "during", &sb])
        .expect_ok("sandbox during");
    assert!(!h3.ctl(["network", "inspect", "during"]).ok(), "h3 is cut off");
    run("ip", ["-n", h3.ns(), "link", "set", "ul0", "up"]).expect_ok("heal");
    let took = wait_for("h3 converges", Duration::from_secs(30), || {
        h3.ctl(["network", "inspect", "during"]).ok() && h3.ctl(["fdb", "during"]).stdout.contains("02:42:0a:43:00:02")
    });
    eprintln!("h3 converged {took:?} after the partition healed");
}

#[test]
fn overlay_across_hosts() {
    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric::certified("xo", 97, &["h1", "h2"]);
    let h1 = f.start(1, "h1");
    let mut h2 = f.start(2, "h2");
    wait_for("the two hosts meet", Duration::from_secs(20), || {
        peers(&h1).iter().filter(|(_, s)| s == "alive").count() == 2
    });

    // Created on h1, listed on h2. VXLAN listens from then on, on the advertise address.
    let vxlan = |h: &Host| json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"))["Vxlan"]["Address"].clone();
    assert_eq!(vxlan(&h1), serde_json::Value::Null);
    h1.ctl(["network", "create", "-d", "overlay", "--subnet", "10.66.0.0/24", "ovl"])
        .expect_ok("create");
    assert_eq!(vxlan(&h1), "10.97.0.1:4789");
    wait_for("ovl on h2", Duration::from_secs(10), || {
        h2.ctl(["network", "inspect", "ovl"]).ok()
    });
    let ls = h2.ctl(["network", "ls"]).expect_ok("ls").to_string();
    assert!(
        ls.lines()
            .any(|l| l.contains("ovl") && l.contains("overlay") && l.contains("global")),
        "{ls}"
    );

    // Sandboxes on both hosts reach each other by address and by name.
    let (a, b) = (h1.name("a"), h2.name("b"));
    h1.ctl(["sandbox", "create", "--network", "ovl", &a])
        .expect_ok("a on h1");
    wait_for("a known on h2", Duration::from_secs(10), || {
        h2.ctl(["fdb", "ovl"]).stdout.contains("02:42:0a:42:00:02")
    });
    h2.ctl(["sandbox", "create", "--network", "ovl", &b])
        .expect_ok("b on h2");
    let b_addr = h2.exec(&b, &["ip", "-o", "-4", "addr", "show", "eth0"]).stdout;
    assert!(
        b_addr.contains("10.66.0.239/24"),
        "h2 asked h1 for addresses and hands out the first of the 16 it was given: {b_addr}"
    );
    wait_for("b known on h1", Duration::from_secs(10), || {
        h1.ctl(["fdb", "ovl"]).stdout.contains("02:42:0a:42:00:ef")
    });
    let fdb = h1.ctl(["fdb", "ovl"]).stdout;
    let line = fdb
        .lines()
        .find(|l| l.contains("02:42:0a:42:00:ef"))
        .unwrap_or_default();
    assert!(
        line.contains(", host h2)") && line.contains("static"),
        "b's entry names its host: {fdb}"
    );
    assert!(
        h1.exec(&a, &["ping", "-c", "1", "-W", "2", "10.66.0.239"]).ok(),
        "a (h1) to b (h2)"
    );
    assert!(
        h2.exec(&b, &["ping", "-c", "1", "-W", "2", "10.66.0.2"]).ok(),
        "b (h2) to a (h1)"
    );
    let g = h1.exec(&a, &["getent", "hosts", &b]).stdout;
    assert!(g.starts_with("10.66.0.239"), "a resolves b across hosts: {g}");

    // A datagram forged on the underlay with h2's address, carrying a frame from a MAC that
    // is none of h2's endpoints: refused on h2's port, and nothing is learned.
    let vni: u32 = json(h1.ctl(["network", "inspect", "ovl"]).expect_ok("inspect"))[0]["Options"]
        ["com.docker.network.driver.overlay.vxlanid_list"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("the VNI");
    let forged = forged_vxlan(&h1, "10.97.0.2", "10.97.0.1", vni, [0x02, 0, 0, 0, 0, 0x99]);
    let before = drops(&h1, "10.97.0.2", "unpinned_source");
    testbed::send_raw(&Path::new("/run/netns").join(f.0.underlay.ns()), "br0", forged);
    wait_for("the forged frame refused", Duration::from_secs(5), || {
        drops(&h1, "10.97.0.2", "unpinned_source") > before
    });
    let fdb = h1.ctl(["fdb", "ovl"]).stdout;
    assert!(!fdb.contains("02:00:00:00:00:99"), "{fdb}");

    // ARP suppression: b's host answers b's request for a's address; none crosses the underlay.
    h2.exec(&b, &["ip", "neigh", "flush", "all"]);
    let dump = dump_underlay(&f, 3, &["-nn", "-l", "udp", "port", "4789"]);
    assert!(h2
        .exec(&b, &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.66.0.2"])
        .ok());
    let wire = String::from_utf8_lossy(&dump.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        wire.contains("ICMP echo request"),
        "the ping crossed the underlay in VXLAN: {wire}"
    );
    assert!(
        !wire.contains("who-has 10.66.0.2"),
        "the ARP request was answered locally: {wire}"
    );
    let neigh = h2.exec(&b, &["ip", "neigh", "show", "10.66.0.2"]).stdout;
    assert!(neigh.contains("02:42:0a:42:00:02"), "{neigh}");
    // The trace says so, and that a frame to a leaves h2 in VXLAN towards h1.
    let t = h2.ctl([
        "trace",
        "ovl",
        "--in",
        &b,
        "--frame",
        "arp=10.66.0.2,sender=10.66.0.239",
    ]);
    let t = t.expect_ok("trace arp").to_string();
    assert!(t.contains("verdict: answered here (ARP suppression)"), "{t}");
    assert!(
        t.contains("an ARP request for 10.66.0.2, which lives on another host as 02:42:0a:42:00:02"),
        "{t}"
    );
    let t = h2.ctl(["trace", "ovl", "--in", &b, "--frame", "dst=02:42:0a:42:00:02"]);
    let t = t.expect_ok("trace to a").to_string();
    assert!(t.contains(", VNI ") && t.contains("VXLAN to "), "{t}");
    // Cluster counters: both members alive, gossip both ways.
    let s: serde_json::Value =
        serde_json::from_str(h2.ctl(["stats", "--format", "json"]).expect_ok("stats")).expect("JSON");
    assert_eq!(s["Cluster"]["Peers"]["alive"], 2, "{s}");
    assert!(s["Cluster"]["GossipReceived"].as_u64() > Some(0), "{s}");
    assert!(s["Cluster"]["GossipSent"].as_u64() > Some(0), "{s}");

    // Bulk TCP both ways: the sandboxes hand over super-frames (TSO on overlay ports), which
    // are cut into segments with their checksums before they enter the tunnel.
    assert_eq!(testbed::tcp_bulk(&a, &b, "10.66.0.239", 32), 32 << 20, "a to b");
    assert_eq!(testbed::tcp_bulk(&b, &a, "10.66.0.2", 32), 32 << 20, "b to a");
    let ports: serde_json::Value =
        serde_json::from_str(h1.ctl(["ports", "--format", "json"]).expect_ok("ports")).expect("JSON");
    let tap = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Interface"] == format!("{a}/eth0"))
        .unwrap_or_else(|| panic!("a's port: {ports}"));
    let avg = tap["RxBytes"].as_u64().unwrap() / tap["RxPackets"].as_u64().unwrap().max(1);
    assert!(
        avg > 1514,
        "a's port read {avg}-byte frames on average: no super-frames {tap}"
    );
    for p in ports.as_array().unwrap() {
        for reason in ["bad_offload", "tx_failed"] {
            assert!(p["Drops"].get(reason).is_none(), "{reason} on {p}");
        }
    }
    // Overlay ports cap their super-frames to what one UDP send into the tunnel carries
    // (44 segments at MTU 1450).
    let link = h1.exec(&a, &["ip", "-d", "link", "show", "eth0"]).stdout;
    assert!(link.contains("gso_max_segs 44 "), "{link}");
    // And with the offloads off in the sandbox: MTU-sized frames, checksums complete.
    h1.exec(&a, &["ethtool", "-K", "eth0", "tso", "off", "tx", "off"])
        .expect_ok("ethtool");
    assert_eq!(
        testbed::tcp_bulk(&a, &b, "10.66.0.239", 16),
        16 << 20,
        "a to b, offloads off"
    );

    // A crashed host's endpoints are withdrawn once it is declared down, and come back with it.
    h2.kill9();
    let took = wait_for("b withdrawn from h1", Duration::from_secs(20), || {
        !h1.ctl(["fdb", "ovl"]).stdout.contains("02:42:0a:42:00:ef")
    });
    eprintln!("h2's endpoints withdrawn {took:?} after kill -9");
    h2.restart();
    wait_for("b back on h1", Duration::from_secs(20), || {
        h1.ctl(["fdb", "ovl"]).stdout.contains("02:42:0a:42:00:ef")
    });
    wait_for("a reaches b again", Duration::from_secs(5), || {
        h1.exec(&a, &["ping", "-c", "1", "-W", "1", "10.66.0.239"]).ok()
    });

    // Both hosts create sandboxes at the same moment: no address is handed out twice.
    let burst = |h: &Host, tag: &str| -> Vec<String> {
        (0..3)
            .map(|i| {
                let n = h.name(&format!("{tag}{i}"));
                h.ctl(["sandbox", "create", "--network", "ovl", &n])
                    .expect_ok("burst sandbox");
                let o = h.exec(&n, &["ip", "-o", "-4", "addr", "show", "eth0"]).stdout;
                o.split_whitespace().nth(3).unwrap_or_default().to_string()
            })
            .collect()
    };
    let (on1, on2) = std::thread::scope(|sc| {
        let t1 = sc.spawn(|| burst(&h1, "c"));
        let t2 = sc.spawn(|| burst(&h2, "d"));
        (t1.join().unwrap(), t2.join().unwrap())
    });
    let mut all: Vec<&String> = on1.iter().chain(on2.iter()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "no address twice: {on1:?} {on2:?}");

    // Two overlay networks stay apart across hosts, even aimed at each other's addresses.
    h1.ctl(["network", "create", "-d", "overlay", "--subnet", "10.65.0.0/24", "ovl2"])
        .expect_ok("ovl2");
    wait_for("ovl2 on h2", Duration::from_secs(10), || {
        h2.ctl(["network", "inspect", "ovl2"]).ok()
    });
    let c = h2.name("iso");
    h2.ctl(["sandbox", "create", "--network", "ovl2", &c])
        .expect_ok("sandbox on ovl2");
    h2.exec(&c, &["ip", "route", "add", "10.66.0.0/24", "dev", "eth0"])
        .expect_ok("route");
    h2.exec(
        &c,
        &[
            "ip",
            "neigh",
            "add",
            "10.66.0.2",
            "lladdr",
            "02:42:0a:42:00:02",
            "dev",
            "eth0",
        ],
    )
    .expect_ok("neigh");
    assert!(
        !h2.exec(&c, &["ping", "-c", "1", "-W", "1", "10.66.0.2"]).ok(),
        "ovl2 must not reach ovl"
    );
    assert!(
        h1.exec(&a, &["ping", "-c", "1", "-W", "1", "10.66.0.239"]).ok(),
        "while ovl still works"
    );

    // `network rm` works from any host: ovl2, made on h1, removed from h2, leaves h1 too.
    h2.ctl(["sandbox", "rm", &c]).expect_ok("rm iso");
    h2.ctl(["network", "rm", "ovl2"]).expect_ok("rm ovl2 from h2");
    wait_for("ovl2 gone from h1", Duration::from_secs(10), || {
        !h1.ctl(["network", "inspect", "ovl2"]).ok()
    });

    // Egress from an overlay sandbox leaves through its own host (the anycast gateway there).
    let out = h2.add_outside();
    let server = testbed::in_netns(&Path::new("/run/netns").join(&out), || {
        let l = std::net::TcpListener::bind("10.99.0.2:7000").unwrap();
        let (mut s, peer) = l.accept().unwrap();
        std::io::Write::write_all(&mut s, peer.ip().to_string().as_bytes()).unwrap();
    });
    let seen = testbed::in_netns(&Path::new("/run/netns").join(&b), || {
        let addr: std::net::SocketAddr = "10.99.0.2:7000".parse().unwrap();
        for _ in 0..40 {
            if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                let mut got = String::new();
                std::io::Read::read_to_string(&mut s, &mut got).unwrap();
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        String::new()
    })
    .join()
    .unwrap();
    server.join().unwrap();
    assert_eq!(
        seen, "10.99.0.1",
        "b's traffic left through h2, masqueraded to h2's address"
    );

    // The network is in use on h1: h2 cannot remove it.
    let err = h2.ctl(["network", "rm", "ovl"]);
    assert!(err.expect_err("rm in use elsewhere").contains(&format!("{a} (on h1)")));

    // Removing a sandbox withdraws it everywhere.
    h1.ctl(["sandbox", "rm", &a]).expect_ok("rm a");
    wait_for("a withdrawn from h2", Duration::from_secs(10), || {
        !h2.ctl(["fdb", "ovl"]).stdout.contains("02:42:0a:42:00:02")
    });
    assert!(!h2.exec(&b, &["ping", "-c", "1", "-W", "1", "10.66.0.2"]).ok());
}

#[test]
fn overlay_addresses_go_where_they_are_needed() {
    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric::certified("xa", 95, &["h1", "h2", "h3"]);
    let hosts = [f.start(1, "h1"), f.start(2, "h2"), f.start(3, "h3")];
    wait_for("the three hosts meet", Duration::from_secs(20), || {
        peers(&hosts[0]).iter().filter(|(_, s)| s == "alive").count() == 3
    });
    hosts[0]
        .ctl(["network", "create", "-d", "overlay", "--subnet", "10.65.0.0/24", "ov1"])
        .expect_ok("create");
    for h in &hosts[1..] {
        wait_for("ov1 on every host", Duration::from_secs(10), || {
            h.ctl(["network", "inspect", "ov1"]).ok()
        });
    }
    // 83 sandboxes on each host at once, 249 of the subnet's 253 addresses: a host's fixed
    // share of a /24 held eight. The first host holds all the addresses at first; the others
    // ask it, and each other, as they run out.
    let made: Vec<Vec<String>> = std::thread::scope(|s| {
        let workers: Vec<_> = hosts
            .iter()
            .map(|h| {
                s.spawn(move || {
                    (0..83)
                        .map(|k| {
                            let name = h.name(&format!("s{k}"));
                            h.ctl(["sandbox", "create", "--network", "ov1", &name])
                                .expect_ok("sandbox create");
                            name
                        })
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a host's creates"))
            .collect()
    });
    // The last four addresses, wherever they are, then a refusal that says why.
    let mut last = Vec::new();
    for k in 83..87 {
        let name = hosts[1].name(&format!("s{k}"));
        hosts[1]
            .ctl(["sandbox", "create", "--network", "ov1", &name])
            .expect_ok("one of the last addresses");
        last.push(name);
    }
    // Refused, and once the other hosts' last endpoints reached h2, with every address counted.
    let says = "network ov1: no free address reachable from h2 (253 of 253 in use on reachable hosts)";
    let mut full = String::new();
    let counted = testbed::eventually(10, || {
        let more = hosts[1].ctl(["sandbox", "create", "--network", "ov1", &hosts[1].name("more")]);
        assert!(!more.ok(), "a 254th address");
        full = more.stderr;
        full.contains(says)
    });
    assert!(counted, "{full}");
    let mut seen = std::collections::BTreeMap::new();
    let all = made
        .iter()
        .zip(&hosts)
        .flat_map(|(names, h)| names.iter().map(move |n| (h, n)));
    for (h, sb) in all.chain(last.iter().map(|n| (&hosts[1], n))) {
        let out = h.exec(sb, &["ip", "-o", "-4", "addr", "show", "eth0"]).stdout;
        let ip = out
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.split('/').next())
            .unwrap_or_default()
            .to_string();
        assert!(ip.starts_with("10.65.0."), "{sb}: {out}");
        if let Some(other) = seen.insert(ip.clone(), sb.clone()) {
            panic!("{ip} is held by both {other} and {sb}");
        }
    }
    assert_eq!(seen.len(), 253);
    // Every host's view: who holds how many of the 256 offsets, and uses how many.
    wait_for("h2 sees every endpoint", Duration::from_secs(10), || {
        let v: serde_json::Value =
            serde_json::from_str(&hosts[1].ctl(["network", "inspect", "ov1"]).stdout).unwrap_or_default();
        let a = &v[0]["Addresses"];
        let sum = |k: &str| {
            ["h1", "h2", "h3"]
                .iter()
                .map(|h| a[h][k].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        let each = ["h1", "h2", "h3"]
            .iter()
            .all(|h| a[h]["Held"].as_u64() >= a[h]["Used"].as_u64());
        sum("Held") == 256 && sum("Used") == 253 && each
    });
    // Across hosts, by the addresses given.
    let (on3, on1) = (hosts[2].name("s0"), hosts[0].name("s0"));
    let target = seen
        .iter()
        .find(|(_, sb)| **sb == on1)
        .map(|(ip, _)| ip.clone())
        .unwrap();
    wait_for("s0 on h3 reaches s0 on h1", Duration::from_secs(10), || {
        hosts[2].exec(&on3, &["ping", "-c", "1", "-W", "1", &target]).ok()
    });
    // Ten sandboxes go on h2 and ten on h3, and then h3 is cut off. h1 takes the ten
    // addresses h2 freed, and no more: the other ten are h3's, out of reach.
    for (h, names) in hosts[1..].iter().zip(&made[1..]) {
        for n in &names[73..] {
            h.ctl(["sandbox", "rm", n]).expect_ok("sandbox rm");
        }
    }
    wait_for("h1 sees twenty freed", Duration::from_secs(10), || {
        let v: serde_json::Value =
            serde_json::from_str(&hosts[0].ctl(["network", "inspect", "ov1"]).stdout).unwrap_or_default();
        let used = |h: &str| v[0]["Addresses"][h]["Used"].as_u64().unwrap_or(0);
        used("h1") + used("h2") + used("h3") == 233
    });
    run("ip", ["-n", hosts[2].ns(), "link", "set", "ul0", "down"]).expect_ok("cut h3 off");
    wait_for("h1 no longer sees h3 alive", Duration::from_secs(15), || {
        peers(&hosts[0]).iter().any(|(n, s)| n == "h3" && s != "alive")
    });
    for k in 0..10 {
        hosts[0]
            .ctl([
                "sandbox",
                "create",
                "--network",
                "ov1",
                &hosts[0].name(&format!("t{k}")),
            ])
            .expect_ok("an address h2 freed");
    }
    let out = hosts[0].ctl(["sandbox", "create", "--network", "ov1", &hosts[0].name("t10")]);
    assert!(!out.ok());
    assert!(
        out.stderr.contains("no free address reachable from h1 (") && out.stderr.contains("; unreachable: h3 holding "),
        "{}",
        out.stderr
    );
}

#[test]
fn a_host_gone_for_good_is_forgotten_and_its_addresses_taken_over() {
    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric::certified("xf", 94, &["h1", "h2", "h3"]);
    let (h1, h2, mut h3) = (f.start(1, "h1"), f.start(2, "h2"), f.start(3, "h3"));
    wait_for("the three hosts meet", Duration::from_secs(20), || {
        peers(&h1).iter().filter(|(_, s)| s == "alive").count() == 3
    });
    h1.ctl(["network", "create", "-d", "overlay", "--subnet", "10.64.0.0/26", "ov2"])
        .expect_ok("create");
    wait_for("ov2 on h3", Duration::from_secs(10), || {
        h3.ctl(["network", "inspect", "ov2"]).ok()
    });
    // h3 asks h1 for addresses and gets 16.
    h3.ctl(["sandbox", "create", "--network", "ov2", &h3.name("a")])
        .expect_ok("a on h3");
    let held = |h: &Host, host: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&h.ctl(["network", "inspect", "ov2"]).stdout).unwrap_or_default();
        v[0]["Addresses"][host]["Held"].as_u64().unwrap_or(0)
    };
    wait_for("h1 sees h3's claim", Duration::from_secs(10), || held(&h1, "h3") == 16);
    // A static address h1 owns: h1 gives it to h3 first.
    h3.ctl([
        "sandbox",
        "create",
        "--network",
        "ov2",
        "--ip",
        "10.64.0.5",
        &h3.name("b"),
    ])
    .expect_ok("b on h3 at an address h1 owned");
    wait_for("h1 sees h3 holding 17", Duration::from_secs(10), || {
        held(&h1, "h3") == 17
    });
    let alive = h1.ctl(["cluster", "forget", "h3"]);
    assert!(!alive.ok());
    assert!(
        alive
            .stderr
            .contains("host h3 is alive: only a host gone for good can be forgotten"),
        "{}",
        alive.stderr
    );
    h3.kill9();
    wait_for("h3 declared down", Duration::from_secs(15), || {
        peers(&h1).iter().any(|(n, s)| n == "h3" && s == "down")
    });
    let out = h1.ctl(["cluster", "forget", "h3"]).expect_ok("forget").to_string();
    assert!(out.contains("network ov2: took over 17 addresses of h3"), "{out}");
    assert_eq!((held(&h1, "h3"), held(&h1, "h1")), (0, 64));
    wait_for("h2 sees h1 holding all", Duration::from_secs(10), || {
        held(&h2, "h1") == 64
    });
}

#[test]
fn a_gossip_key_holder_alone_cannot_change_records() {
    use control_plane::cluster::membership::HostId;
    use control_plane::cluster::node::{Config, Node};
    use control_plane::cluster::records::{Record, RecordKey, Version};
    use control_plane::cluster::{envelope, pki, seal::GossipKey, sign::Signer};

    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric::certified("xk", 93, &["h1", "h2"]);
    let (h1, h2) = (f.start(1, "h1"), f.start(2, "h2"));
    wait_for("the two hosts meet", Duration::from_secs(20), || {
        peers(&h2).iter().filter(|(_, s)| s == "alive").count() == 2
    });
    h1.ctl(["network", "create", "-d", "overlay", "--subnet", "10.69.0.0/24", "ovk"])
        .expect_ok("create");
    wait_for("ovk on h2", Duration::from_secs(10), || {
        h2.ctl(["network", "inspect", "ovk"]).ok()
    });
    let id = json(h1.ctl(["network", "inspect", "ovk"]).expect_ok("inspect"))[0]["Id"]
        .as_str()
        .expect("an ID")
        .to_string();

    // The gossip key, as a decommissioned host's disk holds it, and no certificate.
    let hex = std::fs::read_to_string(f.0.credentials("h1").join("gossip.key")).unwrap();
    let key: [u8; 32] = control_plane::cluster::hex::decode(hex.trim())
        .unwrap()
        .try_into()
        .unwrap();
    let key = GossipKey::from_bytes(&key);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Tombstones of h1's network: in h1's name unsigned, in h1's name signed by a key of the
    // holder's own, and in the holder's own name.
    let tombstone = |origin: &str| {
        let version = Version {
            counter: now_ms + 10_000,
            origin: origin.into(),
        };
        Record::new(
            RecordKey::Network(control_plane::ids::Id::parse(&id).unwrap()),
            version,
            None,
        )
    };
    let mallory_ca = pki::new_ca("mallory", std::time::SystemTime::now()).unwrap();
    let own = Signer::from_pem(&mallory_ca.key).unwrap();
    let mut signed = tombstone("h1");
    signed.sig = Some(own.sign(&signed.signed_bytes()).to_vec().into());
    let mut in_own_name = tombstone("mallory");
    in_own_name.sig = Some(own.sign(&in_own_name.signed_bytes()).to_vec().into());
    let me = HostId {
        name: "mallory".into(),
        addr: "10.93.0.250:7946".parse().unwrap(),
        bump: now_ms / 1000,
    };
    // Each message signed as the holder can: in h1's name under a key of its own, and in its
    // own name, whose certificate no host knows. A certificate for "h1" from the holder's own
    // CA goes first.
    let sign_as = control_plane::cluster::cheap::Cheap::new("mallory");
    let fake = pki::issue_host(&mallory_ca, "h1", 1, std::time::SystemTime::now()).unwrap();
    let fake = pki::der(&fake.cert, "host.crt").unwrap();
    let mut datagrams = vec![(
        "10.93.0.2:7946".parse().unwrap(),
        key.seal([99; 12], now_ms, &envelope::cert(&fake)),
    )];
    // One announcement each (the gossip queue holds one record of a key).
    for (r, name) in [(tombstone("h1"), "h1"), (signed, "h1"), (in_own_name, "mallory")] {
        let mut node = Node::new(
            me.clone(),
            7,
            vec!["10.93.0.2:7946".parse().unwrap()],
            Config::default(),
        );
        node.spread(&r);
        node.rejoin();
        while let Some((to, d)) = node.poll_transmit() {
            let nonce = [datagrams.len() as u8 + 1; 12];
            let wrapped = envelope::signed(&sign_as, name, &nonce, now_ms, &d);
            datagrams.push((to, key.seal(nonce, now_ms, &wrapped)));
        }
    }
    assert!(!datagrams.is_empty());

    let cluster = |h: &Host| json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"))["Cluster"].clone();
    let before = cluster(&h2);
    run(
        "ip",
        ["-n", f.0.underlay.ns(), "addr", "add", "10.93.0.250/24", "dev", "br0"],
    )
    .expect_ok("an address on the underlay");
    let ul = Path::new("/run/netns").join(f.0.underlay.ns());
    testbed::in_netns(&ul, move || {
        let s = std::net::UdpSocket::bind("10.93.0.250:7946").unwrap();
        for (to, d) in datagrams {
            s.send_to(&d, to).unwrap();
        }
    })
    .join()
    .unwrap();
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    // Refused at the sender's signature: none reached the records.
    wait_for("the forgeries refused", Duration::from_secs(10), || {
        let now = cluster(&h2);
        n(&now, "GossipForged") >= n(&before, "GossipForged") + 3
            && n(&now, "GossipUnverified") > n(&before, "GossipUnverified")
    });
    let now = cluster(&h2);
    assert_eq!(n(&now, "RecordsForged"), n(&before, "RecordsForged"), "{now}");
    // Nothing changed: h2 still has h1's network, and h1 never heard otherwise.
    for h in [&h1, &h2] {
        let net = json(h.ctl(["network", "inspect", "ovk"]).expect_ok("ovk stays"));
        assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], "10.69.0.0/24", "{net}");
    }
    let stats = h2.ctl(["stats"]).expect_ok("stats").to_string();
    assert!(stats.contains(", forged 3, "), "{stats}");
}

#[test]
fn a_revoked_host_is_cut_off_and_its_endpoints_disappear() {
    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric::certified("xr", 92, &["h1", "h2", "h3"]);
    f.cert("other", "x1");
    let (mut h1, mut h2, h3) = (f.start(1, "h1"), f.start(2, "h2"), f.start(3, "h3"));
    wait_for("the three hosts meet", Duration::from_secs(20), || {
        peers(&h1).iter().filter(|(_, s)| s == "alive").count() == 3
    });
    h1.ctl(["network", "create", "-d", "overlay", "--subnet", "10.70.0.0/24", "ovr"])
        .expect_ok("create");
    wait_for("ovr on h3", Duration::from_secs(10), || {
        h3.ctl(["network", "inspect", "ovr"]).ok()
    });
    let sb = h3.name("r3");
    h3.ctl(["sandbox", "create", "--network", "ovr", &sb])
        .expect_ok("a sandbox on h3");
    let mac_of = |sb: &str| {
        let link = h3.exec(sb, &["ip", "-o", "link", "show", "eth0"]).stdout;
        link.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .expect("eth0's MAC")
            .to_string()
    };
    let mac = mac_of(&sb);
    for h in [&h1, &h2] {
        wait_for("h3's endpoint known", Duration::from_secs(10), || {
            h.ctl(["fdb", "ovr"]).stdout.contains(&mac)
        });
    }
    let sync_failed = |h: &Host| {
        json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"))["Cluster"]["SyncFailed"]
            .as_u64()
            .unwrap_or(0)
    };
    let failed_before = sync_failed(&h3);
    // An encrypted network too: every pair holds its keys.
    h1.ctl([
        "network",
        "create",
        "-d",
        "overlay",
        "-o",
        "encrypted",
        "--subnet",
        "10.73.0.0/24",
        "ovs",
    ])
    .expect_ok("an encrypted network");
    wait_for("keys between every pair", Duration::from_secs(15), || {
        [&h1, &h2, &h3].iter().all(|h| count(&esp(h), "SasOut") == 2)
    });
    let installed = count(&esp(&h1), "SasInstalled");

    // Another CA's revocation is refused, and changes nothing.
    let other = f.0.credentials("other");
    let refused = h1.ctl(["cluster", "revoke", "h3", "--ca", other.to_str().unwrap()]);
    assert!(
        refused
            .expect_err("another CA's revocation")
            .contains("the revocation of h3 was not signed by this cluster's CA"),
        "{}",
        refused.stderr
    );
    assert!(peers(&h2).iter().any(|(n, s)| n == "h3" && s == "alive"));

    let ca = f.0.credentials("ca");
    let out = h1.ctl(["cluster", "revoke", "h3", "--ca", ca.to_str().unwrap()]);
    assert!(out.expect_ok("revoke").contains("h3 revoked"), "{}", out.stdout);
    let cut = wait_for(
        "h3 cut off and its endpoint gone everywhere",
        Duration::from_secs(10),
        || {
            [&h1, &h2].iter().all(|h| {
                peers(h).iter().any(|(n, s)| n == "h3" && s == "revoked")
                    && !h.ctl(["fdb", "ovr"]).stdout.contains(&mac)
            })
        },
    );
    eprintln!("h3 cut off everywhere {cut:?} after its revocation");
    // Its sealed tunnels' keys are gone from the others, and the others' pair has new ones.
    wait_for("h3's keys dropped and h1-h2's renewed", Duration::from_secs(10), || {
        let e = esp(&h1);
        count(&e, "SasOut") == 1 && count(&e, "SasInstalled") >= installed + 2 && count(&esp(&h2), "SasOut") == 1
    });
    // Its anti-entropy handshakes fail (no session is resumed), once it tries one.
    wait_for("h3's exchanges refused", Duration::from_secs(45), || {
        sync_failed(&h3) > failed_before
    });
    // What it writes now reaches no one.
    let late = h3.name("r4");
    h3.ctl(["sandbox", "create", "--network", "ovr", &late])
        .expect_ok("another sandbox on h3");
    let late_mac = mac_of(&late);
    std::thread::sleep(Duration::from_secs(3));
    let seen: Vec<String> = [&h1, &h2].iter().map(|h| h.ctl(["fdb", "ovr"]).stdout).collect();
    assert!(
        seen.iter().all(|fdb| !fdb.contains(&mac) && !fdb.contains(&late_mac)),
        "{seen:?}"
    );
    assert!(peers(&h2).iter().any(|(n, s)| n == "h3" && s == "revoked"));
    let ignored = |h: &Host| {
        json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"))["Cluster"]["GossipRevoked"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(ignored(&h1) + ignored(&h2) > 0, "h3's messages are counted as ignored");
    // A host that restarts with no other to hear from still refuses h3: it kept the
    // revocation.
    h1.kill9();
    h2.restart();
    wait_for("h2 still refuses h3 after a restart", Duration::from_secs(10), || {
        peers(&h2).iter().any(|(n, s)| n == "h3" && s == "revoked")
    });
}

/// The sealed tunnels' part of host `h`'s statistics.
fn esp(h: &Host) -> serde_json::Value {
    json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"))["Vxlan"]["Esp"].clone()
}

fn count(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn an_encrypted_network_seals_every_frame_and_renews_its_keys() {
    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric::certified("xe", 91, &["h1", "h2"]);
    let rekey = ["--rekey-interval", "2s"];
    let (h1, h2) = (f.start_with(1, "h1", &rekey), f.start_with(2, "h2", &rekey));
    wait_for("the two hosts meet", Duration::from_secs(20), || {
        peers(&h1).iter().filter(|(_, s)| s == "alive").count() == 2
    });
    // Docker's spelling: `-o encrypted`, no value.
    h1.ctl([
        "network",
        "create",
        "-d",
        "overlay",
        "-o",
        "encrypted",
        "--subnet",
        "10.71.0.0/24",
        "sec",
    ])
    .expect_ok("create");
    let net = json(h1.ctl(["network", "inspect", "sec"]).expect_ok("inspect"));
    assert_eq!(net[0]["Options"]["encrypted"], "", "{net}");
    let vtep = h1.ctl(["network", "vtep", "add", "sec", "10.91.0.9"]);
    assert!(
        vtep.expect_err("a static VTEP on an encrypted network")
            .contains("network sec is encrypted: a static VTEP cannot seal its frames"),
        "{}",
        vtep.stderr
    );
    assert_eq!(esp(&h1)["Address"], "10.91.0.1:4500");
    wait_for("sec on h2", Duration::from_secs(10), || {
        h2.ctl(["network", "inspect", "sec"]).ok()
    });
    let (a, b) = (h1.name("a"), h2.name("b"));
    h1.ctl(["sandbox", "create", "--network", "sec", &a]).expect_ok("a");
    h2.ctl(["sandbox", "create", "--network", "sec", &b]).expect_ok("b");
    let b_ip = h2.exec(&b, &["ip", "-o", "-4", "addr", "show", "eth0"]).stdout;
    let b_ip = b_ip
        .split_whitespace()
        .nth(3)
        .and_then(|c| c.split('/').next())
        .expect("b's address");
    let b_ip = b_ip.to_string();
    let link = h1.exec(&a, &["ip", "link", "show", "eth0"]).stdout;
    assert!(
        link.contains("mtu 1400 "),
        "room for ESP under a 1500-byte underlay: {link}"
    );
    wait_for("keys on both hosts", Duration::from_secs(10), || {
        [&h1, &h2].iter().all(|h| count(&esp(h), "SasOut") == 1)
    });
    wait_for("a reaches b", Duration::from_secs(10), || {
        h1.exec(&a, &["ping", "-c", "1", "-W", "1", &b_ip]).ok()
    });
    assert!(h2.exec(&b, &["ping", "-c", "1", "-W", "2", "10.71.0.2"]).ok(), "b to a");

    // On the wire: ESP in UDP only; tshark finds neither VXLAN nor the inner ICMP.
    let file = std::env::temp_dir().join(format!("{}-sealed.pcap", f.0.underlay.ns()));
    let path = file.to_str().unwrap().to_string();
    let dump = dump_underlay(&f, 4, &["-w", &path, "udp"]);
    assert!(h1.exec(&a, &["ping", "-c", "3", "-i", "0.2", "-W", "1", &b_ip]).ok());
    dump.wait_with_output().expect("tcpdump");
    let tshark = |filter: &str| {
        let o = run("tshark", ["-r", &path, "-Y", filter]);
        o.stdout.lines().count()
    };
    let (sealed, vxlan, icmp) = (tshark("esp"), tshark("vxlan"), tshark("icmp"));
    let _ = std::fs::remove_file(&file);
    assert!(sealed >= 6, "the pings crossed as ESP: {sealed} datagrams");
    assert_eq!((vxlan, icmp), (0, 0), "no VXLAN and no inner frame on the wire");

    // A captured datagram replayed, then tampered with, then with an SPI of no SA, and a
    // VXLAN datagram in clear on the network's VNI from h2's address: all counted, none taken.
    let pinger = {
        let (ns, ip) = (b.clone(), "10.71.0.2");
        std::thread::spawn(move || {
            run(
                "ip",
                ["netns", "exec", &ns, "ping", "-c", "10", "-i", "0.2", "-W", "1", ip],
            )
        })
    };
    let frame = capture_frame(&f, "udp dst port 4500 and dst host 10.91.0.1");
    pinger.join().expect("pinger");
    let before = esp(&h1);
    let unsealed = |h: &Host| {
        json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"))["Vxlan"]["RxUnsealed"]
            .as_u64()
            .unwrap_or(0)
    };
    let unsealed_before = unsealed(&h1);
    let u = udp_at(&frame);
    let altered = |at: usize, bytes: &[u8]| {
        let mut t = frame.clone();
        t[at..at + bytes.len()].copy_from_slice(bytes);
        // No UDP checksum (zero; the captured one may be a partial sum left to the device):
        // the kernel passes the datagram on for switchd to judge.
        t[u + 6..u + 8].copy_from_slice(&[0, 0]);
        t
    };
    let underlay = Path::new("/run/netns").join(f.0.underlay.ns());
    testbed::send_raw(&underlay, "br0", altered(u + 6, &[0, 0]));
    testbed::send_raw(&underlay, "br0", altered(u + 12, &0x7fff_ff00u32.to_be_bytes()));
    testbed::send_raw(&underlay, "br0", altered(u + 8, &[0xde, 0xad, 0xbe, 0xef]));
    let vni: u32 = net[0]["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("the VNI");
    let clear = forged_vxlan(&h1, "10.91.0.2", "10.91.0.1", vni, [0x02, 0, 0, 0, 0, 0x99]);
    testbed::send_raw(&underlay, "br0", clear);
    let took = testbed::eventually(5, || {
        let now = esp(&h1);
        let grew = |k: &str| count(&now, k) > count(&before, k);
        grew("RxReplayed") && grew("RxForged") && grew("RxUnknownSpi") && unsealed(&h1) > unsealed_before
    });
    assert!(
        took,
        "the four refused and counted: {before} -> {}, unsealed {unsealed_before} -> {}",
        esp(&h1),
        unsealed(&h1)
    );
    let fdb = h1.ctl(["fdb", "sec"]).stdout;
    assert!(!fdb.contains("02:00:00:00:00:99"), "{fdb}");

    // Keys renewed every 2 s during a TCP transfer: the connection carries every byte, and
    // no frame met a missing key or a retired SA.
    let (e1, e2) = (esp(&h1), esp(&h2));
    let (sent, got) = testbed::tcp_transfer(&b, &a, "10.71.0.2", testbed::Pace::For(Duration::from_secs(7)));
    assert_eq!(got, sent, "every byte arrived");
    let (n1, n2) = (esp(&h1), esp(&h2));
    assert!(
        count(&n1, "SasInstalled") >= count(&e1, "SasInstalled") + 4,
        "two renewals or more during the transfer: {e1} -> {n1}"
    );
    for (was, now) in [(&e1, &n1), (&e2, &n2)] {
        for k in ["TxNoKey", "RxUnknownSpi", "RxForged", "RxReplayed"] {
            assert_eq!(count(now, k), count(was, k), "{k}: {was} -> {now}");
        }
    }
    assert!(count(&n1, "SasIn") <= 3, "old inbound SAs are retired: {n1}");
    eprintln!(
        "sealed transfer: {sent} bytes, {} SAs installed on h1",
        count(&n1, "SasInstalled")
    );
}

#[test]
fn a_dual_stack_overlay_carries_ipv6_across_hosts() {
    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric::certified("x6", 89, &["h1", "h2"]);
    let (h1, h2) = (f.start(1, "h1"), f.start(2, "h2"));
    wait_for("the two hosts meet", Duration::from_secs(20), || {
        peers(&h1).iter().filter(|(_, s)| s == "alive").count() == 2
    });
    h1.ctl([
        "network",
        "create",
        "-d",
        "overlay",
        "--ipv6",
        "--subnet",
        "10.77.0.0/24",
        "--subnet",
        "fd77::/64",
        "ov6",
    ])
    .expect_ok("create");
    wait_for("ov6 on h2", Duration::from_secs(10), || {
        h2.ctl(["network", "inspect", "ov6"]).ok()
    });
    let n = json(h2.ctl(["network", "inspect", "ov6"]).expect_ok("inspect on h2"));
    assert_eq!(n[0]["EnableIPv6"], true, "{n}");
    assert_eq!(n[0]["IPAM"]["Config"][1]["Subnet"], "fd77::/64", "{n}");
    assert_eq!(n[0]["IPAM"]["Config"][1]["Gateway"], "fd77::1", "{n}");
    let (a, b) = (h1.name("a"), h2.name("b"));
    h1.ctl(["sandbox", "create", "--network", "ov6", &a]).expect_ok("a");
    h2.ctl(["sandbox", "create", "--network", "ov6", &b]).expect_ok("b");
    let addrs = |h: &Host, sb: &str| {
        let s = json(h.ctl(["sandbox", "inspect", sb]).expect_ok("sandbox inspect"));
        let e = &s[0]["Networks"][0];
        (
            e["IPAddress"].as_str().unwrap().to_string(),
            e["GlobalIPv6Address"].as_str().unwrap().to_string(),
        )
    };
    let ((a4, a6), (b4, b6)) = (addrs(&h1, &a), addrs(&h2, &b));
    // Each IPv6 address is its IPv4 address's twin: the same offset into the subnet.
    for (v4, v6) in [(&a4, &a6), (&b4, &b6)] {
        let last = v4.rsplit('.').next().unwrap().parse::<u8>().unwrap();
        assert_eq!(*v6, format!("fd77::{last:x}"), "{v4} and {v6}");
    }
    wait_for("a reaches b over IPv6", Duration::from_secs(10), || {
        h1.exec(&a, &["ping", "-c", "1", "-W", "1", &b6]).ok()
    });
    assert!(
        h2.exec(&b, &["ping", "-c", "1", "-W", "2", &a6]).ok(),
        "b to a over IPv6"
    );
    assert!(
        h1.exec(&a, &["ping", "-c", "1", "-W", "2", "fd77::1"]).ok(),
        "a to its anycast gateway"
    );
    assert!(
        h2.exec(&b, &["ping", "-c", "1", "-W", "2", "fd77::1"]).ok(),
        "b to its anycast gateway"
    );
    // h1 answers a's solicitation for b itself, as it answers ARP.
    let t = h1.ctl(["trace", "ov6", "--in", &a, "--frame", &format!("ns={b6}")]);
    let t = t.expect_ok("trace ns").to_string();
    assert!(t.contains("verdict: answered here (neighbour suppression)"), "{t}");
    assert!(
        t.contains(&format!(
            "a neighbour solicitation for {b6}, which lives on another host"
        )),
        "{t}"
    );
    // The embedded DNS on h1 knows b's IPv6 address from its record.
    let aaaa = h1.exec(&a, &["dig", "+short", "+time=2", "+tries=1", "@fd77::1", "AAAA", &b]);
    assert_eq!(aaaa.expect_ok("dig").trim(), b6);
    // Bulk TCP over IPv6 both ways: the sandboxes hand over TCP/IPv6 super-frames, cut into
    // segments before the tunnel and joined again behind it; every byte arrives.
    let mb = 64;
    assert_eq!(testbed::tcp_bulk(&a, &b, &b6, mb), mb << 20, "a to b");
    assert_eq!(testbed::tcp_bulk(&b, &a, &a6, mb), mb << 20, "b to a");
    for (h, sb) in [(&h1, &a), (&h2, &b)] {
        assert_eq!(drops(h, &format!("{sb}/eth0"), "bad_offload"), 0);
    }
    // --ip6 on an overlay network asks for the twin pair.
    let c = h2.name("c");
    h2.ctl(["sandbox", "create", "--network", "ov6", "--ip6", "fd77::c8", &c])
        .expect_ok("c");
    assert_eq!(addrs(&h2, &c), ("10.77.0.200".to_string(), "fd77::c8".to_string()));
}

#[test]
fn a_cluster_runs_over_an_ipv6_underlay_with_a_kernel_vxlan_peer() {
    if !testbed::e2e_allowed("cluster") {
        return;
    }
    let f = Fabric(testbed::Fabric::new6(&prefix("u6"), 94, testbed::bin_dir!()));
    for h in ["h1", "h2", "h3"] {
        f.cert("ca", h);
    }
    let (h1, h2) = (f.start(1, "h1"), f.start(2, "h2"));
    wait_for("the two hosts meet over IPv6", Duration::from_secs(20), || {
        peers(&h1).iter().filter(|(_, s)| s == "alive").count() == 2
    });
    let gossip = run("ip", ["netns", "exec", h1.ns(), "ss", "-Hlun", "sport = :7946"]).stdout;
    assert!(gossip.contains("[fd10:94::1]:7946"), "{gossip}");

    // A plain and an encrypted overlay network; their MTUs leave room for IPv6's header.
    for (name, subnet, extra) in [("o6", "10.94.0.0/24", None), ("s6", "10.94.1.0/24", Some("encrypted"))] {
        let mut args = vec!["network", "create", "-d", "overlay", "--subnet", subnet];
        if let Some(o) = extra {
            args.extend(["-o", o]);
        }
        args.push(name);
        h1.ctl(args).expect_ok("create");
        wait_for("the network on h2", Duration::from_secs(10), || {
            h2.ctl(["network", "inspect", name]).ok()
        });
    }
    let listening = run("ip", ["netns", "exec", h2.ns(), "ss", "-Hlun", "sport = :4789"]).stdout;
    assert!(
        listening.contains("[fd10:94::2]:4789"),
        "VXLAN on the advertise address: {listening}"
    );
    assert_eq!(esp(&h2)["Address"], "[fd10:94::2]:4500");
    let (a, b, sa, sb) = (h1.name("a"), h2.name("b"), h1.name("sa"), h2.name("sb"));
    for (h, sb, net) in [(&h1, &a, "o6"), (&h2, &b, "o6"), (&h1, &sa, "s6"), (&h2, &sb, "s6")] {
        h.ctl(["sandbox", "create", "--network", net, sb]).expect_ok("sandbox");
    }
    let ip = |h: &Host, sb: &str| {
        let s = json(h.ctl(["sandbox", "inspect", sb]).expect_ok("sandbox inspect"));
        s[0]["Networks"][0]["IPAddress"].as_str().unwrap().to_string()
    };
    let link = h1.exec(&a, &["ip", "link", "show", "eth0"]).stdout;
    assert!(link.contains("mtu 1430"), "{link}");
    let link = h1.exec(&sa, &["ip", "link", "show", "eth0"]).stdout;
    assert!(link.contains("mtu 1380"), "{link}");

    // Across hosts in clear VXLAN over IPv6, then sealed as ESP over IPv6.
    let (a_ip, b_ip) = (ip(&h1, &a), ip(&h2, &b));
    wait_for("a reaches b", Duration::from_secs(10), || {
        h1.exec(&a, &["ping", "-c", "1", "-W", "1", &b_ip]).ok()
    });
    assert!(h2.exec(&b, &["ping", "-c", "1", "-W", "2", &a_ip]).ok(), "b to a");
    let mb = 32;
    assert_eq!(testbed::tcp_bulk(&a, &b, &b_ip, mb), mb << 20, "a to b");
    assert_eq!(drops(&h1, &format!("{a}/eth0"), "bad_offload"), 0);
    let sb_ip = ip(&h2, &sb);
    wait_for("sa reaches sb sealed", Duration::from_secs(20), || {
        h1.exec(&sa, &["ping", "-c", "1", "-W", "1", &sb_ip]).ok()
    });
    assert_eq!(testbed::tcp_bulk(&sa, &sb, &sb_ip, mb), mb << 20, "sa to sb, sealed");
    let e = esp(&h2);
    assert!(count(&e, "RxPackets") > 1000, "{e}");
    assert_eq!(count(&e, "RxForged") + count(&e, "RxWrongPeer"), 0, "{e}");

    // The kernel's VXLAN over IPv6 as a static peer of o6 on h1: both ways.
    let k = format!("{}k", f.0.host_prefix(""));
    let _ = run("ip", ["netns", "delete", &k]);
    run("ip", ["netns", "add", &k]).expect_ok("kernel peer namespace");
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = run("ip", ["netns", "delete", &self.0]);
        }
    }
    let _gone = Gone(k.clone());
    f.0.underlay.attach_ns(&k, "fd10:94::9/64");
    let vni = json(h1.ctl(["network", "inspect", "o6"]).expect_ok("inspect"))[0]["Options"]
        ["com.docker.network.driver.overlay.vxlanid_list"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    testbed::kernel_vxlan(&k, vni, "fd10:94::9", "fd10:94::1", Some(1430));
    run("ip", ["-n", &k, "addr", "add", "10.94.0.250/24", "dev", "vx0"]).expect_ok("vx0 address");
    h1.ctl(["network", "vtep", "add", "o6", "fd10:94::9"])
        .expect_ok("vtep add");
    let vteps = json(
        h1.ctl(["network", "vtep", "ls", "o6", "--format", "json"])
            .expect_ok("vtep ls"),
    );
    assert_eq!(vteps[0]["Address"], "[fd10:94::9]:4789", "{vteps}");
    let cap = testbed::Capture::start(&k, "ul0", "ip6 and udp port 4789", 5);
    assert!(
        testbed::eventually(5, || h1.exec(&a, &["ping", "-c", "1", "-W", "1", "10.94.0.250"]).ok()),
        "a to the kernel's VXLAN peer"
    );
    assert!(
        h1.exec(&k, &["ping", "-c", "1", "-W", "2", &a_ip]).ok(),
        "the kernel's VXLAN peer to a"
    );
    let wire = cap.finish();
    assert!(wire.contains("fd10:94::1.") && wire.contains("fd10:94::9."), "{wire}");

    // A host of the other family is refused before it starts, with the reason.
    let dir = f.0.credentials("h3");
    let sock = std::env::temp_dir().join(format!("{}-h3.sock", prefix("u6")));
    let out = run(
        "ip",
        [
            "netns",
            "exec",
            f.0.underlay.ns(),
            testbed::bin_dir!().join("switchd").to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
            "--cluster-dir",
            dir.to_str().unwrap(),
            "--advertise",
            "10.94.9.3",
            "--join",
            "fd10:94::1",
        ],
    );
    assert!(!out.ok(), "a mixed cluster started");
    assert!(
        out.stderr.contains(
            "--join fd10:94::1 is IPv6 ([fd10:94::1]:7946), and --advertise 10.94.9.3 is IPv4: a cluster's underlay is all IPv4 or all IPv6"
        ),
        "{}",
        out.stderr
    );
    assert!(!sock.exists(), "nothing is served");
}
