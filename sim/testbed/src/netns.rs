//! Host namespaces with a running switchd, and the commands tests run against them.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `ip netns` publishes namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The outside namespace's address (see [`Host::add_outside`]).
pub const OUTSIDE_IP: &str = "10.99.0.2";

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Whether the command exited 0.
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Panics with the command's output unless it exited 0; returns stdout.
    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &str {
        assert!(
            self.ok(),
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Panics unless the command failed; returns stderr.
    #[track_caller]
    pub fn expect_err(&self, what: &str) -> &str {
        assert!(!self.ok(), "{what} should have failed but printed:\n{}", self.stdout);
        &self.stderr
    }
}

/// Runs a command to completion.
pub fn run<I, S>(prog: impl AsRef<OsStr>, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let prog = prog.as_ref().to_owned();
    match Command::new(&prog).args(args).stdin(Stdio::null()).output() {
        Ok(o) => Output {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Err(e) => Output {
            code: -1,
            stdout: String::new(),
            stderr: format!("cannot run {}: {e}", prog.to_string_lossy()),
        },
    }
}

/// Whether this process runs as root (the end-to-end tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether an end-to-end test may run: as root. Without root it is skipped (with a word on
/// stderr), unless `SWITCH_E2E=require`, which CI sets, turns that into a failure.
///
/// # Panics
/// Without root when `SWITCH_E2E=require`.
pub fn e2e_allowed(tag: &str) -> bool {
    if is_root() {
        return true;
    }
    assert_ne!(
        std::env::var("SWITCH_E2E").as_deref(),
        Ok("require"),
        "end-to-end tests need root"
    );
    eprintln!("skipping {tag}: end-to-end tests need root");
    false
}

/// A [`Host`] for an end-to-end test named `tag` (see [`e2e_allowed`]), switchd started with
/// `args`; `None` when the test is skipped.
pub fn e2e_host(tag: &str, bin_dir: &Path, args: &[&str]) -> Option<Host> {
    e2e_allowed(tag).then(|| Host::start_with(&prefix(tag), bin_dir, args))
}

/// The directory of the binaries of the calling test crate (switchd's, switchctl's), from
/// Cargo's `CARGO_BIN_EXE_switchd` as the calling crate sees it.
#[macro_export]
macro_rules! bin_dir {
    () => {
        std::path::Path::new(env!("CARGO_BIN_EXE_switchd"))
            .parent()
            .expect("target dir")
    };
}

/// [`e2e_host`] with the calling test crate's binaries and no extra switchd arguments.
#[macro_export]
macro_rules! e2e_host {
    ($tag:expr) => {
        $crate::e2e_host($tag, $crate::bin_dir!(), &[])
    };
}

/// Polls `f` every 100 ms until it holds or `secs` pass; whether it held.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `s` as JSON.
///
/// # Panics
/// If it is not JSON, saying so with the text.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Whether one ping from namespace `from` to `ip` is answered within 2 s.
pub fn ping(h: &Host, from: &str, ip: &str) -> bool {
    h.exec(from, &["ping", "-c", "1", "-W", "2", ip]).ok()
}

/// A prefix unique to this test and process, short enough for interface and namespace names.
pub fn prefix(tag: &str) -> String {
    let p = format!("{tag}{}", std::process::id() % 100_000);
    claim(&p);
    p
}

/// Where each run notes the prefix of the namespaces it makes and its process, so that
/// [`clean_stale`] can tell what an interrupted run left from what a live one uses.
pub const RUNS_DIR: &str = "/run/switch-runs";

/// Process `pid`, as `PID STARTTIME` (the start time tells a reused PID apart); `None` when
/// it is gone or a zombie (dead, not reaped yet).
fn process_tag(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: the 3rd field, state, is the first; the
    // 22nd, start time, the 20th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if matches!(fields.first(), Some(&("Z" | "X"))) {
        return None;
    }
    Some(format!("{pid} {}", fields.get(19)?))
}

/// Notes `prefix` as this process's (nothing when /run cannot be written: not root).
fn claim(prefix: &str) {
    let Some(me) = process_tag(std::process::id()) else {
        return;
    };
    if fs::create_dir_all(RUNS_DIR).is_ok() {
        let _ = fs::write(Path::new(RUNS_DIR).join(prefix), format!("{me}\n"));
    }
}

/// The prefixes runs noted, each with whether the run that noted it is still alive and
/// whether it is this process.
fn claims() -> Vec<(String, bool, bool)> {
    let Ok(entries) = fs::read_dir(RUNS_DIR) else {
        return Vec::new();
    };
    let me = process_tag(std::process::id());
    entries
        .flatten()
        .filter_map(|e| {
            let prefix = e.file_name().to_string_lossy().into_owned();
            let noted = fs::read_to_string(e.path()).ok()?;
            let noted = noted.trim();
            let pid: u32 = noted.split_whitespace().next()?.parse().ok()?;
            let alive = process_tag(pid).as_deref() == Some(noted);
            Some((prefix, alive, me.as_deref() == Some(noted)))
        })
        .collect()
}

/// Removes what runs that ended without cleaning up left (their namespaces, processes and
/// files, as [`remove_prefix`]): a Ctrl-C, a kill, a crash. A live run's are left alone.
/// Returns each prefix removed and how many namespaces it had.
pub fn clean_stale() -> Vec<(String, usize)> {
    claims()
        .into_iter()
        .filter(|(_, alive, _)| !alive)
        .map(|(p, _, _)| {
            let n = remove_run(&p);
            let _ = fs::remove_file(Path::new(RUNS_DIR).join(&p));
            (p, n)
        })
        .collect()
}

/// Removes everything this process made under any prefix ([`remove_prefix`]): what an
/// interrupted demo or benchmark runs before it exits.
pub fn clean_own() -> usize {
    claims()
        .into_iter()
        .filter(|(_, _, mine)| *mine)
        .map(|(p, _, _)| {
            let n = remove_run(&p);
            let _ = fs::remove_file(Path::new(RUNS_DIR).join(&p));
            n
        })
        .sum()
}

/// One simulated host: a network namespace running switchd, plus the binaries to drive it.
pub struct Host {
    prefix: String,
    ns: String,
    dir: PathBuf,
    switchd: PathBuf,
    switchctl: PathBuf,
    extra: Vec<String>,
    nofile: Option<u64>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Host {
    /// Creates namespace `<prefix>-h` and starts switchd in it, waiting until its API answers.
    ///
    /// # Panics
    /// If the namespace cannot be made or switchd does not come up within 10 s.
    pub fn start(prefix: &str, bin_dir: &Path) -> Host {
        Host::start_with(prefix, bin_dir, &[])
    }

    /// Like [`Host::start`], with extra switchd arguments.
    ///
    /// # Panics
    /// As [`Host::start`].
    pub fn start_with(prefix: &str, bin_dir: &Path, extra: &[&str]) -> Host {
        Host::start_limited(prefix, bin_dir, extra, None)
    }

    /// Like [`Host::start_with`], with switchd's descriptor limit (soft and hard) set to
    /// `nofile` when given, as `prlimit --nofile` would on a real host.
    ///
    /// # Panics
    /// As [`Host::start`].
    pub fn start_limited(prefix: &str, bin_dir: &Path, extra: &[&str], nofile: Option<u64>) -> Host {
        let ns = format!("{prefix}-h");
        let dir = std::env::temp_dir().join(format!("switch-test-{prefix}"));
        let mut h = Host {
            prefix: prefix.to_string(),
            ns: ns.clone(),
            dir: dir.clone(),
            switchd: bin_dir.join("switchd"),
            switchctl: bin_dir.join("switchctl"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            nofile,
            env: Vec::new(),
            child: None,
        };
        for b in [&h.switchd, &h.switchctl] {
            assert!(
                b.exists(),
                "{} is missing: build the binaries first (cargo build --bins)",
                b.display()
            );
        }
        h.cleanup_leftovers();
        fs::create_dir_all(&dir).expect("temp dir");
        run("ip", ["netns", "add", &ns]).expect_ok("ip netns add");
        run("ip", ["-n", &ns, "link", "set", "lo", "up"]).expect_ok("lo up");
        h.spawn();
        h
    }

    /// The host namespace's name.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The test's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A name under the test's prefix, for sandboxes.
    pub fn name(&self, n: &str) -> String {
        format!("{}-{n}", self.prefix)
    }

    /// switchd's API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("switchd.sock")
    }

    /// switchd's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("switchd.log")).unwrap_or_default()
    }

    /// Where switchd keeps its state.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("switchd.log"))
            .expect("log file");
        // prlimit and nsenter both exec what follows: the child's pid is switchd's.
        let mut cmd = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg("nsenter");
                c
            }
            None => Command::new("nsenter"),
        };
        let child = cmd
            .arg(format!("--net={NETNS_DIR}/{}", self.ns))
            .arg(&self.switchd)
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--socket")
            .arg(self.socket())
            .arg("--log-level")
            .arg("debug")
            .args(&self.extra)
            .args(self.default_upstream())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn switchd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ctl(["network", "ls", "-q"]).ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("switchd exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("switchd did not answer within 10 s:\n{}", self.log());
    }

    /// Unless the test chose upstreams, DNS forwarding goes to the outside namespace's address
    /// (see [`Host::add_outside`]): never to the machine's own resolvers.
    fn default_upstream(&self) -> Vec<String> {
        if self.extra.iter().any(|a| a == "--dns-upstream") {
            return Vec::new();
        }
        vec!["--dns-upstream".into(), OUTSIDE_IP.into()]
    }

    /// Runs switchctl against this host's switchd.
    pub fn ctl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["-H".into(), self.socket().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        run(&self.switchctl, all)
    }

    /// A switch port's drop count for `reason` (`ip_spoof`, ...), as `switchctl ports` lists
    /// it; `interface` as it names the port (`SANDBOX/eth0`).
    pub fn drops(&self, interface: &str, reason: &str) -> u64 {
        let ports = json(self.ctl(["ports", "--format", "json"]).expect_ok("ports"));
        let p = ports
            .as_array()
            .expect("a list of ports")
            .iter()
            .find(|p| p["Interface"] == interface)
            .unwrap_or_else(|| panic!("{interface} in {ports}"));
        p["Drops"].get(reason).and_then(serde_json::Value::as_u64).unwrap_or(0)
    }

    /// [`Host::drops`] once it reaches `want` (within 5 s: the dataplane may be busy), or as it
    /// is then.
    pub fn drops_reach(&self, interface: &str, reason: &str, want: u64) -> u64 {
        let mut n = 0;
        eventually(5, || {
            n = self.drops(interface, reason);
            n >= want
        });
        n
    }

    /// Runs a command in a published namespace (`ip netns exec NAME ...`).
    pub fn exec(&self, netns: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["netns", "exec", netns];
        args.extend_from_slice(cmd);
        run("ip", args)
    }

    /// Makes the Linux kernel's own VXLAN device `vx0` (VNI `vni`, port 4789) in the outside
    /// namespace `out` (see [`Host::add_outside`]), towards this host's underlay address, and
    /// brings it up: an interop peer for an overlay network whose static VTEP is 10.99.0.2.
    ///
    /// # Panics
    /// If a step fails.
    pub fn add_kernel_vxlan(&self, out: &str, vni: u32) {
        kernel_vxlan(out, vni, OUTSIDE_IP, "10.99.0.1", None);
    }

    /// Gives the host an uplink to a new namespace `<prefix>-out` that plays the outside
    /// world: the host holds 10.99.0.1/24 on `uplink0`, the outside 10.99.0.2/24 on `eth0`,
    /// and the host's default route points there. Returns the outside namespace's name.
    ///
    /// # Panics
    /// If a step fails.
    pub fn add_outside(&self) -> String {
        let out = format!("{}-out", self.prefix);
        run("ip", ["netns", "add", &out]).expect_ok("ip netns add outside");
        let h = self.ns.as_str();
        let steps: [&[&str]; 8] = [
            &[
                "-n", h, "link", "add", "uplink0", "type", "veth", "peer", "name", "eth0", "netns", &out,
            ],
            &["-n", h, "addr", "add", "10.99.0.1/24", "dev", "uplink0"],
            &["-n", h, "link", "set", "uplink0", "up"],
            &["-n", &out, "addr", "add", "10.99.0.2/24", "dev", "eth0"],
            &["-n", &out, "link", "set", "eth0", "up"],
            &["-n", &out, "link", "set", "lo", "up"],
            &["-n", h, "route", "add", "default", "via", "10.99.0.2"],
            &["-n", &out, "route", "add", "default", "via", "10.99.0.1"],
        ];
        for args in steps {
            run("ip", args).expect_ok(&format!("ip {}", args.join(" ")));
        }
        // IPv4 only: no router solicitations or MLD reports on the wire or in tunnels.
        for key in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            run("ip", ["netns", "exec", &out, "sysctl", "-qw", key]).expect_ok("sysctl");
        }
        out
    }

    /// Stops switchd with SIGTERM (a clean stop) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// Sets (`Some`) or unsets an environment variable for switchd's next start.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.to_string(), v.to_string()));
        }
    }

    /// Sets switchd's extra arguments for its next start.
    pub fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
    }

    /// switchd's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether switchd is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills switchd with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops switchd (if running) and starts it again on the same state.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn cleanup_leftovers(&self) {
        remove_prefix(&self.prefix);
    }

    /// Leaves switchd running and everything in place when this handle goes (`switchsim up`).
    pub fn detach(mut self) {
        drop(self.child.take());
        std::mem::forget(self);
    }
}

/// Makes `vx0` in namespace `ns`, the Linux kernel's VXLAN device for `vni` on port 4789
/// from `local` to `remote` (either family), with `mtu` when given, and brings it up.
///
/// # Panics
/// If a step fails.
pub fn kernel_vxlan(ns: &str, vni: u32, local: &str, remote: &str, mtu: Option<u16>) {
    let vni = vni.to_string();
    let add = [
        "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", &vni, "dstport", "4789", "local", local, "remote",
        remote,
    ];
    run("ip", add).expect_ok("ip link add vxlan");
    let mtu = mtu.map(|m| m.to_string());
    let mut up = vec!["-n", ns, "link", "set", "vx0"];
    if let Some(m) = &mtu {
        up.extend(["mtu", m.as_str()]);
    }
    up.push("up");
    run("ip", up).expect_ok("vx0 up");
}

/// Removes what a host of prefix `prefix` left: processes still in its namespaces (a switchd
/// of a crashed run), the namespaces `PREFIX-*`, their /etc files and the host's directory.
pub fn remove_prefix(prefix: &str) -> usize {
    let mine = format!("{prefix}-");
    remove_where(prefix, |n| n.starts_with(&mine))
}

/// Removes the namespaces, processes and files of run prefix `prefix` and of the hosts under
/// it (a fabric's `PREFIXh1-h`): names that go on from it with a letter or a `-`, so that
/// `gw12` never takes `gw123`'s.
fn remove_run(prefix: &str) -> usize {
    let under = |rest: &str| rest.is_empty() || rest.starts_with(|c: char| c == '-' || c.is_ascii_lowercase());
    // A run being stopped may still have a namespace on the way (an `ip netns add`, a
    // request to a switchd, under way): what appears after a pass goes in the next.
    let mut n = 0;
    for _ in 0..5 {
        let pass = remove_where(prefix, |n| {
            n.strip_prefix(prefix).is_some_and(|r| r.contains('-') && under(r))
        });
        if pass == 0 {
            break;
        }
        n += pass;
        std::thread::sleep(Duration::from_millis(100));
    }
    // The directories of the run's hosts (`switch-test-PREFIXh1`) and of its fabric.
    let tmp = std::env::temp_dir();
    if let Ok(entries) = fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = ["switch-test-", "switch-fabric-"]
                .iter()
                .find_map(|d| name.strip_prefix(d)?.strip_prefix(prefix));
            if rest.is_some_and(under) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    n
}

/// [`remove_prefix`] of the namespaces `ours` picks, and of `prefix`'s files.
fn remove_where(prefix: &str, ours: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = fs::read_dir(NETNS_DIR) else {
        return 0;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| ours(n))
        .collect();
    // Every process in them first (a switchd that goes on creating sandboxes would add
    // namespaces behind the removal), then the sandboxes, the host namespaces (PREFIX-h) last.
    names.sort_by_key(|n| n.ends_with("-h"));
    for name in &names {
        for pid in run("ip", ["netns", "pids", name]).stdout.split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    for name in &names {
        let path = Path::new(NETNS_DIR).join(name);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in paths");
        // SAFETY: c is a valid C string; MNT_DETACH on a non-mount fails harmlessly.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = fs::remove_file(&path);
    }
    let _ = fs::remove_dir_all(std::env::temp_dir().join(format!("switch-test-{prefix}")));
    // The Docker plugin socket a test's switchd served under the test's prefix.
    let _ = fs::remove_file(Path::new(crate::docker::PLUGIN_DIR).join(format!("{prefix}.sock")));
    if let Ok(etc) = fs::read_dir("/etc/netns") {
        for e in etc.flatten().filter(|e| ours(&e.file_name().to_string_lossy())) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    names.len()
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
        self.cleanup_leftovers();
    }
}

/// Runs `f` on a thread inside the namespace published at `path` and returns its result.
///
/// # Panics
/// If the namespace cannot be entered or `f` panics.
pub fn in_netns<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: file is an open namespace descriptor; setns affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}

/// A shared L2 underlay: a namespace holding a Linux bridge that hosts attach to with veth
/// wires. Removed when dropped.
pub struct Underlay {
    ns: String,
    ports: std::cell::Cell<u32>,
}

impl Underlay {
    /// Creates namespace `<prefix>-ul` with bridge `br0`.
    ///
    /// # Panics
    /// If a step fails.
    pub fn new(prefix: &str) -> Underlay {
        let ns = format!("{prefix}-ul");
        let _ = run("ip", ["netns", "delete", &ns]);
        run("ip", ["netns", "add", &ns]).expect_ok("underlay namespace");
        run("ip", ["-n", &ns, "link", "add", "br0", "type", "bridge"]).expect_ok("bridge");
        run("ip", ["-n", &ns, "link", "set", "br0", "up"]).expect_ok("bridge up");
        Underlay {
            ns,
            ports: std::cell::Cell::new(0),
        }
    }

    /// Wires `host` to the bridge: `ul0` in the host's namespace with `cidr` (e.g. 10.98.0.1/24).
    ///
    /// # Panics
    /// If a step fails.
    pub fn attach(&self, host: &Host, cidr: &str) {
        self.attach_ns(host.ns(), cidr);
    }

    /// Wires the namespace `h` to the bridge: `ul0` there with `cidr` (an IPv6 one usable at
    /// once: no duplicate address detection).
    ///
    /// # Panics
    /// If a step fails.
    pub fn attach_ns(&self, h: &str, cidr: &str) {
        let n = self.ports.get();
        self.ports.set(n + 1);
        let port = format!("p{n}");
        let addr: &[&str] = if cidr.contains(':') {
            &["-n", h, "addr", "add", cidr, "dev", "ul0", "nodad"]
        } else {
            &["-n", h, "addr", "add", cidr, "dev", "ul0"]
        };
        let steps: [&[&str]; 5] = [
            &[
                "-n", h, "link", "add", "ul0", "type", "veth", "peer", "name", &port, "netns", &self.ns,
            ],
            &["-n", &self.ns, "link", "set", &port, "master", "br0", "up"],
            addr,
            &["-n", h, "link", "set", "ul0", "up"],
            &["-n", h, "link", "set", "lo", "up"],
        ];
        for args in steps {
            run("ip", args).expect_ok(&format!("ip {}", args.join(" ")));
        }
    }

    /// The bridge namespace's name.
    pub fn ns(&self) -> &str {
        &self.ns
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        let _ = run("ip", ["netns", "delete", &self.ns]);
    }
}

/// A tcpdump running in a namespace, printing link-level headers (`-e`), for tests that look
/// at the wire. The capture starts when [`Capture::start`] returns.
pub struct Capture {
    child: Option<Child>,
}

impl Capture {
    /// Captures on `iface` in namespace `ns` for at most `secs` seconds, with `filter` (a
    /// pcap filter expression, split on spaces).
    ///
    /// # Panics
    /// If tcpdump cannot be started.
    pub fn start(ns: &str, iface: &str, filter: &str, secs: u32) -> Capture {
        let secs = secs.to_string();
        let mut args = vec![
            "netns", "exec", ns, "timeout", &secs, "tcpdump", "-nn", "-e", "-l", "-i", iface,
        ];
        args.extend(filter.split_whitespace());
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump");
        // tcpdump needs a moment to open the interface.
        std::thread::sleep(Duration::from_millis(500));
        Capture { child: Some(child) }
    }

    /// Waits for the capture's end and returns what it printed, a line per frame.
    pub fn finish(mut self) -> String {
        let child = self.child.take().expect("one finish");
        let out = child.wait_with_output().expect("tcpdump output");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends `frame` (a whole Ethernet frame, tags and all) out of `iface` in the namespace
/// published at `netns_path`, through an AF_PACKET socket: what a host or container on that
/// link could put on the wire.
///
/// # Panics
/// If the socket cannot be made or the frame is not sent.
pub fn send_raw(netns_path: &Path, iface: &str, frame: Vec<u8>) {
    send_raw_offloaded(netns_path, iface, None, frame);
}

/// Like [`send_raw`], with a virtio-net header given to the kernel through `PACKET_VNET_HDR`
/// (offload metadata, as any container with CAP_NET_RAW can send): `vnet` is its 10 bytes.
///
/// # Panics
/// If the socket cannot be made or the frame is not sent.
pub fn send_raw_offloaded(netns_path: &Path, iface: &str, vnet: Option<[u8; 10]>, frame: Vec<u8>) {
    send_frames(netns_path, iface, vnet, frame, 1);
}

/// Like [`send_raw`], `count` times in a row through one socket (a storm).
///
/// # Panics
/// If the socket cannot be made or a frame is not sent.
pub fn send_raw_repeated(netns_path: &Path, iface: &str, frame: Vec<u8>, count: usize) {
    send_frames(netns_path, iface, None, frame, count);
}

/// Sends an SCTP INIT (association start) from port `sport` to `dst`:`dport` through a raw
/// IPv4 socket in the namespace published at `netns_path`: what an SCTP client sends first,
/// with no SCTP in the kernel needed. Its CRC32c is right, so conntrack takes it as a new
/// association (and NAT applies).
///
/// # Panics
/// If the socket cannot be made or the packet is not sent.
pub fn send_sctp_init(netns_path: &Path, dst: std::net::Ipv4Addr, sport: u16, dport: u16) {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0; 4]); // verification tag: 0 on an INIT
    p.extend_from_slice(&[0; 4]); // checksum, below
                                  // INIT: type 1, flags 0, length 20, initiate tag, a_rwnd, streams out and in, TSN.
    p.extend_from_slice(&[1, 0, 0, 20]);
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&65_536u32.to_be_bytes());
    p.extend_from_slice(&[0, 10, 0, 10]);
    p.extend_from_slice(&1u32.to_be_bytes());
    let crc = crc32c(&p);
    // RFC 4960 appendix B: the CRC32c goes in little-endian byte order.
    p[8..12].copy_from_slice(&crc.to_le_bytes());
    in_netns(netns_path, move || {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: plain socket creation; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_SCTP) };
        assert!(fd >= 0, "raw SCTP socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor we own.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_in is plain old data; all-zero is valid before we fill it.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as u16;
        sin.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
        // SAFETY: p and sin are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                p.as_ptr().cast(),
                p.len(),
                0,
                (&sin as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(n, p.len() as isize, "sendto: {}", std::io::Error::last_os_error());
    })
    .join()
    .expect("the sender thread");
}

/// CRC32c (Castagnoli, reflected), as SCTP checksums its packets.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn send_frames(netns_path: &Path, iface: &str, vnet: Option<[u8; 10]>, frame: Vec<u8>, count: usize) {
    let iface = std::ffi::CString::new(iface).expect("interface name");
    in_netns(netns_path, move || {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: plain socket creation; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor we own.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut bytes = frame.clone();
        if let Some(h) = vnet {
            let on: libc::c_int = 1;
            // SAFETY: sock is a live AF_PACKET socket; PACKET_VNET_HDR takes an int.
            let rc = unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_VNET_HDR,
                    (&on as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "PACKET_VNET_HDR: {}", std::io::Error::last_os_error());
            bytes = h.to_vec();
            bytes.extend_from_slice(&frame);
        }
        // SAFETY: iface is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(iface.as_ptr()) };
        assert_ne!(index, 0, "no interface {iface:?}");
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid before we fill it.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = index as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        for _ in 0..count {
            // SAFETY: bytes and sll are valid for the lengths given.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(n, bytes.len() as isize, "sendto: {}", std::io::Error::last_os_error());
        }
    })
    .join()
    .expect("send_raw thread");
}

/// Sends `mb` MiB over one TCP connection from sandbox namespace `from` to a listener on
/// `to_ip:5001` in namespace `to` (both under [`NETNS_DIR`]); the bytes the listener counted.
/// Either side giving up for 20 s fails the transfer.
///
/// # Panics
/// If the connection cannot be made, stalls, or breaks.
pub fn tcp_bulk(from: &str, to: &str, to_ip: &str, mb: usize) -> usize {
    tcp_transfer(from, to, to_ip, Pace::Bulk(mb)).1
}

/// How [`tcp_transfer`] sends.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// This many MiB, as fast as the connection takes them.
    Bulk(usize),
    /// 256 KiB every 20 ms for this long: a connection that stays busy while something
    /// changes under it.
    For(Duration),
}

/// Sends over one TCP connection from sandbox namespace `from` to a listener on
/// `to_ip:5001` in namespace `to` (both under [`NETNS_DIR`]) as `pace` says; the bytes sent
/// and the bytes the listener counted. Either side giving up for 20 s fails the transfer.
///
/// # Panics
/// If the connection cannot be made, stalls, or breaks.
pub fn tcp_transfer(from: &str, to: &str, to_ip: &str, pace: Pace) -> (usize, usize) {
    use std::io::{Read, Write};
    let ip: std::net::IpAddr = to_ip.parse().expect("an IPv4 or IPv6 address");
    let addr = std::net::SocketAddr::new(ip, 5001).to_string();
    let bind = addr.clone();
    let stall = Some(Duration::from_secs(20));
    let server = in_netns(&Path::new(NETNS_DIR).join(to), move || {
        let l = std::net::TcpListener::bind(&bind).expect("listen");
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(stall).expect("timeout");
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match s.read(&mut buf).expect("read: the connection broke") {
                0 => break total,
                n => total += n,
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let client = in_netns(&Path::new(NETNS_DIR).join(from), move || {
        let to = addr.parse().expect("address");
        let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
        s.set_write_timeout(stall).expect("timeout");
        let mut sent = 0;
        match pace {
            Pace::Bulk(mb) => {
                let chunk = vec![7u8; 1 << 20];
                for _ in 0..mb {
                    s.write_all(&chunk).expect("write: the connection broke");
                    sent += chunk.len();
                }
            }
            Pace::For(d) => {
                let (chunk, t0) = (vec![7u8; 256 << 10], Instant::now());
                while t0.elapsed() < d {
                    s.write_all(&chunk).expect("write: the connection broke");
                    sent += chunk.len();
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        sent
    });
    let sent = client.join().expect("client");
    (sent, server.join().expect("server"))
}

/// A cluster on one underlay: a CA (and any other CA a test asks for) in a temporary
/// directory, host certificates, and hosts started as members that join the first. The
/// directory goes when dropped, after the hosts and the underlay (drop them first).
pub struct Fabric {
    prefix: String,
    net: u8,
    /// The underlay is IPv6 (fd10:`net`::/64) rather than IPv4.
    ipv6: bool,
    bin_dir: PathBuf,
    dir: PathBuf,
    /// The underlay (10.`net`.0.0/24).
    pub underlay: Underlay,
}

impl Fabric {
    /// A fabric whose names start with `prefix`, on 10.`net`.0.0/24, with CA `ca`.
    ///
    /// # Panics
    /// If the CA cannot be made.
    pub fn new(prefix: &str, net: u8, bin_dir: &Path) -> Fabric {
        let dir = std::env::temp_dir().join(format!("switch-fabric-{prefix}"));
        let _ = fs::remove_dir_all(&dir);
        let f = Fabric {
            underlay: Underlay::new(prefix),
            prefix: prefix.to_string(),
            net,
            ipv6: false,
            bin_dir: bin_dir.to_path_buf(),
            dir,
        };
        f.switchctl(&["cluster", "init", "--out", &f.path("ca")]);
        f
    }

    /// The prefix of host `name`'s namespace and files.
    pub fn host_prefix(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn path(&self, s: &str) -> String {
        self.dir.join(s).display().to_string()
    }

    fn switchctl(&self, args: &[&str]) {
        run(self.bin_dir.join("switchctl"), args).expect_ok(&format!("switchctl {}", args.join(" ")));
    }

    /// The directory of host or CA `name`'s credentials, as [`Fabric::cert`] wrote them.
    pub fn credentials(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A certificate for host `name` from CA directory `ca` (a CA made when missing).
    ///
    /// # Panics
    /// If switchctl fails.
    pub fn cert(&self, ca: &str, name: &str) {
        if !self.dir.join(ca).join("ca.crt").exists() {
            self.switchctl(&["cluster", "init", "--out", &self.path(ca)]);
        }
        let (ca, out) = (self.path(ca), self.path(name));
        self.switchctl(&["cluster", "cert", "--ca", &ca, "--name", name, "--out", &out]);
    }

    /// Like [`Fabric::new`], on an IPv6 underlay: fd10:`net`::/64.
    ///
    /// # Panics
    /// As [`Fabric::new`].
    pub fn new6(prefix: &str, net: u8, bin_dir: &Path) -> Fabric {
        let mut f = Fabric::new(prefix, net, bin_dir);
        f.ipv6 = true;
        f
    }

    /// Host `i`'s underlay address.
    pub fn underlay_ip(&self, i: u8) -> String {
        if self.ipv6 {
            format!("fd10:{}::{i:x}", self.net)
        } else {
            format!("10.{}.0.{i}", self.net)
        }
    }

    /// Host `i`'s underlay address with the underlay's prefix length.
    pub fn underlay_cidr(&self, i: u8) -> String {
        format!("{}/{}", self.underlay_ip(i), if self.ipv6 { 64 } else { 24 })
    }

    /// Starts host `name` (certified before) as underlay address `i`, joining host 1.
    ///
    /// # Panics
    /// As [`Host::start`].
    pub fn start(&self, i: u8, name: &str) -> Host {
        self.start_with(i, name, &[])
    }

    /// Like [`Fabric::start`], with extra switchd arguments.
    ///
    /// # Panics
    /// As [`Host::start`].
    pub fn start_with(&self, i: u8, name: &str, extra: &[&str]) -> Host {
        let (ip, join) = (self.underlay_ip(i), self.underlay_ip(1));
        let dir = self.path(name);
        let mut args = vec!["--cluster-dir", dir.as_str(), "--advertise", &ip, "--join", &join];
        args.extend_from_slice(extra);
        let h = Host::start_with(&self.host_prefix(name), &self.bin_dir, &args);
        self.underlay.attach(&h, &self.underlay_cidr(i));
        h
    }
}

impl Fabric {
    /// Leaves the underlay and the certificates in place when this handle goes.
    pub fn detach(self) {
        std::mem::forget(self);
    }

    /// Removes what a fabric of prefix `prefix` with hosts `hosts` made, whether its handles
    /// are alive or long gone (a crashed run): switchds, namespaces, files. How many
    /// namespaces went.
    pub fn remove(prefix: &str, hosts: &[&str]) -> usize {
        let mut n = hosts.iter().map(|h| remove_prefix(&format!("{prefix}{h}"))).sum();
        if run("ip", ["netns", "delete", &format!("{prefix}-ul")]).ok() {
            n += 1;
        }
        let _ = fs::remove_dir_all(std::env::temp_dir().join(format!("switch-fabric-{prefix}")));
        n
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_has_its_check_value() {
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }
}
