//! Network operations of the model: create (with IPAM and VNI planning), static VTEPs, remove,
//! prune.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use super::*;
use crate::cidr::{Ipv4Cidr, Ipv6Cidr};
use crate::error::ModelError;
use crate::ids::Id;
use crate::ipam;

impl State {
    /// Creates a network and returns its ID. An automatic subnet also avoids the host's routes
    /// (the prefixes it already reaches, as Docker avoids them), and a chosen one may not
    /// overlap them unless the network is a macvlan one (which shares its LAN's subnet).
    ///
    /// # Errors
    /// Invalid names, drivers, options or addresses; a name in use or an overlapping subnet.
    pub fn create_network(
        &mut self,
        spec: NetworkSpec,
        id: Id,
        now: SystemTime,
        host: &HostFacts,
    ) -> Result<Id, ModelError> {
        self.fresh_ids(&[&id])?;
        check_name("network", &spec.name)?;
        if self.networks.values().any(|n| n.name == spec.name) {
            return Err(ModelError::Conflict(format!(
                "network with name {} already exists",
                spec.name
            )));
        }
        let driver = match spec.driver.as_str() {
            "" | "bridge" => Driver::Bridge,
            "overlay" => Driver::Overlay,
            "host" | "null" => {
                return Err(ModelError::Forbidden(format!(
                    "only one instance of \"{}\" network is allowed",
                    if spec.driver == "null" { "none" } else { "host" }
                )))
            }
            "macvlan" => Driver::Macvlan,
            other => {
                return Err(invalid(format!(
                    "unknown driver \"{other}\": accepted drivers are bridge, overlay and macvlan"
                )))
            }
        };
        let opts = parse_options(&spec.options, driver)?;
        let vni = match driver {
            Driver::Overlay => Some(self.plan_vni(opts.vni)?),
            _ => None,
        };
        // A macvlan network shares its LAN's subnet, whose route the host has, by design.
        let (routed, routed6) = if driver == Driver::Macvlan {
            (&[][..], &[][..])
        } else {
            (&host.routes[..], &host.routes6[..])
        };
        let ipam = if spec.disable_ipv4 {
            check_ipv6_only(&spec, driver)?;
            None
        } else {
            Some(self.plan_ipam(&spec, host, routed)?)
        };
        let ipam6 = self.plan_ipam6(&spec, driver, ipam.as_ref(), host, routed6)?;
        let aux_addresses = plan_aux(&spec, driver, ipam.as_ref(), &ipam6)?;
        if driver == Driver::Macvlan {
            let parent = opts
                .parent
                .clone()
                .ok_or_else(|| invalid("a macvlan network needs -o parent=IFACE: the interface on the physical LAN"))?;
            let iface = parent.split_once('.').map_or(parent.as_str(), |(i, _)| i);
            let same = |n: &&Network| n.parent_iface() == Some(iface) && n.vlan == opts.vlan;
            if let Some(n) = self.networks.values().find(same) {
                return Err(ModelError::Conflict(format!(
                    "parent interface {parent} is already used by macvlan network {}",
                    n.name
                )));
            }
        }
        let bridge_name = opts.bridge_name.unwrap_or_else(|| format!("sw-{}", id.short()));
        if let Some(n) = self
            .networks
            .values()
            .find(|n| n.bridge_name.as_deref() == Some(&bridge_name))
        {
            return Err(ModelError::Conflict(format!(
                "bridge name {bridge_name:?} is already used by network {}",
                n.name
            )));
        }
        let used: BTreeSet<u32> = self.networks.values().map(|n| n.switch_id).collect();
        let switch_id = (1..).find(|i| !used.contains(i)).expect("fewer than u32::MAX networks");
        let mut options = spec.options;
        if let Some(v) = vni {
            options.remove(OPT_VNI);
            options.insert(OPT_VXLANID_LIST.to_string(), v.to_string());
        }
        let default_mtu = match (opts.encrypted, driver, host.underlay6) {
            (true, _, false) => DEFAULT_ENCRYPTED_MTU,
            (true, _, true) => DEFAULT_ENCRYPTED_MTU6,
            (false, Driver::Overlay, false) => DEFAULT_OVERLAY_MTU,
            (false, Driver::Overlay, true) => DEFAULT_OVERLAY_MTU6,
            _ => DEFAULT_MTU,
        };
        let net = Network {
            id: id.clone(),
            name: spec.name,
            driver,
            created: now,
            ipam,
            ipam6,
            aux_addresses,
            internal: spec.internal,
            labels: spec.labels,
            options,
            builtin: false,
            switch_id,
            bridge_name: (driver != Driver::Macvlan).then_some(bridge_name),
            mtu: opts.mtu.unwrap_or(default_mtu),
            mac_aging: opts.mac_aging.unwrap_or(DEFAULT_MAC_AGING),
            mac_limit: opts.mac_limit.unwrap_or(DEFAULT_MAC_LIMIT),
            port_security: opts.port_security,
            bum_pps: opts.bum_pps.unwrap_or(switch::DEFAULT_BUM_PPS),
            vni,
            vteps: Vec::new(),
            encrypted: opts.encrypted,
            max_hosts: (driver == Driver::Overlay).then(|| opts.max_hosts.unwrap_or(DEFAULT_MAX_HOSTS)),
            space: None,
            parent: opts.parent,
            macvlan_mode: (driver == Driver::Macvlan).then(|| opts.macvlan_mode.unwrap_or_else(|| "bridge".into())),
            host_access: opts.host_access,
            vlan: opts.vlan,
            native_path: None,
            vlan_link_created: false,
        };
        if let Some((name, ip)) = net.aux_addresses.iter().find(|(_, a)| net.is_host_access_address(**a)) {
            return Err(invalid(format!(
                "invalid aux-address {name}={ip}: it is the address of the host's own interface (host_access)"
            )));
        }
        self.networks.insert(id.clone(), net);
        Ok(id)
    }

    /// Gives the default bridge the address `bip` (`--bip 10.200.0.1/24`: its gateway and,
    /// with the prefix length, its subnet), as Docker's daemon flag does. Returns whether it
    /// changed. The subnet is checked as a chosen one is: a unicast range no other network
    /// uses and no route of the host reaches.
    ///
    /// # Errors
    /// A malformed or unusable address, or a bridge that sandboxes are on (their addresses
    /// are of the old subnet); nothing changes.
    pub fn set_bip(&mut self, bip: &str, host: &HostFacts) -> Result<bool, ModelError> {
        let bad = |what: &str| invalid(format!("invalid --bip {bip:?}: {what}"));
        let (ip, len) = bip
            .split_once('/')
            .ok_or_else(|| bad("expected the bridge's address and prefix length, like 172.17.0.1/16"))?;
        let gateway: Ipv4Addr = ip.parse().map_err(|_| bad("expected an IPv4 address before the /"))?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| bad("a prefix length is 0-32"))?;
        let net = ipnet::Ipv4Net::new(gateway, len).map_err(|_| bad("a prefix length is 0-32"))?;
        let subnet = Ipv4Cidr::new(net.network(), len).map_err(invalid)?;
        let id = self.network(DEFAULT_BRIDGE)?.id.clone();
        let current = self.networks[&id].ipam;
        if current.is_some_and(|i| i.subnet == subnet && i.gateway == gateway) {
            return Ok(false);
        }
        let on: Vec<String> = self
            .endpoints_of_network(&id)
            .filter_map(|e| self.sandboxes.get(&e.sandbox).map(|s| s.name.clone()))
            .collect();
        if !on.is_empty() {
            return Err(ModelError::Conflict(format!(
                "--bip {bip} would move the default bridge from {}, where sandboxes {} have their addresses: remove them first, or start without --bip",
                current.map_or_else(String::new, |i| format!("{}/{}", i.gateway, i.subnet.prefix_len())),
                on.join(", ")
            )));
        }
        let spec = NetworkSpec {
            subnet: Some(subnet.to_string()),
            gateway: Some(gateway.to_string()),
            ..NetworkSpec::default()
        };
        // The bridge's own subnet is not in its way.
        let old = self.networks.get_mut(&id).expect("found").ipam.take();
        let planned = self.plan_ipam(&spec, host, &host.routes);
        let bridge = self.networks.get_mut(&id).expect("found");
        match planned {
            Ok(p) => {
                bridge.ipam = Some(p);
                Ok(true)
            }
            Err(e) => {
                bridge.ipam = old;
                Err(invalid(format!("invalid --bip {bip}: {e}")))
            }
        }
    }

    fn plan_vni(&self, asked: Option<u32>) -> Result<u32, ModelError> {
        let used: BTreeSet<u32> = self.networks.values().filter_map(|n| n.vni).collect();
        match asked {
            Some(v) => match self.networks.values().find(|n| n.vni == Some(v)) {
                Some(n) => Err(ModelError::Conflict(format!(
                    "VNI {v} is already used by network {}",
                    n.name
                ))),
                None => Ok(v),
            },
            None => (FIRST_AUTO_VNI..=overlay::Vni::MAX)
                .find(|v| !used.contains(v))
                .ok_or_else(|| ModelError::Conflict("no free VNI is left".into())),
        }
    }

    /// Adds a static VXLAN peer (`IP[:PORT]`, `default_port` when none) to an overlay network.
    ///
    /// # Errors
    /// Unknown network, not an overlay network, a malformed address, or a peer already there.
    pub fn add_vtep(&mut self, net: &str, addr: &str, default_port: u16) -> Result<SocketAddr, ModelError> {
        let n = self.network(net)?;
        if n.driver != Driver::Overlay {
            return Err(invalid(format!(
                "network {} is a {} network: static VTEPs belong to overlay networks",
                n.name,
                n.driver.as_str()
            )));
        }
        let a = parse_vtep(addr, default_port)?;
        if n.encrypted {
            return Err(ModelError::Forbidden(format!(
                "network {} is encrypted: a static VTEP cannot seal its frames, so only cluster hosts join it (use a network without -o encrypted for {a})",
                n.name
            )));
        }
        if n.vteps.contains(&a) {
            return Err(ModelError::Conflict(format!(
                "VTEP {a} is already a peer of network {}",
                n.name
            )));
        }
        let id = n.id.clone();
        self.networks.get_mut(&id).expect("found above").vteps.push(a);
        Ok(a)
    }

    /// Removes a static VXLAN peer.
    ///
    /// # Errors
    /// Unknown network, a malformed address, or no such peer.
    pub fn remove_vtep(&mut self, net: &str, addr: &str, default_port: u16) -> Result<SocketAddr, ModelError> {
        let n = self.network(net)?;
        let a = parse_vtep(addr, default_port)?;
        if !n.vteps.contains(&a) {
            return Err(ModelError::Conflict(format!(
                "VTEP {a} is not a peer of network {}",
                n.name
            )));
        }
        let id = n.id.clone();
        self.networks
            .get_mut(&id)
            .expect("found above")
            .vteps
            .retain(|v| *v != a);
        Ok(a)
    }

    /// The network's addressing. A subnet given must be one a network can use (not in a
    /// reserved range), of no other network, and overlap none of `routed` (the host's routes a
    /// new subnet must stay clear of); without one, the first free subnet of the host's
    /// address pools (Docker's defaults unless configured) that none of its routes reach.
    pub(super) fn plan_ipam(
        &self,
        spec: &NetworkSpec,
        host: &HostFacts,
        routed: &[Ipv4Cidr],
    ) -> Result<NetIpam, ModelError> {
        let taken = self.networks.values().filter_map(|n| n.ipam.map(|i| (n, i.subnet)));
        let subnet = match &spec.subnet {
            Some(s) => {
                let subnet: Ipv4Cidr = s.parse().map_err(invalid)?;
                if subnet.prefix_len() > 30 {
                    return Err(invalid(format!("invalid subnet \"{subnet}\": prefix length must be at most 30 to hold a gateway and an endpoint")));
                }
                if let Some((range, what)) = RESERVED
                    .iter()
                    .find(|(r, _)| subnet.overlaps(&r.parse().expect("a valid CIDR")))
                {
                    return Err(invalid(format!(
                        "invalid subnet \"{subnet}\": it overlaps {range} ({what}); choose a unicast range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
                    )));
                }
                if let Some((n, other)) = taken.clone().find(|(_, t)| t.overlaps(&subnet)) {
                    return Err(ModelError::Conflict(format!(
                        "subnet {subnet} overlaps network {} ({other}): choose a subnet that no network uses",
                        n.name
                    )));
                }
                if let Some(route) = routed.iter().find(|r| r.overlaps(&subnet)) {
                    return Err(ModelError::Conflict(format!(
                        "subnet {subnet} overlaps the host's route to {route}: choose a subnet the host does not reach through another interface"
                    )));
                }
                subnet
            }
            None => {
                if spec.gateway.is_some() || spec.ip_range.is_some() {
                    return Err(invalid("--gateway and --ip-range need --subnet"));
                }
                let subnets: Vec<Ipv4Cidr> = taken.map(|(_, t)| t).chain(host.routes.iter().copied()).collect();
                ipam::pick_subnet_in(&host.pools, &subnets).ok_or_else(|| {
                    ModelError::Conflict(format!(
                        "could not find an available, non-overlapping IPv4 address pool among the {} to assign to the network",
                        if host.pools.is_empty() { "defaults" } else { "default address pools" }
                    ))
                })?
            }
        };
        let ip_range = plan_range(subnet, spec.ip_range.as_deref())?;
        let gateway = match &spec.gateway {
            Some(g) => {
                let gw: Ipv4Addr = g.parse().map_err(|_| {
                    invalid(format!(
                        "invalid gateway {g:?}: expected an IPv4 address like 192.168.0.1"
                    ))
                })?;
                if !subnet.contains(gw) || gw == subnet.network() || gw == subnet.broadcast() {
                    return Err(invalid(format!(
                        "invalid gateway {gw}: it must be a host address inside the subnet {subnet}"
                    )));
                }
                gw
            }
            None => subnet.first_host(),
        };
        Ok(NetIpam {
            subnet,
            ip_range,
            gateway,
        })
    }

    /// The network's IPv6 subnets: none without `--ipv6`; the pools given; or, when none is,
    /// the first free subnet of the host's IPv6 address pools, or without those the lowest /64
    /// of this host's unique local prefix that no network uses. Each subnet
    /// must be unicast, hold a gateway and an endpoint, overlap no other network's or pool's,
    /// and hold its gateway and range. An overlay network has one, which gives each endpoint
    /// the address at its IPv4 address's offset ([`Network::overlay_ip6`]). An automatic
    /// subnet avoids the host's IPv6 routes; a subnet given may not overlap `routed6`.
    pub(super) fn plan_ipam6(
        &self,
        spec: &NetworkSpec,
        driver: Driver,
        ipam: Option<&NetIpam>,
        host: &HostFacts,
        routed6: &[Ipv6Cidr],
    ) -> Result<Vec<NetIpam6>, ModelError> {
        if !spec.ipv6 {
            return match spec.pools6.first() {
                Some(p) => Err(invalid(format!(
                    "subnet {} is IPv6, but IPv6 is off on the network: add --ipv6",
                    p.subnet.as_deref().or(p.gateway.as_deref()).unwrap_or_default()
                ))),
                None => Ok(Vec::new()),
            };
        }
        // Other networks' subnets, and those Docker holds for networks to come.
        let taken: Vec<(String, Ipv6Cidr)> = self
            .networks
            .values()
            .flat_map(|n| n.ipam6.iter().map(|i| (format!("network {}", n.name), i.subnet)))
            .chain(
                self.docker
                    .pools6
                    .iter()
                    .map(|(id, p)| (format!("Docker's pool {id}"), p.subnet)),
            )
            .collect();
        if spec.pools6.is_empty() {
            let subnets: Vec<Ipv6Cidr> = taken
                .iter()
                .map(|(_, s)| *s)
                .chain(host.routes6.iter().copied())
                .collect();
            let subnet = if host.pools6.is_empty() {
                ipam::pick_subnet6(self.ula_prefix(), subnets.iter()).ok_or_else(|| {
                    ModelError::Conflict(
                        "could not find an available /64 of the host's unique local IPv6 prefix to assign to the network"
                            .into(),
                    )
                })?
            } else {
                host.pools6.iter().find_map(|p| p.pick(&subnets)).ok_or_else(|| {
                    ModelError::Conflict(
                        "could not find an available, non-overlapping IPv6 subnet among the default address pools to assign to the network"
                            .into(),
                    )
                })?
            };
            let gateway = match ipam.filter(|_| driver == Driver::Overlay) {
                Some(ipam) => offset6(subnet, ipam.offset(ipam.gateway)),
                None => subnet.first_host(),
            };
            return Ok(vec![NetIpam6 {
                subnet,
                ip_range: None,
                gateway,
            }]);
        }
        for pool in &spec.pools6 {
            let Some(subnet) = pool.subnet.as_deref().and_then(|s| s.parse::<Ipv6Cidr>().ok()) else {
                continue;
            };
            // One that overlaps a network is refused below, naming the network (whose route
            // this host holds itself).
            if taken.iter().any(|(_, t)| t.overlaps(&subnet)) {
                continue;
            }
            if let Some(route) = routed6.iter().find(|r| r.overlaps(&subnet)) {
                return Err(ModelError::Conflict(format!(
                    "subnet {subnet} overlaps the host's route to {route}: choose a subnet the host does not reach through another interface"
                )));
            }
        }
        if let (Driver::Overlay, Some(ipam)) = (driver, ipam) {
            return self.plan_overlay_ipam6(spec, ipam);
        }
        // Each subnet is a gateway address and a DNS listener of each protocol on the host.
        if spec.pools6.len() > MAX_SUBNETS6 {
            return Err(invalid(format!(
                "{} IPv6 subnets given: a network takes at most {MAX_SUBNETS6}",
                spec.pools6.len()
            )));
        }
        let mut planned: Vec<NetIpam6> = Vec::new();
        for pool in &spec.pools6 {
            let Some(s) = &pool.subnet else {
                return Err(invalid(
                    "an IPv6 --gateway or --ip-range needs an IPv6 --subnet holding it",
                ));
            };
            let subnet: Ipv6Cidr = s.parse().map_err(invalid)?;
            if subnet.prefix_len() > 126 {
                return Err(invalid(format!(
                    "invalid subnet \"{subnet}\": prefix length must be at most 126 to hold a gateway and an endpoint"
                )));
            }
            if let Some((range, what)) = RESERVED6
                .iter()
                .find(|(r, _)| subnet.overlaps(&r.parse().expect("a valid CIDR")))
            {
                return Err(invalid(format!(
                    "invalid subnet \"{subnet}\": it overlaps {range} ({what}); choose a unicast range such as a unique local fd00::/8 prefix or a global one"
                )));
            }
            let mine = format!("network {}", spec.name);
            let others = taken
                .iter()
                .map(|(n, s)| (n.as_str(), *s))
                .chain(planned.iter().map(|p| (mine.as_str(), p.subnet)));
            if let Some((holder, other)) = others.clone().find(|(_, t)| t.overlaps(&subnet)) {
                return Err(ModelError::Conflict(format!(
                    "subnet {subnet} overlaps {holder} ({other}): choose a subnet that no network uses"
                )));
            }
            let ip_range = plan_range(subnet, pool.ip_range.as_deref())?;
            let gateway = match &pool.gateway {
                Some(g) => {
                    let gw: Ipv6Addr = g.parse().map_err(|_| {
                        invalid(format!(
                            "invalid gateway {g:?}: expected an IPv6 address like 2001:db8:1::1"
                        ))
                    })?;
                    if !subnet.contains(gw) || gw == subnet.network() {
                        return Err(invalid(format!(
                            "invalid gateway {gw}: it must be an address inside the subnet {subnet} other than its first (the subnet-router anycast address)"
                        )));
                    }
                    gw
                }
                None => subnet.first_host(),
            };
            planned.push(NetIpam6 {
                subnet,
                ip_range,
                gateway,
            });
        }
        Ok(planned)
    }

    /// An overlay network's IPv6 subnet: one, holding every offset of the IPv4 subnet, with
    /// no range of its own and the gateway at the IPv4 gateway's offset (the anycast gateway
    /// holds both on every host).
    fn plan_overlay_ipam6(&self, spec: &NetworkSpec, ipam: &NetIpam) -> Result<Vec<NetIpam6>, ModelError> {
        let [pool] = spec.pools6.as_slice() else {
            return Err(invalid(format!(
                "{} IPv6 subnets given: an overlay network takes one, whose addresses follow its IPv4 subnet's",
                spec.pools6.len()
            )));
        };
        let bare = NetworkSpec {
            ipv6: true,
            pools6: vec![PoolSpec {
                subnet: pool.subnet.clone(),
                ..PoolSpec::default()
            }],
            ..NetworkSpec::default()
        };
        // The checks of any IPv6 subnet, then an overlay network's own.
        // (The routes were checked by the caller.)
        let mut planned = self.plan_ipam6(&bare, Driver::Bridge, Some(ipam), &HostFacts::default(), &[])?;
        let p = &mut planned[0];
        let host_bits = 32 - u32::from(ipam.subnet.prefix_len());
        if 128 - u32::from(p.subnet.prefix_len()) < host_bits {
            return Err(invalid(format!(
                "invalid subnet \"{}\": an overlay network's IPv6 subnet holds every offset of its IPv4 subnet {}, so its prefix length must be at most {}",
                p.subnet,
                ipam.subnet,
                128 - host_bits
            )));
        }
        if pool.ip_range.is_some() {
            return Err(invalid(
                "--ip-range does not apply to an overlay network's IPv6 subnet: its addresses follow the IPv4 ones",
            ));
        }
        p.gateway = offset6(p.subnet, ipam.offset(ipam.gateway));
        if let Some(g) = &pool.gateway {
            if g.parse::<Ipv6Addr>().ok() != Some(p.gateway) {
                return Err(invalid(format!(
                    "invalid gateway {g}: an overlay network's IPv6 gateway is at its IPv4 gateway's offset, {}",
                    p.gateway
                )));
            }
        }
        Ok(planned)
    }

    /// This host's unique local /48 (RFC 4193), whose global ID is the first five bytes of
    /// the default bridge's ID: drawn at random once, and the same for the host's lifetime, as
    /// Docker derives its own from the engine's ID. A state without the default bridge (tests)
    /// has the all-zero ID.
    pub fn ula_prefix(&self) -> Ipv6Cidr {
        let id = self
            .networks
            .values()
            .find(|n| n.builtin && n.driver == Driver::Bridge)
            .map_or([0; 5], |n| {
                let b = n.id.bytes();
                [b[0], b[1], b[2], b[3], b[4]]
            });
        ipam::ula_prefix(id)
    }

    /// The record other hosts need to create this overlay network too.
    pub fn network_record(&self, id: &Id) -> Option<crate::cluster::records::NetworkRecord> {
        let n = self.networks.get(id).filter(|n| n.driver == Driver::Overlay)?;
        let ipam = n.ipam?;
        Some(crate::cluster::records::NetworkRecord {
            name: n.name.clone(),
            subnet: ipam.subnet,
            gateway: ipam.gateway,
            vni: n.vni?,
            max_hosts: n.max_hosts.unwrap_or(DEFAULT_MAX_HOSTS),
            claimed: n.space.is_some(),
            mtu: n.mtu,
            internal: n.internal,
            created: n.created,
            encrypted: n.encrypted,
            subnet6: n.ipam6.first().map(|p| p.subnet),
        })
    }

    /// The record other hosts need to reach local endpoint `ep` of an overlay network, as
    /// host `host` whose VXLAN address is `vtep` publishes it.
    pub fn endpoint_record(
        &self,
        ep: &Id,
        host: &str,
        vtep: std::net::SocketAddr,
    ) -> Option<crate::cluster::records::EndpointRecord> {
        let ep = self.endpoints.get(ep)?;
        self.networks.get(&ep.network).filter(|n| n.driver == Driver::Overlay)?;
        let sandbox = self
            .sandboxes
            .get(&ep.sandbox)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        Some(crate::cluster::records::EndpointRecord {
            network: ep.network.clone(),
            host: host.into(),
            vtep,
            sandbox,
            mac: ep.mac?.0,
            ip: ep.ip?,
            aliases: ep.aliases.clone(),
        })
    }

    /// Creates, under the ID another host gave it, an overlay network that host created.
    /// Nothing happens when it exists already.
    ///
    /// # Errors
    /// What a local create of the same network would be refused for: a local network holds
    /// the name, the VNI or an overlapping subnet (the first network stays; the operator
    /// must resolve the clash), or the subnet, gateway, VNI or MTU is one no local create
    /// accepts (`host`: as for a local create).
    pub fn adopt_network(
        &mut self,
        id: Id,
        r: &crate::cluster::records::NetworkRecord,
        host: &HostFacts,
    ) -> Result<bool, ModelError> {
        if self.networks.contains_key(&id) {
            return Ok(false);
        }
        // Adopted only when this host would have made it itself: the same checks as a local
        // create (name, subnet, reserved ranges, the host's routes, gateway, VNI, MTU), so
        // that a peer cannot push a /1 or a subnet this host reaches elsewhere.
        let spec = NetworkSpec {
            name: r.name.clone(),
            driver: "overlay".into(),
            subnet: Some(r.subnet.to_string()),
            gateway: Some(r.gateway.to_string()),
            internal: r.internal,
            options: [
                (OPT_VNI.to_string(), r.vni.to_string()),
                (OPT_MTU.to_string(), r.mtu.to_string()),
                (OPT_MAX_HOSTS.to_string(), r.max_hosts.to_string()),
                (OPT_ENCRYPTED.to_string(), r.encrypted.to_string()),
            ]
            .into(),
            ipv6: r.subnet6.is_some(),
            pools6: r
                .subnet6
                .map(|s| PoolSpec {
                    subnet: Some(s.to_string()),
                    ..PoolSpec::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let mut trial = self.clone();
        if let Err(e) = trial.create_network(spec, id.clone(), r.created, host) {
            return Err(ModelError::Conflict(format!("cluster network {} refused: {e}", r.name)));
        }
        let ipam6 = trial.networks.remove(&id).map(|n| n.ipam6).unwrap_or_default();
        let used: BTreeSet<u32> = self.networks.values().map(|n| n.switch_id).collect();
        let switch_id = (1..).find(|i| !used.contains(i)).expect("fewer than u32::MAX networks");
        let net = Network {
            id: id.clone(),
            name: r.name.clone(),
            driver: Driver::Overlay,
            created: r.created,
            ipam: Some(NetIpam {
                subnet: r.subnet,
                ip_range: None,
                gateway: r.gateway,
            }),
            ipam6,
            aux_addresses: BTreeMap::new(),
            internal: r.internal,
            labels: BTreeMap::new(),
            options: std::iter::once((OPT_VXLANID_LIST.to_string(), r.vni.to_string()))
                .chain(r.encrypted.then(|| (OPT_ENCRYPTED.to_string(), String::new())))
                .collect(),
            builtin: false,
            switch_id,
            bridge_name: Some(format!("sw-{}", id.short())),
            mtu: r.mtu,
            mac_aging: DEFAULT_MAC_AGING,
            mac_limit: DEFAULT_MAC_LIMIT,
            port_security: true,
            bum_pps: switch::DEFAULT_BUM_PPS,
            vni: Some(r.vni),
            vteps: Vec::new(),
            encrypted: r.encrypted,
            max_hosts: Some(r.max_hosts),
            space: r
                .claimed
                .then(|| crate::cluster::space::Space::new(space_size(&r.subnet))),
            parent: None,
            macvlan_mode: None,
            host_access: false,
            vlan: None,
            native_path: None,
            vlan_link_created: false,
        };
        self.networks.insert(id, net);
        Ok(true)
    }

    /// Removes a network with no endpoints.
    ///
    /// # Errors
    /// Unknown network, a built-in network, or endpoints still attached (named).
    pub fn remove_network(&mut self, key: &str) -> Result<Network, ModelError> {
        let net = self.network(key)?;
        if net.builtin {
            return Err(ModelError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            )));
        }
        if let Some((d, _)) = self.docker_network_of(&net.id) {
            return Err(ModelError::Conflict(format!(
                "network {} is Docker network {}: remove it with docker network rm",
                net.name,
                d.short()
            )));
        }
        let users: Vec<&str> = self
            .endpoints_of_network(&net.id)
            .filter_map(|e| self.sandboxes.get(&e.sandbox).map(|s| s.name.as_str()))
            .collect();
        let mut remote: Vec<String> = self
            .remote
            .get(&net.id)
            .into_iter()
            .flat_map(|r| r.values().map(|e| format!("{} (on {})", e.sandbox, e.host)))
            .collect();
        remote.sort();
        let users: Vec<String> = users.iter().map(|u| u.to_string()).chain(remote).collect();
        if !users.is_empty() {
            return Err(ModelError::Conflict(format!(
                "network {} has active endpoints: {}; disconnect or remove them first",
                net.name,
                users.join(", ")
            )));
        }
        let id = net.id.clone();
        Ok(self.networks.remove(&id).expect("found above"))
    }

    /// Removes every user-defined network without endpoints that `filters` admit; returns them.
    pub fn prune_networks(&mut self, filters: &crate::request::PruneFilters) -> Vec<Network> {
        let unused: Vec<Id> = self
            .networks
            .values()
            .filter(|n| !n.builtin && self.endpoints_of_network(&n.id).next().is_none())
            .filter(|n| filters.admit(n.created, &n.labels))
            .filter(|n| self.remote.get(&n.id).is_none_or(|r| r.is_empty()))
            .map(|n| n.id.clone())
            .collect();
        unused.iter().filter_map(|id| self.networks.remove(id)).collect()
    }
}

/// What an IPv6-only network (`--ipv4=false`) may not be: without IPv6, given an IPv4
/// address, or an overlay (whose IPv6 addresses are its IPv4 addresses' twins).
fn check_ipv6_only(spec: &NetworkSpec, driver: Driver) -> Result<(), ModelError> {
    if !spec.ipv6 {
        return Err(invalid("a network without IPv4 needs IPv6: add --ipv6 to --ipv4=false"));
    }
    if let Some(v4) = [&spec.subnet, &spec.gateway, &spec.ip_range]
        .into_iter()
        .flatten()
        .next()
    {
        return Err(invalid(format!(
            "{v4} is IPv4, but IPv4 is off on the network (--ipv4=false): give IPv6 subnets alone"
        )));
    }
    if driver == Driver::Overlay {
        return Err(invalid(
            "an overlay network needs IPv4 (--ipv4=false is refused): each endpoint's IPv6 address is its IPv4 address's twin",
        ));
    }
    Ok(())
}

/// Parses a VTEP address: `IP`, `IPv4:PORT` or `[IPv6]:PORT`, a unicast address (IPv6 ones
/// neither link-local, which needs an interface, nor v4-mapped: give the IPv4 address).
fn parse_vtep(addr: &str, default_port: u16) -> Result<SocketAddr, ModelError> {
    let bad = || {
        invalid(format!(
            "invalid VTEP {addr:?}: expected a unicast IPv4 or IPv6 address, optionally with a port (10.0.0.2:4789, [2001:db8::2]:4789)"
        ))
    };
    let a = match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, default_port),
        Err(_) => addr.parse::<SocketAddr>().map_err(|_| bad())?,
    };
    let unicast = match a.ip() {
        std::net::IpAddr::V4(ip) => !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()),
        std::net::IpAddr::V6(ip) => {
            !(ip.is_unspecified() || ip.is_multicast() || ip.is_unicast_link_local() || ip.to_ipv4_mapped().is_some())
        }
    };
    if a.port() == 0 || !unicast {
        return Err(bad());
    }
    Ok(a)
}

struct Options {
    bridge_name: Option<String>,
    mtu: Option<u16>,
    mac_aging: Option<Duration>,
    mac_limit: Option<u32>,
    port_security: bool,
    bum_pps: Option<u32>,
    vni: Option<u32>,
    max_hosts: Option<u32>,
    parent: Option<String>,
    macvlan_mode: Option<String>,
    host_access: bool,
    vlan: Option<u16>,
    encrypted: bool,
}

/// Ranges no network's subnet may touch, and what they are.
const RESERVED: [(&str, &str); 4] = [
    ("0.0.0.0/8", "this network"),
    ("127.0.0.0/8", "loopback"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

/// The `--ip-range` given for `subnet` (either family): a prefix inside it.
fn plan_range<A: crate::cidr::Family>(
    subnet: crate::cidr::Cidr<A>,
    range: Option<&str>,
) -> Result<Option<crate::cidr::Cidr<A>>, ModelError> {
    let Some(r) = range else { return Ok(None) };
    let r: crate::cidr::Cidr<A> = r
        .parse()
        .map_err(|e: crate::cidr::CidrError| invalid(e.to_string().replace("subnet", "ip-range")))?;
    if !subnet.covers(&r) {
        return Err(invalid(format!(
            "invalid ip-range {r}: it must lie inside the subnet {subnet}"
        )));
    }
    Ok(Some(r))
}

/// The most IPv6 subnets one network holds.
pub const MAX_SUBNETS6: usize = 16;

/// The address `offset` into `subnet`.
pub(super) fn offset6(subnet: Ipv6Cidr, offset: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + u128::from(offset))
}

/// IPv6 ranges no network may use (RFC 4291, RFC 6890).
const RESERVED6: [(&str, &str); 5] = [
    ("::/127", "the unspecified and loopback addresses"),
    ("::ffff:0:0/96", "IPv4-mapped addresses"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "deprecated site-local"),
    ("ff00::/8", "multicast"),
];

fn boolean(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// How many addresses a subnet's claims cover: all of them (offsets from its first address).
pub fn space_size(subnet: &Ipv4Cidr) -> u32 {
    u32::try_from(subnet.size()).unwrap_or(u32::MAX)
}

/// Most auxiliary addresses a network holds.
pub const MAX_AUX_ADDRESSES: usize = 256;

/// The auxiliary addresses of `spec`'s pools, each a host address of its own pool's subnet
/// that is not the gateway, under a name of its own. An overlay network takes none: its
/// addresses are dealt between hosts.
fn plan_aux(
    spec: &NetworkSpec,
    driver: Driver,
    ipam: Option<&NetIpam>,
    ipam6: &[NetIpam6],
) -> Result<BTreeMap<String, IpAddr>, ModelError> {
    // An automatic subnet holds no address given before it was picked.
    let pool4 = ipam
        .filter(|_| spec.subnet.is_some())
        .map(|i| (i.subnet, [i.subnet.network(), i.subnet.broadcast(), i.gateway]));
    let v4 = (
        spec.subnet.clone().unwrap_or_default(),
        &spec.aux_addresses,
        pool4,
        None,
    );
    // A pool's planned subnet is the one its own subnet parses as.
    let v6 = spec.pools6.iter().map(|p| {
        let planned = p
            .subnet
            .as_deref()
            .and_then(|s| s.parse::<Ipv6Cidr>().ok())
            .and_then(|s| ipam6.iter().find(|i| i.subnet == s));
        let reserved = planned.map(|i| (i.subnet, [i.subnet.network(), i.gateway]));
        (p.subnet.clone().unwrap_or_default(), &p.aux_addresses, None, reserved)
    });
    let given = std::iter::once(v4).chain(v6);
    let mut aux = BTreeMap::new();
    for (subnet, names, pool4, pool6) in given {
        for (name, ip) in names {
            let bad = |what: String| invalid(format!("invalid aux-address {name}={ip}: {what}"));
            if driver == Driver::Overlay {
                return Err(bad(
                    "an overlay network takes no auxiliary addresses: its addresses are dealt between hosts".into(),
                ));
            }
            let ok = !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control);
            if !ok {
                return Err(bad("a name is 1-64 characters, none of them control characters".into()));
            }
            let addr: IpAddr = ip
                .parse()
                .map_err(|_| bad("expected NAME=IP with an IPv4 or IPv6 address".into()))?;
            let (inside, reserved) = match (addr, pool4, pool6) {
                (IpAddr::V4(a), Some((s, r)), _) => (s.contains(a), r.contains(&a)),
                (IpAddr::V6(a), _, Some((s, r))) => (s.contains(a), r.contains(&a)),
                _ => (false, false),
            };
            if !inside {
                return Err(bad(format!(
                    "no matching subnet: it must lie in the subnet given with it ({})",
                    if subnet.is_empty() { "none" } else { &subnet }
                )));
            }
            if reserved {
                return Err(bad(format!(
                    "it is the subnet's network, broadcast or gateway address ({subnet})"
                )));
            }
            if let Some((other, _)) = aux.iter().find(|(_, a)| **a == addr) {
                return Err(bad(format!("the address is auxiliary address {other} already")));
            }
            if aux.insert(name.clone(), addr).is_some() {
                return Err(bad("the name is given twice".into()));
            }
            if aux.len() > MAX_AUX_ADDRESSES {
                return Err(invalid(format!(
                    "more than {MAX_AUX_ADDRESSES} auxiliary addresses given: a network takes at most {MAX_AUX_ADDRESSES}"
                )));
            }
        }
    }
    Ok(aux)
}

/// `v` as a number within `r`.
fn ranged<T: std::str::FromStr + PartialOrd>(v: &str, r: std::ops::RangeInclusive<T>) -> Option<T> {
    v.parse().ok().filter(|n| r.contains(n))
}

/// Why a macvlan parent was refused.
enum ParentError {
    /// Not an interface name, or IFACE.VLAN: what is accepted.
    Form(&'static str),
    /// A VLAN ID outside 1-4094.
    VlanId(u16),
}

/// A macvlan parent, `IFACE` or `IFACE.VLAN`: its VLAN, if any.
fn parse_parent(v: &str) -> Result<Option<u16>, ParentError> {
    let (iface, vlan) = match v.split_once('.') {
        Some((iface, id)) => {
            let id: u16 = id.parse().map_err(|_| {
                ParentError::Form("an interface name, or IFACE.VLAN with a VLAN ID of 1-4094 (eth0.10)")
            })?;
            if !(1..=4094).contains(&id) {
                return Err(ParentError::VlanId(id));
            }
            (iface, Some(id))
        }
        None => (v, None),
    };
    let ok =
        !iface.is_empty() && v.len() <= 15 && iface.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if !ok {
        return Err(ParentError::Form(
            "an interface name of 1-15 characters from [a-zA-Z0-9_-], with .VLAN for a VLAN",
        ));
    }
    Ok(vlan)
}

fn parse_options(opts: &BTreeMap<String, String>, driver: Driver) -> Result<Options, ModelError> {
    let mut o = Options {
        bridge_name: None,
        mtu: None,
        mac_aging: None,
        mac_limit: None,
        port_security: true,
        bum_pps: None,
        vni: None,
        max_hosts: None,
        parent: None,
        macvlan_mode: None,
        host_access: false,
        vlan: None,
        encrypted: false,
    };
    let accepted: Vec<&str> = match driver {
        Driver::Overlay => ACCEPTED_OPTIONS.iter().chain(&OVERLAY_ONLY_OPTIONS).copied().collect(),
        Driver::Macvlan => ACCEPTED_MACVLAN_OPTIONS.to_vec(),
        _ => ACCEPTED_OPTIONS.iter().chain(&[OPT_ICC]).copied().collect(),
    };
    for (k, v) in opts {
        let bad = |what: &str| invalid(format!("invalid value {v:?} for option {k}: {what}"));
        match k.as_str() {
            OPT_BRIDGE_NAME if driver != Driver::Macvlan => {
                let ok = !v.is_empty()
                    && v.len() <= 15
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if !ok {
                    return Err(bad("an interface name of 1-15 characters from [a-zA-Z0-9_.-]"));
                }
                o.bridge_name = Some(v.clone());
            }
            OPT_MTU => o.mtu = Some(ranged(v, 68..=65535).ok_or_else(|| bad("an MTU of 68-65535"))?),
            OPT_MAC_AGING if driver != Driver::Macvlan => {
                let s = ranged(v, 1..=1_000_000).ok_or_else(|| bad("seconds, 1-1000000"))?;
                o.mac_aging = Some(Duration::from_secs(s));
            }
            OPT_MAC_LIMIT if driver != Driver::Macvlan => {
                o.mac_limit = Some(ranged(v, 1..=65536).ok_or_else(|| bad("a count of 1-65536"))?)
            }
            OPT_PORT_SECURITY if driver != Driver::Macvlan => {
                o.port_security = boolean(v).ok_or_else(|| bad("true or false"))?
            }
            OPT_IP_MASQUERADE if driver != Driver::Macvlan => {
                boolean(v).ok_or_else(|| bad("true or false"))?;
            }
            OPT_ICC if driver == Driver::Bridge => {
                boolean(v).ok_or_else(|| bad("true or false"))?;
            }
            OPT_HOST_BINDING_IPV4 if driver != Driver::Macvlan => {
                let ok = v
                    .parse::<Ipv4Addr>()
                    .is_ok_and(|ip| !ip.is_multicast() && !ip.is_broadcast());
                if !ok {
                    return Err(bad("a unicast IPv4 address of the host, or 0.0.0.0 for all"));
                }
            }
            OPT_BUM_PPS if driver != Driver::Macvlan => {
                o.bum_pps =
                    Some(ranged(v, 0..=10_000_000).ok_or_else(|| bad("frames per second, 0-10000000 (0: no limit)"))?)
            }
            OPT_PARENT if driver == Driver::Macvlan => {
                o.vlan = parse_parent(v).map_err(|what| match what {
                    ParentError::Form(what) => bad(what),
                    ParentError::VlanId(id) => {
                        invalid(format!("invalid VLAN ID {id} in parent {v:?}: a VLAN ID is 1-4094"))
                    }
                })?;
                o.parent = Some(v.clone());
            }
            OPT_HOST_ACCESS if driver == Driver::Macvlan => {
                o.host_access = boolean(v).ok_or_else(|| bad("true or false"))?;
            }
            OPT_MACVLAN_MODE if driver == Driver::Macvlan => {
                if !["bridge", "private", "vepa", "passthru"].contains(&v.as_str()) {
                    return Err(bad("one of bridge, private, vepa, passthru"));
                }
                o.macvlan_mode = Some(v.clone());
            }
            OPT_ENCRYPTED if driver == Driver::Overlay => {
                // Docker's `--opt encrypted` gives it no value.
                o.encrypted = v.is_empty() || boolean(v).ok_or_else(|| bad("true, false, or no value (true)"))?;
            }
            OPT_MAX_HOSTS if driver == Driver::Overlay => {
                o.max_hosts = Some(ranged(v, 1..=65536).ok_or_else(|| bad("a count of 1-65536"))?)
            }
            OPT_VNI | OPT_VXLANID_LIST if driver == Driver::Overlay => {
                let n = ranged(v, 1..=overlay::Vni::MAX).ok_or_else(|| bad("a VNI of 1-16777215"))?;
                if o.vni.is_some_and(|x| x != n) {
                    return Err(bad("a VNI given once"));
                }
                o.vni = Some(n);
            }
            other => {
                return Err(invalid(format!(
                    "unknown option {other:?} for {} {} network: accepted options are {}",
                    if driver == Driver::Overlay { "an" } else { "a" },
                    driver.as_str(),
                    accepted.join(", ")
                )))
            }
        }
    }
    Ok(o)
}
