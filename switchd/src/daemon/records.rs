//! The daemon's side of the cluster: publishing local overlay networks and endpoints, and
//! applying what other hosts publish (networks created here too; their endpoints as static MAC
//! entries behind a VXLAN port per remote host, so broadcast reaches exactly the hosts with
//! endpoints on the network).

use control_plane::cluster::membership::Ask;
use control_plane::cluster::node::Output;
use control_plane::cluster::records::{Body, EndpointRecord, RecordKey};
use control_plane::cluster::remotes::Effect;

use super::*;

impl Daemon {
    /// Publishes an overlay network this host created.
    pub(super) fn publish_network(&self, state: &State, id: &Id) {
        if let (Some(cl), Some(r)) = (&self.cluster, state.network_record(id)) {
            cl.publish(RecordKey::Network(id.clone()), Some(Body::Network(r)));
        }
    }

    /// Publishes the removal of an overlay network.
    pub(super) fn publish_network_removed(&self, net: &Network) {
        if let (Some(cl), Driver::Overlay) = (&self.cluster, net.driver) {
            cl.publish(RecordKey::Network(net.id.clone()), None);
        }
    }

    /// Publishes a local endpoint on an overlay network.
    pub(super) fn publish_endpoint(&self, state: &State, ep: &Endpoint) {
        let Some(cl) = &self.cluster else { return };
        if let Some(r) = state.endpoint_record(&ep.id, cl.name(), cl.vtep()) {
            cl.publish(
                RecordKey::endpoint(cl.name(), ep.id.clone()),
                Some(Body::Endpoint(std::sync::Arc::new(r))),
            );
        }
    }

    /// Publishes the removal of a local endpoint on an overlay network.
    pub(super) fn publish_endpoint_removed(&self, state: &State, ep: &Endpoint) {
        let overlay = state
            .networks
            .get(&ep.network)
            .is_some_and(|n| n.driver == Driver::Overlay);
        if let (Some(cl), true) = (&self.cluster, overlay) {
            cl.publish(RecordKey::endpoint(cl.name(), ep.id.clone()), None);
        }
    }

    /// Does what the cluster node asks of the host, in its order.
    pub fn apply_outputs(&self, outputs: Vec<Output>) {
        let mut inner = self.inner.lock().expect("lock poisoned");
        for out in outputs {
            match out {
                Output::Network(id, n) => self.adopt_network(&mut inner, id, &n),
                Output::NetworkRemoved(id) => self.drop_network(&mut inner, &id),
                Output::Endpoint(id, e) => self.add_remote(&mut inner, id, e),
                Output::EndpointRemoved(id) => inner.state.remove_remote(&id),
                Output::HostDown(host) => inner.state.remove_remotes_of_host(&host),
                Output::Revoked { host, issued_ms, sig } => self.remember_revocation(&mut inner, host, issued_ms, &sig),
                Output::Dataplane(fx) => self.apply_effect(&mut inner, fx),
                // The driver's own.
                Output::Member(_) | Output::Sync(_) => {}
                Output::Claim { network, range, claim } => self.merge_claim(&mut inner, &network, range, claim),
                Output::Asked(Ask::Want {
                    from,
                    network,
                    count,
                    at,
                }) => self.donate(&mut inner, from, network, count, at),
                Output::Asked(a) => self.answered(a),
            }
        }
        *self.snapshot.write().expect("lock poisoned") = Arc::new(inner.state.clone());
    }

    /// Stores a revocation, so that it is spread again after a restart.
    fn remember_revocation(&self, inner: &mut Inner, host: String, issued_ms: u64, sig: &[u8]) {
        tracing::warn!(%host, "host revoked by the cluster's CA: its certificate, records and messages are refused");
        inner.state.revocations.insert(host, (issued_ms, sig.to_vec()));
        if let Err(e) = self.store.save(&inner.state) {
            tracing::error!("cannot store a revocation: {e}");
        }
    }

    fn adopt_network(&self, inner: &mut Inner, id: Id, rec: &control_plane::cluster::records::NetworkRecord) {
        let mut next = inner.state.clone();
        match next.adopt_network(id.clone(), rec, &self.host_facts()) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        }
        let net = next.networks[&id].clone();
        let ports = match self.bring_up_network(&net) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(network = %net.name, "cannot bring up cluster network: {}", e.message());
                return;
            }
        };
        if let Err(e) = self.commit(inner, next) {
            self.tear_down_network(&net, Some(ports));
            tracing::error!(network = %net.name, "cannot store cluster network: {}", e.message());
            return;
        }
        // Claims on its addresses that came before it.
        if let (Some(cl), true) = (&self.cluster, net.space.is_some()) {
            for (range, c) in cl.claims_of(&id) {
                inner.state.merge_claim(&id, range, c);
            }
        }
        // Endpoints other hosts announced before the network arrived go in place.
        self.ports_up(inner, id, ports);
        tracing::info!(network = %net.name, "network created by another host");
    }

    fn drop_network(&self, inner: &mut Inner, id: &Id) {
        let Some(net) = inner.state.networks.get(id).cloned() else {
            return;
        };
        if net.driver != Driver::Overlay || inner.state.endpoints_of_network(id).next().is_some() {
            return;
        }
        let mut next = inner.state.clone();
        next.networks.remove(id);
        next.remote.remove(id);
        let ports = self.ports_down(inner, id);
        self.tear_down_network(&net, ports);
        if let Err(e) = self.commit(inner, next) {
            tracing::error!(network = %net.name, "cannot store the removal: {}", e.message());
        }
        tracing::info!(network = %net.name, "network removed by another host");
    }

    fn add_remote(&self, inner: &mut Inner, id: Id, e: std::sync::Arc<EndpointRecord>) {
        let clash = inner
            .state
            .endpoints_of_network(&e.network)
            .find(|l| l.ip == Some(e.ip))
            .cloned();
        if let Some(local) = clash {
            let name = inner
                .state
                .sandboxes
                .get(&local.sandbox)
                .map_or("?", |s| s.name.as_str());
            tracing::error!(
                "address {} is held by local sandbox {name} and by sandbox {} on host {}: two hosts allocated it at once",
                e.ip,
                e.sandbox,
                e.host
            );
        }
        inner.state.set_remote(id, e);
    }

    /// Makes the network's ports up here known to the cluster node, which then places the
    /// network's remote endpoints.
    pub(super) fn ports_up(&self, inner: &mut Inner, id: Id, ports: NetPorts) {
        if let Some(cl) = &self.cluster {
            cl.network_up(id.clone());
        }
        inner.net_ports.insert(id, ports);
    }

    /// Takes a network's ports out, and tells the cluster node they are gone.
    pub(super) fn ports_down(&self, inner: &mut Inner, id: &Id) -> Option<NetPorts> {
        if let Some(cl) = &self.cluster {
            cl.network_down(id.clone());
        }
        inner.net_ports.remove(id)
    }

    /// Makes the dataplane hold what the remote endpoints need: VXLAN ports per remote host,
    /// pinned MACs and the addresses answered locally.
    fn apply_effect(&self, inner: &mut Inner, f: Effect) {
        let network = match &f {
            Effect::AddPeer { network, .. }
            | Effect::RemovePeer { network, .. }
            | Effect::Pin { network, .. }
            | Effect::Unpin { network, .. } => network.clone(),
        };
        let (Some(net), Some(np)) = (inner.state.networks.get(&network), inner.net_ports.get_mut(&network)) else {
            return;
        };
        let sid = NetworkId(net.switch_id);
        match f {
            Effect::AddPeer { vtep, .. } => match self.add_vtep_port(net, vtep, true) {
                Ok(p) => {
                    np.peers.insert(vtep, p);
                }
                Err(err) => tracing::error!("cannot reach host {vtep}: {}", err.message()),
            },
            Effect::RemovePeer { vtep, .. } => {
                if let Some(p) = np.peers.remove(&vtep) {
                    if let Err(e) = self.remove_port(p) {
                        tracing::warn!("removing the port of {vtep}: {e}");
                    }
                }
            }
            Effect::Pin { mac, vtep, ip, .. } => {
                let Some(&port) = np.peers.get(&vtep) else { return };
                let answered = dataplane::Answered {
                    ip: Some(ip),
                    ip6: net.overlay_ip6(ip),
                };
                if let Err(err) = self.dp.set_static(sid, mac, Some((port, answered))) {
                    tracing::warn!("cannot pin {mac} to {vtep}: {err}");
                }
            }
            Effect::Unpin { mac, .. } => {
                let _ = self.dp.set_static(sid, mac, None);
            }
        }
    }
}
