//! `switchctl sandbox` and `switchctl port`: sandboxes, their endpoints and published ports.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hyper::Method;
use switch_api::{CreateResponse, SandboxCreate, SandboxResolver, SandboxResource};

use switch_client::client::{path, Client};

use crate::{each, kv, pretty, table, Format, ListArgs};

#[derive(Args, Debug)]
pub(crate) struct SandboxCreateArgs {
    /// Network: a name or ID, host, none, or container:OTHER.
    #[arg(long, default_value = "bridge")]
    network: String,
    /// Static address.
    #[arg(long)]
    ip: Option<String>,
    /// Static IPv6 address.
    #[arg(long)]
    ip6: Option<String>,
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
    /// A link to another sandbox, OTHER[:ALIAS]: on the default bridge a hosts line, on a
    /// user-defined network a name only this sandbox resolves there (repeatable).
    #[arg(long = "link", value_name = "OTHER[:ALIAS]")]
    links: Vec<String>,
    /// Publish a port: [[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/tcp|udp|sctp] (ranges a-b:c-d;
    /// without a host port, one is chosen from 49153-65535; a host range with one container
    /// port takes one host port of it).
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/PROTO]"
    )]
    publish: Vec<String>,
    /// Expose a port of the sandbox: PORT[-PORT][/tcp|udp|sctp] (published with -P).
    #[arg(long = "expose", value_name = "PORT[/PROTO]")]
    expose: Vec<String>,
    /// Publish every exposed port on a host port chosen from 49153-65535.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Labels, K=V.
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// The interface's name in the sandbox (default eth0).
    #[arg(long)]
    interface: Option<String>,
    /// A resolver of the sandbox's own (repeatable): the embedded DNS forwards to it what it
    /// does not know; on the default bridge it is resolv.conf's.
    #[arg(long = "dns", value_name = "IP")]
    dns: Vec<String>,
    /// A search domain of resolv.conf (repeatable; "." for none).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    dns_search: Vec<String>,
    /// A resolv.conf option, like ndots:2 or timeout:1 (repeatable).
    #[arg(long = "dns-option", value_name = "OPTION")]
    dns_options: Vec<String>,
    /// A line of the hosts file, NAME:IP (repeatable); IP host-gateway is the host's address
    /// on the sandbox's network.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_hosts: Vec<String>,
    /// Name.
    name: String,
}

#[derive(Subcommand, Debug)]
pub(crate) enum SandboxCmd {
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
    Ls(ListArgs),
    /// Show sandboxes as JSON.
    Inspect {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
        /// A Go template applied to each sandbox's JSON ('{{range .Networks}}{{.IPAddress}}{{end}}').
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
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

pub(crate) fn sandbox(c: &Client, cmd: SandboxCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SandboxCmd::Create(args) => {
            let SandboxCreateArgs {
                network,
                ip,
                ip6,
                mac,
                aliases,
                netns,
                port_kind,
                links,
                publish,
                expose,
                publish_all,
                labels,
                interface,
                dns,
                dns_search,
                dns_options,
                add_hosts,
                name,
            } = *args;
            let req = SandboxCreate {
                name,
                network,
                ipv4_address: ip,
                ipv6_address: ip6,
                mac_address: mac,
                aliases,
                netns: netns.map(|p| p.display().to_string()),
                port_kind,
                links,
                publish,
                expose,
                publish_all_ports: publish_all,
                labels: kv(&labels, "label")?,
                interface,
                resolver: SandboxResolver {
                    dns,
                    dns_search,
                    dns_options,
                    extra_hosts: add_hosts,
                },
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
        SandboxCmd::Ls(ListArgs {
            quiet,
            no_trunc,
            format,
        }) => {
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
        SandboxCmd::Inspect { names, format } => {
            let mut found = Vec::new();
            let code = each(&names, |n| {
                let r: SandboxResource = c.get(&path(&["sandboxes", n]))?;
                found.push(r);
                Ok(())
            });
            crate::template::print_inspected(format.as_deref(), &found)?;
            return Ok(code);
        }
        SandboxCmd::Exec { .. } => unreachable!("handled before connecting"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `docker port` output: `80/tcp -> 0.0.0.0:8080` per binding, or `0.0.0.0:8080` per binding of
/// the port asked for.
pub(crate) fn port_cmd(c: &Client, sandbox: &str, port: Option<&str>, format: Format) -> anyhow::Result<ExitCode> {
    let sb: SandboxResource = c.get(&path(&["sandboxes", sandbox]))?;
    let Some(filter) = port else {
        if format == Format::Json {
            println!("{}", pretty(&sb.ports));
            return Ok(ExitCode::SUCCESS);
        }
        for p in &sb.ports {
            println!("{}/{} -> {}", p.container_port, p.protocol, host_socket(p));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (num, proto) = filter.split_once('/').unwrap_or((filter, "tcp"));
    let num: u16 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid port {filter:?}: expected PORT[/tcp|udp|sctp], e.g. 80/tcp"))?;
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
        println!("{}", host_socket(p));
    }
    Ok(ExitCode::SUCCESS)
}

/// `IP:PORT` of a published port, an IPv6 address in brackets (`[::]:8080`), as `docker port`.
fn host_socket(p: &switch_api::PortMapping) -> String {
    match p.host_ip.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, p.host_port).to_string(),
        Err(_) => format!("{}:{}", p.host_ip, p.host_port),
    }
}
