//! Network operations: bring-up and teardown of switched networks (gateway, VXLAN peers, DNS), create, remove, prune, static VTEPs.

use super::*;

/// The addresses of the host's own interface on a native network (`host_access`): IPv4 and
/// IPv6, either absent on a network without that family.
type HostAccess = (Option<(std::net::Ipv4Addr, u8)>, Option<netdev::Ipv6Setup>);

impl Daemon {
    /// Adds the network to the switch, opens its gateway TAP with the gateway address, adds its
    /// static VXLAN peers and starts its DNS server.
    pub(super) fn bring_up_network(&self, net: &Network) -> Result<NetPorts, OpError> {
        let name = net
            .bridge_name
            .clone()
            .expect("switched networks have a gateway interface");
        if net.enable_ipv6() {
            // Sandboxes reach beyond the host through it, as over IPv4. (The host then takes
            // no router advertisements on interfaces left at accept_ra=1, as with Docker.)
            netdev::write_sysctl("net/ipv6/conf/all/forwarding", "1")
                .map_err(io_err("cannot turn on IPv6 forwarding"))?;
        }
        let sid = NetworkId(net.switch_id);
        let tunnel = net.vni.and_then(|v| Vni::new(v).ok()).map(|vni| dataplane::Tunnel {
            vni,
            sealed: net.encrypted,
        });
        self.dp
            .add_network(sid, NetworkConfig { aging: net.mac_aging }, tunnel)
            .map_err(io_err("cannot add the network to the switch"))?;
        // (None: an IPv6-only network.)
        let addr = net.ipam.map(|i| (i.gateway, i.subnet.prefix_len()));
        let ipv6 = net.enable_ipv6().then(|| netdev::Ipv6Setup {
            addrs: net.ipam6.iter().map(|p| (p.gateway, p.subnet.prefix_len())).collect(),
            default_gw: None,
            loopback: false,
        });
        let gateway = self
            .open_host_port(net, &name, net.gateway_mac(), addr, ipv6)
            .map_err(|e| {
                let _ = self.dp.remove_network(sid);
                OpError::Io(format!("cannot open gateway interface {name}: {e}"))
            })?;
        let mut ports = NetPorts {
            own: vec![gateway],
            vteps: HashMap::new(),
            peers: HashMap::new(),
        };
        let mut result = self.dns.start(net).map_err(|e| OpError::Io(e.to_string()));
        for addr in &net.vteps {
            if result.is_ok() {
                result = self.add_vtep_port(net, *addr, false).map(|p| {
                    ports.vteps.insert(*addr, p);
                });
            }
        }
        if let Err(e) = result {
            self.tear_down_network(net, Some(ports));
            return Err(e);
        }
        Ok(ports)
    }

    /// Opens a TAP `name` in switchd's namespace holding `addr` (and IPv6 as `ipv6` says) and
    /// adds it to `net`'s switch network as the host's port.
    fn open_host_port(
        &self,
        net: &Network,
        name: &str,
        mac: Option<switch::MacAddr>,
        addr: Option<(std::net::Ipv4Addr, u8)>,
        ipv6: Option<netdev::Ipv6Setup>,
    ) -> io::Result<PortId> {
        let spec = tap::TapSpec {
            name: name.to_string(),
            mac,
            addr,
            mtu: net.mtu,
            default_gw: None,
            ipv6,
            offload: if net.driver == Driver::Overlay {
                tap::Offload::Tcp { sealed: net.encrypted }
            } else {
                tap::Offload::All
            },
        };
        let dev = tap::open(&tap::Place::Here, spec)?;
        let mac = dev.mac_address()?;
        let cfg = PortConfig {
            network: NetworkId(net.switch_id),
            max_frame_len: TAP_MAX_FRAME,
            learn_limit: net.mac_limit,
            split_horizon_group: 0,
            isolated: false,
            guard: None,
            locked: false,
        };
        self.dp.add_port(NewPort {
            dev: Device::Tap(dev),
            cfg,
            static_mac: Some(switch::MacAddr(mac)),
            kind: PortKind::Gateway,
            label: name.to_string(),
        })
    }

    /// Adds a VXLAN peer of `net` as a switch port (split-horizon group 1: peers never
    /// forward to each other). A cluster member's port is `locked`: frames enter only from the
    /// MACs of the endpoints its records announce, so a datagram forged with its address
    /// teaches the switch nothing. A static VTEP (a kernel's VXLAN, with no records) learns.
    pub(super) fn add_vtep_port(&self, net: &Network, addr: SocketAddr, locked: bool) -> Result<PortId, OpError> {
        let Some(vni) = net.vni.and_then(|v| Vni::new(v).ok()) else {
            return Err(OpError::Io(format!("VTEP {addr} needs an overlay network")));
        };
        let a = addr;
        let cfg = PortConfig {
            network: NetworkId(net.switch_id),
            max_frame_len: TAP_MAX_FRAME,
            learn_limit: VTEP_LEARN_LIMIT,
            split_horizon_group: 1,
            isolated: false,
            guard: None,
            locked,
        };
        let port = NewPort {
            dev: Device::Vtep { addr: a, vni },
            cfg,
            static_mac: None,
            kind: PortKind::Vtep,
            label: format!("vtep:{a}"),
        };
        self.dp
            .add_port(port)
            .map_err(|e| OpError::Io(format!("cannot add VTEP {a}: {e}")))
    }

    /// Chooses how this host carries a new macvlan network: the kernel's macvlan on the
    /// parent, on the kernel's 802.1Q interface `IFACE.VLAN` (created here when missing), or,
    /// where the kernel has no 8021q, switchd's own 802.1Q.
    pub(super) fn choose_native_path(&self, net: &mut Network) -> Result<(), OpError> {
        let iface = net.parent_iface().unwrap_or_default().to_string();
        if !netdev::exists(&iface) {
            return Err(OpError::Model(ModelError::Invalid(format!(
                "parent interface {iface} does not exist on this host: give an interface of the physical LAN"
            ))));
        }
        let (Some(vid), Some(link)) = (net.vlan, net.parent.clone()) else {
            net.native_path = Some(NativePath::KernelMacvlan);
            return Ok(());
        };
        match vlan::open(&iface, &link, vid) {
            Ok(made) => {
                net.native_path = Some(NativePath::Kernel8021q);
                net.vlan_link_created = made == vlan::Link::Created;
            }
            Err(e) if vlan::is_unsupported(&e) => {
                tracing::info!(network = %net.name, "{e}: VLAN {vid} on {iface} is carried by switchd's own 802.1Q");
                net.native_path = Some(NativePath::Userspace8021q);
            }
            Err(e) => return Err(OpError::Io(e.to_string())),
        }
        Ok(())
    }

    /// Brings up a macvlan network. On the kernel's paths: its parent link (the VLAN interface
    /// made again if switchd made it and it is gone), promiscuous, and the host's own child
    /// with `host_access`; no switch port. On switchd's own 802.1Q: a switch network whose
    /// uplink is the parent, and the host's own TAP with `host_access`.
    pub(super) fn bring_up_macvlan(&self, net: &Network) -> Result<Option<NetPorts>, OpError> {
        let iface = net.parent_iface().unwrap_or_default();
        if !netdev::exists(iface) {
            return Err(OpError::Model(ModelError::Invalid(format!(
                "parent interface {iface} does not exist on this host: give an interface of the physical LAN"
            ))));
        }
        let host_addr = net
            .host_access_address()
            .zip(net.ipam)
            .map(|(ip, ipam)| (ip, ipam.subnet.prefix_len()));
        let host_addr6 = net
            .host_access_address6()
            .zip(net.ipam6.first())
            .map(|(ip, p)| netdev::Ipv6Setup {
                addrs: vec![(ip, p.subnet.prefix_len())],
                default_gw: None,
                loopback: false,
            });
        if net.native_path == Some(NativePath::Userspace8021q) {
            return self
                .bring_up_uplink(net, iface, net.host_access.then_some((host_addr, host_addr6)))
                .map(Some);
        }
        let link = net.parent.clone().unwrap_or_default();
        if let (Some(vid), true) = (net.vlan, net.vlan_link_created) {
            vlan::open(iface, &link, vid).map_err(io_err("cannot restore the VLAN interface"))?;
        }
        netdev::set_promisc(&link, true).map_err(io_err("cannot put the parent in promiscuous mode"))?;
        if net.host_access {
            let mode = net.macvlan_mode.as_deref().unwrap_or("bridge");
            let name = host_access_name(net);
            if let Err(e) = crate::ports::macvlan::open_host(&link, mode, &name, host_addr, host_addr6.as_ref()) {
                let _ = netdev::set_promisc(&link, false);
                return Err(OpError::Io(e.to_string()));
            }
        }
        Ok(None)
    }

    fn bring_up_uplink(&self, net: &Network, iface: &str, host_addr: Option<HostAccess>) -> Result<NetPorts, OpError> {
        let sid = NetworkId(net.switch_id);
        let vid = net
            .vlan
            .and_then(|v| switch::VlanId::new(v).ok())
            .ok_or_else(|| OpError::Io(format!("network {} has no valid VLAN", net.name)))?;
        self.dp
            .add_network(sid, NetworkConfig { aging: net.mac_aging }, None)
            .map_err(io_err("cannot add the network to the switch"))?;
        let mut ports = NetPorts {
            own: Vec::new(),
            vteps: HashMap::new(),
            peers: HashMap::new(),
        };
        let uplink = crate::ports::uplink::open(iface, vid).and_then(|fd| {
            self.dp.add_port(NewPort {
                dev: Device::Uplink { fd, vlan: vid },
                cfg: PortConfig {
                    network: sid,
                    max_frame_len: TAP_MAX_FRAME,
                    learn_limit: VTEP_LEARN_LIMIT,
                    split_horizon_group: 0,
                    isolated: false,
                    guard: None,
                    locked: false,
                },
                static_mac: None,
                kind: PortKind::Uplink,
                label: format!("{iface}.{vid}"),
            })
        });
        let mut result = uplink
            .map(|p| ports.own.push(p))
            .map_err(|e| OpError::Io(format!("cannot open the uplink on {iface}: {e}")));
        if let (Ok(()), Some((addr, ipv6))) = (&result, host_addr) {
            let name = host_access_name(net);
            result = self
                .open_host_port(net, &name, None, addr, ipv6)
                .map(|p| ports.own.push(p))
                .map_err(|e| OpError::Io(format!("cannot open the host's interface {name}: {e}")));
        }
        if let Err(e) = result {
            self.tear_down_network(net, Some(ports));
            return Err(e);
        }
        Ok(ports)
    }

    pub(super) fn tear_down_network(&self, net: &Network, ports: Option<NetPorts>) {
        if net.has_kernel_children() {
            let link = net.parent.as_deref().unwrap_or_default();
            if net.host_access {
                if let Err(e) = crate::ports::macvlan::delete_host(&host_access_name(net)) {
                    tracing::warn!(network = %net.name, "removing the host's macvlan interface: {e}");
                }
            }
            // One macvlan network per parent link: the link goes back to normal, or goes.
            if let Err(e) = netdev::set_promisc(link, false) {
                tracing::warn!(network = %net.name, "restoring the parent: {e}");
            }
            if net.vlan_link_created {
                if let Err(e) = netdev::delete_link(link) {
                    tracing::warn!(network = %net.name, "removing the VLAN interface: {e}");
                }
            }
            return;
        }
        self.dns.stop(&net.id);
        if let Some(ports) = ports {
            let peers = ports.peers.into_values();
            for p in ports.vteps.into_values().chain(peers).chain(ports.own) {
                if let Err(e) = self.remove_port(p) {
                    tracing::warn!(network = %net.name, "removing port {p}: {e}");
                }
            }
        }
        if let Err(e) = self.dp.remove_network(NetworkId(net.switch_id)) {
            tracing::warn!(network = %net.name, "removing network from the switch: {e}");
        }
    }

    /// Brings up any network with something on this host: its switch ports, if it has some.
    pub(super) fn bring_up(&self, net: &Network) -> Result<Option<NetPorts>, OpError> {
        match net.driver {
            Driver::Macvlan => self.bring_up_macvlan(net),
            _ if net.is_switched() => self.bring_up_network(net).map(Some),
            _ => Ok(None),
        }
    }

    /// `network create`.
    pub fn create_network(&self, req: NetworkCreate) -> Result<CreateResponse, OpError> {
        let spec = req.into_spec()?;
        let id = self.create_network_with(|next, routes| {
            next.create_network(spec, random_id(), SystemTime::now(), routes)
                .map(Some)
        })?;
        let id = id.expect("a network was made");
        Ok(CreateResponse {
            id: id.to_string(),
            warning: String::new(),
        })
    }

    /// Creates the network `make` adds to a copy of the state (given the host's facts), brings
    /// it up and commits; returns its ID. When `make` adds none, its change is committed alone.
    pub(super) fn create_network_with(
        &self,
        make: impl FnOnce(&mut State, &control_plane::HostFacts) -> Result<Option<Id>, ModelError>,
    ) -> Result<Option<Id>, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let host = self.host_facts();
        let Some(id) = make(&mut next, &host)? else {
            self.commit(&mut inner, next)?;
            return Ok(None);
        };
        if let Some(net) = next.networks.get_mut(&id).filter(|n| n.driver == Driver::Macvlan) {
            self.choose_native_path(net)?;
        }
        if next.networks[&id].encrypted && self.cluster.is_none() {
            return Err(OpError::Model(ModelError::Invalid(
                "an encrypted overlay network needs a cluster: its keys come from the hosts' certificates (start switchd with --cluster-dir and --advertise)".into(),
            )));
        }
        let claim = self.claim_new_network(&mut next, &id);
        let net = next.networks[&id].clone();
        let ports = match self.bring_up(&net) {
            Ok(p) => p,
            Err(e) => {
                // A VLAN interface made for the network goes with it.
                if net.vlan_link_created {
                    let _ = netdev::delete_link(net.parent.as_deref().unwrap_or_default());
                }
                return Err(e);
            }
        };
        if let Err(e) = self.commit(&mut inner, next) {
            self.tear_down_network(&net, ports);
            return Err(e);
        }
        if let Some(p) = ports {
            self.ports_up(&mut inner, id.clone(), p);
        }
        self.publish_network(&inner.state, &id);
        if let (Some(cl), Some(r)) = (&self.cluster, claim) {
            cl.spread(r);
        }
        tracing::info!(network = %net.name, id = %id, "network created");
        Ok(Some(id))
    }

    /// `network rm`.
    pub fn remove_network(&self, key: &str) -> Result<(), OpError> {
        self.remove_network_with(|next| next.remove_network(key).map(Some))
    }

    /// Removes the network `remove` takes out of a copy of the state (if any): its kernel side,
    /// then the commit.
    pub(super) fn remove_network_with(
        &self,
        remove: impl FnOnce(&mut State) -> Result<Option<Network>, ModelError>,
    ) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let Some(net) = remove(&mut next)? else {
            return self.commit(&mut inner, next);
        };
        // Kernel work first, then the commit: a crash in between leaves a stored network that
        // the next start brings back whole, never a gateway interface that nothing owns.
        let port = self.ports_down(&mut inner, &net.id);
        self.tear_down_network(&net, port);
        self.commit(&mut inner, next)?;
        self.publish_network_removed(&net);
        tracing::info!(network = %net.name, "network removed");
        Ok(())
    }

    /// `network prune`, of the networks `filters` admit.
    pub fn prune_networks(&self, filters: &control_plane::request::PruneFilters) -> Result<PruneResponse, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let removed = next.prune_networks(filters);
        for net in &removed {
            let port = self.ports_down(&mut inner, &net.id);
            self.tear_down_network(net, port);
        }
        self.commit(&mut inner, next)?;
        for net in &removed {
            self.publish_network_removed(net);
        }
        Ok(PruneResponse {
            networks_deleted: removed.into_iter().map(|n| n.name).collect(),
        })
    }

    /// `network ls`.
    pub fn networks(&self) -> Vec<NetworkResource> {
        let inner = self.inner.lock().expect("lock poisoned");
        let mut v: Vec<&Network> = inner.state.networks.values().collect();
        v.sort_by_key(|n| (n.created, n.name.clone()));
        v.into_iter().map(|n| NetworkResource::of(&inner.state, n)).collect()
    }

    /// `network inspect`.
    pub fn network(&self, key: &str) -> Result<NetworkResource, OpError> {
        let inner = self.inner.lock().expect("lock poisoned");
        let net = inner.state.network(key)?;
        Ok(NetworkResource::of(&inner.state, net))
    }

    /// `network vtep add`.
    pub fn add_vtep(&self, net: &str, addr: &str) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let a = next.add_vtep(net, addr, self.vxlan_port)?;
        let network = next.network(net)?.clone();
        let port = self.add_vtep_port(&network, a, false)?;
        if let Err(e) = self.commit(&mut inner, next) {
            let _ = self.remove_port(port);
            return Err(e);
        }
        if let Some(np) = inner.net_ports.get_mut(&network.id) {
            np.vteps.insert(a, port);
        }
        Ok(())
    }

    /// `network vtep rm`.
    pub fn remove_vtep(&self, net: &str, addr: &str) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let a = next.remove_vtep(net, addr, self.vxlan_port)?;
        let id = next.network(net)?.id.clone();
        if let Some(port) = inner.net_ports.get_mut(&id).and_then(|np| np.vteps.remove(&a)) {
            if let Err(e) = self.remove_port(port) {
                tracing::warn!("removing VTEP {a}: {e}");
            }
        }
        self.commit(&mut inner, next)
    }

    /// `network vtep ls`: the peers with their port counters.
    pub fn vteps(&self, net: &str) -> Result<Vec<VtepResource>, OpError> {
        let ports = self.dp.ports().map_err(io_err("dataplane"))?;
        let inner = self.inner.lock().expect("lock poisoned");
        let n = inner.state.network(net)?;
        let by_port: HashMap<u32, &dataplane::PortInfo> = ports.iter().map(|p| (p.port.0, p)).collect();
        let np = inner.net_ports.get(&n.id);
        Ok(n.vteps
            .iter()
            .map(|a| {
                let c = np
                    .and_then(|np| np.vteps.get(a))
                    .and_then(|p| by_port.get(&p.0))
                    .map(|p| &p.counters);
                VtepResource {
                    address: a.to_string(),
                    vni: n.vni.unwrap_or_default(),
                    rx_packets: c.map_or(0, |c| c.rx_packets),
                    tx_packets: c.map_or(0, |c| c.tx_packets),
                    drops: c
                        .map(|c| c.drops_by_reason().map(|(r, k)| (r.as_str().to_string(), k)).collect())
                        .unwrap_or_default(),
                }
            })
            .collect())
    }
}

/// The name of the host's own macvlan child on `net`: `mvh-` and 10 hex digits of its ID.
fn host_access_name(net: &Network) -> String {
    format!("mvh-{}", &net.id.to_string()[..10])
}
