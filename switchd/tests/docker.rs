//! End-to-end: the Docker Engine (Debian's docker.io) drives switchd through its network and
//! IPAM plugin. Each test host is a namespace running switchd (`--docker-plugin`, named after
//! the test) and its own dockerd; containers run the busybox image. Needs root.

use std::path::Path;
use std::time::Instant;

use testbed::docker::{Docker, IMAGE, PLUGIN_DIR};
use testbed::{eventually, run, Host};

/// A host whose switchd serves the plugin under the test's prefix, and its dockerd.
fn setup(tag: &str, live_restore: bool) -> Option<(Host, Docker, String)> {
    if !testbed::e2e_allowed(tag) {
        return None;
    }
    let prefix = testbed::prefix(tag);
    let engine = Docker::socket_for(&prefix).to_string_lossy().into_owned();
    let h = Host::start_with(
        &prefix,
        testbed::bin_dir!(),
        &["--docker-plugin", &prefix, "--docker-host", &engine],
    );
    let d = Docker::start(&h, live_restore);
    Some((h, d, prefix))
}

fn pings(d: &Docker, from: &str, to: &str) -> bool {
    d.exec(from, &["ping", "-c1", "-W1", to]).ok()
}

/// `wget` of `url` from namespace `ns`.
fn fetch(ns: &str, url: &str) -> testbed::Output {
    run("ip", ["netns", "exec", ns, "wget", "-qO-", "-T", "3", url])
}

fn ip_of(d: &Docker, container: &str, network: &str) -> String {
    let f = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    d.cli(["inspect", "-f", &f, container])
        .expect_ok("inspect")
        .trim()
        .to_string()
}

fn create_net(d: &Docker, plugin: &str, name: &str, extra: &[&str]) {
    let mut args = vec!["network", "create", "-d", plugin, "--ipam-driver", plugin];
    args.extend_from_slice(extra);
    args.push(name);
    d.cli(args).expect_ok("docker network create");
}

fn run_bg(d: &Docker, name: &str, args: &[&str], cmd: &[&str]) {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    all.push(IMAGE);
    all.extend_from_slice(cmd);
    d.cli(all).expect_ok("docker run");
}

const WEB: &[&str] = &[
    "sh",
    "-c",
    "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www",
];

#[test]
fn docker_walks_through_two_networks() {
    let Some((h, d, p)) = setup("dockwalk", false) else {
        return;
    };
    create_net(
        &d,
        &p,
        "my_net2",
        &["--subnet", "192.168.0.0/24", "--gateway", "192.168.0.1"],
    );
    create_net(&d, &p, "other", &["--subnet", "192.168.1.0/24"]);
    run_bg(
        &d,
        "vm1",
        &["--network", "my_net2", "--ip", "192.168.0.10"],
        &["sleep", "600"],
    );
    run_bg(
        &d,
        "vm2",
        &[
            "--network",
            "my_net2",
            "--network-alias",
            "web",
            "-p",
            "8080:80",
            "-h",
            "vm2",
        ],
        WEB,
    );
    run_bg(&d, "vm3", &["--network", "other"], &["sleep", "600"]);

    // --ip, the gateway, and a MAC of Docker's derivation.
    let addr = d
        .exec("vm1", &["ip", "addr", "show", "eth0"])
        .expect_ok("ip addr")
        .to_string();
    assert!(
        addr.contains("inet 192.168.0.10/24") && addr.contains("02:42:c0:a8:00:0a"),
        "{addr}"
    );
    assert!(d
        .exec("vm1", &["ip", "route"])
        .stdout
        .contains("default via 192.168.0.1"));
    // Names (and the alias) from Docker's resolver, PTR as Docker writes it.
    assert!(
        eventually(10, || pings(&d, "vm1", "vm2")),
        "vm1 cannot ping vm2 by name"
    );
    assert!(pings(&d, "vm1", "web"), "the network alias does not resolve");
    let vm2 = ip_of(&d, "vm2", "my_net2");
    let ptr = d.exec("vm1", &["nslookup", &vm2]).stdout;
    assert!(ptr.contains("vm2.my_net2"), "PTR of {vm2}: {ptr}");
    // switchd's view: one sandbox per container, named as Docker names it, with TAP ports.
    let named = || {
        let s = h.ctl(["sandbox", "ls"]).stdout;
        ["vm1 ", "vm2 ", "vm3 "].iter().all(|n| s.contains(n))
    };
    assert!(eventually(10, named), "{}", h.ctl(["sandbox", "ls"]).stdout);
    let sandboxes = h.ctl(["sandbox", "ls"]).expect_ok("sandbox ls").to_string();
    assert!(
        sandboxes.contains("192.168.0.10/24") && sandboxes.contains("192.168.1.2/24"),
        "{sandboxes}"
    );
    let ports = h.ctl(["ports"]).expect_ok("ports").to_string();
    assert_eq!(ports.lines().filter(|l| l.contains(" tap ")).count(), 3, "{ports}");
    assert!(ports.contains("vm1/swd"), "{ports}");
    // switchd's own DNS knows them too: the container's name and its --network-alias, and
    // the network by Docker's name.
    for name in ["vm2", "web"] {
        let a = d.exec("vm1", &["nslookup", name, "192.168.0.1"]).stdout;
        assert!(a.contains(&vm2), "switchd's DNS on {name}: {a}");
    }
    assert!(
        h.ctl(["network", "inspect", "my_net2"]).ok(),
        "{}",
        h.ctl(["network", "ls"]).stdout
    );
    let ptr = d.exec("vm1", &["nslookup", &vm2, "192.168.0.1"]).stdout;
    assert!(ptr.contains("vm2.my_net2"), "switchd's PTR of {vm2}: {ptr}");

    // Isolation, then network connect --ip and disconnect.
    assert!(!pings(&d, "vm3", "192.168.0.10"), "vm3 on other reached my_net2");
    d.cli(["network", "connect", "--ip", "192.168.0.30", "my_net2", "vm3"])
        .expect_ok("connect");
    assert!(d.exec("vm3", &["ip", "addr"]).stdout.contains("inet 192.168.0.30/24"));
    assert!(
        eventually(10, || pings(&d, "vm3", "vm1")),
        "vm3 cannot ping vm1 after connect"
    );
    d.cli(["network", "disconnect", "my_net2", "vm3"])
        .expect_ok("disconnect");
    assert!(
        !pings(&d, "vm3", "192.168.0.10"),
        "vm3 still reaches my_net2 after disconnect"
    );

    // -p: from the host and from outside it.
    let outside = h.add_outside();
    assert!(
        eventually(10, || fetch(h.ns(), "http://127.0.0.1:8080/").stdout.contains("vm2")),
        "the host cannot reach -p 8080:80"
    );
    let from_outside = fetch(&outside, "http://10.99.0.1:8080/");
    assert!(from_outside.stdout.contains("vm2"), "from outside: {from_outside:?}");
    // docker rm revokes it.
    d.cli(["rm", "-f", "vm2"]).expect_ok("rm");
    assert!(
        !fetch(h.ns(), "http://127.0.0.1:8080/").ok(),
        "the port outlived its container"
    );
    assert!(!h.ctl(["sandbox", "ls"]).stdout.contains(&vm2));
}

#[test]
fn docker_containers_keep_their_network_across_restarts() {
    let Some((mut h, mut d, p)) = setup("docklife", true) else {
        return;
    };
    create_net(&d, &p, "n1", &["--subnet", "10.61.0.0/24"]);
    run_bg(&d, "ca", &["--network", "n1"], &["sleep", "600"]);
    run_bg(&d, "cb", &["--network", "n1", "-p", "80"], WEB);
    let a = ip_of(&d, "ca", "n1");
    assert_eq!(a, "10.61.0.2");
    // -p 80: a host port switchd chose, reachable.
    let ports = h.ctl(["sandbox", "ls"]).expect_ok("sandbox ls").to_string();
    assert!(eventually(10, || pings(&d, "ca", "cb")), "a cannot ping b");
    let chosen = || fetch(h.ns(), "http://127.0.0.1:49153/").ok();
    assert!(
        eventually(10, chosen),
        "-p 80 is not served on the first free port of 49153-65535"
    );

    // Stop and start keep the address; rm releases it for the next container.
    d.cli(["stop", "-t", "1", "ca"]).expect_ok("stop");
    d.cli(["start", "ca"]).expect_ok("start");
    assert_eq!(ip_of(&d, "ca", "n1"), a, "the address changed across stop and start");
    d.cli(["rm", "-f", "ca"]).expect_ok("rm");
    run_bg(&d, "cc", &["--network", "n1"], &["sleep", "600"]);
    assert_eq!(ip_of(&d, "cc", "n1"), a, "rm did not release {a}");

    // switchd killed: the containers' traffic is back soon after it restarts.
    h.kill9();
    h.restart();
    let t = Instant::now();
    assert!(
        eventually(10, || pings(&d, "cc", "cb")),
        "no traffic after switchd's restart"
    );
    eprintln!(
        "traffic back {} ms after switchd answered again",
        t.elapsed().as_millis()
    );
    // Docker uses the restarted plugin without a restart of its own.
    run_bg(&d, "ce", &["--network", "n1"], &["sleep", "600"]);
    assert!(
        eventually(10, || pings(&d, "ce", "cb")),
        "a container made after the restart"
    );

    // dockerd restarted with live-restore: the containers keep their network.
    d.restart();
    assert!(
        eventually(10, || pings(&d, "cc", "cb")),
        "no traffic after dockerd's restart"
    );
    d.cli(["rm", "-f", "cb", "cc", "ce"]).expect_ok("rm");
    let left = h.ctl(["sandbox", "ls"]).expect_ok("sandbox ls").to_string();
    assert_eq!(left.lines().count(), 1, "sandboxes left: {left} (before: {ports})");
    d.cli(["network", "rm", "n1"]).expect_ok("network rm");
    assert!(!h.ctl(["network", "ls"]).stdout.contains("10.61"));
}

/// POSTs `body` to the plugin's `method`: (HTTP status, body).
fn call(p: &str, method: &str, body: &str) -> (u16, String) {
    let sock = format!("{PLUGIN_DIR}/{p}.sock");
    let out = run(
        "curl",
        [
            "-s",
            "-m",
            "5",
            "--unix-socket",
            &sock,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-w",
            "\n%{http_code}",
            "--data-binary",
            body,
            &format!("http://plugin/{method}"),
        ],
    );
    let (b, code) = out.stdout.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), b.to_string())
}

#[test]
fn docker_s_bad_requests_are_refused_and_change_nothing() {
    let Some((h, d, p)) = setup("dockbad", false) else {
        return;
    };
    create_net(&d, &p, "n1", &["--subnet", "10.62.0.0/24"]);
    // switchd names the network as Docker does.
    assert!(eventually(10, || h.ctl(["network", "inspect", "n1"]).ok()));
    let before = (h.ctl(["network", "ls"]).stdout, h.ctl(["sandbox", "ls"]).stdout);
    let id = "f59d236215183b1af7a1760abbae3cac0666625e7c6f5cff711327656305fb57";
    let cases: [(&str, String, u16, &str); 9] = [
        (
            "NetworkDriver.Join",
            format!(r#"{{"NetworkID":"{id}","EndpointID":"{id}","SandboxKey":"/x"}}"#),
            404,
            "is not one of switchd's",
        ),
        (
            "NetworkDriver.CreateEndpoint",
            format!(r#"{{"NetworkID":"{id}","EndpointID":"{id}"}}"#),
            404,
            "Docker network",
        ),
        (
            "NetworkDriver.DeleteNetwork",
            r#"{"NetworkID":"nope"}"#.into(),
            404,
            "Docker network nope",
        ),
        (
            "NetworkDriver.CreateNetwork",
            format!(
                r#"{{"NetworkID":"{id}","Options":{{"com.docker.network.generic":{{"switch.driver":"overlay"}}}},"IPv4Data":[{{"Pool":"10.63.0.0/24","Gateway":"10.63.0.1/24"}}]}}"#
            ),
            400,
            "add --ipam-driver",
        ),
        (
            "IpamDriver.RequestPool",
            r#"{"Pool":"10.62.0.0/16"}"#.into(),
            409,
            "overlaps",
        ),
        (
            "IpamDriver.RequestAddress",
            r#"{"PoolID":"nope"}"#.into(),
            404,
            "address pool",
        ),
        ("IpamDriver.RequestPool", "{not json".into(), 400, "invalid JSON body"),
        ("NetworkDriver.Nonsense", "{}".into(), 404, "has no method"),
        (
            "NetworkDriver.ProgramExternalConnectivity",
            format!(
                r#"{{"NetworkID":"{id}","EndpointID":"{id}","Options":{{"com.docker.network.portmap":[{{"Proto":1,"Port":1}}]}}}}"#
            ),
            400,
            "invalid protocol 1 ",
        ),
    ];
    for (method, body, status, says) in &cases {
        let (got, text) = call(&p, method, body);
        assert_eq!(got, *status, "{method} {body}: {text}");
        let err: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method}: {text:?}: {e}"));
        let msg = err["Err"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{method}: {msg:?} does not say {says:?}");
    }
    // What Docker users type: an overlay on Docker's own IPAM is refused with what to add.
    let e = d.cli([
        "network",
        "create",
        "-d",
        &p,
        "-o",
        "switch.driver=overlay",
        "--subnet",
        "10.64.0.0/24",
        "x",
    ]);
    assert!(!e.ok() && e.stderr.contains(&format!("add --ipam-driver {p}")), "{e:?}");
    let e = d.cli([
        "network",
        "create",
        "-d",
        &p,
        "--ipam-driver",
        &p,
        "--ipv6",
        "--subnet",
        "fe80::/64",
        "y",
    ]);
    assert!(!e.ok() && e.stderr.contains("fe80::/10 (link-local)"), "{e:?}");
    // switchctl does not take Docker's objects away from it.
    let e = h.ctl(["network", "rm", "n1"]);
    assert!(!e.ok() && e.stderr.contains("docker network rm"), "{e:?}");
    assert_eq!(
        (h.ctl(["network", "ls"]).stdout, h.ctl(["sandbox", "ls"]).stdout),
        before
    );
    // A GET, as nothing of Docker's sends.
    let get = run(
        "curl",
        [
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
            &format!("{PLUGIN_DIR}/{p}.sock"),
            "http://plugin/Plugin.Activate",
        ],
    );
    assert_eq!(get.stdout, "405");
}

#[test]
fn docker_puts_containers_on_a_native_network() {
    let Some((h, d, p)) = setup("dockmv", false) else {
        return;
    };
    // The LAN: a veth whose far end is a machine of its own.
    let lan = h.name("lan");
    run("ip", ["netns", "add", &lan]).expect_ok("ip netns add");
    let steps: [&[&str]; 5] = [
        &[
            "-n",
            h.ns(),
            "link",
            "add",
            "lan0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &lan,
        ],
        &["-n", h.ns(), "link", "set", "lan0", "up"],
        &["-n", &lan, "addr", "add", "10.70.0.200/24", "dev", "eth0"],
        &["-n", &lan, "link", "set", "eth0", "up"],
        &["-n", &lan, "link", "set", "lo", "up"],
    ];
    for args in steps {
        run("ip", args).expect_ok(&format!("ip {}", args.join(" ")));
    }
    create_net(
        &d,
        &p,
        "lan",
        &[
            "--subnet",
            "10.70.0.0/24",
            "--gateway",
            "10.70.0.1",
            "-o",
            "switch.driver=macvlan",
            "-o",
            "parent=lan0",
        ],
    );
    run_bg(&d, "m1", &["--network", "lan", "--ip", "10.70.0.10"], &["sleep", "600"]);
    run_bg(&d, "m2", &["--network", "lan"], &["sleep", "600"]);
    let addr = d
        .exec("m1", &["ip", "addr", "show", "eth0"])
        .expect_ok("ip addr")
        .to_string();
    assert!(addr.contains("inet 10.70.0.10/24"), "{addr}");
    // The machine on the LAN reaches the container, and the containers each other, on the wire.
    let lan_ping = || run("ip", ["netns", "exec", &lan, "ping", "-c1", "-W1", "10.70.0.10"]).ok();
    assert!(eventually(10, lan_ping), "the LAN cannot reach m1");
    assert!(eventually(10, || pings(&d, "m2", "m1")), "m2 cannot ping m1 by name");
    // A macvlan child, not a switch port.
    assert!(!h.ctl(["ports"]).stdout.contains(" tap "));
    d.cli(["rm", "-f", "m1", "m2"]).expect_ok("rm");
    d.cli(["network", "rm", "lan"]).expect_ok("network rm");
    // Nothing of the containers is left in the host's namespace.
    let links = run("ip", ["-n", h.ns(), "-o", "link"]).stdout;
    assert!(!links.contains("swd"), "{links}");
}

#[test]
fn docker_compose_brings_up_two_services_that_resolve_each_other() {
    let Some((h, d, p)) = setup("dockcomp", false) else {
        return;
    };
    // In the daemon's directory, which goes with it whatever the test's end.
    let dir = d.socket().parent().expect("the daemon's directory").join("compose");
    std::fs::create_dir_all(&dir).expect("compose dir");
    let file = dir.join("docker-compose.yml");
    let spec = format!(
        r#"version: "2.4"
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo served-by-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    networks: [app]
  client:
    image: {IMAGE}
    command: ["sleep", "600"]
    networks: [app]
networks:
  app:
    driver: {p}
    ipam:
      driver: {p}
      config:
        - subnet: 10.71.0.0/24
"#
    );
    std::fs::write(&file, spec).expect("compose file");
    let compose = |args: &[&str]| {
        let out = std::process::Command::new("docker-compose")
            .env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
            .arg("-p")
            .arg("sw")
            .arg("-f")
            .arg(&file)
            .args(args)
            .output()
            .expect("docker-compose runs");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (up, log) = compose(&["up", "-d"]);
    assert!(up, "docker-compose up: {log}");
    // Names from Docker's resolver; busybox's static wget crashes in the image, nc fetches.
    assert!(
        eventually(15, || pings(&d, "sw_client_1", "web")),
        "client cannot ping web by name"
    );
    assert!(pings(&d, "sw_web_1", "client"), "web cannot ping client by name");
    let web = ip_of(&d, "sw_web_1", "sw_app");
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {web} 80");
    let page = d.exec("sw_client_1", &["sh", "-c", &get]);
    assert!(page.stdout.contains("served-by-web"), "{page:?}");
    let (down, log) = compose(&["down"]);
    assert!(down, "docker-compose down: {log}");
    let _ = std::fs::remove_dir_all(&dir);
    let left = h.ctl(["network", "ls"]).expect_ok("network ls").to_string();
    assert!(
        !left.contains("sw_app") && !left.contains("docker-"),
        "compose's network outlived down: {left}"
    );
}

#[test]
fn a_crash_in_the_middle_of_a_join_leaves_docker_s_namespace_and_no_interface() {
    let Some((mut h, d, p)) = setup("dockcrash", false) else {
        return;
    };
    create_net(&d, &p, "n1", &["--subnet", "10.72.0.0/24"]);
    run_bg(&d, "ca", &["--network", "n1"], &["sleep", "600"]);
    // switchd dies after it made the joining container's TAP, before it stored the join.
    h.set_env("SWITCHD_FAILPOINT", Some("docker-join:interface"));
    h.restart();
    std::thread::scope(|s| {
        // Docker retries a plugin it cannot reach: the join comes again after the restart.
        let run = s.spawn(|| d.cli(["run", "-d", "--name", "cb", "--network", "n1", IMAGE, "sleep", "600"]));
        assert!(
            eventually(20, || !h.is_running()),
            "switchd did not reach the failpoint"
        );
        h.set_env("SWITCHD_FAILPOINT", None);
        h.restart();
        // Docker's retry sends an empty body (its reader was spent): refused, nothing made.
        let out = run.join().expect("docker run's thread");
        assert!(
            out.ok() || out.stderr.contains("empty request body"),
            "docker run after the crash: {out:?}"
        );
    });
    d.cli(["start", "cb"]).expect_ok("docker start after the crash");
    assert!(
        eventually(10, || pings(&d, "cb", "ca")),
        "cb has no network after the crash"
    );
    // The TAP of the interrupted join went; the containers' are in their namespaces.
    let links = run("ip", ["-n", h.ns(), "-o", "link"]).stdout;
    assert!(!links.contains("swd"), "{links}");
    assert!(
        h.log().contains("a crash interrupted"),
        "switchd did not recover the join"
    );
}

#[test]
fn two_docker_hosts_share_an_overlay_and_its_names() {
    if !testbed::e2e_allowed("dockov") {
        return;
    }
    let f = testbed::Fabric::new(&testbed::prefix("dockov"), 96, testbed::bin_dir!());
    // Engines go before their hosts (they remove their networks through the plugins).
    let mut hosts = Vec::new();
    let mut engines = Vec::new();
    let mut plugins = Vec::new();
    for (i, name) in [(1, "h1"), (2, "h2")] {
        f.cert("ca", name);
        let p = f.host_prefix(name);
        let engine = Docker::socket_for(&p).to_string_lossy().into_owned();
        let h = f.start_with(i, name, &["--docker-plugin", &p, "--docker-host", &engine]);
        engines.push(Docker::start(&h, false));
        hosts.push(h);
        plugins.push(p);
    }
    // The same command on both hosts, each naming its own plugin: the first makes the
    // overlay, the second (once it knows it) is it.
    let overlay = [
        "-o",
        "switch.driver=overlay",
        "-o",
        "switch.network=my_net2",
        "--subnet",
        "10.67.0.0/24",
        "--gateway",
        "10.67.0.1",
    ];
    create_net(&engines[0], &plugins[0], "my_net2", &overlay);
    assert!(
        eventually(20, || hosts[1].ctl(["network", "inspect", "my_net2"]).ok()),
        "h2 never learnt the overlay"
    );
    create_net(&engines[1], &plugins[1], "my_net2", &overlay);
    // Docker's containers ask switchd's DNS (the gateway) for the names Docker does not know.
    let dns = ["--network", "my_net2", "--dns", "10.67.0.1"];
    run_bg(&engines[0], "vm1", &dns, &["sleep", "600"]);
    run_bg(&engines[1], "vm2", &dns, &["sleep", "600"]);
    let (a, b) = (
        ip_of(&engines[0], "vm1", "my_net2"),
        ip_of(&engines[1], "vm2", "my_net2"),
    );
    assert_ne!(a, b, "two hosts handed out one address");
    assert!(
        eventually(20, || pings(&engines[0], "vm1", "vm2")),
        "vm1 on h1 cannot ping vm2 on h2 by name: {}",
        engines[0].exec("vm1", &["nslookup", "vm2"]).stdout
    );
    assert!(
        eventually(10, || pings(&engines[1], "vm2", "vm1")),
        "vm2 on h2 cannot ping vm1 on h1 by name"
    );
    let ptr = engines[0].exec("vm1", &["nslookup", &b]).stdout;
    assert!(ptr.contains("vm2.my_net2"), "PTR of {b}: {ptr}");
    // Both hosts' switchd show the remote container by its Docker name.
    let fdb = hosts[0].ctl(["fdb", "my_net2"]).expect_ok("fdb").to_string();
    eprintln!("{fdb}");
    assert!(fdb.contains("vm1/") && fdb.contains("host h2"), "{fdb}");

    // Removal from one host leaves the overlay to the other.
    engines[1].cli(["rm", "-f", "vm2"]).expect_ok("rm vm2");
    engines[1]
        .cli(["network", "rm", "my_net2"])
        .expect_ok("network rm on h2");
    assert!(
        eventually(10, || !pings(&engines[0], "vm1", &b)),
        "vm2's address answers after its removal"
    );
    assert!(hosts[0].ctl(["network", "inspect", "my_net2"]).ok());
    drop(engines);
    drop(hosts);
}

#[test]
fn docker_run_s_mac_address_publish_all_and_internal_networks() {
    let Some((h, d, p)) = setup("dockopt", false) else {
        return;
    };
    h.add_outside();
    let n1 = [
        "--subnet",
        "10.64.0.0/24",
        "--aux-address",
        "router=10.64.0.2",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
    ];
    create_net(&d, &p, "n1", &n1);
    create_net(
        &d,
        &p,
        "ni",
        &["--internal", "-o", "switch.network=ni", "--subnet", "10.65.0.0/24"],
    );
    let mac = "02:42:aa:00:00:01";
    run_bg(
        &d,
        "web",
        &[
            "--network",
            "n1",
            "--mac-address",
            mac,
            "-P",
            "--expose",
            "80",
            "-h",
            "web",
        ],
        WEB,
    );
    run_bg(&d, "i1", &["--network", "ni"], &["sleep", "600"]);
    run_bg(&d, "i2", &["--network", "ni"], &["sleep", "600"]);
    run_bg(
        &d,
        "udp",
        &["--network", "n1", "-p", "127.0.0.1:5353:53/udp"],
        &["sleep", "600"],
    );

    // --mac-address: the container's interface, and switchd's table.
    let link = d
        .exec("web", &["ip", "link", "show", "eth0"])
        .expect_ok("ip link")
        .to_string();
    assert!(link.contains(mac), "{link}");
    assert!(
        eventually(10, || h.ctl(["fdb"]).stdout.contains(mac)),
        "{}",
        h.ctl(["fdb"]).stdout
    );
    // -P: the exposed port on the first free host port.
    let served = || fetch(h.ns(), "http://127.0.0.1:49153/").stdout.contains("web");
    assert!(eventually(10, served), "-P did not publish the exposed port 80");
    // -p 127.0.0.1:5353:53/udp: on the host's loopback only, and a datagram gets through.
    let bound = || run("ip", ["netns", "exec", h.ns(), "ss", "-Hlun"]).stdout;
    assert!(eventually(10, || bound().contains("127.0.0.1:5353")), "{}", bound());
    assert!(!bound().contains("0.0.0.0:5353"), "{}", bound());
    // busybox has no UDP server: the container's kernel counts the datagram to a port that
    // nothing there listens on.
    let no_ports = || {
        let snmp = d.exec("udp", &["cat", "/proc/net/snmp"]).stdout;
        let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
        let (names, values) = (udp[0].split_whitespace(), udp[1].split_whitespace());
        let counters: Vec<(&str, &str)> = names.zip(values).collect();
        counters
            .iter()
            .find(|(n, _)| *n == "NoPorts")
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .expect("Udp NoPorts")
    };
    let before = no_ports();
    let sent = || {
        let ns = Path::new(testbed::netns::NETNS_DIR).join(h.ns());
        testbed::in_netns(&ns, || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(b"hello", "127.0.0.1:5353").unwrap();
        })
        .join()
        .unwrap();
        no_ports() > before
    };
    assert!(eventually(10, sent), "no datagram through -p 127.0.0.1:5353:53/udp");
    // Outbound NAT from a network, none from an internal one; inside it, traffic flows.
    assert!(eventually(10, || pings(&d, "web", "10.99.0.2")), "n1 has no way out");
    // --aux-address: no container gets it. enable_icc=false: n1's containers reach the
    // gateway and the outside, not each other.
    let (web_ip, udp_ip) = (ip_of(&d, "web", "n1"), ip_of(&d, "udp", "n1"));
    assert!(
        ![&web_ip, &udp_ip].contains(&&"10.64.0.2".to_string()),
        "{web_ip} {udp_ip}"
    );
    assert!(pings(&d, "udp", "10.64.0.1"), "udp cannot reach its gateway");
    assert!(!pings(&d, "udp", &web_ip), "enable_icc=false: udp reached web");
    assert!(eventually(10, || pings(&d, "i1", "i2")), "i1 cannot ping i2");
    assert!(!pings(&d, "i1", "10.99.0.2"), "an internal network reached the outside");
    let inspect = h.ctl(["network", "inspect", "ni"]).expect_ok("inspect ni").to_string();
    let inspect: serde_json::Value = serde_json::from_str(&inspect).expect("JSON");
    assert_eq!(inspect[0]["Internal"], true, "{inspect}");
}

#[test]
fn docker_runs_containers_on_a_dual_stack_network() {
    let Some((h, d, p)) = setup("dock6", false) else {
        return;
    };
    // switchd's IPAM gives the IPv6 subnet: a /64 of the host's unique local prefix.
    create_net(&d, &p, "dual", &["--ipv6", "--subnet", "10.72.0.0/24"]);
    run_bg(&d, "a6", &["--network", "dual"], &["sleep", "600"]);
    run_bg(&d, "b6", &["--network", "dual"], &["sleep", "600"]);
    let f = "{{(index .NetworkSettings.Networks \"dual\").GlobalIPv6Address}}";
    let b6 = d
        .cli(["inspect", "-f", f, "b6"])
        .expect_ok("inspect")
        .trim()
        .to_string();
    assert!(b6.starts_with("fd"), "b6's IPv6 address {b6:?}");
    let addr = d
        .exec("b6", &["ip", "-6", "addr", "show", "eth0"])
        .expect_ok("ip addr")
        .to_string();
    assert!(addr.contains(&format!("inet6 {b6}/64")), "{addr}");
    assert!(eventually(10, || pings(&d, "a6", &b6)), "a6 cannot ping b6 over IPv6");
    let gw = "{{(index .NetworkSettings.Networks \"dual\").IPv6Gateway}}";
    let gw = d
        .cli(["inspect", "-f", gw, "a6"])
        .expect_ok("inspect")
        .trim()
        .to_string();
    assert!(pings(&d, "a6", &gw), "a6 cannot ping its IPv6 gateway {gw}");
    // switchd's view (the network takes Docker's name): it holds the IPv6 subnet, and its
    // inspect shows b6's address.
    assert!(
        eventually(10, || h.ctl(["network", "inspect", "dual"]).ok()),
        "switchd's network is not named dual"
    );
    let net = testbed::json(h.ctl(["network", "inspect", "dual"]).expect_ok("inspect"));
    assert_eq!(net[0]["EnableIPv6"], true, "{net}");
    assert!(net.to_string().contains(&format!("{b6}/64")), "{net}");
    d.cli(["rm", "-f", "a6", "b6"]).expect_ok("rm");
    d.cli(["network", "rm", "dual"]).expect_ok("network rm");
    assert!(
        !h.ctl(["network", "inspect", "dual"]).ok(),
        "the switchd network went with it"
    );
}

#[test]
fn filters_and_templates_print_as_docker_s_do() {
    let Some((h, d, prefix)) = setup("dfmt", false) else {
        return;
    };
    create_net(&d, &prefix, "tn", &["--subnet", "10.91.9.0/24"]);
    // switchd takes Docker's name for it once the Engine shows the network.
    assert!(
        testbed::eventually(10, || h.ctl(["network", "inspect", "tn"]).ok()),
        "named tn"
    );
    // The same question to both, of objects both have: the same answer.
    let both = |args: &[&str]| {
        let docker = d.cli(args).expect_ok(&args.join(" ")).to_string();
        let ours = h.ctl(args).expect_ok(&args.join(" ")).to_string();
        assert_eq!(ours, docker, "{args:?}");
        ours
    };
    // (This Docker runs without its default bridge: the built-in networks both have are host
    // and none, the ones whose names hold an o.)
    let mut builtin = vec![
        "network",
        "ls",
        "--filter",
        "type=builtin",
        "--filter",
        "name=o",
        "--format",
    ];
    builtin.push("{{.Name}} {{.Driver}} {{.Scope}}");
    assert_eq!(both(&builtin), "host host local\nnone null local\n");
    builtin.pop();
    builtin.push("table {{.Name}}\t{{.Driver}}\t{{.Scope}}");
    assert!(both(&builtin).starts_with("NAME"));
    let ours = h
        .ctl(["network", "ls", "--filter", "type=builtin", "-q"])
        .expect_ok("-q")
        .to_string();
    assert_eq!(ours.lines().count(), 3, "bridge, host and none: {ours}");
    assert_eq!(
        both(&["network", "ls", "--filter", "dangling=true", "--format", "{{.Name}}"]),
        "tn\n"
    );
    assert_eq!(
        both(&[
            "network",
            "ls",
            "--filter",
            "name=tn",
            "--format",
            "{{.Name}} {{.Internal}}"
        ]),
        "tn false\n"
    );
    both(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.EnableIPv6}}",
        "none",
        "host",
    ]);
    both(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "tn",
    ]);
    // What Docker refuses, switchctl refuses, naming it.
    let bad = h.ctl(["network", "ls", "--filter", "colour=red"]);
    assert!(
        bad.expect_err("bad filter").contains("invalid filter 'colour'"),
        "{}",
        bad.stderr
    );
    assert!(!d.cli(["network", "ls", "--filter", "colour=red"]).ok());
}
