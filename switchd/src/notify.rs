//! Telling the service manager how switchd is doing (sd_notify(3)): one datagram to the Unix
//! socket `$NOTIFY_SOCKET` names, a path or (with a leading `@`) an abstract name. systemd
//! sets it for a `Type=notify` unit; without it nothing is sent.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The API answers and the stored state is back: the unit is started.
pub fn ready() {
    send("READY=1\nSTATUS=serving the API");
}

/// switchd is stopping (the ports and namespaces stay for the next start).
pub fn stopping() {
    send("STOPPING=1");
}

fn send(msg: &str) {
    let Some(to) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_to(&to, msg) {
        tracing::warn!(socket = ?to, "cannot tell the service manager {msg:?}: {e}");
    }
}

fn send_to(to: &OsStr, msg: &str) -> io::Result<()> {
    let addr = match to.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(to)?,
    };
    UnixDatagram::unbound()?.send_to_addr(msg.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_reaches_a_path_and_an_abstract_socket() {
        let path = std::env::temp_dir().join(format!("switchd-notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let at_path = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = at_path.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_file(&path);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("switchd-notify-test-{}", std::process::id());
        let abs = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(send_to(OsStr::new("/nonexistent/notify.sock"), "READY=1").is_err());
    }
}
