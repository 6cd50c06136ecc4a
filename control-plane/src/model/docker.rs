//! Docker's objects in the model: the address pools, networks and endpoints Docker's libnetwork
//! asks for through the IPAM and network plugin protocols, each mapped onto switchd's own.
//!
//! - A pool (`RequestPool`, IPv4 or IPv6) holds a subnet before any network has it; the addresses Docker
//!   takes from it (`RequestAddress`, the gateway's first) stay held until `ReleaseAddress`, and
//!   no endpoint of switchd's may take them meanwhile.
//! - A Docker network (`CreateNetwork`) is a switchd network of Docker's ID, or, named with
//!   `-o switch.network=NAME`, an existing one: an overlay another host made.
//! - A Docker endpoint (`CreateEndpoint`) is an address and a MAC until it joins a container
//!   (`Join`); then it is a switchd endpoint of the same ID in a sandbox that adopts the
//!   container's namespace, one sandbox per namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::SystemTime;

use super::*;
use crate::cidr::Ipv6Cidr;
use crate::ipam::{Part, Share};

/// The option naming the kind of switchd network a Docker network is (`bridge`, `overlay`,
/// `macvlan`).
pub const OPT_DOCKER_DRIVER: &str = "switch.driver";
/// The option naming the switchd network a Docker network is (an overlay of the cluster).
pub const OPT_DOCKER_NETWORK: &str = "switch.network";
/// The prefix Docker gives the interfaces it moves into a container (`eth0`, `eth1`, ...).
pub const DOCKER_IFNAME_PREFIX: &str = "eth";
/// Docker's label of a sandbox: the namespace key Docker gave.
pub const LABEL_DOCKER_SANDBOX: &str = "com.docker.sandbox.key";

/// What Docker holds: pools, networks and endpoints by Docker's IDs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerState {
    /// Address pools by pool ID.
    pub pools: BTreeMap<String, DockerPool>,
    /// IPv6 address pools by pool ID.
    #[serde(default)]
    pub pools6: BTreeMap<String, DockerPool6>,
    /// Docker networks by Docker's network ID.
    pub networks: BTreeMap<Id, DockerNetwork>,
    /// Docker endpoints by Docker's endpoint ID.
    pub endpoints: BTreeMap<Id, DockerEndpoint>,
}

/// An address pool Docker asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerPool {
    /// The subnet.
    pub subnet: Ipv4Cidr,
    /// Where addresses without a preference come from (`--ip-range`).
    pub ip_range: Option<Ipv4Cidr>,
    /// The gateway, once Docker asked for it.
    pub gateway: Option<Ipv4Addr>,
    /// The addresses Docker holds (the gateway's too).
    pub held: BTreeSet<Ipv4Addr>,
}

/// An IPv6 address pool Docker asked for (`--ipv6` with `--ipam-driver` switchd's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerPool6 {
    /// The subnet.
    pub subnet: Ipv6Cidr,
    /// The gateway, once Docker asked for it.
    pub gateway: Option<Ipv6Addr>,
    /// The addresses Docker holds (the gateway's too).
    pub held: BTreeSet<Ipv6Addr>,
}

/// A Docker network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerNetwork {
    /// The switchd network it is.
    pub network: Id,
    /// Its pool, when switchd's IPAM serves it.
    pub pool: Option<String>,
    /// Its IPv6 pool, when switchd's IPAM serves it.
    #[serde(default)]
    pub pool6: Option<String>,
    /// Whether the Docker network made the switchd network (and takes it away with it).
    pub made: bool,
}

/// A Docker endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerEndpoint {
    /// Its Docker network.
    pub network: Id,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its IPv6 address, on a network with IPv6.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// Its MAC address.
    #[serde(with = "mac")]
    pub mac: MacAddr,
    /// Whether it is joined to a container (and is then a switchd endpoint of the same ID).
    pub joined: bool,
}

mod mac {
    use serde::{Deserialize, Deserializer, Serializer};
    use switch::MacAddr;

    pub fn serialize<S: Serializer>(m: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&m.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What `CreateNetwork` asks for, as the protocol gives it.
#[derive(Debug, Clone, Default)]
pub struct DockerNetworkSpec {
    /// Docker's network ID.
    pub id: String,
    /// The `-o` options.
    pub options: BTreeMap<String, String>,
    /// `--internal`.
    pub internal: bool,
    /// `--ipv6`.
    pub ipv6: bool,
    /// The IPv4 pools: (address space, pool, gateway as `IP/LEN`).
    pub ipv4: Vec<(String, String, String)>,
    /// The IPv6 pools, as the IPv4 ones.
    pub ipv6_pools: Vec<(String, String, String)>,
}

/// What `Join` made: the sandbox, whether it is new, and the endpoint.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The sandbox of the container's namespace.
    pub sandbox: Id,
    /// Whether this join created it.
    pub new_sandbox: bool,
    /// The switchd endpoint (Docker's endpoint ID).
    pub endpoint: Id,
}

/// What `Leave` took away.
#[derive(Debug, Clone)]
pub struct Left {
    /// The sandbox the endpoint was in.
    pub sandbox: Sandbox,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Whether the sandbox went with it (its last endpoint).
    pub sandbox_removed: bool,
}

/// Refuses switchctl's changes to a sandbox Docker made: Docker's calls change it.
pub(super) fn refuse_docker_sandbox(sb: &Sandbox, what: &str) -> Result<(), ModelError> {
    if sb.labels.contains_key(LABEL_DOCKER_SANDBOX) {
        return Err(ModelError::Forbidden(format!(
            "sandbox {} is a Docker container's: {what} it through Docker",
            sb.name
        )));
    }
    Ok(())
}

/// The name switchd gives the interface it hands to Docker in its own namespace, before
/// Docker moves it into the container and names it `ethN`.
pub fn handoff_name(endpoint: &Id) -> String {
    format!("swd{}", &endpoint.to_string()[..12])
}

fn docker_id(kind: &str, s: &str) -> Result<Id, ModelError> {
    Id::parse(s).ok_or_else(|| invalid(format!("invalid {kind} ID {s:?}: expected Docker's 64 hex digits")))
}

fn unknown_network(id: &str) -> ModelError {
    ModelError::NotFound(format!("Docker network {id} is not one of switchd's"))
}

fn unknown_endpoint(id: &str) -> ModelError {
    ModelError::NotFound(format!("Docker endpoint {id} is not one of switchd's"))
}

/// `IP/LEN` or `IP` to the address.
fn addr_of<A: std::str::FromStr>(s: &str) -> Option<A> {
    s.split_once('/').map_or(s, |(a, _)| a).parse().ok()
}

impl State {
    /// The pool `net`'s addresses are dealt from on this host: in a cluster, an overlay's
    /// addresses are dealt to hosts by index.
    pub(super) fn address_pool(&self, net: &Network) -> Result<Option<Pool>, ModelError> {
        let Some(ipam) = net.ipam else { return Ok(None) };
        let part = match (net.driver, &net.space, self.host_index) {
            (Driver::Overlay, Some(space), _) => match &self.host_name {
                Some(me) => Part::Owned(space.owned_by(me).collect()),
                None => Part::All,
            },
            (Driver::Overlay, None, Some(index)) => {
                let max_hosts = net.max_hosts.unwrap_or(DEFAULT_MAX_HOSTS);
                if index >= max_hosts {
                    return Err(ModelError::Conflict(format!(
                        "this host's index {index} is beyond network {}'s max_hosts {max_hosts}: it has no share of the addresses",
                        net.name
                    )));
                }
                Part::Share(Share { index, max_hosts })
            }
            _ => Part::All,
        };
        Ok(Some(ipam.pool(part)))
    }

    /// The addresses of `net` Docker holds without an endpoint of switchd's holding them.
    pub(super) fn docker_held(&self, net: &Id) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let net = net.clone();
        self.docker
            .networks
            .values()
            .filter(move |d| d.network == net)
            .filter_map(|d| d.pool.as_ref().and_then(|p| self.docker.pools.get(p)))
            .flat_map(|p| p.held.iter().copied())
    }

    /// The IPv6 addresses of `net` Docker holds without an endpoint of switchd's holding them.
    pub(super) fn docker_held6(&self, net: &Id) -> impl Iterator<Item = Ipv6Addr> + '_ {
        let net = net.clone();
        self.docker
            .networks
            .values()
            .filter(move |d| d.network == net)
            .filter_map(|d| d.pool6.as_ref().and_then(|p| self.docker.pools6.get(p)))
            .flat_map(|p| p.held.iter().copied())
    }

    /// The Docker network that is switchd network `net`, if any.
    pub fn docker_network_of(&self, net: &Id) -> Option<(&Id, &DockerNetwork)> {
        self.docker.networks.iter().find(|(_, d)| &d.network == net)
    }

    /// `IpamDriver.RequestPool`: a subnet (`pool`, or one chosen as `network create` chooses
    /// them) with an optional range, for a network to come. Returns the pool ID and subnet.
    ///
    /// # Errors
    /// A bad or reserved subnet, or one that overlaps a network or pool; an IPv6 range.
    pub fn docker_request_pool(
        &mut self,
        pool: &str,
        sub_pool: &str,
        v6: bool,
        host: &HostFacts,
    ) -> Result<(String, String), ModelError> {
        if v6 {
            let (id, subnet) = self.docker_request_pool6(pool, sub_pool, host)?;
            return Ok((id, subnet.to_string()));
        }
        let spec = NetworkSpec {
            subnet: (!pool.is_empty()).then(|| pool.to_string()),
            ip_range: (!sub_pool.is_empty()).then(|| sub_pool.to_string()),
            ..NetworkSpec::default()
        };
        // An overlay of the cluster keeps its subnet: a Docker network on this host that is
        // that overlay asks for the same one.
        let overlay = self
            .networks
            .values()
            .find(|n| n.driver == Driver::Overlay && n.ipam.is_some_and(|i| Some(i.subnet.to_string()) == spec.subnet));
        let ipam = match overlay {
            Some(n) => {
                let mut i = n.ipam.expect("found with IPAM");
                i.ip_range = match &spec.ip_range {
                    Some(r) => Some(self.check_range(&i.subnet, r)?),
                    None => None,
                };
                i
            }
            None => self.plan_ipam(&spec, host, &host.routes)?,
        };
        if let Some((id, p)) = self.docker.pools.iter().find(|(_, p)| p.subnet.overlaps(&ipam.subnet)) {
            return Err(ModelError::Conflict(format!(
                "subnet {} overlaps Docker's pool {id} ({}): choose a subnet no network uses",
                ipam.subnet, p.subnet
            )));
        }
        let id = format!("switch/{}", ipam.subnet);
        self.docker.pools.insert(
            id.clone(),
            DockerPool {
                subnet: ipam.subnet,
                ip_range: ipam.ip_range,
                gateway: None,
                held: BTreeSet::new(),
            },
        );
        Ok((id, ipam.subnet.to_string()))
    }

    /// An IPv6 pool: `pool`, or a /64 of the host's unique local prefix, checked as a network's
    /// IPv6 subnet is (and against the other pools).
    fn docker_request_pool6(
        &mut self,
        pool: &str,
        sub_pool: &str,
        host: &HostFacts,
    ) -> Result<(String, Ipv6Cidr), ModelError> {
        if !sub_pool.is_empty() {
            return Err(invalid(format!(
                "IPv6 ip-range {sub_pool} is not available with switchd's IPAM: give the IPv6 subnet alone"
            )));
        }
        let spec = NetworkSpec {
            ipv6: true,
            pools6: (!pool.is_empty())
                .then(|| PoolSpec {
                    subnet: Some(pool.to_string()),
                    ..PoolSpec::default()
                })
                .into_iter()
                .collect(),
            ..NetworkSpec::default()
        };
        let subnet = self.plan_ipam6(&spec, Driver::Bridge, None, host, &host.routes6)?[0].subnet;
        let id = format!("switch/{subnet}");
        self.docker.pools6.insert(
            id.clone(),
            DockerPool6 {
                subnet,
                gateway: None,
                held: BTreeSet::new(),
            },
        );
        Ok((id, subnet))
    }

    /// The subnet of pool `id` (either family) as `IP/LEN`'s length.
    pub fn docker_pool_prefix_len(&self, id: &str) -> Option<u8> {
        let v4 = self.docker.pools.get(id).map(|p| p.subnet.prefix_len());
        v4.or_else(|| self.docker.pools6.get(id).map(|p| p.subnet.prefix_len()))
    }

    fn check_range(&self, subnet: &Ipv4Cidr, range: &str) -> Result<Ipv4Cidr, ModelError> {
        let r: Ipv4Cidr = range.parse().map_err(invalid)?;
        if !subnet.contains(r.network()) || r.prefix_len() < subnet.prefix_len() {
            return Err(invalid(format!(
                "invalid ip-range {r}: it is not inside subnet {subnet}"
            )));
        }
        Ok(r)
    }

    /// `IpamDriver.ReleasePool`.
    ///
    /// # Errors
    /// An unknown pool, or one a network still uses.
    pub fn docker_release_pool(&mut self, id: &str) -> Result<(), ModelError> {
        if !self.docker.pools.contains_key(id) && !self.docker.pools6.contains_key(id) {
            return Err(ModelError::NotFound(format!(
                "address pool {id:?} is not one of switchd's"
            )));
        }
        if self
            .docker
            .networks
            .values()
            .any(|d| d.pool.as_deref() == Some(id) || d.pool6.as_deref() == Some(id))
        {
            return Err(ModelError::Conflict(format!(
                "address pool {id} is in use by a network: remove the network first"
            )));
        }
        self.docker.pools.remove(id);
        self.docker.pools6.remove(id);
        Ok(())
    }

    /// `IpamDriver.RequestAddress`: `addr` if given and free, otherwise the lowest free address
    /// this host may hand out; `gateway` for the network's gateway. Returns the address.
    ///
    /// # Errors
    /// An unknown pool, a bad or taken address, or none left.
    pub fn docker_request_address(&mut self, pool_id: &str, addr: &str, gateway: bool) -> Result<IpAddr, ModelError> {
        if self.docker.pools6.contains_key(pool_id) {
            return self.docker_request_address6(pool_id, addr, gateway).map(IpAddr::V6);
        }
        let pool = self
            .docker
            .pools
            .get(pool_id)
            .ok_or_else(|| ModelError::NotFound(format!("address pool {pool_id:?} is not one of switchd's")))?;
        let wanted = match addr {
            "" => None,
            a => Some(a.parse::<Ipv4Addr>().map_err(|_| {
                invalid(format!(
                    "invalid address {a:?}: expected an IPv4 address like 192.168.0.10"
                ))
            })?),
        };
        let linked = self
            .docker
            .networks
            .values()
            .find(|d| d.pool.as_deref() == Some(pool_id))
            .and_then(|d| self.networks.get(&d.network));
        // An overlay this pool is the subnet of (made elsewhere, or not linked yet).
        let existing = linked.or_else(|| {
            self.networks
                .values()
                .find(|n| n.driver == Driver::Overlay && n.ipam.is_some_and(|i| i.subnet == pool.subnet))
        });
        if gateway {
            let gw = match (existing.and_then(|n| n.ipam), wanted) {
                (Some(i), Some(w)) if w != i.gateway => {
                    return Err(ModelError::Conflict(format!(
                        "gateway {w} differs from network {}'s gateway {}: give --gateway {} or none",
                        existing.map_or("?", |n| n.name.as_str()),
                        i.gateway,
                        i.gateway
                    )))
                }
                (Some(i), _) => i.gateway,
                (None, Some(w)) => {
                    let s = pool.subnet;
                    if !s.contains(w) || w == s.network() || w == s.broadcast() {
                        return Err(invalid(format!(
                            "invalid gateway {w}: it must be a host address of subnet {s}"
                        )));
                    }
                    w
                }
                (None, None) => Ipv4Addr::from(u32::from(pool.subnet.network()) + 1),
            };
            let p = self.docker.pools.get_mut(pool_id).expect("found above");
            p.gateway = Some(gw);
            p.held.insert(gw);
            return Ok(gw.into());
        }
        let ipam_pool = match existing {
            Some(n) => self.address_pool(n)?.expect("networks with pools have IPAM"),
            None => Pool {
                subnet: pool.subnet,
                ip_range: pool.ip_range,
                gateway: pool.gateway.unwrap_or(pool.subnet.network()),
                part: Part::All,
            },
        };
        let net_id = existing.map(|n| n.id.clone());
        let mut used: BTreeSet<Ipv4Addr> = pool.held.clone();
        if let Some(id) = &net_id {
            used.extend(self.endpoints_of_network(id).filter_map(|e| e.ip));
            used.extend(self.remote.get(id).into_iter().flat_map(|r| r.values().map(|e| e.ip)));
            used.extend(self.docker_held(id));
        }
        let ip = match wanted {
            Some(w) => {
                ipam_pool.check_static(w).map_err(invalid)?;
                if let Some((n, space)) = existing
                    .and_then(|n| n.space.as_ref().map(|s| (n, s)))
                    .filter(|_| !ipam_pool.may_allocate(w))
                {
                    let offset = u32::from(w) - u32::from(ipam_pool.subnet.network());
                    return Err(ModelError::OwnedElsewhere {
                        network: n.id.clone(),
                        name: n.name.clone(),
                        ip: w,
                        offset,
                        owner: space.owner(offset).unwrap_or("no host yet").to_string(),
                    });
                }
                if used.contains(&w) {
                    return Err(ModelError::Conflict(format!("address {w} is already in use")));
                }
                w
            }
            None => ipam_pool.allocate(&used).ok_or_else(|| match existing {
                // Other hosts may have addresses to give.
                Some(n) if n.space.is_some() => ModelError::OutOfClaims {
                    network: n.id.clone(),
                    name: n.name.clone(),
                },
                _ => ModelError::Conflict(format!("no available IPv4 addresses in pool {pool_id}")),
            })?,
        };
        self.docker.pools.get_mut(pool_id).expect("found above").held.insert(ip);
        Ok(ip.into())
    }

    /// [`State::docker_request_address`] from an IPv6 pool: the gateway (`addr`, or the
    /// subnet's first host address), `addr` when free, or the lowest free address.
    fn docker_request_address6(&mut self, pool_id: &str, addr: &str, gateway: bool) -> Result<Ipv6Addr, ModelError> {
        let pool = &self.docker.pools6[pool_id];
        let s = pool.subnet;
        let wanted = match addr {
            "" => None,
            a => Some(
                a.parse::<Ipv6Addr>()
                    .map_err(|_| invalid(format!("invalid address {a:?}: expected an IPv6 address like fd00::10")))?,
            ),
        };
        if let Some(w) = wanted.filter(|w| !s.contains(*w) || *w == s.network()) {
            return Err(invalid(format!(
                "invalid address {w}: it must be an address of subnet {s} other than its first"
            )));
        }
        let network = self
            .docker
            .networks
            .values()
            .find(|d| d.pool6.as_deref() == Some(pool_id))
            .map(|d| d.network.clone());
        let mut used = pool.held.clone();
        if let Some(id) = &network {
            used.extend(self.endpoints_of_network(id).filter_map(|e| e.ip6));
        }
        let ip = match (gateway, wanted) {
            (true, w) => w.unwrap_or(s.first_host()),
            (false, Some(w)) if used.contains(&w) || Some(w) == pool.gateway => {
                return Err(ModelError::Conflict(format!("address {w} is already in use")))
            }
            (false, Some(w)) => w,
            (false, None) => crate::ipam::allocate6(s, None, pool.gateway.unwrap_or(s.network()), &used)
                .ok_or_else(|| ModelError::Conflict(format!("no available IPv6 addresses in pool {pool_id}")))?,
        };
        let p = self.docker.pools6.get_mut(pool_id).expect("found above");
        if gateway {
            p.gateway = Some(ip);
        }
        p.held.insert(ip);
        Ok(ip)
    }

    /// `IpamDriver.ReleaseAddress`. An address the pool does not hold is released already.
    ///
    /// # Errors
    /// An unknown pool or a malformed address.
    pub fn docker_release_address(&mut self, pool_id: &str, addr: &str) -> Result<(), ModelError> {
        if let Some(pool) = self.docker.pools6.get_mut(pool_id) {
            let ip: Ipv6Addr =
                addr_of(addr).ok_or_else(|| invalid(format!("invalid address {addr:?}: expected an IPv6 address")))?;
            pool.held.remove(&ip);
            if pool.gateway == Some(ip) {
                pool.gateway = None;
            }
            return Ok(());
        }
        let ip: Ipv4Addr =
            addr_of(addr).ok_or_else(|| invalid(format!("invalid address {addr:?}: expected an IPv4 address")))?;
        let pool = self
            .docker
            .pools
            .get_mut(pool_id)
            .ok_or_else(|| ModelError::NotFound(format!("address pool {pool_id:?} is not one of switchd's")))?;
        pool.held.remove(&ip);
        if pool.gateway == Some(ip) {
            pool.gateway = None;
        }
        Ok(())
    }

    /// `NetworkDriver.CreateNetwork`: makes the switchd network (Docker's ID, named by
    /// `switch.network` or `docker-` and the short ID), or links an existing one named by
    /// `switch.network`. Returns the switchd network's ID and whether it was made.
    ///
    /// # Errors
    /// A bad ID or option, IPv6, a pool not from switchd's IPAM on an overlay, or any error
    /// of [`State::create_network`].
    pub fn docker_create_network(
        &mut self,
        spec: DockerNetworkSpec,
        plugin: &str,
        now: SystemTime,
        host: &HostFacts,
    ) -> Result<(Id, bool), ModelError> {
        let id = docker_id("network", &spec.id)?;
        if self.docker.networks.contains_key(&id) {
            return Err(ModelError::Conflict(format!("Docker network {id} exists already")));
        }
        let v6 = match spec.ipv6_pools.as_slice() {
            [] => None,
            [(_, pool, gateway)] => {
                let subnet: Ipv6Cidr = pool.parse().map_err(invalid)?;
                let id = self
                    .docker
                    .pools6
                    .iter()
                    .find(|(_, p)| p.subnet == subnet)
                    .map(|(k, _)| k.clone());
                Some((subnet, addr_of::<Ipv6Addr>(gateway), id))
            }
            more => {
                return Err(invalid(format!(
                    "{} IPv6 subnets given: a Docker network on switchd takes one",
                    more.len()
                )))
            }
        };
        if spec.ipv4.is_empty() {
            return Err(invalid(
                "Docker gave no IPv4 subnet: IPv6-only networks are made with switchctl (network create --ipv4=false --ipv6) or the API, not through the Docker plugin",
            ));
        }
        let [(_, pool, gateway)] = spec.ipv4.as_slice() else {
            return Err(invalid(format!(
                "a switchd network has one IPv4 subnet, and {} were given: give one --subnet",
                spec.ipv4.len()
            )));
        };
        let mut options = spec.options.clone();
        let driver = options.remove(OPT_DOCKER_DRIVER).unwrap_or_else(|| "bridge".into());
        let name = options.remove(OPT_DOCKER_NETWORK);
        let subnet: Ipv4Cidr = pool.parse().map_err(invalid)?;
        let gw: Ipv4Addr = addr_of(gateway).ok_or_else(|| invalid(format!("invalid gateway {gateway:?}")))?;
        let pool_id = self
            .docker
            .pools
            .iter()
            .find(|(_, p)| p.subnet == subnet)
            .map(|(k, _)| k.clone());
        if pool_id.is_none() && driver == "overlay" {
            return Err(invalid(format!(
                "an overlay network's addresses must be unique across hosts: add --ipam-driver {plugin} to docker network create"
            )));
        }
        if let Some(n) = name
            .as_deref()
            .and_then(|n| self.networks.values().find(|x| x.name == n))
        {
            // The overlay another host (or switchctl) made: this Docker network is it.
            let ipam = n
                .ipam
                .ok_or_else(|| invalid(format!("network {} has no addresses to share", n.name)))?;
            if n.driver.as_str() != driver || n.builtin {
                return Err(ModelError::Conflict(format!(
                    "network {} exists with driver {}: give -o {OPT_DOCKER_DRIVER}={} or another -o {OPT_DOCKER_NETWORK}",
                    n.name,
                    n.driver.as_str(),
                    n.driver.as_str()
                )));
            }
            if ipam.subnet != subnet || ipam.gateway != gw {
                return Err(ModelError::Conflict(format!(
                    "network {} has subnet {} and gateway {}: give --subnet {} --gateway {}",
                    n.name, ipam.subnet, ipam.gateway, ipam.subnet, ipam.gateway
                )));
            }
            if let Some((subnet, _, _)) = v6
                .as_ref()
                .filter(|(s, ..)| n.ipam6.first().map(|p| p.subnet) != Some(*s))
            {
                return Err(ModelError::Conflict(format!(
                    "network {} does not hold IPv6 subnet {subnet}: give the IPv6 subnet it has, or none",
                    n.name
                )));
            }
            if let Some((d, _)) = self.docker_network_of(&n.id) {
                return Err(ModelError::Conflict(format!(
                    "network {} is Docker network {} already",
                    n.name,
                    d.short()
                )));
            }
            let net = n.id.clone();
            self.docker.networks.insert(
                id,
                DockerNetwork {
                    network: net.clone(),
                    pool: pool_id,
                    pool6: v6.and_then(|(_, _, id)| id),
                    made: false,
                },
            );
            return Ok((net, false));
        }
        let range = pool_id
            .as_ref()
            .and_then(|p| self.docker.pools[p].ip_range)
            .map(|r| r.to_string());
        let net_spec = NetworkSpec {
            name: name.unwrap_or_else(|| format!("docker-{}", id.short())),
            driver,
            subnet: Some(subnet.to_string()),
            gateway: Some(gw.to_string()),
            ip_range: range,
            internal: spec.internal,
            labels: BTreeMap::new(),
            options,
            ipv6: spec.ipv6 || v6.is_some(),
            disable_ipv4: false,
            pools6: v6
                .iter()
                .map(|(s, g, _)| PoolSpec {
                    subnet: Some(s.to_string()),
                    gateway: g.map(|g| g.to_string()),
                    ip_range: None,
                    aux_addresses: BTreeMap::new(),
                })
                .collect(),
            // Docker's IPAM holds a Docker network's auxiliary addresses.
            aux_addresses: BTreeMap::new(),
        };
        let pool6_id = v6.and_then(|(_, _, id)| id);
        // The pools are this network's: their subnets are not in the way of themselves.
        let held = pool_id.as_ref().and_then(|p| self.docker.pools.remove(p));
        let held6 = pool6_id.as_ref().and_then(|p| self.docker.pools6.remove(p));
        let made = self.create_network(net_spec, id.clone(), now, host);
        if let (Some(p), Some(h)) = (&pool_id, held) {
            self.docker.pools.insert(p.clone(), h);
        }
        if let (Some(p), Some(h)) = (&pool6_id, held6) {
            self.docker.pools6.insert(p.clone(), h);
        }
        made?;
        self.docker.networks.insert(
            id.clone(),
            DockerNetwork {
                network: id.clone(),
                pool: pool_id,
                pool6: pool6_id,
                made: true,
            },
        );
        Ok((id, true))
    }

    /// `NetworkDriver.DeleteNetwork`: unlinks the Docker network; returns the switchd network
    /// when it goes too (the Docker network made it).
    ///
    /// # Errors
    /// An unknown network, or endpoints still on it.
    pub fn docker_delete_network(&mut self, id: &str) -> Result<Option<Network>, ModelError> {
        let key = Id::parse(id)
            .filter(|k| self.docker.networks.contains_key(k))
            .ok_or_else(|| unknown_network(id))?;
        if self.docker.endpoints.values().any(|e| e.network == key) {
            return Err(ModelError::Conflict(format!(
                "Docker network {id} has endpoints: remove them first"
            )));
        }
        let d = self.docker.networks.remove(&key).expect("found above");
        if !d.made {
            return Ok(None);
        }
        let name = self.networks[&d.network].name.clone();
        match self.remove_network(&d.network.to_string()) {
            Ok(n) => Ok(Some(n)),
            Err(e) => {
                self.docker.networks.insert(key, d);
                Err(match e {
                    ModelError::Conflict(m) => ModelError::Conflict(m),
                    other => ModelError::Conflict(format!("network {name}: {other}")),
                })
            }
        }
    }

    /// `NetworkDriver.CreateEndpoint`: an address (from switchd's IPAM when the network's
    /// pool is switchd's), an IPv6 address `address6` on a network with IPv6 (likewise), and a
    /// MAC (`mac`, or Docker's derivation from the address). Returns the MAC, and whether
    /// switchd chose it.
    ///
    /// # Errors
    /// Unknown network, bad or missing address, an address not held, a MAC in use.
    pub fn docker_create_endpoint(
        &mut self,
        network: &str,
        endpoint: &str,
        (address, address6): (&str, &str),
        mac: &str,
    ) -> Result<(MacAddr, bool), ModelError> {
        let nid = Id::parse(network)
            .filter(|k| self.docker.networks.contains_key(k))
            .ok_or_else(|| unknown_network(network))?;
        let eid = docker_id("endpoint", endpoint)?;
        self.fresh_ids(&[&eid])?;
        if self.docker.endpoints.contains_key(&eid) {
            return Err(ModelError::Conflict(format!(
                "Docker endpoint {endpoint} exists already"
            )));
        }
        let d = &self.docker.networks[&nid];
        let net = &self.networks[&d.network];
        if address.is_empty() {
            return Err(invalid(format!(
                "an endpoint on network {} needs an IPv4 address: switchd's networks are IPv4",
                net.name
            )));
        }
        let ip = addr_of(address).ok_or_else(|| {
            invalid(format!(
                "invalid address {address:?}: expected IP/LEN like 192.168.0.10/24"
            ))
        })?;
        let pool = self.address_pool(net)?.expect("Docker networks have addresses");
        if !pool.subnet.contains(ip) {
            return Err(invalid(format!(
                "invalid address {ip}: it is not in network {}'s subnet {}",
                net.name, pool.subnet
            )));
        }
        match d.pool.as_ref().map(|p| &self.docker.pools[p]) {
            Some(p) if !p.held.contains(&ip) => {
                return Err(ModelError::Conflict(format!(
                    "address {ip} was not handed out by switchd's IPAM: ask for it through the network's IPAM driver"
                )))
            }
            _ => {}
        }
        let taken = self.endpoints_of_network(&d.network).any(|e| e.ip == Some(ip))
            || self.docker.endpoints.values().any(|e| e.network == nid && e.ip == ip);
        if taken {
            return Err(ModelError::Conflict(format!(
                "address {ip} is already in use on network {}",
                net.name
            )));
        }
        let ip6 = self.docker_endpoint_ip6(&nid, address6)?;
        let (mac, chosen) = match mac {
            "" => (docker_mac(ip), true),
            m => (
                m.parse()
                    .map_err(|e: switch::wire::ParseMacError| invalid(e.to_string()))?,
                false,
            ),
        };
        if mac.is_multicast() || mac == MacAddr::ZERO {
            return Err(invalid(format!(
                "invalid MAC address {mac}: it must be a non-zero unicast address"
            )));
        }
        self.docker.endpoints.insert(
            eid,
            DockerEndpoint {
                network: nid,
                ip,
                ip6,
                mac,
                joined: false,
            },
        );
        Ok((mac, chosen))
    }

    /// The IPv6 address `address` (`IP/LEN`, or empty for none) of a new endpoint of Docker
    /// network `nid`: inside the network's IPv6 subnet, handed out by switchd's IPAM when the
    /// pool is switchd's, and held by no other endpoint.
    fn docker_endpoint_ip6(&self, nid: &Id, address: &str) -> Result<Option<Ipv6Addr>, ModelError> {
        if address.is_empty() {
            return Ok(None);
        }
        let d = &self.docker.networks[nid];
        let net = &self.networks[&d.network];
        let ip: Ipv6Addr = addr_of(address).ok_or_else(|| {
            invalid(format!(
                "invalid IPv6 address {address:?}: expected IP/LEN like fd00::10/64"
            ))
        })?;
        if net.ipam6_of(ip).is_none() {
            return Err(invalid(format!(
                "invalid IPv6 address {ip}: network {} has no IPv6 subnet holding it",
                net.name
            )));
        }
        if let Some(p) = d.pool6.as_ref().map(|p| &self.docker.pools6[p]) {
            if !p.held.contains(&ip) {
                return Err(ModelError::Conflict(format!(
                    "address {ip} was not handed out by switchd's IPAM: ask for it through the network's IPAM driver"
                )));
            }
        }
        let taken = self.endpoints_of_network(&d.network).any(|e| e.ip6 == Some(ip))
            || self
                .docker
                .endpoints
                .values()
                .any(|e| &e.network == nid && e.ip6 == Some(ip));
        if taken {
            return Err(ModelError::Conflict(format!(
                "address {ip} is already in use on network {}",
                net.name
            )));
        }
        Ok(Some(ip))
    }

    /// The Docker endpoint `endpoint` of Docker network `network`.
    fn docker_endpoint(&self, network: &str, endpoint: &str) -> Result<(Id, &DockerEndpoint), ModelError> {
        let eid = Id::parse(endpoint).ok_or_else(|| unknown_endpoint(endpoint))?;
        match self.docker.endpoints.get(&eid) {
            Some(e) if Id::parse(network).as_ref() == Some(&e.network) => Ok((eid, e)),
            _ => Err(unknown_endpoint(endpoint)),
        }
    }

    /// `NetworkDriver.DeleteEndpoint`. Returns the endpoint's interface when it was still
    /// joined (a Leave that never came).
    ///
    /// # Errors
    /// An unknown endpoint.
    pub fn docker_delete_endpoint(&mut self, network: &str, endpoint: &str) -> Result<Option<Left>, ModelError> {
        let (eid, e) = self.docker_endpoint(network, endpoint)?;
        let left = if e.joined {
            Some(self.docker_leave(network, endpoint)?)
        } else {
            None
        };
        self.docker.endpoints.remove(&eid);
        Ok(left)
    }

    /// `NetworkDriver.Join`: the endpoint becomes a switchd endpoint (TAP, or a macvlan child,
    /// handed to Docker under [`handoff_name`]) of the sandbox that adopts `sandbox_key`, made
    /// now if it is the first endpoint there.
    ///
    /// # Errors
    /// Unknown endpoint, one joined already, a bad key, or any error of [`State::connect`].
    pub fn docker_join(
        &mut self,
        network: &str,
        endpoint: &str,
        sandbox_key: &str,
        sandbox_id: Id,
        now: SystemTime,
    ) -> Result<Joined, ModelError> {
        let (eid, e) = self.docker_endpoint(network, endpoint)?;
        if e.joined {
            return Err(ModelError::Conflict(format!(
                "Docker endpoint {endpoint} is joined already"
            )));
        }
        let key = PathBuf::from(sandbox_key);
        if !key.is_absolute() || sandbox_key.contains("/../") || key.file_name().is_none() {
            return Err(invalid(format!(
                "invalid sandbox key {sandbox_key:?}: expected the absolute path of a network namespace"
            )));
        }
        let e = e.clone();
        let net = self.docker.networks[&e.network].network.clone();
        let existing = self
            .sandboxes
            .values()
            .find(|s| s.labels.get(LABEL_DOCKER_SANDBOX).map(String::as_str) == Some(sandbox_key))
            .map(|s| s.id.clone());
        let new_sandbox = existing.is_none();
        let sandbox = match existing {
            Some(s) => s,
            None => {
                self.fresh_ids(&[&sandbox_id])?;
                let base = key
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let short: String = base.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
                let name = format!("docker-{short}");
                check_name("sandbox", &name)?;
                if self.sandboxes.values().any(|s| s.name == name) {
                    return Err(ModelError::Conflict(format!("sandbox name {name:?} is already in use")));
                }
                self.sandboxes.insert(
                    sandbox_id.clone(),
                    Sandbox {
                        exposed: Vec::new(),
                        dns: DnsConfig::default(),
                        extra_hosts: Vec::new(),
                        id: sandbox_id.clone(),
                        name: name.clone(),
                        mode: SandboxMode::Bridge,
                        created: now,
                        // Docker's own path: the namespace may not exist until the container
                        // starts, and it is never switchd's to publish or remove.
                        netns: key.clone(),
                        adopted: Some(key.clone()),
                        links: Vec::new(),
                        ports: Vec::new(),
                        labels: BTreeMap::from([(LABEL_DOCKER_SANDBOX.to_string(), sandbox_key.to_string())]),
                    },
                );
                sandbox_id
            }
        };
        let spec = ConnectSpec {
            ip: Some(e.ip.to_string()),
            ip6: e.ip6.map(|i| i.to_string()),
            aliases: Vec::new(),
            mac: Some(e.mac.to_string()),
            ifname: Some(handoff_name(&eid)),
            ..ConnectSpec::default()
        };
        // The addresses are held for this endpoint: out of the pools while it is attached, so
        // the endpoint does not find it taken by itself.
        let pool = self.docker.networks[&e.network].pool.clone();
        let held = pool.as_ref().map(|p| {
            self.docker
                .pools
                .get_mut(p)
                .expect("linked pools exist")
                .held
                .remove(&e.ip)
        });
        let pool6 = self.docker.networks[&e.network].pool6.clone();
        let held6 = pool6.as_ref().zip(e.ip6).map(|(p, ip)| {
            let p = self.docker.pools6.get_mut(p).expect("linked pools exist");
            p.held.remove(&ip)
        });
        let attached = self.attach(&net, &sandbox, spec, eid.clone());
        if let (Some(p), Some(true)) = (&pool, held) {
            self.docker
                .pools
                .get_mut(p)
                .expect("linked pools exist")
                .held
                .insert(e.ip);
        }
        if let (Some(p), Some(ip), Some(true)) = (&pool6, e.ip6, held6) {
            self.docker
                .pools6
                .get_mut(p)
                .expect("linked pools exist")
                .held
                .insert(ip);
        }
        if let Err(err) = attached {
            if new_sandbox {
                self.sandboxes.remove(&sandbox);
            }
            return Err(err);
        }
        let ep = self.endpoints.get_mut(&eid).expect("attached above");
        ep.handoff = true;
        // Docker routes through the gateway of the network it chooses.
        ep.default_route = Some(false);
        self.docker.endpoints.get_mut(&eid).expect("found above").joined = true;
        Ok(Joined {
            sandbox,
            new_sandbox,
            endpoint: eid,
        })
    }

    /// `NetworkDriver.Leave`: the switchd endpoint goes, and its sandbox with its last one.
    ///
    /// # Errors
    /// An unknown endpoint, or one not joined.
    pub fn docker_leave(&mut self, network: &str, endpoint: &str) -> Result<Left, ModelError> {
        let (eid, e) = self.docker_endpoint(network, endpoint)?;
        if !e.joined {
            return Err(ModelError::Conflict(format!(
                "Docker endpoint {endpoint} is not joined"
            )));
        }
        let ep = self.endpoints.remove(&eid).ok_or_else(|| unknown_endpoint(endpoint))?;
        self.docker.endpoints.get_mut(&eid).expect("found above").joined = false;
        let sandbox = self.sandboxes[&ep.sandbox].clone();
        let sandbox_removed = self.endpoints_of_sandbox(&sandbox.id).is_empty();
        if sandbox_removed {
            self.sandboxes.remove(&sandbox.id);
        }
        Ok(Left {
            sandbox,
            endpoint: ep,
            sandbox_removed,
        })
    }

    /// `NetworkDriver.ProgramExternalConnectivity`: the container's published ports (Docker's
    /// port map, its host ports chosen), forwarded to this endpoint's address. Returns the
    /// sandbox.
    ///
    /// # Errors
    /// Unknown or unjoined endpoint, an internal network, a host port given twice or taken.
    pub fn docker_publish(&mut self, network: &str, endpoint: &str, ports: Vec<PortBinding>) -> Result<Id, ModelError> {
        let (eid, _) = self.docker_endpoint(network, endpoint)?;
        let ep = self
            .endpoints
            .get(&eid)
            .ok_or_else(|| ModelError::Conflict(format!("Docker endpoint {endpoint} is not joined")))?;
        let net = &self.networks[&ep.network];
        if net.internal && !ports.is_empty() {
            return Err(invalid(format!(
                "ports cannot be published from internal network {}: it has no way in or out",
                net.name
            )));
        }
        let sb = ep.sandbox.clone();
        for (i, b) in ports.iter().enumerate() {
            self.check_host_port(b, &ports[..i], Some(&sb))?;
        }
        self.sandboxes.get_mut(&sb).expect("endpoints have sandboxes").ports = ports;
        Ok(sb)
    }

    /// Names the switchd network a Docker network made as the Docker Engine names it, so
    /// switchctl and switchd's DNS (`vm2.my_net2`) say what Docker says. Only a local network
    /// still named `docker-<short ID>` is renamed (an overlay's name is the cluster's, chosen
    /// with `switch.network`), and only to a valid name no other network has. Returns the
    /// new name when it changed.
    ///
    /// # Errors
    /// An unknown Docker network.
    pub fn docker_name_network(&mut self, id: &str, name: &str) -> Result<Option<String>, ModelError> {
        let key = Id::parse(id)
            .filter(|k| self.docker.networks.contains_key(k))
            .ok_or_else(|| unknown_network(id))?;
        let d = &self.docker.networks[&key];
        let net = &d.network;
        let taken = self.networks.values().any(|n| n.name == name);
        let Some(n) = self.networks.get_mut(net) else {
            return Ok(None);
        };
        let ours = d.made && n.driver != Driver::Overlay && n.name == format!("docker-{}", key.short());
        if !ours || taken || check_name("network", name).is_err() {
            return Ok(None);
        }
        n.name = name.to_string();
        Ok(Some(n.name.clone()))
    }

    /// Names the sandbox of joined Docker endpoint `endpoint` after its container, and gives
    /// the endpoint the container's aliases on the network, as the Docker Engine tells them
    /// (the protocol does not). A name that is taken or invalid leaves the sandbox's name; an
    /// invalid alias is left out. Returns the sandbox's name, when it changed.
    ///
    /// # Errors
    /// An unknown or unjoined endpoint.
    pub fn docker_name(&mut self, endpoint: &Id, name: &str, aliases: &[String]) -> Result<Option<String>, ModelError> {
        let ep = self
            .endpoints
            .get(endpoint)
            .filter(|e| e.handoff)
            .ok_or_else(|| unknown_endpoint(&endpoint.to_string()))?;
        let sb = ep.sandbox.clone();
        let mut kept: Vec<String> = Vec::new();
        for a in aliases {
            if a != name && check_name("alias", a).is_ok() && !kept.contains(a) {
                kept.push(a.clone());
            }
        }
        self.endpoints.get_mut(endpoint).expect("found above").aliases = kept;
        let free =
            check_name("sandbox", name).is_ok() && !self.sandboxes.values().any(|s| s.name == name && s.id != sb);
        let s = self.sandboxes.get_mut(&sb).expect("endpoints have sandboxes");
        if !free || s.name == name {
            return Ok(None);
        }
        s.name = name.to_string();
        Ok(Some(s.name.clone()))
    }
}
