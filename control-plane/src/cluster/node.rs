//! One cluster node, sans-IO: SWIM membership with its records, and what a host does about
//! them. It decides which member an anti-entropy round syncs with and whether member lists
//! ride along, when a node alone announces itself again, and what each membership event and
//! changed record means for the host: a network to make, a remote endpoint to place or drop,
//! a host whose endpoints are gone. It holds the reconciler ([`Remotes`]), so it also says
//! what the host's dataplane must hold for those endpoints: VXLAN ports per remote host and
//! pinned MACs with the addresses answered locally.
//!
//! switchd drives it with a UDP socket, tokio timers and QUIC (`switchd/src/cluster/mod.rs`); the
//! simulator with virtual time and direct calls (`sim/src/virt/world.rs`). Neither decides
//! anything this module decides, so a figure from the simulator is a figure about switchd.
//!
//! ```text
//!  datagram ─► handle_datagram ─┐                     ┌─► poll_transmit: datagrams to send
//!  timer    ─► handle_timer    ─┼─► Membership ─────┼─► poll_timer: timers to arm
//!  publish  ─► publish         ─┤   (records)        └─► poll_output: Output (events, syncs,
//!  sync tick ─► sync_round ─────┤        │                   networks, endpoints, hosts down,
//!  network_up / network_down ──┘   Remotes ───────────────── dataplane effects)
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::membership::{Ask, Event, HostId, MemberState, Membership, MembershipError, State, Timer};
use super::records::{Body, EndpointRecord, NetworkRecord, Record, RecordKey, Records};
use super::remotes::{Effect, Remotes};
use super::space::{Claim, Range};
use crate::Id;
use rustc_hash::FxHashSet;

/// How a node paces what it starts itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// How often an anti-entropy round runs ([`Node::sync_round`]).
    pub sync_every: Duration,
    /// How often a node that knows no member announces itself to its join targets
    /// ([`Node::rejoin`]).
    pub rejoin_every: Duration,
    /// One anti-entropy round in this many picks a member declared down, whose list tells it
    /// so if it is alive after all (a healed partition), and it rejoins.
    pub down_every: u64,
    /// Member lists ride along one round in this many (about every 30 s, as memberlist's
    /// push-pull), and along every round of [`Config::down_every`].
    pub members_every: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sync_every: Duration::from_secs(5),
            rejoin_every: Duration::from_secs(2),
            down_every: 4,
            members_every: 6,
        }
    }
}

/// An anti-entropy exchange to run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// The member to exchange with (its name is what its certificate must say).
    pub peer: HostId,
    /// Whether member lists are compared too.
    pub members: bool,
}

/// What the node asks of its driver, in the order it must happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A membership event, for logs and measurements (what it means follows as other outputs).
    Member(Event),
    /// Run an anti-entropy exchange now: with a member that came up (member lists too when
    /// it is the first this node hears of after being alone: a host joining learns the whole
    /// membership at once, as memberlist's join does).
    Sync(SyncPlan),
    /// An overlay network is announced (or changed): make it here.
    Network(Id, Box<NetworkRecord>),
    /// An overlay network was removed by the host that made it.
    NetworkRemoved(Id),
    /// An endpoint of another host, new, changed, or known again after its host came back.
    Endpoint(Id, Arc<EndpointRecord>),
    /// An endpoint was removed.
    EndpointRemoved(Id),
    /// A host was declared down: its endpoints are unreachable until it is back.
    HostDown(String),
    /// The CA revoked a host (`issued_ms` and the CA's signature `sig`, as
    /// [`super::pki::Revocation`]): the driver keeps it, to spread it again after a restart.
    Revoked {
        /// The host revoked.
        host: String,
        /// When the CA issued it, ms since the epoch.
        issued_ms: u64,
        /// The CA's signature.
        sig: Arc<[u8]>,
    },
    /// A change the dataplane must make for remote endpoints. It follows the output that
    /// caused it, and concerns only networks the driver reported up ([`Node::network_up`]).
    Dataplane(Effect),
    /// Another host's ask for addresses, or its answer to this host's: after the claims that
    /// came with it.
    Asked(Ask),
    /// A claim on addresses of an overlay network, new or newer ([`super::space`]), this
    /// host's own included.
    Claim {
        /// The network.
        network: Id,
        /// The offsets claimed.
        range: Range,
        /// Who owns them, as of which write.
        claim: Claim,
    },
}

/// One cluster node.
pub struct Node {
    m: Membership,
    cfg: Config,
    join: Vec<SocketAddr>,
    /// No member heard of since start or since the last one went: the next to come up gets
    /// a full exchange, member lists included.
    alone: bool,
    /// Anti-entropy rounds run.
    round: u64,
    /// The remote endpoints known, and which are in place.
    remotes: Remotes,
    /// The overlay networks the host has up: their remote endpoints go in place.
    up: FxHashSet<Id>,
    out: VecDeque<Output>,
    /// This host's certificate, until it goes out ahead of the first record.
    cert: Option<(Arc<[u8]>, u64)>,
}

impl Node {
    /// This host as `me`, randomness seeded with `seed`, announcing itself to `join` while
    /// it knows no member.
    pub fn new(me: HostId, seed: u64, join: Vec<SocketAddr>, cfg: Config) -> Node {
        Node {
            m: Membership::new(me, seed),
            cfg,
            join,
            alone: true,
            round: 0,
            remotes: Remotes::new(),
            up: FxHashSet::default(),
            out: VecDeque::new(),
            cert: None,
        }
    }

    /// The remote endpoints this node knows, and which are in place.
    pub fn remotes(&self) -> &Remotes {
        &self.remotes
    }

    /// The host has `network` up (made here, restored, or adopted): the remote endpoints
    /// announced on it go in place, as [`Output::Dataplane`] effects.
    pub fn network_up(&mut self, network: Id) {
        let fx = self.remotes.network_added(&network);
        self.up.insert(network);
        self.dataplane(fx);
    }

    /// The host took `network` down, with its ports: its remote endpoints wait until it is
    /// up again.
    pub fn network_down(&mut self, network: &Id) {
        self.up.remove(network);
        self.remotes.network_removed(network);
    }

    fn dataplane(&mut self, fx: Vec<Effect>) {
        self.out.extend(fx.into_iter().map(Output::Dataplane));
    }

    fn remote_endpoint(&mut self, id: Id, e: Arc<EndpointRecord>) {
        let fx = self.remotes.upsert(id.clone(), &e, self.up.contains(&e.network));
        self.out.push_back(Output::Endpoint(id, e));
        self.dataplane(fx);
    }

    /// The pacing it was made with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The membership, to read (members, records, digests).
    pub fn membership(&self) -> &Membership {
        &self.m
    }

    /// This host.
    pub fn me(&self) -> &HostId {
        self.m.me()
    }

    /// The records this host knows.
    pub fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.m.records()
    }

    /// A datagram from another host (opened already), received at `now_ms` (ms since the
    /// epoch, by this host's wall clock: records beyond it by more than
    /// [`super::records::MAX_SKEW_MS`] are refused).
    ///
    /// # Errors
    /// A malformed message; what was read before the fault is kept.
    pub fn handle_datagram(&mut self, data: &[u8], now_ms: u64) -> Result<(), MembershipError> {
        self.m.records().set_now(now_ms);
        self.m.handle_data(data)
    }

    /// A datagram host `signer` signed ([`super::envelope`]), received from `source` at
    /// `now_ms`: as [`Node::handle_datagram`], and its message must speak for that host at
    /// that address.
    ///
    /// # Errors
    /// As [`Membership::handle_signed`].
    pub fn handle_signed(
        &mut self,
        data: &[u8],
        signer: &str,
        source: SocketAddr,
        now_ms: u64,
    ) -> Result<(), MembershipError> {
        self.m.records().set_now(now_ms);
        self.m.handle_signed(data, signer, source)
    }

    /// A timer handed out by [`Node::poll_timer`], once its delay passed.
    pub fn handle_timer(&mut self, t: Timer) {
        self.m.handle_timer(t);
    }

    /// Signs this host's records with `auth` from now on and checks every other host's.
    /// This host's certificate (`cert`, DER), which the others check its records against,
    /// is written as a record just before its first record: a host that writes none (a
    /// member without overlay networks) costs the others no certificate. Its version is at least `now_ms`,
    /// above what this host published before a restart, so a renewed certificate wins.
    pub fn authenticate(&mut self, auth: Arc<dyn super::records::Authority>, cert: Arc<[u8]>, now_ms: u64) {
        self.m.records().set_authority(auth);
        self.cert = Some((cert, now_ms));
    }

    /// Writes this host's certificate record if it is not written yet. It is not gossiped:
    /// a host that receives this host's records before its certificate asks the sender for
    /// it, and exchanges carry it as any record.
    fn certify(&mut self, now_ms: u64) {
        if let Some((cert, since)) = self.cert.take() {
            let me: Arc<str> = self.m.me().name.as_str().into();
            self.m
                .records()
                .local(RecordKey::Host(me), Some(Body::Cert(cert)), now_ms.max(since));
        }
    }

    /// Writes a local change and disseminates it.
    ///
    /// # Errors
    /// As [`Membership::publish`].
    pub fn publish(&mut self, key: RecordKey, body: Option<Body>, now_ms: u64) -> Result<Record, MembershipError> {
        self.m.records().set_now(now_ms);
        self.certify(now_ms);
        self.m.publish(key, body, now_ms)
    }

    /// Member lists heard in an exchange.
    pub fn apply_member_states(&mut self, states: Vec<MemberState>) {
        self.m.apply_member_states(states);
    }

    /// Announces this node to its join targets if it knows no member: at start, and every
    /// [`Config::rejoin_every`].
    pub fn rejoin(&mut self) {
        if self.m.num_members() == 0 {
            for t in &self.join {
                self.m.join(*t);
            }
        }
    }

    /// An anti-entropy round, every [`Config::sync_every`]: the member to exchange with, or
    /// none when there is no other. `pick` is a random number (the driver's randomness); a
    /// live member is chosen by it, and one round in [`Config::down_every`] a member declared
    /// down when there is one.
    pub fn sync_round(&mut self, pick: u64) -> Option<SyncPlan> {
        self.round += 1;
        let down_round = self.round.is_multiple_of(self.cfg.down_every);
        let state = [State::Down, State::Alive]
            .into_iter()
            .filter(|s| down_round || *s == State::Alive)
            .find(|s| self.m.addrs_in(*s).next().is_some())?;
        let n = self.m.addrs_in(state).count();
        let peer = self.m.member_in(state, (pick % n as u64) as usize)?;
        Some(SyncPlan {
            peer,
            members: down_round || self.round.is_multiple_of(self.cfg.members_every),
        })
    }

    /// Messages take at most `bytes` from now on: what a datagram holds less what the
    /// driver wraps each message in.
    pub fn set_max_message(&mut self, bytes: usize) {
        self.m.set_max_packet_size(bytes);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, bytes::Bytes)> {
        self.m.poll_transmit()
    }

    /// The next timer to arm.
    pub fn poll_timer(&mut self) -> Option<(Duration, Timer)> {
        self.m.poll_timer()
    }

    /// The next thing the driver must do: the membership's events first, each followed by
    /// what it means, then the records that changed, then what other hosts asked.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() {
            while let Some(ev) = self.m.poll_event() {
                self.event(ev);
            }
            self.records_changed();
            while let Some(a) = self.m.poll_ask() {
                self.out.push_back(Output::Asked(a));
            }
        }
        super::membership::pop_shrinking(&mut self.out)
    }

    /// Asks `donor` for `count` addresses of `network` (or the one at offset `at`): it answers with a claim
    /// ([`Output::Claim`], then [`Output::Asked`] with [`Ask::Granted`]) or [`Ask::NoSpace`].
    pub fn want_space(&mut self, network: Id, count: u32, at: Option<u32>, donor: &HostId) {
        self.m.want_space(donor.addr, network, count, at);
    }

    /// Gives `range` of `network` to `to`: writes the claim, sends it to `to` at once, and
    /// spreads it. The caller has checked that this host owns the range
    /// ([`super::space::Space::give`]).
    ///
    /// # Errors
    /// As [`Membership::publish`].
    pub fn grant(&mut self, network: Id, range: Range, to: &HostId, now_ms: u64) -> Result<Record, MembershipError> {
        let key = RecordKey::Claim {
            network: network.clone(),
            start: range.0,
            end: range.1,
        };
        self.certify(now_ms);
        let r = self
            .m
            .publish(key, Some(Body::Claim(to.name.as_str().into())), now_ms)?;
        self.m.grant(to.addr, network, &r);
        Ok(r)
    }

    /// Sends a claim written already (into [`Node::records`], under the caller's own lock) to
    /// `to`, which asked for addresses of `network`, and spreads it.
    pub fn grant_written(&mut self, network: Id, claim: &Record, to: &HostId) {
        self.spread(claim);
        self.m.grant(to.addr, network, claim);
    }

    /// Disseminates a record written into [`Node::records`] directly (writing this host's
    /// certificate record first, the first time).
    pub fn spread(&mut self, r: &Record) {
        self.certify(0);
        self.m.spread(r);
    }

    /// Tells `to` that this host has no address of `network` to give.
    pub fn no_space(&mut self, network: Id, to: &HostId) {
        self.m.no_space(to.addr, network);
    }

    fn event(&mut self, ev: Event) {
        self.out.push_back(Output::Member(ev.clone()));
        match ev {
            Event::Up(id) | Event::Renamed(_, id) => {
                let members = std::mem::take(&mut self.alone);
                let eps: Vec<(Id, Arc<EndpointRecord>)> = self
                    .m
                    .records()
                    .endpoints()
                    .filter(|(_, e)| *e.host == *id.name)
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect();
                self.out.push_back(Output::Sync(SyncPlan { peer: id, members }));
                for (k, e) in eps {
                    self.remote_endpoint(k, e);
                }
            }
            Event::Down(id) => {
                let fx = self.remotes.host_down(&id.name);
                self.out.push_back(Output::HostDown(id.name));
                self.dataplane(fx);
            }
            Event::Alone => self.alone = true,
            Event::Suspected(_) | Event::Refuted(_) | Event::OtherFamily(_) => {}
        }
    }

    fn records_changed(&mut self) {
        let changed: Vec<Arc<Record>> = {
            let mut r = self.m.records();
            let keys = r.take_changes();
            keys.iter().filter_map(|k| r.get_shared(k)).collect()
        };
        for rec in changed {
            let me = &*self.m.me().name;
            match (&rec.key, &rec.body) {
                (RecordKey::Network(id), Some(Body::Network(n))) => {
                    self.out.push_back(Output::Network(id.clone(), Box::new(n.clone())));
                }
                (RecordKey::Network(id), None) => self.out.push_back(Output::NetworkRemoved(id.clone())),
                (RecordKey::Endpoint { id, .. }, Some(Body::Endpoint(e))) if *e.host != *me => {
                    self.remote_endpoint(id.clone(), e.clone());
                }
                (RecordKey::Endpoint { id, .. }, None) => {
                    let fx = self.remotes.remove(id);
                    self.out.push_back(Output::EndpointRemoved(id.clone()));
                    self.dataplane(fx);
                }
                (RecordKey::Claim { network, start, end }, Some(Body::Claim(owner))) => {
                    self.out.push_back(Output::Claim {
                        network: network.clone(),
                        range: (*start, *end),
                        claim: Claim {
                            owner: owner.clone(),
                            version: rec.version.clone(),
                        },
                    });
                }
                (RecordKey::Revoked(host), Some(Body::Revocation { issued_ms, sig })) => {
                    self.m.revoke(host);
                    self.out.push_back(Output::Revoked {
                        host: host.to_string(),
                        issued_ms: *issued_ms,
                        sig: sig.clone(),
                    });
                }
                // This host's own endpoints; a body of another kind than its key (refused by
                // no one, used by no one); claims are never removed.
                // Certificates are the records' business alone.
                (
                    RecordKey::Endpoint { .. }
                    | RecordKey::Network(_)
                    | RecordKey::Claim { .. }
                    | RecordKey::Host(_)
                    | RecordKey::Revoked(_),
                    _,
                ) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn id(name: &str, port: u16) -> HostId {
        HostId {
            name: name.into(),
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            bump: 1,
        }
    }

    #[test]
    fn a_certificate_is_written_just_before_the_first_record() {
        use super::super::cheap::{self, Cheap};
        let mut n = Node::new(id("a", 1), 1, vec![], Config::default());
        n.authenticate(Arc::new(Cheap::new("a")), cheap::cert("a").into(), 5_000);
        let cert_key = RecordKey::Host("a".into());
        assert!(n.records().get(&cert_key).is_none(), "no record, no certificate");
        let r = n
            .publish(RecordKey::Network(Id::from_random([1; 32])), None, 4_000)
            .unwrap();
        let cert = n
            .records()
            .get(&cert_key)
            .cloned()
            .expect("published with the first record");
        assert!(cert.version.counter >= 5_000, "above a certificate before a restart");
        assert!(r.sig.is_some() && cert.sig.is_some());
        n.publish(RecordKey::Network(Id::from_random([2; 32])), None, 6_000)
            .unwrap();
        assert_eq!(n.records().get(&cert_key), Some(&cert), "published once");
    }

    /// Two nodes on a lossless wire in virtual time: datagrams first, then the earliest timer.
    struct Pair {
        nodes: [Node; 2],
        now: Duration,
        timers: Vec<(Duration, usize, Timer)>,
        outputs: [Vec<Output>; 2],
    }

    impl Pair {
        fn new() -> Pair {
            let (a, b) = (id("a", 1), id("b", 2));
            Pair {
                nodes: [
                    Node::new(a, 1, vec![b.addr], Config::default()),
                    Node::new(b, 2, Vec::new(), Config::default()),
                ],
                now: Duration::ZERO,
                timers: Vec::new(),
                outputs: [Vec::new(), Vec::new()],
            }
        }

        /// Runs for `secs` of virtual time.
        fn run(&mut self, secs: u64) {
            let end = self.now + Duration::from_secs(secs);
            loop {
                let mut sent = false;
                for i in 0..2 {
                    while let Some((to, data)) = self.nodes[i].poll_transmit() {
                        let j = usize::from(to.port() == 2);
                        self.nodes[j]
                            .handle_datagram(&data, self.now.as_millis() as u64)
                            .unwrap();
                        sent = true;
                    }
                    while let Some((after, t)) = self.nodes[i].poll_timer() {
                        self.timers.push((self.now + after, i, t));
                    }
                    while let Some(o) = self.nodes[i].poll_output() {
                        self.outputs[i].push(o);
                    }
                }
                if sent {
                    continue;
                }
                self.timers.sort_by_key(|(at, _, _)| std::cmp::Reverse(*at));
                match self.timers.pop() {
                    Some((at, i, t)) if at <= end => {
                        self.now = at;
                        self.nodes[i].handle_timer(t);
                    }
                    _ => return,
                }
            }
        }
    }

    fn endpoint(host: &str) -> Body {
        Body::Endpoint(Arc::new(EndpointRecord {
            network: Id::from_random([1; 32]),
            host: host.into(),
            vtep: "10.0.0.2:4789".parse().unwrap(),
            sandbox: "web".into(),
            mac: [2, 0x42, 10, 0, 0, 2],
            ip: Ipv4Addr::new(10, 0, 0, 2),
            aliases: vec![],
        }))
    }

    #[test]
    fn a_member_that_comes_up_is_synced_with_and_its_endpoints_placed() {
        let mut p = Pair::new();
        let key = RecordKey::endpoint("b", Id::from_random([5; 32]));
        p.nodes[1].publish(key.clone(), Some(endpoint("b")), 1).unwrap();
        p.nodes[0].rejoin();
        p.run(5);
        let a = &p.outputs[0];
        assert!(a.contains(&Output::Member(Event::Up(id("b", 2)))), "{a:?}");
        // The first member after being alone: member lists too.
        assert!(a.contains(&Output::Sync(SyncPlan {
            peer: id("b", 2),
            members: true
        })));
        let Some(Output::Endpoint(k, e)) = a.iter().find(|o| matches!(o, Output::Endpoint(..))) else {
            panic!("b's endpoint was not placed at a: {a:?}");
        };
        assert_eq!((RecordKey::endpoint("b", k.clone()), &*e.host), (key.clone(), "b"));
        // A host's own endpoint is not a remote one.
        assert!(
            !p.outputs[1].iter().any(|o| matches!(o, Output::Endpoint(..))),
            "{:?}",
            p.outputs[1]
        );
        // Its network is not up at a: nothing to place yet.
        assert!(!a.iter().any(|o| matches!(o, Output::Dataplane(_))), "{a:?}");
        let (k, e) = (k.clone(), e.clone());
        p.outputs[0].clear();
        p.nodes[0].network_up(e.network.clone());
        p.run(1);
        let peer = Effect::AddPeer {
            network: e.network.clone(),
            vtep: e.vtep,
        };
        let pin = Effect::Pin {
            network: e.network.clone(),
            mac: switch::MacAddr(e.mac),
            vtep: e.vtep,
            ip: e.ip,
        };
        assert_eq!(
            p.outputs[0],
            vec![Output::Dataplane(peer.clone()), Output::Dataplane(pin)]
        );
        assert!(p.nodes[0].remotes().is_placed(&k));
        // Its removal unpins it and closes the port, after the removal itself.
        p.outputs[0].clear();
        p.nodes[1].publish(key, None, 2).unwrap();
        p.run(5);
        let unpin = Effect::Unpin {
            network: e.network.clone(),
            mac: switch::MacAddr(e.mac),
        };
        let removed: Vec<&Output> = p.outputs[0]
            .iter()
            .filter(|o| !matches!(o, Output::Member(_)))
            .collect();
        assert_eq!(
            removed,
            vec![
                &Output::EndpointRemoved(k),
                &Output::Dataplane(unpin),
                &Output::Dataplane(Effect::RemovePeer {
                    network: e.network.clone(),
                    vtep: e.vtep
                })
            ]
        );
    }

    #[test]
    fn claims_travel_as_records_and_reach_every_host() {
        let mut p = Pair::new();
        p.nodes[0].rejoin();
        p.run(5);
        let network = Id::from_random([8; 32]);
        let key = RecordKey::Claim {
            network: network.clone(),
            start: 16,
            end: 32,
        };
        let written = p.nodes[1].publish(key, Some(Body::Claim("a".into())), 7).unwrap();
        p.run(2);
        let want = Output::Claim {
            network,
            range: (16, 32),
            claim: Claim {
                owner: "a".into(),
                version: written.version,
            },
        };
        for (i, outputs) in p.outputs.iter().enumerate() {
            assert_eq!(
                outputs.iter().filter(|o| **o == want).count(),
                1,
                "node {i}: {outputs:?}"
            );
        }
    }

    #[test]
    fn a_host_that_needs_addresses_asks_and_the_owner_grants_them() {
        let mut p = Pair::new();
        p.nodes[0].rejoin();
        p.run(5);
        let (a, b) = (p.nodes[0].me().clone(), p.nodes[1].me().clone());
        let network = Id::from_random([9; 32]);
        p.outputs = [Vec::new(), Vec::new()];
        p.nodes[0].want_space(network.clone(), 4, None, &b);
        p.run(1);
        let want = Output::Asked(Ask::Want {
            from: a.clone(),
            network: network.clone(),
            count: 4,
            at: None,
        });
        assert!(p.outputs[1].contains(&want), "{:?}", p.outputs[1]);
        let r = p.nodes[1].grant(network.clone(), (40, 44), &a, 9).unwrap();
        p.nodes[1].no_space(network.clone(), &a);
        p.run(1);
        let claim = Output::Claim {
            network: network.clone(),
            range: (40, 44),
            claim: Claim {
                owner: a.name.as_str().into(),
                version: r.version,
            },
        };
        let granted = Output::Asked(Ask::Granted {
            from: b.clone(),
            network: network.clone(),
        });
        let at = |o: &Output| p.outputs[0].iter().position(|x| x == o);
        let (c, g) = (at(&claim), at(&granted));
        assert!(c.is_some() && c < g, "the claim before the grant: {:?}", p.outputs[0]);
        assert!(p.outputs[0].contains(&Output::Asked(Ask::NoSpace { from: b, network })));
    }

    #[test]
    fn rounds_pick_a_live_member_and_member_lists_ride_along_every_fourth_and_sixth() {
        let mut p = Pair::new();
        assert_eq!(p.nodes[0].sync_round(7), None, "alone: no one to sync with");
        p.nodes[0].rejoin();
        p.run(5);
        let plans: Vec<bool> = (0..12)
            .map(|r| {
                let plan = p.nodes[0].sync_round(r).expect("b is alive");
                assert_eq!(plan.peer, id("b", 2));
                plan.members
            })
            .collect();
        let with: Vec<usize> = (0..12).filter(|i| plans[*i]).map(|i| i + 2).collect();
        assert_eq!(with, vec![4, 6, 8, 12], "rounds 2-13 (round 1 found no member)");
    }
}
