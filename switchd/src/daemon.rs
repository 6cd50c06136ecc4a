//! The daemon's operations: each validates on a copy of the state (control-plane model),
//! performs the kernel work (namespaces, TAP ports, dataplane ports), and commits the copy to
//! the store only when everything succeeded; on failure the kernel work is undone.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use control_plane::api::{
    CreateResponse, FdbResource, NetworkConnect, NetworkCreate, NetworkResource, PortResource, PruneResponse,
    SandboxCreate, SandboxResource, VtepResource, VxlanResource,
};
use control_plane::model::{self, Driver, Endpoint, Network, Sandbox, SandboxMode, State};
use control_plane::store::Store;
use control_plane::{Id, ModelError};
use overlay::Vni;
use switch::{NetworkConfig, NetworkId, PortConfig, PortId};

use crate::dataplane::{self, Device, NewPort, PortKind};
use crate::{dns, firewall, netdev, netns, proxy, tap, veth};

/// Longest frame a TAP port may hand the switch (64 KB super-frames with offloads).
const TAP_MAX_FRAME: usize = 65_535 + 64;
/// Addresses a static VXLAN peer may stand for (a whole remote segment).
const VTEP_LEARN_LIMIT: u32 = 4096;

/// Why an operation failed. Nothing was changed.
#[derive(Debug)]
pub enum OpError {
    /// Refused by the model (4xx).
    Model(ModelError),
    /// The kernel work or the store failed (500); what was done was undone.
    Io(String),
}

impl From<ModelError> for OpError {
    fn from(e: ModelError) -> Self {
        OpError::Model(e)
    }
}

impl OpError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            OpError::Model(e) => e.status(),
            OpError::Io(_) => 500,
        }
    }

    /// The message.
    pub fn message(&self) -> String {
        match self {
            OpError::Model(e) => e.to_string(),
            OpError::Io(m) => m.clone(),
        }
    }
}

fn io_err(what: &str) -> impl Fn(io::Error) -> OpError + '_ {
    move |e| OpError::Io(format!("{what}: {e}"))
}

/// Daemon settings.
pub struct Config {
    /// Where the state database lives.
    pub state_dir: PathBuf,
    /// Where sandbox namespaces are published (`/run/netns`, so `ip netns exec` finds them).
    pub netns_dir: PathBuf,
    /// Where sandboxes' /etc files are published (`/etc/netns`, which `ip netns exec` binds).
    pub etc_dir: PathBuf,
    /// Upstream resolvers for names the embedded DNS does not know.
    pub upstreams: Vec<std::net::SocketAddr>,
    /// The runtime the DNS servers run on.
    pub rt: tokio::runtime::Handle,
    /// The UDP port VXLAN peers send to (and the default port of a static VTEP).
    pub vxlan_port: u16,
    /// The cluster driver, when switchd is a cluster member.
    pub cluster: Option<crate::cluster::Handle>,
}

/// A network's own switch ports: its gateway and its static VXLAN peers.
struct NetPorts {
    gateway: PortId,
    vteps: HashMap<SocketAddr, PortId>,
}

struct Inner {
    state: State,
    net_ports: HashMap<Id, NetPorts>,
    endpoint_ports: HashMap<Id, PortId>,
}

/// The running daemon.
pub struct Daemon {
    inner: Mutex<Inner>,
    dp: dataplane::Handle,
    store: Store,
    netns_dir: PathBuf,
    etc_dir: PathBuf,
    host_ns: PathBuf,
    /// The committed state, for readers that must not wait on an operation (DNS).
    snapshot: dns::Snapshot,
    dns: dns::Dns,
    proxies: proxy::Proxies,
    vxlan_port: u16,
    cluster: Option<crate::cluster::Handle>,
}

/// The prefixes switchd's namespace routes to, but its default route. /proc/net/route shows
/// the reading process's namespace; unreadable means none.
fn host_routes() -> Vec<control_plane::Ipv4Cidr> {
    control_plane::ipam::parse_proc_net_route(&std::fs::read_to_string("/proc/net/route").unwrap_or_default())
}

/// 32 random bytes as an object ID.
pub fn random_id() -> Id {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the kernel's random source is available");
    Id::from_random(b)
}

impl Daemon {
    /// Opens the store, starts the dataplane and brings every stored network and sandbox back.
    ///
    /// # Errors
    /// The store cannot be opened or written, or the dataplane cannot start.
    pub fn start(cfg: Config) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(&cfg.state_dir)?;
        let store = Store::open(&cfg.state_dir)?;
        let state = match store.load()? {
            Some(s) => s,
            None => {
                let s = State::with_defaults([random_id(), random_id(), random_id()], SystemTime::now());
                store.save(&s)?;
                s
            }
        };
        // Sandboxes reach beyond the host through it (masquerade in the firewall table).
        netdev::write_sysctl("net/ipv4/ip_forward", "1")?;
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
        let dp = dataplane::spawn(u64::from_ne_bytes(seed), cfg.vxlan_port)?;
        let snapshot: dns::Snapshot = Arc::new(RwLock::new(Arc::new(state.clone())));
        let d = Daemon {
            inner: Mutex::new(Inner {
                state: State::default(),
                net_ports: HashMap::new(),
                endpoint_ports: HashMap::new(),
            }),
            dp,
            store,
            netns_dir: cfg.netns_dir,
            etc_dir: cfg.etc_dir,
            host_ns: PathBuf::from(format!("/proc/{}/ns/net", std::process::id())),
            dns: dns::Dns::new(cfg.rt.clone(), snapshot.clone(), cfg.upstreams),
            proxies: proxy::Proxies::new(cfg.rt),
            vxlan_port: cfg.vxlan_port,
            cluster: cfg.cluster,
            snapshot,
        };
        d.restore(state);
        Ok(d)
    }

    /// Re-creates the runtime side of a stored state: gateway ports, then sandbox ports
    /// (re-attaching the persistent TAP devices). Failures are logged and leave the object
    /// in the state; they do not stop the daemon.
    fn restore(&self, state: State) {
        let mut inner = self.inner.lock().expect("lock poisoned");
        for net in state.networks.values().filter(|n| n.ipam.is_some()) {
            match self.bring_up_network(net) {
                Ok(port) => {
                    inner.net_ports.insert(net.id.clone(), port);
                }
                Err(e) => {
                    tracing::error!(network = %net.name, "cannot restore network: {}", e.message())
                }
            }
        }
        for sb in state.sandboxes.values() {
            if !netns::is_namespace(&sb.netns) {
                tracing::error!(sandbox = %sb.name, "namespace {} is gone; its interfaces cannot be restored", sb.netns.display());
                continue;
            }
            for ep in state.endpoints_of_sandbox(&sb.id) {
                if ep.ifname.is_none() {
                    continue;
                }
                let net = &state.networks[&ep.network];
                match self.attach_endpoint(sb, ep, net) {
                    Ok(port) => {
                        inner.endpoint_ports.insert(ep.id.clone(), port);
                    }
                    Err(e) => {
                        tracing::error!(sandbox = %sb.name, network = %net.name, "cannot restore endpoint: {}", e.message())
                    }
                }
            }
        }
        for sb in state.sandboxes.values() {
            if let Err(e) = self.write_files(&state, sb) {
                tracing::warn!(sandbox = %sb.name, "cannot write /etc files: {e}");
            }
            if let Err(e) = self.start_proxies(&state, sb) {
                tracing::error!(sandbox = %sb.name, "cannot publish ports again: {}", e.message());
            }
        }
        if let Err(e) = firewall::apply(&control_plane::firewall::ruleset(&state)) {
            tracing::error!("cannot install the firewall: {e}; outbound access and isolation rules are missing");
        }
        tracing::info!(
            networks = state.networks.len(),
            sandboxes = state.sandboxes.len(),
            ports = inner.net_ports.values().map(|n| 1 + n.vteps.len()).sum::<usize>() + inner.endpoint_ports.len(),
            "state restored"
        );
        inner.state = state;
    }

    /// Makes `next` the state: its firewall first, then the store. If the store fails, the
    /// previous firewall is put back.
    fn commit(&self, inner: &mut Inner, next: State) -> Result<(), OpError> {
        firewall::apply(&control_plane::firewall::ruleset(&next)).map_err(io_err("firewall"))?;
        if let Err(e) = self.store.save(&next) {
            if let Err(fe) = firewall::apply(&control_plane::firewall::ruleset(&inner.state)) {
                tracing::error!("cannot restore the previous firewall: {fe}");
            }
            return Err(OpError::Io(e.to_string()));
        }
        *self.snapshot.write().expect("lock poisoned") = Arc::new(next.clone());
        inner.state = next;
        Ok(())
    }

    /// Writes the sandbox's /etc/netns/NAME/{resolv.conf,hosts} for `state`; a file the
    /// sandbox should not have (host, none) is removed so it sees the host's.
    fn write_files(&self, state: &State, sb: &Sandbox) -> io::Result<()> {
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
    fn refresh_files(&self, state: &State, sb: &Id) {
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
    fn start_proxies(&self, state: &State, sb: &Sandbox) -> Result<(), OpError> {
        if sb.ports.is_empty() {
            return Ok(());
        }
        let Some(target) = state.port_target(sb) else {
            self.proxies.stop(&sb.id);
            return Ok(());
        };
        self.proxies.start(&sb.id, &sb.ports, target).map_err(|(b, e)| {
            let what = format!("{}:{}/{}", b.host_ip, b.host_port, b.proto.as_str());
            if e.kind() == io::ErrorKind::AddrInUse {
                OpError::Model(ModelError::Conflict(format!(
                    "host port {what} is already in use on this host by another program: choose another port"
                )))
            } else {
                OpError::Io(format!("cannot publish host port {what}: {e}"))
            }
        })
    }

    fn remove_files(&self, sb: &Sandbox) {
        match std::fs::remove_dir_all(self.etc_dir.join(&sb.name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(sandbox = %sb.name, "cannot remove /etc files: {e}")
            }
            _ => {}
        }
    }

    /// Removes the fabric's firewall table (clean shutdown). Ports and namespaces stay.
    pub fn shutdown(&self) {
        if let Err(e) = firewall::apply(&control_plane::firewall::teardown()) {
            tracing::warn!("removing the firewall table: {e}");
        }
    }

    /// Adds the network to the switch, opens its gateway TAP with the gateway address, adds its
    /// static VXLAN peers and starts its DNS server.
    fn bring_up_network(&self, net: &Network) -> Result<NetPorts, OpError> {
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
    fn add_vtep_port(&self, net: &Network, addr: SocketAddr) -> Result<PortId, OpError> {
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

    fn tear_down_network(&self, net: &Network, ports: Option<NetPorts>) {
        self.dns.stop(&net.id);
        if let Some(ports) = ports {
            for p in ports.vteps.into_values().chain(std::iter::once(ports.gateway)) {
                if let Err(e) = self.remove_port(p) {
                    tracing::warn!(network = %net.name, "removing port {p}: {e}");
                }
            }
        }
        if let Err(e) = self.dp.remove_network(NetworkId(net.switch_id)) {
            tracing::warn!(network = %net.name, "removing network from the switch: {e}");
        }
    }

    /// Opens the endpoint's interface in the sandbox namespace (creating it configured, or
    /// re-attaching after a restart) and adds it to the switch with its static MAC.
    fn attach_endpoint(&self, sb: &Sandbox, ep: &Endpoint, net: &Network) -> Result<PortId, OpError> {
        let ipam = net.ipam.expect("endpoints with interfaces are on bridge networks");
        let ifname = ep.ifname.clone().expect("caller checked");
        let addr = ep.ip.map(|ip| (ip, ipam.subnet.prefix_len()));
        let default_gw = (ifname == "eth0").then_some(ipam.gateway);
        let label = format!("{}/{ifname}", sb.name);
        let (dev, kind) = match ep.port_kind {
            model::PortKind::Tap => {
                let spec = tap::TapSpec {
                    name: ifname.clone(),
                    mac: ep.mac,
                    addr,
                    mtu: net.mtu,
                    default_gw,
                    offload: net.driver != Driver::Overlay,
                };
                let dev = tap::open(&tap::Place::In(sb.netns.clone()), spec).map_err(io_err(&label))?;
                (Device::Tap(dev), PortKind::Tap)
            }
            model::PortKind::Veth => {
                let host = veth::host_name(ep.id.as_str());
                let spec = veth::VethSpec {
                    host: host.clone(),
                    name: ifname.clone(),
                    mac: ep.mac,
                    addr,
                    mtu: net.mtu,
                    default_gw,
                };
                let fd = veth::open(&sb.netns, &spec).map_err(io_err(&label))?;
                (Device::Packet { fd, ifname: host }, PortKind::Veth)
            }
        };
        let cfg = PortConfig {
            network: NetworkId(net.switch_id),
            max_frame_len: TAP_MAX_FRAME,
            learn_limit: net.mac_limit,
            split_horizon_group: 0,
        };
        let added = self.dp.add_port(NewPort {
            dev,
            cfg,
            static_mac: ep.mac,
            kind,
            label: label.clone(),
        });
        added.map_err(|e| {
            let _ = self.delete_interface(sb, ep);
            OpError::Io(format!("{label}: {e}"))
        })
    }

    /// Removes a port from the switch and destroys its device.
    fn remove_port(&self, port: PortId) -> io::Result<()> {
        match self.dp.remove_port(port)? {
            Device::Tap(dev) => tap::unpersist(&dev),
            Device::Packet { fd, ifname } => {
                drop(fd);
                veth::delete(&ifname)
            }
            Device::Vtep { .. } => Ok(()),
        }
    }

    /// Deletes an endpoint's interface by name, when no port holds it.
    fn delete_interface(&self, sb: &Sandbox, ep: &Endpoint) -> io::Result<()> {
        match (ep.port_kind, &ep.ifname) {
            (model::PortKind::Veth, Some(_)) => veth::delete(&veth::host_name(ep.id.as_str())),
            (model::PortKind::Tap, Some(ifname)) if netns::is_namespace(&sb.netns) => {
                tap::delete_by_name(&sb.netns, ifname)
            }
            _ => Ok(()),
        }
    }

    fn detach_endpoint(&self, inner: &mut Inner, sb: &Sandbox, ep: &Endpoint) {
        let Some(ifname) = &ep.ifname else { return };
        let res = match inner.endpoint_ports.remove(&ep.id) {
            Some(port) => self.remove_port(port),
            None => self.delete_interface(sb, ep),
        };
        if let Err(e) = res {
            tracing::warn!(sandbox = %sb.name, interface = %ifname, "removing interface: {e}");
        }
    }

    /// `network create`.
    pub fn create_network(&self, req: NetworkCreate) -> Result<CreateResponse, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let routes = host_routes();
        let id = next.create_network(req.into_spec()?, random_id(), SystemTime::now(), &routes)?;
        let net = next.networks[&id].clone();
        let port = self.bring_up_network(&net)?;
        if let Err(e) = self.commit(&mut inner, next) {
            self.tear_down_network(&net, Some(port));
            return Err(e);
        }
        inner.net_ports.insert(id.clone(), port);
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

    /// `sandbox create`.
    pub fn create_sandbox(&self, req: SandboxCreate) -> Result<CreateResponse, OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let id = next.create_sandbox(req.spec(), random_id(), random_id(), &self.netns_dir, SystemTime::now())?;
        let sb = next.sandboxes[&id].clone();
        self.make_namespace(&next, &sb)?;
        let mut attached: Vec<(Id, PortId)> = Vec::new();
        let mut result = Ok(());
        for ep in next
            .endpoints_of_sandbox(&id)
            .into_iter()
            .filter(|e| e.ifname.is_some())
        {
            match self.attach_endpoint(&sb, ep, &next.networks[&ep.network]) {
                Ok(p) => attached.push((ep.id.clone(), p)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let result = result
            .and_then(|()| {
                self.write_files(&next, &sb)
                    .map_err(io_err("cannot write the sandbox's /etc files"))
            })
            .and_then(|()| self.start_proxies(&next, &sb))
            .and_then(|()| self.commit(&mut inner, next));
        if let Err(e) = result {
            self.proxies.stop(&sb.id);
            for (_, p) in attached {
                let _ = self.remove_port(p);
            }
            let _ = netns::remove(&sb.netns);
            self.remove_files(&sb);
            return Err(e);
        }
        inner.endpoint_ports.extend(attached);
        tracing::info!(sandbox = %sb.name, id = %id, "sandbox created");
        Ok(CreateResponse {
            id: id.to_string(),
            warning: String::new(),
        })
    }

    fn make_namespace(&self, state: &State, sb: &Sandbox) -> Result<(), OpError> {
        if sb.netns.exists() {
            return Err(OpError::Model(ModelError::Conflict(format!(
                "namespace {} already exists: choose another sandbox name or remove it (ip netns delete {})",
                sb.netns.display(),
                sb.name
            ))));
        }
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
        if let Err(e) = netns::remove(&sb.netns) {
            tracing::warn!(sandbox = %sb.name, "removing namespace: {e}");
        }
        self.remove_files(&sb);
        self.proxies.stop(&sb.id);
        self.commit(&mut inner, next)?;
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

    /// `network connect`.
    pub fn connect(&self, net: &str, req: NetworkConnect) -> Result<(), OpError> {
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let ep_id = next.connect(net, &req.container, req.spec(), random_id())?;
        let ep = next.endpoints[&ep_id].clone();
        let sb = next.sandboxes[&ep.sandbox].clone();
        let port = self.attach_endpoint(&sb, &ep, &next.networks[&ep.network])?;
        if let Err(e) = self.commit(&mut inner, next) {
            let _ = self.remove_port(port);
            return Err(e);
        }
        inner.endpoint_ports.insert(ep_id, port);
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
        self.commit(&mut inner, next)?;
        self.refresh_files(&inner.state, &sb.id);
        Ok(())
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

    /// The VTEP's counters.
    pub fn vxlan(&self) -> Result<VxlanResource, OpError> {
        let s = self.dp.vxlan().map_err(io_err("dataplane"))?;
        Ok(VxlanResource {
            port: self.vxlan_port,
            bound: s.is_some(),
            rx_packets: s.as_ref().map_or(0, |s| s.rx_packets),
            rx_malformed: s.as_ref().map_or(0, |s| s.rx_malformed),
            rx_unknown_vni: s.as_ref().map_or(0, |s| s.rx_unknown_vni),
            rx_unknown_vtep: s.as_ref().map_or(0, |s| s.rx_unknown_vtep),
            tx_packets: s.as_ref().map_or(0, |s| s.tx_packets),
            tx_errors: s.as_ref().map_or(0, |s| s.tx_errors),
        })
    }

    /// `cluster peers`.
    pub fn peers(&self) -> Result<Vec<control_plane::api::PeerResource>, OpError> {
        match &self.cluster {
            Some(c) => Ok(c.peers()),
            None => Err(OpError::Model(ModelError::Conflict(
                "this switchd is not in a cluster: start it with --cluster-dir and --advertise".into(),
            ))),
        }
    }

    /// Gossip datagrams dropped because they did not open under the cluster's key.
    pub fn gossip_dropped(&self) -> Option<u64> {
        self.cluster.as_ref().map(|c| c.dropped_unauthenticated())
    }

    /// Port counters.
    pub fn ports(&self) -> Result<Vec<PortResource>, OpError> {
        let list = self.dp.ports().map_err(io_err("dataplane"))?;
        let inner = self.inner.lock().expect("lock poisoned");
        let names: HashMap<u32, &str> = inner
            .state
            .networks
            .values()
            .map(|n| (n.switch_id, n.name.as_str()))
            .collect();
        Ok(list
            .into_iter()
            .map(|p| PortResource {
                port: p.port.0,
                network: names.get(&p.network.0).copied().unwrap_or("?").to_string(),
                kind: match p.kind {
                    PortKind::Tap => "tap".into(),
                    PortKind::Veth => "veth".into(),
                    PortKind::Vtep => "vtep".into(),
                    PortKind::Gateway => "gateway".into(),
                },
                interface: p.label,
                rx_packets: p.counters.rx_packets,
                rx_bytes: p.counters.rx_bytes,
                tx_packets: p.counters.tx_packets,
                tx_bytes: p.counters.tx_bytes,
                learn_refused: p.counters.learn_refused,
                drops: p
                    .counters
                    .drops_by_reason()
                    .map(|(r, n)| (r.as_str().to_string(), n))
                    .collect(),
            })
            .collect())
    }

    /// The MAC table, with network names.
    pub fn fdb(&self) -> Result<Vec<FdbResource>, OpError> {
        let entries = self.dp.fdb().map_err(io_err("dataplane"))?;
        let ports: HashMap<u32, String> = self
            .dp
            .ports()
            .map_err(io_err("dataplane"))?
            .into_iter()
            .map(|p| (p.port.0, p.label))
            .collect();
        let inner = self.inner.lock().expect("lock poisoned");
        let names: HashMap<u32, &str> = inner
            .state
            .networks
            .values()
            .map(|n| (n.switch_id, n.name.as_str()))
            .collect();
        let now = std::time::Instant::now();
        Ok(entries
            .into_iter()
            .map(|e| FdbResource {
                network: names.get(&e.network.0).copied().unwrap_or("?").to_string(),
                mac: e.mac.to_string(),
                port: e.port.0,
                interface: ports.get(&e.port.0).cloned().unwrap_or_default(),
                age_seconds: now.saturating_duration_since(e.last_seen).as_secs(),
                kind: if e.is_static { "static".into() } else { "learned".into() },
            })
            .collect())
    }
}
