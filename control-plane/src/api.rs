//! switchd's API bodies (`switch_api`), and their conversions to and from the model: a request
//! into the model's spec, a network or sandbox into the resource the API answers with.

use std::collections::BTreeMap;

pub use switch_api::*;

use crate::model::{self, Endpoint, Network, Sandbox, SandboxMode, State};

/// A request the model takes as a spec.
pub trait IntoSpec {
    /// The model's spec.
    type Spec;

    /// The model's view of the request.
    ///
    /// # Errors
    /// A request the model cannot take as it is (more than one IPAM pool).
    fn into_spec(self) -> Result<Self::Spec, crate::ModelError>;
}

/// A resource built from the model's state.
pub trait FromModel<T> {
    /// The resource of `x` in `state`.
    fn of(state: &State, x: &T) -> Self;
}

impl IntoSpec for NetworkCreate {
    type Spec = model::NetworkSpec;

    fn into_spec(self) -> Result<model::NetworkSpec, crate::ModelError> {
        let pools = self.ipam.map(|i| i.config).unwrap_or_default();
        // A pool is IPv6 when any of its addresses is.
        let (pools6, mut pools4): (Vec<IpamPool>, Vec<IpamPool>) = pools.into_iter().partition(|p| {
            [&p.subnet, &p.gateway, &p.ip_range]
                .into_iter()
                .filter_map(Option::as_deref)
                .chain(p.auxiliary_addresses.values().map(String::as_str))
                .any(|a| a.contains(':'))
        });
        if pools4.len() > 1 {
            return Err(crate::ModelError::Invalid(format!(
                "{} IPv4 IPAM pools given: a network takes one IPv4 subnet",
                pools4.len()
            )));
        }
        let pool = pools4.pop().unwrap_or_default();
        Ok(model::NetworkSpec {
            name: self.name,
            driver: self.driver,
            subnet: pool.subnet,
            gateway: pool.gateway,
            ip_range: pool.ip_range,
            aux_addresses: pool.auxiliary_addresses,
            ipv6: self.enable_ipv6,
            disable_ipv4: self.enable_ipv4 == Some(false),
            pools6: pools6
                .into_iter()
                .map(|p| model::PoolSpec {
                    subnet: p.subnet,
                    gateway: p.gateway,
                    ip_range: p.ip_range,
                    aux_addresses: p.auxiliary_addresses,
                })
                .collect(),
            internal: self.internal,
            labels: self.labels,
            options: self.options,
        })
    }
}

impl FromModel<Network> for NetworkResource {
    fn of(state: &State, net: &Network) -> NetworkResource {
        // Each subnet with the auxiliary addresses it holds.
        let aux = |inside: &dyn Fn(std::net::IpAddr) -> bool| {
            net.aux_addresses
                .iter()
                .filter(|(_, ip)| inside(**ip))
                .map(|(n, ip)| (n.clone(), ip.to_string()))
                .collect()
        };
        let config = net
            .ipam
            .map(|i| IpamPool {
                subnet: Some(i.subnet.to_string()),
                ip_range: i.ip_range.map(|r| r.to_string()),
                gateway: Some(i.gateway.to_string()),
                auxiliary_addresses: aux(&|ip| matches!(ip, std::net::IpAddr::V4(a) if i.subnet.contains(a))),
            })
            .into_iter()
            .chain(net.ipam6.iter().map(|i| IpamPool {
                subnet: Some(i.subnet.to_string()),
                ip_range: i.ip_range.map(|r| r.to_string()),
                gateway: Some(i.gateway.to_string()),
                auxiliary_addresses: aux(&|ip| matches!(ip, std::net::IpAddr::V6(a) if i.subnet.contains(a))),
            }))
            .collect();
        let containers = state
            .endpoints_of_network(&net.id)
            .filter_map(|e| {
                let sb = state.sandboxes.get(&e.sandbox)?;
                Some((sb.id.to_string(), endpoint_resource(net, sb, e)))
            })
            .collect();
        NetworkResource {
            name: net.name.clone(),
            id: net.id.to_string(),
            created: rfc3339(net.created),
            scope: if net.driver == crate::model::Driver::Overlay {
                "global".into()
            } else {
                "local".into()
            },
            driver: net.driver.as_str().into(),
            enable_ipv4: net.ipam.is_some(),
            enable_ipv6: net.enable_ipv6(),
            ipam: IpamResource {
                driver: "default".into(),
                options: BTreeMap::new(),
                config,
            },
            internal: net.internal,
            attachable: false,
            ingress: false,
            config_from: ConfigFrom::default(),
            config_only: false,
            containers,
            options: net.options.clone(),
            labels: net.labels.clone(),
            native: (net.driver == crate::model::Driver::Macvlan).then(|| NativeResource {
                parent: net.parent_iface().unwrap_or_default().to_string(),
                vlan: net.vlan,
                path: net
                    .native_path
                    .unwrap_or(crate::model::NativePath::KernelMacvlan)
                    .as_str()
                    .into(),
            }),
            addresses: addresses(state, net),
        }
    }
}

/// Per host, how many addresses of `net` it holds and its endpoints use (claimed overlay
/// networks; empty for every other network).
fn addresses(state: &State, net: &Network) -> BTreeMap<String, HostAddresses> {
    let Some(space) = &net.space else {
        return BTreeMap::new();
    };
    let me = state.host_name.as_deref().unwrap_or_default();
    let mut out: BTreeMap<String, HostAddresses> = space
        .held()
        .into_iter()
        .map(|(h, held)| (h.to_string(), HostAddresses { held, used: 0 }))
        .collect();
    let remote = state
        .remote
        .get(&net.id)
        .into_iter()
        .flat_map(|r| r.values().map(|e| &*e.host));
    let local = state
        .endpoints_of_network(&net.id)
        .filter(|e| e.ip.is_some())
        .map(|_| me);
    for host in remote.chain(local) {
        out.entry(host.to_string())
            .or_insert(HostAddresses { held: 0, used: 0 })
            .used += 1;
    }
    out
}

/// The resource of endpoint `e` of sandbox `sb` on `net`.
fn endpoint_resource(net: &Network, sb: &Sandbox, e: &Endpoint) -> EndpointResource {
    let len = net.ipam.map_or(0, |i| i.subnet.prefix_len());
    EndpointResource {
        name: sb.name.clone(),
        endpoint_id: e.id.to_string(),
        mac_address: e.mac.map(|m| m.to_string()).unwrap_or_default(),
        ipv4_address: e.ip.map(|ip| format!("{ip}/{len}")).unwrap_or_default(),
        ipv6_address: e
            .ip6
            .map(|ip| format!("{ip}/{}", net.ipam6_of(ip).map_or(128, |p| p.subnet.prefix_len())))
            .unwrap_or_default(),
    }
}

impl IntoSpec for &NetworkConnect {
    type Spec = model::ConnectSpec;

    fn into_spec(self) -> Result<model::ConnectSpec, crate::ModelError> {
        let cfg = self.endpoint_config.clone().unwrap_or_default();
        Ok(model::ConnectSpec {
            ip: cfg
                .ipam_config
                .as_ref()
                .and_then(|i| i.ipv4_address.clone())
                .filter(|s| !s.is_empty()),
            ip6: cfg.ipam_config.and_then(|i| i.ipv6_address).filter(|s| !s.is_empty()),
            aliases: cfg.aliases,
            mac: cfg.mac_address.filter(|s| !s.is_empty()),
            port_kind: cfg.port_kind.unwrap_or_default(),
            links: cfg.links,
            driver_opts: cfg.driver_opts,
            ifname: cfg.interface.filter(|s| !s.is_empty()),
        })
    }
}

impl IntoSpec for SandboxCreate {
    type Spec = model::SandboxSpec;

    fn into_spec(self) -> Result<model::SandboxSpec, crate::ModelError> {
        Ok(model::SandboxSpec {
            name: self.name,
            network: self.network,
            ip: self.ipv4_address.filter(|s| !s.is_empty()),
            ip6: self.ipv6_address.filter(|s| !s.is_empty()),
            mac: self.mac_address.filter(|s| !s.is_empty()),
            aliases: self.aliases,
            netns: self.netns.filter(|s| !s.is_empty()).map(Into::into),
            port_kind: self.port_kind.unwrap_or_default(),
            links: self.links,
            publish: self.publish,
            expose: self.expose,
            publish_all: self.publish_all_ports,
            host_port_free: None,
            labels: self.labels,
            ifname: self.interface.filter(|s| !s.is_empty()),
            dns: self.resolver.dns,
            dns_search: self.resolver.dns_search,
            dns_options: self.resolver.dns_options,
            add_hosts: self.resolver.extra_hosts,
        })
    }
}

/// A link as `OTHER:ALIAS` (`?` for a sandbox that is gone).
fn link_text(state: &State, l: &model::Link) -> String {
    let other = state.sandboxes.get(&l.sandbox).map_or("?", |o| o.name.as_str());
    format!("{other}:{}", l.alias)
}

impl FromModel<Sandbox> for SandboxResource {
    fn of(state: &State, sb: &Sandbox) -> SandboxResource {
        let network_mode = match &sb.mode {
            SandboxMode::Container(of) => {
                format!(
                    "container:{}",
                    state
                        .sandboxes
                        .get(of)
                        .map_or_else(|| of.to_string(), |s| s.name.clone())
                )
            }
            _ => state
                .endpoints_of_sandbox(&sb.id)
                .first()
                .and_then(|e| state.networks.get(&e.network))
                .map_or_else(|| "none".to_string(), |n| n.name.clone()),
        };
        let networks = state
            .endpoints_of_sandbox(&sb.id)
            .into_iter()
            .filter_map(|e| {
                let net = state.networks.get(&e.network)?;
                Some(SandboxEndpoint {
                    network: net.name.clone(),
                    network_id: net.id.to_string(),
                    endpoint_id: e.id.to_string(),
                    interface: e.ifname.clone().unwrap_or_default(),
                    port_kind: if e.ifname.is_some() {
                        e.port_kind.as_str().to_string()
                    } else {
                        String::new()
                    },
                    mac_address: e.mac.map(|m| m.to_string()).unwrap_or_default(),
                    ip_address: e.ip.map(|i| i.to_string()).unwrap_or_default(),
                    ip_prefix_len: if e.ip.is_some() {
                        net.ipam.map_or(0, |i| i.subnet.prefix_len())
                    } else {
                        0
                    },
                    gateway: if e.ip.is_some() {
                        net.ipam.map(|i| i.gateway.to_string()).unwrap_or_default()
                    } else {
                        String::new()
                    },
                    global_ipv6_address: e.ip6.map(|i| i.to_string()).unwrap_or_default(),
                    global_ipv6_prefix_len: e.ip6.and_then(|i| net.ipam6_of(i)).map_or(0, |p| p.subnet.prefix_len()),
                    ipv6_gateway: e
                        .ip6
                        .and_then(|i| net.ipam6_of(i))
                        .map(|p| p.gateway.to_string())
                        .unwrap_or_default(),
                    aliases: e.aliases.clone(),
                    links: e.links.iter().map(|l| link_text(state, l)).collect(),
                    default_route: (e.ip.is_some() || e.ip6.is_some()) && e.has_default_route(),
                    dns_server: match net.dns_gateway() {
                        Some(gw) if (e.ip.is_some() || e.ip6.is_some()) && !net.builtin && net.is_switched() => {
                            gw.to_string()
                        }
                        _ => String::new(),
                    },
                })
            })
            .collect();
        SandboxResource {
            id: sb.id.to_string(),
            name: sb.name.clone(),
            network_mode,
            netns: sb.netns.display().to_string(),
            adopted_netns: sb.adopted.as_ref().map(|p| p.display().to_string()),
            created: rfc3339(sb.created),
            networks,
            links: sb.links.iter().map(|l| link_text(state, l)).collect(),
            exposed_ports: sb
                .exposed
                .iter()
                .map(|(port, proto)| (format!("{port}/{}", proto.as_str()), BTreeMap::new()))
                .collect(),
            // Docker lists a port published on every address twice: 0.0.0.0 and ::.
            ports: sb
                .ports
                .iter()
                .flat_map(|p| {
                    p.listens().into_iter().map(|a| PortMapping {
                        host_ip: a.ip().to_string(),
                        host_port: p.host_port,
                        container_port: p.container_port,
                        protocol: p.proto.as_str().to_string(),
                    })
                })
                .collect(),
            labels: sb.labels.clone(),
            resolver: SandboxResolver {
                dns: sb.dns.servers.iter().map(ToString::to_string).collect(),
                dns_search: sb.dns.search.clone(),
                dns_options: sb.dns.options.clone(),
                extra_hosts: sb
                    .extra_hosts
                    .iter()
                    .map(|h| match h.ip {
                        Some(ip) => format!("{}:{ip}", h.name),
                        None => format!("{}:host-gateway", h.name),
                    })
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(subnet: &str, gateway: Option<&str>) -> IpamPool {
        IpamPool {
            subnet: Some(subnet.into()),
            gateway: gateway.map(Into::into),
            ..IpamPool::default()
        }
    }

    #[test]
    fn a_create_s_pools_are_split_by_family() {
        let req = NetworkCreate {
            name: "n".into(),
            ipam: Some(IpamCreate {
                config: vec![
                    pool("fd00:1::/64", None),
                    pool("10.1.0.0/24", Some("10.1.0.254")),
                    pool("fd00:2::/64", Some("fd00:2::9")),
                ],
            }),
            enable_ipv6: true,
            ..Default::default()
        };
        let spec = req.into_spec().unwrap();
        assert!(spec.ipv6);
        assert_eq!(spec.subnet.as_deref(), Some("10.1.0.0/24"));
        assert_eq!(spec.gateway.as_deref(), Some("10.1.0.254"));
        let v6: Vec<_> = spec
            .pools6
            .iter()
            .map(|p| (p.subnet.as_deref(), p.gateway.as_deref()))
            .collect();
        assert_eq!(
            v6,
            [(Some("fd00:1::/64"), None), (Some("fd00:2::/64"), Some("fd00:2::9"))]
        );

        let two = NetworkCreate {
            ipam: Some(IpamCreate {
                config: vec![pool("10.1.0.0/24", None), pool("10.2.0.0/24", None)],
            }),
            ..Default::default()
        };
        assert_eq!(
            two.into_spec().unwrap_err().to_string(),
            "2 IPv4 IPAM pools given: a network takes one IPv4 subnet"
        );
        let v6_only = NetworkCreate {
            enable_ipv4: Some(false),
            enable_ipv6: true,
            ..Default::default()
        };
        let spec = v6_only.into_spec().unwrap();
        assert!(spec.disable_ipv4 && spec.ipv6);
        let dual = NetworkCreate {
            enable_ipv4: Some(true),
            ..Default::default()
        };
        assert!(!dual.into_spec().unwrap().disable_ipv4);
    }
}
