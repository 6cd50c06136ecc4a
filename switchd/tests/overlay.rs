//! End-to-end: an overlay network on one host with a static VTEP that is the Linux kernel's own
//! VXLAN device in another namespace; pings both ways, the wire carries RFC 7348 VXLAN with the
//! network's VNI, frames of unknown VNIs and peers are counted and dropped, and a restart keeps
//! the peer. Needs root (SWITCH_E2E=require).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testbed::{in_netns, json, ping};

/// A VXLAN datagram from the outside namespace to the host's VXLAN port, carrying a broadcast.
fn send_vxlan(ns: &str, vni: u32) {
    let v = vni.to_be_bytes();
    let mut d = vec![0x08, 0, 0, 0, v[1], v[2], v[3], 0];
    d.extend_from_slice(&[0xff; 6]);
    d.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x08, 0x06]);
    d.resize(8 + 60, 0);
    send_udp(ns, d);
}

/// Sends `datagram` from the outside namespace to the host's VXLAN port.
fn send_udp(ns: &str, datagram: Vec<u8>) {
    in_netns(&Path::new("/run/netns").join(ns), move || {
        let s = std::net::UdpSocket::bind("10.99.0.2:0").unwrap();
        s.send_to(&datagram, "10.99.0.1:4789").unwrap();
    })
    .join()
    .unwrap();
}

#[test]
fn overlay_with_a_kernel_vxlan_peer() {
    let Some(mut h) = testbed::e2e_host!("ov") else { return };
    let k = h.add_outside();
    // The Linux kernel's VXLAN as the peer: VNI 4096 towards the host's underlay address.
    h.add_kernel_vxlan(&k, 4096);
    testbed::run("ip", ["-n", &k, "addr", "add", "10.88.0.100/24", "dev", "vx0"]).expect_ok("vx0 address");

    // Nothing listens for VXLAN before an overlay network exists; then every address does
    // (no cluster, so no advertise address).
    assert_eq!(vxlan_listeners(&h), "", "no VXLAN socket without an overlay network");
    h.ctl(["network", "create", "-d", "overlay", "--subnet", "10.88.0.0/24", "ovl"])
        .expect_ok("overlay network");
    assert_eq!(vxlan_listeners(&h), "*:4789", "one socket for both families");
    let inspect = json(h.ctl(["network", "inspect", "ovl"]).expect_ok("inspect"));
    assert_eq!(inspect[0]["Driver"], "overlay");
    assert_eq!(inspect[0]["Scope"], "global");
    assert_eq!(
        inspect[0]["Options"]["com.docker.network.driver.overlay.vxlanid_list"],
        "4096"
    );
    h.ctl([
        "network",
        "create",
        "-d",
        "overlay",
        "-o",
        "vni=4097",
        "--subnet",
        "10.89.0.0/24",
        "ovl2",
    ])
    .expect_ok("ovl2");
    h.ctl(["network", "vtep", "add", "ovl", "10.99.0.2"])
        .expect_ok("vtep add");
    let err = h.ctl(["network", "vtep", "add", "bridge", "10.99.0.2"]);
    assert!(err
        .expect_err("vtep on bridge")
        .contains("static VTEPs belong to overlay networks"));
    let err = h.ctl(["network", "vtep", "add", "ovl", "10.99.0.2:4789"]);
    assert!(err.expect_err("twice").contains("already a peer"));

    let (s1, s2) = (h.name("s1"), h.name("s2"));
    h.ctl(["sandbox", "create", "--network", "ovl", &s1]).expect_ok("s1");
    h.ctl(["sandbox", "create", "--network", "ovl2", &s2]).expect_ok("s2");
    let link = h.exec(&s1, &["ip", "link", "show", "eth0"]).stdout;
    assert!(link.contains("mtu 1450"), "{link}");
    assert!(ping(&h, &s1, "10.88.0.1"), "the network's gateway on this host");

    // Both ways with the kernel's VXLAN; tshark decodes the wire as VXLAN with VNI 4096.
    let pcap = std::env::temp_dir().join(format!("{}-vxlan.pcap", h.prefix()));
    let dump = Command::new("ip")
        .args([
            "netns", "exec", &k, "timeout", "5", "tcpdump", "-nn", "-i", "eth0", "-c", "4", "-w",
        ])
        .arg(&pcap)
        .args(["udp", "port", "4789"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(500));
    assert!(ping(&h, &s1, "10.88.0.100"), "sandbox to the kernel VXLAN peer");
    let _ = dump.wait_with_output();
    let decoded = testbed::run(
        "tshark",
        [
            "-r",
            pcap.to_str().unwrap(),
            "-Y",
            "vxlan",
            "-T",
            "fields",
            "-e",
            "vxlan.vni",
            "-e",
            "ip.src",
        ],
    );
    let _ = std::fs::remove_file(&pcap);
    let lines: Vec<&str> = decoded.stdout.lines().collect();
    assert!(
        !lines.is_empty(),
        "tshark found no VXLAN: {}{}",
        decoded.stdout,
        decoded.stderr
    );
    assert!(lines.iter().all(|l| l.starts_with("4096\t")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.ends_with("10.99.0.1")) && lines.iter().any(|l| l.ends_with("10.99.0.2")),
        "{lines:?}"
    );
    assert!(
        h.exec(&k, &["ping", "-c", "1", "-W", "2", "10.88.0.2"]).ok(),
        "kernel VXLAN peer to the sandbox"
    );
    assert!(
        !ping(&h, &s2, "10.88.0.100"),
        "another overlay network does not reach the peer"
    );

    let vteps = json(
        h.ctl(["network", "vtep", "ls", "ovl", "--format", "json"])
            .expect_ok("vtep ls"),
    );
    assert_eq!(vteps[0]["Address"], "10.99.0.2:4789");
    assert!(vteps[0]["RxPackets"].as_u64().unwrap() > 0 && vteps[0]["TxPackets"].as_u64().unwrap() > 0);

    // Unknown VNI, and a known VNI from an address that is not its peer: counted, dropped.
    let socket = h.socket();
    let stats = || {
        let s = testbed::run(
            "curl",
            ["-s", "--unix-socket", socket.to_str().unwrap(), "http://x/vxlan"],
        )
        .stdout;
        let v = json(&s);
        (
            v["RxUnknownVni"].as_u64().unwrap(),
            v["RxUnknownVtep"].as_u64().unwrap(),
            v["RxMalformed"].as_u64().unwrap(),
        )
    };
    let (vni0, vtep0, bad0) = stats();
    send_vxlan(&k, 4999);
    send_vxlan(&k, 4097);
    // Not VXLAN: no I flag; and a header with nothing behind it.
    send_udp(&k, vec![0; 8 + 60]);
    send_udp(&k, vec![0x08, 0, 0, 0, 0, 0x10, 0, 0]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(stats(), (vni0 + 1, vtep0 + 1, bad0 + 2));

    // The peer survives a crash of switchd.
    h.kill9();
    h.restart();
    assert!(ping(&h, &s1, "10.88.0.100"), "after restart");
    h.ctl(["network", "vtep", "rm", "ovl", "10.99.0.2"])
        .expect_ok("vtep rm");
    assert!(
        !ping(&h, &s1, "10.88.0.100"),
        "without the peer the kernel VXLAN device is unreachable"
    );
    // The socket goes with the last overlay network, and its counters stay.
    for (sb, net) in [(&s1, "ovl"), (&s2, "ovl2")] {
        h.ctl(["sandbox", "rm", sb]).expect_ok("sandbox rm");
        assert_eq!(vxlan_listeners(&h), "*:4789", "{net} is not the last");
        h.ctl(["network", "rm", net]).expect_ok("network rm");
    }
    assert_eq!(vxlan_listeners(&h), "");
    let stats = json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"));
    assert_eq!(stats["Vxlan"]["Bound"], false, "{stats}");
    assert!(stats["Vxlan"]["RxPackets"].as_u64() > Some(0), "{stats}");
}

/// The local addresses of the UDP sockets on port 4789 in the host's namespace.
fn vxlan_listeners(h: &testbed::Host) -> String {
    let out = testbed::run("ip", ["netns", "exec", h.ns(), "ss", "-Hlun", "sport = :4789"]).stdout;
    let mut at: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().nth(3)).collect();
    at.sort_unstable();
    at.join(" ")
}
