//! Cross-host measurements in one run: our overlay between two switchd hosts against the Linux
//! kernel's VXLAN between two namespaces, on the same kind of underlay, with iperf3 and ping.

use std::path::{Path, PathBuf};

use crate::netns::{prefix, run, Fabric, Underlay};

/// One measured path.
#[derive(Debug, Clone)]
pub struct PathResult {
    /// What was measured.
    pub name: String,
    /// TCP throughput of one stream, bits per second.
    pub tcp_bps: f64,
    /// Average ping round trip, milliseconds.
    pub rtt_ms: f64,
}

/// Removes namespaces and a directory when dropped.
struct Cleanup {
    namespaces: Vec<String>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = run("ip", ["netns", "delete", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn iperf(ns_server: &str, ns_client: &str, ip: &str) -> Result<f64, String> {
    run("ip", ["netns", "exec", ns_server, "iperf3", "-s", "-1", "-D", "-B", ip]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = run("ip", ["netns", "exec", ns_client, "iperf3", "-c", ip, "-t", "5", "-J"]);
    let v: serde_json::Value =
        serde_json::from_str(&o.stdout).map_err(|e| format!("iperf3 said: {e}: {}", o.stderr))?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| format!("no result from iperf3: {}", o.stdout))
}

fn ping_avg(ns: &str, ip: &str) -> Result<f64, String> {
    let o = run("ip", ["netns", "exec", ns, "ping", "-c", "20", "-i", "0.05", "-q", ip]);
    // rtt min/avg/max/mdev = 0.045/0.061/0.101/0.012 ms
    o.stdout
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("no ping result: {}{}", o.stdout, o.stderr))
}

/// Runs both paths; `bin_dir` holds switchd and switchctl.
///
/// # Errors
/// A step that failed, in words.
pub fn overlay_vs_kernel(bin_dir: &Path) -> Result<Vec<PathResult>, String> {
    let p = prefix("bo");
    let dir = std::env::temp_dir().join(format!("switch-bench-{p}"));
    let (k1, k2) = (format!("{p}-k1"), format!("{p}-k2"));
    let _cleanup = Cleanup {
        namespaces: vec![k1.clone(), k2.clone()],
        dir: dir.clone(),
    };
    // Ours: two switchd hosts, one overlay network, a sandbox on each.
    let fabric = Fabric::new(&format!("{p}o"), 94, bin_dir);
    for h in ["h1", "h2"] {
        fabric.cert("ca", h);
    }
    let h1 = fabric.start(1, "h1");
    let h2 = fabric.start(2, "h2");
    let ok = |o: crate::Output, what: &str| {
        if o.ok() {
            Ok(())
        } else {
            Err(format!("{what}: {}", o.stderr))
        }
    };
    ok(
        h1.ctl([
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.93.0.0/24",
            "bench",
        ]),
        "network",
    )?;
    let t0 = std::time::Instant::now();
    while !h2.ctl(["network", "inspect", "bench"]).ok() {
        if t0.elapsed().as_secs() > 20 {
            return Err("the overlay network did not reach the second host".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
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
    let t0 = std::time::Instant::now();
    while !h1.exec(&a, &["ping", "-c", "1", "-W", "1", "10.93.0.20"]).ok() {
        if t0.elapsed().as_secs() > 20 {
            return Err("the sandboxes never reached each other".into());
        }
    }
    let ours = PathResult {
        name: "switchd overlay (VXLAN)".into(),
        tcp_bps: iperf(&b, &a, "10.93.0.20")?,
        rtt_ms: ping_avg(&a, "10.93.0.20")?,
    };

    // The kernel: two namespaces with VXLAN devices on their own underlay.
    let kul = Underlay::new(&format!("{p}k"));
    for (ns, ip, peer, inner) in [
        (&k1, "10.92.0.1", "10.92.0.2", "10.91.0.1/24"),
        (&k2, "10.92.0.2", "10.92.0.1", "10.91.0.2/24"),
    ] {
        run("ip", ["netns", "add", ns]).expect_ok("netns");
        kul.attach_ns(ns, &format!("{ip}/24"));
        let vx = [
            "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "100", "dstport", "4789", "local", ip, "remote",
            peer,
        ];
        run("ip", vx).expect_ok("kernel vxlan");
        run("ip", ["-n", ns, "addr", "add", inner, "dev", "vx0"]).expect_ok("addr");
        run("ip", ["-n", ns, "link", "set", "vx0", "up"]).expect_ok("up");
    }
    let kernel = PathResult {
        name: "kernel VXLAN".into(),
        tcp_bps: iperf(&k2, &k1, "10.91.0.2")?,
        rtt_ms: ping_avg(&k1, "10.91.0.2")?,
    };
    Ok(vec![ours, kernel])
}
