//! The README's "run the fabric" walk-through, end to end. Needs root (SWITCH_E2E=require)
//! and the binaries built (`cargo build --bins`).

use std::path::Path;

#[test]
fn the_demo_runs_every_step_as_meant_and_leaves_nothing() {
    if !testbed::e2e_allowed("demo") {
        return;
    }
    let bins = Path::new(env!("CARGO_BIN_EXE_switchsim")).parent().expect("target dir");
    assert!(
        sim::demo::run(bins, false),
        "a step did not go as meant (see the output)"
    );
    let left = testbed::run("ip", ["netns", "list"]).stdout;
    assert!(!left.lines().any(|l| l.starts_with("demo")), "left behind: {left}");
}
