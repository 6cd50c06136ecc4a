//! The daemon's side of the cluster: publishing local overlay networks and endpoints, and
//! applying what other hosts publish (networks created here too; their endpoints as static MAC
//! entries behind a VXLAN port per remote host, so broadcast reaches exactly the hosts with
//! endpoints on the network).

use control_plane::cluster::records::{Body, EndpointRecord, Record, RecordKey};
use control_plane::model::RemoteEndpoint;

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
        let net = state.networks.get(&ep.network);
        let (Some(net), Some(mac), Some(ip)) = (net, ep.mac, ep.ip) else {
            return;
        };
        if net.driver != Driver::Overlay {
            return;
        }
        let sandbox = state
            .sandboxes
            .get(&ep.sandbox)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let r = EndpointRecord {
            network: ep.network.clone(),
            host: cl.name().to_string(),
            vtep: cl.vtep(),
            sandbox,
            mac: mac.0,
            ip,
            aliases: ep.aliases.clone(),
        };
        cl.publish(RecordKey::Endpoint(ep.id.clone()), Some(Body::Endpoint(r)));
    }

    /// Publishes the removal of a local endpoint on an overlay network.
    pub(super) fn publish_endpoint_removed(&self, state: &State, ep: &Endpoint) {
        let overlay = state
            .networks
            .get(&ep.network)
            .is_some_and(|n| n.driver == Driver::Overlay);
        if let (Some(cl), true) = (&self.cluster, overlay) {
            cl.publish(RecordKey::Endpoint(ep.id.clone()), None);
        }
    }

    /// Applies what the cluster reports.
    pub fn apply_change(&self, change: crate::cluster::Change) {
        match change {
            crate::cluster::Change::Records(r) => self.apply_records(r),
            crate::cluster::Change::HostDown(host) => {
                let mut inner = self.inner.lock().expect("lock poisoned");
                let gone: Vec<Id> = inner
                    .state
                    .remote
                    .values()
                    .flat_map(|m| m.iter().filter(|(_, r)| r.host == host).map(|(id, _)| id.clone()))
                    .collect();
                for id in &gone {
                    self.remove_remote(&mut inner, id);
                }
                *self.snapshot.write().expect("lock poisoned") = Arc::new(inner.state.clone());
            }
            crate::cluster::Change::HostUp(eps) => {
                let mut inner = self.inner.lock().expect("lock poisoned");
                let me = self.cluster.as_ref().map(|c| c.name().to_string()).unwrap_or_default();
                for (id, e) in eps.into_iter().filter(|(_, e)| e.host != me) {
                    self.add_remote(&mut inner, id, e);
                }
                *self.snapshot.write().expect("lock poisoned") = Arc::new(inner.state.clone());
            }
        }
    }

    /// Applies records that changed in the cluster.
    fn apply_records(&self, records: Vec<Record>) {
        let Some(cl) = &self.cluster else { return };
        let mut inner = self.inner.lock().expect("lock poisoned");
        for r in records {
            match (r.key, r.body) {
                (RecordKey::Network(id), Some(Body::Network(n))) => self.adopt_network(&mut inner, id, &n),
                (RecordKey::Network(id), None) => self.drop_network(&mut inner, &id),
                (RecordKey::Endpoint(id), Some(Body::Endpoint(e))) if e.host != cl.name() => {
                    self.add_remote(&mut inner, id, e)
                }
                (RecordKey::Endpoint(id), None) => self.remove_remote(&mut inner, &id),
                _ => {}
            }
        }
        *self.snapshot.write().expect("lock poisoned") = Arc::new(inner.state.clone());
    }

    fn adopt_network(&self, inner: &mut Inner, id: Id, rec: &control_plane::cluster::records::NetworkRecord) {
        let mut next = inner.state.clone();
        match next.adopt_network(id.clone(), rec) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!("cannot create cluster network: {e}");
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
        inner.net_ports.insert(id.clone(), ports);
        tracing::info!(network = %net.name, "network created by another host");
        // Endpoints other hosts announced before the network arrived.
        let waiting: Vec<(Id, RemoteEndpoint)> = inner
            .state
            .remote
            .get(&id)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (ep, _) in waiting {
            if let Some(e) = inner.pending.remove(&ep) {
                self.add_remote(inner, ep, e);
            }
        }
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
        let ports = inner.net_ports.remove(id);
        self.tear_down_network(&net, ports);
        if let Err(e) = self.commit(inner, next) {
            tracing::error!(network = %net.name, "cannot store the removal: {}", e.message());
        }
        tracing::info!(network = %net.name, "network removed by another host");
    }

    fn add_remote(&self, inner: &mut Inner, id: Id, e: EndpointRecord) {
        let remote = RemoteEndpoint {
            host: e.host.clone(),
            sandbox: e.sandbox.clone(),
            mac: switch::MacAddr(e.mac),
            ip: e.ip,
            aliases: e.aliases.clone(),
        };
        // A moved endpoint (same ID, new host or address) first leaves its old place.
        self.remove_remote(inner, &id);
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
        inner
            .state
            .remote
            .entry(e.network.clone())
            .or_default()
            .insert(id.clone(), remote);
        let Some(net) = inner.state.networks.get(&e.network).cloned() else {
            inner.pending.insert(id, e);
            return;
        };
        let Some(np) = inner.net_ports.get_mut(&net.id) else {
            return;
        };
        let port = match np.peers.get_mut(&e.vtep) {
            Some((p, n)) => {
                *n += 1;
                *p
            }
            None => match self.add_vtep_port(&net, e.vtep) {
                Ok(p) => {
                    np.peers.insert(e.vtep, (p, 1));
                    p
                }
                Err(err) => {
                    tracing::error!(host = %e.host, "cannot reach host {}: {}", e.vtep, err.message());
                    return;
                }
            },
        };
        if let Err(err) = self.dp.set_static(
            NetworkId(net.switch_id),
            switch::MacAddr(e.mac),
            Some((port, Some(e.ip))),
        ) {
            tracing::warn!("cannot pin {} to host {}: {err}", switch::MacAddr(e.mac), e.host);
        }
        inner
            .remote_eps
            .insert(id, (net.id.clone(), switch::MacAddr(e.mac), e.vtep));
    }

    fn remove_remote(&self, inner: &mut Inner, id: &Id) {
        inner.pending.remove(id);
        for m in inner.state.remote.values_mut() {
            m.remove(id);
        }
        let Some((net_id, mac, vtep)) = inner.remote_eps.remove(id) else {
            return;
        };
        let Some(net) = inner.state.networks.get(&net_id).cloned() else {
            return;
        };
        let _ = self.dp.set_static(NetworkId(net.switch_id), mac, None);
        let Some(np) = inner.net_ports.get_mut(&net_id) else {
            return;
        };
        let last = match np.peers.get_mut(&vtep) {
            Some((_, n)) => {
                *n -= 1;
                *n == 0
            }
            None => false,
        };
        if last {
            if let Some((p, _)) = np.peers.remove(&vtep) {
                if let Err(e) = self.remove_port(p) {
                    tracing::warn!("removing the port of {vtep}: {e}");
                }
            }
        }
    }
}
