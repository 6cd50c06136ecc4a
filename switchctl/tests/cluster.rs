//! `switchctl cluster init` and `cluster cert`: offline, no daemon, no privileges.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use switch_pki::pki;

fn ctl(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_switchctl"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_then_cert_make_a_verifiable_host_identity() {
    let t = TempDir(std::env::temp_dir().join(format!("switchctl-cluster-{}", std::process::id())));
    let (ca, host, other) = (t.0.join("ca"), t.0.join("h1"), t.0.join("other"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    assert!(ctl(&["cluster", "init", "--out", &s(&ca)]).0);
    assert_eq!((mode(&ca.join("ca.key")), mode(&ca.join("ca.crt"))), (0o600, 0o644));
    let (ok, out) = ctl(&["cluster", "init", "--out", &s(&ca)]);
    assert!(!ok && out.contains("refusing to overwrite a cluster CA"), "{out}");
    assert!(
        ctl(&[
            "cluster",
            "cert",
            "--ca",
            &s(&ca),
            "--name",
            "host-1",
            "--out",
            &s(&host)
        ])
        .0
    );
    assert_eq!(mode(&host.join("host.key")), 0o600);
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(host.join("ca.crt")), read(ca.join("ca.crt")));
    let now = SystemTime::now();
    let id = pki::verify(&read(ca.join("ca.crt")), &read(host.join("host.crt")), now).unwrap();
    assert_eq!((id.name.as_str(), id.index), ("host-1", 0));
    let h3 = t.0.join("h3");
    assert!(ctl(&["cluster", "cert", "--ca", &s(&ca), "--name", "host-3", "--out", &s(&h3)]).0);
    let id3 = pki::verify(&read(ca.join("ca.crt")), &read(h3.join("host.crt")), now).unwrap();
    assert_eq!(id3.index, 1, "indexes count up");
    // Another CA's host is not a member of this cluster.
    assert!(ctl(&["cluster", "init", "--out", &s(&other)]).0);
    let h2 = t.0.join("h2");
    assert!(
        ctl(&[
            "cluster",
            "cert",
            "--ca",
            &s(&other),
            "--name",
            "host-2",
            "--out",
            &s(&h2)
        ])
        .0
    );
    assert!(pki::verify(&read(ca.join("ca.crt")), &read(h2.join("host.crt")), now).is_err());
    let (ok, out) = ctl(&[
        "cluster",
        "cert",
        "--ca",
        &s(&ca),
        "--name",
        "bad name",
        "--out",
        &s(&t.0.join("x")),
    ]);
    assert!(!ok && out.contains("invalid host name \"bad name\""), "{out}");
    let (ok, out) = ctl(&[
        "cluster",
        "cert",
        "--ca",
        &s(&t.0.join("nope")),
        "--name",
        "h",
        "--out",
        &s(&t.0.join("y")),
    ]);
    assert!(!ok && out.contains("cannot read"), "{out}");
}
