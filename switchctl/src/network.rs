//! `switchctl network`: networks in Docker's words, and their static VXLAN peers.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Subcommand;
use hyper::Method;
use switch_api::{
    CreateResponse, EndpointConfig, EndpointIpam, IpamCreate, IpamPool, NetworkConnect, NetworkCreate,
    NetworkDisconnect, NetworkResource, PruneResponse,
};

use switch_client::client::{path, Client};

use crate::observe::drops_cell;
use crate::{each, kv, pretty, table, Format, FormatArg, ListArgs};

#[derive(Subcommand, Debug)]
pub(crate) enum NetworkCmd {
    /// Create a network.
    Create {
        /// Driver (bridge).
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form: one IPv4, and IPv6 ones with --ipv6 (repeatable).
        #[arg(long = "subnet")]
        subnets: Vec<String>,
        /// Gateway address, matched to the subnet holding it (repeatable).
        #[arg(long = "gateway")]
        gateways: Vec<String>,
        /// Range of a subnet for dynamic addresses, matched to the subnet holding it
        /// (repeatable).
        #[arg(long = "ip-range")]
        ip_ranges: Vec<String>,
        /// Enable IPv6: in the IPv6 subnets given, or in a /64 of the host's unique local
        /// prefix.
        #[arg(long)]
        ipv6: bool,
        /// IPv4 on (the default); --ipv4=false with --ipv6 makes an IPv6-only network.
        #[arg(
            long,
            value_name = "BOOL",
            default_value_t = true,
            action = clap::ArgAction::Set,
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true"
        )]
        ipv4: bool,
        /// No route beyond the host.
        #[arg(long)]
        internal: bool,
        /// Labels, K=V.
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        /// Driver options, K=V. bridge: com.docker.network.bridge.name, mtu, mac_aging, mac_limit,
        /// port_security=true|false (sandboxes send only from their own addresses; default
        /// true), bum_pps=N (broadcast, multicast and unknown-unicast frames per second per
        /// sandbox, default 1000, 0 for no limit); overlay: also vni, max_hosts, encrypted
        /// (frames between hosts sealed as ESP; default MTU 1400); macvlan:
        /// parent=IFACE[.VLAN], macvlan_mode, mtu, host_access=true|false.
        #[arg(short = 'o', long = "opt", value_name = "K=V")]
        opts: Vec<String>,
        /// Name.
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls(ListArgs),
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
        /// Static IPv6 address.
        #[arg(long)]
        ip6: Option<String>,
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
pub(crate) enum VtepCmd {
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

pub(crate) fn network(c: &Client, cmd: NetworkCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NetworkCmd::Create {
            driver,
            subnets,
            gateways,
            ip_ranges,
            ipv6,
            ipv4,
            internal,
            labels,
            opts,
            name,
        } => {
            let config = ipam_pools(&subnets, &gateways, &ip_ranges)?;
            let req = NetworkCreate {
                name,
                driver,
                internal,
                labels: kv(&labels, "label")?,
                options: kv(&opts, "option")?,
                ipam: (!config.is_empty()).then_some(IpamCreate { config }),
                enable_ipv6: ipv6,
                enable_ipv4: (!ipv4).then_some(false),
            };
            let r: CreateResponse = c.json(Method::POST, "/networks/create", Some(&req))?;
            println!("{}", r.id);
        }
        NetworkCmd::Ls(args) => ls(c, args)?,
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
            ip6,
            aliases,
            port_kind,
            interface,
            network,
            sandbox,
        } => {
            let req = NetworkConnect {
                container: sandbox,
                endpoint_config: Some(EndpointConfig {
                    ipam_config: Some(EndpointIpam {
                        ipv4_address: ip,
                        ipv6_address: ip6,
                    }),
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

/// `network ls`: the networks by name, as Docker lists them.
fn ls(c: &Client, args: ListArgs) -> anyhow::Result<()> {
    let ListArgs {
        quiet,
        no_trunc,
        format,
    } = args;
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
    Ok(())
}

/// The IPAM pools of `--subnet`, `--gateway` and `--ip-range`, as Docker's CLI pairs them:
/// one pool per subnet, each gateway and range in the subnet holding it, at most one of each
/// per subnet. A subnet that is no prefix goes as given, for switchd to say what is wrong with
/// it, with what no other subnet holds.
fn ipam_pools(subnets: &[String], gateways: &[String], ranges: &[String]) -> anyhow::Result<Vec<IpamPool>> {
    let mut pools: Vec<(Option<ipnet::IpNet>, IpamPool)> = Vec::new();
    for s in subnets {
        let net: Option<ipnet::IpNet> = s.parse().ok();
        if let Some(net) = net {
            let overlap = pools
                .iter()
                .filter_map(|(p, _)| *p)
                .find(|p| p.contains(&net) || net.contains(p));
            if let Some(other) = overlap {
                anyhow::bail!("subnets {other} and {net} overlap: give each subnet once, without overlaps");
            }
        }
        let pool = IpamPool {
            subnet: Some(s.clone()),
            ..IpamPool::default()
        };
        pools.push((net, pool));
    }
    for (given, what) in [(ranges, "ip-range"), (gateways, "gateway")] {
        for g in given {
            let holds = |p: &Option<ipnet::IpNet>| match (p, what) {
                (Some(p), "gateway") => g.parse::<std::net::IpAddr>().is_ok_and(|a| p.contains(&a)),
                (Some(p), _) => g.parse::<ipnet::IpNet>().is_ok_and(|r| p.contains(&r)),
                (None, _) => false,
            };
            // Nothing holding it beside a subnet that is no prefix: switchd names that one.
            let at = pools
                .iter()
                .position(|(p, _)| holds(p))
                .or_else(|| pools.iter().position(|(p, _)| p.is_none()));
            let Some(at) = at else {
                anyhow::bail!("no matching subnet for {what} {g}: give a --subnet that holds it");
            };
            set_once(&mut pools[at].1, what, g)?;
        }
    }
    Ok(pools.into_iter().map(|(_, p)| p).collect())
}

/// Puts `value` in `pool`'s gateway or range (`what`), refusing a second one.
fn set_once(pool: &mut IpamPool, what: &str, value: &str) -> anyhow::Result<()> {
    let slot = if what == "gateway" {
        &mut pool.gateway
    } else {
        &mut pool.ip_range
    };
    match slot.replace(value.to_string()) {
        Some(first) => anyhow::bail!(
            "cannot configure multiple {what}s ({first}, {value}) on the same subnet ({})",
            pool.subnet.as_deref().unwrap_or_default()
        ),
        None => Ok(()),
    }
}

pub(crate) fn labels(l: &BTreeMap<String, String>) -> String {
    l.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

pub(crate) fn confirm(warning: &str) -> anyhow::Result<bool> {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

pub(crate) fn vtep(c: &Client, cmd: VtepCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        VtepCmd::Add { network, address } => {
            let req = switch_api::VtepAdd { address };
            c.call(Method::POST, &path(&["networks", &network, "vteps"]), Some(&req))?;
        }
        VtepCmd::Rm { network, address } => {
            c.call::<()>(Method::DELETE, &path(&["networks", &network, "vteps", &address]), None)?;
        }
        VtepCmd::Ls { network, format } => {
            let list: Vec<switch_api::VtepResource> = c.get(&path(&["networks", &network, "vteps"]))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gateways_and_ranges_join_the_subnet_holding_them() {
        let pools = ipam_pools(
            &strings(&["10.1.0.0/24", "2001:db8:1::/64"]),
            &strings(&["2001:db8:1::fe", "10.1.0.254"]),
            &strings(&["2001:db8:1::/80"]),
        )
        .unwrap();
        assert_eq!(
            pools,
            vec![
                IpamPool {
                    subnet: Some("10.1.0.0/24".into()),
                    ip_range: None,
                    gateway: Some("10.1.0.254".into()),
                },
                IpamPool {
                    subnet: Some("2001:db8:1::/64".into()),
                    ip_range: Some("2001:db8:1::/80".into()),
                    gateway: Some("2001:db8:1::fe".into()),
                },
            ]
        );
        assert!(ipam_pools(&[], &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn what_fits_no_subnet_once_is_refused_by_name() {
        let err = |s: &[&str], g: &[&str], r: &[&str]| {
            ipam_pools(&strings(s), &strings(g), &strings(r))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&["10.1.0.0/24"], &["10.2.0.1"], &[]),
            "no matching subnet for gateway 10.2.0.1: give a --subnet that holds it"
        );
        assert_eq!(
            err(&[], &[], &["10.1.0.0/25"]),
            "no matching subnet for ip-range 10.1.0.0/25: give a --subnet that holds it"
        );
        assert_eq!(
            err(&["10.1.0.0/24"], &["10.1.0.1", "10.1.0.2"], &[]),
            "cannot configure multiple gateways (10.1.0.1, 10.1.0.2) on the same subnet (10.1.0.0/24)"
        );
        assert_eq!(
            err(&["10.1.0.0/16", "10.1.2.0/24"], &[], &[]),
            "subnets 10.1.0.0/16 and 10.1.2.0/24 overlap: give each subnet once, without overlaps"
        );
        // A subnet that is no prefix goes to switchd as given, with what no subnet holds.
        let bad = ipam_pools(&strings(&["10.0.0.0/33"]), &strings(&["10.0.0.1"]), &[]).unwrap();
        assert_eq!(bad[0].subnet.as_deref(), Some("10.0.0.0/33"));
        assert_eq!(bad[0].gateway.as_deref(), Some("10.0.0.1"));
    }
}
