//! The Docker plugin's operations: Docker's calls on the model, with the kernel work of
//! networks (as `network create` and `network rm` do it) and of endpoints (an interface made
//! in switchd's namespace and handed to Docker, which moves it into the container).

use std::net::Ipv4Addr;

use control_plane::plugin::{
    AddressRequest, Connectivity, CreateEndpoint, CreateNetwork, Join, PortRequest, RequestPool,
};

use super::*;

/// What `Join` answers: the interface to move and the gateway.
pub struct JoinReply {
    /// The interface's name in switchd's namespace.
    pub src_name: String,
    /// The gateway, unless the network is internal.
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 gateway of the endpoint's IPv6 subnet, unless the network is internal.
    pub gateway6: Option<std::net::Ipv6Addr>,
}

impl Daemon {
    /// Applies `op` to a copy of the state and commits it: Docker's calls that change no
    /// kernel object.
    fn model_op<T>(&self, op: impl FnOnce(&mut State) -> Result<T, ModelError>) -> Result<T, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let v = op(&mut next)?;
        self.commit(&mut inner, next)?;
        Ok(v)
    }

    /// `IpamDriver.RequestPool`: the pool ID and its subnet.
    pub fn docker_request_pool(&self, r: RequestPool) -> Result<(String, String), OpError> {
        let host = self.host_facts();
        self.model_op(|s| s.docker_request_pool(&r.pool, &r.sub_pool, r.v6, &host))
    }

    /// `IpamDriver.ReleasePool`.
    pub fn docker_release_pool(&self, pool: &str) -> Result<(), OpError> {
        self.model_op(|s| s.docker_release_pool(pool))
    }

    /// `IpamDriver.RequestAddress`: the address and its subnet's prefix length.
    pub fn docker_request_address(&self, r: AddressRequest) -> Result<(std::net::IpAddr, u8), OpError> {
        self.with_addresses(|| {
            self.model_op(|s| {
                let ip = s.docker_request_address(&r.pool_id, &r.address, r.is_gateway())?;
                Ok((ip, s.docker_pool_prefix_len(&r.pool_id).unwrap_or_default()))
            })
        })
    }

    /// `IpamDriver.ReleaseAddress`.
    pub fn docker_release_address(&self, r: AddressRequest) -> Result<(), OpError> {
        self.model_op(|s| s.docker_release_address(&r.pool_id, &r.address))
    }

    /// `NetworkDriver.CreateNetwork`: makes and brings up the switchd network, or links the
    /// existing one it names.
    pub fn docker_create_network(&self, r: CreateNetwork, plugin: &str) -> Result<(), OpError> {
        let spec = r
            .spec()
            .map_err(|m| OpError::Model(ModelError::Invalid(m.to_string())))?;
        self.create_network_with(|next, routes| {
            let (id, made) = next.docker_create_network(spec, plugin, SystemTime::now(), routes)?;
            // A network that exists (an overlay of the cluster) is up already.
            Ok(made.then_some(id))
        })
        .map(drop)
    }

    /// `NetworkDriver.DeleteNetwork`: unlinks it, and removes the switchd network it made.
    pub fn docker_delete_network(&self, id: &str) -> Result<(), OpError> {
        self.remove_network_with(|next| next.docker_delete_network(id))
    }

    /// `NetworkDriver.CreateEndpoint`: the MAC switchd chose, when Docker gave none.
    pub fn docker_create_endpoint(&self, r: CreateEndpoint) -> Result<Option<switch::MacAddr>, OpError> {
        let i = r.interface.unwrap_or_default();
        let addresses = (i.address.as_str(), i.address_ipv6.as_str());
        let (mac, chosen) =
            self.model_op(|s| s.docker_create_endpoint(&r.network_id, &r.endpoint_id, addresses, &i.mac_address))?;
        Ok(chosen.then_some(mac))
    }

    /// `NetworkDriver.DeleteEndpoint`: also removes an interface Docker handed back.
    pub fn docker_delete_endpoint(&self, network: &str, endpoint: &str) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let left = next.docker_delete_endpoint(network, endpoint)?;
        if let Some(l) = &left {
            self.undo_join(&mut inner, l);
        }
        self.commit(&mut inner, next)?;
        if let Some(l) = &left {
            self.publish_endpoint_removed(&inner.state, &l.endpoint);
        }
        if let Some(id) = Id::parse(endpoint) {
            // Docker moves the interface back out of the container after Leave.
            let _ = netdev::delete_link(&model::handoff_name(&id));
        }
        Ok(())
    }

    /// `NetworkDriver.Join`: the endpoint's interface, made in switchd's namespace and on the
    /// switch, for Docker to move into the container's namespace.
    pub fn docker_join(&self, r: Join) -> Result<JoinReply, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let j = next.docker_join(
            &r.network_id,
            &r.endpoint_id,
            &r.sandbox_key,
            random_id(),
            SystemTime::now(),
        )?;
        let sb = next.sandboxes[&j.sandbox].clone();
        let ep = next.endpoints[&j.endpoint].clone();
        let net = next.networks[&ep.network].clone();
        let intent = if j.new_sandbox {
            Intent::CreateSandbox {
                sandbox: sb.clone(),
                endpoints: vec![ep.clone()],
            }
        } else {
            Intent::Connect {
                sandbox: sb.clone(),
                endpoint: ep.clone(),
            }
        };
        self.record_intent(&intent)?;
        let port = match self.attach_endpoint(&sb, &ep, &net) {
            Ok(p) => p,
            Err(e) => {
                let _ = self.delete_interface(&sb, &ep, net.has_kernel_children());
                self.clear_intent();
                return Err(e);
            }
        };
        failpoint::hit("docker-join:interface");
        if let Err(e) = self.commit(&mut inner, next) {
            match port {
                Some(p) => drop(self.remove_port(p)),
                None => drop(self.delete_interface(&sb, &ep, net.has_kernel_children())),
            }
            self.clear_intent();
            return Err(e);
        }
        self.clear_intent();
        if let Some(p) = port {
            inner.endpoint_ports.insert(ep.id.clone(), p);
        }
        self.publish_endpoint(&inner.state, &ep);
        tracing::info!(sandbox = %sb.name, network = %net.name, "Docker endpoint joined");
        Ok(JoinReply {
            src_name: ep.ifname.clone().unwrap_or_default(),
            gateway: (!net.internal).then(|| net.ipam.map(|i| i.gateway)).flatten(),
            gateway6: ep
                .ip6
                .and_then(|ip| net.ipam6_of(ip))
                .map(|p| p.gateway)
                .filter(|_| !net.internal),
        })
    }

    /// Takes away what a join made: the switch port (its TAP with it), and the published
    /// ports with the sandbox's last endpoint. The namespace is Docker's.
    fn undo_join(&self, inner: &mut Inner, l: &model::Left) {
        self.detach_endpoint(inner, &l.sandbox, &l.endpoint);
        if l.sandbox_removed {
            self.proxies.stop(&l.sandbox.id);
        }
    }

    /// `NetworkDriver.Leave`.
    pub fn docker_leave(&self, network: &str, endpoint: &str) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let l = next.docker_leave(network, endpoint)?;
        self.undo_join(&mut inner, &l);
        self.commit(&mut inner, next)?;
        self.publish_endpoint_removed(&inner.state, &l.endpoint);
        tracing::info!(sandbox = %l.sandbox.name, "Docker endpoint left");
        Ok(())
    }

    /// `NetworkDriver.ProgramExternalConnectivity`: publishes the container's ports (host
    /// ports chosen where Docker left them open).
    pub fn docker_publish(&self, r: Connectivity) -> Result<(), OpError> {
        let wanted = r
            .ports()
            .map_err(|m| OpError::Model(ModelError::Invalid(m.to_string())))?;
        self.docker_set_ports(&r.network_id, &r.endpoint_id, wanted)
    }

    /// `NetworkDriver.RevokeExternalConnectivity`.
    pub fn docker_unpublish(&self, network: &str, endpoint: &str) -> Result<(), OpError> {
        self.docker_set_ports(network, endpoint, Vec::new())
    }

    fn docker_set_ports(&self, network: &str, endpoint: &str, wanted: Vec<PortRequest>) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let ports = next.choose_host_ports(&wanted, proxy::can_bind)?;
        let sb = next.docker_publish(network, endpoint, ports)?;
        let sandbox = next.sandboxes[&sb].clone();
        if sandbox.ports.is_empty() {
            self.proxies.stop(&sb);
        } else {
            self.start_proxies(&next, &sandbox)?;
        }
        if let Err(e) = self.commit(&mut inner, next) {
            self.proxies.stop(&sb);
            return Err(e);
        }
        Ok(())
    }

    /// Names the switchd network a Docker network made as Docker names it (see
    /// [`State::docker_name_network`]).
    pub fn docker_name_network(&self, id: &str, name: &str) -> Result<(), OpError> {
        if let Some(n) = self.model_op(|s| s.docker_name_network(id, name))? {
            tracing::info!(network = %n, "named after its Docker network");
        }
        Ok(())
    }

    /// Names a Docker endpoint's sandbox after its container and gives the endpoint its
    /// aliases, as the Docker Engine tells them: DNS here and on the cluster's other hosts,
    /// and switchctl's listings, then know the container by name.
    pub fn docker_name(&self, endpoint: &Id, name: &str, aliases: &[String]) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let renamed = next.docker_name(endpoint, name, aliases)?;
        self.commit(&mut inner, next)?;
        let sb = inner.state.endpoints[endpoint].sandbox.clone();
        for ep in inner.state.endpoints_of_sandbox(&sb) {
            if let (Some(n), Some(p), Some(ifname)) = (&renamed, inner.endpoint_ports.get(&ep.id), &ep.ifname) {
                self.dp.relabel(*p, format!("{n}/{ifname}"));
            }
            self.publish_endpoint(&inner.state, ep);
        }
        if let Some(n) = renamed {
            tracing::info!(sandbox = %n, "named after its Docker container");
        }
        Ok(())
    }
}
