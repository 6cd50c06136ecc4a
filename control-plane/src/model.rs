//! The CNM model: networks, sandboxes (network namespaces) and the endpoints joining them.
//!
//! Operations validate everything first and only then change `State`; an `Err` means nothing
//! changed. They do no I/O: switchd applies a copy of the state, performs the kernel work, and
//! commits the copy to the store only when that work succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use switch::MacAddr;

use crate::cidr::Ipv4Cidr;
use crate::error::ModelError;
use crate::ids::Id;
use crate::ipam::{self, Pool};
use crate::ports::{self, PortBinding};

/// Name of the default bridge network.
pub const DEFAULT_BRIDGE: &str = "bridge";
/// Gateway interface of the default bridge network (Docker's is `docker0`).
pub const DEFAULT_BRIDGE_IFACE: &str = "switch0";
/// Default MAC aging time of a network.
pub const DEFAULT_MAC_AGING: Duration = Duration::from_secs(300);
/// Default per-port cap on learned MAC addresses.
pub const DEFAULT_MAC_LIMIT: u32 = 64;
/// Default MTU of a network's interfaces.
pub const DEFAULT_MTU: u16 = 1500;

/// Option keys accepted by `network create -o`.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// MTU of the network's interfaces.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// MAC aging time in seconds.
pub const OPT_MAC_AGING: &str = "mac_aging";
/// Learned-MAC cap per port.
pub const OPT_MAC_LIMIT: &str = "mac_limit";
/// The VNI of an overlay network (`-o vni=N`).
pub const OPT_VNI: &str = "vni";
/// Docker's key for an overlay network's VNI, as `network inspect` shows it.
pub const OPT_VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// MTU of overlay networks unless given: a 1500-byte underlay minus VXLAN's 50 bytes.
pub const DEFAULT_OVERLAY_MTU: u16 = 1450;
/// The first VNI handed out automatically.
pub const FIRST_AUTO_VNI: u32 = 4096;
const ACCEPTED_OPTIONS: [&str; 4] = [OPT_BRIDGE_NAME, OPT_MTU, OPT_MAC_AGING, OPT_MAC_LIMIT];
const ACCEPTED_OVERLAY_OPTIONS: [&str; 6] = [
    OPT_BRIDGE_NAME,
    OPT_MTU,
    OPT_MAC_AGING,
    OPT_MAC_LIMIT,
    OPT_VNI,
    OPT_VXLANID_LIST,
];

/// A network driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// Our userspace switch with a gateway interface on the host.
    Bridge,
    /// The host's own namespace.
    Host,
    /// Loopback only.
    Null,
    /// Like bridge on this host, and tunnelled to VXLAN peers (RFC 7348) under the network's VNI.
    Overlay,
}

impl Driver {
    /// Docker's name of the driver.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
            Driver::Overlay => "overlay",
        }
    }
}

/// Addressing of a bridge network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetIpam {
    /// The subnet.
    pub subnet: Ipv4Cidr,
    /// Where dynamic addresses come from, if narrower than the subnet.
    pub ip_range: Option<Ipv4Cidr>,
    /// The gateway address (held by the gateway interface on the host).
    pub gateway: Ipv4Addr,
}

impl NetIpam {
    /// The allocation pool.
    pub fn pool(&self) -> Pool {
        Pool {
            subnet: self.subnet,
            ip_range: self.ip_range,
            gateway: self.gateway,
        }
    }
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64-hex ID.
    pub id: Id,
    /// Unique name.
    pub name: String,
    /// Driver.
    pub driver: Driver,
    /// When it was created.
    pub created: SystemTime,
    /// Addressing (bridge networks only).
    pub ipam: Option<NetIpam>,
    /// `--internal`: no route beyond the host.
    pub internal: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options as given.
    pub options: BTreeMap<String, String>,
    /// `bridge`, `host` and `none`: created by switchd, never removed.
    pub builtin: bool,
    /// The switch core's ID for the network on this host.
    pub switch_id: u32,
    /// Name of the gateway interface in switchd's namespace (bridge networks).
    pub bridge_name: Option<String>,
    /// MTU of the network's interfaces.
    pub mtu: u16,
    /// How long learned MACs live without traffic.
    pub mac_aging: Duration,
    /// Learned-MAC cap per port.
    pub mac_limit: u32,
    /// VXLAN network identifier (overlay networks).
    #[serde(default)]
    pub vni: Option<u32>,
    /// Static VXLAN peers (overlay networks): frames from them are accepted and their MACs
    /// learned; broadcast goes to them too.
    #[serde(default)]
    pub vteps: Vec<SocketAddr>,
}

impl Network {
    /// Whether frames of this network pass a switch port on this host (bridge and overlay).
    pub fn is_switched(&self) -> bool {
        matches!(self.driver, Driver::Bridge | Driver::Overlay)
    }

    /// The gateway's MAC address where it must be the same on every host (overlay networks:
    /// an anycast gateway, 02:53 and four bytes of the network ID); `None` lets the kernel pick.
    pub fn gateway_mac(&self) -> Option<MacAddr> {
        if self.driver != Driver::Overlay {
            return None;
        }
        let h = self.id.as_str().as_bytes();
        let byte = |i: usize| {
            let s = std::str::from_utf8(&h[2 * i..2 * i + 2]).unwrap_or("00");
            u8::from_str_radix(s, 16).unwrap_or(0)
        };
        Some(MacAddr([0x02, 0x53, byte(0), byte(1), byte(2), byte(3)]))
    }
}

/// How a sandbox gets its network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "of")]
pub enum SandboxMode {
    /// Its own namespace with interfaces on bridge networks.
    Bridge,
    /// switchd's own namespace.
    Host,
    /// Its own namespace with loopback only.
    None,
    /// The namespace of another sandbox.
    Container(Id),
}

/// A sandbox: one network namespace as a container sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// 64-hex ID.
    pub id: Id,
    /// Unique name; also its name under /run/netns.
    pub name: String,
    /// Mode.
    pub mode: SandboxMode,
    /// When it was created.
    pub created: SystemTime,
    /// The path switchd publishes the namespace at (`/run/netns/NAME`).
    pub netns: PathBuf,
    /// The namespace another runtime made and handed over with `--netns`, if any.
    pub adopted: Option<PathBuf>,
    /// Legacy links (`--link OTHER:ALIAS`, default bridge only).
    #[serde(default)]
    pub links: Vec<Link>,
    /// Published ports (`-p`), forwarded to the sandbox's first address.
    #[serde(default)]
    pub ports: Vec<PortBinding>,
}

/// A legacy link: the other sandbox's address under an alias in this sandbox's hosts file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The linked sandbox.
    pub sandbox: Id,
    /// The name it is known by here.
    pub alias: String,
}

impl Sandbox {
    /// Whether switchd created the namespace (and deletes it on removal).
    pub fn owns_namespace(&self) -> bool {
        self.adopted.is_none() && matches!(self.mode, SandboxMode::Bridge | SandboxMode::None)
    }
}

/// How an endpoint's interface is attached to the switch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// A TAP device inside the sandbox, its descriptor held by switchd (the default).
    #[default]
    Tap,
    /// A veth pair: the container end in the sandbox, the host end read through AF_PACKET.
    Veth,
}

impl PortKind {
    /// Parses `tap` or `veth`; empty means tap.
    ///
    /// # Errors
    /// Any other value.
    pub fn parse(s: &str) -> Result<PortKind, ModelError> {
        match s {
            "" | "tap" => Ok(PortKind::Tap),
            "veth" => Ok(PortKind::Veth),
            other => Err(invalid(format!(
                "invalid port kind {other:?}: accepted kinds are tap and veth"
            ))),
        }
    }

    /// The name as accepted by [`PortKind::parse`].
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::Veth => "veth",
        }
    }
}

/// A sandbox's membership in a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64-hex ID.
    pub id: Id,
    /// The network.
    pub network: Id,
    /// The sandbox.
    pub sandbox: Id,
    /// Interface name inside the sandbox (bridge networks).
    pub ifname: Option<String>,
    /// MAC address (bridge networks).
    #[serde(with = "mac_opt")]
    pub mac: Option<MacAddr>,
    /// IPv4 address (bridge networks).
    pub ip: Option<Ipv4Addr>,
    /// Network-scoped aliases.
    pub aliases: Vec<String>,
    /// How the interface is attached.
    #[serde(default)]
    pub port_kind: PortKind,
}

/// Everything switchd knows, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Networks by ID.
    pub networks: BTreeMap<Id, Network>,
    /// Sandboxes by ID.
    pub sandboxes: BTreeMap<Id, Sandbox>,
    /// Endpoints by ID.
    pub endpoints: BTreeMap<Id, Endpoint>,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    /// Name.
    pub name: String,
    /// Driver name; empty means bridge.
    pub driver: String,
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--ip-range`.
    pub ip_range: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
}

/// What `sandbox create` asks for.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    /// Name.
    pub name: String,
    /// `--network`: a network name or ID, `host`, `none`, or `container:OTHER`; empty means bridge.
    pub network: String,
    /// `--ip`.
    pub ip: Option<String>,
    /// `--mac`.
    pub mac: Option<String>,
    /// `--alias`.
    pub aliases: Vec<String>,
    /// `--netns`: adopt this namespace instead of creating one.
    pub netns: Option<PathBuf>,
    /// `--port-kind`: tap (default) or veth.
    pub port_kind: String,
    /// `--link OTHER[:ALIAS]`.
    pub links: Vec<String>,
    /// `-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`.
    pub publish: Vec<String>,
}

/// What `network connect` asks for.
#[derive(Debug, Clone, Default)]
pub struct ConnectSpec {
    /// `--ip`.
    pub ip: Option<String>,
    /// `--alias`.
    pub aliases: Vec<String>,
    /// A MAC address.
    pub mac: Option<String>,
    /// `--port-kind`: tap (default) or veth.
    pub port_kind: String,
}

fn invalid(msg: impl Into<String>) -> ModelError {
    ModelError::Invalid(msg.into())
}

/// Checks a network, sandbox or alias name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64.
pub fn check_name(kind: &str, name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {kind} name {name:?}: use 1-64 characters from [a-zA-Z0-9_.-], starting with a letter or digit"
        )))
    }
}

impl State {
    /// A state with Docker's three default networks: `bridge` (172.17.0.0/16, gateway
    /// 172.17.0.1, interface `switch0`), `host` and `none`.
    pub fn with_defaults(ids: [Id; 3], now: SystemTime) -> State {
        let [b, h, n] = ids;
        let mut s = State::default();
        let subnet: Ipv4Cidr = "172.17.0.0/16".parse().expect("constant prefix");
        let base = |id: Id, name: &str, driver, switch_id| Network {
            id,
            name: name.to_string(),
            driver,
            created: now,
            ipam: None,
            internal: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            builtin: true,
            switch_id,
            bridge_name: None,
            mtu: DEFAULT_MTU,
            mac_aging: DEFAULT_MAC_AGING,
            mac_limit: DEFAULT_MAC_LIMIT,
            vni: None,
            vteps: Vec::new(),
        };
        let mut bridge = base(b, DEFAULT_BRIDGE, Driver::Bridge, 1);
        bridge.ipam = Some(NetIpam {
            subnet,
            ip_range: None,
            gateway: subnet.first_host(),
        });
        bridge.bridge_name = Some(DEFAULT_BRIDGE_IFACE.to_string());
        bridge
            .options
            .insert(OPT_BRIDGE_NAME.to_string(), DEFAULT_BRIDGE_IFACE.to_string());
        for net in [
            bridge,
            base(h, "host", Driver::Host, 0),
            base(n, "none", Driver::Null, 0),
        ] {
            s.networks.insert(net.id.clone(), net);
        }
        s
    }

    /// Finds a network by full ID, name, or unique ID prefix (Docker's order).
    ///
    /// # Errors
    /// [`ModelError::NetworkNotFound`].
    pub fn network(&self, key: &str) -> Result<&Network, ModelError> {
        find(&self.networks, key, |n| &n.name, |n| &n.id).ok_or_else(|| ModelError::NetworkNotFound(key.to_string()))
    }

    /// Finds a sandbox by full ID, name, or unique ID prefix.
    ///
    /// # Errors
    /// [`ModelError::SandboxNotFound`].
    pub fn sandbox(&self, key: &str) -> Result<&Sandbox, ModelError> {
        find(&self.sandboxes, key, |s| &s.name, |s| &s.id).ok_or_else(|| ModelError::SandboxNotFound(key.to_string()))
    }

    /// Endpoints of a network.
    pub fn endpoints_of_network<'a>(&'a self, net: &'a Id) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints.values().filter(move |e| &e.network == net)
    }

    /// Endpoints of a sandbox, ordered by interface name.
    pub fn endpoints_of_sandbox<'a>(&'a self, sb: &'a Id) -> Vec<&'a Endpoint> {
        let mut v: Vec<&Endpoint> = self.endpoints.values().filter(|e| &e.sandbox == sb).collect();
        v.sort_by_key(|e| e.ifname.as_ref().map(|n| (n.len(), n.clone())));
        v
    }

    /// Creates a network and returns its ID. An automatic subnet also avoids `host_routes`
    /// (the prefixes the host already reaches, as Docker avoids them); a chosen one is only
    /// checked against other networks.
    ///
    /// # Errors
    /// Invalid names, drivers, options or addresses; a name in use or an overlapping subnet.
    pub fn create_network(
        &mut self,
        spec: NetworkSpec,
        id: Id,
        now: SystemTime,
        host_routes: &[Ipv4Cidr],
    ) -> Result<Id, ModelError> {
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
            "macvlan" => {
                return Err(invalid(
                    "driver \"macvlan\" is not available yet: this switchd creates bridge and overlay networks",
                ))
            }
            other => {
                return Err(invalid(format!(
                    "unknown driver \"{other}\": accepted drivers are bridge and overlay"
                )))
            }
        };
        let opts = parse_options(&spec.options, driver)?;
        let vni = match driver {
            Driver::Overlay => Some(self.plan_vni(opts.vni)?),
            _ => None,
        };
        let ipam = self.plan_ipam(&spec, host_routes)?;
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
        let default_mtu = if driver == Driver::Overlay {
            DEFAULT_OVERLAY_MTU
        } else {
            DEFAULT_MTU
        };
        let net = Network {
            id: id.clone(),
            name: spec.name,
            driver,
            created: now,
            ipam: Some(ipam),
            internal: spec.internal,
            labels: spec.labels,
            options,
            builtin: false,
            switch_id,
            bridge_name: Some(bridge_name),
            mtu: opts.mtu.unwrap_or(default_mtu),
            mac_aging: opts.mac_aging.unwrap_or(DEFAULT_MAC_AGING),
            mac_limit: opts.mac_limit.unwrap_or(DEFAULT_MAC_LIMIT),
            vni,
            vteps: Vec::new(),
        };
        self.networks.insert(id.clone(), net);
        Ok(id)
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

    fn plan_ipam(&self, spec: &NetworkSpec, host_routes: &[Ipv4Cidr]) -> Result<NetIpam, ModelError> {
        let taken = self.networks.values().filter_map(|n| n.ipam.map(|i| (n, i.subnet)));
        let subnet = match &spec.subnet {
            Some(s) => {
                let subnet: Ipv4Cidr = s.parse().map_err(invalid)?;
                if subnet.prefix_len() > 30 {
                    return Err(invalid(format!("invalid subnet \"{subnet}\": prefix length must be at most 30 to hold a gateway and an endpoint")));
                }
                if let Some((n, other)) = taken.clone().find(|(_, t)| t.overlaps(&subnet)) {
                    return Err(ModelError::Conflict(format!(
                        "subnet {subnet} overlaps network {} ({other}): choose a subnet that no network uses",
                        n.name
                    )));
                }
                subnet
            }
            None => {
                if spec.gateway.is_some() || spec.ip_range.is_some() {
                    return Err(invalid("--gateway and --ip-range need --subnet"));
                }
                let subnets: Vec<Ipv4Cidr> = taken.map(|(_, t)| t).chain(host_routes.iter().copied()).collect();
                ipam::pick_subnet(subnets.iter()).ok_or_else(|| {
                    ModelError::Conflict(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                    )
                })?
            }
        };
        let ip_range = match &spec.ip_range {
            Some(r) => {
                let r: Ipv4Cidr = r
                    .parse()
                    .map_err(|e: String| invalid(e.replace("subnet", "ip-range")))?;
                if !subnet.covers(&r) {
                    return Err(invalid(format!(
                        "invalid ip-range {r}: it must lie inside the subnet {subnet}"
                    )));
                }
                Some(r)
            }
            None => None,
        };
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
        let users: Vec<&str> = self
            .endpoints_of_network(&net.id)
            .filter_map(|e| self.sandboxes.get(&e.sandbox).map(|s| s.name.as_str()))
            .collect();
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

    /// Removes every user-defined network without endpoints; returns them.
    pub fn prune_networks(&mut self) -> Vec<Network> {
        let unused: Vec<Id> = self
            .networks
            .values()
            .filter(|n| !n.builtin && self.endpoints_of_network(&n.id).next().is_none())
            .map(|n| n.id.clone())
            .collect();
        unused.iter().filter_map(|id| self.networks.remove(id)).collect()
    }

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
        let links = self.resolve_links(&spec.links, net.as_ref())?;
        let ports = self.plan_ports(&spec.publish, &mode, &spec.network, net.as_ref())?;
        let sandbox = Sandbox {
            id: id.clone(),
            name: spec.name.clone(),
            mode: mode.clone(),
            created: now,
            netns: netns_dir.join(&spec.name),
            adopted: spec.netns,
            links,
            ports,
        };
        let mut next = self.clone();
        next.sandboxes.insert(id.clone(), sandbox);
        if let Some(net) = net {
            let cs = ConnectSpec {
                ip: spec.ip,
                aliases: spec.aliases,
                mac: spec.mac,
                port_kind: spec.port_kind,
            };
            next.attach(&net, &id, cs, endpoint_id)?;
        }
        *self = next;
        Ok(id)
    }

    fn resolve_links(&self, links: &[String], net: Option<&Id>) -> Result<Vec<Link>, ModelError> {
        if links.is_empty() {
            return Ok(Vec::new());
        }
        let default = self.network(DEFAULT_BRIDGE)?;
        if net != Some(&default.id) {
            return Err(invalid(
                "--link is supported on the default bridge network only; on user-defined networks sandboxes find each other by name",
            ));
        }
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

    fn plan_ports(
        &self,
        publish: &[String],
        mode: &SandboxMode,
        network: &str,
        net: Option<&Id>,
    ) -> Result<Vec<PortBinding>, ModelError> {
        if publish.is_empty() {
            return Ok(Vec::new());
        }
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
        let mut planned: Vec<PortBinding> = Vec::new();
        for spec in publish {
            for b in ports::parse(spec).map_err(invalid)? {
                if let Some(p) = planned.iter().find(|p| p.clashes(&b)) {
                    return Err(invalid(format!(
                        "host port {}:{}/{} is given twice ({p})",
                        b.host_ip,
                        b.host_port,
                        b.proto.as_str()
                    )));
                }
                if let Some((owner, p)) = self
                    .sandboxes
                    .values()
                    .find_map(|s| s.ports.iter().find(|p| p.clashes(&b)).map(|p| (s, p)))
                {
                    return Err(ModelError::Conflict(format!(
                        "host port {}:{}/{} is already published by sandbox {} ({p})",
                        b.host_ip,
                        b.host_port,
                        b.proto.as_str(),
                        owner.name
                    )));
                }
                planned.push(b);
            }
        }
        Ok(planned)
    }

    /// The address published ports of `sb` are forwarded to: its first interface's.
    pub fn port_target(&self, sb: &Sandbox) -> Option<Ipv4Addr> {
        self.endpoints_of_sandbox(&sb.id).iter().find_map(|e| e.ip)
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
            Driver::Bridge | Driver::Overlay => SandboxMode::Bridge,
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
        let net = self.network(net)?;
        let sb = self.sandbox(sandbox)?;
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
            (SandboxMode::Bridge, Driver::Bridge | Driver::Overlay) => {}
        }
        let (net_id, sb_id) = (net.id.clone(), sb.id.clone());
        self.attach(&net_id, &sb_id, spec, endpoint_id)
    }

    fn attach(&mut self, net_id: &Id, sb_id: &Id, spec: ConnectSpec, endpoint_id: Id) -> Result<Id, ModelError> {
        let net = &self.networks[net_id];
        let sb = &self.sandboxes[sb_id];
        if self.endpoints_of_network(net_id).any(|e| &e.sandbox == sb_id) {
            return Err(ModelError::Conflict(format!(
                "sandbox {} is already connected to network {}",
                sb.name, net.name
            )));
        }
        let Some(ipam) = net.ipam else {
            // host and none networks: a membership record without an interface.
            self.endpoints.insert(
                endpoint_id.clone(),
                Endpoint {
                    id: endpoint_id.clone(),
                    network: net_id.clone(),
                    sandbox: sb_id.clone(),
                    ifname: None,
                    mac: None,
                    ip: None,
                    aliases: vec![],
                    port_kind: PortKind::Tap,
                },
            );
            return Ok(endpoint_id);
        };
        let is_default = net.builtin;
        let port_kind = PortKind::parse(&spec.port_kind)?;
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
        let holders: BTreeMap<Ipv4Addr, &str> = self
            .endpoints_of_network(net_id)
            .filter_map(|e| Some((e.ip?, self.sandboxes.get(&e.sandbox).map_or("?", |s| s.name.as_str()))))
            .collect();
        let ip = match &spec.ip {
            Some(s) => {
                if is_default {
                    return Err(invalid(
                        "user-specified IP address is supported on user-defined networks only",
                    ));
                }
                let ip: Ipv4Addr = s.parse().map_err(|_| {
                    invalid(format!(
                        "invalid IP address {s:?}: expected an IPv4 address like 192.168.0.10"
                    ))
                })?;
                ipam.pool().check_static(ip).map_err(invalid)?;
                if let Some(holder) = holders.get(&ip) {
                    return Err(ModelError::Conflict(format!(
                        "address {ip} is already in use on network {} by sandbox {holder}",
                        net.name
                    )));
                }
                ip
            }
            None => {
                let used: BTreeSet<Ipv4Addr> = holders.keys().copied().collect();
                ipam.pool().allocate(&used).ok_or_else(|| {
                    ModelError::Conflict(format!("no available IPv4 addresses on network {}", net.name))
                })?
            }
        };
        let mac = match &spec.mac {
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
            None => docker_mac(ip),
        };
        if let Some(e) = self.endpoints_of_network(net_id).find(|e| e.mac == Some(mac)) {
            let holder = self.sandboxes.get(&e.sandbox).map_or("?", |s| s.name.as_str());
            return Err(ModelError::Conflict(format!(
                "MAC address {mac} is already in use on network {} by sandbox {holder}",
                net.name
            )));
        }
        let taken: BTreeSet<String> = self
            .endpoints_of_sandbox(sb_id)
            .iter()
            .filter_map(|e| e.ifname.clone())
            .collect();
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !taken.contains(n))
            .expect("unbounded names");
        self.endpoints.insert(
            endpoint_id.clone(),
            Endpoint {
                id: endpoint_id.clone(),
                network: net_id.clone(),
                sandbox: sb_id.clone(),
                ifname: Some(ifname),
                mac: Some(mac),
                ip: Some(ip),
                aliases: spec.aliases,
                port_kind,
            },
        );
        Ok(endpoint_id)
    }

    /// Disconnects a sandbox from a network; returns the removed endpoint.
    ///
    /// # Errors
    /// Unknown network or sandbox, host or none networks, or no such connection.
    pub fn disconnect(&mut self, net: &str, sandbox: &str) -> Result<Endpoint, ModelError> {
        let net = self.network(net)?;
        let sb = self.sandbox(sandbox)?;
        if !net.is_switched() {
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

/// Parses a VTEP address: `IP` or `IP:PORT`, IPv4.
fn parse_vtep(addr: &str, default_port: u16) -> Result<SocketAddr, ModelError> {
    let bad = || {
        invalid(format!(
            "invalid VTEP {addr:?}: expected an IPv4 address, optionally with :PORT"
        ))
    };
    if let Ok(ip) = addr.parse::<Ipv4Addr>() {
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
            return Err(bad());
        }
        return Ok(SocketAddr::from((ip, default_port)));
    }
    match addr.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) if a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast() => {
            Ok(SocketAddr::V4(a))
        }
        _ => Err(bad()),
    }
}

/// Docker's MAC derivation: 02:42 followed by the four bytes of the IPv4 address.
pub fn docker_mac(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
}

struct Options {
    bridge_name: Option<String>,
    mtu: Option<u16>,
    mac_aging: Option<Duration>,
    mac_limit: Option<u32>,
    vni: Option<u32>,
}

fn parse_options(opts: &BTreeMap<String, String>, driver: Driver) -> Result<Options, ModelError> {
    let mut o = Options {
        bridge_name: None,
        mtu: None,
        mac_aging: None,
        mac_limit: None,
        vni: None,
    };
    let accepted: &[&str] = if driver == Driver::Overlay {
        &ACCEPTED_OVERLAY_OPTIONS
    } else {
        &ACCEPTED_OPTIONS
    };
    for (k, v) in opts {
        let bad = |what: &str| invalid(format!("invalid value {v:?} for option {k}: {what}"));
        match k.as_str() {
            OPT_BRIDGE_NAME => {
                let ok = !v.is_empty()
                    && v.len() <= 15
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if !ok {
                    return Err(bad("an interface name of 1-15 characters from [a-zA-Z0-9_.-]"));
                }
                o.bridge_name = Some(v.clone());
            }
            OPT_MTU => {
                o.mtu = Some(
                    v.parse()
                        .ok()
                        .filter(|m| (68..=65535).contains(m))
                        .ok_or_else(|| bad("an MTU of 68-65535"))?,
                )
            }
            OPT_MAC_AGING => {
                let s: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=1_000_000).contains(s))
                    .ok_or_else(|| bad("seconds, 1-1000000"))?;
                o.mac_aging = Some(Duration::from_secs(s));
            }
            OPT_MAC_LIMIT => {
                o.mac_limit = Some(
                    v.parse()
                        .ok()
                        .filter(|n| (1..=65536).contains(n))
                        .ok_or_else(|| bad("a count of 1-65536"))?,
                )
            }
            OPT_VNI | OPT_VXLANID_LIST if driver == Driver::Overlay => {
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=overlay::Vni::MAX).contains(n))
                    .ok_or_else(|| bad("a VNI of 1-16777215"))?;
                if o.vni.is_some_and(|x| x != n) {
                    return Err(bad("a VNI given once"));
                }
                o.vni = Some(n);
            }
            other => {
                return Err(invalid(format!(
                    "unknown option {other:?} for a {} network: accepted options are {}",
                    driver.as_str(),
                    accepted.join(", ")
                )))
            }
        }
    }
    Ok(o)
}

fn find<'a, T>(
    map: &'a BTreeMap<Id, T>,
    key: &str,
    name: impl Fn(&T) -> &String,
    id: impl Fn(&T) -> &Id,
) -> Option<&'a T> {
    if key.is_empty() {
        return None;
    }
    if let Some(v) = map.values().find(|v| id(v).as_str() == key) {
        return Some(v);
    }
    if let Some(v) = map.values().find(|v| name(v) == key) {
        return Some(v);
    }
    let mut prefixed = map.values().filter(|v| id(v).as_str().starts_with(key));
    match (prefixed.next(), prefixed.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

mod mac_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use switch::MacAddr;

    pub fn serialize<S: Serializer>(m: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.collect_str(m),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests;
