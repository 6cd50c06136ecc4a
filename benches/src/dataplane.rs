//! The data-plane benchmark: every path of the comparison built in namespaces and measured in
//! one run with iperf3 and ping, so that ratios between them hold on a noisy machine.
//!
//! ```text
//!  same host:   a ── kernel bridge ── b        a ── switchd (bridge network) ── b
//!                                             (by default, and again polling for good)
//!               a ── OVS userspace (tap ports, without / with userspace TSO) ── b
//!               a ── vde_switch (tap ports) ── b
//!  cross host:  a ── switchd overlay (VXLAN) ══ underlay ══ switchd ── b
//!               a ── kernel VXLAN ══ underlay ══ kernel VXLAN ── b
//! ```
//!
//! Each path: ping RTT (20 x 50 ms), one TCP stream (with the machine's CPU seconds per
//! gigabyte moved), four TCP streams and 64-byte UDP (same-host paths), each for a few seconds.
//! Everything started is removed again, also when a step fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use testbed::netns::{prefix, run, Fabric, Host, Underlay};

/// Seconds each iperf3 test runs.
const SECS: &str = "4";

/// One measured path.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    /// What was measured.
    pub name: String,
    /// One TCP stream, bits per second received.
    pub tcp1_bps: f64,
    /// Four TCP streams, bits per second received (same-host paths).
    pub tcp4_bps: Option<f64>,
    /// 64-byte UDP datagrams received per second, the sender as fast as it can (same-host paths).
    pub udp64_pps: Option<f64>,
    /// Average ping round trip, milliseconds.
    pub rtt_ms: f64,
    /// CPU seconds the whole machine spent per gigabyte of the one-stream test.
    pub cpu_s_per_gb: f64,
}

impl Figures {
    /// How many microseconds longer this path's average ping round trip is than `base`'s.
    pub fn rtt_added_us(&self, base: &Figures) -> f64 {
        (self.rtt_ms - base.rtt_ms) * 1000.0
    }
}

/// A whole run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Results {
    /// Same host, sandbox to sandbox.
    pub same_host: Vec<Figures>,
    /// Across two hosts.
    pub cross_host: Vec<Figures>,
    /// Paths that could not be measured, and why.
    pub skipped: Vec<String>,
    /// Microseconds two threads on one vCPU take to wake each other once over pipes
    /// after the machine idled as long as between two pings (see [`wake_round_trip_us`]).
    pub wake_floor_us: Option<f64>,
    /// The congestion control the TCP tests ran with.
    pub tcp: Option<Congestion>,
}

/// Which TCP congestion control every path's TCP tests use (iperf3 `-C`), so that all paths
/// run with the same one, and the machine's default, which the sandboxes' own TCP gets. It
/// matters to the comparison: BBR's pacing and window follow what it measures, and a
/// userspace hop that hands back acknowledgements in bursts changes both (docs/benchmarks.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Congestion {
    /// The algorithm the TCP tests used.
    pub used: String,
    /// `net.ipv4.tcp_congestion_control`.
    pub default: String,
}

/// Why a path or the bench could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A kernel setting could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A congestion control this kernel lacks.
    #[error("congestion control '{name}' is not available here; this kernel has: {available}")]
    Unavailable {
        /// The algorithm asked for.
        name: String,
        /// The kernel's list.
        available: String,
    },
    /// A congestion control named twice.
    #[error("congestion control '{name}' is listed twice in '{list}'")]
    Twice {
        /// The algorithm.
        name: String,
        /// The list given.
        list: String,
    },
    /// A system call or I/O failed.
    #[error("{call}: {source}")]
    Sys {
        /// What was called.
        call: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{command}: {stderr}")]
    Command {
        /// The command.
        command: String,
        /// What it said.
        stderr: String,
    },
    /// A tool's output lacked a figure.
    #[error("{tool} gave no {figure}")]
    NoFigure {
        /// The tool.
        tool: &'static str,
        /// What was looked for, with what the tool said.
        figure: String,
    },
    /// Something never became ready in its time.
    #[error("{0}")]
    Timeout(String),
    /// A failure while measuring a path.
    #[error("{path}: {source}")]
    Path {
        /// The path's name.
        path: String,
        /// What failed.
        source: Box<BenchError>,
    },
}

impl BenchError {
    fn sys(call: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let call = call.into();
        move |source| BenchError::Sys { call, source }
    }

    fn command(command: impl Into<String>, stderr: &str) -> BenchError {
        BenchError::Command {
            command: command.into(),
            stderr: stderr.trim().to_string(),
        }
    }

    /// The error, as part of measuring `path`.
    fn on(self, path: &str) -> BenchError {
        BenchError::Path {
            path: path.to_string(),
            source: Box::new(self),
        }
    }
}

impl Congestion {
    /// The machine's default, or `chosen` once it is known to be available (loading its module
    /// when it is one).
    ///
    /// # Errors
    /// `chosen` is not an algorithm this kernel has, or the kernel's settings cannot be read.
    pub fn pick(chosen: Option<&str>) -> Result<Congestion, BenchError> {
        const DIR: &str = "/proc/sys/net/ipv4";
        let read = |f: &str| {
            let path = format!("{DIR}/{f}");
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_string())
                .map_err(|source| BenchError::Read { path, source })
        };
        let default = read("tcp_congestion_control")?;
        let Some(name) = chosen else {
            return Ok(Congestion {
                used: default.clone(),
                default,
            });
        };
        let has = |list: &str| list.split_whitespace().any(|a| a == name);
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid && !has(&read("tcp_available_congestion_control")?) {
            // Most algorithms are modules (tcp_bbr, tcp_dctcp, ...) that load on first use.
            let _ = run("modprobe", ["-q", &format!("tcp_{name}")]);
        }
        let available = read("tcp_available_congestion_control")?;
        if !valid || !has(&available) {
            return Err(BenchError::Unavailable {
                name: name.to_string(),
                available,
            });
        }
        Ok(Congestion {
            used: name.to_string(),
            default,
        })
    }

    /// [`Congestion::pick`] for each name of a comma-separated list (`None`: the machine's
    /// default alone), every one checked before any is used.
    ///
    /// # Errors
    /// A name the kernel lacks, or one listed twice.
    pub fn pick_all(list: Option<&str>) -> Result<Vec<Congestion>, BenchError> {
        let Some(list) = list else {
            return Ok(vec![Congestion::pick(None)?]);
        };
        let mut all: Vec<Congestion> = Vec::new();
        for name in list.split(',').map(str::trim) {
            if all.iter().any(|c| c.used == name) {
                return Err(BenchError::Twice {
                    name: name.to_string(),
                    list: list.to_string(),
                });
            }
            all.push(Congestion::pick(Some(name))?);
        }
        Ok(all)
    }

    /// The line the report prints.
    fn describe(&self) -> String {
        if self.used == self.default {
            format!("TCP congestion control: {} (the machine's default)", self.used)
        } else {
            format!(
                "TCP congestion control: {} (chosen; the machine's default is {})",
                self.used, self.default
            )
        }
    }
}

/// About the least a switch in userspace can add to a ping here: the sandbox's frame wakes the
/// switch's thread and the reply wakes the pinging process, two wake-ups the kernel bridge does
/// not make (its reply is queued before `sendmsg` returns). Measured as the ping is: `PINGS`
/// round trips `PING_GAP` apart, mean in microseconds, one byte each way between two threads
/// over pipes, the cheapest way one thread wakes another (a Unix socket pair costs about 20 µs
/// more per round trip here, docs/benchmarks.md). Both threads are held on the vCPU the caller
/// is on, where the scheduler places a pinging process and the switch it wakes (`perf sched`
/// shows ping, switchd's dataplane and vde_switch on one vCPU); across two vCPUs a wake-up
/// costs several times more here, so unpinned the figure mixes the two and is no floor. It is
/// "about" the least: an added RTT is the difference of two noisy means, and a lean switch's
/// lands a few microseconds either side of it. On this project's VMs an idle vCPU halts at
/// once and the wake-ups that follow cost tens of microseconds each; on bare metal they cost a
/// few.
///
/// # Errors
/// The pipes could not be made or used, or the threads could not be held on one vCPU, in
/// words.
pub fn wake_round_trip_us() -> Result<f64, BenchError> {
    use std::io::{Read, Write};
    let _one_cpu = OneCpu::hold()?;
    let (mut from_near, mut to_far) = pipe()?;
    let (mut from_far, mut to_near) = pipe()?;
    // A thread starts with its creator's affinity: the echo shares the vCPU.
    let echo = std::thread::spawn(move || {
        let mut b = [0u8; 1];
        while from_near.read_exact(&mut b).is_ok() && to_near.write_all(&b).is_ok() {}
    });
    let mut total = Duration::ZERO;
    let mut b = [0u8; 1];
    for _ in 0..PINGS {
        std::thread::sleep(PING_GAP);
        let t = std::time::Instant::now();
        to_far
            .write_all(&b)
            .and_then(|()| from_far.read_exact(&mut b))
            .map_err(BenchError::sys("wake-up round trip"))?;
        total += t.elapsed();
    }
    drop(to_far);
    let _ = echo.join();
    Ok(total.as_secs_f64() * 1e6 / f64::from(PINGS))
}

/// A pipe's read and write ends.
fn pipe() -> Result<(std::fs::File, std::fs::File), BenchError> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into fds, which each File then owns alone.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(BenchError::sys("pipe")(std::io::Error::last_os_error()));
        }
        Ok((std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])))
    }
}

/// The calling thread held on the vCPU it runs on; dropped, its affinity is as it was.
struct OneCpu {
    was: libc::cpu_set_t,
}

impl OneCpu {
    fn hold() -> Result<OneCpu, BenchError> {
        // SAFETY: cpu_set_t is plain bits, all-zero is an empty set; sched_getaffinity and
        // sched_setaffinity read or write exactly size_of::<cpu_set_t>() bytes of it; pid 0
        // is the calling thread.
        unsafe {
            let mut was: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut was) != 0 {
                return Err(BenchError::sys("sched_getaffinity")(std::io::Error::last_os_error()));
            }
            let cpu = libc::sched_getcpu();
            if cpu < 0 {
                return Err(BenchError::sys("sched_getcpu")(std::io::Error::last_os_error()));
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut one);
            if libc::sched_setaffinity(0, size, &one) != 0 {
                return Err(BenchError::sys(format!("sched_setaffinity to vCPU {cpu}"))(
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(OneCpu { was })
        }
    }
}

impl Drop for OneCpu {
    fn drop(&mut self) {
        // SAFETY: as in hold: the mask read there, of its own size, for the calling thread.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.was) };
    }
}

/// Namespaces to delete, daemons to stop (by pid file) and directories to remove when dropped.
#[derive(Default)]
struct Cleanup {
    namespaces: Vec<String>,
    pidfiles: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.pidfiles {
            if let Some(pid) = std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) with a pid read from the daemon's own pid file.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        if !self.pidfiles.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
        }
        for ns in &self.namespaces {
            let _ = run("ip", ["netns", "delete", ns]);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn iperf(ns_server: &str, ns_client: &str, ip: &str, extra: &[&str]) -> Result<serde_json::Value, BenchError> {
    run("ip", ["netns", "exec", ns_server, "iperf3", "-s", "-1", "-D", "-B", ip]);
    std::thread::sleep(Duration::from_millis(300));
    let mut args = vec!["netns", "exec", ns_client, "iperf3", "-c", ip, "-t", SECS, "-J"];
    args.extend_from_slice(extra);
    let o = run("ip", args);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).map_err(|e| BenchError::NoFigure {
        tool: "iperf3",
        figure: format!("JSON report ({e}): {}", o.stderr.trim()),
    })?;
    if let Some(e) = v["error"].as_str() {
        return Err(BenchError::command(format!("iperf3 {}", extra.join(" ")), e));
    }
    Ok(v)
}

fn number(v: &serde_json::Value, path: &[&str]) -> Result<f64, BenchError> {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .ok_or_else(|| BenchError::NoFigure {
            tool: "iperf3",
            figure: path.join("."),
        })
}

/// How many pings each path's RTT averages, and how far apart they go (the wake-up floor is
/// measured the same way).
const PINGS: u32 = 20;
const PING_GAP: Duration = Duration::from_millis(50);

fn ping_avg(ns: &str, ip: &str) -> Result<f64, BenchError> {
    let (count, gap) = (PINGS.to_string(), PING_GAP.as_secs_f64().to_string());
    let o = run("ip", ["netns", "exec", ns, "ping", "-c", &count, "-i", &gap, "-q", ip]);
    // rtt min/avg/max/mdev = 0.045/0.061/0.101/0.012 ms
    o.stdout
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| BenchError::NoFigure {
            tool: "ping",
            figure: format!("average: {}{}", o.stdout, o.stderr),
        })
}

/// CPU time the machine spent busy so far (all CPUs), seconds: /proc/stat's first line less
/// idle and iowait.
fn busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (total - idle) / hz
}

/// Measures from `client` to `server_ip` in namespace `server`, TCP with congestion control
/// `cc`; `full` adds four streams and 64-byte UDP.
fn measure(
    name: &str,
    server: &str,
    client: &str,
    server_ip: &str,
    full: bool,
    cc: &str,
) -> Result<Figures, BenchError> {
    let what = |e: BenchError| e.on(name);
    let t0 = std::time::Instant::now();
    while !run("ip", ["netns", "exec", client, "ping", "-c", "1", "-W", "1", server_ip]).ok() {
        if t0.elapsed() > Duration::from_secs(20) {
            return Err(what(BenchError::Timeout(format!("{server_ip} never answered a ping"))));
        }
    }
    let rtt_ms = ping_avg(client, server_ip).map_err(what)?;
    let cpu0 = busy_seconds();
    let one = iperf(server, client, server_ip, &["-C", cc]).map_err(what)?;
    let cpu = busy_seconds() - cpu0;
    let tcp1_bps = number(&one, &["end", "sum_received", "bits_per_second"]).map_err(what)?;
    let bytes = number(&one, &["end", "sum_received", "bytes"]).map_err(what)?;
    let (mut tcp4_bps, mut udp64_pps) = (None, None);
    if full {
        let four = iperf(server, client, server_ip, &["-P", "4", "-C", cc]).map_err(what)?;
        tcp4_bps = Some(number(&four, &["end", "sum_received", "bits_per_second"]).map_err(what)?);
        let udp = iperf(server, client, server_ip, &["-u", "-b", "0", "-l", "64"]).map_err(what)?;
        let sum = &udp["end"]["sum"];
        let packets = number(sum, &["packets"]).map_err(what)?;
        let lost = number(sum, &["lost_packets"]).map_err(what)?;
        let secs = number(sum, &["seconds"]).map_err(what)?;
        udp64_pps = Some((packets - lost) / secs.max(1e-9));
    }
    Ok(Figures {
        name: name.to_string(),
        tcp1_bps,
        tcp4_bps,
        udp64_pps,
        rtt_ms,
        cpu_s_per_gb: cpu / (bytes / 1e9).max(1e-9),
    })
}

/// Two namespaces `<p>-a` and `<p>-b` with `dev` each (moved in from the root namespace),
/// 10.`net`.0.1 and .2.
fn wire_pair(c: &mut Cleanup, p: &str, net: u8, devs: [&str; 2]) -> Result<[String; 2], BenchError> {
    let names = [format!("{p}-a"), format!("{p}-b")];
    for (i, (ns, dev)) in names.iter().zip(devs).enumerate() {
        let _ = run("ip", ["netns", "delete", ns]);
        run("ip", ["netns", "add", ns]).expect_ok("netns");
        c.namespaces.push(ns.clone());
        let cidr = format!("10.{net}.0.{}/24", i + 1);
        let steps: [&[&str]; 4] = [
            &["link", "set", dev, "netns", ns],
            &["-n", ns, "addr", "add", &cidr, "dev", dev],
            &["-n", ns, "link", "set", dev, "up"],
            &["-n", ns, "link", "set", "lo", "up"],
        ];
        for s in steps {
            let o = run("ip", s);
            if !o.ok() {
                return Err(BenchError::command(format!("ip {}", s.join(" ")), &o.stderr));
            }
        }
    }
    Ok(names)
}

fn kernel_bridge(p: &str, cc: &str) -> Result<Figures, BenchError> {
    let mut c = Cleanup::default();
    let ul = Underlay::new(&format!("{p}kb"));
    let names = [format!("{p}kb-a"), format!("{p}kb-b")];
    for (i, ns) in names.iter().enumerate() {
        let _ = run("ip", ["netns", "delete", ns]);
        run("ip", ["netns", "add", ns]).expect_ok("netns");
        c.namespaces.push(ns.clone());
        ul.attach_ns(ns, &format!("10.95.0.{}/24", i + 1));
    }
    measure("kernel bridge (veth)", &names[1], &names[0], "10.95.0.2", true, cc)
}

/// The name of our same-host path as switchd runs by default.
const OURS: &str = "switchd bridge network";
/// The name of the same path with a dataplane that never sleeps ([`POLLING`]).
const OURS_POLLING: &str = "switchd bridge, polling";
/// switchd's arguments for [`OURS_POLLING`]: it keeps polling for a second after traffic, longer
/// than any gap between the bench's frames, so its dataplane never sleeps and holds a vCPU
/// (a poll that finds nothing yields to any thread waiting for that vCPU).
const POLLING: [&str; 2] = ["--poll-us", "1000000"];

/// The name of our same-host path over IPv6 (a dual-stack network, measured to the IPv6
/// address).
const OURS6: &str = "switchd bridge, IPv6";

/// A switchd bridge network between two sandboxes, switchd started with `extra` arguments and
/// the path measured as `name`: over IPv4, or over IPv6 for [`OURS6`].
fn ours_bridge(p: &str, bin_dir: &Path, cc: &str, name: &str, extra: &[&str]) -> Result<Figures, BenchError> {
    let host = Host::start_with(p, bin_dir, extra);
    let ok = |o: testbed::Output, what: &str| {
        if o.ok() {
            Ok(())
        } else {
            Err(BenchError::command(what, &o.stderr).on(name))
        }
    };
    let v6 = name == OURS6;
    let mut create = vec!["network", "create", "--subnet", "10.96.0.0/24"];
    if v6 {
        create.extend(["--ipv6", "--subnet", "fd96::/64"]);
    }
    create.push("bench");
    ok(host.ctl(create), "network create")?;
    let (a, b) = (host.name("a"), host.name("b"));
    for (sb, ip, ip6) in [(&a, "10.96.0.10", "fd96::10"), (&b, "10.96.0.20", "fd96::20")] {
        let mut args = vec!["sandbox", "create", "--network", "bench", "--ip", ip];
        if v6 {
            args.extend(["--ip6", ip6]);
        }
        args.push(sb);
        ok(host.ctl(args), "sandbox")?;
    }
    // Over IPv6, one stream: the goal is its ratio to the same path over IPv4.
    match v6 {
        true => measure(name, &b, &a, "fd96::20", false, cc),
        false => measure(name, &b, &a, "10.96.0.20", true, cc),
    }
}

fn ovs(p: &str, tso: bool, cc: &str) -> Result<Figures, BenchError> {
    let name = if tso {
        "OVS userspace, tap + TSO"
    } else {
        "OVS userspace, tap"
    };
    let mut c = Cleanup::default();
    let dir = std::env::temp_dir().join(format!("switch-bench-{p}-ovs"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::sys(dir.display().to_string())(e).on(name))?;
    c.dirs.push(dir.clone());
    let d = dir.display().to_string();
    let db = format!("unix:{d}/db.sock");
    let env = [
        ("OVS_RUNDIR", &d),
        ("OVS_DBDIR", &d),
        ("OVS_LOGDIR", &d),
        ("OVS_SYSCONFDIR", &d),
    ];
    let sh = |prog: &str, args: &[&str]| -> Result<(), BenchError> {
        let o = std::process::Command::new(prog)
            .args(args)
            .envs(env)
            .output()
            .map_err(|e| BenchError::sys(prog)(e).on(name))?;
        if o.status.success() {
            Ok(())
        } else {
            let command = format!("{prog} {}", args.join(" "));
            Err(BenchError::command(command, &String::from_utf8_lossy(&o.stderr)).on(name))
        }
    };
    sh(
        "ovsdb-tool",
        &[
            "create",
            &format!("{d}/conf.db"),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ],
    )?;
    c.pidfiles.push(dir.join("db.pid"));
    sh(
        "ovsdb-server",
        &[
            &format!("{d}/conf.db"),
            &format!("--remote=punix:{d}/db.sock"),
            &format!("--pidfile={d}/db.pid"),
            "--detach",
            "--no-chdir",
            &format!("--log-file={d}/db.log"),
        ],
    )?;
    let vsctl = |args: &[&str]| {
        let mut all = vec!["--db", db.as_str()];
        all.extend_from_slice(args);
        sh("ovs-vsctl", &all)
    };
    vsctl(&["--no-wait", "init"])?;
    if tso {
        vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            "other_config:userspace-tso-enable=true",
        ])?;
    }
    c.pidfiles.push(dir.join("vs.pid"));
    sh(
        "ovs-vswitchd",
        &[
            &db,
            &format!("--pidfile={d}/vs.pid"),
            "--detach",
            "--no-chdir",
            &format!("--log-file={d}/vs.log"),
        ],
    )?;
    let (ta, tb) = (format!("{p}oa"), format!("{p}ob"));
    vsctl(&["add-br", "sbr0", "--", "set", "bridge", "sbr0", "datapath_type=netdev"])?;
    for t in [&ta, &tb] {
        vsctl(&["add-port", "sbr0", t, "--", "set", "interface", t, "type=tap"])?;
    }
    let names = wire_pair(&mut c, &format!("{p}ovs"), 97, [&ta, &tb])?;
    measure(name, &names[1], &names[0], "10.97.0.2", true, cc)
}

fn vde(p: &str, cc: &str) -> Result<Figures, BenchError> {
    let name = "vde_switch, tap";
    let mut c = Cleanup::default();
    let dir = std::env::temp_dir().join(format!("switch-bench-{p}-vde"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::sys(dir.display().to_string())(e).on(name))?;
    c.dirs.push(dir.clone());
    let (ta, tb) = (format!("{p}va"), format!("{p}vb"));
    let d = dir.display().to_string();
    c.pidfiles.push(dir.join("pid"));
    let (ctl, mgmt, pid) = (format!("{d}/ctl"), format!("{d}/mgmt"), format!("{d}/pid"));
    let o = run(
        "vde_switch",
        ["-s", &ctl, "-M", &mgmt, "-t", &ta, "-t", &tb, "-d", "-p", &pid],
    );
    if !o.ok() {
        return Err(BenchError::command("vde_switch", &o.stderr).on(name));
    }
    let t0 = std::time::Instant::now();
    while !run("ip", ["link", "show", &tb]).ok() {
        if t0.elapsed() > Duration::from_secs(5) {
            return Err(BenchError::Timeout(format!("its tap {tb} never appeared")).on(name));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let names = wire_pair(&mut c, &format!("{p}vde"), 98, [&ta, &tb])?;
    measure(name, &names[1], &names[0], "10.98.0.2", true, cc)
}

/// The name of our plain overlay path.
const OVERLAY: &str = "switchd overlay (VXLAN)";
/// The name of our encrypted overlay path.
const SEALED: &str = "switchd overlay, encrypted (ESP)";
/// Our overlay measured over IPv6.
const OVERLAY6: &str = "switchd overlay, IPv6";
/// Our overlay between hosts whose underlay is IPv6.
const UNDERLAY6: &str = "switchd overlay (VXLAN over IPv6)";
/// The name of the kernel's VXLAN path.
const KERNEL_VXLAN: &str = "kernel VXLAN";
/// The name of the encrypted peer.
const WIREGUARD: &str = "kernel VXLAN over wireguard-go";

/// Our overlay, plain, encrypted, carrying IPv6, or over an IPv6 underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlay {
    /// VXLAN, measured over IPv4.
    Plain,
    /// ESP around VXLAN.
    Sealed,
    /// VXLAN, measured over IPv6 on a dual-stack network.
    Ipv6,
    /// VXLAN over an IPv6 underlay, measured over IPv4.
    Underlay6,
}

fn overlay(p: &str, bin_dir: &Path, cc: &str, kind: Overlay) -> Result<Figures, BenchError> {
    let (name, tag, net) = match kind {
        Overlay::Sealed => (SEALED, "e", 90),
        Overlay::Plain => (OVERLAY, "o", 94),
        Overlay::Ipv6 => (OVERLAY6, "s", 88),
        Overlay::Underlay6 => (UNDERLAY6, "u", 87),
    };
    let fabric = if kind == Overlay::Underlay6 {
        Fabric::new6(&format!("{p}{tag}"), net, bin_dir)
    } else {
        Fabric::new(&format!("{p}{tag}"), net, bin_dir)
    };
    for h in ["h1", "h2"] {
        fabric.cert("ca", h);
    }
    let h1 = fabric.start(1, "h1");
    let h2 = fabric.start(2, "h2");
    let ok = |o: testbed::Output, what: &str| {
        if o.ok() {
            Ok(())
        } else {
            Err(BenchError::command(what, &o.stderr).on(name))
        }
    };
    let mut create = vec!["network", "create", "-d", "overlay", "--subnet", "10.93.0.0/24"];
    match kind {
        Overlay::Sealed => create.extend(["-o", "encrypted"]),
        Overlay::Ipv6 => create.extend(["--ipv6", "--subnet", "fd93::/64"]),
        Overlay::Plain | Overlay::Underlay6 => {}
    }
    create.push("bench");
    ok(h1.ctl(create), "network create")?;
    let t0 = std::time::Instant::now();
    while !h2.ctl(["network", "inspect", "bench"]).ok() {
        if t0.elapsed() > Duration::from_secs(20) {
            return Err(BenchError::Timeout("the network did not reach the second host".into()).on(name));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (a, b) = (h1.name("a"), h2.name("b"));
    ok(
        h1.ctl(["sandbox", "create", "--network", "bench", "--ip", "10.93.0.10", &a]),
        "sandbox a",
    )?;
    ok(
        h2.ctl(["sandbox", "create", "--network", "bench", "--ip", "10.93.0.20", &b]),
        "sandbox b",
    )?;
    // An encrypted network's first ping waits for the hosts' keys (measure waits for it). b's
    // IPv6 address is its IPv4 address's twin.
    let to = if kind == Overlay::Ipv6 {
        "fd93::14"
    } else {
        "10.93.0.20"
    };
    measure(name, &b, &a, to, false, cc)
}

/// The encrypted peer: the kernel's VXLAN between two namespaces, carried through a
/// WireGuard tunnel that Debian's wireguard-go runs (this kernel has no WireGuard module).
fn wireguard_vxlan(p: &str, cc: &str) -> Result<Figures, BenchError> {
    let mut c = Cleanup::default();
    let ul = Underlay::new(&format!("{p}w"));
    let dir = std::env::temp_dir().join(format!("{p}-wg"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(BenchError::sys("mkdir"))?;
    c.dirs.push(dir.clone());
    let sh = |script: String, what: &str| {
        let o = run("sh", ["-c", &script]);
        if o.ok() {
            Ok(o.stdout.trim().to_string())
        } else {
            Err(BenchError::command(what, &o.stderr).on(WIREGUARD))
        }
    };
    let names = [format!("{p}-w1"), format!("{p}-w2")];
    // wireguard-go's control socket is named after the interface, in one directory for every
    // namespace: the names differ.
    let ifs = ["wgb1", "wgb2"];
    let mut keys = Vec::new();
    for (i, ns) in names.iter().enumerate() {
        let _ = run("ip", ["netns", "delete", ns]);
        run("ip", ["netns", "add", ns]).expect_ok("netns");
        c.namespaces.push(ns.clone());
        ul.attach_ns(ns, &format!("10.89.0.{}/24", i + 1));
        let key = dir.join(format!("k{i}"));
        let public = sh(
            format!("umask 077; wg genkey > {k}; wg pubkey < {k}", k = key.display()),
            "wg genkey",
        )?;
        keys.push((key, public));
    }
    for (i, ns) in names.iter().enumerate() {
        let (me, peer) = (i + 1, 2 - i);
        let log = dir.join(format!("wg{me}.log"));
        sh(
            format!("ip netns exec {ns} wireguard-go {} > {} 2>&1", ifs[i], log.display()),
            "wireguard-go",
        )?;
        sh(
            format!(
                "ip netns exec {ns} wg set {} listen-port 51820 private-key {} peer {} allowed-ips 10.79.0.{peer}/32 endpoint 10.89.0.{peer}:51820",
                ifs[i],
                keys[i].0.display(),
                keys[1 - i].1
            ),
            "wg set",
        )?;
        sh(
            format!(
                "ip -n {ns} addr add 10.79.0.{me}/24 dev {w} && ip -n {ns} link set {w} up && \
                 ip -n {ns} link add name vx0 type vxlan id 100 dstport 4789 local 10.79.0.{me} remote 10.79.0.{peer} && \
                 ip -n {ns} link set vx0 mtu 1350 && ip -n {ns} addr add 10.78.0.{me}/24 dev vx0 && ip -n {ns} link set vx0 up",
                w = ifs[i]
            ),
            "the tunnel's devices",
        )?;
    }
    let r = measure(WIREGUARD, &names[1], &names[0], "10.78.0.2", false, cc);
    // Deleting an interface ends its daemon.
    for (ns, w) in names.iter().zip(ifs) {
        let _ = run("ip", ["-n", ns, "link", "delete", w]);
    }
    r
}

fn kernel_vxlan(p: &str, cc: &str) -> Result<Figures, BenchError> {
    let mut c = Cleanup::default();
    let kul = Underlay::new(&format!("{p}k"));
    let (k1, k2) = (format!("{p}-k1"), format!("{p}-k2"));
    for (ns, ip, peer, inner) in [
        (&k1, "10.92.0.1", "10.92.0.2", "10.91.0.1/24"),
        (&k2, "10.92.0.2", "10.92.0.1", "10.91.0.2/24"),
    ] {
        let _ = run("ip", ["netns", "delete", ns]);
        run("ip", ["netns", "add", ns]).expect_ok("netns");
        c.namespaces.push(ns.clone());
        kul.attach_ns(ns, &format!("{ip}/24"));
        let vx = [
            "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "100", "dstport", "4789", "local", ip, "remote",
            peer,
        ];
        run("ip", vx).expect_ok("kernel vxlan");
        run("ip", ["-n", ns, "addr", "add", inner, "dev", "vx0"]).expect_ok("addr");
        run("ip", ["-n", ns, "link", "set", "vx0", "up"]).expect_ok("up");
    }
    measure(KERNEL_VXLAN, &k2, &k1, "10.91.0.2", false, cc)
}

/// Runs every path, TCP with `tcp.used`; `bin_dir` holds switchd and switchctl. Each path's
/// figures go to `on_path` as soon as they are measured. A peer that is not installed or fails
/// to start is skipped with its reason; our paths and the kernel's must work.
///
/// # Errors
/// A step of our paths or the kernel's that failed, in words.
pub fn run_all(bin_dir: &Path, tcp: &Congestion, on_path: &mut dyn FnMut(&Figures)) -> Result<Results, BenchError> {
    let p = prefix("bn");
    let mut r = Results {
        wake_floor_us: Some(wake_round_trip_us()?),
        tcp: Some(tcp.clone()),
        ..Results::default()
    };
    let cc = tcp.used.as_str();
    // Each path's figures go to `on_path` as soon as they are measured.
    let mut done = |to: &mut Vec<Figures>, f: Figures| {
        on_path(&f);
        to.push(f);
    };
    done(&mut r.same_host, kernel_bridge(&p, cc)?);
    done(
        &mut r.same_host,
        ours_bridge(&format!("{p}sw"), bin_dir, cc, OURS, &[])?,
    );
    done(
        &mut r.same_host,
        ours_bridge(&format!("{p}sp"), bin_dir, cc, OURS_POLLING, &POLLING)?,
    );
    done(
        &mut r.same_host,
        ours_bridge(&format!("{p}s6"), bin_dir, cc, OURS6, &[])?,
    );
    type Step<'a> = &'a dyn Fn() -> Result<Figures, BenchError>;
    let peers: [(&str, Step); 3] = [
        ("ovs-vswitchd", &|| ovs(&p, false, cc)),
        ("ovs-vswitchd", &|| ovs(&p, true, cc)),
        ("vde_switch", &|| vde(&p, cc)),
    ];
    for (prog, f) in peers {
        if !run("sh", ["-c", &format!("command -v {prog}")]).ok() {
            r.skipped
                .push(format!("{prog} is not installed (scripts/bench.sh installs it)"));
            continue;
        }
        match f() {
            Ok(fig) => done(&mut r.same_host, fig),
            Err(e) => r.skipped.push(e.to_string()),
        }
    }
    for kind in [Overlay::Plain, Overlay::Sealed, Overlay::Ipv6, Overlay::Underlay6] {
        done(&mut r.cross_host, overlay(&p, bin_dir, cc, kind)?);
    }
    done(&mut r.cross_host, kernel_vxlan(&p, cc)?);
    if run("sh", ["-c", "command -v wireguard-go && command -v wg"]).ok() {
        match wireguard_vxlan(&p, cc) {
            Ok(fig) => done(&mut r.cross_host, fig),
            Err(e) => r.skipped.push(e.to_string()),
        }
    } else {
        r.skipped
            .push("wireguard-go or wg is not installed (scripts/bench.sh installs them)".into());
    }
    Ok(r)
}

fn find<'a>(v: &'a [Figures], prefix: &str) -> Option<&'a Figures> {
    v.iter().find(|f| f.name.starts_with(prefix))
}

/// One goal of the comparison: what, the measured ratio (or added microseconds), and whether
/// it holds; `None` when a path it needs was not measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Goal {
    /// The goal, in words.
    pub what: &'static str,
    /// The measured value.
    pub value: Option<f64>,
    /// What meeting it takes.
    pub limit: Limit,
    /// Where the goal lies on one path's single-stream throughput or round trip, for drawing.
    pub mark: Option<Mark>,
}

/// A goal as a bound on one path's figure: the throughput (Gbit/s) or round trip (µs) that
/// path must reach (or stay within) for the goal to hold.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Mark {
    /// The path judged.
    pub path: String,
    /// Its figure the goal bounds.
    pub metric: Metric,
    /// The bound, in the figure's unit.
    pub at: f64,
}

/// A figure a [`Mark`] bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// One TCP stream, Gbit/s.
    Tcp1Gbps,
    /// Average ping round trip, µs.
    RttUs,
}

impl Goal {
    /// Whether it is met; `None` when not measured.
    pub fn met(&self) -> Option<bool> {
        self.value.map(|v| self.limit.holds(v))
    }
}

/// A goal's bound.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The value must be at least this.
    AtLeast(f64),
    /// The value must be at most this.
    AtMost(f64),
}

impl Limit {
    fn holds(self, v: f64) -> bool {
        match self {
            Limit::AtLeast(min) => v >= min,
            Limit::AtMost(max) => v <= max,
        }
    }
}

/// The goals, judged from a run's ratios.
pub fn goals(r: &Results) -> Vec<Goal> {
    let s = &r.same_host;
    let (kb, ours, polling, ovs_tap, ovs_tso) = (
        find(s, "kernel bridge"),
        find(s, OURS),
        find(s, OURS_POLLING),
        find(s, "OVS userspace, tap"),
        find(s, "OVS userspace, tap + TSO"),
    );
    let ovs_tap = ovs_tap.filter(|f| !f.name.contains("TSO"));
    let x = &r.cross_host;
    let (ov, sealed, wg) = (find(x, OVERLAY), find(x, SEALED), find(x, WIREGUARD));
    let (ours6, ov6, under6) = (find(s, OURS6), find(x, OVERLAY6), find(x, UNDERLAY6));
    let kv = x.iter().find(|f| f.name == KERNEL_VXLAN);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let at_least = |what, v: Option<f64>, min: f64| Goal {
        what,
        value: v,
        limit: Limit::AtLeast(min),
        mark: None,
    };
    // A single-stream goal: `path` at least `min` times `base`, marked on `path`'s bar.
    let tcp1 = |what, path: Option<&Figures>, base: Option<&Figures>, min: f64| Goal {
        mark: path.zip(base).map(|(p, b)| Mark {
            path: p.name.clone(),
            metric: Metric::Tcp1Gbps,
            at: min * b.tcp1_bps / 1e9,
        }),
        ..at_least(what, ratio(path.map(|f| f.tcp1_bps), base.map(|f| f.tcp1_bps)), min)
    };
    vec![
        tcp1("same host, 1 TCP stream >= 0.70 x kernel bridge", ours, kb, 0.70),
        tcp1(
            "same host, 1 TCP stream >= 1.1 x OVS userspace with TSO",
            ours,
            ovs_tso,
            1.1,
        ),
        at_least(
            "same host, 4 TCP streams >= 0.60 x kernel bridge",
            ratio(ours.and_then(|f| f.tcp4_bps), kb.and_then(|f| f.tcp4_bps)),
            0.60,
        ),
        tcp1("cross host, 1 TCP stream >= 0.50 x kernel VXLAN", ov, kv, 0.50),
        at_least(
            "64-byte UDP packets/s >= 1.25 x OVS userspace",
            ratio(ours.and_then(|f| f.udp64_pps), ovs_tap.and_then(|f| f.udp64_pps)),
            1.25,
        ),
        rtt_added("ping RTT added over the kernel bridge <= +30 us", ours, kb, 30.0),
        rtt_added(
            "ping RTT added over the kernel bridge <= +30 us, polling dataplane (holds a vCPU)",
            polling,
            kb,
            30.0,
        ),
        tcp1(
            "cross host encrypted, 1 TCP stream >= 3 x VXLAN over wireguard-go",
            sealed,
            wg,
            3.0,
        ),
        tcp1(
            "cross host encrypted, 1 TCP stream >= 0.50 x our plain overlay",
            sealed,
            ov,
            0.50,
        ),
        rtt_added(
            "ping RTT added by sealing over our plain overlay <= +20 us",
            sealed,
            ov,
            20.0,
        ),
        tcp1("same host IPv6, 1 TCP stream >= 0.90 x IPv4", ours6, ours, 0.90),
        tcp1("cross host IPv6, 1 TCP stream >= 0.90 x IPv4", ov6, ov, 0.90),
        tcp1(
            "cross host over an IPv6 underlay, 1 TCP stream >= 0.90 x over IPv4",
            under6,
            ov,
            0.90,
        ),
    ]
}

/// The goal that `path`'s ping round trip is at most `max_us` µs longer than `base`'s.
fn rtt_added(what: &'static str, path: Option<&Figures>, base: Option<&Figures>, max_us: f64) -> Goal {
    Goal {
        what,
        value: path.zip(base).map(|(o, k)| o.rtt_added_us(k)),
        limit: Limit::AtMost(max_us),
        mark: path.zip(base).map(|(o, k)| Mark {
            path: o.name.clone(),
            metric: Metric::RttUs,
            at: k.rtt_ms * 1000.0 + max_us,
        }),
    }
}

/// Every path's median figures over `runs` (in the first run's order), as one run: what
/// `switchsim bench --plot` draws.
pub fn median_results(runs: &[Results]) -> Results {
    let Some(first) = runs.first() else {
        return Results::default();
    };
    let med = |name: &str, side: fn(&Results) -> &Vec<Figures>, get: fn(&Figures) -> Option<f64>| {
        let mut v: Vec<f64> = runs
            .iter()
            .filter_map(|r| side(r).iter().find(|f| f.name == name).and_then(get))
            .collect();
        median(&mut v)
    };
    let side = |of: fn(&Results) -> &Vec<Figures>| -> Vec<Figures> {
        of(first)
            .iter()
            .map(|f| Figures {
                name: f.name.clone(),
                tcp1_bps: med(&f.name, of, |f| Some(f.tcp1_bps)).unwrap_or(f.tcp1_bps),
                tcp4_bps: med(&f.name, of, |f| f.tcp4_bps),
                udp64_pps: med(&f.name, of, |f| f.udp64_pps),
                rtt_ms: med(&f.name, of, |f| Some(f.rtt_ms)).unwrap_or(f.rtt_ms),
                cpu_s_per_gb: med(&f.name, of, |f| Some(f.cpu_s_per_gb)).unwrap_or(f.cpu_s_per_gb),
            })
            .collect()
    };
    let mut floors: Vec<f64> = runs.iter().filter_map(|r| r.wake_floor_us).collect();
    Results {
        same_host: side(|r| &r.same_host),
        cross_host: side(|r| &r.cross_host),
        skipped: first.skipped.clone(),
        wake_floor_us: median(&mut floors),
        tcp: first.tcp.clone(),
    }
}

/// The runs as JSON: each run's figures and goals, and the goals judged on the median of the
/// runs' values (`switchsim bench --format json`).
pub fn json(runs: &[Results]) -> serde_json::Value {
    let per_run: Vec<Vec<Goal>> = runs.iter().map(goals).collect();
    let judged: Vec<serde_json::Value> = per_run
        .first()
        .map(|first| {
            first
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let mut values: Vec<f64> = per_run.iter().filter_map(|r| r[i].value).collect();
                    let m = median(&mut values);
                    serde_json::json!({
                        "what": g.what,
                        "limit": g.limit,
                        "median": m,
                        "met": m.map(|m| g.limit.holds(m)),
                        "runs": per_run.iter().map(|r| r[i].value).collect::<Vec<_>>(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "runs": runs
            .iter()
            .zip(&per_run)
            .map(|(r, g)| serde_json::json!({ "results": r, "goals": g }))
            .collect::<Vec<_>>(),
        "goals": judged,
    })
}

/// The run as tables: each path's figures with ratios against the kernel's path (and, same
/// host, against OVS userspace), then the goals.
pub fn report(r: &Results) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let g = |bps: f64| bps / 1e9;
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "-".to_string(), f);
    let kb = find(&r.same_host, "kernel bridge").cloned();
    let tso = find(&r.same_host, "OVS userspace, tap + TSO").cloned();
    if let Some(tcp) = &r.tcp {
        let _ = writeln!(out, "{}\n", tcp.describe());
    }
    let _ = writeln!(out, "same host, sandbox to sandbox");
    let _ = writeln!(
        out,
        "{:<26} {:>9} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8} {:>10} {:>9}",
        "PATH",
        "TCP Gb/s",
        "x kernel",
        "x OVS+TSO",
        "4x Gb/s",
        "x kernel",
        "UDP Mpps",
        "RTT ms",
        "RTT added",
        "CPU s/GB"
    );
    for f in &r.same_host {
        let x = |a: Option<f64>, b: Option<f64>| opt(a.zip(b).map(|(a, b)| a / b), &|v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "{:<26} {:>9.2} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8.3} {:>10} {:>9.2}",
            f.name,
            g(f.tcp1_bps),
            x(Some(f.tcp1_bps), kb.as_ref().map(|k| k.tcp1_bps)),
            x(Some(f.tcp1_bps), tso.as_ref().map(|k| k.tcp1_bps)),
            opt(f.tcp4_bps, &|v| format!("{:.2}", g(v))),
            x(f.tcp4_bps, kb.as_ref().and_then(|k| k.tcp4_bps)),
            opt(f.udp64_pps, &|v| format!("{:.3}", v / 1e6)),
            f.rtt_ms,
            opt(kb.as_ref().map(|k| f.rtt_added_us(k)), &|v| format!("{v:+.0} us")),
            f.cpu_s_per_gb,
        );
    }
    if let Some(w) = r.wake_floor_us {
        let _ = writeln!(out, "{}: {w:.0} us", wake_floor_label());
    }
    let kv = r.cross_host.iter().find(|f| f.name == KERNEL_VXLAN).cloned();
    let _ = writeln!(out, "\ncross host, over VXLAN");
    let _ = writeln!(
        out,
        "{:<34} {:>9} {:>8} {:>8} {:>10} {:>9}",
        "PATH", "TCP Gb/s", "x kernel", "RTT ms", "RTT added", "CPU s/GB"
    );
    for f in &r.cross_host {
        let _ = writeln!(
            out,
            "{:<34} {:>9.2} {:>8} {:>8.3} {:>10} {:>9.2}",
            f.name,
            g(f.tcp1_bps),
            opt(kv.as_ref().map(|k| f.tcp1_bps / k.tcp1_bps), &|v| format!("{v:.2}")),
            f.rtt_ms,
            opt(kv.as_ref().map(|k| f.rtt_added_us(k)), &|v| format!("{v:+.0} us")),
            f.cpu_s_per_gb,
        );
    }
    for s in &r.skipped {
        let _ = writeln!(out, "skipped: {s}");
    }
    let _ = writeln!(out, "\ngoals");
    for goal in goals(r) {
        let verdict = match goal.met() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        let value = opt(goal.value, &|v| {
            if goal.what.starts_with("ping") {
                format!("{v:+.0} us")
            } else {
                format!("{v:.2}")
            }
        });
        let _ = writeln!(out, "  {verdict:<12} {} — measured {value}", goal.what);
    }
    out
}

/// The goals over several runs: each run's value, their median, and the verdict on the median
/// (this VM drifts between runs, so one run's ratio can land on either side of a goal).
pub fn summary(runs: &[Results]) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "\ngoals over {} runs (same-run values; judged on the median)\n",
        runs.len()
    );
    let per_run: Vec<Vec<Goal>> = runs.iter().map(goals).collect();
    let Some(first) = per_run.first() else {
        return out;
    };
    if let Some(tcp) = runs.first().and_then(|r| r.tcp.as_ref()) {
        let _ = writeln!(out, "  {}", tcp.describe());
    }
    for (i, goal) in first.iter().enumerate() {
        let ping = goal.what.starts_with("ping");
        let show = |v: f64| if ping { format!("{v:+.0}") } else { format!("{v:.2}") };
        let mut values: Vec<f64> = per_run.iter().filter_map(|g| g[i].value).collect();
        let listed: Vec<String> = per_run
            .iter()
            .map(|g| g[i].value.map_or_else(|| "-".to_string(), show))
            .collect();
        let median = median(&mut values);
        let verdict = match median.map(|m| goal.limit.holds(m)) {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        let _ = writeln!(
            out,
            "  {verdict:<12} {} — median {} (runs: {})",
            goal.what,
            median.map_or_else(|| "-".to_string(), show),
            listed.join(", ")
        );
    }
    let mut floors: Vec<f64> = runs.iter().filter_map(|r| r.wake_floor_us).collect();
    let listed: Vec<String> = floors.iter().map(|v| format!("{v:.0}")).collect();
    if let Some(m) = median(&mut floors) {
        let _ = writeln!(
            out,
            "  {}: median {m:.0} us (runs: {})",
            wake_floor_label(),
            listed.join(", ")
        );
    }
    out
}

/// How the report names [`Results::wake_floor_us`] (the idle time is the pings' spacing).
fn wake_floor_label() -> String {
    format!(
        "two thread wake-ups on one vCPU after {} ms idle (about the least a userspace path adds to a ping here)",
        PING_GAP.as_millis()
    )
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(name: &str, tcp1: f64, tcp4: Option<f64>, udp: Option<f64>, rtt: f64) -> Figures {
        Figures {
            name: name.into(),
            tcp1_bps: tcp1 * 1e9,
            tcp4_bps: tcp4.map(|v| v * 1e9),
            udp64_pps: udp,
            rtt_ms: rtt,
            cpu_s_per_gb: 0.5,
        }
    }

    #[test]
    fn goals_are_judged_on_same_run_ratios() {
        let r = Results {
            same_host: vec![
                fig("kernel bridge (veth)", 20.0, Some(36.0), Some(550_000.0), 0.050),
                // Listed before the default path: each goal takes its own row by name.
                fig("switchd bridge, polling", 10.0, Some(30.0), Some(100_000.0), 0.095),
                fig("switchd bridge network", 15.0, Some(20.0), Some(300_000.0), 0.070),
                fig("OVS userspace, tap", 3.6, Some(4.0), Some(200_000.0), 0.160),
                fig("OVS userspace, tap + TSO", 12.0, Some(14.0), Some(210_000.0), 0.150),
                fig("switchd bridge, IPv6", 14.0, None, None, 0.070),
            ],
            cross_host: vec![
                fig("switchd overlay (VXLAN)", 4.0, None, None, 0.2),
                fig("kernel VXLAN", 16.0, None, None, 0.1),
                fig("switchd overlay, IPv6", 3.0, None, None, 0.2),
                fig("switchd overlay (VXLAN over IPv6)", 3.8, None, None, 0.2),
            ],
            skipped: vec!["vde_switch is not installed (scripts/bench.sh installs it)".into()],
            wake_floor_us: Some(38.4),
            tcp: Some(Congestion {
                used: "cubic".into(),
                default: "bbr".into(),
            }),
        };
        let met: Vec<Option<bool>> = goals(&r).iter().map(Goal::met).collect();
        // 15/20 = 0.75; 15/12 = 1.25; 20/36 = 0.56; 4/16 = 0.25; 300k/200k = 1.5; +20 us;
        // polling +45 us; nothing encrypted; IPv6 14/15 = 0.93 and 3/4 = 0.75; an IPv6
        // underlay 3.8/4 = 0.95.
        assert_eq!(
            met,
            [
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(true),
                Some(true),
                Some(false),
                None,
                None,
                None,
                Some(true),
                Some(false),
                Some(true)
            ]
        );
        let text = report(&r);
        assert!(
            text.contains("MISSED       same host, 4 TCP streams >= 0.60 x kernel bridge — measured 0.56"),
            "{text}"
        );
        assert!(
            text.contains("met          ping RTT added over the kernel bridge <= +30 us — measured +20 us"),
            "{text}"
        );
        assert!(
            text.contains(
                "MISSED       ping RTT added over the kernel bridge <= +30 us, polling dataplane (holds a vCPU) — measured +45 us"
            ),
            "{text}"
        );
        assert!(
            text.contains("\nswitchd bridge, polling        10.00     0.50"),
            "{text}"
        );
        assert!(text.contains("skipped: vde_switch is not installed"), "{text}");
        assert!(
            text.starts_with("TCP congestion control: cubic (chosen; the machine's default is bbr)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "two thread wake-ups on one vCPU after 50 ms idle (about the least a userspace path adds to a ping here): 38 us"
            ),
            "{text}"
        );

        // The encrypted paths: 2.5 / 0.5 = 5 x wireguard-go; 2.5 / 4 = 0.62 x plain; +30 us.
        let mut sealed = r.clone();
        sealed.cross_host.push(fig(SEALED, 2.5, None, None, 0.23));
        sealed.cross_host.push(fig(WIREGUARD, 0.5, None, None, 0.4));
        let met: Vec<Option<bool>> = goals(&sealed).iter().map(Goal::met).collect();
        assert_eq!(&met[7..10], [Some(true), Some(true), Some(false)]);
        assert_eq!(
            goals(&sealed)[3].met(),
            Some(false),
            "the plain overlay still against the kernel's"
        );
        let text = report(&sealed);
        assert!(
            text.contains("\nkernel VXLAN over wireguard-go          0.50     0.03"),
            "{text}"
        );

        // A peer missing: its goal is not measured rather than judged.
        let r = Results {
            same_host: r.same_host[..3].to_vec(),
            ..r
        };
        assert_eq!(goals(&r)[1].met(), None);
        assert!(report(&r).contains("not measured"));
        // So is the polling path's when it was not measured.
        let r = Results {
            same_host: vec![r.same_host[0].clone(), r.same_host[2].clone()],
            ..r
        };
        assert_eq!(goals(&r)[5].met(), Some(true));
        assert_eq!(goals(&r)[6].met(), None);
    }

    #[test]
    fn the_congestion_control_is_the_default_or_one_the_kernel_has() {
        let default = Congestion::pick(None).expect("the kernel's TCP settings");
        assert!(!default.used.is_empty());
        assert_eq!(default.used, default.default);
        // Reno is built into every kernel with TCP.
        let reno = Congestion::pick(Some("reno")).expect("reno");
        assert_eq!(
            (reno.used.as_str(), reno.default.as_str()),
            ("reno", default.default.as_str())
        );
        for bad in ["no_such_algorithm", "reno; true", ""] {
            let e = Congestion::pick(Some(bad)).expect_err(bad).to_string();
            assert!(
                e.starts_with(&format!(
                    "congestion control '{bad}' is not available here; this kernel has: "
                )),
                "{e}"
            );
            assert!(e.contains("reno"), "{e}");
        }
        // A list: each in turn, all checked before any is used (the default second, unless
        // it is reno itself).
        let list = match default.default.as_str() {
            "reno" => "reno".to_string(),
            d => format!("reno, {d}"),
        };
        let both = Congestion::pick_all(Some(&list)).expect("list");
        let used: Vec<&str> = both.iter().map(|c| c.used.as_str()).collect();
        let wanted: Vec<&str> = list.split(", ").collect();
        assert_eq!(used, wanted);
        assert_eq!(Congestion::pick_all(None).expect("default"), vec![default]);
        let e = Congestion::pick_all(Some("reno,no_such_algorithm"))
            .expect_err("one bad")
            .to_string();
        assert!(
            e.starts_with("congestion control 'no_such_algorithm' is not available"),
            "{e}"
        );
        let e = Congestion::pick_all(Some("reno,,reno"))
            .expect_err("empty item")
            .to_string();
        assert!(e.starts_with("congestion control '' is not available"), "{e}");
        let e = Congestion::pick_all(Some("reno,reno")).expect_err("twice");
        assert_eq!(
            e.to_string(),
            "congestion control 'reno' is listed twice in 'reno,reno'"
        );
    }

    /// The vCPUs the calling thread may run on.
    fn allowed_cpus() -> Vec<usize> {
        // SAFETY: as in OneCpu::hold.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set), 0);
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }

    #[test]
    fn the_wake_up_floor_is_a_measured_round_trip() {
        let before = allowed_cpus();
        let us = wake_round_trip_us().expect("pipes");
        // Two wake-ups take more than nothing and far less than the time the threads idle.
        assert!(us > 0.0 && us < PING_GAP.as_secs_f64() * 1e6, "{us} us");
        // The caller is let go to the vCPUs it had.
        assert_eq!(allowed_cpus(), before);
    }

    #[test]
    fn one_cpu_holds_the_thread_on_one_vcpu_and_lets_go() {
        let before = allowed_cpus();
        {
            let _held = OneCpu::hold().expect("affinity");
            let now = allowed_cpus();
            // SAFETY: sched_getcpu has no preconditions.
            let cpu = unsafe { libc::sched_getcpu() };
            assert_eq!(now, vec![cpu as usize]);
        }
        assert_eq!(allowed_cpus(), before);
    }

    #[test]
    fn several_runs_are_judged_on_the_median() {
        let run = |ours: f64, rtt: f64| Results {
            wake_floor_us: Some(rtt * 400.0),
            same_host: vec![
                fig("kernel bridge (veth)", 20.0, Some(36.0), Some(550_000.0), 0.050),
                fig("switchd bridge network", ours, Some(20.0), Some(300_000.0), rtt),
            ],
            cross_host: vec![],
            skipped: vec![],
            tcp: Some(Congestion {
                used: "bbr".into(),
                default: "bbr".into(),
            }),
        };
        // One stream: 0.65, 0.75, 0.80 of the kernel bridge -> median 0.75, met; RTT added
        // +40, +20, +25 -> median +25, met; a run that could not measure a path counts as
        // not measured, not as a value.
        let text = summary(&[run(13.0, 0.090), run(15.0, 0.070), run(16.0, 0.075)]);
        assert!(text.contains("goals over 3 runs"), "{text}");
        assert!(
            text.contains("\n  TCP congestion control: bbr (the machine's default)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "met          same host, 1 TCP stream >= 0.70 x kernel bridge — median 0.75 (runs: 0.65, 0.75, 0.80)"
            ),
            "{text}"
        );
        assert!(text.contains("median +25 (runs: +40, +20, +25)"), "{text}");
        assert!(text.contains("ping here): median 30 us (runs: 36, 28, 30)"), "{text}");
        assert!(
            text.contains("not measured ") && text.contains("(runs: -, -, -)"),
            "{text}"
        );
        let two = summary(&[run(13.0, 0.090), run(14.0, 0.070)]);
        assert!(
            two.contains("MISSED       same host, 1 TCP stream >= 0.70 x kernel bridge — median 0.68"),
            "{two}"
        );
    }
}
