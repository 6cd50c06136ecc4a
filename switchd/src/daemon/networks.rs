//! Network operations: bring-up and teardown of switched networks (gateway, VXLAN peers, DNS), create, remove, prune, static VTEPs.

use super::*;

impl Daemon {
    /// Adds the network to the switch, opens its gateway TAP with the gateway address, adds its
    /// static VXLAN peers and starts its DNS server.
    pub(super) fn bring_up_network(&self, net: &Network) -> Result<NetPorts, OpError> {
        let ipam = net.ipam.expect("switched networks have IPAM");
        let name = net
            .bridge_name
            .clone()
            .expect("switched networks have a gateway interface");
        let sid = NetworkId(net.switch_id);
        let vni = net.vni.and_then(|v| Vni::new(v).ok());
        self.dp
            .add_network(sid, NetworkConfig { aging: net.mac_aging }, vni)
            .map_err(io_err("cannot add the network to the switch"))?;
        let spec = tap::TapSpec {
            name: name.clone(),
            mac: net.gateway_mac(),
            addr: Some((ipam.gateway, ipam.subnet.prefix_len())),
            mtu: net.mtu,
            default_gw: None,
            offload: net.driver != Driver::Overlay,
        };
        let opened = tap::open(&tap::Place::Here, spec).and_then(|dev| {
            let mac = dev.mac_address()?;
            let cfg = PortConfig {
                network: sid,
                max_frame_len: TAP_MAX_FRAME,
                learn_limit: net.mac_limit,
                split_horizon_group: 0,
            };
            self.dp.add_port(NewPort {
                dev: Device::Tap(dev),
                cfg,
                static_mac: Some(switch::MacAddr(mac)),
                kind: PortKind::Gateway,
                label: name.clone(),
            })
        });
        let gateway = opened.map_err(|e| {
            let _ = self.dp.remove_network(sid);
            OpError::Io(format!("cannot open gateway interface {name}: {e}"))
        })?;
        let mut ports = NetPorts {
            gateway,
            vteps: HashMap::new(),
            peers: HashMap::new(),
        };
        let mut result = self.dns.start(net).map_err(|e| OpError::Io(e.to_string()));
        for addr in &net.vteps {
            if result.is_ok() {
                result = self.add_vtep_port(net, *addr).map(|p| {
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

    /// Adds a static VXLAN peer of `net` as a switch port (split-horizon group 1: peers never
    /// forward to each other).
    pub(super) fn add_vtep_port(&self, net: &Network, addr: SocketAddr) -> Result<PortId, OpError> {
        let (SocketAddr::V4(a), Some(vni)) = (addr, net.vni.and_then(|v| Vni::new(v).ok())) else {
            return Err(OpError::Io(format!(
                "VTEP {addr} needs an IPv4 address and an overlay network"
            )));
        };
        let cfg = PortConfig {
            network: NetworkId(net.switch_id),
            max_frame_len: TAP_MAX_FRAME,
            learn_limit: VTEP_LEARN_LIMIT,
            split_horizon_group: 1,
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

    /// A macvlan network needs its parent, in promiscuous mode (the children's MACs must
    /// reach them).
    pub(super) fn bring_up_macvlan(&self, net: &Network) -> Result<(), OpError> {
        let parent = net.parent.clone().unwrap_or_default();
        if !netdev::exists(&parent) {
            return Err(OpError::Model(ModelError::Invalid(format!(
                "parent interface {parent} does not exist on this host: give an interface of the physical LAN"
            ))));
        }
        netdev::set_promisc(&parent, true).map_err(io_err("cannot put the parent in promiscuous mode"))?;
        if let (Some(ip), Some(ipam)) = (net.host_access_address(), net.ipam) {
            let mode = net.macvlan_mode.as_deref().unwrap_or("bridge");
            let opened =
                crate::macvlan::open_host(&parent, mode, &host_access_name(net), (ip, ipam.subnet.prefix_len()));
            if let Err(e) = opened {
                let _ = netdev::set_promisc(&parent, false);
                return Err(OpError::Io(e.to_string()));
            }
        }
        Ok(())
    }

    pub(super) fn tear_down_network(&self, net: &Network, ports: Option<NetPorts>) {
        if net.driver == Driver::Macvlan {
            if net.host_access {
                if let Err(e) = crate::macvlan::delete_host(&host_access_name(net)) {
                    tracing::warn!(network = %net.name, "removing the host's macvlan interface: {e}");
                }
            }
            // One macvlan network per parent: the parent goes back to normal.
            if let Err(e) = netdev::set_promisc(net.parent.as_deref().unwrap_or_default(), false) {
                tracing::warn!(network = %net.name, "restoring the parent: {e}");
            }
            return;
        }
        self.dns.stop(&net.id);
        if let Some(ports) = ports {
            let peers = ports.peers.into_values().map(|(p, _)| p);
            for p in ports
                .vteps
                .into_values()
                .chain(peers)
                .chain(std::iter::once(ports.gateway))
            {
                if let Err(e) = self.remove_port(p) {
                    tracing::warn!(network = %net.name, "removing port {p}: {e}");
                }
            }
        }
        if let Err(e) = self.dp.remove_network(NetworkId(net.switch_id)) {
            tracing::warn!(network = %net.name, "removing network from the switch: {e}");
        }
    }

    /// `network create`.
    pub fn create_network(&self, req: NetworkCreate) -> Result<CreateResponse, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let routes = host_routes();
        let id = next.create_network(req.into_spec()?, random_id(), SystemTime::now(), &routes)?;
        let net = next.networks[&id].clone();
        if net.driver == Driver::Macvlan {
            self.bring_up_macvlan(&net)?;
            if let Err(e) = self.commit(&mut inner, next) {
                self.tear_down_network(&net, None);
                return Err(e);
            }
            tracing::info!(network = %net.name, id = %id, "network created");
            return Ok(CreateResponse {
                id: id.to_string(),
                warning: String::new(),
            });
        }
        let port = self.bring_up_network(&net)?;
        if let Err(e) = self.commit(&mut inner, next) {
            self.tear_down_network(&net, Some(port));
            return Err(e);
        }
        inner.net_ports.insert(id.clone(), port);
        self.publish_network(&inner.state, &id);
        tracing::info!(network = %net.name, id = %id, "network created");
        Ok(CreateResponse {
            id: id.to_string(),
            warning: String::new(),
        })
    }

    /// `network rm`.
    pub fn remove_network(&self, key: &str) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let net = next.remove_network(key)?;
        // Kernel work first, then the commit: a crash in between leaves a stored network that
        // the next start brings back whole, never a gateway interface that nothing owns.
        let port = inner.net_ports.remove(&net.id);
        self.tear_down_network(&net, port);
        self.commit(&mut inner, next)?;
        self.publish_network_removed(&net);
        tracing::info!(network = %net.name, "network removed");
        Ok(())
    }

    /// `network prune`.
    pub fn prune_networks(&self) -> Result<PruneResponse, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let removed = next.prune_networks();
        for net in &removed {
            let port = inner.net_ports.remove(&net.id);
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
        let port = self.add_vtep_port(&network, a)?;
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
    format!("mvh-{}", &net.id.as_str()[..10])
}
