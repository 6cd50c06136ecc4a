//! switchd: one per host. Owns the containers' ports, runs the userspace L2 switch, and
//! serves the API on a Unix socket.

mod api;
mod cluster;
mod daemon;
mod dataplane;
mod failpoint;
mod kernel;
mod notify;
mod ports;
mod services;
mod settings;

use api::{docker_api, http, plugin};
use kernel::{firewall, limits};
use services::dns;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

/// The per-host daemon of the container network fabric. Every flag may also be set by its
/// SWITCHD_* variable (SWITCHD_STATE_DIR for --state-dir) or in the --config file; a flag
/// beats its variable, which beats the file.
#[derive(clap::Parser, Debug)]
#[command(name = "switchd", version)]
struct Args {
    /// A TOML file of settings: the long flags without their dashes (state-dir =
    /// "/var/lib/switchd"; a repeatable flag takes a list).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print switchd's manual page (roff), for packaging.
    #[arg(long, hide = true)]
    man: bool,
    /// Where the crash-safe state database lives.
    #[arg(long, default_value = "/var/lib/switchd")]
    state_dir: PathBuf,
    /// The API socket (HTTP/1.1, JSON).
    #[arg(long, default_value = "/run/switchd/switchd.sock")]
    socket: PathBuf,
    /// A group allowed to use the socket (name or GID); without it the socket is root-only.
    #[arg(long)]
    socket_group: Option<String>,
    /// Where sandbox namespaces are published (`ip netns exec NAME` looks in /run/netns).
    #[arg(long, default_value = "/run/netns")]
    netns_dir: PathBuf,
    /// Upstream resolver for names the embedded DNS does not know (IP or IP:PORT, repeatable);
    /// default: the nameservers of /etc/resolv.conf (systemd-resolved's own when that names
    /// only its stub, 127.0.0.53).
    #[arg(long = "dns-upstream", value_name = "IP[:PORT]", value_parser = parse_upstream)]
    dns_upstream: Vec<std::net::SocketAddr>,
    /// UDP port for VXLAN (RFC 7348): where peers send, and the default port of a static VTEP.
    #[arg(long, default_value_t = overlay::VXLAN_PORT)]
    vxlan_port: u16,
    /// UDP port of sealed tunnels (encrypted overlay networks; ESP in UDP, RFC 3948), the
    /// same on every host of the cluster.
    #[arg(long, default_value_t = 4500)]
    esp_port: u16,
    /// How long the keys of a sealed tunnel between two hosts live before the hosts derive
    /// new ones (e.g. 10m, 1h); they are renewed at once when a host is revoked.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_rekey)]
    rekey_interval: std::time::Duration,
    /// Join a cluster: a directory made by `switchctl cluster cert` (ca.crt, host.crt, host.key,
    /// gossip.key).
    #[arg(long, requires = "advertise")]
    cluster_dir: Option<PathBuf>,
    /// The address other hosts reach this one at (with --cluster-dir), IPv4 or IPv6: the
    /// underlay of the whole cluster is of its family.
    #[arg(long, value_parser = parse_advertise)]
    advertise: Option<std::net::IpAddr>,
    /// Hosts to join, HOST[:PORT] (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// UDP port of the membership protocol.
    #[arg(long, default_value_t = 7946)]
    gossip_port: u16,
    /// After traffic, the dataplane keeps polling this many microseconds before it sleeps
    /// (0, the default: it sleeps at once). Polling saves wake-ups within a stream but holds
    /// a CPU the workloads may want: worth trying with cores to spare, a loss where the
    /// workloads fill the machine (two vCPUs, 50 µs: 64-byte UDP -10%, four TCP streams -10%).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    poll_us: u64,
    /// Write each burst of frames to the ports in one io_uring submission (on), or each frame
    /// with its own write (off). Where the kernel refuses io_uring, frames go one at a time.
    #[arg(long, value_enum, default_value_t = Toggle::On)]
    batch_writes: Toggle,
    /// The nftables ruleset (isolation between networks, outbound NAT, published ports): on,
    /// and switchd does not start without it; off runs without it, with none of those.
    #[arg(long, value_enum, default_value_t = firewall::Mode::On)]
    firewall: firewall::Mode,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9323); off by default.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Serve the Docker Engine's network and IPAM plugin under this name, on DIR/NAME.sock
    /// where Docker finds it: `docker network create -d NAME --ipam-driver NAME`.
    #[arg(long, value_name = "NAME", value_parser = parse_plugin_name)]
    docker_plugin: Option<String>,
    /// The Docker Engine's API socket, asked for the names and aliases of the containers that
    /// join (the plugin protocol does not give them).
    #[arg(long, value_name = "PATH", default_value = "/var/run/docker.sock")]
    docker_host: PathBuf,
    /// Where the Docker plugin's socket goes (Docker looks in /run/docker/plugins).
    #[arg(long, value_name = "DIR", default_value = plugin::PLUGIN_DIR)]
    docker_plugin_dir: PathBuf,
    /// Where subnets of networks created without one come from, as Docker's flag:
    /// base=PREFIX,size=LEN, IPv4 or IPv6 (repeatable, tried in order; default: Docker's
    /// pools, and /64s of the host's unique local IPv6 prefix).
    #[arg(long = "default-address-pool", value_name = "base=PREFIX,size=LEN", value_parser = parse_pool)]
    default_address_pool: Vec<Pool>,
    /// The default bridge's address and prefix length (e.g. 10.200.0.1/24; default
    /// 172.17.0.1/16). It may change only while no sandbox is on the default bridge.
    #[arg(long, value_name = "IP/LEN")]
    bip: Option<String>,
    /// Log filter (trace, debug, info, warn, error, or tracing directives); RUST_LOG wins.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// How log lines are written to stderr: text (coloured on a terminal only) or json (one
    /// object a line, for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// One `--default-address-pool`, of either family.
#[derive(Debug, Clone, Copy)]
enum Pool {
    V4(control_plane::ipam::AddressPool<std::net::Ipv4Addr>),
    V6(control_plane::ipam::AddressPool<std::net::Ipv6Addr>),
}

/// `base=PREFIX,size=LEN`: IPv6 when the base is.
fn parse_pool(s: &str) -> Result<Pool, String> {
    let v6 = s.split(',').any(|p| p.starts_with("base=") && p.contains(':'));
    if v6 {
        s.parse().map(Pool::V6)
    } else {
        s.parse().map(Pool::V4)
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `--advertise`: a unicast address other hosts reach this one at, IPv4 or IPv6 (which then
/// carries gossip, key exchanges, VXLAN and ESP).
fn parse_advertise(s: &str) -> Result<std::net::IpAddr, String> {
    use std::net::IpAddr;
    let ip = s.parse::<IpAddr>().map_err(|_| {
        format!(
            "{s:?} is not an IP address: give an address of this host other hosts reach, like 10.0.0.1 or 2001:db8::1"
        )
    })?;
    let why = match ip {
        _ if ip.is_unspecified() => Some("unspecified"),
        _ if ip.is_multicast() => Some("multicast"),
        IpAddr::V4(a) if a.is_broadcast() => Some("broadcast"),
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => {
            Some("a v4-mapped IPv6 address (give the IPv4 address itself)")
        }
        IpAddr::V6(a) if a.is_unicast_link_local() => Some("link-local, which needs an interface to mean anything"),
        _ => None,
    };
    match why {
        Some(why) => Err(format!(
            "{s} is {why}: give a unicast address of this host other hosts reach, IPv4 or IPv6 (global or unique local)"
        )),
        None => Ok(ip),
    }
}

/// Each `--join` host resolved to an address of `advertise`'s family: a cluster's underlay is
/// all IPv4 or all IPv6.
fn resolve_joins(
    joins: &[String],
    port: u16,
    advertise: std::net::IpAddr,
) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    let family = |ip: std::net::IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    joins
        .iter()
        .map(|j| {
            let all = resolve(j, port)?;
            all.iter()
                .copied()
                .find(|a| a.ip().to_canonical().is_ipv4() == advertise.is_ipv4())
                .map(|a| std::net::SocketAddr::new(a.ip().to_canonical(), a.port()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--join {j} is {} ({}), and --advertise {advertise} is {}: a cluster's underlay is all IPv4 or all IPv6; join an {} address",
                        family(all[0].ip().to_canonical()),
                        all[0],
                        family(advertise),
                        family(advertise)
                    )
                })
        })
        .collect()
}

fn parse_rekey(s: &str) -> anyhow::Result<std::time::Duration> {
    let d = humantime::parse_duration(s)
        .map_err(|e| anyhow::anyhow!("invalid duration {s:?} ({e}): expected e.g. 30s, 10m or 12h"))?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(86_400) {
        anyhow::bail!("invalid rekey interval {s:?}: accepted are 1s to 24h");
    }
    Ok(d)
}

fn parse_plugin_name(s: &str) -> Result<String, plugin::InvalidPluginName> {
    plugin::check_name(s).map(|()| s.to_string())
}

fn parse_upstream(s: &str) -> anyhow::Result<std::net::SocketAddr> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    s.parse()
        .map_err(|_| anyhow::anyhow!("invalid upstream {s:?}: expected an IP address, optionally with :PORT"))
}

/// `HOST[:PORT]` to its socket addresses (at least one), `port` when none is given.
fn resolve(target: &str, port: u16) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    use std::net::ToSocketAddrs;
    if let Ok(ip) = target.parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, port)]);
    }
    let with_port = if target.contains(':') {
        target.to_string()
    } else {
        format!("{target}:{port}")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .map(Iterator::collect::<Vec<_>>)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| anyhow::anyhow!("cannot resolve --join {target:?}: expected HOST[:PORT]"))
}

fn group_id(g: &str) -> anyhow::Result<u32> {
    if let Ok(n) = g.parse() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(g)? {
        Some(gr) => Ok(gr.gid.as_raw()),
        None => anyhow::bail!("unknown group {g:?}: give a group name or numeric GID"),
    }
}

/// A feature flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Toggle {
    On,
    Off,
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = match settings::matches(&settings::with_env(Args::command()), &argv) {
        Ok(m) => Args::from_arg_matches(&m).unwrap_or_else(|e| e.exit()),
        Err(settings::SettingsError::Clap(e)) => e.exit(),
        Err(e) => anyhow::bail!(e),
    };
    if args.man {
        clap_mangen::Man::new(Args::command())
            .section("8")
            .render(&mut std::io::stdout())?;
        return Ok(());
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&args.log_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        // Colour codes only where a person reads them: a journal or a file gets plain text.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("switchd must run as root: it creates namespaces and TAP devices");
    }
    let nofile = limits::raise_nofile();
    let limits = Arc::new(limits::Limits::for_descriptors(nofile));
    tracing::info!(nofile, "descriptor limit");
    let group = args.socket_group.as_deref().map(group_id).transpose()?;
    // The socket first: a second switchd must stop here, before it touches anything.
    let listener = http::bind(&args.socket, group)?;
    let mut bound = Unserved(vec![args.socket.clone()]);
    let plugin_socket = args
        .docker_plugin
        .as_ref()
        .map(|name| {
            let path = plugin::socket_path(&args.docker_plugin_dir, name);
            http::bind(&path, None)
                .map(|l| (l, path.clone(), name.clone()))
                .with_context(|| format!("cannot serve the Docker plugin on {}", path.display()))
        })
        .transpose()?;
    bound.0.extend(plugin_socket.as_ref().map(|(_, p, _)| p.clone()));
    let metrics = args
        .metrics
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .with_context(|| format!("cannot serve metrics on {addr}"))
        })
        .transpose()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let upstreams = if args.dns_upstream.is_empty() {
        dns::host_upstreams(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(), || {
            std::fs::read_to_string(dns::RESOLVED_UPSTREAMS).ok()
        })
    } else {
        args.dns_upstream.clone()
    };
    tracing::info!(?upstreams, "DNS upstreams");
    let (changes_tx, mut changes_rx) = tokio::sync::mpsc::unbounded_channel();
    let (cluster, host_index) = match &args.cluster_dir {
        None => (None, None),
        Some(dir) => {
            let (c, index) = start_cluster(&args, dir, rt.handle(), changes_tx.clone())?;
            (Some(c), Some(index))
        }
    };
    let mut pools = daemon::AddressPools::default();
    for p in &args.default_address_pool {
        match *p {
            Pool::V4(p) => pools.0.push(p),
            Pool::V6(p) => pools.1.push(p),
        }
    }
    let daemon = daemon::Daemon::start(daemon::Config {
        state_dir: args.state_dir.clone(),
        netns_dir: args.netns_dir.clone(),
        etc_dir: PathBuf::from("/etc/netns"),
        upstreams,
        rt: rt.handle().clone(),
        vxlan_port: args.vxlan_port,
        esp_port: args.esp_port,
        cluster,
        host_index,
        poll: std::time::Duration::from_micros(args.poll_us),
        batch_writes: args.batch_writes == Toggle::On,
        limits,
        firewall: args.firewall,
        pools,
        bip: args.bip.clone(),
    })
    .with_context(|| format!("cannot start with state in {}", args.state_dir.display()))?;
    bound.0.clear();
    let daemon = Arc::new(daemon);
    drop(changes_tx);
    let applier = daemon.clone();
    rt.spawn(async move {
        while let Some(outputs) = changes_rx.recv().await {
            let d = applier.clone();
            let _ = tokio::task::spawn_blocking(move || d.apply_outputs(outputs)).await;
        }
    });
    if let (Some(l), Some(addr)) = (metrics, args.metrics) {
        let d = daemon.clone();
        rt.spawn(async move {
            tracing::info!(%addr, "metrics served at /metrics");
            if let Err(e) = http::serve_metrics(l, d).await {
                tracing::error!(%addr, "metrics server stopped: {e}");
            }
        });
    }
    let plugin_path = plugin_socket.as_ref().map(|(_, p, _)| p.clone());
    if let Some(socket) = plugin_socket {
        serve_plugin(rt.handle(), socket, daemon.clone(), &args.docker_host);
    }
    let served = rt.block_on(async {
        tracing::info!(socket = %args.socket.display(), "switchd serving");
        // The socket is bound and the state restored: clients are answered from here on.
        notify::ready();
        tokio::select! {
            r = http::serve(listener, daemon.clone()) => r,
            _ = shutdown() => {
                notify::stopping();
                tracing::info!("shutting down; ports and namespaces stay for the next start");
                let _ = std::fs::remove_file(&args.socket);
                if let Some(p) = &plugin_path {
                    let _ = std::fs::remove_file(p);
                }
                Ok(())
            }
        }
    });
    daemon.shutdown();
    served
}

/// The sockets bound at start, removed when the start fails: nothing is served, so no socket
/// is left for clients to find.
struct Unserved(Vec<PathBuf>);

impl Drop for Unserved {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Joins the cluster whose credentials are in `dir`: the driver, and this host's index.
fn start_cluster(
    args: &Args,
    dir: &std::path::Path,
    rt: &tokio::runtime::Handle,
    changes: tokio::sync::mpsc::UnboundedSender<Vec<control_plane::cluster::node::Output>>,
) -> anyhow::Result<(cluster::Cluster, u32)> {
    let creds = cluster::load(dir)?;
    let index = creds.index;
    let advertise = args.advertise.expect("clap requires --advertise with --cluster-dir");
    let join = resolve_joins(&args.join, args.gossip_port, advertise)?;
    let cfg = cluster::ClusterConfig {
        advertise,
        join,
        port: args.gossip_port,
        rekey: args.rekey_interval,
    };
    Ok((cluster::start(rt, cfg, creds, args.vxlan_port, changes)?, index))
}

/// Serves the Docker plugin protocol on its bound socket.
fn serve_plugin(
    rt: &tokio::runtime::Handle,
    (l, path, name): (std::os::unix::net::UnixListener, PathBuf, String),
    d: Arc<daemon::Daemon>,
    docker_host: &std::path::Path,
) {
    let engine = docker_api::Engine::new(docker_host.to_path_buf());
    rt.spawn(async move {
        tracing::info!(socket = %path.display(), plugin = %name, "Docker plugin served");
        if let Err(e) = plugin::serve(l, d, name, engine).await {
            tracing::error!(socket = %path.display(), "Docker plugin stopped: {e}");
        }
    });
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_is_a_unicast_one_of_either_family() {
        for ok in ["10.0.0.1", "2001:db8::1", "fd00:1::5"] {
            assert_eq!(parse_advertise(ok), Ok(ok.parse().unwrap()));
        }
        for (bad, why) in [
            ("0.0.0.0", "is unspecified"),
            ("::", "is unspecified"),
            ("ff02::1", "is multicast"),
            ("255.255.255.255", "is broadcast"),
            ("::ffff:10.0.0.1", "v4-mapped"),
            ("fe80::1", "link-local"),
            ("host.example", "is not an IP address"),
        ] {
            let e = parse_advertise(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_packaged_settings_file_holds_switchd_s_settings() {
        // Every commented setting, uncommented, is one switchd takes.
        let text = include_str!("../packaging/switchd.toml");
        let settings: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
            })
            .map(|l| format!("{}\n", l.split(" #").next().unwrap_or(l)))
            .collect();
        assert!(settings.lines().count() >= 12, "{settings}");
        let path = std::env::temp_dir().join(format!("switchd-packaged-{}.toml", std::process::id()));
        std::fs::write(&path, &settings).unwrap();
        let argv = vec!["switchd".into(), format!("--config={}", path.display()).into()];
        let m = settings::matches(&settings::with_env(Args::command()), &argv);
        let _ = std::fs::remove_file(&path);
        let args = Args::from_arg_matches(&m.unwrap()).unwrap();
        assert_eq!(args.join, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(args.log_format, LogFormat::Text);
        assert!(matches!(args.default_address_pool[..], [Pool::V4(_), Pool::V6(_)]));
        assert_eq!(args.bip.as_deref(), Some("172.17.0.1/16"));
    }

    #[test]
    fn hosts_to_join_are_of_the_advertised_family() {
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let joins = ["2001:db8::2".to_string(), "[2001:db8::3]:8000".to_string()];
        assert_eq!(
            resolve_joins(&joins, 7946, v6).unwrap(),
            [
                "[2001:db8::2]:7946".parse().unwrap(),
                "[2001:db8::3]:8000".parse().unwrap()
            ]
        );
        let e = resolve_joins(&["10.0.0.2".to_string()], 7946, v6)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--join 10.0.0.2 is IPv4 (10.0.0.2:7946), and --advertise 2001:db8::1 is IPv6: a cluster's underlay is all IPv4 or all IPv6; join an IPv6 address"
        );
        let e = resolve_joins(&["2001:db8::2".to_string()], 7946, "10.0.0.1".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is IPv6") && e.ends_with("join an IPv4 address"), "{e}");
        // A host name with addresses of both families takes the one of the underlay's.
        let local = resolve_joins(&["localhost".to_string()], 7946, "10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(local, ["127.0.0.1:7946".parse().unwrap()]);
    }
}
