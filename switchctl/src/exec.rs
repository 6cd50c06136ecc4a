//! `sandbox exec`: run a command inside a sandbox's network namespace, the way
//! `ip netns exec` does (with /etc/netns/NAME files bound over /etc and a fresh /sys).

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::{bail, Context};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Enters `netns` and replaces this process with `cmd`. Returns only on failure.
pub fn exec_in(name: &str, netns: &Path, cmd: &[OsString]) -> anyhow::Result<()> {
    let Some((prog, args)) = cmd.split_first() else {
        bail!("no command given: use `switchctl sandbox exec {name} -- COMMAND [ARGS...]`");
    };
    let f = File::open(netns).with_context(|| format!("cannot open namespace {}", netns.display()))?;
    setns(&f, CloneFlags::CLONE_NEWNET).with_context(|| format!("cannot enter namespace {}", netns.display()))?;
    private_etc_and_sys(name)?;
    let err = std::process::Command::new(prog).args(args).exec();
    bail!("cannot run {}: {err}", prog.to_string_lossy())
}

fn private_etc_and_sys(name: &str) -> anyhow::Result<()> {
    let none: Option<&str> = None;
    unshare(CloneFlags::CLONE_NEWNS).context("cannot make a private mount namespace")?;
    mount(none, "/", none, MsFlags::MS_SLAVE | MsFlags::MS_REC, none).context("cannot make / a slave mount")?;
    let etc = Path::new("/etc/netns").join(name);
    if let Ok(entries) = std::fs::read_dir(&etc) {
        for e in entries.flatten() {
            let target = Path::new("/etc").join(e.file_name());
            if target.exists() {
                mount(Some(&e.path()), &target, none, MsFlags::MS_BIND, none)
                    .with_context(|| format!("cannot bind {} over {}", e.path().display(), target.display()))?;
            }
        }
    }
    // /sys shows the interfaces of the namespace that mounted it: mount it anew.
    if umount2("/sys", MntFlags::MNT_DETACH).is_ok() {
        mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), none).context("cannot mount /sys")?;
    }
    Ok(())
}
