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
/// [`super::records::Records`]).
#[derive(Debug, Clone)]
struct Remote {
    network: Id,
    /// Index into [`Remotes::hosts`].
    host: u32,
    vtep: SocketAddr,
    mac: [u8; 6],
    ip: Ipv4Addr,
    /// The order of its claim on its MAC while in place (a later claim wins the MAC).
    claim: Option<u64>,
}

/// The remote endpoints a host knows and which of them are in place.
#[derive(Debug, Default)]
pub struct Remotes {
    /// Every remote endpoint known, whether its network exists here yet or not (a hash map
    /// with a fixed hasher: one probe per lookup, an order that depends only on the
    /// operations made).
    eps: FxHashMap<Id, Remote>,
    /// Host names, each once (an endpoint names its host by index).
    hosts: Vec<String>,
    host_index: FxHashMap<String, u32>,
    /// Endpoints whose network exists here: counted per (network, VTEP).
    peers: BTreeMap<(Id, SocketAddr), usize>,
    /// Every claim in place on a (network, MAC), in claim order: the last one holds the pin.
    claims: BTreeMap<(Id, MacAddr, u64), Id>,
    next_claim: u64,
}

impl Remotes {
    /// An empty set.
    pub fn new() -> Remotes {
        Remotes::default()
    }

    fn host(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.host_index.get(name) {
            return i;
        }
        let i = u32::try_from(self.hosts.len()).expect("fewer than 2^32 hosts");
        self.hosts.push(name.to_string());
        self.host_index.insert(name.to_string(), i);
        i
    }

    /// The endpoint `id` (on another host) is as `rec` says; `has_network` says whether its
    /// network exists on this host (if not, it waits for [`Remotes::network_added`]).
    pub fn upsert(&mut self, id: Id, rec: &EndpointRecord, has_network: bool) -> Vec<Effect> {
        let mut fx = self.remove(&id);
        let host = self.host(&rec.host);
        self.eps.insert(
            id.clone(),
            Remote {
                network: rec.network.clone(),
                host,
                vtep: rec.vtep,
                mac: rec.mac,
                ip: rec.ip,
                claim: None,
            },
        );
        if has_network {
            self.place(&id, &mut fx);
        }
        fx
    }

    /// The claims in place on (`network`, `mac`), oldest first.
    fn claims_on<'a>(&'a self, network: &Id, mac: [u8; 6]) -> impl DoubleEndedIterator<Item = (u64, &'a Id)> + 'a {
        let from = (network.clone(), MacAddr(mac), 0);
        let to = (network.clone(), MacAddr(mac), u64::MAX);
        self.claims.range(from..=to).map(|((_, _, c), id)| (*c, id))
    }

    /// The endpoint `id` is gone (or its host is down): whatever it held is released.
    pub fn remove(&mut self, id: &Id) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(rec) = self.eps.remove(id) else {
            return fx;
        };
        let Some(claim) = rec.claim else {
            return fx;
        };
        let held = self.claims_on(&rec.network, rec.mac).next_back().map(|(c, _)| c) == Some(claim);
        self.claims.remove(&(rec.network.clone(), MacAddr(rec.mac), claim));
        if held {
            // The latest other claim on the MAC takes it over, if any.
            let heir = self
                .claims_on(&rec.network, rec.mac)
                .next_back()
                .map(|(_, k)| k.clone());
            match heir.and_then(|k| self.eps.get(&k)) {
                Some(r) => fx.push(Effect::Pin {
                    network: r.network.clone(),
                    mac: MacAddr(r.mac),
                    vtep: r.vtep,
                    ip: r.ip,
                }),
                None => fx.push(Effect::Unpin {
                    network: rec.network.clone(),
                    mac: MacAddr(rec.mac),
                }),
            }
        }
        let pk = (rec.network, rec.vtep);
        if let Some(n) = self.peers.get_mut(&pk) {
            *n -= 1;
            if *n == 0 {
                self.peers.remove(&pk);
                fx.push(Effect::RemovePeer {
                    network: pk.0,
                    vtep: pk.1,
                });
            }
        }
        fx
    }

    /// Every endpoint of `host` is withdrawn (the host was declared down); they come back
    /// with [`Remotes::upsert`] when it is up again.
    pub fn host_down(&mut self, host: &str) -> Vec<Effect> {
        let Some(&h) = self.host_index.get(host) else {
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
        let waiting: Vec<Id> = self
            .eps
            .iter()
            .filter(|(_, r)| &r.network == network && r.claim.is_none())
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
        for r in self.eps.values_mut().filter(|r| &r.network == network) {
            r.claim = None;
        }
        self.peers.retain(|(n, _), _| n != network);
        self.claims.retain(|(n, _, _), _| n != network);
    }

    /// The remote endpoints known on `network`, with their hosts.
    pub fn of_network<'a>(&'a self, network: &'a Id) -> impl Iterator<Item = (&'a Id, &'a str)> + 'a {
        self.eps
            .iter()
            .filter(move |(_, r)| &r.network == network)
            .map(|(k, r)| (k, self.hosts[r.host as usize].as_str()))
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
        self.eps.get(id).is_some_and(|r| r.claim.is_some())
    }

    fn place(&mut self, id: &Id, fx: &mut Vec<Effect>) {
        let claim = self.next_claim;
        let Some(rec) = self.eps.get_mut(id) else { return };
        self.next_claim += 1;
        rec.claim = Some(claim);
        let n = self.peers.entry((rec.network.clone(), rec.vtep)).or_insert(0);
        *n += 1;
        if *n == 1 {
            fx.push(Effect::AddPeer {
                network: rec.network.clone(),
                vtep: rec.vtep,
            });
        }
        self.claims
            .insert((rec.network.clone(), MacAddr(rec.mac), claim), id.clone());
        fx.push(Effect::Pin {
            network: rec.network.clone(),
            mac: MacAddr(rec.mac),
            vtep: rec.vtep,
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
