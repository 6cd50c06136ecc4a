//! The daemon's operations: each validates on a copy of the state (control-plane model),
//! performs the kernel work (namespaces, TAP ports, dataplane ports), and commits the copy to
//! the store only when everything succeeded; on failure the kernel work is undone.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use control_plane::api::{
    CapStats, ClusterStats, CreateResponse, Descriptors, DnsStats, FdbResource, FromModel, IntoSpec, MacTableCount,
    NetworkConnect, NetworkCreate, NetworkResource, Polling, PortRef, PortResource, PortWrites, PruneResponse,
    SandboxCreate, SandboxResource, StatsResource, TraceRequest, TraceResource, TraceStageResource, VtepResource,
    VxlanResource,
};
use control_plane::ipam::AddressPool;
use control_plane::model::{self, Driver, Endpoint, NativePath, Network, Sandbox, SandboxMode, State};
use control_plane::store::{Intent, Store};
use control_plane::{Id, ModelError};
use overlay::Vni;
use switch::{NetworkConfig, NetworkId, PortConfig, PortId};

use crate::dataplane::{self, Device, NewPort, PortKind};
use crate::{
    failpoint,
    kernel::{firewall, netdev, netns},
    ports::{tap, veth, vlan},
    services::{dns, proxy},
};

/// Longest frame a TAP port may hand the switch (64 KB super-frames with offloads).
const TAP_MAX_FRAME: usize = 65_535 + 64;
/// Addresses a static VXLAN peer or a VLAN uplink may stand for (a whole remote segment).
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
    /// The UDP port of sealed tunnels (encrypted overlay networks).
    pub esp_port: u16,
    /// The cluster driver, when switchd is a cluster member.
    pub cluster: Option<crate::cluster::Cluster>,
    /// This host's index in the cluster (its share of overlay addresses).
    pub host_index: Option<u32>,
    /// How long the dataplane keeps polling after traffic before it sleeps.
    pub poll: std::time::Duration,
    /// Whether bursts of frames are written to ports in one io_uring submission.
    pub batch_writes: bool,
    /// The caps on descriptors held for others.
    pub limits: Arc<crate::kernel::limits::Limits>,
    /// Whether switchd installs its nftables ruleset.
    pub firewall: firewall::Mode,
    /// Where automatic subnets come from (`--default-address-pool`), IPv4 and IPv6; empty:
    /// the defaults.
    pub pools: AddressPools,
    /// The default bridge's address and prefix length (`--bip`), if given.
    pub bip: Option<String>,
}

/// Address pools of automatic subnets, IPv4 and IPv6.
pub type AddressPools = (Vec<AddressPool<Ipv4Addr>>, Vec<AddressPool<std::net::Ipv6Addr>>);

/// A network's own switch ports: its gateway (or, on userspace 802.1Q, its uplink and the
/// host's interface) and its static VXLAN peers.
struct NetPorts {
    own: Vec<PortId>,
    vteps: HashMap<SocketAddr, PortId>,
    /// Other cluster hosts with endpoints on the network: their VXLAN port.
    peers: HashMap<SocketAddr, PortId>,
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
    esp_port: u16,
    cluster: Option<crate::cluster::Cluster>,
    limits: Arc<crate::kernel::limits::Limits>,
    firewall: firewall::Mode,
    /// News of claims and donors' answers, for creates waiting on addresses.
    claims: (Mutex<claims::ClaimNews>, std::sync::Condvar),
    /// Where automatic subnets come from.
    pools: AddressPools,
}

/// What planning a network needs of this host: the prefixes switchd's namespace routes to, but
/// its default routes (/proc/net/route and ipv6_route show the reading process's namespace;
/// unreadable means none), the underlay's family (`underlay6`) and the address pools.
fn host_facts(underlay6: bool, (pools, pools6): &AddressPools) -> control_plane::HostFacts {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    control_plane::HostFacts {
        routes: control_plane::ipam::parse_proc_net_route(&read("/proc/net/route")),
        routes6: control_plane::ipam::parse_proc_net_ipv6_route(&read("/proc/net/ipv6_route")),
        underlay6,
        pools: pools.clone(),
        pools6: pools6.clone(),
    }
}

/// 32 random bytes as an object ID.
pub fn random_id() -> Id {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the kernel's random source is available");
    Id::from_random(b)
}

impl Daemon {
    /// This host's facts for planning a network ([`host_facts`]): the underlay is IPv6 when
    /// the cluster's address is.
    fn host_facts(&self) -> control_plane::HostFacts {
        host_facts(self.cluster.as_ref().is_some_and(|c| c.vtep().is_ipv6()), &self.pools)
    }

    /// Opens the store, starts the dataplane and brings every stored network and sandbox back.
    ///
    /// # Errors
    /// The store cannot be opened or written, or the dataplane cannot start.
    pub fn start(cfg: Config) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(&cfg.state_dir)?;
        let store = Store::open(&cfg.state_dir)?;
        let mut state = match store.load()? {
            Some(s) => s,
            None => {
                let s = State::with_defaults([random_id(), random_id(), random_id()], SystemTime::now());
                store.save(&s)?;
                s
            }
        };
        if let Some(bip) = &cfg.bip {
            let host = host_facts(false, &cfg.pools);
            if state.set_bip(bip, &host)? {
                store.save(&state)?;
                tracing::info!(bip = %bip, "the default bridge takes its address from --bip");
            }
        }
        state.host_index = cfg.host_index;
        state.host_name = cfg.cluster.as_ref().map(|c| c.name().to_string());
        // Fail closed: the ruleset of the stored state is in place before any port exists or
        // the host forwards, and without it switchd does not start (unless told to run bare).
        match cfg.firewall {
            firewall::Mode::On => firewall::apply(&control_plane::firewall::ruleset(&state)).map_err(|e| {
                anyhow::anyhow!(
                    "cannot install the firewall ({e}): networks would not be isolated from each other; install nftables, or start with --firewall=off to run without isolation, outbound NAT and DNAT of published ports"
                )
            })?,
            firewall::Mode::Off => tracing::warn!(
                "running without the firewall (--firewall=off): networks are not isolated from each other at L3, sandboxes have no outbound NAT, published ports are served by the userland proxy alone"
            ),
        }
        // Sandboxes reach beyond the host through it (masquerade in the firewall table).
        netdev::write_sysctl("net/ipv4/ip_forward", "1")?;
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
        // VXLAN listens on the address the cluster knows this host by, whose family is the
        // underlay's; without a cluster (static VTEPs only) on every address of both families
        // (IPv4 alone when the host has no IPv6).
        let vxlan = match cfg.cluster.as_ref().map(|c| c.vtep()) {
            Some(a) => a,
            None if std::path::Path::new("/proc/sys/net/ipv6").exists() => {
                SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, cfg.vxlan_port))
            }
            None => SocketAddr::from((Ipv4Addr::UNSPECIFIED, cfg.vxlan_port)),
        };
        let dp = dataplane::spawn(
            u64::from_ne_bytes(seed),
            vxlan,
            cfg.esp_port,
            cfg.poll,
            cfg.batch_writes,
        )?;
        if let Some(c) = &cfg.cluster {
            // Keys of sealed tunnels go to the dataplane from here on.
            c.attach_dataplane(dp.clone());
        }
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
            dns: dns::Dns::new(cfg.rt.clone(), snapshot.clone(), cfg.upstreams, cfg.limits.clone()),
            proxies: proxy::Proxies::new(cfg.rt, cfg.limits.clone()),
            limits: cfg.limits,
            firewall: cfg.firewall,
            vxlan_port: cfg.vxlan_port,
            esp_port: cfg.esp_port,
            cluster: cfg.cluster,
            snapshot,
            claims: Default::default(),
            pools: cfg.pools,
        };
        let intent = d.store.intent().unwrap_or_else(|e| {
            tracing::error!("cannot read the intent of an interrupted operation: {e}");
            None
        });
        if let Some(intent) = intent {
            d.recover(&state, intent);
        }
        d.restore(state);
        // Claims kept from before the restart go back to the cluster (one written just
        // before a crash may have reached no one).
        if let Some(cl) = &d.cluster {
            let inner = d.inner.lock().expect("lock poisoned");
            for (id, n) in &inner.state.networks {
                if let Some(space) = &n.space {
                    cl.restore_claims(id, space.claims().map(|(r, c)| (r, c.clone())));
                }
            }
            // So are the revocations it took: refused before any other host is heard from.
            for (host, (issued_ms, sig)) in &inner.state.revocations {
                let r = control_plane::cluster::pki::Revocation {
                    host: host.clone(),
                    issued_ms: *issued_ms,
                    sig: sig.clone(),
                };
                if let Err(e) = cl.revoke(&r) {
                    tracing::error!(%host, "a stored revocation no longer holds: {e}");
                }
            }
        }
        Ok(d)
    }

    /// Removes what an operation interrupted by a crash made before its state was committed
    /// (nothing, if the state shows it committed), then clears its intent.
    fn recover(&self, state: &State, intent: Intent) {
        match &intent {
            Intent::CreateSandbox { sandbox, endpoints } if !state.sandboxes.contains_key(&sandbox.id) => {
                tracing::warn!(sandbox = %sandbox.name, "a crash interrupted its creation: removing what it made");
                self.undo_create(state, sandbox, endpoints);
            }
            Intent::Connect { sandbox, endpoint } if !state.endpoints.contains_key(&endpoint.id) => {
                tracing::warn!(sandbox = %sandbox.name, "a crash interrupted a connect: removing its interface");
                if let Err(e) = self.delete_endpoint_interface(state, sandbox, endpoint) {
                    tracing::warn!(sandbox = %sandbox.name, "removing the interface: {e}");
                }
            }
            _ => {}
        }
        self.clear_intent();
    }

    /// Re-creates the runtime side of a stored state: gateway ports, then sandbox ports
    /// (re-attaching the persistent TAP devices). Failures are logged and leave the object
    /// in the state; they do not stop the daemon.
    fn restore(&self, state: State) {
        let mut inner = self.inner.lock().expect("lock poisoned");
        for net in state.networks.values() {
            match self.bring_up(net) {
                Ok(Some(ports)) => self.ports_up(&mut inner, net.id.clone(), ports),
                Ok(None) => {}
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
                    Ok(Some(port)) => {
                        inner.endpoint_ports.insert(ep.id.clone(), port);
                    }
                    Ok(None) => {}
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
        // Again, now that every network is up (the ruleset was installed before them).
        if let Err(e) = self.apply_firewall(&state) {
            tracing::error!("cannot install the firewall: {e}; the previous ruleset stays");
        }
        tracing::info!(
            networks = state.networks.len(),
            sandboxes = state.sandboxes.len(),
            ports = inner
                .net_ports
                .values()
                .map(|n| n.own.len() + n.vteps.len())
                .sum::<usize>()
                + inner.endpoint_ports.len(),
            "state restored"
        );
        for ep in state.endpoints.values() {
            self.publish_endpoint(&state, ep);
        }
        inner.state = state;
    }

    /// Makes `next` the state: its firewall first, then the store. If the store fails, the
    /// previous firewall is put back.
    fn commit(&self, inner: &mut Inner, next: State) -> Result<(), OpError> {
        self.apply_firewall(&next).map_err(io_err("firewall"))?;
        if let Err(e) = self.store.save(&next) {
            if let Err(fe) = self.apply_firewall(&inner.state) {
                tracing::error!("cannot restore the previous firewall: {fe}");
            }
            return Err(OpError::Io(e.to_string()));
        }
        *self.snapshot.write().expect("lock poisoned") = Arc::new(next.clone());
        inner.state = next;
        Ok(())
    }

    /// Installs the ruleset of `state`, unless switchd runs without a firewall.
    fn apply_firewall(&self, state: &State) -> io::Result<()> {
        match self.firewall {
            firewall::Mode::On => firewall::apply(&control_plane::firewall::ruleset(state)),
            firewall::Mode::Off => Ok(()),
        }
    }

    /// The caps on descriptors held for others.
    pub fn limits(&self) -> &Arc<crate::kernel::limits::Limits> {
        &self.limits
    }

    /// Removes the fabric's firewall table (clean shutdown). Ports and namespaces stay.
    pub fn shutdown(&self) {
        if self.firewall == firewall::Mode::Off {
            return;
        }
        if let Err(e) = firewall::apply(&control_plane::firewall::teardown()) {
            tracing::warn!("removing the firewall table: {e}");
        }
    }
}

mod claims;
mod docker;
mod networks;
mod observe;
mod records;
mod sandboxes;
