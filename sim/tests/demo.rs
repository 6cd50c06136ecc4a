//! The README's "run the fabric" walk-through, end to end. Needs root (SWITCH_E2E=require)
//! and the binaries built (`cargo build --bins`).

use std::path::Path;
use std::sync::Mutex;

/// One demo at a time: two would share the wire's subnet.
static ONE_DEMO: Mutex<()> = Mutex::new(());

#[test]
fn the_demo_runs_every_step_as_meant_and_leaves_nothing() {
    if !testbed::e2e_allowed("demo") {
        return;
    }
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let bins = Path::new(env!("CARGO_BIN_EXE_switchsim")).parent().expect("target dir");
    assert!(
        sim::demo::run(bins, false),
        "a step did not go as meant (see the output)"
    );
    assert_eq!(namespaces_of(std::process::id()), Vec::<String>::new(), "left behind");
}

/// The namespaces of switchsim process `pid`'s demo (prefix `demoPID-`, hosts `demoPIDh1-`).
fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("demo{}", pid % 100_000);
    let list = testbed::run("ip", ["netns", "list"]).stdout;
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|r| r.contains('-') && r.starts_with(|c: char| c == '-' || c.is_ascii_lowercase()))
        })
        .map(String::from)
        .collect()
}

/// Starts `switchsim demo` and waits until it has made some of its namespaces.
fn demo_under_way() -> std::process::Child {
    let switchsim = env!("CARGO_BIN_EXE_switchsim");
    let child = std::process::Command::new(switchsim)
        .arg("demo")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("switchsim demo");
    let pid = child.id();
    assert!(
        testbed::eventually(30, || namespaces_of(pid).len() >= 4),
        "the demo made no namespaces"
    );
    child
}

#[test]
fn an_interrupted_demo_leaves_nothing_and_clean_takes_what_a_killed_one_left() {
    if !testbed::e2e_allowed("demo-int") {
        return;
    }
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    // Ctrl-C: the demo removes what it made and exits 130.
    let mut demo = demo_under_way();
    let pid = demo.id();
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    let status = demo.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(namespaces_of(pid), Vec::<String>::new(), "left by an interrupted demo");
    // SIGKILL leaves it all; `switchsim clean` takes it, and leaves a live run's alone (this
    // test's own namespace).
    let live = testbed::prefix("live");
    let mine = format!("{live}-x");
    testbed::run("ip", ["netns", "add", &mine]).expect_ok("ip netns add");
    let mut killed = demo_under_way();
    let dead = killed.id();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let left = namespaces_of(dead);
    let clean = testbed::run(env!("CARGO_BIN_EXE_switchsim"), ["clean"]);
    let still = testbed::run("ip", ["netns", "list"]).stdout.contains(&mine);
    testbed::netns::remove_prefix(&live);
    assert!(!left.is_empty(), "a killed demo leaves its namespaces");
    assert!(
        // (An `ip netns add` under way when it was killed may add one after the listing.)
        clean
            .stdout
            .contains(&format!("namespace(s) of the interrupted run demo{}", dead % 100_000)),
        "{}",
        clean.stdout
    );
    assert_eq!(namespaces_of(dead), Vec::<String>::new(), "left after switchsim clean");
    assert!(still, "switchsim clean took a live run's namespace");
}
