//! The simulated world: hosts running the real cores (SWIM membership and records, the remote
//! endpoint reconciler, the model with its IPAM, the switch, the VXLAN codec, ARP
//! suppression) over a simulated underlay, in virtual time, with one seeded RNG.
//!
//! ```text
//!  event queue (time µs, sequence) ──► Step · Start · Timer · Gossip · Vxlan · Poll · Sync · Check
//!        ▲                                   │
//!        └──── datagrams (latency, jitter, loss, partition) ◄── host: Node.poll_transmit
//!                                                                   switch verdict → port → VXLAN
//! ```
//!
//! Everything is ordered (BTreeMap, Vec, a sequence number on equal times) or kept in hash
//! maps with a fixed hasher, whose order depends only on the operations made, and every
//! random choice comes from the one RNG, so a seed gives one run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use control_plane::cluster::membership::{Event as Member, HostId, Timer};
use control_plane::cluster::node::{self, Node, Output};
use control_plane::cluster::records::{Body, RecordKey};
use control_plane::cluster::remotes::Effect;
use control_plane::cluster::{cheap, exchange};
use control_plane::model::{NetworkSpec, SandboxSpec, State};
use control_plane::Id;
use control_plane::ModelError;

use overlay::edge::{Carried, Decision, Edge, Refused};
use overlay::{Vni, VxlanHeader, VXLAN_HEADER_LEN};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rustc_hash::FxHashMap;
use switch::{MacAddr, NetworkConfig, NetworkId, PortConfig, PortId, Switch, Verdict};

use super::pcap::Ring;
use super::report::{quantile, Goal, Report};
use super::sandbox::SimSandbox;
use super::scenario::{Action, Link, Scenario};

mod claims;
mod intern;

type Us = u64;

const SEC: Us = 1_000_000;
/// How often convergence is checked.
const CHECK_EVERY: Us = SEC / 4;
/// Nonce and tag of a sealed gossip datagram.
const SEAL_OVERHEAD: usize = 12 + 16;
const GOSSIP_PORT: u16 = 7946;
const VXLAN_PORT: u16 = 4789;
/// The model's clock for everything it stamps (creation times): fixed, so runs are equal.
const EPOCH_S: u64 = 1_800_000_000;

enum Ev {
    Step(usize),
    Start(u32),
    Timer(u32, u32, Timer),
    Gossip(u32, Bytes),
    Vxlan(u32, Ipv4Addr, Vec<u8>),
    Poll(u32, u32, usize),
    Rejoin(u32, u32),
    Sync(u32, u32),
    Sandbox {
        host: u32,
        network: String,
        ip: Option<Ipv4Addr>,
        probe: bool,
    },
    /// A donor's answer to host `.0` (of generation `.1`) may be late.
    AskTimeout(u32, u32),
    Check,
}

struct Entry {
    at: Us,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct NetRt {
    sid: NetworkId,
    vni: u32,
    peers: FxHashMap<SocketAddr, PortId>,
}

#[derive(Clone, Copy)]
enum Owner {
    Sandbox(usize),
    /// A VXLAN peer: its address and the network's VNI.
    Peer(Ipv4Addr, u32),
}

struct LocalSb {
    sb: SimSandbox,
    port: PortId,
    net: Id,
    name: String,
}

struct Host {
    name: String,
    ip: Ipv4Addr,
    gen: u32,
    alive: bool,
    started_at: Option<Us>,
    m: Option<Node>,
    state: State,
    switch: Switch,
    nets: BTreeMap<Id, NetRt>,
    owners: Vec<Option<Owner>>,
    /// VNIs, VXLAN peers, suppressed addresses and the forwarding decision, as switchd's.
    edge: Edge,
    sbs: Vec<Option<LocalSb>>,
    made: u32,
    /// Sandboxes waiting for addresses from other hosts.
    waiting: Vec<claims::Waiting>,
    /// Revoked by the CA: it keeps running, but is no member any more.
    revoked: bool,
}

struct EpTrack {
    created: Us,
    probe: bool,
    /// Made while the underlay was split: it cannot reach the other side before the heal.
    split: bool,
    known: Vec<Us>,
}

struct Crash {
    host: u32,
    at: Us,
    bump: u64,
    back_at: Option<Us>,
    down_at: Vec<Option<Us>>,
    /// Forgotten (`cluster forget`): it never comes back.
    forgotten: bool,
}

struct FlowTrack {
    bytes: usize,
    got: usize,
}

/// What `switchsim run` may change of a scenario.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Overrides the seed.
    pub seed: Option<u64>,
    /// Overrides the host count.
    pub hosts: Option<u32>,
}

/// A run's outcome: its report and, when an invariant broke, the frames involved.
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// The last frames seen, when the run failed.
    pub capture: Option<Vec<(u64, Vec<u8>)>>,
    /// Every measured endpoint's route convergence, ms (the report gives its quantiles).
    pub convergence_ms: Vec<f64>,
    /// Every measured crash's failure detection, ms.
    pub detection_ms: Vec<f64>,
}

/// How far a run is, for whoever watches it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Simulated seconds done.
    pub simulated_s: f64,
    /// Simulated seconds the run lasts.
    pub duration_s: f64,
    /// Events handled.
    pub events: u64,
}

/// Events handled between two [`Progress`] calls.
const PROGRESS_EVERY: u64 = 1 << 16;

struct World {
    sc: Scenario,
    now: Us,
    seq: u64,
    q: BinaryHeap<Reverse<Entry>>,
    rng: StdRng,
    hosts: Vec<Host>,
    by_addr: FxHashMap<SocketAddr, u32>,
    /// Hosts by name (the owners claims name).
    by_name: FxHashMap<String, u32>,
    by_ip: FxHashMap<Ipv4Addr, u32>,
    link: Link,
    partition: Option<u32>,
    /// The last partition's end and split point: news of it still arrives for a while.
    healed: Option<(Us, u32)>,
    base: std::time::Instant,
    networks: BTreeMap<String, Id>,
    eps: Vec<EpTrack>,
    ep_index: FxHashMap<Id, usize>,
    held: BTreeMap<(Id, Ipv4Addr), Id>,
    /// Gossiped records, decoded once for all hosts.
    interner: Arc<intern::Shared>,
    mac_net: BTreeMap<[u8; 6], Id>,
    crashes: Vec<Crash>,
    /// Hosts the CA revoked, measured as crashes are (cut off where crashes are declared down).
    revocations: Vec<Crash>,
    false_positives: u64,
    gossip_msgs: u64,
    control_bytes: u64,
    idle_mark: Option<(Us, u64)>,
    drops: BTreeMap<String, u64>,
    delivered: u64,
    cross_network: u64,
    held_twice: u64,
    /// How long creates that asked other hosts for addresses waited.
    donation_waits: Vec<Us>,
    /// Ranges given to hosts that asked.
    donations: u64,
    /// Crashed hosts forgotten.
    forgotten: u64,
    /// Creates that got no address.
    allocation_failures: u64,
    /// Of those, creates refused while a host reachable from theirs had addresses to give.
    failures_with_space_reachable: u64,
    pings_sent: u64,
    /// Pings over IPv6 sent, and answered.
    pings6: (u64, u64),
    rtts: Vec<f64>,
    flows: Vec<FlowTrack>,
    refused: u64,
    refusals: Vec<String>,
    last_disruption: Option<Us>,
    reconverged: Option<Us>,
    ring: Ring,
    sandboxes_made: u64,
    trace: bool,
}

/// Runs `sc` to its end.
pub fn run(sc: Scenario, opts: &Options) -> Outcome {
    run_watched(sc, opts, &mut |_| {})
}

/// [`run`], telling `watch` how far it is every [`PROGRESS_EVERY`] events (what it is told
/// depends on virtual time alone: the report is the same).
pub fn run_watched(mut sc: Scenario, opts: &Options, watch: &mut dyn FnMut(Progress)) -> Outcome {
    if let Some(s) = opts.seed {
        sc.seed = s;
    }
    if let Some(h) = opts.hosts {
        sc.hosts = h;
    }
    let n = sc.hosts;
    let mut rng = StdRng::seed_from_u64(sc.seed);
    // The switch core keeps time as std Instants; virtual time is an offset from one.
    #[allow(clippy::disallowed_methods)]
    let base = std::time::Instant::now();
    let hosts = (0..n)
        .map(|i| {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 1)) + i);
            let mut state = State::with_defaults([id(&mut rng), id(&mut rng), id(&mut rng)], epoch());
            state.host_index = Some(i);
            let name = format!("h{i:05}");
            state.host_name = Some(name.clone());
            Host {
                name,
                ip,
                gen: 0,
                alive: false,
                started_at: None,
                m: None,
                state,
                switch: Switch::new(base, rng.random()),
                nets: BTreeMap::new(),
                owners: Vec::new(),
                edge: Edge::new(),
                sbs: Vec::new(),
                made: 0,
                waiting: Vec::new(),
                revoked: false,
            }
        })
        .collect::<Vec<_>>();
    let by_addr = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (SocketAddr::from((h.ip, GOSSIP_PORT)), i as u32))
        .collect();
    let by_ip = hosts.iter().enumerate().map(|(i, h)| (h.ip, i as u32)).collect();
    let by_name = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.clone(), i as u32))
        .collect();
    let mut w = World {
        link: sc.link,
        sc,
        now: 0,
        seq: 0,
        q: BinaryHeap::new(),
        rng,
        hosts,
        by_addr,
        by_name,
        by_ip,
        partition: None,
        healed: None,
        base,
        networks: BTreeMap::new(),
        eps: Vec::new(),
        ep_index: FxHashMap::default(),
        held: BTreeMap::new(),
        interner: Arc::default(),
        mac_net: BTreeMap::new(),
        crashes: Vec::new(),
        revocations: Vec::new(),
        false_positives: 0,
        gossip_msgs: 0,
        control_bytes: 0,
        idle_mark: None,
        drops: BTreeMap::new(),
        delivered: 0,
        cross_network: 0,
        held_twice: 0,
        donation_waits: Vec::new(),
        donations: 0,
        forgotten: 0,
        allocation_failures: 0,
        failures_with_space_reachable: 0,
        pings_sent: 0,
        pings6: (0, 0),
        rtts: Vec::new(),
        flows: Vec::new(),
        refused: 0,
        refusals: Vec::new(),
        last_disruption: None,
        reconverged: None,
        ring: Ring::new(10_000),
        sandboxes_made: 0,
        trace: std::env::var_os("SWITCHSIM_TRACE").is_some(),
    };
    for i in 0..w.sc.step.len() {
        let at = secs(w.sc.step[i].at_s);
        w.at(at, Ev::Step(i));
    }
    w.at(CHECK_EVERY, Ev::Check);
    let end = secs(w.sc.duration_s);
    let last_step = w.sc.step.iter().map(|s| secs(s.at_s)).max().unwrap_or(0);
    let idle_from = last_step + 10 * SEC;
    let mut events = 0u64;
    while let Some(Reverse(e)) = w.q.pop() {
        if e.at > end {
            break;
        }
        events += 1;
        if events.is_multiple_of(PROGRESS_EVERY) {
            watch(Progress {
                simulated_s: e.at as f64 / SEC as f64,
                duration_s: end as f64 / SEC as f64,
                events,
            });
        }
        if w.idle_mark.is_none() && e.at >= idle_from && idle_from < end {
            w.idle_mark = Some((idle_from, w.control_bytes));
        }
        w.now = e.at;
        w.handle(e.ev);
    }
    w.now = end;
    w.finish(idle_from < end)
}

/// The node's anti-entropy period, in virtual microseconds.
fn sync_every() -> Us {
    node::Config::default().sync_every.as_micros() as Us
}

/// The node's rejoin period, in virtual microseconds.
fn rejoin_every() -> Us {
    node::Config::default().rejoin_every.as_micros() as Us
}

fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_S)
}

fn secs(s: f64) -> Us {
    (s * SEC as f64).round() as Us
}

fn id(rng: &mut StdRng) -> Id {
    Id::from_random(rng.random())
}

impl World {
    fn at(&mut self, at: Us, ev: Ev) {
        self.seq += 1;
        self.q.push(Reverse(Entry { at, seq: self.seq, ev }));
    }

    fn instant(&self) -> std::time::Instant {
        self.base + Duration::from_micros(self.now)
    }

    fn now_ms(&self) -> u64 {
        EPOCH_S * 1000 + self.now / 1000
    }

    /// Running and a member (not revoked).
    fn live(&self, h: u32) -> bool {
        let host = &self.hosts[h as usize];
        host.alive && !host.revoked
    }

    fn refuse(&mut self, msg: String) {
        self.refused += 1;
        if self.refusals.len() < 5 {
            self.refusals.push(msg);
        }
    }

    fn drop_frame(&mut self, reason: &str) {
        *self.drops.entry(reason.to_string()).or_default() += 1;
    }

    /// Whether a datagram from `a` reaches `b` (partition and loss; both must be up).
    fn link_ok(&mut self, a: u32, b: u32) -> Result<Us, &'static str> {
        if !self.live(b) {
            return Err("host_down");
        }
        if let Some(n) = self.partition {
            if (a < n) != (b < n) {
                return Err("partition");
            }
        }
        if self.link.loss > 0.0 && self.rng.random_bool(self.link.loss) {
            return Err("link_loss");
        }
        let jitter = if self.link.jitter_ms > 0.0 {
            self.rng.random_range(0.0..self.link.jitter_ms)
        } else {
            0.0
        };
        Ok(((self.link.latency_ms + jitter) * 1000.0).round() as Us)
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Step(i) => self.step(i),
            Ev::Start(h) => self.start(h),
            Ev::Timer(h, gen, t) => {
                if self.live(h) && self.hosts[h as usize].gen == gen {
                    if let Some(m) = self.hosts[h as usize].m.as_mut() {
                        m.handle_timer(t);
                    }
                    self.pump(h);
                }
            }
            Ev::Gossip(h, data) => {
                if self.live(h) {
                    let now_ms = self.now_ms();
                    if let Some(m) = self.hosts[h as usize].m.as_mut() {
                        let _ = m.handle_datagram(&data, now_ms);
                    }
                    self.pump(h);
                }
            }
            Ev::Vxlan(h, from, data) => {
                if self.live(h) {
                    self.vxlan_in(h, from, data);
                } else {
                    self.drop_frame("host_down");
                }
            }
            Ev::Poll(h, gen, i) => {
                if self.live(h) && self.hosts[h as usize].gen == gen {
                    self.poll(h, i);
                }
            }
            Ev::Rejoin(h, gen) => {
                if self.live(h) && self.hosts[h as usize].gen == gen {
                    self.join(h);
                    self.at(self.now + rejoin_every(), Ev::Rejoin(h, gen));
                }
            }
            Ev::Sync(h, gen) => {
                if self.live(h) && self.hosts[h as usize].gen == gen {
                    self.sync(h);
                    self.at(self.now + sync_every(), Ev::Sync(h, gen));
                }
            }
            Ev::Sandbox {
                host,
                network,
                ip,
                probe,
            } => self.create_sandbox(host, &network, ip, probe),
            Ev::AskTimeout(h, gen) => {
                if self.live(h) && self.hosts[h as usize].gen == gen {
                    self.ask_timeout(h);
                }
            }
            Ev::Check => {
                self.check();
                self.at(self.now + CHECK_EVERY, Ev::Check);
            }
        }
    }

    fn step(&mut self, i: usize) {
        let action = self.sc.step[i].action.clone();
        let n = self.sc.hosts;
        match action {
            Action::Join { over_s, share } => {
                let over = secs(over_s);
                let upto = ((share * f64::from(n)).round() as u32).min(n);
                let new: Vec<u32> = (0..upto)
                    .filter(|h| self.hosts[*h as usize].started_at.is_none())
                    .collect();
                for (i, h) in new.iter().enumerate() {
                    let at = self.now + over * i as u64 / new.len() as u64;
                    self.at(at, Ev::Start(*h));
                }
            }
            Action::CreateNetwork { network, host } => self.create_network(host, &network),
            Action::Sandboxes {
                network,
                per_host,
                over_s,
                on,
            } => self.schedule_sandboxes(&network, per_host, over_s, on),
            Action::Probe {
                network,
                count,
                every_s,
            } => {
                for k in 0..count {
                    let Some(h) = self.random_live() else { break };
                    let ev = Ev::Sandbox {
                        host: h,
                        network: network.clone(),
                        ip: None,
                        probe: true,
                    };
                    self.at(self.now + secs(every_s) * u64::from(k), ev);
                }
            }
            Action::Ping { network, count, ipv6 } => self.start_pings(&network, count, ipv6),
            Action::Tcp {
                network,
                count,
                bytes,
                ipv6,
            } => self.start_flows(&network, count, bytes, ipv6),
            Action::Crash { count } => {
                self.disrupted();
                self.crash(count);
            }
            Action::Restart => {
                self.disrupted();
                for c in 0..self.crashes.len() {
                    if self.crashes[c].back_at.is_none() && !self.crashes[c].forgotten {
                        self.crashes[c].back_at = Some(self.now);
                        let h = self.crashes[c].host;
                        self.restart(h);
                    }
                }
            }
            Action::Partition { fraction } => {
                self.disrupted();
                self.partition = Some((fraction * f64::from(n)).round() as u32);
            }
            Action::Forget => {
                self.disrupted();
                self.forget_crashed();
            }
            Action::Revoke { count } => {
                self.disrupted();
                self.revoke(count);
            }
            Action::Heal => {
                self.disrupted();
                if let Some(n) = self.partition.take() {
                    self.healed = Some((self.now, n));
                }
            }
            Action::Move { network, count, gap_s } => {
                self.disrupted();
                for _ in 0..count {
                    self.move_one(&network, secs(gap_s));
                }
            }
            Action::Loss { loss } => {
                self.disrupted();
                self.link.loss = loss;
            }
        }
    }

    /// `per_host` sandboxes on each live host (or only on `on`), at random times over `over_s`
    /// seconds.
    fn schedule_sandboxes(&mut self, network: &str, per_host: u32, over_s: f64, on: Option<u32>) {
        for h in 0..self.sc.hosts {
            if !self.live(h) || on.is_some_and(|o| o != h) {
                continue;
            }
            for _ in 0..per_host {
                let at = self.now + self.rng.random_range(0..=secs(over_s));
                let ev = Ev::Sandbox {
                    host: h,
                    network: network.to_string(),
                    ip: None,
                    probe: false,
                };
                self.at(at, ev);
            }
        }
    }

    /// `count` pings, each between a random pair of sandboxes of `network`, over IPv4 or
    /// (`ipv6`, on a dual-stack network) IPv6.
    fn start_pings(&mut self, network: &str, count: u32, ipv6: bool) {
        for _ in 0..count {
            if let Some(((h, i), (g, j))) = self.pair(network) {
                let to = self.sb(g, j).and_then(|s| match ipv6 {
                    true => s.ip6.map(std::net::IpAddr::from),
                    false => Some(s.ip.into()),
                });
                let now = self.now;
                if let (Some(sb), Some(to)) = (self.sb_mut(h, i), to) {
                    sb.ping(to, now);
                    self.pings_sent += 1;
                    self.pings6.0 += u64::from(ipv6);
                    self.wake(h, i);
                }
            }
        }
    }

    /// `count` TCP flows of `bytes` each, each between a random pair of sandboxes.
    fn start_flows(&mut self, network: &str, count: u32, bytes: u32, ipv6: bool) {
        for _ in 0..count {
            let Some(((h, i), (g, j))) = self.pair(network) else {
                break;
            };
            let flow = self.flows.len();
            let port = 5000 + (flow % 50_000) as u16;
            let to = self.sb(g, j).and_then(|s| match ipv6 {
                true => s.ip6.map(std::net::IpAddr::from),
                false => Some(s.ip.into()),
            });
            let Some(ip) = to else {
                continue;
            };
            self.flows.push(FlowTrack {
                bytes: bytes as usize,
                got: 0,
            });
            if let Some(sb) = self.sb_mut(g, j) {
                sb.listen(port, flow);
            }
            if let Some(sb) = self.sb_mut(h, i) {
                sb.connect(ip, port, 40_000 + (flow % 20_000) as u16, bytes as usize, flow);
            }
            self.wake(g, j);
            self.wake(h, i);
        }
    }

    /// `count` random live hosts crash.
    fn crash(&mut self, count: u32) {
        for _ in 0..count {
            let Some(h) = self.random_live() else { break };
            self.hosts[h as usize].alive = false;
            let c = self.cut_off(h);
            self.crashes.push(c);
        }
    }

    /// The record of host `h` leaving the cluster now (crashed or revoked), whose
    /// declarations by the others are measured.
    fn cut_off(&self, h: u32) -> Crash {
        Crash {
            host: h,
            at: self.now,
            bump: self.hosts[h as usize].m.as_ref().map_or(0, |m| m.me().bump),
            back_at: None,
            down_at: vec![None; self.sc.hosts as usize],
            forgotten: false,
        }
    }

    /// The CA revokes `count` random live hosts; another live host spreads the revocation,
    /// as `switchctl cluster revoke` on it does.
    fn revoke(&mut self, count: u32) {
        let mut names = Vec::new();
        for _ in 0..count {
            let Some(h) = self.random_live() else { break };
            self.hosts[h as usize].revoked = true;
            names.push(self.hosts[h as usize].name.clone());
            let c = self.cut_off(h);
            self.revocations.push(c);
        }
        let Some(p) = self.random_live() else { return };
        let now_ms = self.now_ms();
        for name in names {
            let body = Body::Revocation {
                issued_ms: now_ms,
                sig: control_plane::cluster::cheap::revocation(&name, now_ms).into(),
            };
            if let Some(m) = self.hosts[p as usize].m.as_mut() {
                if let Err(e) = m.publish(RecordKey::Revoked(name.as_str().into()), Some(body), now_ms) {
                    self.refuse(format!("revocation of {name}: {e}"));
                }
            }
        }
        self.pump(p);
    }

    /// Remote endpoints of revoked hosts that live hosts still hold.
    fn revoked_endpoints_held(&self) -> u64 {
        let revoked: BTreeSet<&str> = self
            .hosts
            .iter()
            .filter(|h| h.revoked)
            .map(|h| h.name.as_str())
            .collect();
        if revoked.is_empty() {
            return 0;
        }
        let held = self
            .hosts
            .iter()
            .filter(|h| h.alive && !h.revoked)
            .flat_map(|h| h.state.remote.values().flat_map(|m| m.values()))
            .filter(|e| revoked.contains(&*e.host))
            .count();
        held as u64
    }

    fn disrupted(&mut self) {
        self.last_disruption = Some(self.now);
        self.reconverged = None;
    }

    fn random_live(&mut self) -> Option<u32> {
        let live: Vec<u32> = (0..self.sc.hosts).filter(|h| self.live(*h)).collect();
        (!live.is_empty()).then(|| live[self.rng.random_range(0..live.len())])
    }

    /// The sandboxes of `network` on live hosts: (host, slot) each.
    fn sandboxes_of(&self, network: &str) -> Vec<(u32, usize)> {
        let Some(net) = self.networks.get(network) else {
            return Vec::new();
        };
        self.hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.alive && !h.revoked)
            .flat_map(|(hi, h)| {
                h.sbs
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.as_ref().is_some_and(|s| s.net == *net))
                    .map(move |(i, _)| (hi as u32, i))
            })
            .collect()
    }

    /// Two sandboxes of `network` on different live hosts: (host, slot) each.
    fn pair(&mut self, network: &str) -> Option<((u32, usize), (u32, usize))> {
        let all = self.sandboxes_of(network);
        for _ in 0..16 {
            if all.len() < 2 {
                return None;
            }
            let a = all[self.rng.random_range(0..all.len())];
            let b = all[self.rng.random_range(0..all.len())];
            if a.0 != b.0 {
                return Some((a, b));
            }
        }
        None
    }

    fn sb(&self, h: u32, i: usize) -> Option<&SimSandbox> {
        self.hosts[h as usize].sbs.get(i)?.as_ref().map(|s| &s.sb)
    }

    fn sb_mut(&mut self, h: u32, i: usize) -> Option<&mut SimSandbox> {
        self.hosts[h as usize].sbs.get_mut(i)?.as_mut().map(|s| &mut s.sb)
    }

    fn join_targets(&self, h: u32) -> Vec<SocketAddr> {
        (0..self.sc.hosts.min(3))
            .filter(|t| *t != h)
            .map(|t| SocketAddr::from((self.hosts[t as usize].ip, GOSSIP_PORT)))
            .collect()
    }

    /// The node announces itself if it knows no member (at start, and every rejoin period).
    fn join(&mut self, h: u32) {
        if let Some(m) = self.hosts[h as usize].m.as_mut() {
            m.rejoin();
        }
        self.pump(h);
    }

    fn new_membership(&mut self, h: u32) {
        let join = self.join_targets(h);
        let host = &mut self.hosts[h as usize];
        let me = HostId {
            name: host.name.clone(),
            addr: SocketAddr::from((host.ip, GOSSIP_PORT)),
            bump: u64::from(host.gen) + 1,
        };
        let seed = self.rng.random();
        let name = me.name.clone();
        let mut node = Node::new(me, seed, join, node::Config::default());
        node.records().set_interner(self.interner.clone());
        // Records signed and checked as switchd's, by the cheap scheme.
        let now_ms = self.now_ms();
        node.authenticate(Arc::new(cheap::Cheap::new(&name)), cheap::cert(&name).into(), now_ms);
        self.hosts[h as usize].m = Some(node);
    }

    fn start(&mut self, h: u32) {
        if self.hosts[h as usize].started_at.is_some() {
            return;
        }
        self.hosts[h as usize].alive = true;
        self.hosts[h as usize].started_at = Some(self.now);
        self.new_membership(h);
        let gen = self.hosts[h as usize].gen;
        self.at(self.now + rejoin_every(), Ev::Rejoin(h, gen));
        let first_sync = self.now + self.rng.random_range(1..=sync_every());
        self.at(first_sync, Ev::Sync(h, gen));
        self.join(h);
    }

    /// A crashed host comes back: stored state kept (networks, its sandboxes), what it
    /// learned from the cluster forgotten, the switch rebuilt, its endpoints published again.
    fn restart(&mut self, h: u32) {
        let base = self.base;
        let seed = self.rng.random();
        {
            let host = &mut self.hosts[h as usize];
            host.gen += 1;
            host.alive = true;
            host.started_at = Some(self.now);
            host.state.remote.clear();
            host.switch = Switch::new(base, seed);
            host.nets.clear();
            host.owners.clear();
            host.edge.clear();
            host.waiting.clear();
        }
        self.new_membership(h);
        self.restore_claims(h);
        let nets: Vec<Id> = self.hosts[h as usize]
            .state
            .networks
            .values()
            .filter(|n| n.vni.is_some())
            .map(|n| n.id.clone())
            .collect();
        for n in nets {
            self.bring_up(h, &n);
        }
        let gen = self.hosts[h as usize].gen;
        for i in 0..self.hosts[h as usize].sbs.len() {
            let Some(net) = self.hosts[h as usize].sbs[i].as_ref().map(|s| s.net.clone()) else {
                continue;
            };
            let (mac, ip, ip6) = self.hosts[h as usize].sbs[i]
                .as_ref()
                .map(|s| (s.sb.mac, s.sb.ip, s.sb.ip6))
                .unwrap_or((Default::default(), Ipv4Addr::UNSPECIFIED, None));
            if let Some(port) = self.add_sandbox_port(h, &net, mac, (ip, ip6), i) {
                if let Some(s) = self.hosts[h as usize].sbs[i].as_mut() {
                    s.port = port;
                }
            }
            self.at(self.now, Ev::Poll(h, gen, i));
        }
        let eps: Vec<Id> = self.hosts[h as usize].state.endpoints.keys().cloned().collect();
        for ep in eps {
            self.publish_endpoint(h, &ep);
        }
        self.at(self.now + rejoin_every(), Ev::Rejoin(h, gen));
        self.at(self.now + sync_every(), Ev::Sync(h, gen));
        self.join(h);
    }

    fn create_network(&mut self, h: u32, name: &str) {
        if !self.live(h) {
            self.refuse(format!("host {h} is down: network {name} not created"));
            return;
        }
        let Some(def) = self.sc.network.iter().find(|n| n.name == name).cloned() else {
            return;
        };
        let max_hosts = self.sc.hosts.next_power_of_two().max(64);
        let spec = NetworkSpec {
            name: name.to_string(),
            driver: "overlay".into(),
            subnet: Some(def.subnet.clone()),
            options: [("max_hosts".to_string(), max_hosts.to_string())].into(),
            ipv6: def.subnet6.is_some(),
            pools6: def
                .subnet6
                .iter()
                .map(|s| control_plane::model::PoolSpec {
                    subnet: Some(s.clone()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let nid = id(&mut self.rng);
        let made = self.hosts[h as usize].state.create_network(
            spec,
            nid.clone(),
            epoch(),
            &control_plane::HostFacts::default(),
        );
        if let Err(e) = made {
            self.refuse(format!("host {h}: {e}"));
            return;
        }
        self.networks.insert(name.to_string(), nid.clone());
        self.bring_up(h, &nid);
        self.claim_new_network(h, &nid);
        let rec = self.hosts[h as usize].state.network_record(&nid);
        if let Some(r) = rec {
            let now_ms = self.now_ms();
            if let Some(m) = self.hosts[h as usize].m.as_mut() {
                let _ = m.publish(RecordKey::Network(nid.clone()), Some(Body::Network(r)), now_ms);
            }
        }
        self.pump(h);
    }

    fn bring_up(&mut self, h: u32, nid: &Id) {
        let host = &mut self.hosts[h as usize];
        let Some(net) = host.state.networks.get(nid) else {
            return;
        };
        let (sid, vni, aging) = (NetworkId(net.switch_id), net.vni.unwrap_or(0), net.mac_aging);
        if host.switch.add_network(sid, NetworkConfig { aging }).is_err() {
            return;
        }
        if let Ok(v) = Vni::new(vni) {
            let _ = host.edge.add_network(v, sid);
        }
        host.nets.insert(
            nid.clone(),
            NetRt {
                sid,
                vni,
                peers: FxHashMap::default(),
            },
        );
        // Its remote endpoints go in place as the node's outputs say.
        if let Some(m) = host.m.as_mut() {
            m.network_up(nid.clone());
        }
    }

    /// A sandbox's port, guarded as switchd guards it: it sends only as `mac` and `ip`.
    fn add_sandbox_port(
        &mut self,
        h: u32,
        net: &Id,
        mac: [u8; 6],
        (ip, ip6): (Ipv4Addr, Option<std::net::Ipv6Addr>),
        slot: usize,
    ) -> Option<PortId> {
        let now = self.instant();
        let host = &mut self.hosts[h as usize];
        let rt = host.nets.get(net)?;
        let network = host.state.networks.get(net)?;
        let cfg = network.sandbox_port(rt.sid, 1514, MacAddr(mac), (Some(ip), ip6));
        let port = host.switch.add_port(cfg).ok()?;
        let _ = host.switch.add_static(now, rt.sid, MacAddr(mac), port);
        set_owner(&mut host.owners, port, Some(Owner::Sandbox(slot)));
        Some(port)
    }

    /// Makes a sandbox on `network` of host `h`; `Err(Some(need))` when it needs addresses
    /// from another host, `Err(None)` when refused.
    fn make_sandbox(
        &mut self,
        h: u32,
        network: &str,
        ip: Option<Ipv4Addr>,
        probe: bool,
    ) -> Result<(), Option<claims::Need>> {
        if !self.live(h) {
            self.refuse(format!("host {h} is down: no sandbox on {network}"));
            return Err(None);
        }
        let n = self.hosts[h as usize].made;
        self.hosts[h as usize].made += 1;
        let name = format!("{}-s{n}", self.hosts[h as usize].name);
        let spec = SandboxSpec {
            name: name.clone(),
            network: network.to_string(),
            ip: ip.map(|i| i.to_string()),
            ..Default::default()
        };
        let (sid, epid) = (id(&mut self.rng), id(&mut self.rng));
        let made =
            self.hosts[h as usize]
                .state
                .create_sandbox(spec, sid, epid.clone(), Path::new("/run/netns"), epoch());
        match made {
            Err(ModelError::OutOfClaims { .. }) => return Err(Some(claims::Need::Space)),
            Err(ModelError::OwnedElsewhere { offset, owner, .. }) => {
                return Err(Some(claims::Need::Address(offset, owner)))
            }
            Err(e) => {
                self.refuse(format!("host {h}: {e}"));
                return Err(None);
            }
            Ok(_) => {}
        }
        let host = &self.hosts[h as usize];
        let ep = host.state.endpoints[&epid].clone();
        let (Some(ip), Some(mac)) = (ep.ip, ep.mac) else {
            return Ok(());
        };
        let net = &host.state.networks[&ep.network];
        let prefix = net.ipam.map_or(24, |i| i.subnet.prefix_len());
        let v6 = ep
            .ip6
            .map(|a| (a, net.ipam6_of(a).map_or(128, |p| p.subnet.prefix_len())));
        if let Some(other) = self.held.insert((ep.network.clone(), ip), epid.clone()) {
            if other != epid {
                self.held_twice += 1;
            }
        }
        self.mac_net.insert(mac.0, ep.network.clone());
        let slot = self.hosts[h as usize].sbs.len();
        let Some(port) = self.add_sandbox_port(h, &ep.network, mac.0, (ip, ep.ip6), slot) else {
            return Ok(());
        };
        let seed = self.rng.random();
        let sb = SimSandbox::new(name.clone(), (ip, prefix), v6, mac.0, seed, self.now);
        self.hosts[h as usize].sbs.push(Some(LocalSb {
            sb,
            port,
            net: ep.network.clone(),
            name,
        }));
        self.sandboxes_made += 1;
        let mut known = vec![Us::MAX; self.sc.hosts as usize];
        known[h as usize] = self.now;
        self.ep_index.insert(epid.clone(), self.eps.len());
        self.eps.push(EpTrack {
            created: self.now,
            probe,
            split: self.partition.is_some(),
            known,
        });
        self.publish_endpoint(h, &epid);
        Ok(())
    }

    fn publish_endpoint(&mut self, h: u32, epid: &Id) {
        let now_ms = self.now_ms();
        let host = &mut self.hosts[h as usize];
        let vtep = SocketAddr::from((host.ip, VXLAN_PORT));
        let Some(r) = host.state.endpoint_record(epid, &host.name, vtep) else {
            return;
        };
        if let Some(m) = host.m.as_mut() {
            let _ = m.publish(
                RecordKey::endpoint(&host.name, epid.clone()),
                Some(Body::Endpoint(Arc::new(r))),
                now_ms,
            );
        }
        self.known(h, epid);
        self.pump(h);
    }

    /// Removes a random endpoint of `network` from its host and makes it again on another
    /// live host with the same address after `gap`.
    fn move_one(&mut self, network: &str, gap: Us) {
        let all = self.sandboxes_of(network);
        if all.is_empty() {
            return;
        }
        let (h, i) = all[self.rng.random_range(0..all.len())];
        let Some(local) = self.hosts[h as usize].sbs[i].take() else {
            return;
        };
        let ip = local.sb.ip;
        let now_ms = self.now_ms();
        let host = &mut self.hosts[h as usize];
        let removed = host.state.remove_sandbox(&local.name);
        let _ = host.switch.remove_port(local.port);
        set_owner(&mut host.owners, local.port, None);
        if let Ok((_, eps)) = removed {
            for ep in eps {
                self.held.remove(&(ep.network.clone(), ip));
                let host = &mut self.hosts[h as usize];
                if let Some(m) = host.m.as_mut() {
                    let _ = m.publish(RecordKey::endpoint(&host.name, ep.id.clone()), None, now_ms);
                }
            }
        }
        self.pump(h);
        let others: Vec<u32> = (0..self.sc.hosts).filter(|o| *o != h && self.live(*o)).collect();
        if others.is_empty() {
            return;
        }
        let to = others[self.rng.random_range(0..others.len())];
        let ev = Ev::Sandbox {
            host: to,
            network: network.to_string(),
            ip: Some(ip),
            probe: false,
        };
        self.at(self.now + gap, ev);
    }

    /// Hands out what the host's node produced: datagrams, timers, and what it asks of the
    /// host.
    fn pump(&mut self, h: u32) {
        loop {
            let host = &mut self.hosts[h as usize];
            let Some(m) = host.m.as_mut() else { return };
            let gen = host.gen;
            let mut sends = Vec::new();
            while let Some(s) = m.poll_transmit() {
                sends.push(s);
            }
            let mut timers = Vec::new();
            while let Some(t) = m.poll_timer() {
                timers.push(t);
            }
            let mut outputs = Vec::new();
            while let Some(o) = m.poll_output() {
                outputs.push(o);
            }
            if sends.is_empty() && timers.is_empty() && outputs.is_empty() {
                return;
            }
            for (to, data) in sends {
                self.gossip_msgs += 1;
                self.control_bytes += (data.len() + SEAL_OVERHEAD) as u64;
                let Some(&dst) = self.by_addr.get(&to) else { continue };
                if let Ok(delay) = self.link_ok(h, dst) {
                    self.at(self.now + delay, Ev::Gossip(dst, data));
                }
            }
            for (after, t) in timers {
                let at = self.now + after.as_micros() as Us;
                self.at(at, Ev::Timer(h, gen, t));
            }
            for o in outputs {
                self.output(h, o);
            }
        }
    }

    /// Does what host `h`'s node asks, as switchd's daemon does.
    fn output(&mut self, h: u32, o: Output) {
        match o {
            Output::Member(e) => self.member_event(h, e),
            Output::Sync(plan) => {
                if let Some(&g) = self.by_addr.get(&plan.peer.addr) {
                    self.sync_with(h, g, plan.members);
                }
            }
            Output::Network(nid, n) => {
                let adopted =
                    self.hosts[h as usize]
                        .state
                        .adopt_network(nid.clone(), &n, &control_plane::HostFacts::default());
                if adopted == Ok(true) {
                    self.bring_up(h, &nid);
                    // Claims on its addresses that came before it, as switchd takes them.
                    let host = &mut self.hosts[h as usize];
                    let claims = host.m.as_ref().map(|m| m.records().claims_of(&nid)).unwrap_or_default();
                    for (range, c) in claims {
                        host.state.merge_claim(&nid, range, c);
                    }
                }
            }
            Output::Endpoint(eid, e) => {
                self.known(h, &eid);
                self.hosts[h as usize].state.set_remote(eid, e);
            }
            Output::EndpointRemoved(eid) => self.hosts[h as usize].state.remove_remote(&eid),
            Output::HostDown(name) => self.hosts[h as usize].state.remove_remotes_of_host(&name),
            Output::Dataplane(f) => self.apply(h, f),
            // No scenario removes a network. A revocation is the node's to apply; switchd
            // stores it for its next start, and no scenario restarts a host after one.
            Output::NetworkRemoved(_) | Output::Revoked { .. } => {}
            Output::Claim { network, range, claim } => self.claim(h, network, range, claim),
            Output::Asked(a) => self.asked(h, a),
        }
    }

    /// Notes when host `h` first knew endpoint `eid`.
    fn known(&mut self, h: u32, eid: &Id) {
        if let Some(&i) = self.ep_index.get(eid) {
            let k = &mut self.eps[i].known[h as usize];
            if *k == Us::MAX {
                *k = self.now;
            }
        }
    }

    /// Measures what the node reports of members: crashes declared, and false positives.
    fn member_event(&mut self, h: u32, e: Member) {
        let Member::Down(id) = e else {
            // Suspicions are measured where they end (down, or false positives).
            return;
        };
        let Some(&x) = self.by_addr.get(&id.addr) else { return };
        let crash = self
            .crashes
            .iter_mut()
            .rev()
            .chain(self.revocations.iter_mut())
            .find(|c| c.host == x && c.bump == id.bump && c.back_at.is_none());
        match crash {
            Some(c) => {
                c.down_at[h as usize].get_or_insert(self.now);
            }
            None => {
                let current = self.hosts[x as usize].m.as_ref().map_or(0, |m| m.me().bump);
                // Reachable now and for the whole suspicion before. A split that ended
                // less than 15 s ago still echoes: each side declared the other down,
                // and SWIM's down is final for an identity, so that news reaches
                // everyone and the hosts it names rejoin under a new one.
                let split = |n: u32| (h < n) != (x < n);
                let echo = self.healed.is_some_and(|(t, _)| self.now < t + 15 * SEC);
                let reachable = !self.partition.is_some_and(split) && !echo;
                if self.live(x) && current == id.bump && reachable {
                    self.false_positives += 1;
                }
            }
        }
    }

    /// Makes the simulated dataplane hold what the node asks for remote endpoints, as
    /// switchd's does.
    fn apply(&mut self, h: u32, f: Effect) {
        let now = self.instant();
        let host = &mut self.hosts[h as usize];
        match f {
            Effect::AddPeer { network, vtep } => {
                let Some(rt) = host.nets.get_mut(&network) else {
                    return;
                };
                let cfg = PortConfig {
                    network: rt.sid,
                    max_frame_len: 1514,
                    learn_limit: 4096,
                    split_horizon_group: 1,
                    isolated: false,
                    guard: None,
                    locked: true,
                };
                if let (Ok(p), SocketAddr::V4(v), Ok(vni)) = (host.switch.add_port(cfg), vtep, Vni::new(rt.vni)) {
                    rt.peers.insert(vtep, p);
                    host.edge.add_peer(IpAddr::V4(*v.ip()), vni, p);
                    set_owner(&mut host.owners, p, Some(Owner::Peer(*v.ip(), rt.vni)));
                }
            }
            Effect::RemovePeer { network, vtep } => {
                let Some(rt) = host.nets.get_mut(&network) else {
                    return;
                };
                if let Some(p) = rt.peers.remove(&vtep) {
                    let _ = host.switch.remove_port(p);
                    set_owner(&mut host.owners, p, None);
                    host.edge.remove_port(p);
                }
            }
            Effect::Pin { network, mac, vtep, ip } => {
                let Some(rt) = host.nets.get(&network) else { return };
                let Some(&p) = rt.peers.get(&vtep) else { return };
                let _ = host.edge.pin(
                    &mut host.switch,
                    now,
                    rt.sid,
                    mac,
                    p,
                    overlay::edge::Answered {
                        ip: Some(ip),
                        ip6: host.state.networks.get(&network).and_then(|n| n.overlay_ip6(ip)),
                    },
                );
            }
            Effect::Unpin { network, mac } => {
                let Some(rt) = host.nets.get(&network) else { return };
                host.edge.unpin(&mut host.switch, rt.sid, mac);
            }
        }
    }

    /// An anti-entropy round: the node chooses the member.
    fn sync(&mut self, h: u32) {
        let pick = self.rng.random();
        let Some(plan) = self.hosts[h as usize].m.as_mut().and_then(|m| m.sync_round(pick)) else {
            return;
        };
        if let Some(&g) = self.by_addr.get(&plan.peer.addr) {
            self.sync_with(h, g, plan.members);
        }
    }

    /// One exchange between `h` (the client) and `g`, through the steps switchd's exchange
    /// takes (over QUIC there, where lost datagrams are resent, so only a partition or a dead
    /// peer stops it). The messages pass as values; their encoded lengths are counted.
    fn sync_with(&mut self, h: u32, g: u32, members: bool) {
        let blocked = self.partition.is_some_and(|n| (h < n) != (g < n));
        if h == g || !self.live(g) || blocked {
            return;
        }
        let (a, b) = pair_mut(&mut self.hosts, h as usize, g as usize);
        let (Some(ma), Some(mb)) = (a.m.as_mut(), b.m.as_mut()) else {
            return;
        };
        let client = exchange::Client::start(&ma.records(), ma.membership().member_digest(), members);
        let answer = exchange::answer(&mb.records(), mb.membership().member_digest(), &client.summary());
        let mut bytes = 16 + answer.wire_len();
        if !answer.done() {
            let (mut ra, mut rb) = (ma.records(), mb.records());
            let sent = client.state(&ra, || ma.membership().member_states(), &answer);
            let (mut merged, sent_len) = exchange::merge_outgoing(&mut rb, sent);
            // switchd's server replies with the member list it had before hearing the client's.
            let reply = exchange::reply(&rb, || mb.membership().member_states(), answer.flags, &merged);
            let (learned, reply_len) = exchange::merge_outgoing(&mut ra, reply);
            bytes += sent_len + reply_len;
            drop((ra, rb));
            mb.apply_member_states(std::mem::take(&mut merged.members));
            ma.apply_member_states(learned.members);
        }
        self.control_bytes += bytes as u64;
        self.pump(h);
        self.pump(g);
    }

    fn wake(&mut self, h: u32, i: usize) {
        let gen = self.hosts[h as usize].gen;
        let now = self.now;
        if let Some(sb) = self.sb_mut(h, i) {
            if sb.next_poll.is_none_or(|t| t > now) {
                sb.next_poll = Some(now);
                self.at(now, Ev::Poll(h, gen, i));
            }
        }
    }

    fn poll(&mut self, h: u32, i: usize) {
        let now = self.now;
        let Some(local) = self.hosts[h as usize].sbs.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if local.sb.next_poll.is_some_and(|t| t > now) {
            return;
        }
        local.sb.next_poll = None;
        let done = local.sb.poll(now);
        let port = local.port;
        let frames: Vec<Vec<u8>> = local.sb.wire.tx.drain(..).collect();
        let next = local.sb.poll_at(now);
        for (asked, to) in done.pongs {
            self.rtts.push((now - asked) as f64 / 1000.0);
            self.pings6.1 += u64::from(to.is_ipv6());
        }
        for (flow, n) in done.received {
            if let Some(f) = self.flows.get_mut(flow) {
                f.got += n;
            }
        }
        for f in frames {
            self.frame_in(h, port, f);
        }
        if let Some(t) = next {
            let gen = self.hosts[h as usize].gen;
            let at = t.max(now + 1);
            if let Some(sb) = self.sb_mut(h, i) {
                if sb.next_poll.is_none_or(|p| p > at) {
                    sb.next_poll = Some(at);
                    self.at(at, Ev::Poll(h, gen, i));
                }
            }
        }
    }

    /// A frame entering host `h`'s switch on `port`: ARP suppression first, as switchd's
    /// dataplane does, then the switch's verdict.
    fn frame_in(&mut self, h: u32, port: PortId, frame: Vec<u8>) {
        self.ring.push(self.now, &frame);
        if self.trace {
            eprintln!(
                "{:>10} h{h} <- port {} {}",
                self.now,
                port.0,
                control_plane::capture::summary(&frame)
            );
        }
        let now = self.instant();
        let host = &mut self.hosts[h as usize];
        // Sandbox ports take replies; peers' ports do not (as switchd's descriptors and VTEPs).
        let can_reply = matches!(host.owners.get(port.0 as usize), Some(Some(Owner::Sandbox(_))));
        let mut reply = [0u8; overlay::edge::REPLY_LEN];
        let out: Vec<PortId> = match host.edge.decide(
            &mut host.switch,
            now,
            port,
            None,
            &frame,
            can_reply.then_some(&mut reply),
        ) {
            Decision::Reply(n) => {
                self.frame_out(h, port, reply[..n].to_vec());
                return;
            }
            Decision::Switch(Verdict::Drop(_)) => Vec::new(),
            Decision::Switch(Verdict::Forward(p)) => vec![p],
            Decision::Switch(Verdict::Flood(f)) => f.ports().collect(),
        };
        for p in out {
            self.frame_out(h, p, frame.clone());
        }
    }

    fn frame_out(&mut self, h: u32, p: PortId, frame: Vec<u8>) {
        if self.trace {
            eprintln!(
                "{:>10} h{h} -> port {} {}",
                self.now,
                p.0,
                control_plane::capture::summary(&frame)
            );
        }
        let owner = self.hosts[h as usize].owners.get(p.0 as usize).copied().flatten();
        match owner {
            Some(Owner::Sandbox(i)) => {
                let Some(local) = self.hosts[h as usize].sbs.get_mut(i).and_then(Option::as_mut) else {
                    return;
                };
                let mut src = [0u8; 6];
                src.copy_from_slice(&frame[6..12]);
                if self.mac_net.get(&src).is_some_and(|n| *n != local.net) {
                    self.cross_network += 1;
                }
                local.sb.deliver(frame);
                self.delivered += 1;
                self.hosts[h as usize].switch.record_tx(p, 0);
                self.wake(h, i);
            }
            Some(Owner::Peer(ip, vni)) => {
                let Ok(v) = Vni::new(vni) else { return };
                let mut data = vec![0u8; 8 + frame.len()];
                VxlanHeader { vni: v }.emit(&mut data);
                data[8..].copy_from_slice(&frame);
                let Some(&dst) = self.by_ip.get(&ip) else { return };
                match self.link_ok(h, dst) {
                    Ok(delay) => {
                        let from = self.hosts[h as usize].ip;
                        self.at(self.now + delay, Ev::Vxlan(dst, from, data));
                    }
                    Err(reason) => self.drop_frame(reason),
                }
            }
            None => {}
        }
    }

    fn vxlan_in(&mut self, h: u32, from: Ipv4Addr, data: Vec<u8>) {
        let port = match self.hosts[h as usize]
            .edge
            .decap(IpAddr::V4(from), &data, Carried::Clear)
        {
            Ok((port, _)) => port,
            Err(Refused::Malformed) => return self.drop_frame("vxlan_malformed"),
            Err(Refused::UnknownVtep) => return self.drop_frame("vxlan_unknown_vtep"),
            Err(Refused::UnknownVni) => return self.drop_frame("vxlan_unknown_vni"),
            Err(Refused::Unsealed) => return self.drop_frame("vxlan_unsealed"),
        };
        self.frame_in(h, port, data[VXLAN_HEADER_LEN..].to_vec());
    }

    /// Whether every live host sees every other alive and holds the same records.
    fn converged(&self) -> (bool, u64) {
        let live: Vec<&Host> = self.hosts.iter().filter(|h| h.alive && !h.revoked).collect();
        let Some(first) = live.first().and_then(|h| h.m.as_ref()) else {
            return (true, 0);
        };
        let digest = first.records().digest();
        let want = live.len() - 1;
        let bad = live
            .iter()
            .filter(|h| {
                h.m.as_ref()
                    .is_none_or(|m| m.membership().num_members() != want || m.records().digest() != digest)
            })
            .count();
        (bad == 0, bad as u64)
    }

    fn check(&mut self) {
        if self.reconverged.is_none() && self.last_disruption.is_some() && self.converged().0 {
            self.reconverged = Some(self.now);
        }
    }

    fn finish(mut self, has_idle: bool) -> Outcome {
        let end = self.now;
        let (_, unconverged_hosts) = self.converged();
        if std::env::var_os("SWITCHSIM_DEBUG").is_some() {
            self.debug_views();
        }
        let (mut conv, unconverged_eps, split_eps) = self.endpoint_convergence();
        let endpoints_measured = conv.len() as u64 + unconverged_eps;
        let (mut detect, undetected) = self.failure_detection(&self.crashes, end);
        let (convergence_ms, detection_ms) = (conv.clone(), detect.clone());
        let (mut cut_off, never_cut) = self.failure_detection(&self.revocations, end);
        let revoked_held = self.revoked_endpoints_held();
        let hosts = f64::from(self.sc.hosts);
        let secs_run = end as f64 / SEC as f64;
        let idle = self.idle_mark.filter(|_| has_idle).map(|(t0, b0)| {
            let span = (end - t0) as f64 / SEC as f64;
            (self.control_bytes - b0) as f64 / hosts / span
        });
        let mut drops = std::mem::take(&mut self.drops);
        for h in &self.hosts {
            for p in 0..h.owners.len() {
                if let Some(c) = h.switch.counters(PortId(p as u32)) {
                    for (r, n) in c.drops_by_reason() {
                        *drops.entry(r.as_str().to_string()).or_default() += n;
                    }
                }
            }
        }
        let pings_answered = self.rtts.len() as u64;
        let flows_done = self.flows.iter().filter(|f| f.got >= f.bytes).count() as u64;
        let held_twice = self.held_twice + self.final_double_holds();
        let invariants_held = self.cross_network == 0
            && held_twice == 0
            && self.failures_with_space_reachable == 0
            && unconverged_hosts == 0
            && unconverged_eps == 0
            && revoked_held == 0
            && never_cut == 0;
        let mut waits: Vec<f64> = self.donation_waits.iter().map(|w| *w as f64 / 1000.0).collect();
        let p99 = quantile(&mut conv, 0.99);
        let fd_max = quantile(&mut detect, 1.0);
        let goals = vec![
            goal(
                "new endpoint known everywhere within 1.5 s (p99)",
                p99.map(|v| (format!("{v:.0} ms at {} hosts", self.sc.hosts), v <= 1500.0)),
            ),
            goal(
                "crashed host declared down everywhere within 5 s",
                fd_max.map(|v| (format!("{v:.0} ms"), v <= 5000.0)),
            ),
            goal(
                "revoked host cut off everywhere within 5 s",
                quantile(&mut cut_off, 1.0).map(|v| (format!("{v:.0} ms"), v <= 5000.0)),
            ),
            goal(
                "no false positive",
                Some((
                    format!("{} at {:.0}% loss", self.false_positives, self.link.loss * 100.0),
                    self.false_positives == 0,
                )),
            ),
            goal(
                "idle control traffic under 50 kbit/s per host",
                idle.map(|b| (format!("{:.1} kbit/s", b * 8.0 / 1000.0), b * 8.0 <= 50_000.0)),
            ),
        ];
        let report = Report {
            scenario: self.sc.name.clone(),
            seed: self.sc.seed,
            hosts: self.sc.hosts,
            sandboxes: self.sandboxes_made,
            simulated_s: secs_run,
            invariants_held,
            frames_across_networks: self.cross_network,
            addresses_held_twice: held_twice,
            allocation_failures_with_free_space_reachable: self.failures_with_space_reachable,
            allocation_failures: self.allocation_failures,
            donations: self.donations,
            hosts_forgotten: self.forgotten,
            donation_waits: waits.len() as u64,
            donation_wait_p50_ms: quantile(&mut waits, 0.5),
            donation_wait_p99_ms: quantile(&mut waits, 0.99),
            unconverged_hosts,
            endpoints_measured,
            endpoints_made_during_partition: split_eps,
            endpoints_unconverged: unconverged_eps,
            route_convergence_p50_ms: quantile(&mut conv, 0.5),
            route_convergence_p99_ms: p99,
            route_convergence_max_ms: quantile(&mut conv, 1.0),
            crashes: self.crashes.len() as u64,
            failure_detection_max_ms: fd_max,
            failure_detection_p50_ms: quantile(&mut detect, 0.5),
            failures_undetected: undetected,
            revocations: self.revocations.len() as u64,
            revocation_cutoff_max_ms: quantile(&mut cut_off, 1.0),
            revoked_endpoints_held: revoked_held,
            false_positives: self.false_positives,
            reconvergence_ms: self
                .reconverged
                .zip(self.last_disruption)
                .map(|(r, d)| (r - d) as f64 / 1000.0),
            control_messages_per_host_per_s: self.gossip_msgs as f64 / hosts / secs_run,
            control_bytes_per_host_per_s: self.control_bytes as f64 / hosts / secs_run,
            idle_control_bytes_per_host_per_s: idle,
            frames_delivered: self.delivered,
            frames_dropped: drops,
            pings_sent: self.pings_sent,
            pings_answered,
            pings6_sent: self.pings6.0,
            pings6_answered: self.pings6.1,
            ping_rtt_p50_ms: quantile(&mut self.rtts, 0.5),
            tcp_flows: self.flows.len() as u64,
            tcp_flows_completed: flows_done,
            refused_operations: self.refused,
            refusals: self.refusals.clone(),
            goals,
        };
        let capture = (!report.invariants_held).then(|| self.ring.frames().cloned().collect());
        // Freeing a thousand hosts' tables takes seconds: not on the way to the report.
        let hosts = std::mem::take(&mut self.hosts);
        std::thread::spawn(move || drop(hosts));
        Outcome {
            report,
            capture,
            convergence_ms,
            detection_ms,
        }
    }

    /// Each live host's view (members, records, digest), on stderr.
    fn debug_views(&self) {
        let live = self.hosts.iter().filter(|h| h.alive).count();
        for h in self.hosts.iter().filter(|h| h.alive) {
            if let Some(m) = h.m.as_ref() {
                let (len, digest, forged, unknown) = {
                    let r = m.records();
                    (r.len(), r.digest(), r.forged(), r.unknown_origin())
                };
                eprintln!(
                    "{} members {} / {} records {len} digest {digest:x} forged {forged} unknown origin {unknown} backlog {}",
                    h.name,
                    m.membership().num_members(),
                    live - 1,
                    m.membership().backlog()
                );
            }
        }
    }

    /// Whether host `h` was alive (and a member) from `since` to the end.
    fn eligible(h: &Host, since: Us) -> bool {
        h.alive && !h.revoked && h.started_at.is_some_and(|s| s <= since)
    }

    /// Endpoint convergence, over hosts alive from its creation to the end: the times (ms) of
    /// the endpoints known everywhere, how many were not, and how many were made during a
    /// partition (left out).
    fn endpoint_convergence(&self) -> (Vec<f64>, u64, u64) {
        let probes = self.eps.iter().any(|e| e.probe);
        let mut conv = Vec::new();
        let mut unconverged_eps = 0;
        let split_eps = self.eps.iter().filter(|e| e.split).count() as u64;
        for e in self.eps.iter().filter(|e| (e.probe || !probes) && !e.split) {
            let mut worst = 0;
            let mut missing = false;
            for (i, h) in self.hosts.iter().enumerate() {
                if !Self::eligible(h, e.created) {
                    continue;
                }
                match e.known[i] {
                    Us::MAX => missing = true,
                    t => worst = worst.max(t.saturating_sub(e.created)),
                }
            }
            // Endpoints removed since (moves) are not expected to be known.
            if missing {
                unconverged_eps += 1;
            } else {
                conv.push(worst as f64 / 1000.0);
            }
        }
        (conv, unconverged_eps, split_eps)
    }

    /// Failure detection, over observers alive from the crash to its declaration window: the
    /// times (ms) until each crash was declared everywhere, and the observers that missed one.
    /// For each of `list` (crashes, or revocations), how long until every other live host
    /// declared it down; and the (observer, host) pairs where that never came.
    fn failure_detection(&self, list: &[Crash], end: Us) -> (Vec<f64>, u64) {
        let mut detect = Vec::new();
        let mut undetected = 0;
        for c in list {
            let until = c.back_at.unwrap_or(end);
            let mut worst = 0;
            let mut missed = false;
            for (i, h) in self.hosts.iter().enumerate() {
                if i as u32 == c.host
                    || !Self::eligible(h, c.at)
                    || self
                        .crashes
                        .iter()
                        .any(|o| o.host == i as u32 && o.at <= until && o.back_at.is_none_or(|b| b >= c.at))
                {
                    continue;
                }
                match c.down_at[i] {
                    Some(t) if t <= until => worst = worst.max(t - c.at),
                    _ => {
                        if until - c.at >= 10 * SEC {
                            missed = true;
                            undetected += 1;
                        }
                    }
                }
            }
            if !missed && until - c.at >= 10 * SEC {
                detect.push(worst as f64 / 1000.0);
            }
        }
        (detect, undetected)
    }

    /// Addresses held by two live endpoints of one network at the end.
    fn final_double_holds(&self) -> u64 {
        let mut seen: BTreeSet<(Id, Ipv4Addr)> = BTreeSet::new();
        let mut twice = 0;
        // A forgotten host is gone for good, and its endpoints with it.
        let gone: BTreeSet<u32> = self.crashes.iter().filter(|c| c.forgotten).map(|c| c.host).collect();
        let kept = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(&(*i as u32)));
        for (_, h) in kept {
            for ep in h.state.endpoints.values() {
                if let Some(ip) = ep.ip {
                    if !seen.insert((ep.network.clone(), ip)) && self.networks.values().any(|n| *n == ep.network) {
                        twice += 1;
                    }
                }
            }
        }
        twice
    }
}

fn goal(what: &str, m: Option<(String, bool)>) -> Goal {
    match m {
        Some((measured, met)) => Goal {
            goal: what.into(),
            measured,
            met: Some(met),
        },
        None => Goal {
            goal: what.into(),
            measured: "not measured".into(),
            met: None,
        },
    }
}

fn set_owner(owners: &mut Vec<Option<Owner>>, p: PortId, o: Option<Owner>) {
    let i = p.0 as usize;
    if owners.len() <= i {
        owners.resize(i + 1, None);
    }
    owners[i] = o;
}

fn pair_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}
