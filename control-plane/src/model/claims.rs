//! Claims on overlay networks' addresses in the model: merging what the cluster says, and
//! what this host can give a host that asks ([`crate::cluster::space`] decides who owns what).

use std::net::Ipv4Addr;

use super::{Driver, Network, State};
use crate::cluster::space::{Claim, Range, Space};
use crate::ids::Id;

impl State {
    /// Merges a claim on `network`'s addresses; true when it changed who owns what. Claims
    /// on a network not here, or one whose addresses are not claimed, are ignored.
    pub fn merge_claim(&mut self, network: &Id, range: Range, claim: Claim) -> bool {
        self.networks
            .get_mut(network)
            .and_then(|n| n.space.as_mut())
            .is_some_and(|s| s.merge(range, claim))
    }

    /// Makes a new overlay network's addresses claimed on demand, when this host is in a
    /// cluster: a space over its subnet. The range to claim for this host (all of it) is
    /// returned; the driver writes the claim (its version is the cluster's) and merges it.
    pub fn claim_whole(&mut self, network: &Id) -> Option<Range> {
        self.host_name.as_ref()?;
        let net = self.networks.get_mut(network).filter(|n| n.driver == Driver::Overlay)?;
        let size = super::network::space_size(&net.ipam?.subnet);
        net.space = Some(Space::new(size));
        Some((0, size))
    }

    /// The hosts to ask for addresses of `network`, this host excluded: those that have free
    /// addresses by [`State::free_by_host`], the most first. When by this host's view none
    /// has (a view may lag behind removals), the three holding the most, so that a full
    /// network costs a create three questions, not one per host.
    pub fn donors(&self, network: &Id) -> Vec<String> {
        let me = self.host_name.as_deref().unwrap_or_default();
        let Some(space) = self.networks.get(network).and_then(|n| n.space.as_ref()) else {
            return Vec::new();
        };
        let by_most = |m: std::collections::BTreeMap<String, u32>| {
            let mut v: Vec<(String, u32)> = m.into_iter().filter(|(h, n)| h != me && *n > 0).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.into_iter().map(|(h, _)| h).collect::<Vec<String>>()
        };
        let free = by_most(self.free_by_host(network));
        if !free.is_empty() {
            return free;
        }
        let held = space.held().into_iter().map(|(h, n)| (h.to_string(), n)).collect();
        by_most(held).into_iter().take(3).collect()
    }

    /// Per host holding addresses of `network`, how many of them are free as far as this
    /// host can tell: held, less those an endpoint anywhere in the cluster has (by the
    /// records this host has heard), those Docker holds here, and the network's own.
    pub fn free_by_host(&self, network: &Id) -> std::collections::BTreeMap<String, u32> {
        let Some((net, space)) = self.networks.get(network).and_then(|n| Some((n, n.space.as_ref()?))) else {
            return std::collections::BTreeMap::new();
        };
        let remote = self
            .remote
            .get(network)
            .into_iter()
            .flat_map(|r| r.values().map(|e| e.ip));
        let used = self.used_offsets(net, remote);
        let mut free = std::collections::BTreeMap::new();
        for (start, end, owner) in space.ranges() {
            let n = (end - start) - used.range(start..end).count() as u32;
            *free.entry(owner.to_string()).or_insert(0) += n;
        }
        free
    }

    /// The offsets of `net`'s addresses held: by endpoints here, by `others`, by Docker here,
    /// and the network's, broadcast, gateway and host-access addresses.
    fn used_offsets(&self, net: &Network, others: impl Iterator<Item = Ipv4Addr>) -> std::collections::BTreeSet<u32> {
        let Some(ipam) = net.ipam else {
            return std::collections::BTreeSet::new();
        };
        self.endpoints_of_network(&net.id)
            .filter_map(|e| e.ip)
            .chain(others)
            .chain(self.docker_held(&net.id))
            .chain(net.host_access_address())
            .chain([ipam.subnet.network(), ipam.subnet.broadcast(), ipam.gateway])
            .filter_map(|ip| Self::offset(net, ip))
            .collect()
    }

    /// What this host (`me`) gives a host `to` that asked for `count` addresses of `network`,
    /// or for the one at offset `at`: [`State::donation`], or that one address when it is
    /// free here; checked to be `me`'s to give.
    pub fn gift(&self, network: &Id, me: &str, to: &str, count: u32, at: Option<u32>) -> Option<Range> {
        let space = self.networks.get(network)?.space.as_ref()?;
        let range = match at {
            Some(o) => {
                let one = self.donation_of(network, me, o)?;
                Some(one)
            }
            None => self.donation(network, me, count),
        };
        range.filter(|r| space.give(me, to, r.0, r.1).is_ok())
    }

    /// Offset `o` of `network` alone, when `me` owns it and nothing here holds it.
    fn donation_of(&self, network: &Id, me: &str, o: u32) -> Option<Range> {
        let net = self.networks.get(network)?;
        let ip = std::net::Ipv4Addr::from(u32::from(net.ipam?.subnet.network()).checked_add(o)?);
        let held = self.endpoints_of_network(network).any(|e| e.ip == Some(ip))
            || self.docker_held(network).any(|d| d == ip)
            || net.host_access_address() == Some(ip);
        (!held && net.space.as_ref()?.owner(o) == Some(me)).then_some((o, o + 1))
    }

    /// The offset of `ip` from the first address of `net`'s subnet.
    fn offset(net: &Network, ip: Ipv4Addr) -> Option<u32> {
        let base = u32::from(net.ipam?.subnet.network());
        u32::from(ip).checked_sub(base)
    }

    /// What this host (`me`) can give of `network`'s addresses to a host that asked for
    /// `count`: a range of addresses it owns that no endpoint here, nor Docker, holds, and
    /// that is not the network's, broadcast, gateway or host-access address.
    pub fn donation(&self, network: &Id, me: &str, count: u32) -> Option<Range> {
        let net = self.networks.get(network)?;
        let held = self.used_offsets(net, std::iter::empty());
        net.space.as_ref()?.donation(me, &held, count)
    }
}
