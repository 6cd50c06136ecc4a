//! A Docker Engine inside a test host's namespace: its own data root, exec root, socket and
//! pid file; `--bridge=none --iptables=false`, so it changes nothing outside the namespace;
//! an image made from the static busybox (nothing is pulled). Dropping it removes its
//! containers, stops it and removes its directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::{run, Host, Output};

/// Debian's Docker client (docker.io), which speaks the daemon's API version.
pub const DOCKER: &str = "/usr/bin/docker";
/// The image every test container runs: busybox with every applet linked.
pub const IMAGE: &str = "bb:latest";
/// Where Docker finds plugin sockets.
pub const PLUGIN_DIR: &str = "/run/docker/plugins";

/// A running dockerd in a host's namespace.
pub struct Docker {
    ns: String,
    dir: PathBuf,
    live_restore: bool,
    child: Option<Child>,
}

impl Docker {
    /// Starts dockerd in `host`'s namespace and imports the busybox image.
    ///
    /// # Panics
    /// If dockerd does not answer within 60 s or the image cannot be made.
    pub fn start(host: &Host, live_restore: bool) -> Docker {
        let dir = Docker::dir_for(host.prefix());
        let mut d = Docker {
            ns: host.ns().to_string(),
            dir,
            live_restore,
            child: None,
        };
        d.remove_dirs();
        fs::create_dir_all(&d.dir).expect("docker dir");
        d.spawn();
        d.import_busybox();
        d
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("dockerd log");
        // nsenter, not `ip netns exec`: that remounts /sys, and dockerd needs the cgroups.
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}/{}", crate::netns::NETNS_DIR, self.ns))
            .arg("dockerd")
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("x"))
            .arg("--pidfile")
            .arg(self.dir.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ]);
        if self.live_restore {
            cmd.arg("--live-restore");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dockerd runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.cli(["info"]).ok() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The directory of the daemon of the test with `prefix`. Short: containerd's socket
    /// lives under the exec root in it (108-byte limit).
    fn dir_for(prefix: &str) -> PathBuf {
        PathBuf::from(format!("/tmp/sd-{prefix}"))
    }

    /// The socket the daemon of the test with `prefix` listens on (known before it starts, for
    /// switchd's `--docker-host`).
    pub fn socket_for(prefix: &str) -> PathBuf {
        Docker::dir_for(prefix).join("sock")
    }

    /// dockerd's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// dockerd's log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// Runs the Docker client against this daemon.
    pub fn cli<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let host = format!("unix://{}", self.socket().display());
        let mut all: Vec<std::ffi::OsString> = vec!["-H".into(), host.into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        run(DOCKER, all)
    }

    /// `docker exec CONTAINER CMD...`.
    pub fn exec(&self, container: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", container];
        args.extend_from_slice(cmd);
        self.cli(args)
    }

    fn import_busybox(&self) {
        let root = self.dir.join("image");
        let bin = root.join("bin");
        fs::create_dir_all(&bin).expect("image dir");
        fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed");
        for applet in run("/bin/busybox", ["--list"]).stdout.lines() {
            let link = bin.join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).expect("applet link");
            }
        }
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar runs");
        let import = Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(["import", "-", IMAGE])
            .stdin(tar.stdout.take().expect("tar's output"))
            .output()
            .expect("docker import runs");
        let _ = tar.wait();
        assert!(
            import.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&import.stderr)
        );
    }

    /// Stops dockerd (SIGTERM) and waits for it; with live-restore its containers run on.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // nsenter runs dockerd in its own process: signal dockerd itself.
            if let Some(pid) = fs::read_to_string(self.dir.join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops dockerd and starts it again on the same directories.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn remove_dirs(&self) {
        // Whatever a crashed run left mounted under the directory (namespaces, overlays).
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            run("umount", ["-l", m]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.cli(["ps", "-aq"]).stdout;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                self.cli(args);
            }
            // Networks go before the plugin does: Docker would keep asking it.
            let nets = self.cli(["network", "ls", "-q", "--filter", "type=custom"]).stdout;
            for n in nets.split_whitespace() {
                self.cli(["network", "rm", n]);
            }
        }
        self.live_restore = false;
        self.stop();
        // A shim of a container that outlived its daemon (live-restore, or a crash).
        let me = self.dir.to_string_lossy().into_owned();
        for p in run("pgrep", ["-f", &me]).stdout.split_whitespace() {
            if let Ok(pid) = p.parse::<i32>() {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        self.remove_dirs();
    }
}
