//! Remote endpoints, and what a host's dataplane must hold for them: one VXLAN port per
//! (network, remote VTEP) while that host has endpoints there, each remote endpoint's MAC
//! pinned to its host's port, its address answered locally (ARP suppression).
//!
//! ```text
//!  records / membership ──► upsert · remove · host_down · network_added · network_removed
//!                                 │
//!                                 ▼
//!                      Vec<Effect>: AddPeer · RemovePeer · Pin · Unpin
//!                                 │  (switchd: dataplane ports; switchsim: simulated ports)
//! ```
//!
//! Sans-IO, so switchd and the simulator run the same decisions. Records of one key arrive in
//! any order relative to other keys: an endpoint that moved (removed on one host, made again on
//! another with the same address and MAC under a new ID) may be heard of on its new host
//! before its old one's removal. A MAC is therefore pinned by the endpoint that claimed it
//! last, and removing an endpoint unpins only what it still holds, handing the MAC to any
//! other endpoint that claims it.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::net::{Ipv4Addr, SocketAddr};

use switch::MacAddr;

use super::records::EndpointRecord;
use crate::ids::Id;

/// A change the dataplane must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open a VXLAN port towards `vtep` on `network`.
    AddPeer {
        /// The network.
        network: Id,
        /// The remote host's VTEP.
        vtep: SocketAddr,
    },
    /// Close the port towards `vtep` on `network` (its last endpoint there went).
    RemovePeer {
        /// The network.
        network: Id,
        /// The remote host's VTEP.
        vtep: SocketAddr,
    },
    /// Pin `mac` on `network` to the port towards `vtep`; answer ARP for `ip` with it.
    Pin {
        /// The network.
        network: Id,
        /// The endpoint's MAC.
        mac: MacAddr,
        /// Its host's VTEP.
        vtep: SocketAddr,
        /// Its address.
        ip: Ipv4Addr,
    },
    /// Forget `mac` on `network` (and the address answered with it).
    Unpin {
        /// The network.
        network: Id,
        /// The MAC.
        mac: MacAddr,
    },
}

/// A remote endpoint as the reconciler needs it (the rest of its record lives in
/// [`super::records::Records`]), in 32 bytes: every host holds one per endpoint of the cluster.
#[derive(Debug, Clone)]
struct Remote {
    /// Index into [`Remotes::nets`].
    net: u32,
    /// Index into [`Remotes::hosts`].
    host: u32,
    /// Index into [`Remotes::vteps`].
    vtep: u32,
    ip: Ipv4Addr,
    mac: [u8; 6],
    /// The order of its claim on its MAC while in place (a later claim wins the MAC); 0
    /// while not in place.
    claim: u64,
}

/// Names each value once, by index (hosts and networks, which thousands of endpoints share).
#[derive(Debug)]
struct Interner<T> {
    values: Vec<T>,
    index: FxHashMap<T, u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            values: Vec::new(),
            index: FxHashMap::default(),
        }
    }
}

impl<T: Clone + Eq + std::hash::Hash> Interner<T> {
    fn get<Q>(&self, v: &Q) -> Option<u32>
    where
        T: std::borrow::Borrow<Q>,
        Q: Eq + std::hash::Hash + ?Sized,
    {
        self.index.get(v).copied()
    }

    fn intern<Q>(&mut self, v: &Q) -> u32
    where
        T: std::borrow::Borrow<Q>,
        Q: Eq + std::hash::Hash + ToOwned<Owned = T> + ?Sized,
    {
        if let Some(i) = self.get(v) {
            return i;
        }
        let i = u32::try_from(self.values.len()).expect("fewer than 2^32 values");
        self.values.push(v.to_owned());
        self.index.insert(v.to_owned(), i);
        i
    }

    fn value(&self, i: u32) -> &T {
        &self.values[i as usize]
    }
}

/// The remote endpoints a host knows and which of them are in place. Hash maps throughout
/// (with a fixed hasher: one probe per lookup, an order that depends only on the operations
/// made): every host holds every endpoint of the cluster.
#[derive(Debug, Default)]
pub struct Remotes {
    /// Every remote endpoint known, whether its network exists here yet or not.
    eps: FxHashMap<Id, Remote>,
    hosts: Interner<String>,
    nets: Interner<Id>,
    vteps: Interner<SocketAddr>,
    /// Endpoints whose network exists here: counted per (network, VTEP).
    peers: FxHashMap<(u32, u32), usize>,
    /// The claim holding each pinned (network, MAC): the latest in place.
    pins: FxHashMap<(u32, MacAddr), (u64, Id)>,
    /// Earlier claims still in place on a pinned MAC (an endpoint moved and its old host's
    /// record has not gone yet), in claim order: the heirs of the pin.
    waiting: BTreeMap<(u32, MacAddr, u64), Id>,
    /// The last claim made (the first is 1).
    next_claim: u64,
}

impl Remotes {
    /// An empty set.
    pub fn new() -> Remotes {
        Remotes::default()
    }

    /// The endpoint `id` (on another host) is as `rec` says; `has_network` says whether its
    /// network exists on this host (if not, it waits for [`Remotes::network_added`]).
    pub fn upsert(&mut self, id: Id, rec: &EndpointRecord, has_network: bool) -> Vec<Effect> {
        let mut fx = self.remove(&id);
        let remote = Remote {
            net: self.nets.intern(&rec.network),
            host: self.hosts.intern(&*rec.host),
            vtep: self.vteps.intern(&rec.vtep),
            ip: rec.ip,
            mac: rec.mac,
            claim: 0,
        };
        self.eps.insert(id.clone(), remote);
        if has_network {
            self.place(&id, &mut fx);
        }
        fx
    }

    /// The endpoint `id` is gone (or its host is down): whatever it held is released.
    pub fn remove(&mut self, id: &Id) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(rec) = self.eps.remove(id) else {
            return fx;
        };
        let claim = rec.claim;
        if claim == 0 {
            return fx;
        }
        let (net, mac) = (rec.net, MacAddr(rec.mac));
        let network = self.nets.value(net);
        if self.pins.get(&(net, mac)).is_some_and(|(c, _)| *c == claim) {
            // The latest other claim on the MAC takes it over, if any.
            let heir = self
                .waiting
                .range((net, mac, 0)..=(net, mac, u64::MAX))
                .next_back()
                .map(|(&(_, _, c), k)| (c, k.clone()));
            if let Some((c, _)) = heir {
                self.waiting.remove(&(net, mac, c));
            }
            // (A waiting claim always belongs to a known endpoint: removing one withdraws
            // its claim; should that ever fail, the MAC is unpinned rather than misplaced.)
            match heir.and_then(|(c, k)| self.eps.get(&k).map(|r| (c, k, *self.vteps.value(r.vtep), r.ip))) {
                Some((c, k, vtep, ip)) => {
                    fx.push(Effect::Pin {
                        network: network.clone(),
                        mac,
                        vtep,
                        ip,
                    });
                    self.pins.insert((net, mac), (c, k));
                }
                None => {
                    self.pins.remove(&(net, mac));
                    fx.push(Effect::Unpin {
                        network: network.clone(),
                        mac,
                    });
                }
            }
        } else {
            self.waiting.remove(&(net, mac, claim));
        }
        let pk = (net, rec.vtep);
        if let Some(n) = self.peers.get_mut(&pk) {
            *n -= 1;
            if *n == 0 {
                self.peers.remove(&pk);
                fx.push(Effect::RemovePeer {
                    network: network.clone(),
                    vtep: *self.vteps.value(rec.vtep),
                });
            }
        }
        fx
    }

    /// Every endpoint of `host` is withdrawn (the host was declared down); they come back
    /// with [`Remotes::upsert`] when it is up again.
    pub fn host_down(&mut self, host: &str) -> Vec<Effect> {
        let Some(h) = self.hosts.get(host) else {
            return Vec::new();
        };
        let ids: Vec<Id> = self
            .eps
            .iter()
            .filter(|(_, r)| r.host == h)
            .map(|(k, _)| k.clone())
            .collect();
        ids.iter().flat_map(|id| self.remove(id)).collect()
    }

    /// `network` now exists here: its waiting endpoints go in place.
    pub fn network_added(&mut self, network: &Id) -> Vec<Effect> {
        let Some(n) = self.nets.get(network) else {
            return Vec::new();
        };
        let waiting: Vec<Id> = self
            .eps
            .iter()
            .filter(|(_, r)| r.net == n && r.claim == 0)
            .map(|(k, _)| k.clone())
            .collect();
        let mut fx = Vec::new();
        for id in waiting {
            self.place(&id, &mut fx);
        }
        fx
    }

    /// `network` is gone from this host: its endpoints leave their places (the dataplane drops
    /// the network's ports with it, so no effect is returned) and wait as before.
    pub fn network_removed(&mut self, network: &Id) {
        let Some(n) = self.nets.get(network) else { return };
        for r in self.eps.values_mut().filter(|r| r.net == n) {
            r.claim = 0;
        }
        self.peers.retain(|(x, _), _| *x != n);
        self.pins.retain(|(x, _), _| *x != n);
        self.waiting.retain(|(x, _, _), _| *x != n);
    }

    /// The remote endpoints known on `network`, with their hosts.
    pub fn of_network<'a>(&'a self, network: &'a Id) -> impl Iterator<Item = (&'a Id, &'a str)> + 'a {
        let n = self.nets.get(network);
        self.eps
            .iter()
            .filter(move |(_, r)| Some(r.net) == n)
            .map(|(k, r)| (k, self.hosts.value(r.host).as_str()))
    }

    /// How many remote endpoints are known.
    pub fn len(&self) -> usize {
        self.eps.len()
    }

    /// Whether no remote endpoint is known.
    pub fn is_empty(&self) -> bool {
        self.eps.is_empty()
    }

    /// Whether the endpoint is in place (its network exists here).
    pub fn is_placed(&self, id: &Id) -> bool {
        self.eps.get(id).is_some_and(|r| r.claim != 0)
    }

    fn place(&mut self, id: &Id, fx: &mut Vec<Effect>) {
        let Some(rec) = self.eps.get_mut(id) else { return };
        self.next_claim += 1;
        let claim = self.next_claim;
        rec.claim = claim;
        let network = self.nets.value(rec.net);
        let vtep = *self.vteps.value(rec.vtep);
        let n = self.peers.entry((rec.net, rec.vtep)).or_insert(0);
        *n += 1;
        if *n == 1 {
            fx.push(Effect::AddPeer {
                network: network.clone(),
                vtep,
            });
        }
        let mac = MacAddr(rec.mac);
        if let Some((c, k)) = self.pins.insert((rec.net, mac), (claim, id.clone())) {
            self.waiting.insert((rec.net, mac, c), k);
        }
        fx.push(Effect::Pin {
            network: network.clone(),
            mac,
            vtep,
            ip: rec.ip,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::from_random([n; 32])
    }

    fn rec(net: u8, host: &str, vtep: &str, mac: u8, ip: &str) -> EndpointRecord {
        EndpointRecord {
            network: id(net),
            host: host.into(),
            vtep: vtep.parse().unwrap(),
            sandbox: format!("sb{mac}"),
            mac: [2, 0x42, 0, 0, 0, mac],
            ip: ip.parse().unwrap(),
            aliases: vec![],
        }
    }

    const A: &str = "10.0.0.1:4789";
    const B: &str = "10.0.0.2:4789";

    #[test]
    fn one_port_per_remote_host_while_it_has_endpoints() {
        let mut r = Remotes::new();
        let fx = r.upsert(id(10), &rec(1, "a", A, 1, "10.1.0.2"), true);
        assert_eq!(fx.len(), 2, "{fx:?}");
        assert!(matches!(fx[0], Effect::AddPeer { .. }));
        let fx = r.upsert(id(11), &rec(1, "a", A, 2, "10.1.0.3"), true);
        assert!(matches!(fx[..], [Effect::Pin { .. }]), "{fx:?}");
        assert!(matches!(r.remove(&id(10))[..], [Effect::Unpin { .. }]));
        let fx = r.remove(&id(11));
        assert!(
            matches!(fx[..], [Effect::Unpin { .. }, Effect::RemovePeer { .. }]),
            "{fx:?}"
        );
        assert!(r.remove(&id(11)).is_empty(), "removing twice changes nothing");
    }

    #[test]
    fn endpoints_wait_for_their_network() {
        let mut r = Remotes::new();
        assert!(r.upsert(id(10), &rec(1, "a", A, 1, "10.1.0.2"), false).is_empty());
        assert!(!r.is_placed(&id(10)));
        assert_eq!(r.network_added(&id(1)).len(), 2);
        assert!(r.is_placed(&id(10)));
        r.network_removed(&id(1));
        assert!(!r.is_placed(&id(10)));
        assert_eq!(
            r.of_network(&id(1)).collect::<Vec<_>>(),
            [(&id(10), "a")],
            "still known, waiting"
        );
        assert!(r.remove(&id(10)).is_empty(), "nothing in place to undo");
    }

    #[test]
    fn a_moved_endpoint_keeps_its_mac_whatever_order_the_news_arrives_in() {
        // Same MAC and address, removed on a, made again on b under a new ID.
        let old = rec(1, "a", A, 7, "10.1.0.7");
        let new = rec(1, "b", B, 7, "10.1.0.7");
        // In order: removal, then creation.
        let mut r = Remotes::new();
        r.upsert(id(20), &old, true);
        r.remove(&id(20));
        let fx = r.upsert(id(21), &new, true);
        assert!(fx.contains(&Effect::Pin {
            network: id(1),
            mac: MacAddr(new.mac),
            vtep: B.parse().unwrap(),
            ip: new.ip
        }));
        // Out of order: the new one first; the old one's removal must not unpin it.
        let mut r = Remotes::new();
        r.upsert(id(20), &old, true);
        r.upsert(id(21), &new, true);
        let fx = r.remove(&id(20));
        assert_eq!(
            fx,
            vec![Effect::RemovePeer {
                network: id(1),
                vtep: A.parse().unwrap()
            }],
            "the MAC stays pinned to b"
        );
        // And if b's goes first while a's is still claimed, a's takes the MAC back.
        let mut r = Remotes::new();
        r.upsert(id(20), &rec(1, "a", A, 7, "10.1.0.7"), true);
        r.upsert(id(21), &new, true);
        let fx = r.remove(&id(21));
        assert!(
            matches!(&fx[0], Effect::Pin { vtep, .. } if *vtep == A.parse().unwrap()),
            "{fx:?}"
        );
    }

    #[test]
    fn a_host_down_withdraws_its_endpoints_only() {
        let mut r = Remotes::new();
        r.upsert(id(10), &rec(1, "a", A, 1, "10.1.0.2"), true);
        r.upsert(id(11), &rec(1, "b", B, 2, "10.1.0.3"), true);
        let fx = r.host_down("a");
        assert_eq!(fx.len(), 2, "{fx:?}");
        assert_eq!(r.len(), 1);
        assert!(r.is_placed(&id(11)));
    }
}
