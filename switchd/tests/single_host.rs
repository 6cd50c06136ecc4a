//! End-to-end: the real switchd and switchctl in namespaces this test creates, real ping and
//! tcpdump. Needs root; set SWITCH_E2E=require (as CI does) to fail instead of skipping.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::{json, ping, Host};

fn host_with(tag: &str, args: &[&str]) -> Option<Host> {
    testbed::e2e_host(tag, testbed::bin_dir!(), args)
}

/// `sandbox`'s eth0 port as `switchctl ports` lists it (counters, drops, kind).
fn port_of(h: &Host, sandbox: &str) -> Value {
    let ports = json(h.ctl(["ports", "--format", "json"]).expect_ok("ports"));
    ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Interface"] == format!("{sandbox}/eth0"))
        .unwrap_or_else(|| panic!("{sandbox}'s port in {ports}"))
        .clone()
}

/// Pings until one answer or the deadline; how long it took.
fn ping_within(h: &Host, from: &str, ip: &str, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if h.exec(from, &["ping", "-c", "1", "-W", "1", ip]).ok() {
            return Some(t0.elapsed());
        }
    }
    None
}

fn addr_of(h: &Host, sb: &str, ifname: &str) -> String {
    h.exec(sb, &["ip", "-o", "-4", "addr", "show", ifname])
        .expect_ok("ip addr")
        .to_string()
}

/// Everything a user can see of the state, to compare before and after refused requests.
fn snapshot(h: &Host) -> String {
    let ls = h
        .ctl(["network", "ls", "--no-trunc"])
        .expect_ok("network ls")
        .to_string();
    let ids: Vec<&str> = ls.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    let mut args = vec!["network", "inspect"];
    args.extend(ids);
    let nets = h.ctl(&args).expect_ok("network inspect").to_string();
    let sbs = h
        .ctl(["sandbox", "ls", "--no-trunc"])
        .expect_ok("sandbox ls")
        .to_string();
    format!("{ls}\n{nets}\n{sbs}")
}

#[test]
fn default_networks_and_modes() {
    let Some(h) = testbed::e2e_host!("dm") else { return };
    // network ls: Docker's header and the three built-in rows.
    let ls = h.ctl(["network", "ls"]).expect_ok("network ls").to_string();
    let mut lines = ls.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    );
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    for r in &rows {
        assert!(
            r[0].len() == 12 && r[0].bytes().all(|b| b.is_ascii_hexdigit()),
            "short ID: {r:?}"
        );
    }
    rows.iter_mut().for_each(|r| {
        r.remove(0);
    });
    rows.sort();
    assert_eq!(
        rows,
        [
            ["bridge", "bridge", "local"],
            ["host", "host", "local"],
            ["none", "null", "local"]
        ]
    );

    // A sandbox on the default bridge.
    let vm0 = h.name("vm0");
    let id = h
        .ctl(["sandbox", "create", &vm0])
        .expect_ok("sandbox create")
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    assert!(addr_of(&h, &vm0, "eth0").contains("inet 172.17.0.2/16"));
    let link = h
        .exec(&vm0, &["ip", "link", "show", "eth0"])
        .expect_ok("ip link")
        .to_string();
    assert!(link.contains("link/ether 02:42:ac:11:00:02"), "{link}");
    let routes = h.exec(&vm0, &["ip", "route"]).expect_ok("ip route").to_string();
    assert!(routes.contains("default via 172.17.0.1 dev eth0"), "{routes}");
    assert!(ping(&h, &vm0, "172.17.0.1"), "ping gateway");
    // The host reaches the sandbox through the gateway interface.
    assert!(h.exec(h.ns(), &["ping", "-c", "1", "-W", "1", "172.17.0.2"]).ok());
    // switchctl sandbox exec runs in the namespace too.
    let out = h.ctl(["sandbox", "exec", &vm0, "--", "ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(out.expect_ok("sandbox exec").contains("172.17.0.2/16"));

    // --ip on the default bridge is refused with Docker's message.
    let err = h.ctl(["sandbox", "create", "--ip", "172.17.0.50", &h.name("vmx")]);
    assert!(err
        .expect_err("--ip on bridge")
        .contains("user-specified IP address is supported on user-defined networks only"));

    // host mode: switchd's namespace with the gateway interface.
    let hostsb = h.name("hostsb");
    h.ctl(["sandbox", "create", "--network", "host", &hostsb])
        .expect_ok("host sandbox");
    let links = h.exec(&hostsb, &["ip", "-o", "link"]).expect_ok("ip link").to_string();
    assert!(links.contains("switch0"), "{links}");

    // none: loopback only.
    let nonesb = h.name("nonesb");
    h.ctl(["sandbox", "create", "--network", "none", &nonesb])
        .expect_ok("none sandbox");
    let links = h.exec(&nonesb, &["ip", "-o", "link"]).expect_ok("ip link").to_string();
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");

    // container: mode shares vm0's namespace; vm0 cannot go while it is joined.
    let side = h.name("side");
    h.ctl(["sandbox", "create", "--network", &format!("container:{vm0}"), &side])
        .expect_ok("container mode");
    assert!(addr_of(&h, &side, "eth0").contains("172.17.0.2/16"));
    let err = h.ctl(["sandbox", "rm", &vm0]);
    assert!(err
        .expect_err("rm shared")
        .contains(&format!("shares its network namespace with {side}")));

    // network inspect bridge lists the sandboxes.
    let bridge = json(h.ctl(["network", "inspect", "bridge"]).expect_ok("inspect"));
    let c = &bridge[0]["Containers"][&id];
    assert_eq!(c["Name"], vm0.as_str());
    assert_eq!(c["IPv4Address"], "172.17.0.2/16");
    assert_eq!(c["MacAddress"], "02:42:ac:11:00:02");
    assert_eq!(bridge[0]["IPAM"]["Config"][0]["Subnet"], "172.17.0.0/16");

    for sb in [&side, &vm0, &hostsb, &nonesb] {
        h.ctl(["sandbox", "rm", sb]).expect_ok("sandbox rm");
        assert!(!Path::new("/run/netns").join(sb).exists(), "{sb} namespace left behind");
    }
    assert!(!h.ctl(["network", "rm", "bridge"]).ok());
}

#[test]
fn user_networks_isolation_connect_and_restart() {
    let Some(mut h) = testbed::e2e_host!("un") else { return };
    let (vm1, vm2, vm3) = (h.name("vm1"), h.name("vm2"), h.name("vm3"));
    let id1 = h
        .ctl(["network", "create", "my_net1"])
        .expect_ok("create my_net1")
        .trim()
        .to_string();
    assert!(id1.len() == 64 && id1.bytes().all(|b| b.is_ascii_hexdigit()), "{id1}");
    h.ctl([
        "network",
        "create",
        "--subnet",
        "192.168.0.0/24",
        "--gateway",
        "192.168.0.1",
        "my_net2",
    ])
    .expect_ok("create my_net2");
    let n1 = json(h.ctl(["network", "inspect", "my_net1"]).expect_ok("inspect"));
    assert_eq!(n1[0]["Id"], id1.as_str());
    assert_eq!(n1[0]["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
    assert_eq!(n1[0]["IPAM"]["Config"][0]["Gateway"], "172.18.0.1");
    assert_eq!(n1[0]["Driver"], "bridge");
    assert_eq!(n1[0]["Scope"], "local");
    for key in [
        "Created",
        "EnableIPv4",
        "EnableIPv6",
        "Internal",
        "Attachable",
        "Ingress",
        "ConfigFrom",
        "ConfigOnly",
        "Options",
        "Labels",
    ] {
        assert!(n1[0].get(key).is_some(), "inspect lacks {key}");
    }
    let n2 = json(h.ctl(["network", "inspect", "my_net2"]).expect_ok("inspect"));
    assert_eq!(n2[0]["IPAM"]["Config"][0]["Subnet"], "192.168.0.0/24");
    assert_eq!(n2[0]["IPAM"]["Config"][0]["Gateway"], "192.168.0.1");

    h.ctl([
        "sandbox",
        "create",
        "--network",
        "my_net2",
        "--ip",
        "192.168.0.10",
        &vm1,
    ])
    .expect_ok("vm1");
    h.ctl([
        "sandbox",
        "create",
        "--network",
        "my_net2",
        "--ip",
        "192.168.0.20",
        &vm2,
    ])
    .expect_ok("vm2");
    h.ctl(["sandbox", "create", "--network", "my_net1", &vm3])
        .expect_ok("vm3");
    assert!(
        ping(&h, &vm1, "192.168.0.20") && ping(&h, &vm2, "192.168.0.10"),
        "vm1 and vm2 reach each other"
    );
    let n2 = json(h.ctl(["network", "inspect", "my_net2"]).expect_ok("inspect"));
    let members: Vec<(String, String)> = n2[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| {
            (
                c["Name"].as_str().unwrap().to_string(),
                c["IPv4Address"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        members.contains(&(vm1.clone(), "192.168.0.10/24".into())),
        "{members:?}"
    );
    assert!(addr_of(&h, &vm3, "eth0").contains("inet 172.18.0.2/16"));

    // Isolation: vm3 (my_net1) aims frames straight at vm1's MAC and IP; none arrives, while
    // vm2's frames (same network as vm1) do arrive on the same capture.
    let mac3 = "02:42:ac:12:00:02";
    let mac2 = "02:42:c0:a8:00:14";
    h.exec(&vm3, &["ip", "route", "add", "192.168.0.0/24", "dev", "eth0"])
        .expect_ok("route");
    h.exec(
        &vm3,
        &[
            "ip",
            "neigh",
            "add",
            "192.168.0.10",
            "lladdr",
            "02:42:c0:a8:00:0a",
            "dev",
            "eth0",
        ],
    )
    .expect_ok("neigh");
    let filter = format!("ether src {mac3} or ether src {mac2}");
    let mut dump = Command::new("ip")
        .args([
            "netns", "exec", &vm1, "timeout", "6", "tcpdump", "-i", "eth0", "-nn", "-e", "-l", &filter,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    let mut err = BufReader::new(dump.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on eth0") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "tcpdump ended before listening");
    }
    assert!(!ping(&h, &vm3, "192.168.0.10"), "vm3 must not reach vm1");
    h.exec(&vm3, &["ping", "-c", "2", "-i", "0.2", "-b", "172.18.255.255"]);
    assert!(ping(&h, &vm2, "192.168.0.10"));
    let mut captured = String::new();
    dump.stdout.take().unwrap().read_to_string(&mut captured).unwrap();
    let _ = dump.wait();
    assert!(
        !captured.contains(mac3),
        "vm1 saw frames of vm3 from another network:\n{captured}"
    );
    assert!(
        captured.contains(mac2),
        "control: vm1 should have seen vm2's frames:\n{captured}"
    );
    h.exec(&vm3, &["ip", "route", "del", "192.168.0.0/24"])
        .expect_ok("route del");
    h.exec(&vm3, &["ip", "neigh", "flush", "all"]);

    // network connect gives vm3 eth1 on my_net2; disconnect takes it away.
    h.ctl(["network", "connect", "my_net2", &vm3]).expect_ok("connect");
    assert!(addr_of(&h, &vm3, "eth1").contains("inet 192.168.0.2/24"));
    assert!(ping(&h, &vm3, "192.168.0.10") && ping(&h, &vm3, "192.168.0.20"));
    let err = h.ctl(["network", "connect", "my_net2", &vm3]);
    assert!(err
        .expect_err("connect twice")
        .contains("is already connected to network my_net2"));
    h.ctl(["network", "disconnect", "my_net2", &vm3])
        .expect_ok("disconnect");
    assert!(!h.exec(&vm3, &["ip", "link", "show", "eth1"]).ok(), "eth1 must be gone");
    assert!(!ping(&h, &vm3, "192.168.0.10"));
    // --mac, as Docker's network connect: the interface takes it, and traffic flows.
    h.ctl(["network", "connect", "--mac", "02:00:00:00:aa:01", "my_net2", &vm3])
        .expect_ok("connect --mac");
    let link = h.exec(&vm3, &["ip", "link", "show", "eth1"]).stdout;
    assert!(link.contains("link/ether 02:00:00:00:aa:01"), "{link}");
    assert!(ping(&h, &vm3, "192.168.0.10"));
    h.ctl(["network", "disconnect", "my_net2", &vm3])
        .expect_ok("disconnect");
    let bad = h.ctl(["network", "connect", "--mac", "01:00:00:00:00:01", "my_net2", &vm3]);
    assert!(
        bad.expect_err("multicast MAC").contains("non-zero unicast"),
        "{}",
        bad.stderr
    );

    // Bad input: refused with a clear message, non-zero exit, nothing changed.
    let before = snapshot(&h);
    let xvm = h.name("x-vm");
    let bad: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["network", "create", "--subnet", "10.0.0.0/33", "x1"],
            "prefix length must be 0-32",
        ),
        (
            vec!["network", "create", "--subnet", "banana", "x1"],
            "invalid subnet \"banana\"",
        ),
        (
            vec![
                "network",
                "create",
                "--subnet",
                "10.9.0.0/24",
                "--gateway",
                "10.9.1.1",
                "x1",
            ],
            "no matching subnet for gateway 10.9.1.1",
        ),
        (
            vec!["network", "create", "--subnet", "192.168.0.128/25", "x1"],
            "overlaps network my_net2",
        ),
        (
            vec!["network", "create", "my_net1"],
            "network with name my_net1 already exists",
        ),
        (vec!["network", "create", "-d", "nonsense", "x1"], "unknown driver"),
        (vec!["network", "create", "-o", "nope=1", "x1"], "unknown option"),
        (
            vec!["sandbox", "create", "--network", "my_net2", "--ip", "10.1.1.1", &xvm],
            "not in the network's subnet",
        ),
        (
            vec![
                "sandbox",
                "create",
                "--network",
                "my_net2",
                "--ip",
                "192.168.0.10",
                &xvm,
            ],
            "already in use on network my_net2",
        ),
        (
            vec!["sandbox", "create", "--network", "nosuchnet", &xvm],
            "network nosuchnet not found",
        ),
        (
            vec![
                "sandbox",
                "create",
                "--mac",
                "01:00:5e:00:00:01",
                "--network",
                "my_net2",
                &xvm,
            ],
            "invalid MAC address",
        ),
        (vec!["sandbox", "create", &vm1], "is already in use"),
        (
            vec!["network", "connect", "my_net2", "ghost"],
            "sandbox ghost not found",
        ),
        (vec!["network", "connect", "my_net2", &vm1], "is already connected"),
        (vec!["network", "rm", "my_net2"], "has active endpoints"),
        (vec!["network", "rm", "bridge"], "pre-defined network"),
        (vec!["network", "disconnect", "my_net1", &vm1], "is not connected"),
        (vec!["sandbox", "rm", "ghost"], "sandbox ghost not found"),
    ];
    for (args, want) in bad {
        let out = h.ctl(&args);
        let msg = out.expect_err(&args.join(" "));
        assert!(
            msg.contains(want),
            "`{}` said {msg:?}, expected it to mention {want:?}",
            args.join(" ")
        );
        assert_eq!(msg.trim().lines().count(), 1, "one sentence: {msg}");
    }
    let rm = h.ctl(["network", "rm", "my_net2"]);
    let msg = rm.expect_err("rm in use");
    assert!(msg.contains(&vm1) && msg.contains(&vm2), "{msg}");
    assert_eq!(snapshot(&h), before, "refused requests changed state");
    assert!(!Path::new("/run/netns").join(&xvm).exists());

    // kill -9 and restart: same state, traffic flows again within 2 s.
    h.kill9();
    h.restart();
    assert_eq!(snapshot(&h), before, "state changed across kill -9");
    let took =
        ping_within(&h, &vm1, "192.168.0.20", Duration::from_secs(2)).expect("traffic flows within 2 s of restart");
    eprintln!("traffic flowed {took:?} after restart");
    assert!(addr_of(&h, &vm1, "eth0").contains("192.168.0.10/24"));
    assert!(ping(&h, &vm3, "172.18.0.1"));

    for sb in [&vm1, &vm2, &vm3] {
        h.ctl(["sandbox", "rm", sb]).expect_ok("rm");
    }
    let out = h.ctl(["network", "prune", "-f"]);
    let pruned = out.expect_ok("prune");
    assert!(pruned.contains("my_net1") && pruned.contains("my_net2"), "{pruned}");
    assert_eq!(h.ctl(["network", "ls", "-q"]).expect_ok("ls").lines().count(), 3);
}

#[test]
fn tcp_super_frames_cross_the_switch_untouched() {
    let Some(h) = testbed::e2e_host!("so") else { return };
    let (a, b) = (h.name("a"), h.name("b"));
    h.ctl(["sandbox", "create", &a]).expect_ok("a");
    h.ctl(["sandbox", "create", &b]).expect_ok("b");
    assert_eq!(testbed::tcp_bulk(&a, &b, "172.17.0.3", 32), 32 << 20);
    let pa = port_of(&h, &a);
    let avg = pa["RxBytes"].as_u64().unwrap() / pa["RxPackets"].as_u64().unwrap();
    assert!(
        avg > 1514,
        "sender's frames average {avg} bytes: offloaded super-frames did not pass"
    );
    assert_eq!(pa["Drops"].as_object().unwrap().len(), 0, "{pa}");
}

#[test]
fn a_burst_of_small_frames_arrives_whole_and_in_order() {
    // The dataplane reads up to 64 frames from a port and writes them out together at the
    // end of the burst (io_uring), or one by one with --batch-writes off: either way a quick
    // train of datagrams must come out complete, in order, and counted. (The first host also
    // polls after traffic, the second does not, as by default; the stats must say so.)
    let on = &["--poll-us", "50"][..];
    for (tag, args, batched) in [("bu", on, true), ("bo", &["--batch-writes", "off"][..], false)] {
        let Some(h) = host_with(tag, args) else { return };
        burst(&h);
        // The stats say how the frames went out.
        let s = json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"));
        let w = &s["PortWrites"];
        assert_eq!(w["Batched"], batched, "{w}");
        if batched {
            assert!(
                w["Frames"].as_u64() >= Some(600) && w["Bursts"].as_u64() >= Some(1),
                "{w}"
            );
        } else {
            assert_eq!((w["Frames"].as_u64(), w["Bursts"].as_u64()), (Some(0), Some(0)), "{w}");
        }
        let p = &s["Polling"];
        if batched {
            assert_eq!(p["Micros"], 50, "{p}");
            assert!(p["Rounds"].as_u64() >= Some(1), "{p}");
            // Asking for stats is no traffic: it opens no polling window.
            let again = json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"));
            assert_eq!(again["Polling"]["Rounds"], p["Rounds"], "{again}");
        } else {
            assert_eq!((p["Micros"].as_u64(), p["Rounds"].as_u64()), (Some(0), Some(0)), "{p}");
        }
        let text = h.ctl(["stats"]).expect_ok("stats").to_string();
        let lines = if batched {
            [
                "port writes: batched (io_uring), ",
                "polling after traffic: 50 µs, after ",
            ]
        } else {
            ["port writes: one write per frame", "polling after traffic: off"]
        };
        for line in lines {
            assert!(text.contains(line), "{text}");
        }
    }
}

fn burst(h: &Host) {
    let (a, b) = (h.name("a"), h.name("b"));
    h.ctl(["sandbox", "create", &a]).expect_ok("a");
    h.ctl(["sandbox", "create", &b]).expect_ok("b");
    assert!(ping(h, &a, "172.17.0.3") && ping(h, &b, "172.17.0.2"));
    const N: u32 = 600;
    let ns = |sb: &str| Path::new("/run/netns").join(sb);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = testbed::in_netns(&ns(&b), move || {
        let s = std::net::UdpSocket::bind("172.17.0.3:7001").expect("bind");
        let big = 8 << 20;
        // SAFETY: setsockopt on a live socket with a valid int.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const big).cast(),
                4,
            );
        }
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = s.recv(&mut buf) {
            got.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
            if n != 64 || got.len() == N as usize {
                break;
            }
        }
        got
    });
    ready_rx.recv().unwrap();
    let tx0 = port_of(h, &b)["TxPackets"].as_u64().unwrap();
    testbed::in_netns(&ns(&a), move || {
        let s = std::net::UdpSocket::bind("172.17.0.2:0").expect("bind");
        for i in 0..N {
            let mut d = [0u8; 64];
            d[..4].copy_from_slice(&i.to_be_bytes());
            s.send_to(&d, "172.17.0.3:7001").expect("send");
        }
    })
    .join()
    .unwrap();
    let got = receiver.join().unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "datagrams lost or out of order");
    let pb = port_of(h, &b);
    let sent = pb["TxPackets"].as_u64().unwrap() - tx0;
    assert!(sent >= u64::from(N), "b's port counted {sent} frames out");
    assert!(pb["Drops"].get("tx_failed").is_none(), "{pb}");
}

#[test]
fn api_speaks_json_errors_and_socket_is_root_only() {
    let Some(h) = testbed::e2e_host!("api") else { return };
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(h.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let raw = |req: &str| {
        let mut s = std::os::unix::net::UnixStream::connect(h.socket()).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let r = raw("GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert!(r.contains("{\"message\":\"page not found"), "{r}");
    let body = "{not json";
    let r = raw(&format!(
        "POST /networks/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("invalid JSON body"), "{r}");
    let body = r#"{"Name":"n1","Bogus":1}"#;
    let r = raw(&format!(
        "POST /v1.47/networks/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("unknown field `Bogus`"),
        "{r}"
    );
    let r = raw("PUT /networks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    assert_eq!(h.ctl(["network", "ls", "-q"]).expect_ok("ls").lines().count(), 3);
}

/// Bulk TCP from `from` to `to_ip:port` (in `to`'s namespace); returns bytes received.
#[test]
fn veth_ports_through_af_packet() {
    let Some(mut h) = testbed::e2e_host!("ve") else { return };
    let (t, v) = (h.name("t"), h.name("v"));
    h.ctl(["network", "create", "--subnet", "10.77.0.0/24", "vnet"])
        .expect_ok("network");
    h.ctl(["sandbox", "create", "--network", "vnet", &t])
        .expect_ok("tap sandbox");
    h.ctl(["sandbox", "create", "--network", "vnet", "--port-kind", "veth", &v])
        .expect_ok("veth sandbox");
    let link = h
        .exec(&v, &["ip", "-d", "link", "show", "eth0"])
        .expect_ok("ip link")
        .to_string();
    assert!(link.contains("veth") && link.contains("02:42:0a:4d:00:03"), "{link}");
    assert!(addr_of(&h, &v, "eth0").contains("10.77.0.3/24"));
    let sb = json(h.ctl(["sandbox", "inspect", &v]).expect_ok("inspect"));
    assert_eq!(sb[0]["Networks"][0]["PortKind"], "veth");
    let ep = sb[0]["Networks"][0]["EndpointID"].as_str().unwrap().to_string();
    let host_end = format!("sv{}", &ep[..12]);
    assert!(
        h.exec(h.ns(), &["ip", "link", "show", &host_end]).ok(),
        "host end {host_end} in switchd's namespace"
    );
    assert!(ping(&h, &t, "10.77.0.3") && ping(&h, &v, "10.77.0.2") && ping(&h, &v, "10.77.0.1"));

    // Offloaded super-frames from the veth side cross to the TAP side.
    assert_eq!(testbed::tcp_bulk(&v, &t, "10.77.0.2", 64), 64 << 20);
    let pv = port_of(&h, &v);
    assert_eq!(pv["Kind"], "veth");
    let avg = pv["RxBytes"].as_u64().unwrap() / pv["RxPackets"].as_u64().unwrap();
    assert!(
        avg > 1514,
        "veth frames average {avg} bytes: offloaded super-frames did not pass"
    );

    h.kill9();
    h.restart();
    ping_within(&h, &v, "10.77.0.2", Duration::from_secs(2)).expect("veth port works again after restart");
    h.ctl(["sandbox", "rm", &v]).expect_ok("rm");
    assert!(
        !h.exec(h.ns(), &["ip", "link", "show", &host_end]).ok(),
        "host end {host_end} must be gone"
    );
    let err = h.ctl(["sandbox", "create", "--network", "host", "--port-kind", "veth", &v]);
    assert!(err
        .expect_err("port kind with host")
        .contains("--port-kind cannot be used"));
}

#[test]
fn adopted_namespace_from_another_runtime() {
    let Some(h) = testbed::e2e_host!("ad") else { return };
    let (theirs, mine) = (h.name("theirs"), h.name("mine"));
    testbed::run("ip", ["netns", "add", &theirs]).expect_ok("runtime's namespace");
    let path = format!("/run/netns/{theirs}");
    let err = h.ctl(["sandbox", "create", "--netns", "/tmp", &mine]);
    assert!(err
        .expect_err("not a namespace")
        .contains("--netns /tmp is not a network namespace"));
    h.ctl(["sandbox", "create", "--netns", &path, &mine]).expect_ok("adopt");
    assert!(addr_of(&h, &theirs, "eth0").contains("172.17.0.2/16"));
    assert!(
        addr_of(&h, &mine, "eth0").contains("172.17.0.2/16"),
        "published under the sandbox name too"
    );
    assert!(ping(&h, &theirs, "172.17.0.1"));
    let sb = json(h.ctl(["sandbox", "inspect", &mine]).expect_ok("inspect"));
    assert_eq!(sb[0]["AdoptedNetns"], path.as_str());
    h.ctl(["sandbox", "rm", &mine]).expect_ok("rm");
    assert!(!Path::new("/run/netns").join(&mine).exists());
    assert!(Path::new(&path).exists(), "the runtime's namespace stays");
    assert!(
        !h.exec(&theirs, &["ip", "link", "show", "eth0"]).ok(),
        "our interface is gone from it"
    );
    testbed::run("ip", ["netns", "delete", &theirs]).expect_ok("delete");
}

#[test]
fn socket_group_opens_the_socket_to_a_group() {
    let Some(h) = host_with("sg", &["--socket-group", "daemon"]) else {
        return;
    };
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(h.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let daemon_gid = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("daemon:x:")
                .and_then(|r| r.split(':').next()?.parse::<u32>().ok())
        })
        .expect("Debian has a daemon group");
    assert_eq!(meta.gid(), daemon_gid);
}

#[test]
fn network_prune_takes_docker_s_filters() {
    let Some(h) = testbed::e2e_host!("prn") else { return };
    for (name, labels) in [
        ("pa", &["env=test"][..]),
        ("pb", &["env=test", "keep"][..]),
        ("pc", &[][..]),
    ] {
        let mut args = vec!["network", "create"];
        for l in labels {
            args.extend(["--label", l]);
        }
        args.push(name);
        h.ctl(args).expect_ok("network create");
    }
    let names = || {
        let ls = h.ctl(["network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"]);
        ls.expect_ok("ls").lines().map(str::to_string).collect::<Vec<_>>()
    };
    // Each label needed, each label! refused.
    let out = h.ctl([
        "network",
        "prune",
        "-f",
        "--filter",
        "label=env=test",
        "--filter",
        "label!=keep",
    ]);
    assert_eq!(out.expect_ok("prune"), "Deleted Networks:\npa\n");
    // Nothing made more than an hour ago.
    assert_eq!(
        h.ctl(["network", "prune", "-f", "--filter", "until=1h"])
            .expect_ok("prune"),
        ""
    );
    assert_eq!(names(), ["pb", "pc"]);
    // Refused by name, and nothing goes.
    for (bad, says) in [
        (
            "colour=red",
            "invalid filter 'colour': network prune takes until, label and label!",
        ),
        ("until=soon", "invalid until \"soon\""),
        ("until", "bad format of filter \"until\""),
    ] {
        let out = h.ctl(["network", "prune", "-f", "--filter", bad]);
        assert!(out.expect_err(bad).contains(says), "{bad}: {}", out.stderr);
    }
    assert_eq!(names(), ["pb", "pc"]);
    // Made before now: both go.
    let out = h.ctl(["network", "prune", "-f", "--filter", "until=0s"]);
    let mut gone: Vec<&str> = out.expect_ok("prune").lines().collect();
    gone.sort_unstable();
    assert_eq!(gone, ["Deleted Networks:", "pb", "pc"]);
    assert!(names().is_empty());
}
