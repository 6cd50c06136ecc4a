//! `switchsim up` builds a topology from a file and leaves it running; `down` removes all of
//! it, also when a switchd died meanwhile. Needs root (SWITCH_E2E=require) and the binaries.

use std::path::Path;

#[test]
fn up_leaves_a_running_fabric_and_down_removes_it_all() {
    if !testbed::e2e_allowed("topology") {
        return;
    }
    let name = format!("tp{}", std::process::id() % 100_000);
    let file = std::env::temp_dir().join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\nunderlay = 93\n[[host]]\nname = \"h1\"\n[[host]]\nname = \"h2\"\n\
         [[network]]\nname = \"ovl\"\non = \"h1\"\ndriver = \"overlay\"\nsubnet = \"10.86.0.0/24\"\n\
         [[sandbox]]\nname = \"a\"\non = \"h1\"\nnetwork = \"ovl\"\nip = \"10.86.0.10\"\n\
         [[sandbox]]\nname = \"b\"\non = \"h2\"\nnetwork = \"ovl\"\n"
    );
    std::fs::write(&file, text).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_switchsim"));
    let switchsim = |cmd: &str| testbed::run(bin, [cmd, file.to_str().unwrap()]);
    let ours = || -> Vec<String> {
        testbed::run("ip", ["netns", "list"])
            .stdout
            .lines()
            .filter(|l| l.starts_with(&name))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };

    // Whatever happens below, the topology goes at the end.
    struct Down<'a>(&'a Path, &'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            testbed::run(self.0, ["down", self.1.to_str().unwrap_or_default()]);
            let _ = std::fs::remove_file(self.1);
        }
    }
    let _down = Down(bin, &file);
    let up = switchsim("up");
    assert!(up.ok(), "{up:?}");
    assert!(
        up.stdout.contains(&format!("sandbox b: ip netns exec {name}h2-b")),
        "{}",
        up.stdout
    );
    let again = switchsim("up");
    assert!(!again.ok() && again.stderr.contains("is up already"), "{again:?}");
    let mut pinged = false;
    for _ in 0..30 {
        let b = format!("{name}h2-b");
        if testbed::run("ip", ["netns", "exec", &b, "ping", "-c", "1", "-W", "1", "10.86.0.10"]).ok() {
            pinged = true;
            break;
        }
    }
    assert!(pinged, "b (h2) reaches a (h1) over the overlay");
    assert_eq!(ours().len(), 5, "{:?}", ours());

    // A switchd dies; down still removes everything.
    let h1 = format!("{name}h1-h");
    for pid in testbed::run("ip", ["netns", "pids", &h1]).stdout.split_whitespace() {
        testbed::run("kill", ["-9", pid]);
    }
    let down = switchsim("down");
    assert!(down.ok() && down.stdout.contains("removed 5 namespaces"), "{down:?}");
    assert!(ours().is_empty(), "{:?}", ours());
    let procs = testbed::run("pgrep", ["-f", &format!("switch-test-{name}")]);
    assert!(procs.stdout.trim().is_empty(), "switchd left running: {}", procs.stdout);
}
