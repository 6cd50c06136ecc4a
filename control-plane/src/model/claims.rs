//! Claims on overlay networks' addresses in the model: merging what the cluster says, and
//! what this host can give a host that asks ([`crate::cluster::space`] decides who owns what).

use std::net::Ipv4Addr;

use super::{Network, State};
use crate::cluster::space::{Claim, Range};
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
        let (space, ipam) = (net.space.as_ref()?, net.ipam?);
        let held: std::collections::BTreeSet<u32> = self
            .endpoints_of_network(network)
            .filter_map(|e| e.ip)
            .chain(self.docker_held(network))
            .chain(net.host_access_address())
            .chain([ipam.subnet.network(), ipam.subnet.broadcast(), ipam.gateway])
            .filter_map(|ip| Self::offset(net, ip))
            .collect();
        space.donation(me, |o| held.contains(&o), count)
    }
}
