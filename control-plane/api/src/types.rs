//! The JSON bodies of switchd's HTTP API, in Docker Engine API shapes (PascalCase keys)
//! wherever Docker has them.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// An error answer: `{"message": "..."}` as Docker's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One sentence naming the bad value and what is accepted.
    pub message: String,
}

/// `POST /networks/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NetworkCreate {
    /// Name.
    pub name: String,
    /// Driver; empty means bridge.
    #[serde(default)]
    pub driver: String,
    /// `--internal`.
    #[serde(default)]
    pub internal: bool,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Addressing.
    #[serde(default, rename = "IPAM")]
    pub ipam: Option<IpamCreate>,
    /// `--ipv6`: IPv6 on, in the IPv6 pools of `ipam` or in a unique local /64 of the host's.
    #[serde(default, rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// IPv4 on (the default); IPv6-only networks are refused.
    #[serde(default, rename = "EnableIPv4", skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
}

/// The IPAM part of [`NetworkCreate`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamCreate {
    /// At most one IPv4 pool, and IPv6 pools.
    #[serde(default)]
    pub config: Vec<IpamPool>,
}

/// One IPAM pool as Docker writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct IpamPool {
    /// Subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Range for dynamic addresses.
    #[serde(default, rename = "IPRange", skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Addresses of the subnet no endpoint gets, by name (`--aux-address NAME=IP`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// Answer to a create: the new object's ID.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateResponse {
    /// 64-hex ID.
    pub id: String,
    /// Non-fatal remarks.
    #[serde(default)]
    pub warning: String,
}

/// `GET /networks` and `GET /networks/{id}`: Docker's NetworkResource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkResource {
    /// Name.
    pub name: String,
    /// 64-hex ID.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Always `local` here.
    pub scope: String,
    /// Driver.
    pub driver: String,
    /// Whether IPv4 is on.
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    /// Whether IPv6 is on.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Addressing.
    #[serde(rename = "IPAM")]
    pub ipam: IpamResource,
    /// No route beyond the host.
    pub internal: bool,
    /// Sandboxes may be attached by hand.
    pub attachable: bool,
    /// Swarm's ingress network (never here).
    pub ingress: bool,
    /// Config-from network.
    pub config_from: ConfigFrom,
    /// Config-only network.
    pub config_only: bool,
    /// Attached sandboxes by sandbox ID.
    pub containers: BTreeMap<String, EndpointResource>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// How a macvlan network reaches the LAN on this host (not in Docker's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeResource>,
    /// How many addresses of an overlay network each host holds and uses, for a network whose
    /// addresses are claimed on demand (not in Docker's shape).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, HostAddresses>,
}

/// `cluster revoke`: the CA's revocation of a host, for the cluster to spread.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RevokeRequest {
    /// The host revoked.
    pub host: String,
    /// When the CA issued it, ms since the epoch.
    pub issued_ms: u64,
    /// The CA's signature, in hex.
    pub signature: String,
}

/// What `cluster forget` took over: per overlay network, how many addresses.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct ForgetResponse {
    /// Addresses taken over, by network name.
    pub networks: BTreeMap<String, u32>,
}

/// One host's addresses of an overlay network.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HostAddresses {
    /// How many it owns.
    pub held: u32,
    /// How many of those its endpoints use.
    pub used: u32,
}

/// How a macvlan network is carried on the host that answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct NativeResource {
    /// The physical interface.
    pub parent: String,
    /// The 802.1Q VLAN, if any.
    #[serde(rename = "VLAN", default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// `kernel-macvlan`, `kernel-8021q` or `userspace-8021q`.
    pub path: String,
}

/// IPAM of a [`NetworkResource`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct IpamResource {
    /// Always `default`.
    pub driver: String,
    /// Options (none).
    pub options: BTreeMap<String, String>,
    /// Pools.
    pub config: Vec<IpamPool>,
}

/// Docker's ConfigFrom.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigFrom {
    /// Empty.
    pub network: String,
}

/// One attached sandbox in a [`NetworkResource`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointResource {
    /// Sandbox name.
    pub name: String,
    /// Endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// MAC address, or empty.
    pub mac_address: String,
    /// `a.b.c.d/len`, or empty.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// `addr/len`, or empty.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// RFC 3339 with nanoseconds, as Docker prints `Created`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// `POST /networks/{id}/connect`, Docker's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnect {
    /// Sandbox name or ID.
    pub container: String,
    /// Endpoint settings.
    #[serde(default)]
    pub endpoint_config: Option<EndpointConfig>,
}

/// Endpoint settings of a connect.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfig {
    /// Static addressing.
    #[serde(default, rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    /// Network-scoped aliases.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A chosen MAC address.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// How the interface is attached: `tap` (default) or `veth` (ours, not Docker's).
    #[serde(default)]
    pub port_kind: Option<String>,
    /// The interface's name in the sandbox (ours; default: the first free `ethN`).
    #[serde(default)]
    pub interface: Option<String>,
    /// Links, `OTHER[:ALIAS]`: names only this sandbox resolves on the network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Driver options of the endpoint (`com.docker.network.endpoint.ifname`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

/// Static addressing of an endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointIpam {
    /// `--ip`.
    #[serde(default, rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
    /// `--ip6`.
    #[serde(default, rename = "IPv6Address", skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkDisconnect {
    /// Sandbox name or ID.
    pub container: String,
    /// Accepted for Docker compatibility; a disconnect always removes the endpoint.
    #[serde(default)]
    pub force: bool,
}

/// `POST /networks/prune`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneResponse {
    /// Names of the removed networks.
    pub networks_deleted: Vec<String>,
}

/// `POST /sandboxes/create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SandboxCreate {
    /// Name.
    pub name: String,
    /// Network name or ID, `host`, `none`, or `container:OTHER`; empty means bridge.
    #[serde(default)]
    pub network: String,
    /// Static address.
    #[serde(default, rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
    /// Static IPv6 address.
    #[serde(default, rename = "IPv6Address", skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Chosen MAC address.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// Aliases on the network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Adopt this namespace instead of creating one.
    #[serde(default)]
    pub netns: Option<String>,
    /// How the interface is attached: `tap` (default) or `veth`.
    #[serde(default)]
    pub port_kind: Option<String>,
    /// Legacy links, `OTHER[:ALIAS]` (default bridge only).
    #[serde(default)]
    pub links: Vec<String>,
    /// Published ports, `[[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/tcp|udp|sctp]`.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Exposed ports, `PORT[-PORT][/tcp|udp|sctp]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Publish every exposed port on a host port switchd chooses (Docker's `-P`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_all_ports: bool,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The interface's name in the sandbox (default `eth0`).
    #[serde(default)]
    pub interface: Option<String>,
    /// Its own resolvers and hosts lines.
    #[serde(flatten)]
    pub resolver: SandboxResolver,
}

/// A sandbox's own resolver settings and hosts lines, in the keys of Docker's `HostConfig`
/// (`Dns`, `DnsSearch`, `DnsOptions`, `ExtraHosts`): asked for at create, shown by inspect.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxResolver {
    /// Resolvers (`--dns`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// Search domains (`--dns-search`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// resolv.conf options (`--dns-option`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// Hosts file lines (`--add-host`), `NAME:IP` or `NAME:host-gateway`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
}

/// `GET /sandboxes` and `GET /sandboxes/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxResource {
    /// 64-hex ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// `bridge`, `host`, `none` or `container:NAME`.
    pub network_mode: String,
    /// The namespace path (`ip netns exec NAME` works).
    pub netns: String,
    /// The adopted namespace, when `--netns` was given.
    pub adopted_netns: Option<String>,
    /// RFC 3339 creation time.
    pub created: String,
    /// Interfaces, by interface name.
    pub networks: Vec<SandboxEndpoint>,
    /// Legacy links as `OTHER:ALIAS`.
    pub links: Vec<String>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// Exposed ports, as Docker's `Config.ExposedPorts`: `{"80/tcp": {}}`.
    #[serde(default)]
    pub exposed_ports: BTreeMap<String, BTreeMap<String, String>>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its own resolvers and hosts lines.
    #[serde(flatten)]
    pub resolver: SandboxResolver,
}

/// One published port of a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PortMapping {
    /// Host address (0.0.0.0: all).
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Sandbox port.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// One network membership of a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxEndpoint {
    /// Network name.
    pub network: String,
    /// Network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Interface inside the sandbox.
    pub interface: String,
    /// `tap` or `veth` (empty for host and none).
    pub port_kind: String,
    /// MAC address.
    pub mac_address: String,
    /// Address without prefix length.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Prefix length.
    pub ip_prefix_len: u8,
    /// Gateway.
    pub gateway: String,
    /// IPv6 address without prefix length, or empty.
    #[serde(default, rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// Its prefix length, or 0.
    #[serde(default, rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// The IPv6 gateway, or empty.
    #[serde(default, rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// Aliases.
    pub aliases: Vec<String>,
    /// Links on this network, `OTHER:ALIAS` (Docker's `EndpointSettings.Links`).
    #[serde(default)]
    pub links: Vec<String>,
    /// Whether the sandbox's default route goes through this network's gateway.
    #[serde(default)]
    pub default_route: bool,
    /// The embedded DNS server answering on this network (empty where there is none: the
    /// built-in networks and macvlan, as Docker's).
    #[serde(default, rename = "DNSServer")]
    pub dns_server: String,
}

/// `GET /ports`: one switch port and its counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PortResource {
    /// The switch's port number.
    pub port: u32,
    /// Network name.
    pub network: String,
    /// `tap` for sandbox interfaces, `gateway` for the host side.
    pub kind: String,
    /// The interface: `SANDBOX/ethN` or the gateway interface name.
    pub interface: String,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Addresses not learned because of the port's limit.
    pub learn_refused: u64,
    /// Drops by reason.
    pub drops: BTreeMap<String, u64>,
}

/// `GET /fdb`: one MAC table entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct FdbResource {
    /// Network name.
    pub network: String,
    /// The address.
    pub mac: String,
    /// The switch port.
    pub port: u32,
    /// The port's interface.
    pub interface: String,
    /// Seconds since a frame from the address was seen (since it was added, for static ones).
    pub age_seconds: u64,
    /// `static` or `learned`.
    pub kind: String,
    /// The cluster host the address lives on, for entries on a VXLAN peer's port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_host: String,
}

/// `GET /networks/{id}/vteps`: a static VXLAN peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VtepResource {
    /// `IP:PORT`.
    pub address: String,
    /// The network's VNI.
    pub vni: u32,
    /// Frames received from it.
    pub rx_packets: u64,
    /// Frames sent to it.
    pub tx_packets: u64,
    /// Drops by reason on its port.
    pub drops: BTreeMap<String, u64>,
}

/// `POST /networks/{id}/vteps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VtepAdd {
    /// `IP` or `IP:PORT`.
    pub address: String,
}

/// `GET /vxlan`: the VTEP socket's counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct VxlanResource {
    /// The UDP port.
    pub port: u16,
    /// Whether the socket is bound: while an overlay network exists, when the port could be
    /// bound.
    pub bound: bool,
    /// Where it is bound (the cluster's advertise address, or every address without a
    /// cluster).
    #[serde(default)]
    pub address: Option<String>,
    /// Datagrams received.
    pub rx_packets: u64,
    /// Datagrams that were not VXLAN.
    pub rx_malformed: u64,
    /// Frames of VNIs no network here has.
    pub rx_unknown_vni: u64,
    /// Frames from addresses that are no peer of their network.
    pub rx_unknown_vtep: u64,
    /// Datagrams sent.
    pub tx_packets: u64,
    /// Failed sends.
    pub tx_errors: u64,
    /// Frames of encrypted networks that came in clear.
    #[serde(default)]
    pub rx_unsealed: u64,
    /// Sealed tunnels (encrypted overlay networks).
    #[serde(default)]
    pub esp: EspResource,
}

/// The sealed tunnels' port, SAs and counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EspResource {
    /// The UDP port (ESP in UDP, RFC 3948).
    pub port: u16,
    /// Where it is bound: while an encrypted network exists.
    pub address: Option<String>,
    /// Inbound SAs held (a few per peer across a rotation).
    pub sas_in: u64,
    /// Outbound SAs held (one per peer).
    pub sas_out: u64,
    /// SAs installed since start, both directions.
    pub sas_installed: u64,
    /// Key exchanges completed.
    pub key_exchanges: u64,
    /// Key exchanges that failed.
    pub key_exchanges_failed: u64,
    /// Datagrams received.
    pub rx_packets: u64,
    /// Malformed: short, or not VXLAN inside.
    pub rx_malformed: u64,
    /// SPIs of no SA here.
    pub rx_unknown_spi: u64,
    /// From an address that is not the SA's peer.
    pub rx_wrong_peer: u64,
    /// Integrity check failed: forged or tampered with.
    pub rx_forged: u64,
    /// Replayed, or older than the window.
    pub rx_replayed: u64,
    /// Datagrams sealed and sent.
    pub tx_packets: u64,
    /// Frames dropped for a peer with no SA yet.
    pub tx_no_key: u64,
    /// Failed sends.
    pub tx_errors: u64,
}

/// `GET /cluster/peers`: one member of the cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PeerResource {
    /// Host name (from its certificate).
    pub name: String,
    /// Gossip address (empty for a revoked host this host has not met).
    pub address: String,
    /// `alive`, `suspect`, `down`, or `revoked` (by the cluster's CA: refused for good).
    pub state: String,
    /// SWIM incarnation.
    pub incarnation: u16,
    /// Seconds since a datagram from it was last authenticated (none for this host).
    pub last_heard_seconds: Option<u64>,
    /// Whether this is the answering host.
    #[serde(rename = "Self")]
    pub is_self: bool,
}

/// `POST /trace`: a synthetic frame to trace through the switch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TraceRequest {
    /// The network (name or ID).
    pub network: String,
    /// The ingress port: its number, its interface (`SANDBOX/ethN`, a gateway's name) or a
    /// sandbox's name (its port on the network).
    pub in_port: String,
    /// The frame, as [`crate::framespec`] describes it.
    #[serde(default)]
    pub frame: String,
}

/// One switch port, by number and interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PortRef {
    /// The port number.
    pub port: u32,
    /// Its interface.
    pub interface: String,
}

/// One stage of a trace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TraceStageResource {
    /// `arp`, `parse`, `learn`, `lookup`, `isolate`, `forward` or `output`.
    pub stage: String,
    /// Its decision.
    pub decision: String,
}

/// The answer to `POST /trace`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TraceResource {
    /// Network name.
    pub network: String,
    /// The ingress port.
    pub in_port: PortRef,
    /// The frame traced, in hex.
    pub frame: String,
    /// The stages in order.
    pub stages: Vec<TraceStageResource>,
    /// The outcome in words (`forward to port 3`, `flood to ports 1, 3`, `drop (hairpin)`,
    /// `answered here (ARP suppression)`).
    pub verdict: String,
    /// The ports the frame would leave on.
    pub out_ports: Vec<PortRef>,
}

/// `GET /stats`: everything switchd counts, in one answer (also what `--metrics` exposes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct StatsResource {
    /// Networks known.
    pub networks: u64,
    /// Sandboxes on this host.
    pub sandboxes: u64,
    /// Every switch port with its counters and drops by reason.
    pub ports: Vec<PortResource>,
    /// MAC table entries per network.
    pub mac_table: Vec<MacTableCount>,
    /// The VTEP: where it listens (while an overlay network exists) and its counters.
    pub vxlan: Option<VxlanResource>,
    /// Cluster counters (absent outside a cluster).
    pub cluster: Option<ClusterStats>,
    /// The embedded DNS servers, per network.
    pub dns: Vec<DnsStats>,
    /// How the dataplane writes frames to port descriptors.
    #[serde(default)]
    pub port_writes: PortWrites,
    /// How the dataplane waits for frames after traffic.
    #[serde(default)]
    pub polling: Polling,
    /// Descriptors: how many are open, the caps on those held for others, exhaustion.
    #[serde(default)]
    pub descriptors: Descriptors,
}

/// switchd's descriptors and the caps on those it holds for others.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Descriptors {
    /// Open now.
    pub open: u64,
    /// The process's limit (RLIMIT_NOFILE, raised to the hard limit at start).
    pub limit: u64,
    /// Times the process ran out of descriptors (EMFILE/ENFILE) and backed off.
    pub exhausted: u64,
    /// Each capped consumer.
    pub caps: Vec<CapStats>,
}

/// One capped consumer of descriptors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CapStats {
    /// `proxy_udp_flows`, `proxy_tcp_connections`, `dns_upstream_queries`,
    /// `dns_tcp_connections`, `api_connections` or `metrics_connections`.
    pub name: String,
    /// Held now.
    pub used: u64,
    /// The most at once.
    pub max: u64,
    /// Refused at the cap (or, for proxy UDP flows, made room for by evicting the oldest).
    pub refused: u64,
}

/// Whether the dataplane keeps polling after rounds with traffic (`switchd --poll-us`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Polling {
    /// How long it polls after traffic, microseconds (0: never).
    pub micros: u64,
    /// Rounds with traffic after which it polled.
    pub rounds: u64,
}

/// How the dataplane writes the frames of a burst to port descriptors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PortWrites {
    /// Whether a burst's writes go to the kernel in one io_uring submission (false: one
    /// `write` per frame; `--batch-writes off`, or no io_uring).
    pub batched: bool,
    /// Frames written in bursts (failed writes included; their ports count them as
    /// tx_failed).
    pub frames: u64,
    /// The bursts that carried them: frames / bursts is the average batch.
    pub bursts: u64,
}

/// MAC table entries of one network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MacTableCount {
    /// Network name.
    pub network: String,
    /// Static entries (endpoints, gateways, pinned remote endpoints).
    pub r#static: u64,
    /// Learned entries.
    pub learned: u64,
}

/// The cluster as this host sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterStats {
    /// Members by state (`alive`, `suspect`, `down`), this host included.
    pub peers: BTreeMap<String, u64>,
    /// Gossip datagrams received and authenticated.
    pub gossip_received: u64,
    /// Gossip datagrams sent.
    pub gossip_sent: u64,
    /// Authenticated gossip messages refused as malformed.
    pub gossip_refused: u64,
    /// Datagrams not sealed under the cluster's key.
    pub gossip_unauthenticated: u64,
    /// Datagrams sealed under the key but replayed, or sent more than 30 s from this host's
    /// clock.
    #[serde(default)]
    pub gossip_stale: u64,
    /// Messages from hosts the CA revoked, ignored.
    #[serde(default)]
    pub gossip_revoked: u64,
    /// Messages whose sender's signature did not hold (another host's name, re-sealed,
    /// altered), or certificates the CA did not issue.
    #[serde(default)]
    pub gossip_forged: u64,
    /// Messages from a host whose certificate was not known yet (asked for, not taken).
    #[serde(default)]
    pub gossip_unverified: u64,
    /// Records refused because their counter ran more than a minute ahead of this host's
    /// clock (a clock far off, or a record forged to win for ever).
    #[serde(default)]
    pub records_ahead: u64,
    /// Records refused because their origin's signature did not hold (forged, or altered on
    /// the way).
    #[serde(default)]
    pub records_forged: u64,
    /// Records that came before their origin's certificate: held until it comes, or refused.
    #[serde(default)]
    pub records_unknown_origin: u64,
    /// New members refused because 65,536 were known.
    #[serde(default)]
    pub members_refused: u64,
    /// Anti-entropy exchanges completed.
    pub sync_ok: u64,
    /// Anti-entropy exchanges that failed.
    pub sync_failed: u64,
}

/// One network's embedded DNS server.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DnsStats {
    /// Network name.
    pub network: String,
    /// Queries received.
    pub queries: u64,
    /// Answered from the fabric's names.
    pub answered: u64,
    /// Sent to the upstream resolvers.
    pub forwarded: u64,
    /// Answered SERVFAIL because no upstream answered.
    pub failures: u64,
    /// Dropped by the per-asker limits.
    pub limited: u64,
    /// Refused: the asker was no endpoint of the network.
    #[serde(default)]
    pub refused: u64,
}

/// The version of the API's paths and bodies this release serves and speaks.
pub const API_VERSION: &str = "1.0";
/// The oldest API version a server of this release answers.
pub const MIN_API_VERSION: &str = "1.0";

/// `GET /version`: what answers, in the keys of Docker's `/version`; `switchctl version` shows
/// its own beside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionResource {
    /// The release.
    #[serde(rename = "Version")]
    pub version: String,
    /// [`API_VERSION`].
    #[serde(rename = "ApiVersion")]
    pub api_version: String,
    /// [`MIN_API_VERSION`] (a client's own leaves it out).
    #[serde(rename = "MinAPIVersion", default, skip_serializing_if = "String::is_empty")]
    pub min_api_version: String,
    /// The operating system, as Go names it (linux).
    #[serde(rename = "Os")]
    pub os: String,
    /// The architecture, as Go names it (amd64, arm64).
    #[serde(rename = "Arch")]
    pub arch: String,
    /// The kernel's release, as `uname -r` prints it (a client's own leaves it out).
    #[serde(rename = "KernelVersion", default, skip_serializing_if = "String::is_empty")]
    pub kernel_version: String,
}

impl VersionResource {
    /// Release `version` of a program built for this machine, speaking this API.
    pub fn of_this(version: &str) -> VersionResource {
        VersionResource {
            version: version.to_string(),
            api_version: API_VERSION.to_string(),
            min_api_version: String::new(),
            os: std::env::consts::OS.to_string(),
            arch: go_arch(std::env::consts::ARCH).to_string(),
            kernel_version: String::new(),
        }
    }
}

/// An architecture in Go's words, which Docker prints: x86_64 is amd64, aarch64 arm64.
pub fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
