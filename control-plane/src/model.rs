//! The CNM model: networks, sandboxes (network namespaces) and the endpoints joining them.
//!
//! Operations validate everything first and only then change `State`; an `Err` means nothing
//! changed. They do no I/O: switchd applies a copy of the state, performs the kernel work, and
//! commits the copy to the store only when that work succeeded.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use switch::MacAddr;

use crate::cidr::{Ipv4Cidr, Ipv6Cidr};
use crate::error::ModelError;
use crate::ids::Id;
use crate::ipam::Pool;
use crate::ports::PortBinding;

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
/// Whether sandboxes may send only from their own addresses (`-o port_security=false` lets
/// sandboxes that route other subnets send from any).
pub const OPT_PORT_SECURITY: &str = "port_security";
/// Broadcast, multicast and unknown-unicast frames per second a sandbox's port may send
/// (`-o bum_pps=N`, 0: no limit).
pub const OPT_BUM_PPS: &str = "bum_pps";
/// The VNI of an overlay network (`-o vni=N`).
pub const OPT_VNI: &str = "vni";
/// Docker's key for an overlay network's VNI, as `network inspect` shows it.
pub const OPT_VXLANID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// MTU of overlay networks unless given: a 1500-byte underlay minus VXLAN's 50 bytes.
pub const DEFAULT_OVERLAY_MTU: u16 = 1450;
/// The same over an IPv6 underlay, whose outer header is 20 bytes longer.
pub const DEFAULT_OVERLAY_MTU6: u16 = DEFAULT_OVERLAY_MTU - 20;
/// How many hosts an overlay network's addresses are dealt to unless `-o max_hosts` says.
pub const DEFAULT_MAX_HOSTS: u32 = 64;
/// The option setting it.
pub const OPT_MAX_HOSTS: &str = "max_hosts";
/// An overlay network whose frames cross the underlay sealed (Docker's word).
pub const OPT_ENCRYPTED: &str = "encrypted";
/// The default MTU of an encrypted overlay network: a 1500-byte underlay less the outer
/// IP and UDP headers, ESP's header, IV, trailer and ICV, the inner UDP and VXLAN headers and
/// the inner Ethernet header (1500 - 20 - 8 - 8 - 8 - 5 - 16 - 8 - 8 - 14 = 1405), rounded down.
pub const DEFAULT_ENCRYPTED_MTU: u16 = 1400;
/// The same over an IPv6 underlay (1385, rounded down).
pub const DEFAULT_ENCRYPTED_MTU6: u16 = 1380;

/// What planning a network needs to know of the host it is made on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The IPv4 prefixes the host routes to, but its default route: an automatic subnet
    /// avoids them, and a chosen one may not overlap them.
    pub routes: Vec<Ipv4Cidr>,
    /// The same for IPv6.
    pub routes6: Vec<Ipv6Cidr>,
    /// The underlay between hosts is IPv6: overlay networks' MTUs default 20 bytes lower.
    pub underlay6: bool,
    /// Where automatic IPv4 subnets come from (`--default-address-pool`); none: Docker's
    /// defaults.
    pub pools: Vec<crate::ipam::AddressPool<Ipv4Addr>>,
    /// Where automatic IPv6 subnets come from; none: /64s of the host's unique local prefix.
    pub pools6: Vec<crate::ipam::AddressPool<Ipv6Addr>>,
}
/// The parent interface of a macvlan network.
pub const OPT_PARENT: &str = "parent";
/// The macvlan mode.
pub const OPT_MACVLAN_MODE: &str = "macvlan_mode";
/// Whether the host gets a macvlan child of its own.
pub const OPT_HOST_ACCESS: &str = "host_access";
const ACCEPTED_MACVLAN_OPTIONS: [&str; 4] = [OPT_PARENT, OPT_MACVLAN_MODE, OPT_MTU, OPT_HOST_ACCESS];
/// The first VNI handed out automatically.
pub const FIRST_AUTO_VNI: u32 = 4096;
/// Whether traffic from the network's subnets leaving the host is masqueraded (Docker's
/// bridge option; true unless set false).
pub const OPT_IP_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// Whether sandboxes of a bridge network reach each other (Docker's bridge option; true unless
/// set false).
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
/// The host address ports published without one bind (Docker's bridge option).
pub const OPT_HOST_BINDING_IPV4: &str = "com.docker.network.bridge.host_binding_ipv4";
/// Options of every switched network.
const ACCEPTED_OPTIONS: [&str; 8] = [
    OPT_BRIDGE_NAME,
    OPT_MTU,
    OPT_MAC_AGING,
    OPT_MAC_LIMIT,
    OPT_PORT_SECURITY,
    OPT_BUM_PPS,
    OPT_IP_MASQUERADE,
    OPT_HOST_BINDING_IPV4,
];
/// Options of overlay networks alone.
const OVERLAY_ONLY_OPTIONS: [&str; 4] = [OPT_VNI, OPT_VXLANID_LIST, OPT_MAX_HOSTS, OPT_ENCRYPTED];

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
    /// Kernel macvlan children of a parent interface: sandboxes sit on the physical LAN.
    Macvlan,
}

impl Driver {
    /// Docker's name of the driver.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
            Driver::Overlay => "overlay",
            Driver::Macvlan => "macvlan",
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
    /// How far `ip` lies into the subnet.
    pub fn offset(&self, ip: Ipv4Addr) -> u32 {
        u32::from(ip).wrapping_sub(u32::from(self.subnet.network()))
    }

    /// The allocation pool.
    pub fn pool(&self, part: crate::ipam::Part) -> Pool {
        Pool {
            part,
            subnet: self.subnet,
            ip_range: self.ip_range,
            gateway: self.gateway,
        }
    }
}

/// One IPv6 subnet of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetIpam6 {
    /// The subnet.
    pub subnet: Ipv6Cidr,
    /// Where dynamic addresses come from, if narrower than the subnet.
    pub ip_range: Option<Ipv6Cidr>,
    /// The gateway address (held by the gateway interface on the host).
    pub gateway: Ipv6Addr,
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
    /// IPv6 subnets (`--ipv6`), in the order given; empty: IPv6 is off on the network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipam6: Vec<NetIpam6>,
    /// Addresses of its subnets no endpoint gets (`--aux-address NAME=IP`): other devices on
    /// the network's LAN, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, IpAddr>,
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
    /// Whether sandboxes send only from their endpoints' addresses (port security).
    #[serde(default = "yes")]
    pub port_security: bool,
    /// Broadcast, multicast and unknown-unicast frames per second per sandbox port; 0: none.
    #[serde(default = "default_bum_pps")]
    pub bum_pps: u32,
    /// VXLAN network identifier (overlay networks).
    #[serde(default)]
    pub vni: Option<u32>,
    /// Static VXLAN peers (overlay networks): frames from them are accepted and their MACs
    /// learned; broadcast goes to them too.
    #[serde(default)]
    pub vteps: Vec<SocketAddr>,
    /// `-o encrypted` (overlay networks): frames between hosts are sealed as ESP under keys
    /// each pair of hosts derives; no static VTEP can join.
    #[serde(default)]
    pub encrypted: bool,
    /// How many cluster hosts the addresses of an overlay network are dealt to, for one made
    /// before addresses were claimed on demand.
    #[serde(default)]
    pub max_hosts: Option<u32>,
    /// Who owns which addresses of an overlay network whose addresses are claimed on demand
    /// ([`crate::cluster::space`]), offsets from the subnet's first address; `None` for every
    /// other network.
    #[serde(default)]
    pub space: Option<crate::cluster::space::Space>,
    /// The parent interface of a macvlan network.
    #[serde(default)]
    pub parent: Option<String>,
    /// The macvlan mode: bridge, private, vepa or passthru.
    #[serde(default)]
    pub macvlan_mode: Option<String>,
    /// Whether the host gets a macvlan child of its own on this network (`-o host_access=true`),
    /// holding the subnet's last host address, so it can reach its macvlan sandboxes.
    #[serde(default)]
    pub host_access: bool,
    /// The 802.1Q VLAN of a macvlan network whose parent is given as `IFACE.VLAN`.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// How this host carries a macvlan network, chosen when it is created here (`None` in
    /// states written before VLAN parents existed: the kernel's macvlan).
    #[serde(default)]
    pub native_path: Option<NativePath>,
    /// Whether switchd created the kernel VLAN interface named `parent` (it then deletes it
    /// with the network, as Docker does; an interface that existed before is left alone).
    #[serde(default)]
    pub vlan_link_created: bool,
}

/// How a macvlan network reaches the LAN on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NativePath {
    /// Kernel macvlan children of the parent interface.
    KernelMacvlan,
    /// Kernel macvlan children of the kernel's 802.1Q interface `IFACE.VLAN`.
    Kernel8021q,
    /// switchd's own 802.1Q: the parent read and written through AF_PACKET, frames tagged
    /// on the way out and accepted only with the network's tag, sandboxes on TAP ports.
    Userspace8021q,
}

impl NativePath {
    /// The name `network inspect` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            NativePath::KernelMacvlan => "kernel-macvlan",
            NativePath::Kernel8021q => "kernel-8021q",
            NativePath::Userspace8021q => "userspace-8021q",
        }
    }
}

impl Network {
    /// Whether frames of this network pass a switch port on this host (bridge and overlay;
    /// macvlan frames never reach switchd).
    pub fn is_switched(&self) -> bool {
        matches!(self.driver, Driver::Bridge | Driver::Overlay)
    }

    /// Whether the network's sandboxes sit on switch ports: switched networks, and macvlan
    /// networks carried by switchd's own 802.1Q.
    pub fn has_switch_ports(&self) -> bool {
        self.is_switched() || self.native_path == Some(NativePath::Userspace8021q)
    }

    /// Whether the network's sandboxes hold kernel macvlan children (no switch port).
    pub fn has_kernel_children(&self) -> bool {
        self.driver == Driver::Macvlan && !self.has_switch_ports()
    }

    /// The physical interface under a macvlan network: the parent without its `.VLAN`.
    pub fn parent_iface(&self) -> Option<&str> {
        let p = self.parent.as_deref()?;
        Some(match self.vlan {
            Some(_) => p.rsplit_once('.').map_or(p, |(iface, _)| iface),
            None => p,
        })
    }

    /// Whether IPv6 is on (`--ipv6`).
    pub fn enable_ipv6(&self) -> bool {
        !self.ipam6.is_empty()
    }

    /// Whether traffic from its subnets leaving the host is masqueraded (`-o
    /// com.docker.network.bridge.enable_ip_masquerade=false` turns it off).
    pub fn ip_masquerade(&self) -> bool {
        self.options.get(OPT_IP_MASQUERADE).is_none_or(|v| v != "false")
    }

    /// Whether its sandboxes reach each other (`-o com.docker.network.bridge.enable_icc=false`
    /// leaves each reaching only the gateway, and through it the outside and published ports).
    pub fn icc(&self) -> bool {
        self.options.get(OPT_ICC).is_none_or(|v| v != "false")
    }

    /// The host address its sandboxes' ports published without one bind (`-o
    /// com.docker.network.bridge.host_binding_ipv4=IP`); none: every address.
    pub fn host_binding_ipv4(&self) -> Option<Ipv4Addr> {
        self.options.get(OPT_HOST_BINDING_IPV4)?.parse().ok()
    }

    /// Whether the network gives its endpoints addresses (of either family): bridge, overlay
    /// and macvlan networks do, host and none do not.
    pub fn has_addresses(&self) -> bool {
        self.ipam.is_some() || !self.ipam6.is_empty()
    }

    /// The address of the gateway sandboxes ask for names (the embedded DNS listens on every
    /// gateway address): the IPv4 gateway, or an IPv6-only network's first IPv6 one.
    pub fn dns_gateway(&self) -> Option<std::net::IpAddr> {
        match (self.ipam, self.ipam6.first()) {
            (Some(i), _) => Some(i.gateway.into()),
            (None, Some(p)) => Some(p.gateway.into()),
            (None, None) => None,
        }
    }

    /// The IPv6 address of an overlay network's endpoint whose IPv4 address is `ip`: the one at
    /// the same offset into the IPv6 subnet. Whoever owns an IPv4 address of the network owns
    /// its IPv6 twin, so the claims on the IPv4 addresses cover both families.
    pub fn overlay_ip6(&self, ip: Ipv4Addr) -> Option<Ipv6Addr> {
        let (ipam, p) = (self.ipam?, self.ipam6.first()?);
        (self.driver == Driver::Overlay).then(|| network::offset6(p.subnet, ipam.offset(ip)))
    }

    /// The IPv6 subnet holding `ip`, if any.
    pub fn ipam6_of(&self, ip: Ipv6Addr) -> Option<&NetIpam6> {
        self.ipam6.iter().find(|p| p.subnet.contains(ip))
    }

    /// Whether `ip` is an address of the host's own macvlan child (`host_access`).
    pub fn is_host_access_address(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.host_access_address() == Some(a),
            IpAddr::V6(a) => self.host_access_address6() == Some(a),
        }
    }

    /// Why no endpoint may hold `ip`, if none may: the host's own interface holds it, or it
    /// is an auxiliary address (in words that follow "reserved").
    pub fn reserved(&self, ip: IpAddr) -> Option<String> {
        if self.is_host_access_address(ip) {
            return Some("for the host's own interface (host_access)".into());
        }
        let (name, _) = self.aux_addresses.iter().find(|(_, a)| **a == ip)?;
        Some(format!("as auxiliary address {name:?}"))
    }

    /// The address of the host's own macvlan child (`host_access`): the subnet's last host
    /// address, never handed to a sandbox.
    pub fn host_access_address(&self) -> Option<Ipv4Addr> {
        let ipam = self.ipam.filter(|_| self.host_access)?;
        Some(Ipv4Addr::from(u32::from(ipam.subnet.broadcast()) - 1))
    }

    /// The IPv6 address of the host's own macvlan child (`host_access`) on a dual-stack
    /// network: the first IPv6 subnet's last address, never handed to a sandbox.
    pub fn host_access_address6(&self) -> Option<Ipv6Addr> {
        let p = self.ipam6.first().filter(|_| self.host_access)?;
        Some(p.subnet.last())
    }

    /// The gateway's MAC address on switched networks: 02:53 and four bytes of the network
    /// ID, the same on every host (an overlay network's anycast gateway), and known before the
    /// interface exists so that no sandbox can ask for it. `None` on other networks (the
    /// kernel picks the host's own macvlan child's).
    pub fn gateway_mac(&self) -> Option<MacAddr> {
        if !matches!(self.driver, Driver::Bridge | Driver::Overlay) {
            return None;
        }
        let b = self.id.bytes();
        Some(MacAddr([0x02, 0x53, b[0], b[1], b[2], b[3]]))
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

/// A port of a sandbox's own, and its protocol.
pub type ExposedPort = (u16, crate::ports::Proto);

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
    /// Its exposed ports (`--expose`, and the sandbox's side of each published one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed: Vec<ExposedPort>,
    /// Labels (`--label K=V`; the CNI plugin keeps its container ID here).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--dns`, `--dns-search` and `--dns-option`.
    #[serde(default, skip_serializing_if = "DnsConfig::is_empty")]
    pub dns: DnsConfig,
    /// `--add-host NAME:IP` lines of its hosts file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<ExtraHost>,
}

/// A sandbox's own resolver settings, as Docker's `--dns`, `--dns-search` and `--dns-option`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// Resolvers: on a user-defined network the embedded DNS forwards the sandbox's queries
    /// for other names to them; on the default bridge they are its resolv.conf's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IpAddr>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options (`ndots:2`, `timeout:1`, `rotate`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl DnsConfig {
    /// Nothing set.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

/// A line of a sandbox's hosts file that `--add-host` asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    /// The name.
    pub name: String,
    /// Its address; `None`: `host-gateway`, the host's address on the sandbox's first network.
    pub ip: Option<IpAddr>,
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
    /// Whether `netns` is switchd's path (its namespace, or its publication of another's),
    /// which goes with the sandbox. A Docker container's is Docker's own path.
    pub fn has_own_path(&self) -> bool {
        self.adopted.as_ref() != Some(&self.netns)
    }

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
    /// IPv6 address (networks with IPv6 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Network-scoped aliases.
    pub aliases: Vec<String>,
    /// How the interface is attached.
    #[serde(default)]
    pub port_kind: PortKind,
    /// Whether the sandbox's default route goes through this network's gateway; `None` in
    /// stores written before interfaces could be named, where it was the one named `eth0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<bool>,
    /// Whether switchd made the interface in its own namespace under `ifname` and handed it to
    /// a runtime (Docker) that moved it into the sandbox and named it there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handoff: bool,
    /// Links on a user-defined network (`--link OTHER:ALIAS`): names only this endpoint's
    /// sandbox resolves, on this network, to the other sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

impl Endpoint {
    /// Whether the sandbox's default route goes through this network's gateway (the first
    /// network a sandbox joins, as Docker's).
    pub fn has_default_route(&self) -> bool {
        self.default_route
            .unwrap_or_else(|| self.ifname.as_deref() == Some("eth0"))
    }
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
    /// This host's index in the cluster (from its certificate), which picks its share of every
    /// overlay network's addresses; `None` outside a cluster.
    #[serde(skip)]
    pub host_index: Option<u32>,
    /// This host's name in the cluster (from its certificate), which owns claims on overlay
    /// networks' addresses; `None` outside a cluster.
    #[serde(skip)]
    pub host_name: Option<String>,
    /// Endpoints other hosts of the cluster hold on overlay networks, by network (learned
    /// through the control plane; not stored: the cluster tells a restarted host again). A
    /// hash map per network: every host holds every endpoint of the cluster, and a lookup
    /// here costs one probe where a B-tree of thousands of IDs costs a dozen cache misses.
    #[serde(skip)]
    pub remote: BTreeMap<Id, FxHashMap<Id, RemoteEndpoint>>,
    /// What Docker holds through the plugin: pools, networks and endpoints by Docker's IDs.
    #[serde(default)]
    pub docker: DockerState,
    /// Hosts the cluster's CA revoked, as the revocations came (when issued, ms since the
    /// epoch, and the CA's signature): spread again after a restart, so a restarted host
    /// refuses them before it hears from any other.
    #[serde(default)]
    pub revocations: BTreeMap<String, (u64, Vec<u8>)>,
}

/// An endpoint on another host (its addressing and names) as its record says: the record
/// itself, shared with the host's records.
pub type RemoteEndpoint = std::sync::Arc<crate::cluster::records::EndpointRecord>;

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
    /// `--aux-address` of the IPv4 subnet: name and address.
    pub aux_addresses: BTreeMap<String, String>,
    /// `--ipv6`: IPv6 on, in the subnets of `pools6` or, when there are none, in a /64 of
    /// this host's unique local prefix.
    pub ipv6: bool,
    /// The IPv6 pools given (`--subnet`, `--gateway` and `--ip-range` of IPv6).
    pub pools6: Vec<PoolSpec>,
    /// `--ipv4=false` (Docker's `EnableIPv4: false`): an IPv6-only network.
    pub disable_ipv4: bool,
    /// `--internal`.
    pub internal: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
}

/// One address pool as asked for: a subnet, with a gateway and a range inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolSpec {
    /// The subnet.
    pub subnet: Option<String>,
    /// The gateway.
    pub gateway: Option<String>,
    /// The range of dynamic addresses.
    pub ip_range: Option<String>,
    /// Addresses of the subnet no endpoint gets: name and address.
    pub aux_addresses: BTreeMap<String, String>,
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
    /// `--ip6`.
    pub ip6: Option<String>,
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
    /// `-p [[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/tcp|udp|sctp]`.
    pub publish: Vec<String>,
    /// `--expose PORT[-PORT][/PROTO]`.
    pub expose: Vec<String>,
    /// `-P`: publish every exposed port on a host port chosen.
    pub publish_all: bool,
    /// Whether the host lets switchd bind a host port it would choose (switchd tries to);
    /// none: every port not published already is free.
    pub host_port_free: Option<fn(&PortBinding) -> bool>,
    /// `--label K=V`.
    pub labels: BTreeMap<String, String>,
    /// The interface's name in the sandbox (default `eth0`).
    pub ifname: Option<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP` (or `NAME=IP`; `host-gateway` for the host's address).
    pub add_hosts: Vec<String>,
}

/// What `network connect` asks for.
#[derive(Debug, Clone, Default)]
pub struct ConnectSpec {
    /// `--ip`.
    pub ip: Option<String>,
    /// `--ip6`.
    pub ip6: Option<String>,
    /// `--alias`.
    pub aliases: Vec<String>,
    /// A MAC address.
    pub mac: Option<String>,
    /// `--port-kind`: tap (default) or veth.
    pub port_kind: String,
    /// `--link OTHER[:ALIAS]` on a user-defined network.
    pub links: Vec<String>,
    /// `--driver-opt K=V`: `com.docker.network.endpoint.ifname` names the interface.
    pub driver_opts: BTreeMap<String, String>,
    /// The interface's name in the sandbox (default: the first free `ethN`).
    pub ifname: Option<String>,
}

impl State {
    /// Refuses IDs an object already has: the caller draws them at random, and a repeat would
    /// overwrite that object.
    fn fresh_ids(&self, ids: &[&Id]) -> Result<(), ModelError> {
        match ids.iter().find(|id| {
            self.networks.contains_key(**id) || self.sandboxes.contains_key(**id) || self.endpoints.contains_key(**id)
        }) {
            Some(id) => Err(ModelError::Conflict(format!(
                "object ID {id} is already in use: nothing was changed"
            ))),
            None => Ok(()),
        }
    }
}

impl Network {
    /// A sandbox's port on this network, switch network `network`, taking frames of up to
    /// `max_frame_len` bytes: held to sending as `mac`, `ipv4` and `ipv6` (unless
    /// `port_security=false`), the network's MTU, storm and learning limits, and isolated from
    /// the network's other sandboxes when inter-container communication is off.
    pub fn sandbox_port(
        &self,
        network: switch::NetworkId,
        max_frame_len: usize,
        mac: MacAddr,
        (ipv4, ipv6): (Option<Ipv4Addr>, Option<Ipv6Addr>),
    ) -> switch::PortConfig {
        switch::PortConfig {
            network,
            max_frame_len,
            learn_limit: self.mac_limit,
            split_horizon_group: 0,
            isolated: !self.icc(),
            guard: Some(switch::Guard {
                source: self.port_security.then_some(switch::Source { mac, ipv4, ipv6 }),
                mtu: self.mtu,
                bum_pps: self.bum_pps,
            }),
            locked: false,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_bum_pps() -> u32 {
    switch::DEFAULT_BUM_PPS
}

fn invalid(msg: impl std::fmt::Display) -> ModelError {
    ModelError::Invalid(msg.to_string())
}

/// Checks an interface name given for a sandbox: what Linux accepts as a literal name (1-15
/// bytes, no `/`, `:` or white space, not `.` or `..`), and no `%`, which the kernel would
/// read as a template and number itself (`e%d` becomes `e0`, then `e1` on a restart).
pub fn check_ifname(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && !b"/:%".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid interface name {name:?}: use 1-15 printable characters without '/', ':', '%' or spaces"
        )))
    }
}

/// Checks a network, sandbox or alias name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64.
pub fn check_name(kind: &str, name: &str) -> Result<(), ModelError> {
    if switch_api::names::valid(name) {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {kind} name {name:?}: {}",
            switch_api::names::RULE
        )))
    }
}

impl State {
    /// A remote endpoint as its record says; it leaves whatever place it held before (a
    /// moved endpoint: same ID, new host or address).
    pub fn set_remote(&mut self, id: Id, e: RemoteEndpoint) {
        for (n, m) in &mut self.remote {
            if *n != e.network {
                m.remove(&id);
            }
        }
        self.remote.entry(e.network.clone()).or_default().insert(id, e);
    }

    /// Forgets a remote endpoint.
    pub fn remove_remote(&mut self, id: &Id) {
        for m in self.remote.values_mut() {
            m.remove(id);
        }
    }

    /// Forgets every remote endpoint of `host` (declared down).
    pub fn remove_remotes_of_host(&mut self, host: &str) {
        for m in self.remote.values_mut() {
            m.retain(|_, r| &*r.host != host);
        }
    }

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
            ipam6: Vec::new(),
            aux_addresses: BTreeMap::new(),
            internal: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            builtin: true,
            switch_id,
            bridge_name: None,
            mtu: DEFAULT_MTU,
            mac_aging: DEFAULT_MAC_AGING,
            mac_limit: DEFAULT_MAC_LIMIT,
            port_security: true,
            bum_pps: switch::DEFAULT_BUM_PPS,
            vni: None,
            vteps: Vec::new(),
            encrypted: false,
            max_hosts: None,
            space: None,
            parent: None,
            macvlan_mode: None,
            host_access: false,
            vlan: None,
            native_path: None,
            vlan_link_created: false,
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
}

/// Docker's MAC derivation: 02:42 followed by the four bytes of the IPv4 address.
pub fn docker_mac(ip: Ipv4Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
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
    if let Some(v) = Id::parse(key).and_then(|k| map.get(&k)) {
        return Some(v);
    }
    if let Some(v) = map.values().find(|v| name(v) == key) {
        return Some(v);
    }
    let mut prefixed = map.values().filter(|v| id(v).has_prefix(key));
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

mod claims;
mod docker;
mod network;
pub use network::{space_size, MAX_AUX_ADDRESSES};
mod sandbox;

pub use docker::{
    handoff_name, DockerEndpoint, DockerNetwork, DockerNetworkSpec, DockerPool, DockerState, Joined, Left,
    DOCKER_IFNAME_PREFIX, LABEL_DOCKER_SANDBOX, OPT_DOCKER_DRIVER, OPT_DOCKER_NETWORK,
};

#[cfg(test)]
mod docker_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;
