//! End-to-end: switchd as a systemd service. The unit passes `systemd-analyze verify`, and
//! switchd tells the service manager it is ready once its API answers, and that it stops, on
//! the socket `$NOTIFY_SOCKET` names (as systemd does for `Type=notify`); the settings file
//! and `SWITCHD_*` variables set its flags, and flags beat them. Needs root.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !testbed::e2e_allowed("unit") {
        return;
    }
    // As installed, but with the binary where this build put it.
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/switchd.service"))
        .unwrap()
        .replace("/usr/bin/switchd", env!("CARGO_BIN_EXE_switchd"));
    assert!(unit.contains("Type=notify"), "{unit}");
    let dir = std::env::temp_dir().join(format!("switchd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchd.service");
    std::fs::write(&path, unit).unwrap();
    let out = testbed::run("systemd-analyze", ["verify", path.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.ok(), "systemd-analyze verify failed: {}{}", out.stdout, out.stderr);
    let said: Vec<&str> = out
        .stderr
        .lines()
        .chain(out.stdout.lines())
        .filter(|l| l.contains("switchd.service"))
        .collect();
    assert!(said.is_empty(), "systemd-analyze has words about the unit: {said:?}");
}

#[test]
fn switchd_says_when_it_is_ready_and_when_it_stops() {
    let Some(mut h) = testbed::e2e_host!("ntf") else { return };
    let path = std::env::temp_dir().join(format!("{}-notify.sock", h.prefix()));
    let _ = std::fs::remove_file(&path);
    let manager = UnixDatagram::bind(&path).unwrap();
    manager.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    h.set_env("NOTIFY_SOCKET", Some(path.to_str().unwrap()));
    h.restart();
    let mut buf = [0u8; 256];
    let n = manager.recv(&mut buf).expect("READY within 10 s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.starts_with("READY=1\n"), "{msg:?}");
    // Ready means served: the API answers.
    h.ctl(["network", "ls"]).expect_ok("the API after READY");
    h.stop();
    let n = manager.recv(&mut buf).expect("STOPPING");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn settings_come_from_flags_then_variables_then_the_file() {
    let Some(mut h) = testbed::e2e_host!("cfg") else { return };
    let file = std::env::temp_dir().join(format!("{}-switchd.toml", h.prefix()));
    std::fs::write(&file, "log-format = \"json\"\n").unwrap();
    let config = format!("--config={}", file.display());
    // The log since the last start of `h` with `var` as SWITCHD_LOG_FORMAT and `flags`.
    let start = |h: &mut testbed::Host, var: Option<&str>, flags: &[&str]| {
        h.stop();
        let before = h.log().len();
        h.set_env("SWITCHD_LOG_FORMAT", var);
        h.set_extra(&[[config.as_str()].as_slice(), flags].concat());
        h.restart();
        h.log()[before..].to_string()
    };
    let json_lines = |log: &str| log.lines().filter(|l| l.starts_with('{')).count();
    // The file alone: JSON logs.
    let log = start(&mut h, None, &[]);
    assert!(json_lines(&log) > 2 && json_lines(&log) == log.lines().count(), "{log}");
    // Its variable beats the file.
    let log = start(&mut h, Some("text"), &[]);
    assert_eq!(json_lines(&log), 0, "{log}");
    assert!(log.contains(" INFO "), "{log}");
    // A flag beats both.
    let log = start(&mut h, Some("text"), &["--log-format=json"]);
    assert!(json_lines(&log) > 2 && json_lines(&log) == log.lines().count(), "{log}");
    // A bad file stops switchd before anything, naming the file and the setting.
    std::fs::write(&file, "state_dir = \"/tmp/x\"\n").unwrap();
    let out = testbed::run(testbed::bin_dir!().join("switchd"), [config.as_str()]);
    let _ = std::fs::remove_file(&file);
    assert!(!out.ok());
    assert!(
        out.stderr.contains(&format!(
            "{}: unknown setting \"state_dir\": the settings are switchd's long flags without their dashes",
            file.display()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn default_address_pools_and_the_bridge_s_address_as_docker_s_daemon_flags() {
    let flags = [
        "--default-address-pool",
        "base=10.123.0.0/16,size=24",
        "--default-address-pool",
        "base=fd12:3456::/48,size=64",
        "--bip",
        "10.124.0.1/24",
    ];
    let Some(mut h) = testbed::e2e_host("pool", testbed::bin_dir!(), &flags) else {
        return;
    };
    h.ctl(["network", "create", "--ipv6", "auto"]).expect_ok("auto");
    let subnets = [
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        "auto",
    ];
    assert_eq!(
        h.ctl(subnets).expect_ok("inspect").trim(),
        "10.123.0.0/24 fd12:3456::/64"
    );
    let bridge = [
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
        "bridge",
    ];
    assert_eq!(
        h.ctl(bridge).expect_ok("inspect bridge").trim(),
        "10.124.0.0/24 10.124.0.1"
    );
    let x = h.name("x");
    h.ctl(["sandbox", "create", &x]).expect_ok("x");
    let ip = [
        "sandbox",
        "inspect",
        "-f",
        "{{range .Networks}}{{.IPAddress}}{{end}}",
        &x,
    ];
    assert_eq!(h.ctl(ip).expect_ok("inspect x").trim(), "10.124.0.2");
    assert!(testbed::ping(&h, &x, "10.124.0.1"), "x reaches its gateway");
    // Another --bip while x is on the bridge: switchd does not start, and says why.
    h.stop();
    let ns = format!("--net=/run/netns/{}", h.ns());
    let state = h.state_dir();
    let socket = h.socket();
    let switchd = testbed::bin_dir!().join("switchd");
    let args = [
        ns.as_str(),
        switchd.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
        "--bip",
        "10.125.0.1/24",
    ];
    let out = testbed::run("nsenter", args);
    assert!(!out.ok());
    assert!(
        out.stderr.contains(&format!(
            "--bip 10.125.0.1/24 would move the default bridge from 10.124.0.1/24, where sandboxes {x} have their addresses"
        )),
        "{}",
        out.stderr
    );
    let bad = testbed::run(&switchd, ["--default-address-pool", "base=10.0.0.0/8,size=25"]);
    assert!(bad.stderr.contains("more than 65536 subnets"), "{}", bad.stderr);
    // The old address still stands.
    h.restart();
    assert!(
        testbed::ping(&h, &x, "10.124.0.1"),
        "x reaches its gateway after the refusal"
    );
}
