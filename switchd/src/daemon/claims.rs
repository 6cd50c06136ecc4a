//! Overlay addresses claimed on demand, the daemon's side: merging claims the cluster brings,
//! giving addresses to a host that asks, and asking for them when this host's are all in use
//! (the rules of who owns what are `control_plane::cluster::space`'s).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use control_plane::cluster::membership::{Ask, HostId};
use control_plane::cluster::space::{Claim, Range};

use super::*;

/// How many addresses a host asks for at a time.
const WANT: u32 = 16;
/// How long a host waits for a donor's answer before asking another.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How many times a donor that did not answer in time is asked before it is given up.
const SILENT_TRIES: u32 = 2;
/// How long a create that found no host to ask waits for the cluster's news to settle
/// before looking again (addresses given a moment ago are not known everywhere yet), and
/// how many times.
const SETTLE: Duration = Duration::from_secs(1);
const SETTLE_ROUNDS: u32 = 2;

/// What came of asking a donor.
enum Answer {
    /// This host owns a free address now.
    Given,
    /// The donor has nothing to give.
    Refused,
    /// No answer in time.
    Silent,
}

/// What changed about claims, for a create waiting on an answer.
#[derive(Debug, Default)]
pub(super) struct ClaimNews {
    /// Bumped whenever a claim or an answer arrives.
    generation: u64,
    /// The donors that answered NoSpace, by network.
    refused: Vec<(Id, String)>,
    /// The donors that granted addresses, by network.
    granted: Vec<(Id, String)>,
}

impl Daemon {
    /// Makes a new overlay network's addresses claimed on demand when this host is in a
    /// cluster: a space over the subnet, all of it claimed by this host. The claim is written
    /// now (its version) and spread once the network is committed.
    pub(super) fn claim_new_network(
        &self,
        next: &mut State,
        id: &Id,
    ) -> Option<control_plane::cluster::records::Record> {
        let (cl, me) = (self.cluster.as_ref()?, next.host_name.clone()?);
        let range = next.claim_whole(id)?;
        let r = cl.write_claim(id, range, &me);
        next.merge_claim(id, range, claim_of(&r, &me));
        Some(r)
    }

    /// Merges a claim from the cluster.
    pub(super) fn merge_claim(&self, inner: &mut Inner, network: &Id, range: Range, claim: Claim) {
        if inner.state.merge_claim(network, range, claim) {
            self.claim_news(|_| {});
        }
    }

    /// Answers a host that asks for addresses: a range this host owns and does not use, or
    /// NoSpace. The claim is in this host's model (and stored) before it is sent.
    pub(super) fn donate(&self, inner: &mut Inner, from: HostId, network: Id, count: u32, at: Option<u32>) {
        let (Some(cl), Some(me)) = (&self.cluster, inner.state.host_name.clone()) else {
            return;
        };
        let Some(range) = inner.state.gift(&network, &me, &from.name, count, at) else {
            cl.no_space(network, from);
            return;
        };
        let r = cl.write_claim(&network, range, &from.name);
        inner.state.merge_claim(&network, range, claim_of(&r, &from.name));
        if let Err(e) = self.store.save(&inner.state) {
            tracing::error!("cannot store addresses given to {}: {e}", from.name);
        }
        *self.snapshot.write().expect("lock poisoned") = Arc::new(inner.state.clone());
        tracing::info!(to = %from.name, first = range.0, end = range.1, "addresses given to a host that asked");
        cl.grant(network, r, from);
    }

    /// Notes a donor's answer.
    pub(super) fn answered(&self, ask: Ask) {
        match ask {
            // Answers nobody waits for any more (late ones) are kept a while, not for ever.
            Ask::NoSpace { from, network } => self.claim_news(|n| {
                n.refused.push((network, from.name));
                trim(&mut n.refused);
            }),
            Ask::Granted { from, network } => self.claim_news(|n| {
                n.granted.push((network, from.name));
                trim(&mut n.granted);
            }),
            Ask::Want { .. } => {}
        }
    }

    fn claim_news(&self, change: impl FnOnce(&mut ClaimNews)) {
        let (lock, cv) = &self.claims;
        let mut n = lock.lock().expect("lock poisoned");
        change(&mut n);
        n.generation += 1;
        cv.notify_all();
    }

    /// Runs `op` (a create or connect); when it finds every address this host owns on an
    /// overlay network in use, asks the hosts that hold the most of that network's addresses,
    /// one at a time, for some, and runs it again once given.
    pub(super) fn with_addresses<T>(&self, mut op: impl FnMut() -> Result<T, OpError>) -> Result<T, OpError> {
        // Per donor: how often it was asked and said nothing in time (a host busy with a
        // burst may be slow); one that has nothing to give is asked no more.
        let mut tries: BTreeMap<String, u32> = BTreeMap::new();
        let mut settled = 0;
        loop {
            let (network, name) = match op() {
                Err(OpError::Model(ModelError::OutOfClaims { network, name })) => (network, name),
                Err(OpError::Model(e @ ModelError::OwnedElsewhere { .. })) => {
                    // A static address another host owns: that host is asked for it (twice at most).
                    let ModelError::OwnedElsewhere {
                        network, offset, owner, ..
                    } = &e
                    else {
                        unreachable!("matched above")
                    };
                    if tries.get(owner).copied().unwrap_or(0) >= SILENT_TRIES {
                        return Err(e.into());
                    }
                    let Some(donor) = self
                        .cluster
                        .as_ref()
                        .and_then(|cl| cl.alive().into_iter().find(|a| a.name == *owner))
                    else {
                        return Err(ModelError::Conflict(format!("{e}, which is unreachable")).into());
                    };
                    let (cl, network, offset) = (self.cluster.as_ref().expect("alive above"), network.clone(), *offset);
                    let seen = self.claims.0.lock().expect("lock poisoned").generation;
                    cl.want(network.clone(), 1, Some(offset), donor.clone());
                    // Every ask counts, granted ones too, so an owner that answers and never
                    // gives cannot keep the create waiting.
                    let tried = tries.entry(donor.name.clone()).or_insert(0);
                    match self.wait_for_answer(&network, Some(offset), &donor.name, seen) {
                        Answer::Given | Answer::Silent => *tried += 1,
                        // In use there: the create says whose it is.
                        Answer::Refused => *tried = SILENT_TRIES,
                    }
                    continue;
                }
                other => return other,
            };
            let Some(cl) = &self.cluster else {
                return Err(ModelError::Conflict(format!("no available IPv4 addresses on network {name}")).into());
            };
            let alive = cl.alive();
            let donors = self.inner.lock().expect("lock poisoned").state.donors(&network);
            let donor = donors
                .into_iter()
                .filter(|h| tries.get(h).copied().unwrap_or(0) < SILENT_TRIES)
                .filter_map(|h| alive.iter().find(|a| a.name == h).cloned())
                .min_by_key(|a| tries.get(&a.name).copied().unwrap_or(0));
            let Some(donor) = donor else {
                if settled < SETTLE_ROUNDS {
                    settled += 1;
                    tries.clear();
                    std::thread::sleep(SETTLE);
                    continue;
                }
                return Err(self.no_address_reachable(&network, &name, &alive).into());
            };
            let seen = self.claims.0.lock().expect("lock poisoned").generation;
            tracing::info!(network = %name, donor = %donor.name, "asking for addresses");
            cl.want(network.clone(), WANT, None, donor.clone());
            match self.wait_for_answer(&network, None, &donor.name, seen) {
                Answer::Given => {}
                Answer::Refused => {
                    tries.insert(donor.name, u32::MAX);
                }
                Answer::Silent => *tries.entry(donor.name).or_insert(0) += 1,
            }
        }
    }

    /// Waits until this host owns a free address of `network` (the one at offset `at`, when
    /// one was asked for), `donor` refused, or the wait is over.
    fn wait_for_answer(&self, network: &Id, at: Option<u32>, donor: &str, seen: u64) -> Answer {
        let deadline = Instant::now() + ANSWER_WAIT;
        let (lock, cv) = &self.claims;
        let mut n = lock.lock().expect("lock poisoned");
        let mut gen = seen;
        loop {
            if let Some(i) = n.refused.iter().position(|(net, h)| net == network && h == donor) {
                n.refused.swap_remove(i);
                return Answer::Refused;
            }
            if let Some(i) = n.granted.iter().position(|(net, h)| net == network && h == donor) {
                n.granted.swap_remove(i);
                return Answer::Given;
            }
            if n.generation != gen {
                gen = n.generation;
                drop(n);
                let given = match at {
                    Some(o) => self.owns(network, o),
                    None => self.owns_free_address(network),
                };
                if given {
                    return Answer::Given;
                }
                n = lock.lock().expect("lock poisoned");
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Answer::Silent;
            }
            n = cv.wait_timeout(n, left).expect("lock poisoned").0;
        }
    }

    /// Whether this host owns the address at offset `o` of `network`.
    fn owns(&self, network: &Id, o: u32) -> bool {
        let inner = self.inner.lock().expect("lock poisoned");
        let me = inner.state.host_name.as_deref().unwrap_or_default();
        let space = inner.state.networks.get(network).and_then(|n| n.space.as_ref());
        space.is_some_and(|s| s.owner(o) == Some(me))
    }

    /// Whether this host owns an address of `network` that it could hand out now.
    fn owns_free_address(&self, network: &Id) -> bool {
        let inner = self.inner.lock().expect("lock poisoned");
        let me = inner.state.host_name.as_deref().unwrap_or_default();
        inner.state.donation(network, me, 1).is_some()
    }

    /// The refusal when no reachable host has addresses to give: how many are in use here and
    /// on the hosts this host reaches, and how many the hosts out of reach hold (what they
    /// use is not known: a host declared down has its endpoints withdrawn).
    fn no_address_reachable(&self, network: &Id, name: &str, alive: &[HostId]) -> ModelError {
        let inner = self.inner.lock().expect("lock poisoned");
        let me = inner.state.host_name.clone().unwrap_or_default();
        let reachable = |h: &str| h == me || alive.iter().any(|a| a.name == h);
        let local = inner
            .state
            .endpoints_of_network(network)
            .filter(|e| e.ip.is_some())
            .count();
        let remote = inner.state.remote.get(network);
        let remote = remote.map_or(0, |r| r.values().filter(|e| reachable(&e.host)).count());
        let net = inner.state.networks.get(network);
        let usable = net
            .and_then(|n| n.ipam)
            .map_or(0, |i| i.subnet.size().saturating_sub(3));
        let held = net.and_then(|n| n.space.as_ref()).map(|s| s.held()).unwrap_or_default();
        let away: Vec<String> = held
            .into_iter()
            .filter(|(h, n)| *n > 0 && !reachable(h))
            .map(|(h, n)| format!("{h} holding {n}"))
            .collect();
        let mut why = format!(
            "network {name}: no free address reachable from {me} ({} of {usable} in use on reachable hosts",
            local + remote
        );
        if !away.is_empty() {
            why.push_str(&format!("; unreachable: {}", away.join(", ")));
        }
        why.push(')');
        ModelError::Conflict(why)
    }
}

impl Daemon {
    /// `cluster revoke`: spreads the CA's revocation of a host once it holds under the CA.
    pub fn revoke(&self, r: &control_plane::api::RevokeRequest) -> Result<(), OpError> {
        let Some(cl) = &self.cluster else {
            return Err(ModelError::Conflict(
                "this switchd is not in a cluster: start it with --cluster-dir and --advertise".into(),
            )
            .into());
        };
        let sig = control_plane::cluster::hex::decode(&r.signature);
        let Some(sig) = sig.filter(|s| s.len() <= 128) else {
            return Err(ModelError::Invalid(format!(
                "invalid signature {:?}: expected the CA's signature in hex (switchctl cluster revoke writes it)",
                r.signature
            ))
            .into());
        };
        let rev = control_plane::cluster::pki::Revocation {
            host: r.host.clone(),
            issued_ms: r.issued_ms,
            sig,
        };
        cl.revoke(&rev).map_err(|e| {
            let why = match e {
                control_plane::cluster::pki::PkiError::Rejected(why) => why,
                e => e.to_string(),
            };
            ModelError::Invalid(format!("revocation refused: {why}")).into()
        })
    }

    /// `cluster forget HOST`: this host takes over the overlay addresses of a host gone for
    /// good, after an exchange with every live host (so it holds every claim any of them
    /// holds). Refused while the host is alive or suspected.
    pub fn forget(&self, host: &str) -> Result<control_plane::api::ForgetResponse, OpError> {
        let Some(cl) = &self.cluster else {
            return Err(ModelError::Conflict(
                "this switchd is not in a cluster: start it with --cluster-dir and --advertise".into(),
            )
            .into());
        };
        let me = cl.name().to_string();
        if host == me {
            return Err(ModelError::Conflict(format!("{host} is this host: forget a host from another one")).into());
        }
        if let Some(p) = cl.peers().into_iter().find(|p| p.name == host && p.state != "down") {
            return Err(ModelError::Conflict(format!(
                "host {host} is {}: only a host gone for good can be forgotten; stop it, wait until it is declared down, then forget it",
                p.state
            ))
            .into());
        }
        cl.exchange_with_all().map_err(|e| {
            ModelError::Conflict(format!(
                "cannot take over {host}'s addresses before holding every live host's claims: {e}"
            ))
        })?;
        let mut inner = self.inner.lock().expect("lock poisoned");
        let mut next = inner.state.clone();
        let mut taken = std::collections::BTreeMap::new();
        let mut written = Vec::new();
        let claimed: Vec<Id> = next
            .networks
            .iter()
            .filter(|(_, n)| n.space.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in claimed {
            let net = &next.networks[&id];
            let writes = net.space.as_ref().map(|s| s.take_over(host, &me)).unwrap_or_default();
            let name = net.name.clone();
            for w in writes {
                let r = cl.write_claim(&id, w.range, &me);
                next.merge_claim(&id, w.range, claim_of(&r, &me));
                *taken.entry(name.clone()).or_insert(0) += w.range.1 - w.range.0;
                written.push(r);
            }
        }
        self.commit(&mut inner, next)?;
        for r in written {
            cl.spread(r);
        }
        tracing::warn!(host, ?taken, "took over the addresses of a host gone for good");
        Ok(control_plane::api::ForgetResponse { networks: taken })
    }
}

/// Keeps the last 256 answers.
fn trim(answers: &mut Vec<(Id, String)>) {
    if answers.len() > 256 {
        answers.drain(..answers.len() - 256);
    }
}

/// The claim a record of this host's says.
fn claim_of(r: &control_plane::cluster::records::Record, owner: &str) -> Claim {
    Claim {
        owner: owner.into(),
        version: r.version.clone(),
    }
}
