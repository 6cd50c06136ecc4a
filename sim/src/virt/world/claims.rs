//! Overlay addresses claimed on demand, as switchd's daemon runs them: a host whose own
//! addresses are all in use asks the hosts holding the most, one at a time, and makes the
//! sandbox once given; a host asked gives what the model says it can, or says it has none.
//! The decisions are the model's (`State::donors`, `State::gift`, `State::claim_whole`); the
//! messages are the cluster node's.

use std::collections::BTreeMap;

use control_plane::cluster::membership::{Ask, HostId};
use control_plane::cluster::records::{Body, RecordKey};
use control_plane::cluster::space::{Claim, Range};

use super::*;

/// How many addresses a host asks for at a time (as switchd).
const WANT: u32 = 16;
/// How long a host waits for a donor's answer (as switchd).
const ANSWER_WAIT: Us = 2 * SEC;
/// How many times a silent donor is asked (as switchd).
const SILENT_TRIES: u32 = 2;
/// How long a create that found no donor waits for the cluster's news to settle before
/// looking again, and how many times (as switchd).
const SETTLE: Us = SEC;
const SETTLE_ROUNDS: u32 = 2;

/// What a create needs from another host.
pub(super) enum Need {
    /// Any addresses of the network.
    Space,
    /// The address at this offset, from the host that owns it.
    Address(u32, String),
}

/// A sandbox waiting for addresses.
pub(super) struct Waiting {
    network: String,
    net_id: Id,
    ip: Option<Ipv4Addr>,
    probe: bool,
    since: Us,
    tries: BTreeMap<String, u32>,
    /// The donor asked last, and when its answer is late.
    asked: Option<(String, Us)>,
    /// Whether any host was asked.
    waited: bool,
    /// The one address wanted (a static address another host owns), and its owner.
    at: Option<(u32, String)>,
    /// How many times it found no donor and waited for news.
    settled: u32,
}

impl World {
    /// Makes a sandbox, asking other hosts for addresses when the host's own are all in use.
    pub(super) fn create_sandbox(&mut self, h: u32, network: &str, ip: Option<Ipv4Addr>, probe: bool) {
        let Some(net_id) = self.networks.get(network).cloned() else {
            // Not created yet: the model refuses it.
            let _ = self.make_sandbox(h, network, ip, probe);
            return;
        };
        let w = Waiting {
            network: network.to_string(),
            net_id,
            ip,
            probe,
            since: self.now,
            tries: BTreeMap::new(),
            asked: None,
            waited: false,
            at: None,
            settled: 0,
        };
        self.try_create(h, w);
    }

    fn try_create(&mut self, h: u32, mut w: Waiting) {
        match self.make_sandbox(h, &w.network, w.ip, w.probe) {
            Ok(()) => {
                if w.waited {
                    self.donation_waits.push(self.now - w.since);
                }
            }
            Err(Some(Need::Space)) => {
                w.at = None;
                self.ask(h, w);
            }
            // Its owner is asked twice at most: an answer that did not give it counts as a try.
            Err(Some(Need::Address(offset, owner))) => {
                if w.at.is_some() {
                    *w.tries.entry(owner.clone()).or_insert(0) += 1;
                }
                if w.tries.get(&owner).copied().unwrap_or(0) >= SILENT_TRIES {
                    self.give_up(h, &w);
                    return;
                }
                w.at = Some((offset, owner));
                self.ask(h, w);
            }
            Err(None) => {}
        }
    }

    /// Asks the next donor for `w`'s network, or gives up when none is left.
    fn ask(&mut self, h: u32, mut w: Waiting) {
        let host = &self.hosts[h as usize];
        let Some(m) = host.m.as_ref() else { return };
        let candidates = match &w.at {
            Some((_, owner)) => vec![owner.clone()],
            None => host.state.donors(&w.net_id),
        };
        let donor = candidates
            .into_iter()
            .filter(|d| w.tries.get(d).copied().unwrap_or(0) < SILENT_TRIES)
            .filter_map(|d| {
                let ip = self.hosts[*self.by_name.get(&d)? as usize].ip;
                let id = m.membership().alive_at(&SocketAddr::from((ip, GOSSIP_PORT)))?;
                Some((w.tries.get(&d).copied().unwrap_or(0), id))
            })
            .min_by_key(|(tries, _)| *tries)
            .map(|(_, id)| id);
        let Some(donor) = donor else {
            // Addresses given a moment ago are not known everywhere yet: before refusing, wait
            // for the news to settle and ask again, every host afresh.
            if w.at.is_none() && w.settled < SETTLE_ROUNDS {
                w.settled += 1;
                w.tries.clear();
                w.asked = Some((String::new(), self.now + SETTLE));
                let gen = host.gen;
                self.hosts[h as usize].waiting.push(w);
                self.at(self.now + SETTLE, Ev::AskTimeout(h, gen));
                return;
            }
            self.give_up(h, &w);
            return;
        };
        let gen = host.gen;
        let deadline = self.now + ANSWER_WAIT;
        if let Some(m) = self.hosts[h as usize].m.as_mut() {
            m.want_space(w.net_id.clone(), WANT, w.at.as_ref().map(|(o, _)| *o), &donor);
        }
        w.asked = Some((donor.name.clone(), deadline));
        w.waited = true;
        self.hosts[h as usize].waiting.push(w);
        self.at(deadline, Ev::AskTimeout(h, gen));
        self.pump(h);
    }

    /// No reachable host gave addresses: the create fails. It counts against the fabric when
    /// a host reachable from `h` had one to give.
    fn give_up(&mut self, h: u32, w: &Waiting) {
        self.allocation_failures += 1;
        let me = self.hosts[h as usize].name.clone();
        // (A static address its owner would not give is not space the fabric failed to move.)
        let reachable_with_space = w.at.is_none()
            && (0..self.sc.hosts).any(|g| {
                let blocked = self.partition.is_some_and(|n| (h < n) != (g < n));
                let host = &self.hosts[g as usize];
                g != h && self.live(g) && !blocked && host.state.gift(&w.net_id, &host.name, &me, 1, None).is_some()
            });
        if reachable_with_space {
            self.failures_with_space_reachable += 1;
        }
        self.refuse(format!("host {h}: no free address of {} reachable", w.network));
    }

    /// Runs again the creates of `h` waiting on `network` (addresses came); one waiting for
    /// a given address, only once `h` owns it or its owner answered (as switchd).
    fn retry(&mut self, h: u32, network: &Id, answered_by: Option<&str>) {
        let host = &mut self.hosts[h as usize];
        let owns = |o: u32| {
            let space = host.state.networks.get(network).and_then(|n| n.space.as_ref());
            space.is_some_and(|s| s.owner(o) == Some(host.name.as_str()))
        };
        let ready = |w: &Waiting| {
            w.net_id == *network
                && match &w.at {
                    None => true,
                    Some((o, owner)) => owns(*o) || answered_by == Some(owner.as_str()),
                }
        };
        let (now, rest): (Vec<Waiting>, Vec<Waiting>) = host.waiting.drain(..).partition(ready);
        self.hosts[h as usize].waiting = rest;
        for mut w in now {
            w.asked = None;
            self.try_create(h, w);
        }
    }

    /// Late answers: each waiting create whose donor said nothing in time asks the next.
    pub(super) fn ask_timeout(&mut self, h: u32) {
        let waiting = std::mem::take(&mut self.hosts[h as usize].waiting);
        let now = self.now;
        let (late, rest): (Vec<Waiting>, Vec<Waiting>) = waiting
            .into_iter()
            .partition(|w| w.asked.as_ref().is_some_and(|(_, at)| *at <= now));
        self.hosts[h as usize].waiting = rest;
        for mut w in late {
            if let Some((d, _)) = w.asked.take().filter(|(d, _)| !d.is_empty()) {
                *w.tries.entry(d).or_insert(0) += 1;
            }
            self.ask(h, w);
        }
    }

    /// A claim the node brings: merged into the model; one naming this host lets its waiting
    /// creates on the network run again.
    pub(super) fn claim(&mut self, h: u32, network: Id, range: Range, claim: Claim) {
        let mine = *claim.owner == *self.hosts[h as usize].name;
        if self.hosts[h as usize].state.merge_claim(&network, range, claim) && mine {
            self.retry(h, &network, None);
        }
    }

    /// What another host asked, or answered.
    pub(super) fn asked(&mut self, h: u32, ask: Ask) {
        match ask {
            Ask::Want {
                from,
                network,
                count,
                at,
            } => self.donate(h, from, network, count, at),
            Ask::Granted { network, from } => self.retry(h, &network, Some(&from.name)),
            Ask::NoSpace { from, network } => {
                let waiting = std::mem::take(&mut self.hosts[h as usize].waiting);
                let (refused, rest): (Vec<Waiting>, Vec<Waiting>) = waiting
                    .into_iter()
                    .partition(|w| w.net_id == network && w.asked.as_ref().is_some_and(|(d, _)| *d == from.name));
                self.hosts[h as usize].waiting = rest;
                for mut w in refused {
                    w.asked = None;
                    w.tries.insert(from.name.clone(), u32::MAX);
                    self.ask(h, w);
                }
            }
        }
    }

    fn donate(&mut self, h: u32, from: HostId, network: Id, count: u32, at: Option<u32>) {
        let now_ms = self.now_ms();
        let host = &mut self.hosts[h as usize];
        let me = host.name.clone();
        let given = host.state.gift(&network, &me, &from.name, count, at);
        let Some(m) = host.m.as_mut() else { return };
        let Some(range) = given else {
            m.no_space(network, &from);
            return;
        };
        if let Ok(r) = m.grant(network.clone(), range, &from, now_ms) {
            let c = Claim {
                owner: from.name.as_str().into(),
                version: r.version,
            };
            host.state.merge_claim(&network, range, c);
            self.donations += 1;
        }
    }

    /// A new overlay network made on `h`: all of its addresses claimed by `h`.
    pub(super) fn claim_new_network(&mut self, h: u32, network: &Id) {
        if let Some(range) = self.hosts[h as usize].state.claim_whole(network) {
            self.claim_for_self(h, network, range);
        }
    }

    /// `h` writes a claim of its own on `range` of `network`, merges it and spreads it.
    fn claim_for_self(&mut self, h: u32, network: &Id, range: Range) {
        let now_ms = self.now_ms();
        let host = &mut self.hosts[h as usize];
        let me = host.name.clone();
        let Some(m) = host.m.as_mut() else { return };
        let key = RecordKey::Claim {
            network: network.clone(),
            start: range.0,
            end: range.1,
        };
        if let Ok(r) = m.publish(key, Some(Body::Claim(me.as_str().into())), now_ms) {
            let c = Claim {
                owner: me.as_str().into(),
                version: r.version,
            };
            host.state.merge_claim(network, range, c);
        }
    }

    /// `cluster forget` on a random live host, for every crashed host that has not come
    /// back, as switchd runs it: an exchange with every host it reaches (so it holds every
    /// claim they hold), then a claim of its own on each range a forgotten host owns.
    pub(super) fn forget_crashed(&mut self) {
        let Some(h) = self.random_live() else { return };
        for g in 0..self.sc.hosts {
            self.sync_with(h, g, false);
        }
        let gone: Vec<u32> = self
            .crashes
            .iter_mut()
            .filter(|c| c.back_at.is_none() && !c.forgotten)
            .map(|c| {
                c.forgotten = true;
                c.host
            })
            .collect();
        // Their endpoints are gone with them: their addresses are free to hand out again.
        for &c in &gone {
            for e in self.hosts[c as usize].state.endpoints.values() {
                if let Some(ip) = e.ip {
                    let key = (e.network.clone(), ip);
                    if self.held.get(&key) == Some(&e.id) {
                        self.held.remove(&key);
                    }
                }
            }
        }
        let gone: Vec<String> = gone.iter().map(|c| self.hosts[*c as usize].name.clone()).collect();
        let host = &self.hosts[h as usize];
        let mut writes = Vec::new();
        for (id, n) in &host.state.networks {
            let Some(space) = &n.space else { continue };
            for g in &gone {
                writes.extend(
                    space
                        .take_over(g, &host.name)
                        .into_iter()
                        .map(|w| (id.clone(), w.range)),
                );
            }
        }
        self.forgotten += gone.len() as u64;
        for (id, range) in writes {
            self.claim_for_self(h, &id, range);
        }
        self.pump(h);
    }

    /// After a restart: the claims the host wrote and stored go back into its node (signed
    /// again) and spread, as switchd's.
    pub(super) fn restore_claims(&mut self, h: u32) {
        let host = &mut self.hosts[h as usize];
        let Some(m) = host.m.as_mut() else { return };
        for (id, n) in &host.state.networks {
            let Some(space) = &n.space else { continue };
            for ((start, end), c) in space.claims() {
                let key = RecordKey::Claim {
                    network: id.clone(),
                    start,
                    end,
                };
                let restored = m
                    .records()
                    .restore(key, c.version.clone(), Some(Body::Claim(c.owner.clone())));
                if let Some(r) = restored {
                    m.spread(&r);
                }
            }
        }
    }
}
