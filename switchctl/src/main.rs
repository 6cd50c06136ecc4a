//! switchctl: the command line of the fabric, in Docker's words and output formats.

mod exec;
mod table;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use control_plane::api::{
    CreateResponse, EndpointConfig, EndpointIpam, FdbResource, IpamCreate, IpamPool, NetworkConnect, NetworkCreate,
    NetworkDisconnect, NetworkResource, PortResource, PruneResponse, SandboxCreate, SandboxResource, StatsResource,
    TraceRequest, TraceResource,
};
use hyper::Method;

use switchctl::client::{path, Client, ClientError};

/// Command line for switchd, the userspace container network fabric.
#[derive(Parser, Debug)]
#[command(name = "switchctl", version)]
struct Cli {
    /// switchd's API socket.
    #[arg(
        short = 'H',
        long = "socket",
        global = true,
        default_value = "/run/switchd/switchd.sock"
    )]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage sandboxes (network namespaces of containers).
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// The cluster's certificates (offline: no daemon needed).
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// List switch ports with their counters and drops by reason.
    Ports(FormatArg),
    /// Show switch-wide counters: traffic and drops by reason, MAC table, VXLAN, cluster, DNS.
    Stats(FormatArg),
    /// List a sandbox's published ports, or the bindings of one of its ports.
    Port {
        /// Sandbox.
        sandbox: String,
        /// A sandbox port, PORT[/tcp|udp].
        port: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List the MAC table.
    Fdb {
        /// Only this network.
        network: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Mirror a port's frames (both ways): one line per frame, or a pcapng file with -w.
    Capture {
        /// Port: a number or interface from `switchctl ports`, or a sandbox with one interface.
        port: String,
        /// Write the frames to this file (pcapng: tcpdump -r and Wireshark open it).
        #[arg(short = 'w', value_name = "FILE")]
        write: Option<PathBuf>,
        /// Stop after this many frames.
        #[arg(short = 'c', value_name = "COUNT")]
        count: Option<u64>,
    },
    /// Show each pipeline stage's decision for a synthetic frame, without sending it.
    Trace {
        /// Network.
        network: String,
        /// Ingress port: a number or interface from `switchctl ports`, or a sandbox's name.
        #[arg(long = "in", value_name = "PORT")]
        in_port: String,
        /// The frame, KEY=VALUE,...: dst, src (default: the port's own address), type
        /// (ipv4|ipv6|arp|0xNNNN), vlan, len, nw_src and nw_dst (the IPv4 header's addresses;
        /// nw_src defaults to the port's own), arp=IP (an ARP request), sender, or hex=BYTES.
        #[arg(long, value_name = "SPEC", default_value = "")]
        frame: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Args, Debug)]
struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// How a listing is printed: Docker's table, or JSON.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum NetworkCmd {
    /// Create a network.
    Create {
        /// Driver (bridge).
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form.
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address.
        #[arg(long)]
        gateway: Option<String>,
        /// Range of the subnet for dynamic addresses.
        #[arg(long = "ip-range")]
        ip_range: Option<String>,
        /// No route beyond the host.
        #[arg(long)]
        internal: bool,
        /// Labels, K=V.
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        /// Driver options, K=V. bridge: com.docker.network.bridge.name, mtu, mac_aging, mac_limit,
        /// port_security=true|false (sandboxes send only from their own addresses; default
        /// true), bum_pps=N (broadcast, multicast and unknown-unicast frames per second per
        /// sandbox, default 1000, 0 for no limit); overlay: also vni, max_hosts; macvlan:
        /// parent=IFACE[.VLAN], macvlan_mode, mtu, host_access=true|false.
        #[arg(short = 'o', long = "opt", value_name = "K=V")]
        opts: Vec<String>,
        /// Name.
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Full IDs.
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Show networks as JSON.
    Inspect {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove all unused user-defined networks.
    Prune {
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a sandbox to a network.
    Connect {
        /// Static address.
        #[arg(long)]
        ip: Option<String>,
        /// Network-scoped alias.
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// How the interface is attached: tap, or veth (host end read through AF_PACKET).
        #[arg(long = "port-kind", value_parser = ["tap", "veth"])]
        port_kind: Option<String>,
        /// The interface's name in the sandbox (default: the first free ethN).
        #[arg(long)]
        interface: Option<String>,
        /// Network.
        network: String,
        /// Sandbox.
        sandbox: String,
    },
    /// Static VXLAN peers of an overlay network (hardware switches, Linux VXLAN devices).
    #[command(subcommand)]
    Vtep(VtepCmd),
    /// Disconnect a sandbox from a network.
    Disconnect {
        /// Accepted for Docker compatibility.
        #[arg(short, long)]
        force: bool,
        /// Network.
        network: String,
        /// Sandbox.
        sandbox: String,
    },
}

#[derive(Subcommand, Debug)]
enum VtepCmd {
    /// Add a peer: its frames are accepted and its MACs learned; broadcast goes to it too.
    Add {
        /// Overlay network.
        network: String,
        /// IP or IP:PORT (default port: switchd's VXLAN port).
        address: String,
    },
    /// Remove a peer.
    #[command(alias = "remove")]
    Rm {
        /// Overlay network.
        network: String,
        /// IP or IP:PORT.
        address: String,
    },
    /// List the peers with their counters.
    Ls {
        /// Overlay network.
        network: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCmd {
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

#[derive(Args, Debug)]
struct SandboxCreateArgs {
    /// Network: a name or ID, host, none, or container:OTHER.
    #[arg(long, default_value = "bridge")]
    network: String,
    /// Static address.
    #[arg(long)]
    ip: Option<String>,
    /// MAC address.
    #[arg(long)]
    mac: Option<String>,
    /// Network-scoped alias.
    #[arg(long = "alias")]
    aliases: Vec<String>,
    /// Adopt this existing namespace instead of creating one.
    #[arg(long)]
    netns: Option<PathBuf>,
    /// How the interface is attached: tap, or veth (host end read through AF_PACKET).
    #[arg(long = "port-kind", value_parser = ["tap", "veth"])]
    port_kind: Option<String>,
    /// Legacy link to another sandbox on the default bridge: OTHER[:ALIAS].
    #[arg(long = "link", value_name = "OTHER[:ALIAS]")]
    links: Vec<String>,
    /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp] (ranges a-b:c-d).
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]"
    )]
    publish: Vec<String>,
    /// Labels, K=V.
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// The interface's name in the sandbox (default eth0).
    #[arg(long)]
    interface: Option<String>,
    /// Name.
    name: String,
}

#[derive(Subcommand, Debug)]
enum SandboxCmd {
    /// Create a sandbox: a network namespace with its interfaces.
    Create(Box<SandboxCreateArgs>),
    /// Remove sandboxes.
    #[command(alias = "remove")]
    Rm {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List sandboxes.
    #[command(alias = "list")]
    Ls {
        /// Only IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Full IDs.
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Show sandboxes as JSON.
    Inspect {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Run a command in a sandbox's network namespace.
    Exec {
        /// Sandbox.
        name: String,
        /// Command and arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn kv(list: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("invalid {what} {s:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser).expect("API types serialize");
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Cmd::Sandbox(SandboxCmd::Exec { name, cmd }) = &cli.cmd {
        let sb: SandboxResource = {
            let c = Client::new(&cli.socket)?;
            c.get(&path(&["sandboxes", name]))?
        };
        exec::exec_in(&sb.name, std::path::Path::new(&sb.netns), cmd)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Cmd::Cluster(cmd) = cli.cmd {
        if let ClusterCmd::Peers { format } = cmd {
            return peers(&Client::new(&cli.socket)?, format.format);
        }
        return cluster(cmd);
    }
    let c = Client::new(&cli.socket)?;
    match cli.cmd {
        Cmd::Network(n) => network(&c, n),
        Cmd::Sandbox(s) => sandbox(&c, s),
        Cmd::Ports(f) => ports(&c, f.format),
        Cmd::Stats(f) => stats(&c, f.format),
        Cmd::Fdb { network, format } => fdb(&c, network.as_deref(), format.format),
        Cmd::Capture { port, write, count } => capture(&c, &port, write.as_deref(), count),
        Cmd::Trace {
            network,
            in_port,
            frame,
            format,
        } => trace(&c, network, in_port, frame, format.format),
        Cmd::Port { sandbox, port, format } => port_cmd(&c, &sandbox, port.as_deref(), format.format),
        Cmd::Cluster(_) => unreachable!("handled without a daemon"),
    }
}

/// Runs `f` for each name, printing errors as Docker does and failing if any failed.
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<(), ClientError>) -> ExitCode {
    let mut ok = true;
    for n in names {
        if let Err(e) = f(n) {
            eprintln!("{e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn network(c: &Client, cmd: NetworkCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            internal,
            labels,
            opts,
            name,
        } => {
            let ipam = (subnet.is_some() || gateway.is_some() || ip_range.is_some()).then(|| IpamCreate {
                config: vec![IpamPool {
                    subnet,
                    ip_range,
                    gateway,
                }],
            });
            let req = NetworkCreate {
                name,
                driver,
                internal,
                labels: kv(&labels, "label")?,
                options: kv(&opts, "option")?,
                ipam,
            };
            let r: CreateResponse = c.json(Method::POST, "/networks/create", Some(&req))?;
            println!("{}", r.id);
        }
        NetworkCmd::Ls {
            quiet,
            no_trunc,
            format,
        } => {
            let mut nets: Vec<NetworkResource> = c.get("/networks")?;
            // Docker lists networks by name.
            nets.sort_by(|a, b| a.name.cmp(&b.name));
            let id = |n: &NetworkResource| {
                if no_trunc {
                    n.id.clone()
                } else {
                    n.id[..12.min(n.id.len())].to_string()
                }
            };
            if quiet {
                nets.iter().for_each(|n| println!("{}", id(n)));
            } else if format.format == Format::Json {
                for n in &nets {
                    let line = serde_json::json!({
                        "CreatedAt": n.created, "Driver": n.driver, "ID": id(n), "IPv4": n.enable_ipv4,
                        "IPv6": n.enable_ipv6, "Internal": n.internal, "Labels": labels(&n.labels),
                        "Name": n.name, "Scope": n.scope,
                    });
                    println!("{line}");
                }
            } else {
                let rows: Vec<Vec<String>> = nets
                    .iter()
                    .map(|n| vec![id(n), n.name.clone(), n.driver.clone(), n.scope.clone()])
                    .collect();
                print!("{}", table::render(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows));
            }
        }
        NetworkCmd::Inspect { names } => {
            let mut found = Vec::new();
            let code = each(&names, |n| {
                let r: NetworkResource = c.get(&path(&["networks", n]))?;
                found.push(r);
                Ok(())
            });
            println!("{}", pretty(&found));
            return Ok(code);
        }
        NetworkCmd::Rm { names } => {
            return Ok(each(&names, |n| {
                c.call::<()>(Method::DELETE, &path(&["networks", n]), None)?;
                println!("{n}");
                Ok(())
            }))
        }
        NetworkCmd::Prune { force } => {
            if !force && !confirm("WARNING! This will remove all custom networks not used by at least one sandbox.")? {
                return Ok(ExitCode::SUCCESS);
            }
            let r: PruneResponse = c.json::<(), _>(Method::POST, "/networks/prune", None)?;
            if !r.networks_deleted.is_empty() {
                println!("Deleted Networks:");
                r.networks_deleted.iter().for_each(|n| println!("{n}"));
            }
        }
        NetworkCmd::Connect {
            ip,
            aliases,
            port_kind,
            interface,
            network,
            sandbox,
        } => {
            let req = NetworkConnect {
                container: sandbox,
                endpoint_config: Some(EndpointConfig {
                    ipam_config: Some(EndpointIpam { ipv4_address: ip }),
                    aliases,
                    mac_address: None,
                    port_kind,
                    interface,
                }),
            };
            c.call(Method::POST, &path(&["networks", &network, "connect"]), Some(&req))?;
        }
        NetworkCmd::Vtep(v) => return vtep(c, v),
        NetworkCmd::Disconnect {
            force,
            network,
            sandbox,
        } => {
            let req = NetworkDisconnect {
                container: sandbox,
                force,
            };
            c.call(Method::POST, &path(&["networks", &network, "disconnect"]), Some(&req))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn labels(l: &BTreeMap<String, String>) -> String {
    l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn confirm(warning: &str) -> anyhow::Result<bool> {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn sandbox(c: &Client, cmd: SandboxCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SandboxCmd::Create(args) => {
            let SandboxCreateArgs {
                network,
                ip,
                mac,
                aliases,
                netns,
                port_kind,
                links,
                publish,
                labels,
                interface,
                name,
            } = *args;
            let req = SandboxCreate {
                name,
                network,
                ipv4_address: ip,
                mac_address: mac,
                aliases,
                netns: netns.map(|p| p.display().to_string()),
                port_kind,
                links,
                publish,
                labels: kv(&labels, "label")?,
                interface,
            };
            let r: CreateResponse = c.json(Method::POST, "/sandboxes/create", Some(&req))?;
            println!("{}", r.id);
        }
        SandboxCmd::Rm { names } => {
            return Ok(each(&names, |n| {
                c.call::<()>(Method::DELETE, &path(&["sandboxes", n]), None)?;
                println!("{n}");
                Ok(())
            }))
        }
        SandboxCmd::Ls {
            quiet,
            no_trunc,
            format,
        } => {
            let list: Vec<SandboxResource> = c.get("/sandboxes")?;
            let id = |s: &SandboxResource| {
                if no_trunc {
                    s.id.clone()
                } else {
                    s.id[..12.min(s.id.len())].to_string()
                }
            };
            if quiet {
                list.iter().for_each(|s| println!("{}", id(s)));
            } else if format.format == Format::Json {
                for s in &list {
                    println!("{}", serde_json::to_string(s)?);
                }
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        let ips: Vec<String> = s
                            .networks
                            .iter()
                            .filter(|e| !e.ip_address.is_empty())
                            .map(|e| format!("{}/{} ({})", e.ip_address, e.ip_prefix_len, e.interface))
                            .collect();
                        vec![id(s), s.name.clone(), s.network_mode.clone(), ips.join(", ")]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(&["SANDBOX ID", "NAME", "NETWORK", "ADDRESSES"], &rows)
                );
            }
        }
        SandboxCmd::Inspect { names } => {
            let mut found = Vec::new();
            let code = each(&names, |n| {
                let r: SandboxResource = c.get(&path(&["sandboxes", n]))?;
                found.push(r);
                Ok(())
            });
            println!("{}", pretty(&found));
            return Ok(code);
        }
        SandboxCmd::Exec { .. } => unreachable!("handled before connecting"),
    }
    Ok(ExitCode::SUCCESS)
}

fn ports(c: &Client, format: Format) -> anyhow::Result<ExitCode> {
    let list: Vec<PortResource> = c.get("/ports")?;
    if format == Format::Json {
        println!("{}", pretty(&list));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                p.port.to_string(),
                p.interface.clone(),
                p.kind.clone(),
                p.network.clone(),
                p.rx_packets.to_string(),
                p.rx_bytes.to_string(),
                p.tx_packets.to_string(),
                p.tx_bytes.to_string(),
                drops_cell(&p.drops),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "PORT",
                "INTERFACE",
                "KIND",
                "NETWORK",
                "RX PKTS",
                "RX BYTES",
                "TX PKTS",
                "TX BYTES",
                "DROPS"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn fdb(c: &Client, network: Option<&str>, format: Format) -> anyhow::Result<ExitCode> {
    let mut list: Vec<FdbResource> = c.get("/fdb")?;
    if let Some(n) = network {
        let net: NetworkResource = c.get(&path(&["networks", n]))?;
        list.retain(|e| e.network == net.name);
    }
    list.sort_by(|a, b| (&a.network, &a.mac).cmp(&(&b.network, &b.mac)));
    if format == Format::Json {
        println!("{}", pretty(&list));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                e.network.clone(),
                e.mac.clone(),
                if e.remote_host.is_empty() {
                    format!("{} ({})", e.port, e.interface)
                } else {
                    format!("{} ({}, host {})", e.port, e.interface, e.remote_host)
                },
                format!("{}s", e.age_seconds),
                e.kind.clone(),
            ]
        })
        .collect();
    print!("{}", table::render(&["NETWORK", "MAC", "PORT", "AGE", "TYPE"], &rows));
    Ok(ExitCode::SUCCESS)
}

fn capture(c: &Client, port: &str, file: Option<&std::path::Path>, count: Option<u64>) -> anyhow::Result<ExitCode> {
    use control_plane::capture::{summary, Direction, Reader};
    if count == Some(0) {
        anyhow::bail!("invalid count 0: capture at least 1 frame");
    }
    let mut out = match file {
        Some(f) => Some(std::fs::File::create(f).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", f.display()))?),
        None => None,
    };
    let mut query = path(&["ports", port, "capture"]);
    if let Some(n) = count {
        query.push_str(&format!("?count={n}"));
    }
    let mut reader = Reader::default();
    let (mut frames, mut failed) = (0u64, None);
    let stdout = std::io::stdout();
    c.stream(&query, |chunk| {
        if let Some(f) = out.as_mut() {
            if let Err(e) = f.write_all(chunk) {
                failed = Some(anyhow::anyhow!("cannot write the capture file: {e}"));
                return false;
            }
        }
        reader.feed(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(fr)) => {
                    frames += 1;
                    if out.is_none() {
                        let secs = fr.ns / 1_000_000_000;
                        let dir = match fr.dir {
                            Some(Direction::Inbound) => "in ",
                            Some(Direction::Outbound) => "out",
                            None => "?  ",
                        };
                        let mut o = stdout.lock();
                        let _ = writeln!(
                            o,
                            "{:02}:{:02}:{:02}.{:06} {dir} {}",
                            secs / 3600 % 24,
                            secs / 60 % 60,
                            secs % 60,
                            fr.ns % 1_000_000_000 / 1000,
                            summary(&fr.frame)
                        );
                        let _ = o.flush();
                    }
                }
                Ok(None) => return true,
                Err(e) => {
                    failed = Some(anyhow::anyhow!("switchd sent a broken capture: {e}"));
                    return false;
                }
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(f) = file {
        eprintln!("{frames} frames written to {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn trace(c: &Client, network: String, in_port: String, frame: String, format: Format) -> anyhow::Result<ExitCode> {
    let req = TraceRequest {
        network,
        in_port,
        frame,
    };
    let t: TraceResource = c.json(Method::POST, "/trace", Some(&req))?;
    if format == Format::Json {
        println!("{}", pretty(&t));
        return Ok(ExitCode::SUCCESS);
    }
    let bytes = control_plane::framespec::build(&format!("hex={}", t.frame), None, None).unwrap_or_default();
    println!(
        "network {}, in port {} ({}): {}",
        t.network,
        t.in_port.port,
        t.in_port.interface,
        control_plane::capture::summary(&bytes)
    );
    let width = t.stages.iter().map(|s| s.stage.len()).max().unwrap_or(0);
    for s in &t.stages {
        println!("  {:width$}  {}", s.stage, s.decision);
    }
    println!("verdict: {}", t.verdict);
    Ok(ExitCode::SUCCESS)
}

/// `docker port` output: `80/tcp -> 0.0.0.0:8080` per binding, or `0.0.0.0:8080` per binding of
/// the port asked for.
fn port_cmd(c: &Client, sandbox: &str, port: Option<&str>, format: Format) -> anyhow::Result<ExitCode> {
    let sb: SandboxResource = c.get(&path(&["sandboxes", sandbox]))?;
    let Some(filter) = port else {
        if format == Format::Json {
            println!("{}", pretty(&sb.ports));
            return Ok(ExitCode::SUCCESS);
        }
        for p in &sb.ports {
            println!("{}/{} -> {}:{}", p.container_port, p.protocol, p.host_ip, p.host_port);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (num, proto) = filter.split_once('/').unwrap_or((filter, "tcp"));
    let num: u16 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid port {filter:?}: expected PORT[/tcp|udp], e.g. 80/tcp"))?;
    let hits: Vec<_> = sb
        .ports
        .iter()
        .filter(|p| p.container_port == num && p.protocol == proto)
        .collect();
    if hits.is_empty() {
        anyhow::bail!("Error: No public port '{num}/{proto}' published for {}", sb.name);
    }
    if format == Format::Json {
        println!("{}", pretty(&hits));
        return Ok(ExitCode::SUCCESS);
    }
    for p in hits {
        println!("{}:{}", p.host_ip, p.host_port);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `content` to a new file with `mode`; an existing file is never overwritten.
fn write_new(path: &std::path::Path, content: &str, mode: u32) -> anyhow::Result<()> {
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

fn read(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

fn cluster(cmd: ClusterCmd) -> anyhow::Result<ExitCode> {
    use control_plane::cluster::pki;
    let now = std::time::SystemTime::now();
    match cmd {
        ClusterCmd::Peers { .. } => unreachable!("handled with a daemon"),
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
            let key = control_plane::cluster::seal::GossipKey::derive(&ca.key);
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            write_new(&out.join("gossip.key"), &format!("{hex}\n"), 0o600)?;
            let tmp = ca_dir.join(".next-index.tmp");
            std::fs::write(&tmp, format!("{}\n", index + 1))?;
            std::fs::rename(&tmp, &counter)?;
            println!("{}", out.join("host.crt").display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn vtep(c: &Client, cmd: VtepCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        VtepCmd::Add { network, address } => {
            let req = control_plane::api::VtepAdd { address };
            c.call(Method::POST, &path(&["networks", &network, "vteps"]), Some(&req))?;
        }
        VtepCmd::Rm { network, address } => {
            c.call::<()>(Method::DELETE, &path(&["networks", &network, "vteps", &address]), None)?;
        }
        VtepCmd::Ls { network, format } => {
            let list: Vec<control_plane::api::VtepResource> = c.get(&path(&["networks", &network, "vteps"]))?;
            if format.format == Format::Json {
                println!("{}", pretty(&list));
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|v| {
                        vec![
                            v.address.clone(),
                            v.vni.to_string(),
                            v.rx_packets.to_string(),
                            v.tx_packets.to_string(),
                            drops_cell(&v.drops),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(&["VTEP", "VNI", "RX PKTS", "TX PKTS", "DROPS"], &rows)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn peers(c: &Client, format: Format) -> anyhow::Result<ExitCode> {
    let list: Vec<control_plane::api::PeerResource> = c.get("/cluster/peers")?;
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

/// Drops by reason as one table cell: `reason=n,...`, or `-` when there are none.
fn stats(c: &Client, format: Format) -> anyhow::Result<ExitCode> {
    let s: StatsResource = c.get("/stats")?;
    if format == Format::Json {
        println!("{}", pretty(&s));
        return Ok(ExitCode::SUCCESS);
    }
    let sum = |f: fn(&PortResource) -> u64| s.ports.iter().map(f).sum::<u64>();
    let mut drops: BTreeMap<String, u64> = BTreeMap::new();
    for p in &s.ports {
        for (r, n) in &p.drops {
            *drops.entry(r.clone()).or_default() += n;
        }
    }
    println!(
        "networks {}, sandboxes {}, switch ports {}",
        s.networks,
        s.sandboxes,
        s.ports.len()
    );
    // Each port, then the switch's totals.
    let mut rows: Vec<Vec<String>> = s
        .ports
        .iter()
        .map(|p| {
            vec![
                p.port.to_string(),
                p.interface.clone(),
                p.rx_packets.to_string(),
                p.rx_bytes.to_string(),
                p.tx_packets.to_string(),
                p.tx_bytes.to_string(),
                p.learn_refused.to_string(),
                drops_cell(&p.drops),
            ]
        })
        .collect();
    rows.push(vec![
        "total".into(),
        String::new(),
        sum(|p| p.rx_packets).to_string(),
        sum(|p| p.rx_bytes).to_string(),
        sum(|p| p.tx_packets).to_string(),
        sum(|p| p.tx_bytes).to_string(),
        sum(|p| p.learn_refused).to_string(),
        drops_cell(&drops),
    ]);
    let header = [
        "PORT",
        "INTERFACE",
        "RX PKTS",
        "RX BYTES",
        "TX PKTS",
        "TX BYTES",
        "LEARN REFUSED",
        "DROPS",
    ];
    print!("\n{}", table::render(&header, &rows));
    let rows: Vec<Vec<String>> = s
        .mac_table
        .iter()
        .map(|m| vec![m.network.clone(), m.r#static.to_string(), m.learned.to_string()])
        .collect();
    print!(
        "\n{}",
        table::render(&["NETWORK", "STATIC MACS", "LEARNED MACS"], &rows)
    );
    if let Some(v) = &s.vxlan {
        println!(
            "\nvxlan (udp {}): rx {} (malformed {}, unknown VNI {}, unknown VTEP {}), tx {} (errors {})",
            v.port, v.rx_packets, v.rx_malformed, v.rx_unknown_vni, v.rx_unknown_vtep, v.tx_packets, v.tx_errors
        );
    }
    let w = &s.port_writes;
    if w.batched {
        let avg = w.frames as f64 / w.bursts.max(1) as f64;
        println!(
            "port writes: batched (io_uring), {} frames in {} bursts ({avg:.1} a burst)",
            w.frames, w.bursts
        );
    } else {
        println!("port writes: one write per frame");
    }
    let p = &s.polling;
    if p.micros == 0 {
        println!("polling after traffic: off");
    } else {
        println!("polling after traffic: {} µs, after {} rounds", p.micros, p.rounds);
    }
    let d = &s.descriptors;
    println!(
        "descriptors: {} open of {}; out of descriptors {} times",
        d.open, d.limit, d.exhausted
    );
    if !d.caps.is_empty() {
        let rows: Vec<Vec<String>> = d
            .caps
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.used.to_string(),
                    c.max.to_string(),
                    c.refused.to_string(),
                ]
            })
            .collect();
        print!(
            "\n{}",
            table::render(&["HELD FOR OTHERS", "IN USE", "MAX", "REFUSED"], &rows)
        );
    }
    if let Some(cl) = &s.cluster {
        let peers: Vec<String> = cl.peers.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!(
            "cluster: members {}; gossip received {} (refused {}, unauthenticated {}), sent {}; exchanges ok {}, failed {}",
            peers.join(", "),
            cl.gossip_received,
            cl.gossip_refused,
            cl.gossip_unauthenticated,
            cl.gossip_sent,
            cl.sync_ok,
            cl.sync_failed
        );
    }
    if !s.dns.is_empty() {
        let rows: Vec<Vec<String>> = s
            .dns
            .iter()
            .map(|d| {
                vec![
                    d.network.clone(),
                    d.queries.to_string(),
                    d.answered.to_string(),
                    d.forwarded.to_string(),
                    d.failures.to_string(),
                    d.limited.to_string(),
                    d.refused.to_string(),
                ]
            })
            .collect();
        let header = [
            "DNS NETWORK",
            "QUERIES",
            "ANSWERED",
            "FORWARDED",
            "FAILED",
            "LIMITED",
            "REFUSED",
        ];
        print!("\n{}", table::render(&header, &rows));
    }
    Ok(ExitCode::SUCCESS)
}

fn drops_cell(drops: &BTreeMap<String, u64>) -> String {
    if drops.is_empty() {
        return "-".into();
    }
    drops
        .iter()
        .map(|(r, n)| format!("{r}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}
