//! End-to-end: switch-cni, the CNI plugin, driven as a runtime drives it (CNI_* environment,
//! configuration on stdin) against a switchd in a host namespace, chained with Debian's
//! reference `tuning` plugin, and used by a real runtime (podman with its CNI backend, runc,
//! a busybox root file system). Needs root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use testbed::{run, Host};

/// One plugin invocation: exit status, and stdout parsed as JSON (`Null` when empty). The
/// runtime's name for the container (K8S_POD_NAME) is its ID.
fn cni(plugin: &Path, command: &str, container: &str, netns: &str, ifname: &str, conf: &Value) -> (bool, Value) {
    cni_named(plugin, command, (container, container), netns, ifname, conf)
}

/// As [`cni`], with the container's (ID, name).
fn cni_named(
    plugin: &Path,
    command: &str,
    (container, name): (&str, &str),
    netns: &str,
    ifname: &str,
    conf: &Value,
) -> (bool, Value) {
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_ARGS", format!("IgnoreUnknown=1;K8S_POD_NAME={name}"))
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("plugin runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.to_string().as_bytes())
        .expect("config written");
    let out = child.wait_with_output().expect("plugin ends");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{command} printed {text:?}: {e}"))
    };
    (out.status.success(), v)
}

fn conf(version: &str, network: &str, h: &Host) -> Value {
    json!({
        "cniVersion": version,
        "name": network,
        "type": "switch-cni",
        "network": network,
        "socket": h.socket(),
    })
}

fn with(mut c: Value, key: &str, v: Value) -> Value {
    c[key] = v;
    c
}

fn sandboxes(h: &Host) -> String {
    h.ctl(["sandbox", "ls"]).expect_ok("sandbox ls").to_string()
}

#[test]
fn cni_plugin_adds_checks_chains_deletes_and_collects() {
    let Some(mut h) = testbed::e2e_host!("cni") else { return };
    let plugin = testbed::bin_dir!().join("switch-cni");
    assert!(plugin.exists(), "{} is missing: cargo build --bins", plugin.display());
    let net = h.name("n1");
    h.ctl(["network", "create", "--subnet", "10.81.0.0/24", &net])
        .expect_ok("network create");
    let net2 = h.name("n2");
    h.ctl(["network", "create", "--subnet", "10.82.0.0/24", &net2])
        .expect_ok("network create");
    // The runtime's namespaces (under the test's prefix, so a failed run leaves nothing).
    let (rt1, rt2) = (h.name("rt1"), h.name("rt2"));
    for ns in [&rt1, &rt2] {
        run("ip", ["netns", "add", ns]).expect_ok("ip netns add");
    }
    let p1 = format!("/run/netns/{rt1}");
    let p2 = format!("/run/netns/{rt2}");
    let (c1, c2) = (h.name("c1"), h.name("c2"));
    let base = conf("1.0.0", &net, &h);
    let aliased = with(
        base.clone(),
        "runtimeConfig",
        json!({"aliases": {net.clone(): ["web"]}}),
    );

    // ADD: the result names the interface, its address, the default route and the DNS.
    let (ok, r1) = cni(&plugin, "ADD", &c1, &p1, "eth0", &aliased);
    assert!(ok, "{r1}");
    assert_eq!(r1["cniVersion"], "1.0.0");
    assert_eq!(r1["interfaces"][0]["name"], "eth0");
    assert_eq!(r1["interfaces"][0]["sandbox"], p1.as_str());
    assert_eq!(
        r1["ips"][0],
        json!({"address": "10.81.0.2/24", "gateway": "10.81.0.1", "interface": 0})
    );
    assert_eq!(r1["routes"], json!([{"dst": "0.0.0.0/0", "gw": "10.81.0.1"}]));
    assert_eq!(r1["dns"]["nameservers"], json!(["10.81.0.1"]));
    let mac = r1["interfaces"][0]["mac"].as_str().unwrap().to_string();
    let link = h.exec(&rt1, &["ip", "link", "show", "eth0"]);
    assert!(link.expect_ok("ip link").contains(&mac), "{}", link.stdout);
    let (ok, r2) = cni(&plugin, "ADD", &c2, &p2, "eth0", &base);
    assert!(ok, "{r2}");
    assert_eq!(r2["ips"][0]["address"], "10.81.0.3/24");
    // The containers reach each other and resolve each other's names (and aliases).
    h.exec(&rt2, &["ping", "-c", "1", "-W", "2", "10.81.0.2"])
        .expect_ok("ping c1");
    for name in [c1.as_str(), "web"] {
        let d = h.exec(&rt2, &["dig", "+short", "+tries=1", "+time=2", "@10.81.0.1", name]);
        assert_eq!(d.expect_ok("dig").trim(), "10.81.0.2", "{name}");
    }
    let d = h.exec(&rt1, &["dig", "+short", "+tries=1", "+time=2", "@10.81.0.1", &c2]);
    assert_eq!(d.expect_ok("dig").trim(), "10.81.0.3");
    // ADD again answers what is there.
    let (ok, again) = cni(&plugin, "ADD", &c1, &p1, "eth0", &aliased);
    assert!(ok && again == r1, "{again}");

    // Chained: the reference tuning plugin takes our result and changes the interface.
    let tuning = json!({"cniVersion": "1.0.0", "name": net, "type": "tuning", "mtu": 1400, "prevResult": r1});
    let (ok, t) = cni(Path::new("/usr/lib/cni/tuning"), "ADD", &c1, &p1, "eth0", &tuning);
    assert!(ok, "tuning: {t}");
    assert_eq!(t["ips"], r1["ips"]);
    assert!(h
        .exec(&rt1, &["ip", "link", "show", "eth0"])
        .stdout
        .contains("mtu 1400"));

    // CHECK: passes as added; fails, naming why, once the interface differs.
    let checked = with(base.clone(), "prevResult", r1.clone());
    let (ok, out) = cni(&plugin, "CHECK", &c1, &p1, "eth0", &checked);
    assert!(ok && out.is_null(), "{out}");
    h.exec(&rt1, &["ip", "link", "set", "eth0", "address", "02:00:00:00:00:99"])
        .expect_ok("change MAC");
    let (ok, out) = cni(&plugin, "CHECK", &c1, &p1, "eth0", &checked);
    assert!(!ok, "{out}");
    assert_eq!(out["code"], 101);
    assert!(out["msg"].as_str().unwrap().contains("02:00:00:00:00:99"), "{out}");
    h.exec(&rt1, &["ip", "link", "set", "eth0", "address", &mac])
        .expect_ok("restore MAC");
    let (ok, out) = cni(
        &plugin,
        "CHECK",
        &c1,
        &p1,
        "eth0",
        &with(base.clone(), "prevResult", json!({})),
    );
    assert!(!ok && out["code"] == 101, "{out}");

    // A second network under a name the runtime chose: no second default route.
    let (ok, r) = cni(&plugin, "ADD", &c1, &p1, "net1", &conf("1.0.0", &net2, &h));
    assert!(ok, "{r}");
    assert_eq!(r["interfaces"][0]["name"], "net1");
    assert_eq!(r["ips"][0]["address"], "10.82.0.2/24");
    assert!(r.get("routes").is_none(), "{r}");
    let routes = h.exec(&rt1, &["ip", "route"]);
    assert!(
        routes.expect_ok("ip route").contains("default via 10.81.0.1 dev eth0"),
        "{}",
        routes.stdout
    );
    // DEL takes that one away and keeps the rest; again, it is a no-op.
    for _ in 0..2 {
        let (ok, out) = cni(&plugin, "DEL", &c1, &p1, "net1", &conf("1.0.0", &net2, &h));
        assert!(ok && out.is_null(), "{out}");
    }
    let links = h.exec(&rt1, &["ip", "-br", "link"]);
    assert!(
        !links.stdout.contains("net1") && links.stdout.contains("eth0"),
        "{}",
        links.stdout
    );

    // GC keeps what the runtime lists and releases the rest (c2), its address with it.
    let gc = with(
        conf("1.1.0", &net, &h),
        "cni.dev/valid-attachments",
        json!([{"containerID": c1, "ifname": "eth0"}]),
    );
    let (ok, out) = cni(&plugin, "GC", "", "", "", &gc);
    assert!(ok, "{out}");
    let ls = sandboxes(&h);
    assert!(ls.contains(&c1) && !ls.contains(&c2), "{ls}");
    let (ok, r) = cni(&plugin, "ADD", &c2, &p2, "eth0", &base);
    assert!(ok && r["ips"][0]["address"] == "10.81.0.3/24", "{r}");

    // A runtime that put its namespace at /run/netns/NAME under the container's own name: the
    // sandbox takes the ID's first 12 characters instead, and DEL leaves the runtime's
    // namespace in place.
    let (id4, name4) = (h.name("zzzzzzzzzzzz"), h.name("c4"));
    run("ip", ["netns", "add", &name4]).expect_ok("ip netns add");
    let p4 = format!("/run/netns/{name4}");
    let (ok, r) = cni_named(&plugin, "ADD", (&id4, &name4), &p4, "eth0", &base);
    assert!(ok, "{r}");
    let short: String = id4.chars().take(12).collect();
    let ls = sandboxes(&h);
    assert!(ls.contains(&format!(" {short} ")), "{ls}");
    h.exec(&name4, &["ping", "-c", "1", "-W", "2", "10.81.0.2"])
        .expect_ok("ping from c4");
    let (ok, out) = cni_named(&plugin, "DEL", (&id4, &name4), &p4, "eth0", &base);
    assert!(ok, "{out}");
    assert!(!sandboxes(&h).contains(&short));
    assert!(
        h.exec(&name4, &["ip", "link"]).ok(),
        "the runtime's namespace is still there"
    );

    // STATUS: available, unless the network is missing or switchd is down.
    let (ok, out) = cni(&plugin, "STATUS", "", "", "", &conf("1.1.0", &net, &h));
    assert!(ok && out.is_null(), "{out}");
    let (ok, out) = cni(&plugin, "STATUS", "", "", "", &conf("1.1.0", "nosuchnet", &h));
    assert!(!ok && out["code"] == 50, "{out}");

    // Bad input: a version we do not speak, a missing variable.
    let (ok, out) = cni(&plugin, "ADD", &c1, &p1, "eth0", &conf("0.3.1", &net, &h));
    assert!(!ok && out["code"] == 1, "{out}");
    let (ok, out) = cni(&plugin, "ADD", &c1, "", "eth0", &base);
    assert!(
        !ok && out["code"] == 4 && out["msg"].as_str().unwrap().contains("CNI_NETNS"),
        "{out}"
    );
    let (ok, out) = cni(&plugin, "VERSION", "", "", "", &json!({"cniVersion": "1.0.0"}));
    assert!(ok && out["supportedVersions"] == json!(["1.0.0", "1.1.0"]), "{out}");

    // switchd restarted after the container's namespace went (both the runtime's and the
    // one switchd published): DEL still releases the container.
    h.kill9();
    let (ok, out) = cni(&plugin, "ADD", &h.name("c3"), &p1, "eth9", &base);
    assert!(!ok && out["code"] == 11, "switchd down: {out}");
    let (ok, out) = cni(&plugin, "STATUS", "", "", "", &conf("1.1.0", &net, &h));
    assert!(!ok && out["code"] == 50, "{out}");
    for ns in [&rt2, &c2] {
        let p = format!("/run/netns/{ns}");
        let _ = Command::new("umount").arg(&p).status();
        let _ = std::fs::remove_file(&p);
    }
    h.restart();
    let (ok, out) = cni(&plugin, "DEL", &c2, &p2, "eth0", &base);
    assert!(ok, "{out}");
    let ls = sandboxes(&h);
    assert!(ls.contains(&c1) && !ls.contains(&c2), "{ls}");
    let (ok, out) = cni(&plugin, "DEL", &c1, &p1, "eth0", &base);
    assert!(ok, "{out}");
    assert!(!sandboxes(&h).contains(&c1));
    // The runtime's namespace stays the runtime's.
    assert!(Path::new(&p1).exists());
}

/// podman's root, run root, configuration and plugin directory; every container is removed
/// and every directory deleted when dropped.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(tag: &str, h: &Host, network: &str) -> Podman {
        let dir = std::env::temp_dir().join(format!("switch-podman-{tag}"));
        let p = Podman { dir: dir.clone() };
        p.cleanup();
        let rootfs = dir.join("rootfs");
        for d in ["rootfs/bin", "rootfs/etc", "conf", "plugins"] {
            std::fs::create_dir_all(dir.join(d)).expect("podman dirs");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("busybox-static");
        let applets = run("/bin/busybox", ["--list"]);
        for a in applets.expect_ok("busybox --list").lines() {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        std::fs::copy(testbed::bin_dir!().join("switch-cni"), dir.join("plugins/switch-cni")).expect("plugin");
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": network,
            "plugins": [{
                "type": "switch-cni",
                "network": network,
                "socket": h.socket(),
                "capabilities": {"aliases": true},
            }],
        });
        std::fs::write(dir.join(format!("conf/{network}.conflist")), conflist.to_string()).unwrap();
        let conf = format!(
            "[engine]\nruntime = \"runc\"\n[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{}\"\ncni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\n",
            dir.join("conf").display(),
            dir.join("plugins").display()
        );
        std::fs::write(dir.join("containers.conf"), conf).unwrap();
        p
    }

    fn podman(&self, args: &[&str]) -> testbed::Output {
        let root = self.dir.join("root");
        let runroot = self.dir.join("runroot");
        let mut all: Vec<String> = vec![
            "--root".into(),
            root.display().to_string(),
            "--runroot".into(),
            runroot.display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let conf = self.dir.join("containers.conf");
        let out = Command::new("timeout")
            .arg("120")
            .arg("podman")
            .args(&all)
            .env("CONTAINERS_CONF", conf)
            .output()
            .expect("podman runs");
        testbed::Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn start(&self, name: &str, extra: &[&str]) {
        let rootfs = format!("{}:O", self.dir.join("rootfs").display());
        let mut args = vec!["run", "-d", "--name", name, "--cap-add", "NET_RAW"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rootfs", &rootfs, "/bin/sleep", "300"]);
        self.podman(&args).expect_ok("podman run");
    }

    fn cleanup(&self) {
        if self.dir.join("root").exists() {
            let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
            let _ = self.podman(&["system", "reset", "-f"]);
        }
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("root"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.cleanup();
    }
}

#[test]
fn cni_results_carry_ipv6_on_a_dual_stack_network() {
    let Some(h) = testbed::e2e_host!("cni6") else { return };
    let plugin = testbed::bin_dir!().join("switch-cni");
    let net = h.name("n6");
    h.ctl([
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.83.0.0/24",
        "--subnet",
        "fd83::/64",
        &net,
    ])
    .expect_ok("network create");
    let rt = h.name("rt");
    run("ip", ["netns", "add", &rt]).expect_ok("ip netns add");
    let p = format!("/run/netns/{rt}");
    let c = h.name("c");
    // runtimeConfig's ips: one address of each family.
    let asked = with(
        conf("1.1.0", &net, &h),
        "runtimeConfig",
        json!({"ips": ["10.83.0.9/24", "fd83::9/64"]}),
    );
    let (ok, r) = cni(&plugin, "ADD", &c, &p, "eth0", &asked);
    assert!(ok, "{r}");
    assert_eq!(
        r["ips"],
        json!([
            {"address": "10.83.0.9/24", "gateway": "10.83.0.1", "interface": 0},
            {"address": "fd83::9/64", "gateway": "fd83::1", "interface": 0},
        ])
    );
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.83.0.1"}, {"dst": "::/0", "gw": "fd83::1"}])
    );
    h.exec(&rt, &["ping", "-c", "1", "-W", "2", "fd83::1"])
        .expect_ok("ping6 the gateway");
    // CHECK reads both addresses from the namespace.
    let checked = with(asked.clone(), "prevResult", r.clone());
    let (ok, out) = cni(&plugin, "CHECK", &c, &p, "eth0", &checked);
    assert!(ok && out.is_null(), "{out}");
    h.exec(&rt, &["ip", "-6", "addr", "del", "fd83::9/64", "dev", "eth0"])
        .expect_ok("remove the address");
    let (ok, out) = cni(&plugin, "CHECK", &c, &p, "eth0", &checked);
    assert!(
        !ok && out["msg"].as_str().unwrap().contains("does not hold fd83::9"),
        "{out}"
    );
    let (ok, out) = cni(&plugin, "DEL", &c, &p, "eth0", &asked);
    assert!(ok, "{out}");
    run("ip", ["netns", "del", &rt]).expect_ok("ip netns del");
}

#[test]
fn podman_containers_use_a_switchd_network() {
    let Some(h) = testbed::e2e_host!("cnip") else { return };
    let net = h.name("pn");
    h.ctl(["network", "create", "--subnet", "10.83.0.0/24", &net])
        .expect_ok("network create");
    let pm = Podman::new(h.prefix(), &h, &net);
    let (c1, c2) = (h.name("c1"), h.name("c2"));
    pm.start(&c1, &["--network", &net, "--network-alias", "db"]);
    pm.start(&c2, &["--network", &net]);
    // switchd gave the addresses; the containers are its sandboxes, named as podman's.
    let ls = sandboxes(&h);
    assert!(ls.contains(&c1) && ls.contains("10.83.0.2/24"), "{ls}");
    assert!(ls.contains(&c2) && ls.contains("10.83.0.3/24"), "{ls}");
    let addr = pm.podman(&["exec", &c2, "ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.expect_ok("ip addr").contains("10.83.0.3/24"), "{}", addr.stdout);
    // podman writes the embedded DNS into the containers' resolv.conf.
    let resolv = pm.podman(&["exec", &c2, "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.expect_ok("resolv.conf").starts_with("nameserver 10.83.0.1"),
        "{}",
        resolv.stdout
    );
    // Names: by container name and by alias, through the embedded DNS; then ping.
    for name in [c1.as_str(), "db"] {
        let ns = pm.podman(&["exec", &c2, "nslookup", name]);
        assert!(ns.expect_ok("nslookup").contains("10.83.0.2"), "{name}: {}", ns.stdout);
    }
    pm.podman(&["exec", &c2, "ping", "-c", "1", "-W", "2", &c1])
        .expect_ok("ping by name");
    pm.podman(&["exec", &c1, "ping", "-c", "1", "-W", "2", "10.83.0.3"])
        .expect_ok("ping back");
    // podman rm releases the addresses: the next container gets the first one again.
    pm.podman(&["rm", "-f", "-t", "0", &c1]).expect_ok("podman rm");
    let ls = sandboxes(&h);
    assert!(!ls.contains(&c1) && !ls.contains("10.83.0.2/24"), "{ls}");
    let c3 = h.name("c3");
    pm.start(&c3, &["--network", &net]);
    assert!(sandboxes(&h).contains("10.83.0.2/24"));
    pm.podman(&["rm", "-f", "-t", "0", &c2, &c3]).expect_ok("podman rm");
    assert!(!sandboxes(&h).contains(&net));
}

/// The MAC address of `ifname` in namespace `ns` (`ip -n`).
fn mac_in(ns: &str, ifname: &str) -> String {
    let out = run("ip", ["-n", ns, "-j", "link", "show", ifname]);
    let v: Value = serde_json::from_str(out.expect_ok("ip link")).expect("ip -j");
    v[0]["address"].as_str().expect("an address").to_string()
}

#[test]
fn a_pod_cannot_take_a_mac_that_a_port_holds() {
    let Some(h) = testbed::e2e_host!("cnm") else { return };
    let plugin = testbed::bin_dir!().join("switch-cni");
    let net = h.name("n");
    let gw_if = format!("{}g", h.prefix());
    let bridge = format!("com.docker.network.bridge.name={gw_if}");
    h.ctl(["network", "create", "--subnet", "10.83.9.0/24", "-o", &bridge, &net])
        .expect_ok("network create");
    let (rt1, rt2) = (h.name("rt1"), h.name("rt2"));
    for ns in [&rt1, &rt2] {
        run("ip", ["netns", "add", ns]).expect_ok("ip netns add");
    }
    let (c1, c2) = (h.name("c1"), h.name("c2"));
    let base = conf("1.1.0", &net, &h);
    let (ok, r1) = cni(&plugin, "ADD", &c1, &format!("/run/netns/{rt1}"), "eth0", &base);
    assert!(ok, "{r1}");
    let victim = r1["interfaces"][0]["mac"].as_str().unwrap().to_string();
    let gateway = mac_in(h.ns(), &gw_if);
    // runtimeConfig.mac naming the gateway's MAC, then the other pod's: refused, whose it is said.
    for (mac, holder) in [(gateway.as_str(), "gateway"), (victim.as_str(), c1.as_str())] {
        let asked = with(base.clone(), "runtimeConfig", json!({"mac": mac}));
        let (ok, r) = cni(&plugin, "ADD", &c2, &format!("/run/netns/{rt2}"), "eth0", &asked);
        assert!(!ok, "{r}");
        let msg = r["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("MAC address {mac}")) && msg.contains(holder),
            "{r}"
        );
        assert!(!sandboxes(&h).contains(&c2), "nothing made for the refused pod");
    }
    h.exec(&rt1, &["ping", "-c", "1", "-W", "2", "10.83.9.1"])
        .expect_ok("the first pod still reaches its gateway");
}
