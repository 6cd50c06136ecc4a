//! Sandbox operations: namespaces, interfaces (TAP or veth), /etc files, published ports, create, remove, connect, disconnect.

use super::*;
use crate::ports::macvlan;

impl Daemon {
    /// Writes the sandbox's /etc/netns/NAME/{resolv.conf,hosts} for `state`; a file the
    /// sandbox should not have (host, none) is removed so it sees the host's.
    pub(super) fn write_files(&self, state: &State, sb: &Sandbox) -> io::Result<()> {
        if sb.labels.contains_key(model::LABEL_DOCKER_SANDBOX) {
            // Docker writes its containers' resolv.conf and hosts.
            return Ok(());
        }
        let dir = self.etc_dir.join(&sb.name);
        let ups: Vec<std::net::IpAddr> = self.dns.upstreams().iter().map(|a| a.ip()).collect();
        let files = [
            ("resolv.conf", control_plane::etc::resolv_conf(state, sb, &ups)),
            ("hosts", control_plane::etc::hosts(state, sb)),
        ];
        for (name, content) in files {
            let path = dir.join(name);
            match content {
                Some(c) => {
                    std::fs::create_dir_all(&dir)?;
                    let tmp = dir.join(format!(".{name}.tmp"));
                    std::fs::write(&tmp, c)?;
                    std::fs::rename(&tmp, &path)?;
                }
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                },
            }
        }
        Ok(())
    }

    /// Rewrites the files of `sb` and of every sandbox sharing its namespace, and points its
    /// published ports at its (possibly new) first address.
    pub(super) fn refresh_files(&self, state: &State, sb: &Id) {
        if let Some(s) = state.sandboxes.get(sb) {
            if let Err(e) = self.start_proxies(state, s) {
                tracing::warn!(sandbox = %s.name, "cannot publish ports again: {}", e.message());
            }
        }
        let owner = state.sandboxes.get(sb).map(|s| state.namespace_owner(s).id.clone());
        for s in state.sandboxes.values() {
            if Some(&state.namespace_owner(s).id) == owner.as_ref() {
                if let Err(e) = self.write_files(state, s) {
                    tracing::warn!(sandbox = %s.name, "cannot write /etc files: {e}");
                }
            }
        }
    }

    /// Opens the published ports of `sb` (none is open if one fails).
    pub(super) fn start_proxies(&self, state: &State, sb: &Sandbox) -> Result<(), OpError> {
        if sb.ports.is_empty() {
            return Ok(());
        }
        let Some(target) = state.proxy_target(sb) else {
            self.proxies.stop(&sb.id);
            return Ok(());
        };
        self.proxies.start(&sb.id, &sb.ports, target).map_err(|(b, e)| {
            let what = format!("{}/{}", SocketAddr::new(b.host_ip, b.host_port), b.proto.as_str());
            if e.kind() == io::ErrorKind::AddrInUse {
                OpError::Model(ModelError::Conflict(format!(
                    "host port {what} is already in use on this host by another program: choose another port"
                )))
            } else {
                OpError::Io(format!("cannot publish host port {what}: {e}"))
            }
        })
    }

    pub(super) fn remove_files(&self, sb: &Sandbox) {
        match std::fs::remove_dir_all(self.etc_dir.join(&sb.name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(sandbox = %sb.name, "cannot remove /etc files: {e}")
            }
            _ => {}
        }
    }

    /// Opens the endpoint's interface in the sandbox namespace (creating it configured, or
    /// re-attaching after a restart) and adds it to the switch with its static MAC.
    pub(super) fn attach_endpoint(
        &self,
        sb: &Sandbox,
        ep: &Endpoint,
        net: &Network,
    ) -> Result<Option<PortId>, OpError> {
        let ifname = ep.ifname.clone().expect("caller checked");
        // An IPv6-only network's endpoint has no IPv4 address, route or gateway.
        let addr = ep.ip.zip(net.ipam).map(|(ip, i)| (ip, i.subnet.prefix_len()));
        let default_gw = net.ipam.filter(|_| ep.has_default_route()).map(|i| i.gateway);
        let ipv6 = ep.ip6.map(|ip| {
            let pool = net.ipam6_of(ip);
            netdev::Ipv6Setup {
                addrs: vec![(ip, pool.map_or(128, |p| p.subnet.prefix_len()))],
                default_gw: pool.map(|p| p.gateway).filter(|_| ep.has_default_route()),
                loopback: true,
            }
        });
        let label = format!("{}/{ifname}", sb.name);
        if net.has_kernel_children() {
            // The kernel forwards: a macvlan child of the parent, no switch port.
            let spec = veth::VethSpec {
                host: String::new(),
                name: ifname,
                mac: ep.mac,
                addr,
                mtu: net.mtu,
                default_gw,
                ipv6: ipv6.clone(),
            };
            let parent = net.parent.as_deref().unwrap_or_default();
            let mode = net.macvlan_mode.as_deref().unwrap_or("bridge");
            let ns = match self.handoff_place(sb, ep).map_err(io_err(&label))? {
                // Handed over already: the kernel forwards, nothing to attach.
                Some(tap::Place::In(_)) => return Ok(None),
                Some(tap::Place::Here) | None if ep.handoff => &self.host_ns,
                _ => &sb.netns,
            };
            let spec = if ep.handoff { handoff_spec(spec) } else { spec };
            macvlan::open(ns, parent, mode, &spec).map_err(io_err(&label))?;
            return Ok(None);
        }
        // Every switched endpoint has a MAC from the model (its own or Docker's from its
        // address): port security holds the port to it.
        let mac = ep
            .mac
            .ok_or_else(|| OpError::Io(format!("{label}: the endpoint has no MAC address")))?;
        let (dev, kind) = match ep.port_kind {
            model::PortKind::Tap => {
                let spec = tap::TapSpec {
                    name: ifname.clone(),
                    mac: ep.mac,
                    addr,
                    mtu: net.mtu,
                    default_gw,
                    ipv6: ipv6.clone(),
                    offload: if net.driver == Driver::Overlay {
                        tap::Offload::Tcp { sealed: net.encrypted }
                    } else {
                        tap::Offload::All
                    },
                };
                let dev = match self.handoff_place(sb, ep).map_err(io_err(&label))? {
                    Some(tap::Place::In(ns)) => {
                        // In the container under the name Docker gave it: attach to that.
                        let name = netns::run_in(&ns, {
                            let mac = mac.0;
                            move || netdev::find_by_mac(mac)
                        })
                        .map_err(io_err(&label))?
                        .unwrap_or(ifname.clone());
                        tap::open(&tap::Place::In(ns), tap::TapSpec { name, ..spec })
                    }
                    Some(tap::Place::Here) => tap::open(&tap::Place::Here, handoff_tap(spec)),
                    None => tap::open(&tap::Place::In(sb.netns.clone()), spec),
                }
                .map_err(io_err(&label))?;
                (Device::Tap(dev), PortKind::Tap)
            }
            model::PortKind::Veth => {
                let host = veth::host_name(&ep.id.to_string());
                let spec = veth::VethSpec {
                    host: host.clone(),
                    name: ifname.clone(),
                    mac: ep.mac,
                    addr,
                    mtu: net.mtu,
                    default_gw,
                    ipv6,
                };
                let fd = veth::open(&sb.netns, &spec).map_err(io_err(&label))?;
                (Device::Packet { fd, ifname: host }, PortKind::Veth)
            }
        };
        let cfg = net.sandbox_port(NetworkId(net.switch_id), TAP_MAX_FRAME, mac, (ep.ip, ep.ip6));
        let added = self.dp.add_port(NewPort {
            dev,
            cfg,
            static_mac: Some(mac),
            kind,
            label: label.clone(),
        });
        added.map(Some).map_err(|e| {
            let _ = self.delete_interface(sb, ep, false);
            if e.kind() == io::ErrorKind::AddrInUse {
                OpError::Model(ModelError::Conflict(format!("sandbox {}: {e}", sb.name)))
            } else {
                OpError::Io(format!("{label}: {e}"))
            }
        })
    }

    /// Where a handed-over interface of `ep` is: still in switchd's namespace under its handoff
    /// name (`Here`: also when it is yet to be made), or in the sandbox under the name the
    /// runtime gave it (`In`); `None` for an interface switchd makes in the sandbox itself.
    fn handoff_place(&self, sb: &Sandbox, ep: &Endpoint) -> io::Result<Option<tap::Place>> {
        if !ep.handoff {
            return Ok(None);
        }
        let name = ep.ifname.clone().unwrap_or_default();
        if netdev::exists(&name) {
            return Ok(Some(tap::Place::Here));
        }
        let Some(mac) = ep.mac else {
            return Ok(Some(tap::Place::Here));
        };
        if !netns::is_namespace(&sb.netns) {
            return Ok(Some(tap::Place::Here));
        }
        let found = netns::run_in(&sb.netns, move || netdev::find_by_mac(mac.0))?;
        Ok(Some(match found {
            Some(_) => tap::Place::In(sb.netns.clone()),
            None => tap::Place::Here,
        }))
    }

    /// Removes a port from the switch and destroys its device.
    pub(super) fn remove_port(&self, port: PortId) -> io::Result<()> {
        match self.dp.remove_port(port)? {
            Device::Tap(dev) => tap::unpersist(&dev),
            Device::Packet { fd, ifname } => {
                drop(fd);
                veth::delete(&ifname)
            }
            Device::Uplink { .. } | Device::Vtep { .. } => Ok(()),
        }
    }

    /// Deletes an endpoint's interface by name, when no port holds it (`kernel_child`: a
    /// kernel macvlan child rather than a port of switchd's).
    pub(super) fn delete_interface(&self, sb: &Sandbox, ep: &Endpoint, kernel_child: bool) -> io::Result<()> {
        match (ep.port_kind, &ep.ifname) {
            // Still in switchd's namespace, or handed back there by the runtime; in the
            // container it goes with the namespace.
            (_, Some(ifname)) if ep.handoff => netdev::delete_link(ifname),
            (_, Some(ifname)) if kernel_child && netns::is_namespace(&sb.netns) => macvlan::delete(&sb.netns, ifname),
            (model::PortKind::Veth, Some(_)) => veth::delete(&veth::host_name(&ep.id.to_string())),
            (model::PortKind::Tap, Some(ifname)) if netns::is_namespace(&sb.netns) => {
                tap::delete_by_name(&sb.netns, ifname)
            }
            _ => Ok(()),
        }
    }

    pub(super) fn detach_endpoint(&self, inner: &mut Inner, sb: &Sandbox, ep: &Endpoint) {
        let Some(ifname) = &ep.ifname else { return };
        let res = match inner.endpoint_ports.remove(&ep.id) {
            Some(port) => self.remove_port(port),
            None => self.delete_endpoint_interface(&inner.state, sb, ep),
        };
        if let Err(e) = res {
            tracing::warn!(sandbox = %sb.name, interface = %ifname, "removing interface: {e}");
        }
    }

    /// `sandbox create`; on an overlay network whose addresses here are all in use, after
    /// asking other hosts for some.
    pub fn create_sandbox(&self, req: SandboxCreate) -> Result<CreateResponse, OpError> {
        self.with_addresses(|| self.create_sandbox_once(req.clone()))
    }

    fn create_sandbox_once(&self, req: SandboxCreate) -> Result<CreateResponse, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let spec = control_plane::model::SandboxSpec {
            host_port_free: Some(proxy::can_bind),
            ..req.into_spec()?
        };
        let id = next.create_sandbox(spec, random_id(), random_id(), &self.netns_dir, SystemTime::now())?;
        let sb = next.sandboxes[&id].clone();
        let endpoints: Vec<Endpoint> = next.endpoints_of_sandbox(&id).into_iter().cloned().collect();
        // A namespace of that name that is not switchd's is never taken, nor named in an
        // intent (whose recovery would remove it).
        namespace_free(&sb)?;
        // What this is about to make, on disk before any of it exists: a crash from here to
        // the commit leaves it for the next start to remove.
        let intent = Intent::CreateSandbox {
            sandbox: sb.clone(),
            endpoints: endpoints.clone(),
        };
        self.record_intent(&intent)?;
        if let Err(e) = self.make_namespace(&next, &sb) {
            self.clear_intent();
            return Err(e);
        }
        failpoint::hit("sandbox-create:namespace");
        let mut attached: Vec<(Id, PortId)> = Vec::new();
        let mut result = Ok(());
        for ep in endpoints.iter().filter(|e| e.ifname.is_some()) {
            match self.attach_endpoint(&sb, ep, &next.networks[&ep.network]) {
                Ok(Some(p)) => attached.push((ep.id.clone(), p)),
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            failpoint::hit("sandbox-create:interface");
        }
        let result = result
            .and_then(|()| {
                self.write_files(&next, &sb)
                    .map_err(io_err("cannot write the sandbox's /etc files"))
            })
            .inspect(|()| failpoint::hit("sandbox-create:files"))
            .and_then(|()| self.start_proxies(&next, &sb))
            .inspect(|()| failpoint::hit("sandbox-create:proxies"))
            .and_then(|()| self.commit(&mut inner, next.clone()));
        if let Err(e) = result {
            for (_, p) in attached {
                let _ = self.remove_port(p);
            }
            self.undo_create(&next, &sb, &endpoints);
            self.clear_intent();
            return Err(e);
        }
        failpoint::hit("sandbox-create:committed");
        self.clear_intent();
        inner.endpoint_ports.extend(attached);
        for ep in inner.state.endpoints_of_sandbox(&sb.id) {
            self.publish_endpoint(&inner.state, ep);
        }
        tracing::info!(sandbox = %sb.name, id = %id, "sandbox created");
        Ok(CreateResponse {
            id: id.to_string(),
            warning: String::new(),
        })
    }

    /// Removes what a `sandbox create` of `sb` made that no switch port holds: its endpoints'
    /// interfaces (kernel macvlan children too, in an adopted namespace as in its own), its
    /// published ports, its namespace or the publication of one it adopted, its /etc files.
    /// Missing pieces are fine: it undoes a create that stopped anywhere.
    pub(super) fn undo_create(&self, state: &State, sb: &Sandbox, endpoints: &[Endpoint]) {
        self.proxies.stop(&sb.id);
        if netns::is_namespace(&sb.netns) {
            for ep in endpoints.iter().filter(|e| e.ifname.is_some()) {
                if let Err(e) = self.delete_endpoint_interface(state, sb, ep) {
                    tracing::warn!(sandbox = %sb.name, "removing an interface it made: {e}");
                }
            }
        }
        // Veth host ends live in switchd's namespace, whatever became of the sandbox's.
        for ep in endpoints.iter().filter(|e| e.port_kind == model::PortKind::Veth) {
            let _ = veth::delete(&veth::host_name(&ep.id.to_string()));
        }
        if sb.has_own_path() {
            if let Err(e) = netns::remove(&sb.netns) {
                tracing::warn!(sandbox = %sb.name, "removing namespace: {e}");
            }
        }
        self.remove_files(sb);
    }

    /// [`Daemon::delete_interface`] for an endpoint on a network of `state`, which says
    /// whether the interface is a kernel macvlan child.
    pub(super) fn delete_endpoint_interface(&self, state: &State, sb: &Sandbox, ep: &Endpoint) -> io::Result<()> {
        let kernel_child = state
            .networks
            .get(&ep.network)
            .is_some_and(Network::has_kernel_children);
        self.delete_interface(sb, ep, kernel_child)
    }

    /// Writes what an operation is about to make, before it makes any of it.
    pub(super) fn record_intent(&self, intent: &Intent) -> Result<(), OpError> {
        self.store
            .set_intent(Some(intent))
            .map_err(|e| OpError::Io(format!("cannot record the operation before it starts: {e}")))
    }

    /// Clears the intent of the operation that just ended (committed or undone).
    pub(super) fn clear_intent(&self) {
        if let Err(e) = self.store.set_intent(None) {
            tracing::warn!("cannot clear the operation's intent ({e}): the next start checks it against the state");
        }
    }

    pub(super) fn make_namespace(&self, state: &State, sb: &Sandbox) -> Result<(), OpError> {
        namespace_free(sb)?;
        let res = match (&sb.mode, &sb.adopted) {
            (_, Some(path)) => {
                if !netns::is_namespace(path) {
                    return Err(OpError::Model(ModelError::Invalid(format!(
                        "--netns {} is not a network namespace: give a path like /run/netns/NAME or /proc/PID/ns/net",
                        path.display()
                    ))));
                }
                netns::publish(path, &sb.netns)
            }
            (SandboxMode::Bridge | SandboxMode::None, None) => netns::create(&sb.netns),
            (SandboxMode::Host, None) => netns::publish(&self.host_ns, &sb.netns),
            (SandboxMode::Container(of), None) => netns::publish(&state.sandboxes[of].netns, &sb.netns),
        };
        res.map_err(io_err("cannot set up the sandbox namespace"))
    }

    /// `sandbox rm`.
    pub fn remove_sandbox(&self, key: &str) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let (sb, eps) = next.remove_sandbox(key)?;
        // As for networks: undo the kernel side first, so a crash before the commit leaves a
        // record that `sandbox rm` finishes, never interfaces or namespaces nothing owns.
        for ep in &eps {
            self.detach_endpoint(&mut inner, &sb, ep);
        }
        failpoint::hit("sandbox-rm:interfaces");
        if let Err(e) = netns::remove(&sb.netns) {
            tracing::warn!(sandbox = %sb.name, "removing namespace: {e}");
        }
        failpoint::hit("sandbox-rm:namespace");
        self.remove_files(&sb);
        self.proxies.stop(&sb.id);
        self.commit(&mut inner, next)?;
        for ep in &eps {
            self.publish_endpoint_removed(&inner.state, ep);
        }
        tracing::info!(sandbox = %sb.name, "sandbox removed");
        Ok(())
    }

    /// `sandbox ls`.
    pub fn sandboxes(&self) -> Vec<SandboxResource> {
        let inner = self.inner.lock().expect("lock poisoned");
        let mut v: Vec<&Sandbox> = inner.state.sandboxes.values().collect();
        v.sort_by_key(|s| (s.created, s.name.clone()));
        v.into_iter().map(|s| SandboxResource::of(&inner.state, s)).collect()
    }

    /// `sandbox inspect`.
    pub fn sandbox(&self, key: &str) -> Result<SandboxResource, OpError> {
        let inner = self.inner.lock().expect("lock poisoned");
        let sb = inner.state.sandbox(key)?;
        Ok(SandboxResource::of(&inner.state, sb))
    }

    /// `network connect`; on an overlay network whose addresses here are all in use, after
    /// asking other hosts for some.
    pub fn connect(&self, net: &str, req: NetworkConnect) -> Result<(), OpError> {
        self.with_addresses(|| self.connect_once(net, req.clone()))
    }

    fn connect_once(&self, net: &str, req: NetworkConnect) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let ep_id = next.connect(net, &req.container, (&req).into_spec()?, random_id())?;
        let ep = next.endpoints[&ep_id].clone();
        let sb = next.sandboxes[&ep.sandbox].clone();
        let net = next.networks[&ep.network].clone();
        let intent = Intent::Connect {
            sandbox: sb.clone(),
            endpoint: ep.clone(),
        };
        self.record_intent(&intent)?;
        let port = match self.attach_endpoint(&sb, &ep, &net) {
            Ok(p) => p,
            Err(e) => {
                self.clear_intent();
                return Err(e);
            }
        };
        failpoint::hit("connect:interface");
        if let Err(e) = self.commit(&mut inner, next) {
            match port {
                Some(p) => drop(self.remove_port(p)),
                None => drop(self.delete_interface(&sb, &ep, net.has_kernel_children())),
            }
            self.clear_intent();
            return Err(e);
        }
        failpoint::hit("connect:committed");
        self.clear_intent();
        if let Some(port) = port {
            inner.endpoint_ports.insert(ep_id.clone(), port);
        }
        if let Some(ep) = inner.state.endpoints.get(&ep_id) {
            self.publish_endpoint(&inner.state, ep);
        }
        self.refresh_files(&inner.state, &sb.id);
        Ok(())
    }

    /// `network disconnect`.
    pub fn disconnect(&self, net: &str, sandbox: &str) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let ep = next.disconnect(net, sandbox)?;
        let sb = next.sandboxes[&ep.sandbox].clone();
        self.detach_endpoint(&mut inner, &sb, &ep);
        failpoint::hit("disconnect:interface");
        self.commit(&mut inner, next)?;
        self.publish_endpoint_removed(&inner.state, &ep);
        self.refresh_files(&inner.state, &sb.id);
        Ok(())
    }
}

/// Refuses a sandbox whose namespace path is taken already.
fn namespace_free(sb: &Sandbox) -> Result<(), OpError> {
    if sb.netns.exists() {
        return Err(OpError::Model(ModelError::Conflict(format!(
            "namespace {} already exists: choose another sandbox name or remove it (ip netns delete {})",
            sb.netns.display(),
            sb.name
        ))));
    }
    Ok(())
}

/// An interface made for a runtime to move and configure: no address, no route.
fn handoff_spec(spec: veth::VethSpec) -> veth::VethSpec {
    veth::VethSpec {
        addr: None,
        default_gw: None,
        ipv6: None,
        ..spec
    }
}

/// A TAP made for a runtime to move and configure: no address, no route.
fn handoff_tap(spec: tap::TapSpec) -> tap::TapSpec {
    tap::TapSpec {
        addr: None,
        default_gw: None,
        ipv6: None,
        ..spec
    }
}
