//! Sandbox operations of the model: create (modes, links, published ports), connect,
//! disconnect, remove.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::SystemTime;

use super::*;
use crate::error::ModelError;
use crate::ids::Id;
use crate::ipam;
use crate::ports::{self, PortBinding, PortRequest, Proto};

impl State {
    /// Creates a sandbox (and, in bridge mode, its `eth0` endpoint) and returns its ID.
    ///
    /// # Errors
    /// Invalid or taken name, unknown network or sandbox, options that conflict with the
    /// mode, or any endpoint error of [`State::connect`].
    pub fn create_sandbox(
        &mut self,
        spec: SandboxSpec,
        id: Id,
        endpoint_id: Id,
        netns_dir: &Path,
        now: SystemTime,
    ) -> Result<Id, ModelError> {
        self.fresh_ids(&[&id, &endpoint_id])?;
        check_name("sandbox", &spec.name)?;
        if self.sandboxes.values().any(|s| s.name == spec.name) {
            return Err(ModelError::Conflict(format!(
                "sandbox name {:?} is already in use",
                spec.name
            )));
        }
        let (mode, net) = self.resolve_mode(&spec.network)?;
        if !matches!(mode, SandboxMode::Bridge) {
            let conflicting = [
                (spec.ip.is_some(), "--ip"),
                (spec.mac.is_some(), "--mac"),
                (!spec.aliases.is_empty(), "--alias"),
            ];
            if let Some((_, flag)) = conflicting.iter().find(|(set, _)| *set) {
                return Err(invalid(format!(
                    "conflicting options: {flag} cannot be used with network mode {:?}",
                    spec.network
                )));
            }
        }
        if !spec.port_kind.is_empty() && !matches!(mode, SandboxMode::Bridge) {
            return Err(invalid(format!(
                "conflicting options: --port-kind cannot be used with network mode {:?}",
                spec.network
            )));
        }
        if spec.netns.is_some() && matches!(mode, SandboxMode::Host | SandboxMode::Container(_)) {
            return Err(invalid(format!(
                "conflicting options: --netns cannot be used with network mode {:?}",
                spec.network
            )));
        }
        if spec.ifname.is_some() && !matches!(mode, SandboxMode::Bridge) {
            return Err(invalid(format!(
                "conflicting options: an interface name cannot be given with network mode {:?}",
                spec.network
            )));
        }
        for k in spec.labels.keys() {
            if k.is_empty() {
                return Err(invalid("invalid label: the key of K=V cannot be empty"));
            }
        }
        // Links are the default bridge's legacy ones, or a user-defined network's endpoint's.
        let on_default = net.as_ref().is_some_and(|n| self.networks[n].builtin);
        if !spec.links.is_empty() && mode != SandboxMode::Bridge {
            return Err(invalid(format!(
                "conflicting options: --link cannot be used with network mode {:?}",
                spec.network
            )));
        }
        let links = if on_default {
            self.resolve_links(&spec.links)?
        } else {
            Vec::new()
        };
        let (ports, exposed) = self.plan_ports(&spec, &mode, net.as_ref())?;
        let (dns, extra_hosts) = parse_resolver_settings(&spec)?;
        if (!dns.is_empty() || !extra_hosts.is_empty()) && mode != SandboxMode::Bridge {
            return Err(invalid(format!(
                "conflicting options: --dns, --dns-search, --dns-option and --add-host write the sandbox's own /etc files, which network mode {:?} does not have",
                spec.network
            )));
        }
        let sandbox = Sandbox {
            id: id.clone(),
            name: spec.name.clone(),
            mode: mode.clone(),
            created: now,
            netns: netns_dir.join(&spec.name),
            adopted: spec.netns,
            links,
            ports,
            exposed,
            labels: spec.labels,
            dns,
            extra_hosts,
        };
        // attach checks everything before it changes anything: when it refuses, taking the
        // sandbox out again leaves the state as it was (without copying the whole state).
        self.sandboxes.insert(id.clone(), sandbox);
        if let Some(net) = net {
            let cs = ConnectSpec {
                ip: spec.ip,
                ip6: spec.ip6,
                aliases: spec.aliases,
                mac: spec.mac,
                port_kind: spec.port_kind,
                links: if on_default { Vec::new() } else { spec.links },
                driver_opts: BTreeMap::new(),
                ifname: spec.ifname,
            };
            if let Err(e) = self.attach(&net, &id, cs, endpoint_id) {
                self.sandboxes.remove(&id);
                return Err(e);
            }
        }
        Ok(id)
    }

    /// The address `host-gateway` stands for in `sb`'s hosts file: the gateway of its first
    /// network with addresses (the host's own address there), IPv4 first.
    pub fn host_gateway(&self, sb: &Sandbox) -> Option<IpAddr> {
        let sb = self.namespace_owner(sb);
        self.endpoints_of_sandbox(&sb.id).iter().find_map(|e| {
            let net = self.networks.get(&e.network)?;
            match (e.ip, e.ip6) {
                (Some(_), _) => net.ipam.map(|i| i.gateway.into()),
                (None, Some(ip6)) => net.ipam6_of(ip6).map(|p| p.gateway.into()),
                (None, None) => None,
            }
        })
    }

    fn resolve_links(&self, links: &[String]) -> Result<Vec<Link>, ModelError> {
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let default = self.network(DEFAULT_BRIDGE)?;
        links
            .iter()
            .map(|l| {
                let (other, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
                check_name("link alias", alias)?;
                let o = self.sandbox(other)?;
                if !self
                    .endpoints_of_network(&default.id)
                    .any(|e| e.sandbox == o.id && e.ip.is_some())
                {
                    return Err(invalid(format!(
                        "cannot link to {other}: it is not on the default bridge network"
                    )));
                }
                Ok(Link {
                    sandbox: o.id.clone(),
                    alias: alias.to_string(),
                })
            })
            .collect()
    }

    /// The links of an endpoint of `sb` on a user-defined network, `OTHER[:ALIAS]`: another
    /// sandbox, known to this one on that network by its alias (its name when none is given).
    fn endpoint_links(&self, links: &[String], sb: &Id) -> Result<Vec<Link>, ModelError> {
        if links.len() > MAX_LINKS {
            return Err(invalid(format!(
                "{} links given: an endpoint takes at most {MAX_LINKS}",
                links.len()
            )));
        }
        let mut out: Vec<Link> = Vec::with_capacity(links.len());
        for l in links {
            let (other, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            check_name("link alias", alias)?;
            let o = self.sandbox(other)?;
            if &o.id == sb {
                return Err(invalid(format!("cannot link sandbox {other} to itself")));
            }
            if out.iter().any(|x| x.alias.eq_ignore_ascii_case(alias)) {
                return Err(invalid(format!("link alias {alias} is given twice")));
            }
            out.push(Link {
                sandbox: o.id.clone(),
                alias: alias.to_string(),
            });
        }
        Ok(out)
    }

    /// The published ports of `spec` (`-p`, and with `-P` every exposed port not published
    /// otherwise, on a host port chosen), and the sandbox's exposed ports (`--expose`, and
    /// the sandbox's side of every `-p`), as Docker's.
    fn plan_ports(
        &self,
        spec: &SandboxSpec,
        mode: &SandboxMode,
        net: Option<&Id>,
    ) -> Result<(Vec<PortBinding>, Vec<ExposedPort>), ModelError> {
        let too_many = || {
            invalid(format!(
                "too many ports: a sandbox exposes and publishes at most {MAX_PORTS} ports"
            ))
        };
        let mut exposed: Vec<ExposedPort> = Vec::new();
        for e in &spec.expose {
            for p in ports::parse_expose(e).map_err(invalid)? {
                if !exposed.contains(&p) {
                    exposed.push(p);
                }
                if exposed.len() > MAX_PORTS {
                    return Err(too_many());
                }
            }
        }
        if spec.publish.is_empty() && (!spec.publish_all || exposed.is_empty()) {
            return Ok((Vec::new(), exposed));
        }
        let network = &spec.network;
        if let Some(n) = net.and_then(|id| self.networks.get(id)).filter(|n| n.internal) {
            return Err(invalid(format!(
                "ports cannot be published from internal network {}: it has no way in or out",
                n.name
            )));
        }
        if *mode != SandboxMode::Bridge {
            return Err(invalid(format!(
                "conflicting options: -p cannot be used with network mode {network:?}: publish ports on the sandbox that owns the namespace"
            )));
        }
        // A network's host_binding_ipv4 is where a port without its own address binds.
        let default_ip = net
            .and_then(|id| self.networks.get(id))
            .and_then(Network::host_binding_ipv4)
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4);
        let mut wanted: Vec<PortRequest> = Vec::new();
        for p in &spec.publish {
            wanted.extend(ports::parse_request(p, default_ip).map_err(invalid)?);
            if wanted.len() > MAX_PORTS {
                return Err(too_many());
            }
        }
        for r in &wanted {
            let p = (r.binding.container_port, r.binding.proto);
            if !exposed.contains(&p) {
                exposed.push(p);
            }
        }
        if exposed.len() > MAX_PORTS {
            return Err(too_many());
        }
        if spec.publish_all {
            let published: Vec<ExposedPort> = wanted
                .iter()
                .map(|r| (r.binding.container_port, r.binding.proto))
                .collect();
            for (port, proto) in exposed.iter().filter(|p| !published.contains(p)) {
                wanted.push(PortRequest {
                    binding: PortBinding {
                        host_ip: default_ip,
                        host_port: 0,
                        container_port: *port,
                        proto: *proto,
                    },
                    host_port_end: 0,
                });
            }
        }
        for r in &wanted {
            let b = &r.binding;
            if b.proto == Proto::Sctp && b.host_ip.is_loopback() {
                return Err(invalid(format!(
                    "invalid port publication {r}: SCTP ports are published through the host's firewall alone, which a loopback address never passes; publish on another address"
                )));
            }
        }
        let free = spec.host_port_free.unwrap_or(|_| true);
        let planned = self.choose_host_ports(&wanted, free)?;
        for (i, b) in planned.iter().enumerate() {
            self.check_host_port(b, &planned[..i], None)?;
        }
        Ok((planned, exposed))
    }

    /// Requests as bindings: one that names its host port keeps it (the caller checks it);
    /// one that leaves it open takes the first port of its range
    /// ([`PortRequest::host_ports`]) that no binding before it and no sandbox publishes on
    /// any address, and that `free` says the host lets switchd bind.
    ///
    /// # Errors
    /// A range with no such port, naming the range.
    pub fn choose_host_ports(
        &self,
        wanted: &[PortRequest],
        free: impl Fn(&PortBinding) -> bool,
    ) -> Result<Vec<PortBinding>, ModelError> {
        // Ports in use by protocol, whatever the address: one look-up a candidate, however
        // many ports the host publishes.
        let mut taken: std::collections::HashSet<(Proto, u16)> = self
            .sandboxes
            .values()
            .flat_map(|s| s.ports.iter().map(|p| (p.proto, p.host_port)))
            .collect();
        let mut out: Vec<PortBinding> = Vec::with_capacity(wanted.len());
        for w in wanted {
            if let Some(b) = w.fixed() {
                taken.insert((b.proto, b.host_port));
                out.push(b);
                continue;
            }
            let range = w.host_ports();
            let chosen = range
                .clone()
                .filter(|p| !taken.contains(&(w.binding.proto, *p)))
                .map(|p| PortBinding {
                    host_port: p,
                    ..w.binding
                })
                .find(|c| free(c))
                .ok_or_else(|| {
                    ModelError::Conflict(format!(
                        "no free host port for {}/{} in {}-{}",
                        w.binding.container_port,
                        w.binding.proto.as_str(),
                        range.start(),
                        range.end()
                    ))
                })?;
            taken.insert((chosen.proto, chosen.host_port));
            out.push(chosen);
        }
        Ok(out)
    }

    /// Refuses binding `b` when one of `earlier` (of the same request) or a published port of
    /// a sandbox other than `except` claims its host socket.
    pub(super) fn check_host_port(
        &self,
        b: &PortBinding,
        earlier: &[PortBinding],
        except: Option<&Id>,
    ) -> Result<(), ModelError> {
        let what = format!(
            "host port {}/{}",
            std::net::SocketAddr::new(b.host_ip, b.host_port),
            b.proto.as_str()
        );
        if let Some(p) = earlier.iter().find(|p| p.clashes(b)) {
            return Err(invalid(format!("{what} is given twice ({p})")));
        }
        if let Some((owner, p)) = self
            .sandboxes
            .values()
            .filter(|s| Some(&s.id) != except)
            .find_map(|s| s.ports.iter().find(|p| p.clashes(b)).map(|p| (s, p)))
        {
            return Err(ModelError::Conflict(format!(
                "{what} is already published by sandbox {} ({p})",
                owner.name
            )));
        }
        Ok(())
    }

    /// The interface published ports of `sb` are forwarded to: its first with an IPv4
    /// address, or else (IPv6-only networks) its first with an IPv6 one.
    fn port_endpoint<'a>(&'a self, sb: &'a Sandbox) -> Option<&'a Endpoint> {
        let eps = self.endpoints_of_sandbox(&sb.id);
        let first = eps.iter().find(|e| e.ip.is_some());
        first.or_else(|| eps.iter().find(|e| e.ip6.is_some())).copied()
    }

    /// The IPv4 address published ports of `sb` are forwarded to from IPv4 clients (none on
    /// an IPv6-only sandbox, whose IPv4 clients the userland proxy carries over).
    pub fn port_target(&self, sb: &Sandbox) -> Option<Ipv4Addr> {
        self.port_endpoint(sb)?.ip
    }

    /// The IPv6 address published ports of `sb` are forwarded to from IPv6 clients: the
    /// IPv6 address of the interface [`State::port_target`] picks, if it has one (else the
    /// userland proxy carries them to the IPv4 address).
    pub fn port_target6(&self, sb: &Sandbox) -> Option<Ipv6Addr> {
        self.port_endpoint(sb)?.ip6
    }

    /// Where the userland proxy carries a published port's connections: the IPv4 target, or
    /// an IPv6-only sandbox's IPv6 one.
    pub fn proxy_target(&self, sb: &Sandbox) -> Option<std::net::IpAddr> {
        let e = self.port_endpoint(sb)?;
        e.ip.map(Into::into).or(e.ip6.map(Into::into))
    }

    /// The sandbox whose namespace `sb` uses (itself unless in `container:` mode).
    pub fn namespace_owner<'a>(&'a self, sb: &'a Sandbox) -> &'a Sandbox {
        match &sb.mode {
            SandboxMode::Container(root) => self.sandboxes.get(root).unwrap_or(sb),
            _ => sb,
        }
    }

    fn resolve_mode(&self, network: &str) -> Result<(SandboxMode, Option<Id>), ModelError> {
        if let Some(other) = network.strip_prefix("container:") {
            let mut target = self.sandbox(other)?;
            while let SandboxMode::Container(root) = &target.mode {
                target = self
                    .sandboxes
                    .get(root)
                    .ok_or_else(|| ModelError::SandboxNotFound(root.to_string()))?;
            }
            return Ok((SandboxMode::Container(target.id.clone()), None));
        }
        let net = self.network(if network.is_empty() { DEFAULT_BRIDGE } else { network })?;
        let mode = match net.driver {
            Driver::Bridge | Driver::Overlay | Driver::Macvlan => SandboxMode::Bridge,
            Driver::Host => SandboxMode::Host,
            Driver::Null => SandboxMode::None,
        };
        Ok((mode, Some(net.id.clone())))
    }

    /// Connects a bridge-mode sandbox to a bridge network with its next interface.
    ///
    /// # Errors
    /// Unknown network or sandbox, a sandbox that shares another namespace, a host or none
    /// network, an existing connection, or any address error.
    pub fn connect(&mut self, net: &str, sandbox: &str, spec: ConnectSpec, endpoint_id: Id) -> Result<Id, ModelError> {
        self.fresh_ids(&[&endpoint_id])?;
        let net = self.network(net)?;
        let sb = self.sandbox(sandbox)?;
        docker::refuse_docker_sandbox(sb, "connect")?;
        match (&sb.mode, net.driver) {
            (_, Driver::Host | Driver::Null) | (SandboxMode::Host | SandboxMode::None, _) => {
                return Err(ModelError::Forbidden(
                    "a sandbox cannot be connected to or disconnected from the host or none network".into(),
                ))
            }
            (SandboxMode::Container(_), _) => {
                return Err(ModelError::Forbidden(format!(
                    "sandbox {} shares the network namespace of another sandbox and cannot be connected to any other network",
                    sb.name
                )))
            }
            (SandboxMode::Bridge, Driver::Bridge | Driver::Overlay | Driver::Macvlan) => {}
        }
        let (net_id, sb_id) = (net.id.clone(), sb.id.clone());
        self.attach(&net_id, &sb_id, spec, endpoint_id)
    }

    pub(super) fn attach(
        &mut self,
        net_id: &Id,
        sb_id: &Id,
        spec: ConnectSpec,
        endpoint_id: Id,
    ) -> Result<Id, ModelError> {
        let net = &self.networks[net_id];
        let sb = &self.sandboxes[sb_id];
        if self.endpoints_of_network(net_id).any(|e| &e.sandbox == sb_id) {
            return Err(ModelError::Conflict(format!(
                "sandbox {} is already connected to network {}",
                sb.name, net.name
            )));
        }
        let bare = Endpoint {
            id: endpoint_id.clone(),
            network: net_id.clone(),
            sandbox: sb_id.clone(),
            ifname: None,
            mac: None,
            ip: None,
            ip6: None,
            aliases: vec![],
            port_kind: PortKind::Tap,
            default_route: None,
            handoff: false,
            links: Vec::new(),
        };
        if !net.has_addresses() {
            if spec.ip.is_some() || spec.ip6.is_some() {
                return Err(invalid(format!(
                    "network {} gives no addresses: --ip and --ip6 apply to bridge, overlay and macvlan networks",
                    net.name
                )));
            }
            // host and none networks: a membership record without an interface.
            self.endpoints.insert(endpoint_id.clone(), bare);
            return Ok(endpoint_id);
        }
        let is_default = net.builtin;
        // None: an IPv6-only network.
        let pool = self.address_pool(net)?;
        if let (None, Some(ip)) = (&pool, &spec.ip) {
            return Err(invalid(format!(
                "network {} has no IPv4 (--ipv4=false): --ip {ip} does not apply; give --ip6",
                net.name
            )));
        }
        let port_kind = PortKind::parse(&spec.port_kind)?;
        if port_kind == PortKind::Veth && net.driver == Driver::Macvlan {
            return Err(invalid(format!(
                "--port-kind does not apply to macvlan network {}: switchd chooses its interfaces (macvlan children, or TAP ports on userspace 802.1Q)",
                net.name
            )));
        }
        if port_kind == PortKind::Veth && net.driver == Driver::Overlay {
            return Err(invalid(format!(
                "--port-kind veth is not available on overlay network {} yet: use tap",
                net.name
            )));
        }
        for a in &spec.aliases {
            if is_default {
                return Err(invalid(
                    "network-scoped alias is supported only for sandboxes on user-defined networks",
                ));
            }
            check_name("alias", a)?;
        }
        if is_default && !spec.links.is_empty() {
            return Err(invalid(
                "links on network connect are supported only for user-defined networks; the default bridge takes --link at sandbox create",
            ));
        }
        let links = self.endpoint_links(&spec.links, sb_id)?;
        let ifname = match (spec.ifname, spec.driver_opts.get(OPT_ENDPOINT_IFNAME)) {
            (Some(a), Some(b)) if a != *b => {
                return Err(invalid(format!(
                    "conflicting options: interface {a} and driver option {OPT_ENDPOINT_IFNAME}={b}"
                )))
            }
            (a, b) => a.or_else(|| b.cloned()),
        };
        if let Some(k) = spec.driver_opts.keys().find(|k| k.as_str() != OPT_ENDPOINT_IFNAME) {
            return Err(invalid(format!(
                "unknown driver option {k:?} for an endpoint: accepted is {OPT_ENDPOINT_IFNAME}"
            )));
        }
        let (ip, ip6) = match &pool {
            Some(pool) if net.driver == Driver::Overlay && net.enable_ipv6() => {
                // The IPv6 address is the IPv4 one's twin: one address is asked for and checked.
                let wanted = overlay_wanted(net, spec.ip.as_deref(), spec.ip6.as_deref())?;
                let ip = self.endpoint_address(net_id, wanted.as_deref(), pool)?;
                (Some(ip), net.overlay_ip6(ip))
            }
            Some(pool) => {
                let ip = self.endpoint_address(net_id, spec.ip.as_deref(), pool)?;
                (Some(ip), self.endpoint_address6(net_id, spec.ip6.as_deref())?)
            }
            None => (None, self.endpoint_address6(net_id, spec.ip6.as_deref())?),
        };
        let mac = self.endpoint_mac(net_id, spec.mac.as_deref(), ip, &endpoint_id)?;
        let others = self.endpoints_of_sandbox(sb_id);
        let ifname = self.endpoint_ifname(sb_id, &others, ifname)?;
        // The first network a sandbox joins carries its default route, as Docker's.
        let default_route = !others.iter().any(|e| e.has_default_route());
        self.endpoints.insert(
            endpoint_id.clone(),
            Endpoint {
                ifname: Some(ifname),
                mac: Some(mac),
                ip,
                ip6,
                aliases: spec.aliases,
                port_kind,
                default_route: Some(default_route),
                links,
                ..bare
            },
        );
        Ok(endpoint_id)
    }

    /// The address of a new endpoint on `net_id`: `wanted` when it is free and may be held
    /// there, or the next free one of this host's pool.
    fn endpoint_address(&self, net_id: &Id, wanted: Option<&str>, pool: &Pool) -> Result<Ipv4Addr, ModelError> {
        let net = &self.networks[net_id];
        let remote = self.remote.get(net_id);
        // Who holds which address, here and on other hosts (a walk, not a copy: a network
        // of thousands of remote endpoints is walked once per new endpoint).
        let holders = || {
            self.endpoints_of_network(net_id)
                .filter_map(|e| Some((e.ip?, self.sandboxes.get(&e.sandbox).map_or("?", |s| s.name.as_str()))))
                .chain(remote.into_iter().flat_map(|r| r.values().map(|e| (e.ip, &*e.sandbox))))
                .chain(self.docker_held(net_id).map(|ip| (ip, "a Docker container")))
        };
        let Some(s) = wanted else {
            // Only addresses this host may hand out can be in its way.
            let used: BTreeSet<Ipv4Addr> = holders()
                .map(|(ip, _)| ip)
                .chain(net.host_access_address())
                .chain(net.aux_addresses.values().filter_map(|a| match a {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                }))
                .filter(|ip| pool.may_allocate(*ip))
                .collect();
            return pool.allocate(&used).ok_or_else(|| match net.space {
                // Other hosts may have addresses to give.
                Some(_) => ModelError::OutOfClaims {
                    network: net_id.clone(),
                    name: net.name.clone(),
                },
                None => ModelError::Conflict(format!("no available IPv4 addresses on network {}", net.name)),
            });
        };
        if net.builtin {
            return Err(invalid(
                "user-specified IP address is supported on user-defined networks only",
            ));
        }
        let ip: Ipv4Addr = s.parse().map_err(|_| {
            invalid(format!(
                "invalid IP address {s:?}: expected an IPv4 address like 192.168.0.10"
            ))
        })?;
        pool.check_static(ip).map_err(invalid)?;
        if let (Some(space), false) = (&net.space, pool.may_allocate(ip)) {
            let offset = u32::from(ip) - u32::from(pool.subnet.network());
            return Err(ModelError::OwnedElsewhere {
                network: net_id.clone(),
                name: net.name.clone(),
                ip,
                offset,
                owner: space.owner(offset).unwrap_or("no host yet").to_string(),
            });
        }
        if let Some(why) = net.reserved(ip.into()) {
            return Err(ModelError::Conflict(format!(
                "address {ip} is reserved {why} on network {}",
                net.name
            )));
        }
        if let Some((_, holder)) = holders().find(|(held, _)| *held == ip) {
            return Err(ModelError::Conflict(format!(
                "address {ip} is already in use on network {} by sandbox {holder}",
                net.name
            )));
        }
        Ok(ip)
    }

    /// The IPv6 address of a new endpoint on `net_id`: none when IPv6 is off; `wanted` when
    /// it is free and inside one of the network's IPv6 subnets; else the lowest free one of
    /// the first subnet with room.
    fn endpoint_address6(&self, net_id: &Id, wanted: Option<&str>) -> Result<Option<Ipv6Addr>, ModelError> {
        let net = &self.networks[net_id];
        if !net.enable_ipv6() {
            return match wanted {
                Some(s) => Err(invalid(format!(
                    "network {} has IPv6 off, so it cannot give {s}: --ip6 needs a network created with --ipv6",
                    net.name
                ))),
                None => Ok(None),
            };
        }
        let holders = || {
            self.endpoints_of_network(net_id)
                .filter_map(|e| Some((e.ip6?, self.sandboxes.get(&e.sandbox).map_or("?", |s| s.name.as_str()))))
                .chain(self.docker_held6(net_id).map(|ip| (ip, "a Docker container")))
        };
        let Some(s) = wanted else {
            let used: BTreeSet<Ipv6Addr> = holders()
                .map(|(ip, _)| ip)
                .chain(net.host_access_address6())
                .chain(net.aux_addresses.values().filter_map(|a| match a {
                    IpAddr::V6(a) => Some(*a),
                    IpAddr::V4(_) => None,
                }))
                .collect();
            return net
                .ipam6
                .iter()
                .find_map(|p| ipam::allocate6(p.subnet, p.ip_range, p.gateway, &used))
                .map(Some)
                .ok_or_else(|| ModelError::Conflict(format!("no available IPv6 addresses on network {}", net.name)));
        };
        if net.builtin {
            return Err(invalid(
                "user-specified IP address is supported on user-defined networks only",
            ));
        }
        let ip: Ipv6Addr = s.parse().map_err(|_| {
            invalid(format!(
                "invalid IPv6 address {s:?}: expected an IPv6 address like 2001:db8:1::10"
            ))
        })?;
        let Some(pool) = net.ipam6_of(ip) else {
            let subnets: Vec<String> = net.ipam6.iter().map(|p| p.subnet.to_string()).collect();
            return Err(invalid(format!(
                "invalid IPv6 address {ip}: it must lie inside a subnet of network {} ({})",
                net.name,
                subnets.join(", ")
            )));
        };
        if ip == pool.subnet.network() || ip == pool.gateway {
            return Err(invalid(format!(
                "invalid IPv6 address {ip}: it is the subnet-router anycast or the gateway address of {}",
                pool.subnet
            )));
        }
        if let Some(why) = net.reserved(ip.into()) {
            return Err(ModelError::Conflict(format!(
                "address {ip} is reserved {why} on network {}",
                net.name
            )));
        }
        if let Some((_, holder)) = holders().find(|(held, _)| *held == ip) {
            return Err(ModelError::Conflict(format!(
                "address {ip} is already in use on network {} by sandbox {holder}",
                net.name
            )));
        }
        Ok(Some(ip))
    }

    /// The MAC of a new endpoint `endpoint` of `net_id`: `wanted`, Docker's from its IPv4
    /// address `ip`, or, without one (an IPv6-only network), a locally administered one from
    /// the endpoint's random ID.
    fn endpoint_mac(
        &self,
        net_id: &Id,
        wanted: Option<&str>,
        ip: Option<Ipv4Addr>,
        endpoint: &Id,
    ) -> Result<MacAddr, ModelError> {
        let net = &self.networks[net_id];
        let mac = match wanted {
            Some(m) => {
                let mac: MacAddr = m
                    .parse()
                    .map_err(|e: switch::wire::ParseMacError| invalid(e.to_string()))?;
                if mac.is_multicast() || mac == MacAddr::ZERO {
                    return Err(invalid(format!(
                        "invalid MAC address {mac}: it must be a non-zero unicast address"
                    )));
                }
                mac
            }
            None => match ip {
                Some(ip) => docker_mac(ip),
                None => {
                    let b = endpoint.bytes();
                    MacAddr([0x02, b[0], b[1], b[2], b[3], b[4]])
                }
            },
        };
        if net.gateway_mac() == Some(mac) {
            return Err(ModelError::Conflict(format!(
                "MAC address {mac} is the gateway's on network {}: give a MAC address of no port of the network",
                net.name
            )));
        }
        if let Some(e) = self
            .remote
            .get(net_id)
            .and_then(|r| r.values().find(|e| e.mac == mac.0))
        {
            return Err(ModelError::Conflict(format!(
                "MAC address {mac} is already in use on network {} by sandbox {} on host {}",
                net.name, e.sandbox, e.host
            )));
        }
        if let Some(e) = self.endpoints_of_network(net_id).find(|e| e.mac == Some(mac)) {
            let holder = self.sandboxes.get(&e.sandbox).map_or("?", |s| s.name.as_str());
            return Err(ModelError::Conflict(format!(
                "MAC address {mac} is already in use on network {} by sandbox {holder}",
                net.name
            )));
        }
        Ok(mac)
    }

    /// The interface name of a new endpoint of `sb_id`, which has the endpoints `others`:
    /// `wanted` when free, else the first free `ethN`.
    fn endpoint_ifname(&self, sb_id: &Id, others: &[&Endpoint], wanted: Option<String>) -> Result<String, ModelError> {
        let taken: BTreeSet<&str> = others.iter().filter_map(|e| e.ifname.as_deref()).collect();
        let Some(name) = wanted else {
            return Ok((0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !taken.contains(n.as_str()))
                .expect("unbounded names"));
        };
        check_ifname(&name)?;
        if taken.contains(name.as_str()) {
            return Err(ModelError::Conflict(format!(
                "sandbox {} already has an interface named {name}",
                self.sandboxes[sb_id].name
            )));
        }
        Ok(name)
    }

    /// Disconnects a sandbox from a network; returns the removed endpoint.
    ///
    /// # Errors
    /// Unknown network or sandbox, host or none networks, or no such connection.
    pub fn disconnect(&mut self, net: &str, sandbox: &str) -> Result<Endpoint, ModelError> {
        let net = self.network(net)?;
        let sb = self.sandbox(sandbox)?;
        docker::refuse_docker_sandbox(sb, "disconnect")?;
        if matches!(net.driver, Driver::Host | Driver::Null) {
            return Err(ModelError::Forbidden(
                "a sandbox cannot be connected to or disconnected from the host or none network".into(),
            ));
        }
        let ep = self
            .endpoints_of_network(&net.id)
            .find(|e| e.sandbox == sb.id)
            .ok_or_else(|| {
                ModelError::Conflict(format!("sandbox {} is not connected to network {}", sb.name, net.name))
            })?;
        let id = ep.id.clone();
        Ok(self.endpoints.remove(&id).expect("found above"))
    }

    /// Removes a sandbox and its endpoints; returns them.
    ///
    /// # Errors
    /// Unknown sandbox, or other sandboxes still joined to its namespace.
    pub fn remove_sandbox(&mut self, key: &str) -> Result<(Sandbox, Vec<Endpoint>), ModelError> {
        let sb = self.sandbox(key)?;
        docker::refuse_docker_sandbox(sb, "remove")?;
        let joined: Vec<&str> = self
            .sandboxes
            .values()
            .filter(|s| s.mode == SandboxMode::Container(sb.id.clone()))
            .map(|s| s.name.as_str())
            .collect();
        if !joined.is_empty() {
            return Err(ModelError::Conflict(format!(
                "sandbox {} shares its network namespace with {}: remove them first",
                sb.name,
                joined.join(", ")
            )));
        }
        let id = sb.id.clone();
        let eps: Vec<Id> = self.endpoints_of_sandbox(&id).iter().map(|e| e.id.clone()).collect();
        let removed = eps.iter().filter_map(|e| self.endpoints.remove(e)).collect();
        Ok((self.sandboxes.remove(&id).expect("found above"), removed))
    }
}

/// The IPv4 address asked for on an overlay network with IPv6, whose endpoints hold the
/// IPv6 address at their IPv4 address's offset: `--ip`, or the twin of `--ip6`; both must be
/// twins.
fn overlay_wanted(net: &Network, ip: Option<&str>, ip6: Option<&str>) -> Result<Option<String>, ModelError> {
    let (Some(s), Some(ipam), Some(p)) = (ip6, net.ipam, net.ipam6.first()) else {
        return Ok(ip.map(String::from));
    };
    let v6: Ipv6Addr = s.parse().map_err(|_| {
        invalid(format!(
            "invalid IPv6 address {s:?}: expected an IPv6 address like 2001:db8:1::10"
        ))
    })?;
    let offset = u128::from(v6).wrapping_sub(u128::from(p.subnet.network()));
    let twin = u32::try_from(offset)
        .ok()
        .filter(|o| p.subnet.contains(v6) && u64::from(*o) < ipam.subnet.size())
        .map(|o| Ipv4Addr::from(u32::from(ipam.subnet.network()) + o));
    let Some(twin) = twin else {
        return Err(invalid(format!(
            "invalid IPv6 address {v6}: on overlay network {}, an endpoint's IPv6 address is its IPv4 address's twin in {}, at an offset inside {}",
            net.name, p.subnet, ipam.subnet
        )));
    };
    match ip {
        Some(given) if given.parse::<Ipv4Addr>().ok() != Some(twin) => Err(invalid(format!(
            "--ip {given} and --ip6 {v6} are not twins: on overlay network {}, --ip6 {v6} goes with --ip {twin}",
            net.name
        ))),
        _ => Ok(Some(twin.to_string())),
    }
}

/// The most entries each of `--dns`, `--dns-search`, `--dns-option` takes.
const MAX_RESOLVER_ENTRIES: usize = 16;
/// Most links an endpoint holds.
const MAX_LINKS: usize = 64;
/// The endpoint driver option naming the interface in the sandbox (Docker's).
pub const OPT_ENDPOINT_IFNAME: &str = "com.docker.network.endpoint.ifname";
/// Most ports a sandbox exposes, and most it publishes (each published one is a socket of
/// the userland proxy).
pub const MAX_PORTS: usize = 1024;
/// The most `--add-host` lines a sandbox takes.
const MAX_EXTRA_HOSTS: usize = 256;

/// A sandbox's `--dns`, `--dns-search`, `--dns-option` and `--add-host`, checked.
fn parse_resolver_settings(spec: &SandboxSpec) -> Result<(DnsConfig, Vec<ExtraHost>), ModelError> {
    for (flag, n, max) in [
        ("--dns", spec.dns.len(), MAX_RESOLVER_ENTRIES),
        ("--dns-search", spec.dns_search.len(), MAX_RESOLVER_ENTRIES),
        ("--dns-option", spec.dns_options.len(), MAX_RESOLVER_ENTRIES),
        ("--add-host", spec.add_hosts.len(), MAX_EXTRA_HOSTS),
    ] {
        if n > max {
            return Err(invalid(format!(
                "{n} values of {flag} given: a sandbox takes at most {max}"
            )));
        }
    }
    let servers = spec
        .dns
        .iter()
        .map(|s| {
            let ip: IpAddr = s
                .parse()
                .map_err(|_| invalid(format!("invalid --dns {s:?}: expected an IP address like 192.0.2.53")))?;
            if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
                return Err(invalid(format!(
                    "invalid --dns {ip}: give a resolver the host reaches (a loopback, unspecified or multicast address is none)"
                )));
            }
            Ok(ip)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for d in &spec.dns_search {
        if d != "." && !is_domain(d) {
            return Err(invalid(format!(
                "invalid --dns-search {d:?}: expected a domain name like example.com (or \".\" for none)"
            )));
        }
    }
    for o in &spec.dns_options {
        let ok = !o.is_empty() && o.len() <= 64 && o.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b));
        if !ok {
            return Err(invalid(format!(
                "invalid --dns-option {o:?}: expected a resolv.conf option like ndots:2, timeout:1 or rotate"
            )));
        }
    }
    let extra_hosts = spec
        .add_hosts
        .iter()
        .map(|h| {
            // NAME=IP, or NAME:IP (the first colon: an IPv6 address keeps its own).
            let (name, ip) = h
                .split_once('=')
                .or_else(|| h.split_once(':'))
                .ok_or_else(|| invalid(format!("invalid --add-host {h:?}: expected NAME:IP or NAME=IP")))?;
            if !is_domain(name) {
                return Err(invalid(format!("invalid --add-host {h:?}: {name:?} is no host name")));
            }
            let ip = match ip {
                "host-gateway" => None,
                ip => Some(ip.trim_matches(['[', ']']).parse::<IpAddr>().map_err(|_| {
                    invalid(format!(
                        "invalid --add-host {h:?}: {ip:?} is no IP address (nor host-gateway)"
                    ))
                })?),
            };
            Ok(ExtraHost {
                name: name.to_string(),
                ip,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dns = DnsConfig {
        servers,
        search: spec.dns_search.clone(),
        options: spec.dns_options.clone(),
    };
    Ok((dns, extra_hosts))
}

/// Whether `s` is a domain or host name: dot-separated labels of letters, digits, hyphens
/// and underscores, 1-63 bytes each, 253 in all.
fn is_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
