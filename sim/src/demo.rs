//! `switchsim demo`: a two-host fabric and the story of container networking, step by step,
//! each command printed with what it answered; everything is removed at the end.

use std::path::Path;

use testbed::netns::{in_netns, Fabric, Host, NETNS_DIR};

/// One step: what it shows, on which host, and whether it is meant to fail.
struct Demo<'a> {
    hosts: [(&'a str, &'a Host); 2],
    ok: bool,
}

impl Demo<'_> {
    fn say(&self, text: &str) {
        println!("\n# {text}");
    }

    fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|(n, _)| *n == name).expect("known host").1
    }

    fn show(&mut self, out: testbed::Output, shown: String, expect_ok: bool) {
        println!("{shown}");
        print!("{}", out.stdout);
        print!("{}", out.stderr);
        if out.ok() != expect_ok {
            println!(
                "!! this step was expected to {}",
                if expect_ok { "succeed" } else { "fail" }
            );
            self.ok = false;
        } else if !expect_ok {
            println!("(it fails, as it should)");
        }
    }

    /// `switchctl ARGS` on host `on`.
    fn ctl(&mut self, on: &str, args: &[&str]) {
        let out = self.host(on).ctl(args);
        self.show(out, format!("{on}$ switchctl {}", args.join(" ")), true);
    }

    /// A command in namespace `sb` (a sandbox, or a host's own) of host `on`; `expect_ok`
    /// false for what must not work.
    fn exec(&mut self, on: &str, sb: &str, cmd: &[&str], expect_ok: bool) {
        let out = self.host(on).exec(sb, cmd);
        self.show(out, format!("{on}$ ip netns exec {sb} {}", cmd.join(" ")), expect_ok);
    }
}

/// Runs the walk-through with the binaries in `bin_dir`; true when every step went as meant.
/// With `keep`, stops before removing anything and says how to reach each piece.
pub fn run(bin_dir: &Path, keep: bool) -> bool {
    let p = testbed::prefix("demo");
    let fabric = Fabric::new(&p, 97, bin_dir);
    fabric.cert("ca", "h1");
    fabric.cert("ca", "h2");
    let h1 = fabric.start(1, "h1");
    let h2 = fabric.start(2, "h2");
    let mut d = Demo {
        hosts: [("h1", &h1), ("h2", &h2)],
        ok: true,
    };
    println!(
        "# Two hosts, h1 and h2 (namespaces {} and {}), joined by a wire (10.97.0.0/24), each\n\
         # running switchd; they form a cluster under one CA (switchctl cluster init / cert).",
        h1.ns(),
        h2.ns()
    );
    wait(|| h1.ctl(["cluster", "peers"]).stdout.matches("alive").count() == 2);
    d.ctl("h1", &["cluster", "peers"]);

    single_host(&mut d, &h1);
    across_hosts(&mut d, &h1, &h2);
    if keep {
        wait_for_enter(&d, &p);
    }
    println!("\n# Removing everything: sandboxes, networks, hosts, the wire.");
    d.ok
}

/// What one host does: Docker's built-in networks, user-defined ones with names, isolation and
/// connect, a published port.
fn single_host(d: &mut Demo, h1: &Host) {
    // Sandbox names under their host's prefix: its cleanup removes them.
    let n = |s: &str| h1.name(s);
    d.say("Every host has Docker's three networks: bridge (NAT to the outside), host, none.");
    d.ctl("h1", &["network", "ls"]);
    let (web, hostsb, nonesb) = (n("web"), n("hostmode"), n("nonemode"));
    d.ctl("h1", &["sandbox", "create", &web]);
    d.ctl("h1", &["sandbox", "create", "--network", "host", &hostsb]);
    d.ctl("h1", &["sandbox", "create", "--network", "none", &nonesb]);
    d.exec("h1", &web, &["ip", "-brief", "-4", "addr", "show", "eth0"], true);
    d.exec("h1", &nonesb, &["ip", "-brief", "link"], true);
    d.exec("h1", &hostsb, &["ip", "-brief", "-4", "addr", "show", "ul0"], true);

    d.say("A user-defined network with a chosen subnet, gateway and address; names resolve there.");
    let (app, db) = (n("app"), n("db"));
    d.ctl(
        "h1",
        &[
            "network",
            "create",
            "--subnet",
            "192.168.100.0/24",
            "--gateway",
            "192.168.100.1",
            "front",
        ],
    );
    d.ctl(
        "h1",
        &[
            "sandbox",
            "create",
            "--network",
            "front",
            "--ip",
            "192.168.100.10",
            &app,
        ],
    );
    d.ctl("h1", &["sandbox", "create", "--network", "front", &db]);
    d.exec("h1", &app, &["ping", "-c", "2", "-i", "0.2", &db], true);

    d.say("Networks are isolated; `network connect` joins a sandbox to a second one.");
    let cache = n("cache");
    d.ctl("h1", &["network", "create", "--subnet", "192.168.200.0/24", "back"]);
    d.ctl(
        "h1",
        &[
            "sandbox",
            "create",
            "--network",
            "back",
            "--ip",
            "192.168.200.20",
            &cache,
        ],
    );
    d.exec("h1", &app, &["ping", "-c", "1", "-W", "1", "192.168.200.20"], false);
    d.ctl("h1", &["network", "connect", "back", &app]);
    d.exec("h1", &app, &["ping", "-c", "2", "-i", "0.2", &cache], true);

    d.say("A published port: h1's port 8080 reaches port 80 of a sandbox.");
    let site = n("site");
    d.ctl(
        "h1",
        &["sandbox", "create", "--network", "front", "-p", "8080:80", &site],
    );
    d.ctl("h1", &["port", &site]);
    let server = serve_once(&site, "192.168.100.3:80");
    d.exec(
        "h1",
        h1.ns(),
        &["curl", "-s", "-m", "3", "http://10.97.0.1:8080/"],
        true,
    );
    let _ = server.join();
}

/// What two hosts do together: an overlay network, seeing into the switch, macvlan.
fn across_hosts(d: &mut Demo, h1: &Host, h2: &Host) {
    let n = |s: &str| h1.name(s);
    let n2 = |s: &str| h2.name(s);
    d.say("An overlay network spans both hosts (VXLAN, routes spread by gossip).");
    let (o1, o2) = (n("o1"), n2("o2"));
    d.ctl(
        "h1",
        &["network", "create", "-d", "overlay", "--subnet", "10.88.0.0/24", "ovl"],
    );
    wait(|| h2.ctl(["network", "inspect", "ovl"]).ok());
    d.ctl("h2", &["network", "ls"]);
    d.ctl("h1", &["sandbox", "create", "--network", "ovl", &o1]);
    d.ctl("h2", &["sandbox", "create", "--network", "ovl", &o2]);
    wait(|| h1.exec(&o1, &["getent", "hosts", &o2]).ok());
    d.exec("h1", &o1, &["ping", "-c", "2", "-i", "0.2", &o2], true);

    d.say(
        "Seeing into the switch: the MAC table names the host behind each remote address, and a\n\
         # trace shows each stage's decision for a frame without sending it.",
    );
    d.ctl("h1", &["fdb", "ovl"]);
    let o2_ip = h2
        .exec(&o2, &["ip", "-4", "-o", "addr", "show", "eth0"])
        .stdout
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok());
    if let Some(ip) = o2_ip {
        let [a, b, c, e] = ip.octets();
        let mac = format!("02:42:{a:02x}:{b:02x}:{c:02x}:{e:02x}");
        d.ctl("h1", &["trace", "ovl", "--in", &o1, "--frame", &format!("arp={ip}")]);
        d.ctl("h1", &["trace", "ovl", "--in", &o1, "--frame", &format!("dst={mac}")]);
    } else {
        println!("!! o2 has no address to trace a frame to");
        d.ok = false;
    }

    d.say("A macvlan network puts sandboxes straight on the wire, no bridge, no tunnel.");
    let (m1, m2) = (n("m1"), n2("m2"));
    for (h, sb, ip) in [("h1", &m1, "10.90.0.11"), ("h2", &m2, "10.90.0.12")] {
        d.ctl(
            h,
            &[
                "network",
                "create",
                "-d",
                "macvlan",
                "--subnet",
                "10.90.0.0/24",
                "-o",
                "parent=ul0",
                "lan",
            ],
        );
        d.ctl(h, &["sandbox", "create", "--network", "lan", "--ip", ip, sb]);
    }
    d.exec("h1", &m1, &["ping", "-c", "2", "-i", "0.2", "10.90.0.12"], true);
    d.ctl("h1", &["ports"]);
}

/// Says how to reach each piece, and waits for Enter before anything is removed.
fn wait_for_enter(d: &Demo, p: &str) {
    println!("\n# Kept. Reach each piece with:");
    for (name, h) in d.hosts {
        println!(
            "#   {name}: ip netns exec {} switchctl -H {} ...",
            h.ns(),
            h.socket().display()
        );
    }
    println!("#   sandboxes: ip netns exec NAME ... (ip netns list | grep {p})");
    println!("# Press Enter to remove everything.");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Answers one HTTP request on `addr` inside sandbox `sb`.
fn serve_once(sb: &str, addr: &'static str) -> std::thread::JoinHandle<()> {
    in_netns(&Path::new(NETNS_DIR).join(sb), move || {
        use std::io::{Read, Write};
        let Ok(l) = std::net::TcpListener::bind(addr) else {
            return;
        };
        let _ = l.set_nonblocking(false);
        if let Ok((mut s, from)) = l.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let body = format!("hello from the site sandbox; you came from {from}\n");
            let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        }
    })
}

/// Waits up to 15 s for `ok`.
fn wait(mut ok: impl FnMut() -> bool) {
    for _ in 0..150 {
        if ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
