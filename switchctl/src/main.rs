//! switchctl: the command line of the fabric, in Docker's words and output formats.

mod cluster;
mod exec;
mod network;
mod observe;
mod sandbox;
mod table;
mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use switch_api::SandboxResource;

use switch_client::client::{path, Client, ClientError};

use cluster::{cluster, peers, ClusterCmd};
use network::{network, NetworkCmd};
use observe::{capture, fdb, ports, stats, trace, version};
use sandbox::{port_cmd, sandbox, SandboxCmd};

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
    /// Show the client's and the server's versions and API versions.
    Version(FormatArg),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell), as `docker
    /// completion` does: `switchctl completion bash > /etc/bash_completion.d/switchctl`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print switchctl's manual page (roff), for packaging.
    #[command(hide = true)]
    Man,
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
        /// Write the frames to this file (pcapng: tcpdump -r and Wireshark open it), or to
        /// standard output with `-w -` (`switchctl capture web -w - | tcpdump -r -`).
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
        /// (ipv4|ipv6|arp|0xNNNN), vlan, len, nw_src and nw_dst (IPv4 or IPv6; nw_src defaults
        /// to the port's own), arp=IP (an ARP request), ns=IP6 (a neighbour solicitation),
        /// sender, or hex=BYTES.
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

/// The options of an `ls`, as Docker's.
#[derive(Args, Debug)]
struct ListArgs {
    /// Only IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Full IDs.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    #[command(flatten)]
    format: FormatArg,
}

/// How a listing is printed: Docker's table, or JSON.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The whole chain of causes, each with its own words (an errno, a path).
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `KEY=VALUE` pairs; a bare `KEY` has the empty value, as Docker reads `-o encrypted`.
fn kv(list: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if !s.is_empty() => Ok((s.to_string(), String::new())),
            _ => anyhow::bail!("invalid {what} {s:?}: expected KEY=VALUE or KEY"),
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
    // What needs no daemon: the shell's completions and the manual page.
    match &cli.cmd {
        Cmd::Completion { shell } => {
            // Made whole first: a reader that goes away early is an error, never a panic.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "switchctl", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            std::io::Write::write_all(&mut std::io::stdout(), &page)?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
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
        if let ClusterCmd::Forget { host } = &cmd {
            return cluster::forget(&Client::new(&cli.socket)?, host);
        }
        if let ClusterCmd::Revoke { host, ca } = &cmd {
            return cluster::revoke(&Client::new(&cli.socket)?, host, ca);
        }
        return cluster(cmd);
    }
    let c = Client::new(&cli.socket)?;
    match cli.cmd {
        Cmd::Network(n) => network(&c, n),
        Cmd::Sandbox(s) => sandbox(&c, s),
        Cmd::Ports(f) => ports(&c, f.format),
        Cmd::Stats(f) => stats(&c, f.format),
        Cmd::Version(f) => version(&c, f.format),
        Cmd::Fdb { network, format } => fdb(&c, network.as_deref(), format.format),
        Cmd::Capture { port, write, count } => capture(&c, &port, write.as_deref(), count),
        Cmd::Trace {
            network,
            in_port,
            frame,
            format,
        } => trace(&c, network, in_port, frame, format.format),
        Cmd::Port { sandbox, port, format } => port_cmd(&c, &sandbox, port.as_deref(), format.format),
        Cmd::Cluster(_) | Cmd::Completion { .. } | Cmd::Man => unreachable!("handled without a daemon"),
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
