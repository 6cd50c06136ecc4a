//! switchsim: whole fabrics in virtual time (`run`), topologies in namespaces for tests and
//! demos (`demo`, `up`, `down`), and the data-plane benchmark (`bench`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sim::virt::scenario::Scenario;
use sim::virt::Options;
use testbed::is_root;

/// Topology runner of the container network fabric.
#[derive(Parser, Debug)]
#[command(name = "switchsim", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a scenario (sim/scenarios/*.toml) in virtual time and print its report; exits
    /// non-zero when an invariant broke, after writing a pcap of the frames involved.
    /// SWITCHSIM_TRACE=1 prints every frame entering and leaving a switch port on stderr;
    /// SWITCHSIM_DEBUG=1 prints each live host's view (members, records, digest) at the end.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Seed of every random choice (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Number of hosts (default: the scenario's).
        #[arg(long)]
        hosts: Option<u32>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Where a failing run writes its capture (default: SCENARIO-SEED.pcap here).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Draw the distributions of route convergence and failure detection, with their
        /// goals, into this SVG file.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
    /// Stand up a two-host fabric and walk through container networking (default networks,
    /// modes, user networks, isolation and connect, names, published ports, overlay, macvlan),
    /// printing each command and its result; remove everything afterwards.
    Demo {
        /// Keep everything until Enter is pressed, for exploring by hand.
        #[arg(long)]
        keep: bool,
    },
    /// Build the multi-host topology a file describes (hosts running switchd on one wire, in
    /// one cluster; networks; sandboxes) and leave it running.
    Up {
        /// The topology file.
        topology: PathBuf,
    },
    /// Remove everything a topology file's `up` made, also after a crashed run.
    Down {
        /// The topology file.
        topology: PathBuf,
    },
    /// Remove what interrupted runs left behind (a demo, a benchmark or a test stopped by
    /// Ctrl-C, a kill or a crash): their namespaces, switchd processes and files. Runs still
    /// going and topologies made by `up` are left alone.
    Clean {
        /// Say nothing when there is nothing to remove.
        #[arg(long)]
        quiet: bool,
    },
    /// Measure the data plane against its peers in one run, in namespaces: same host (kernel
    /// bridge, a switchd bridge network as switchd runs by default and again with a dataplane
    /// that never sleeps (--poll-us 1000000), Open vSwitch's userspace datapath with and without
    /// userspace TSO, vde_switch) and cross host (switchd's overlay, the kernel's VXLAN), with
    /// iperf3 and ping; print the figures, the ratios and the goals. Needs iperf3; peers not
    /// installed are skipped (scripts/bench.sh installs them and builds first).
    Bench {
        /// Repeat the whole comparison this many times and judge the goals on the median of
        /// the runs' ratios (each run is printed too).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
        /// Run every path's TCP tests with this congestion control (iperf3 -C; one of
        /// net.ipv4.tcp_available_congestion_control) instead of the machine's default; with a
        /// comma-separated list (bbr,cubic) each run is made once per algorithm, in turn, and
        /// each algorithm's runs are judged apart.
        #[arg(long, value_name = "NAME")]
        congestion_control: Option<String>,
        /// Report format: text tables, or one JSON document (each run's figures and goals,
        /// and the goals judged on the median of the runs). Progress goes to stderr.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Draw each path's single-stream throughput and round trip (the median of the
        /// runs), switchd's paths highlighted and the goals marked, into this SVG file.
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            scenario,
            seed,
            hosts,
            format,
            pcap,
            plot,
        } => {
            with_huge_pages();
            prefault_heap();
            run(&scenario, seed, hosts, format, (pcap, plot))
        }
        Cmd::Demo { keep } => {
            on_interrupt_clean_up();
            demo(keep)
        }
        Cmd::Clean { quiet } => clean(quiet),
        Cmd::Up { topology } => up_down(&topology, true),
        Cmd::Down { topology } => up_down(&topology, false),
        Cmd::Bench {
            runs,
            congestion_control,
            format,
            plot,
        } => {
            on_interrupt_clean_up();
            bench(runs, congestion_control.as_deref(), format, plot.as_deref())
        }
    }
}

/// A simulated run holds every host's tables at once: gigabytes in millions of small
/// allocations, read in random order, so it waits on TLB misses and page faults more than on
/// anything else. glibc's malloc backs its heap with transparent huge pages when asked by the
/// tunable `glibc.malloc.hugetlb=1`, which it reads only when a process starts: so the first
/// time through, the process starts itself again with the tunable added (1,000 hosts × 10
/// sandboxes: about 65 s without, 56 s with; reports are the same). When that cannot be done
/// the run goes on as it is.
fn with_huge_pages() {
    use std::os::unix::process::CommandExt;
    const TUNABLE: &str = "glibc.malloc.hugetlb";
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.split(':').any(|t| t.split('=').next() == Some(TUNABLE)) {
        return;
    }
    let with = if tunables.is_empty() {
        format!("{TUNABLE}=1")
    } else {
        format!("{tunables}:{TUNABLE}=1")
    };
    // The binary itself, by its path (so the process keeps its name).
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    // Only returns when the exec failed.
    let _ = std::process::Command::new(exe)
        .arg0(argv0)
        .args(args)
        .env("GLIBC_TUNABLES", with)
        .exec();
}

/// The other half of a run's memory cost is the kernel zeroing each page the first time it
/// is touched (about 6 µs a page on these VMs, 8-10 s of a 1,000-host run), inside the
/// simulation's one thread. Here the heap grows in steps of 64 MB (everything from
/// the heap, nothing mapped apart, nothing given back), and a second thread faults each step
/// in (`MADV_POPULATE_WRITE`: the pages are made present as if written, their contents
/// untouched) while the simulation still works in the step before: the zeroing moves to the
/// other core. Where the kernel lacks it, the thread stops and pages fault in as before.
fn prefault_heap() {
    const HEAP_STEP: libc::c_int = 64 << 20;
    // The program break, asked of the kernel (brk(0) changes nothing; glibc's sbrk would
    // read a variable malloc writes from the other thread).
    // SAFETY: a brk call with address 0 only reports.
    let brk = || unsafe { libc::syscall(libc::SYS_brk, 0usize) } as usize;
    // SAFETY: mallopt only sets malloc's parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        libc::mallopt(libc::M_TOP_PAD, HEAP_STEP);
    }
    let start = brk();
    let page = 4096;
    let _ = std::thread::Builder::new().name("prefault".into()).spawn(move || {
        let mut done = start.next_multiple_of(page);
        loop {
            let brk = brk() / page * page;
            if brk > done {
                // SAFETY: [done, brk) is the heap malloc has taken from the kernel: mapped,
                // and only made present here, never read or written.
                if unsafe { libc::madvise(done as *mut libc::c_void, brk - done, libc::MADV_POPULATE_WRITE) } != 0 {
                    return;
                }
                done = brk;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
}

fn run(
    path: &std::path::Path,
    seed: Option<u64>,
    hosts: Option<u32>,
    format: Format,
    (pcap, plot): (Option<PathBuf>, Option<PathBuf>),
) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read scenario {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let sc = match Scenario::parse(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if hosts == Some(0) {
        eprintln!("invalid --hosts 0: give at least 1");
        return ExitCode::from(2);
    }
    if let Err(e) = writable(plot.as_deref()) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let mut watch = Watch::new(started);
    let out = sim::virt::run_watched(sc, &Options { seed, hosts }, &mut |p| watch.show(p));
    watch.clear();
    let r = &out.report;
    match format {
        Format::Json => print!("{}", r.json()),
        Format::Text => print!("{}", r.text()),
    }
    eprintln!("wall time {:.1} s", started.elapsed().as_secs_f64());
    if let Some(file) = plot {
        let samples = sim::plot::RunSamples {
            title: format!("switchsim run {}: {} hosts, seed {}", r.scenario, r.hosts, r.seed),
            convergence_ms: out.convergence_ms.clone(),
            detection_ms: out.detection_ms.clone(),
        };
        match sim::plot::run_svg(&file, &samples) {
            Ok(()) => eprintln!("plot written to {}", file.display()),
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(frames) = out.capture {
        let file = pcap.unwrap_or_else(|| PathBuf::from(format!("{}-{}.pcap", r.scenario, r.seed)));
        match std::fs::File::create(&file)
            .and_then(|f| sim::virt::pcap::write(std::io::BufWriter::new(f), frames.iter()))
        {
            Ok(()) => eprintln!(
                "invariants broken: the last {} frames are in {}",
                frames.len(),
                file.display()
            ),
            Err(e) => eprintln!("invariants broken; cannot write {}: {e}", file.display()),
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `switchsim clean`.
fn clean(quiet: bool) -> ExitCode {
    if !is_root() {
        eprintln!("switchsim clean removes network namespaces: run it as root");
        return ExitCode::FAILURE;
    }
    // (A run that ended cleanly left only its note, which goes without a word.)
    let removed: Vec<(String, usize)> = testbed::clean_stale().into_iter().filter(|(_, n)| *n > 0).collect();
    for (prefix, n) in &removed {
        println!("removed {n} namespace(s) of the interrupted run {prefix}, with its processes and files");
    }
    if removed.is_empty() && !quiet {
        println!("nothing to clean: no interrupted run left anything");
    }
    ExitCode::SUCCESS
}

/// Set by SIGINT and SIGTERM.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn interrupted(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// On Ctrl-C or SIGTERM, removes everything this run made (its namespaces, switchd
/// processes and files) and exits 130, whatever step it was at.
fn on_interrupt_clean_up() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is zeroed, then filled.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = interrupted as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    // A step the removal breaks (a switchd killed under a request) may panic: that thread
    // waits, rather than ending the process before the removal is done.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            loop {
                std::thread::park();
            }
        }
        report(info);
    }));
    std::thread::spawn(|| loop {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
            let n = testbed::clean_own();
            eprintln!("\ninterrupted: removed the {n} namespace(s) this run made, with their processes and files");
            std::process::exit(130);
        }
    });
}

/// Progress of a simulated run on a terminal: one line, rewritten at most twice a second;
/// nothing when stderr is not a terminal.
struct Watch {
    started: std::time::Instant,
    shown: Option<std::time::Instant>,
    on: bool,
}

impl Watch {
    fn new(started: std::time::Instant) -> Watch {
        use std::io::IsTerminal;
        Watch {
            started,
            shown: None,
            on: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, p: sim::virt::Progress) {
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        if !self.on || self.shown.is_some_and(|t| now.duration_since(t).as_millis() < 500) {
            return;
        }
        self.shown = Some(now);
        eprint!(
            "\r\x1b[Ksimulated {:.1} of {:.1} s ({:.0}%), wall {:.1} s, {} events",
            p.simulated_s,
            p.duration_s,
            100.0 * p.simulated_s / p.duration_s.max(f64::EPSILON),
            now.duration_since(self.started).as_secs_f64(),
            p.events
        );
    }

    fn clear(&self) {
        if self.on && self.shown.is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

fn demo(keep: bool) -> ExitCode {
    if !is_root() {
        eprintln!("switchsim demo creates namespaces and TAP devices: run it as root");
        return ExitCode::FAILURE;
    }
    let dir = match bin_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let ok = sim::demo::run(&dir, keep);
    println!("# cleaned up: namespaces, interfaces and switchd processes are gone");
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("the demo had steps that did not go as meant (marked !! above)");
        ExitCode::FAILURE
    }
}

fn up_down(path: &std::path::Path, up: bool) -> ExitCode {
    if !is_root() {
        eprintln!("switchsim up and down manage namespaces: run them as root");
        return ExitCode::FAILURE;
    }
    let topo = match std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read topology {}: {e}", path.display()))
        .and_then(|t| sim::topology::Topology::parse(&t).map_err(|e| format!("{}: {e}", path.display())))
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if !up {
        let n = topo.down();
        println!(
            "# topology {}: removed {n} namespaces and their switchd processes",
            topo.name
        );
        return ExitCode::SUCCESS;
    }
    let made = match bin_dir() {
        Ok(dir) => topo.up(&dir).map_err(|e| e.to_string()),
        Err(e) => Err(format!("cannot find switchsim's own directory: {e}")),
    };
    match made {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the `--plot` file can be written, found out before the work rather than after.
fn writable(plot: Option<&std::path::Path>) -> Result<(), String> {
    let Some(p) = plot else { return Ok(()) };
    std::fs::File::create(p)
        .map(drop)
        .map_err(|e| format!("cannot write --plot {}: {e}", p.display()))
}

fn bin_dir() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().map(PathBuf::from).unwrap_or_default())
}

fn bench(runs: u32, congestion_control: Option<&str>, format: Format, plot: Option<&std::path::Path>) -> ExitCode {
    if !is_root() {
        eprintln!("switchsim bench creates namespaces: run it as root");
        return ExitCode::FAILURE;
    }
    if let Err(e) = writable(plot) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let algorithms = match benches::dataplane::Congestion::pick_all(congestion_control) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("switchsim bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Runs of the algorithms alternate, so that the machine's drift falls on each alike.
    let mut all: Vec<Vec<benches::dataplane::Results>> = vec![Vec::new(); algorithms.len()];
    for i in 1..=runs {
        for (tcp, done) in algorithms.iter().zip(all.iter_mut()) {
            let text = format == Format::Text;
            if runs > 1 && text {
                println!("\n## run {i} of {runs}");
            } else if algorithms.len() > 1 && text {
                println!();
            }
            eprintln!("# run {i} of {runs}, TCP with {}", tcp.used);
            #[allow(clippy::disallowed_methods)]
            let started = std::time::Instant::now();
            let mut measured_one = |f: &benches::dataplane::Figures| {
                eprintln!(
                    "  {:<36} {:>6.2} Gbit/s, {:>5.0} us round trip  ({:.0} s)",
                    f.name,
                    f.tcp1_bps / 1e9,
                    f.rtt_ms * 1000.0,
                    started.elapsed().as_secs_f64()
                );
            };
            let measured = match bin_dir() {
                Ok(d) => benches::dataplane::run_all(&d, tcp, &mut measured_one).map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot find switchsim's own directory: {e}")),
            };
            match measured {
                Ok(r) => {
                    if text {
                        print!("{}", benches::dataplane::report(&r));
                    }
                    done.push(r);
                }
                Err(e) => {
                    eprintln!("bench failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    match format {
        Format::Text if runs > 1 => {
            for done in &all {
                print!("{}", benches::dataplane::summary(done));
            }
        }
        Format::Text => {}
        Format::Json => {
            let each: Vec<serde_json::Value> = all.iter().map(|done| benches::dataplane::json(done)).collect();
            let doc = match each.as_slice() {
                [one] => one.clone(),
                _ => serde_json::Value::Array(each),
            };
            println!("{doc:#}");
        }
    }
    // The first algorithm's runs: the median of each path, and its goals.
    if let (Some(file), Some(done)) = (plot, all.first()) {
        let median = benches::dataplane::median_results(done);
        let goals = benches::dataplane::goals(&median);
        match sim::plot::bench_svg(file, &median, &goals) {
            Ok(()) => eprintln!("plot written to {}", file.display()),
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
