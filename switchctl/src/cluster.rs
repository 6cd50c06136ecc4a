//! `switchctl cluster`: the CA, host certificates, and the members a host sees.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use hyper::Method;

use switch_client::client::Client;

use crate::{pretty, table, Format, FormatArg};

#[derive(Subcommand, Debug)]
pub(crate) enum ClusterCmd {
    /// List the cluster's members as this host sees them.
    Peers {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Create a cluster CA: DIR/ca.crt and DIR/ca.key (keep ca.key safe).
    Init {
        /// Where to write the CA.
        #[arg(long)]
        out: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "switch cluster CA")]
        name: String,
    },
    /// Take over the overlay addresses of a host gone for good (refused while it is alive;
    /// run it on one host only, once the host is declared down).
    Forget {
        /// The host's name.
        host: String,
    },
    /// Revoke a host: the CA signs its revocation and this host's switchd spreads it. Every
    /// host then refuses the revoked host's certificate, records, messages and handshakes,
    /// declares it down and withdraws its endpoints (`cluster forget` then takes its
    /// addresses over).
    Revoke {
        /// The host's name.
        host: String,
        /// The CA directory (ca.crt and ca.key, from `cluster init`).
        #[arg(long)]
        ca: PathBuf,
    },
    /// Issue a host certificate: DIR2/ca.crt, DIR2/host.crt, DIR2/host.key and DIR2/gossip.key
    /// (the cluster's gossip key, derived from the CA key), for switchd --cluster-dir.
    Cert {
        /// The CA directory (from `cluster init`).
        #[arg(long)]
        ca: PathBuf,
        /// The host's name.
        #[arg(long)]
        name: String,
        /// Where to write the host's files.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Writes `content` to a new file with `mode`; an existing file is never overwritten.
pub(crate) fn write_new(path: &std::path::Path, content: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                anyhow::anyhow!(
                    "{} already exists: refusing to overwrite it; choose another --out",
                    path.display()
                )
            }
            _ => anyhow::anyhow!("cannot create {}: {e}", path.display()),
        })?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

pub(crate) fn read(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

pub(crate) fn cluster(cmd: ClusterCmd) -> anyhow::Result<ExitCode> {
    use switch_pki::pki;
    let now = std::time::SystemTime::now();
    match cmd {
        ClusterCmd::Peers { .. } | ClusterCmd::Forget { .. } | ClusterCmd::Revoke { .. } => {
            unreachable!("handled with a daemon")
        }
        ClusterCmd::Init { out, name } => {
            std::fs::create_dir_all(&out)?;
            for f in ["ca.crt", "ca.key"] {
                if out.join(f).exists() {
                    anyhow::bail!(
                        "{} already exists: refusing to overwrite a cluster CA",
                        out.join(f).display()
                    );
                }
            }
            let ca = pki::new_ca(&name, now)?;
            write_new(&out.join("ca.key"), &ca.key, 0o600)?;
            write_new(&out.join("ca.crt"), &ca.cert, 0o644)?;
            println!("{}", out.join("ca.crt").display());
        }
        ClusterCmd::Cert { ca, name, out } => {
            let ca_dir = ca;
            let ca = pki::Pem {
                cert: read(&ca_dir.join("ca.crt"))?,
                key: read(&ca_dir.join("ca.key"))?,
            };
            // Every host of a CA gets its own index; the CA's directory keeps the count.
            let counter = ca_dir.join("next-index");
            let index: u32 = match std::fs::read_to_string(&counter) {
                Ok(t) => t
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{} is damaged: expected a number", counter.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => anyhow::bail!("cannot read {}: {e}", counter.display()),
            };
            let host = pki::issue_host(&ca, &name, index, now)?;
            std::fs::create_dir_all(&out)?;
            for f in ["ca.crt", "host.crt", "host.key", "gossip.key"] {
                if out.join(f).exists() {
                    anyhow::bail!(
                        "{} already exists: refusing to overwrite it; choose another --out",
                        out.join(f).display()
                    );
                }
            }
            write_new(&out.join("host.key"), &host.key, 0o600)?;
            write_new(&out.join("host.crt"), &host.cert, 0o644)?;
            write_new(&out.join("ca.crt"), &ca.cert, 0o644)?;
            let key = switch_pki::seal::GossipKey::derive(&ca.key);
            let hex = switch_pki::hex::encode(&key);
            write_new(&out.join("gossip.key"), &format!("{hex}\n"), 0o600)?;
            let tmp = ca_dir.join(".next-index.tmp");
            std::fs::write(&tmp, format!("{}\n", index + 1))?;
            std::fs::rename(&tmp, &counter)?;
            println!("{}", out.join("host.crt").display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cluster revoke HOST --ca DIR`: signs the revocation with the CA's key and hands it to
/// this host's switchd, which checks it and spreads it.
pub(crate) fn revoke(c: &Client, host: &str, ca_dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use switch_pki::pki;
    let ca = pki::Pem {
        cert: read(&ca_dir.join("ca.crt"))?,
        key: read(&ca_dir.join("ca.key"))?,
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let r = pki::revoke(&ca, host, now_ms)?;
    let req = switch_api::RevokeRequest {
        host: r.host.clone(),
        issued_ms: r.issued_ms,
        signature: switch_pki::hex::encode(&r.sig),
    };
    c.call(Method::POST, "/cluster/revoke", Some(&req))?;
    println!("{host} revoked: the cluster refuses its certificate, records and messages from now on");
    Ok(ExitCode::SUCCESS)
}

/// `cluster forget HOST`: one line per network whose addresses were taken over.
pub(crate) fn forget(c: &Client, host: &str) -> anyhow::Result<ExitCode> {
    let r: switch_api::ForgetResponse = c.json::<(), _>(
        Method::POST,
        &switch_client::client::path(&["cluster", "forget", host]),
        None,
    )?;
    if r.networks.is_empty() {
        println!("{host} held no overlay addresses known here");
    }
    for (network, n) in &r.networks {
        println!("network {network}: took over {n} addresses of {host}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn peers(c: &Client, format: Format) -> anyhow::Result<ExitCode> {
    let list: Vec<switch_api::PeerResource> = c.get("/cluster/peers")?;
    if format == Format::Json {
        println!("{}", pretty(&list));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let heard = p
                .last_heard_seconds
                .map_or_else(|| "-".to_string(), |s| format!("{s}s ago"));
            vec![
                p.name.clone(),
                p.address.clone(),
                p.state.clone(),
                p.incarnation.to_string(),
                heard,
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["NAME", "ADDRESS", "STATE", "INCARNATION", "LAST HEARD"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}
