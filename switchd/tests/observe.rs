//! End-to-end: seeing into the switch — `switchctl trace` (each stage's decision for a
//! synthetic frame, nothing sent), `capture` (a port's frames as lines, or a pcapng file that
//! tcpdump reads), `stats`, `fdb`, `ports` with drops by reason, and `switchd --metrics`
//! (Prometheus' text format over HTTP). Real ping, dig, tcpdump and curl. Needs root.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testbed::json;

/// The value of one sample line of a Prometheus exposition.
fn sample(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {line_start} in:\n{text}"))
}

#[test]
fn trace_capture_stats_and_metrics_show_the_switch() {
    let Some(h) = testbed::e2e_host("obs", testbed::bin_dir!(), &["--metrics", "127.0.0.1:9323"]) else {
        return;
    };
    let net = h.name("on");
    h.ctl(["network", "create", "--subnet", "10.84.0.0/24", &net])
        .expect_ok("network create");
    let (a, b) = (h.name("a"), h.name("b"));
    for sb in [&a, &b] {
        h.ctl(["sandbox", "create", "--network", &net, sb])
            .expect_ok("sandbox create");
    }
    let (mac_a, mac_b) = ("02:42:0a:54:00:02", "02:42:0a:54:00:03");
    let a_if = format!("{a}/eth0");

    // trace: a frame to b's (static) address goes to b's port only, and nothing is sent or
    // learned by tracing.
    let ports: Value = json(h.ctl(["ports", "--format", "json"]).expect_ok("ports"));
    let port_of = |label: &str| {
        ports
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Interface"] == label)
            .unwrap_or_else(|| panic!("no port {label} in {ports}"))["Port"]
            .as_u64()
            .unwrap()
    };
    let (pa, pb) = (port_of(&a_if), port_of(&format!("{b}/eth0")));
    let t = json(
        h.ctl([
            "trace",
            &net,
            "--in",
            &a,
            "--frame",
            &format!("dst={mac_b}"),
            "--format",
            "json",
        ])
        .expect_ok("trace"),
    );
    let stages: Vec<&str> = t["Stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["parse", "guard", "learn", "lookup", "isolate", "forward", "output"],
        "{t}"
    );
    assert_eq!(t["InPort"]["Port"].as_u64(), Some(pa));
    assert_eq!(t["Verdict"], format!("forward to port {pb}"));
    assert_eq!(t["OutPorts"][0]["Port"].as_u64(), Some(pb));
    // The same, as text; a broadcast floods to the gateway and b; b's address, any other MAC
    // or another IPv4 source sent from a is spoofing; a frame to itself is a hairpin; a tag is
    // refused on an access port.
    let text = h.ctl(["trace", &net, "--in", &a_if, "--frame", &format!("dst={mac_b}")]);
    assert!(
        text.expect_ok("trace")
            .contains(&format!("lookup   {mac_b} is on port {pb} (static)")),
        "{}",
        text.stdout
    );
    for (frame, verdict) in [
        (String::new(), "flood to ports".to_string()),
        (format!("src={mac_b},dst={mac_a}"), "drop (mac_spoof)".into()),
        (format!("nw_src=10.84.0.99,dst={mac_b}"), "drop (ip_spoof)".into()),
        (format!("dst={mac_a}"), "drop (hairpin)".into()),
        ("vlan=10".into(), "drop (tagged_on_access_port)".into()),
        (
            "src=02:00:00:00:00:09,dst=02:00:00:00:00:0a".into(),
            "drop (mac_spoof)".into(),
        ),
    ] {
        let t = json(
            h.ctl(["trace", &net, "--in", &a, "--frame", &frame, "--format", "json"])
                .expect_ok("trace"),
        );
        assert!(t["Verdict"].as_str().unwrap().starts_with(&verdict), "{frame}: {t}");
    }
    let rx_before = json(h.ctl(["ports", "--format", "json"]).stdout.as_str());
    assert!(
        !h.ctl(["fdb", &net]).stdout.contains("02:00:00:00:00:09"),
        "tracing learned an address"
    );
    assert_eq!(rx_before, ports, "tracing counted frames");
    // Bad requests name the bad value.
    for (args, want) in [
        (vec!["--in", "nope"], "no port \"nope\""),
        (vec!["--in", "switch0"], "is not on network"),
        (
            vec!["--in", &a, "--frame", "colour=red"],
            "unknown frame spec key \"colour\"",
        ),
    ] {
        let mut all = vec!["trace", net.as_str()];
        all.extend(args);
        let out = h.ctl(&all);
        assert!(!out.ok() && out.stderr.contains(want), "{all:?}: {}", out.stderr);
    }

    // capture: a ping from a, seen on b's port as lines with their direction, and on a's
    // port into a pcapng file tcpdump reads.
    let ctl = testbed::bin_dir!().join("switchctl");
    let sock = h.socket();
    let start = |args: &[&str]| {
        Command::new(&ctl)
            .arg("-H")
            .arg(&sock)
            .arg("capture")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchctl capture")
    };
    let file = std::env::temp_dir().join(format!("switch-test-{}-cap.pcapng", h.prefix()));
    let lines = start(&[&b, "-c", "4"]);
    let to_file = start(&[&a_if, "-c", "2", "-w", file.to_str().unwrap()]);
    let to_stdout = start(&[&a_if, "-c", "2", "-w", "-"]);
    std::thread::sleep(Duration::from_millis(500));
    h.exec(&a, &["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.84.0.3"])
        .expect_ok("ping");
    let lines = lines.wait_with_output().expect("capture ends");
    let out = String::from_utf8_lossy(&lines.stdout);
    assert!(
        lines.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&lines.stderr)
    );
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.contains(&format!(
            "out {mac_a} > ff:ff:ff:ff:ff:ff ARP who-has 10.84.0.3 tell 10.84.0.2"
        )),
        "{out}"
    );
    assert!(
        out.contains("in  02:42:0a:54:00:03 > 02:42:0a:54:00:02 ARP 10.84.0.3 is-at 02:42:0a:54:00:03"),
        "{out}"
    );
    assert!(
        out.contains("out 02:42:0a:54:00:02 > 02:42:0a:54:00:03 IPv4 10.84.0.2 > 10.84.0.3 ICMP type 8"),
        "{out}"
    );
    let done = to_file.wait_with_output().expect("capture ends");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    // -w -: the same pcapng on standard output, which tcpdump reads from a pipe.
    let piped = to_stdout.wait_with_output().expect("capture ends");
    assert_eq!(
        String::from_utf8_lossy(&piped.stderr),
        "2 frames written to standard output\n"
    );
    let mut tcpdump = Command::new("tcpdump")
        .args(["-nr", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    std::io::Write::write_all(&mut tcpdump.stdin.take().unwrap(), &piped.stdout).unwrap();
    let from_pipe = tcpdump.wait_with_output().expect("tcpdump");
    assert_eq!(
        String::from_utf8_lossy(&from_pipe.stdout).lines().count(),
        2,
        "{from_pipe:?}"
    );
    let read = Command::new("tcpdump").arg("-nr").arg(&file).output().expect("tcpdump");
    let read_out = String::from_utf8_lossy(&read.stdout).to_string();
    let _ = std::fs::remove_file(&file);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    assert_eq!(read_out.lines().count(), 2, "{read_out}");
    assert!(
        read_out.contains("ARP, Request who-has 10.84.0.3 tell 10.84.0.2"),
        "{read_out}"
    );
    let out = h.ctl(["capture", "nope", "-c", "1"]);
    assert!(!out.ok() && out.stderr.contains("no port \"nope\""), "{}", out.stderr);

    // Drops by reason: a tagged frame from a's container is dropped and counted.
    let mut tagged = vec![0xff; 6];
    tagged.extend_from_slice(&[0x02, 0x42, 0x0a, 0x54, 0x00, 0x02, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00]);
    tagged.resize(64, 0);
    testbed::send_raw(&Path::new("/run/netns").join(&a), "eth0", tagged);
    std::thread::sleep(Duration::from_millis(200));
    let p = h.ctl(["ports"]);
    assert!(p.expect_ok("ports").contains("tagged_on_access_port=1"), "{}", p.stdout);
    // DNS: one name answered here, one sent upstream (nobody answers: SERVFAIL).
    let dig = h.exec(&a, &["dig", "+short", "+tries=1", "+time=2", "@10.84.0.1", &b]);
    assert_eq!(dig.expect_ok("dig").trim(), "10.84.0.3");
    h.exec(&a, &["dig", "+tries=1", "+time=5", "@10.84.0.1", "nothing.invalid"]);

    // stats: the same counters, switch-wide.
    let s = json(h.ctl(["stats", "--format", "json"]).expect_ok("stats"));
    let on_net = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x["Network"] == net.as_str())
            .cloned()
            .unwrap()
    };
    let mac = on_net(&s["MacTable"]);
    assert_eq!(mac["Static"], 3, "{s}");
    let dns = on_net(&s["Dns"]);
    assert_eq!(
        (dns["Queries"].as_u64(), dns["Answered"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(
        (dns["Forwarded"].as_u64(), dns["Failures"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let text = h.ctl(["stats"]);
    let text = text.expect_ok("stats").to_string();
    // a's own row, and the total, count the drop.
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("tagged_on_access_port=1")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0].contains(&a_if) && rows[1].starts_with("total"), "{text}");

    // metrics: the same numbers in Prometheus' text format.
    let m = h.exec(h.ns(), &["curl", "-sf", "http://127.0.0.1:9323/metrics"]);
    let m = m.expect_ok("curl /metrics").to_string();
    let labels = format!("{{port=\"{pa}\",interface=\"{a_if}\",network=\"{net}\",reason=\"tagged_on_access_port\"}}");
    assert_eq!(sample(&m, &format!("switchd_port_drops_total{labels}")), 1);
    assert!(sample(&m, &format!("switchd_port_rx_packets_total{{port=\"{pa}\"")) >= 7);
    assert_eq!(
        sample(
            &m,
            &format!("switchd_mac_table_entries{{network=\"{net}\",type=\"static\"}}")
        ),
        3
    );
    assert_eq!(
        sample(&m, &format!("switchd_dns_failures_total{{network=\"{net}\"}}")),
        1
    );
    assert_eq!(sample(&m, "switchd_sandboxes "), 2);
    let other = h.exec(
        h.ns(),
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:9323/",
        ],
    );
    assert_eq!(other.stdout, "404");

    // A capture ends when its port goes (its number may be reused by another port).
    let mut open_ended = start(&[&b]);
    std::thread::sleep(Duration::from_millis(300));
    h.ctl(["sandbox", "rm", &b]).expect_ok("sandbox rm");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = open_ended.try_wait().expect("capture status") {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = open_ended.kill();
            let _ = open_ended.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "the capture of a removed port ended: {status:?}"
    );

    // A sandbox on two networks does not say which port: the answer names both.
    let net2 = h.name("on2");
    h.ctl(["network", "create", "--subnet", "10.85.0.0/24", &net2])
        .expect_ok("network create");
    h.ctl(["network", "connect", &net2, &a]).expect_ok("connect");
    let out = h.ctl(["capture", &a, "-c", "1"]);
    let want = format!("sandbox {a} has 2 interfaces: name one of {a}/eth0, {a}/eth1");
    assert!(!out.ok() && out.stderr.contains(&want), "{}", out.stderr);
}

#[test]
fn versions_and_logs_read_as_an_operator_expects() {
    let Some(mut h) = testbed::e2e_host("logv", testbed::bin_dir!(), &["--log-format", "json"]) else {
        return;
    };
    // As `docker version`: the client, then the server with its minimum API and kernel.
    let v = h.ctl(["version"]).expect_ok("version").to_string();
    let release = env!("CARGO_PKG_VERSION");
    assert!(
        v.starts_with(&format!(
            "Client:\n Version:          {release}\n API version:      1.0\n"
        )),
        "{v}"
    );
    assert!(v.contains("\nServer: switchd\n"), "{v}");
    assert!(v.contains(" API version:      1.0 (minimum version 1.0)\n"), "{v}");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(v.contains(&format!(" Kernel version:   {}\n", kernel.trim())), "{v}");
    let j = json(h.ctl(["version", "--format", "json"]).expect_ok("version json"));
    assert_eq!(
        (j["Client"]["Version"].as_str(), j["Server"]["ApiVersion"].as_str()),
        (Some(release), Some("1.0")),
        "{j}"
    );
    let d = testbed::run(testbed::bin_dir!().join("switchd"), ["--version"]);
    assert_eq!(d.expect_ok("switchd --version").trim(), format!("switchd {release}"));

    // --log-format json: one object a line, each with its level and message.
    h.ctl(["network", "create", h.name("n").as_str()])
        .expect_ok("network create");
    let log = h.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["fields"]["message"].is_string()),
        "{log}"
    );

    // Text logs to a file carry no colour codes.
    h.stop();
    let _ = std::fs::remove_file(h.socket());
    let text = testbed::Host::start(&testbed::prefix("logt"), testbed::bin_dir!());
    let log = text.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a log file: {log:?}");
    drop(text);
    // Without a server the client still says what it is, and the error why.
    let down = h.ctl(["version"]);
    assert!(!down.ok());
    assert!(
        down.stdout.starts_with("Client:\n") && !down.stdout.contains("Server"),
        "{}",
        down.stdout
    );
}
