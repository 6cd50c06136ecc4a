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
use crate::{each, kv, pretty, table, Format, FormatArg};

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
        /// An address of a subnet no sandbox gets, NAME=IP, matched to the subnet holding it
        /// (repeatable).
        #[arg(long = "aux-address", value_name = "NAME=IP")]
        aux_addresses: Vec<String>,
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
    Ls(NetworkLsArgs),
    /// Show networks as JSON.
    Inspect {
        /// Names or IDs.
        #[arg(required = true)]
        names: Vec<String>,
        /// A Go template applied to each network's JSON ('{{.Name}} {{json .IPAM.Config}}').
        #[arg(short, long, value_name = "TEMPLATE")]
        format: Option<String>,
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
        /// Only networks that match, KEY=VALUE (repeatable): until (made before a Unix time,
        /// an RFC 3339 time, or a duration ago such as 24h), label (KEY or KEY=VALUE, each
        /// needed) and label! (each refused).
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filter: Vec<String>,
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
        /// The interface's MAC address (default: Docker's, from its IPv4 address).
        #[arg(long)]
        mac: Option<String>,
        /// How the interface is attached: tap, or veth (host end read through AF_PACKET).
        #[arg(long = "port-kind", value_parser = ["tap", "veth"])]
        port_kind: Option<String>,
        /// The interface's name in the sandbox (default: the first free ethN).
        #[arg(long)]
        interface: Option<String>,
        /// A link to another sandbox: OTHER[:ALIAS], a name only this sandbox resolves on the
        /// network (repeatable).
        #[arg(long = "link", value_name = "OTHER[:ALIAS]")]
        links: Vec<String>,
        /// An endpoint driver option, K=V: com.docker.network.endpoint.ifname=NAME names the
        /// interface (repeatable).
        #[arg(long = "driver-opt", value_name = "K=V")]
        driver_opts: Vec<String>,
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
            aux_addresses,
            ipv6,
            ipv4,
            internal,
            labels,
            opts,
            name,
        } => {
            let config = ipam_pools(&subnets, &gateways, &ip_ranges, &aux_addresses)?;
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
        NetworkCmd::Inspect { names, format } => {
            let mut found = Vec::new();
            let code = each(&names, |n| {
                let r: NetworkResource = c.get(&path(&["networks", n]))?;
                found.push(r);
                Ok(())
            });
            crate::template::print_inspected(format.as_deref(), &found)?;
            return Ok(code);
        }
        NetworkCmd::Rm { names } => {
            return Ok(each(&names, |n| {
                c.call::<()>(Method::DELETE, &path(&["networks", n]), None)?;
                println!("{n}");
                Ok(())
            }))
        }
        NetworkCmd::Prune { force, filter } => {
            let query = prune_query(&filter)?;
            if !force && !confirm("WARNING! This will remove all custom networks not used by at least one sandbox.")? {
                return Ok(ExitCode::SUCCESS);
            }
            let r: PruneResponse = c.json::<(), _>(Method::POST, &format!("/networks/prune{query}"), None)?;
            if !r.networks_deleted.is_empty() {
                println!("Deleted Networks:");
                r.networks_deleted.iter().for_each(|n| println!("{n}"));
            }
        }
        NetworkCmd::Connect {
            ip,
            ip6,
            aliases,
            mac,
            port_kind,
            interface,
            links,
            driver_opts,
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
                    mac_address: mac,
                    port_kind,
                    interface,
                    links,
                    driver_opts: kv(&driver_opts, "driver option")?,
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

/// The query of a prune with `--filter`s: `?filters=` and their JSON, percent-encoded, as
/// Docker's CLI sends them (switchd judges the values).
fn prune_query(filters: &[String]) -> anyhow::Result<String> {
    if filters.is_empty() {
        return Ok(String::new());
    }
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            anyhow::bail!("bad format of filter {f:?} (expected name=value)");
        };
        by_key.entry(k).or_default().push(v);
    }
    let json = serde_json::to_string(&by_key)?;
    let enc = percent_encoding::utf8_percent_encode(&json, percent_encoding::NON_ALPHANUMERIC);
    Ok(format!("?filters={enc}"))
}

/// `network ls`'s options, as Docker's.
#[derive(clap::Args, Debug)]
pub(crate) struct NetworkLsArgs {
    /// Only IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Full IDs.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only networks that match, KEY=VALUE (repeatable; the same key twice is either, two
    /// keys are both): driver, id, label (KEY or KEY=VALUE), name, scope (local, global),
    /// type (custom, builtin), dangling (true: custom networks no sandbox is on).
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// table, json (an object a line), a Go template ('{{.Name}}'), or table and a template
    /// ('table {{.ID}}\t{{.Name}}'). Fields: ID, Name, Driver, Scope, IPv4, IPv6, Internal,
    /// Labels, CreatedAt.
    #[arg(long, default_value = "table")]
    format: String,
}

/// The networks Docker's built in (and switchd's own).
const BUILTIN: [&str; 3] = ["bridge", "host", "none"];

/// The filters of `network ls`, by key; each value as given.
#[derive(Debug, Default, PartialEq)]
struct NetworkFilters(BTreeMap<String, Vec<String>>);

impl NetworkFilters {
    /// Parses `--filter`s.
    fn parse(given: &[String]) -> anyhow::Result<NetworkFilters> {
        let mut f = NetworkFilters::default();
        for g in given {
            let Some((k, v)) = g.split_once('=') else {
                anyhow::bail!("bad format of filter {g:?} (expected name=value)");
            };
            let k = k.trim().to_lowercase();
            match k.as_str() {
                "driver" | "id" | "label" | "name" | "scope" => {}
                "type" if matches!(v, "custom" | "builtin") => {}
                "type" => anyhow::bail!("invalid filter 'type={v}': type is custom or builtin"),
                "dangling" if matches!(v, "true" | "false" | "1" | "0") => {}
                "dangling" => anyhow::bail!("invalid filter 'dangling={v}': dangling is true or false"),
                _ => anyhow::bail!(
                    "invalid filter '{k}': accepted are driver, id, label, name, scope, type and dangling"
                ),
            }
            f.0.entry(k).or_default().push(v.to_string());
        }
        Ok(f)
    }

    /// Whether `n` passes: for each key given, one of its values matches.
    fn admit(&self, n: &NetworkResource) -> bool {
        let builtin = BUILTIN.contains(&n.name.as_str());
        self.0.iter().all(|(k, values)| {
            values.iter().any(|v| match k.as_str() {
                "driver" => n.driver == *v,
                "id" => n.id.contains(v.as_str()),
                "name" => n.name.contains(v.as_str()),
                "scope" => n.scope == *v,
                "label" => match v.split_once('=') {
                    Some((key, value)) => n.labels.get(key).is_some_and(|l| l == value),
                    None => n.labels.contains_key(v),
                },
                "type" => (v == "builtin") == builtin,
                "dangling" => (v == "true" || v == "1") == (!builtin && n.containers.is_empty()),
                _ => false,
            })
        })
    }
}

/// `network ls`: the networks by name, as Docker lists them.
fn ls(c: &Client, args: NetworkLsArgs) -> anyhow::Result<()> {
    let filters = NetworkFilters::parse(&args.filter)?;
    let format = crate::template::ListFormat::parse(&args.format);
    let mut nets: Vec<NetworkResource> = c.get("/networks")?;
    nets.retain(|n| filters.admit(n));
    // Docker lists networks by name.
    nets.sort_by(|a, b| a.name.cmp(&b.name));
    let id = |n: &NetworkResource| {
        if args.no_trunc {
            n.id.clone()
        } else {
            n.id[..12.min(n.id.len())].to_string()
        }
    };
    if args.quiet {
        nets.iter().for_each(|n| println!("{}", id(n)));
        return Ok(());
    }
    // As Docker's CLI gives them to a template and to --format json: strings.
    let rows: Vec<serde_json::Value> = nets
        .iter()
        .map(|n| {
            serde_json::json!({
                "CreatedAt": n.created, "Driver": n.driver, "ID": id(n), "IPv4": n.enable_ipv4.to_string(),
                "IPv6": n.enable_ipv6.to_string(), "Internal": n.internal.to_string(), "Labels": labels(&n.labels),
                "Name": n.name, "Scope": n.scope,
            })
        })
        .collect();
    let columns = [
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv4", "IPV4"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
        ("CreatedAt", "CREATED AT"),
    ];
    let columns = if format == crate::template::ListFormat::Table {
        &columns[..4]
    } else {
        &columns[..]
    };
    crate::template::print_list(&format, &rows, columns)
}

/// The IPAM pools of `--subnet`, `--gateway`, `--ip-range` and `--aux-address`, as Docker's
/// CLI pairs them: one pool per subnet, each gateway, range and auxiliary address in the subnet
/// holding it, at most one gateway and range per subnet. A subnet that is no prefix goes as
/// given, for switchd to say what is wrong with it, with what no other subnet holds.
fn ipam_pools(
    subnets: &[String],
    gateways: &[String],
    ranges: &[String],
    aux: &[String],
) -> anyhow::Result<Vec<IpamPool>> {
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
            let Some(at) = holding(&pools, holds) else {
                anyhow::bail!("no matching subnet for {what} {g}: give a --subnet that holds it");
            };
            set_once(&mut pools[at].1, what, g)?;
        }
    }
    for a in aux {
        let Some((name, ip)) = a.split_once('=') else {
            anyhow::bail!("invalid aux-address {a:?}: expected NAME=IP");
        };
        let holds = |p: &Option<ipnet::IpNet>| {
            p.is_some_and(|p| ip.parse::<std::net::IpAddr>().is_ok_and(|ip| p.contains(&ip)))
        };
        let Some(at) = holding(&pools, holds) else {
            anyhow::bail!("no matching subnet for aux-address {ip}: give a --subnet that holds it");
        };
        let names = &mut pools[at].1.auxiliary_addresses;
        if names.insert(name.to_string(), ip.to_string()).is_some() {
            anyhow::bail!("invalid aux-address {a}: the name {name:?} is given twice");
        }
    }
    Ok(pools.into_iter().map(|(_, p)| p).collect())
}

/// The pool whose subnet `holds` what was given; with none, one whose subnet is no prefix, for
/// switchd to name what is wrong with it.
fn holding(pools: &[(Option<ipnet::IpNet>, IpamPool)], holds: impl Fn(&Option<ipnet::IpNet>) -> bool) -> Option<usize> {
    pools
        .iter()
        .position(|(p, _)| holds(p))
        .or_else(|| pools.iter().position(|(p, _)| p.is_none()))
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

    fn net(name: &str, driver: &str, labels: &[(&str, &str)], sandboxes: usize) -> NetworkResource {
        let containers: serde_json::Map<String, serde_json::Value> = (0..sandboxes)
            .map(|i| {
                let e = serde_json::json!({"Name": format!("s{i}"), "EndpointID": "e", "MacAddress": "",
                                           "IPv4Address": "", "IPv6Address": ""});
                (format!("c{i}"), e)
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "Name": name, "Id": format!("{name}0123456789abcdef"), "Created": "2026-12-05T00:00:00Z",
            "Scope": "local", "Driver": driver, "EnableIPv4": true, "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": {}, "Config": []}, "Internal": false,
            "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
            "Containers": containers, "Options": {},
            "Labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    #[test]
    fn network_filters_are_docker_s() {
        let nets = [
            net("bridge", "bridge", &[], 1),
            net("host", "host", &[], 0),
            net("web", "bridge", &[("team", "blue")], 0),
            net("db", "overlay", &[("team", "red")], 2),
        ];
        let names = |filters: &[&str]| {
            let f = NetworkFilters::parse(&strings(filters)).unwrap();
            nets.iter()
                .filter(|n| f.admit(n))
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&[]), ["bridge", "host", "web", "db"]);
        assert_eq!(names(&["driver=bridge"]), ["bridge", "web"]);
        assert_eq!(
            names(&["driver=bridge", "driver=overlay"]),
            ["bridge", "web", "db"],
            "one key: either"
        );
        assert_eq!(names(&["driver=bridge", "label=team"]), ["web"], "two keys: both");
        assert_eq!(names(&["label=team=red"]), ["db"]);
        assert_eq!(names(&["name=b"]), ["bridge", "web", "db"]);
        assert_eq!(names(&["id=web01"]), ["web"]);
        assert_eq!(names(&["type=builtin"]), ["bridge", "host"]);
        assert_eq!(names(&["type=custom"]), ["web", "db"]);
        assert_eq!(names(&["dangling=true"]), ["web"], "custom, no sandbox");
        assert_eq!(names(&["dangling=false"]), ["bridge", "host", "db"]);
        assert_eq!(names(&["scope=global"]), Vec::<String>::new());
        for (bad, says) in [
            ("colour=red", "invalid filter 'colour'"),
            ("driver", "bad format of filter \"driver\" (expected name=value)"),
            ("type=weird", "type is custom or builtin"),
            ("dangling=maybe", "dangling is true or false"),
        ] {
            let e = NetworkFilters::parse(&strings(&[bad])).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gateways_and_ranges_join_the_subnet_holding_them() {
        let pools = ipam_pools(
            &strings(&["10.1.0.0/24", "2001:db8:1::/64"]),
            &strings(&["2001:db8:1::fe", "10.1.0.254"]),
            &strings(&["2001:db8:1::/80"]),
            &strings(&["r6=2001:db8:1::5", "r=10.1.0.5", "p=10.1.0.6"]),
        )
        .unwrap();
        let aux = |pairs: &[(&str, &str)]| pairs.iter().map(|(n, a)| (n.to_string(), a.to_string())).collect();
        assert_eq!(
            pools,
            vec![
                IpamPool {
                    subnet: Some("10.1.0.0/24".into()),
                    ip_range: None,
                    gateway: Some("10.1.0.254".into()),
                    auxiliary_addresses: aux(&[("r", "10.1.0.5"), ("p", "10.1.0.6")]),
                },
                IpamPool {
                    subnet: Some("2001:db8:1::/64".into()),
                    ip_range: Some("2001:db8:1::/80".into()),
                    gateway: Some("2001:db8:1::fe".into()),
                    auxiliary_addresses: aux(&[("r6", "2001:db8:1::5")]),
                },
            ]
        );
        assert!(ipam_pools(&[], &[], &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn what_fits_no_subnet_once_is_refused_by_name() {
        let err = |s: &[&str], g: &[&str], r: &[&str]| {
            ipam_pools(&strings(s), &strings(g), &strings(r), &[])
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
        let aux_err = |s: &[&str], a: &[&str]| ipam_pools(&strings(s), &[], &[], &strings(a)).unwrap_err().to_string();
        assert_eq!(
            aux_err(&["10.1.0.0/24"], &["r=10.2.0.1"]),
            "no matching subnet for aux-address 10.2.0.1: give a --subnet that holds it"
        );
        assert_eq!(
            aux_err(&["10.1.0.0/24"], &["10.1.0.5"]),
            "invalid aux-address \"10.1.0.5\": expected NAME=IP"
        );
        assert_eq!(
            aux_err(&["10.1.0.0/24"], &["r=10.1.0.5", "r=10.1.0.6"]),
            "invalid aux-address r=10.1.0.6: the name \"r\" is given twice"
        );
        let bad = ipam_pools(&strings(&["10.0.0.0/33"]), &strings(&["10.0.0.1"]), &[], &[]).unwrap();
        assert_eq!(bad[0].subnet.as_deref(), Some("10.0.0.0/33"));
        assert_eq!(bad[0].gateway.as_deref(), Some("10.0.0.1"));
    }
}
