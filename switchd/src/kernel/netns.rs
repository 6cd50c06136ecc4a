//! Network namespaces: run code inside one, create and publish named ones like `ip netns add`.
//!
//! A namespace is entered on a fresh thread (setns affects only the calling thread), so the
//! daemon's own threads never change namespace.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::kernel::{netdev, KernelError};

/// Runs `f` on a new thread that has entered the namespace at `ns`.
pub fn run_in<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    let file =
        File::open(ns).map_err(|e| io::Error::new(e.kind(), format!("cannot open namespace {}: {e}", ns.display())))?;
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| KernelError::Namespace {
            step: "enter namespace",
            path: ns,
            source,
        })?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace worker thread panicked"))?
}

/// Makes `dir` a shared mount point, as iproute2 does for /run/netns, so namespaces bound
/// below it are seen by every mount namespace that shares it.
fn prepare_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let none: Option<&str> = None;
    if mount(none, dir, none, MsFlags::MS_SHARED | MsFlags::MS_REC, none).is_ok() {
        return Ok(());
    }
    let failed = |step| {
        move |source| KernelError::Namespace {
            step,
            path: dir.to_path_buf(),
            source,
        }
    };
    mount(Some(dir), dir, none, MsFlags::MS_BIND | MsFlags::MS_REC, none).map_err(failed("bind onto itself"))?;
    mount(none, dir, none, MsFlags::MS_SHARED | MsFlags::MS_REC, none).map_err(failed("make shared"))?;
    Ok(())
}

fn create_mount_point(path: &Path) -> io::Result<()> {
    prepare_dir(path.parent().unwrap_or(Path::new("/")))?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map(drop)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create namespace file {}: {e}", path.display()),
            )
        })
}

/// Creates a new network namespace published at `path` with loopback up and IPv6 off
/// (networks here are IPv4; this keeps router solicitations and DAD off the wire).
pub fn create(path: &Path) -> io::Result<()> {
    create_mount_point(path)?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(KernelError::Unshare)?;
        let me = PathBuf::from(format!("/proc/self/task/{}/ns/net", nix::unistd::gettid()));
        let none: Option<&str> = None;
        mount(Some(&me), &target, none, MsFlags::MS_BIND, none).map_err(|source| KernelError::Namespace {
            step: "bind the namespace to",
            path: target.clone(),
            source,
        })?;
        netdev::set_up("lo")?;
        netdev::write_sysctl("net/ipv6/conf/all/disable_ipv6", "1")?;
        netdev::write_sysctl("net/ipv6/conf/default/disable_ipv6", "1")
    })
    .join()
    .map_err(|_| io::Error::other("namespace worker thread panicked"))?;
    if let Err(e) = made {
        let _ = remove(path);
        return Err(e);
    }
    Ok(())
}

/// Publishes the existing namespace `src` (a /proc or bind-mounted path) at `path`.
pub fn publish(src: &Path, path: &Path) -> io::Result<()> {
    create_mount_point(path)?;
    let none: Option<&str> = None;
    if let Err(source) = mount(Some(src), path, none, MsFlags::MS_BIND, none) {
        let _ = fs::remove_file(path);
        return Err(KernelError::Namespace {
            step: "bind a namespace to",
            path: path.to_path_buf(),
            source,
        }
        .into());
    }
    Ok(())
}

/// Unpublishes `path`; the namespace ends when nothing else holds it.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(source) => {
            return Err(KernelError::Namespace {
                step: "unmount",
                path: path.to_path_buf(),
                source,
            }
            .into())
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether `path` is a network namespace (a bind mount of an nsfs inode).
pub fn is_namespace(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}
