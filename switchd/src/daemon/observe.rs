//! What the daemon shows of itself: ports and their counters, the MAC table, the VTEP, the cluster.

use super::*;

impl Daemon {
    /// Where the VTEP listens, and its counters.
    pub fn vxlan(&self) -> Result<VxlanResource, OpError> {
        let (at, s) = self.dp.vxlan().map_err(io_err("dataplane"))?;
        let e = self.dp.esp().map_err(io_err("dataplane"))?;
        let (key_exchanges, key_exchanges_failed) = self.cluster.as_ref().map_or((0, 0), |c| c.key_exchanges());
        Ok(VxlanResource {
            port: self.vxlan_port,
            bound: at.is_some(),
            address: at.map(|a| a.to_string()),
            rx_packets: s.rx_packets,
            rx_malformed: s.rx_malformed,
            rx_unknown_vni: s.rx_unknown_vni,
            rx_unknown_vtep: s.rx_unknown_vtep,
            tx_packets: s.tx_packets,
            tx_errors: s.tx_errors,
            rx_unsealed: s.rx_unsealed,
            esp: control_plane::api::EspResource {
                port: self.esp_port,
                address: e.bound.map(|a| a.to_string()),
                sas_in: e.sas_in as u64,
                sas_out: e.sas_out as u64,
                sas_installed: e.stats.sas_installed,
                key_exchanges,
                key_exchanges_failed,
                rx_packets: e.stats.rx_packets,
                rx_malformed: e.stats.rx_malformed,
                rx_unknown_spi: e.stats.rx_unknown_spi,
                rx_wrong_peer: e.stats.rx_wrong_peer,
                rx_forged: e.stats.rx_forged,
                rx_replayed: e.stats.rx_replayed,
                tx_packets: e.stats.tx_packets,
                tx_no_key: e.stats.tx_no_key,
                tx_errors: e.stats.tx_errors,
            },
        })
    }

    /// `cluster peers`.
    pub fn peers(&self) -> Result<Vec<control_plane::api::PeerResource>, OpError> {
        match &self.cluster {
            Some(c) => Ok(c.peers()),
            None => Err(OpError::Model(ModelError::Conflict(
                "this switchd is not in a cluster: start it with --cluster-dir and --advertise".into(),
            ))),
        }
    }

    /// Gossip datagrams dropped because they did not open under the cluster's key, and
    /// anti-entropy exchanges completed and failed.
    pub fn cluster_counters(&self) -> Option<(u64, u64, u64)> {
        self.cluster.as_ref().map(|c| {
            let (ok, failed) = c.sync_counts();
            (c.dropped_unauthenticated(), ok, failed)
        })
    }

    /// Port counters.
    pub fn ports(&self) -> Result<Vec<PortResource>, OpError> {
        let list = self.dp.ports().map_err(io_err("dataplane"))?;
        let inner = self.inner.lock().expect("lock poisoned");
        let names = network_names(&inner.state);
        Ok(list
            .into_iter()
            .map(|p| PortResource {
                port: p.port.0,
                network: names.get(&p.network.0).copied().unwrap_or("?").to_string(),
                kind: match p.kind {
                    PortKind::Tap => "tap".into(),
                    PortKind::Veth => "veth".into(),
                    PortKind::Vtep => "vtep".into(),
                    PortKind::Gateway => "gateway".into(),
                    PortKind::Uplink => "uplink".into(),
                },
                interface: p.label,
                rx_packets: p.counters.rx_packets,
                rx_bytes: p.counters.rx_bytes,
                tx_packets: p.counters.tx_packets,
                tx_bytes: p.counters.tx_bytes,
                learn_refused: p.counters.learn_refused,
                drops: p
                    .counters
                    .drops_by_reason()
                    .map(|(r, n)| (r.as_str().to_string(), n))
                    .collect(),
            })
            .collect())
    }

    /// Starts mirroring a port (a number, an interface, or a sandbox with one interface):
    /// its frames, its label, and the count of frames dropped for a slow reader.
    pub fn capture(&self, key: &str) -> Result<(crate::dataplane::CaptureRx, String), OpError> {
        let ports = self.dp.ports().map_err(io_err("dataplane"))?;
        let sandbox_ports: Vec<PortId> = {
            let inner = self.inner.lock().expect("lock poisoned");
            match inner.state.sandbox(key) {
                Ok(sb) => inner
                    .state
                    .endpoints_of_sandbox(&sb.id)
                    .iter()
                    .filter_map(|e| inner.endpoint_ports.get(&e.id).copied())
                    .collect(),
                Err(_) => Vec::new(),
            }
        };
        let found = find_port(&ports, key, &sandbox_ports, "")?;
        let rx = self.dp.capture(found.port).map_err(io_err("dataplane"))?;
        tracing::info!(port = %found.port, interface = %found.label, "capture started");
        Ok((rx, found.label.clone()))
    }

    /// Everything counted: ports, MAC table, VTEP, cluster, DNS.
    pub fn stats(&self) -> Result<StatsResource, OpError> {
        let ports = self.ports()?;
        let fdb = self.dp.fdb().map_err(io_err("dataplane"))?;
        let vxlan = self.vxlan()?;
        let io = self.dp.io().map_err(io_err("dataplane"))?;
        let dns = self.dns.counters();
        let inner = self.inner.lock().expect("lock poisoned");
        let state = &inner.state;
        let names = network_names(state);
        let mut mac: BTreeMap<&str, MacTableCount> = BTreeMap::new();
        for e in &fdb {
            let net = names.get(&e.network.0).copied().unwrap_or("?");
            let m = mac.entry(net).or_insert_with(|| MacTableCount {
                network: net.to_string(),
                ..Default::default()
            });
            if e.is_static {
                m.r#static += 1;
            } else {
                m.learned += 1;
            }
        }
        let cluster = self.cluster.as_ref().map(|c| {
            let mut peers = BTreeMap::new();
            for p in c.peers() {
                *peers.entry(p.state).or_insert(0) += 1;
            }
            let (gossip_received, gossip_sent, gossip_refused) = c.gossip_counts();
            let (sync_ok, sync_failed) = c.sync_counts();
            let (records_forged, records_unknown_origin) = c.records_unsigned();
            ClusterStats {
                peers,
                gossip_received,
                gossip_sent,
                gossip_refused,
                gossip_unauthenticated: c.dropped_unauthenticated(),
                records_ahead: c.records_ahead(),
                records_forged,
                records_unknown_origin,
                gossip_stale: c.gossip_stale(),
                gossip_revoked: c.gossip_revoked(),
                gossip_forged: c.gossip_forged(),
                gossip_unverified: c.gossip_unverified(),
                members_refused: c.members_refused(),
                sync_ok,
                sync_failed,
            }
        });
        let mut dns: Vec<DnsStats> = dns
            .into_iter()
            .filter_map(|(id, c)| {
                use std::sync::atomic::Ordering::Relaxed;
                Some(DnsStats {
                    network: state.networks.get(&id)?.name.clone(),
                    queries: c.queries.load(Relaxed),
                    answered: c.answered.load(Relaxed),
                    forwarded: c.forwarded.load(Relaxed),
                    failures: c.failures.load(Relaxed),
                    limited: c.limited.load(Relaxed),
                    refused: c.refused.load(Relaxed),
                })
            })
            .collect();
        dns.sort_by(|a, b| a.network.cmp(&b.network));
        Ok(StatsResource {
            networks: state.networks.len() as u64,
            sandboxes: state.sandboxes.len() as u64,
            ports,
            mac_table: mac.into_values().collect(),
            vxlan: Some(vxlan),
            cluster,
            dns,
            port_writes: PortWrites {
                batched: io.batched,
                frames: io.frames,
                bursts: io.bursts,
            },
            polling: Polling {
                micros: io.poll.as_micros() as u64,
                rounds: io.polled,
            },
            descriptors: Descriptors {
                open: crate::kernel::limits::open_descriptors(),
                limit: self.limits.nofile,
                exhausted: self.limits.exhausted(),
                caps: self
                    .limits
                    .caps()
                    .iter()
                    .map(|c| CapStats {
                        name: c.name().to_string(),
                        used: c.used() as u64,
                        max: c.max() as u64,
                        refused: c.refused(),
                    })
                    .collect(),
            },
        })
    }

    /// The MAC table, with network names, and the host behind each entry on a VXLAN peer's
    /// port (the remote endpoint pinned there, else the cluster member at the peer's address).
    pub fn fdb(&self) -> Result<Vec<FdbResource>, OpError> {
        let entries = self.dp.fdb().map_err(io_err("dataplane"))?;
        let ports: HashMap<u32, (String, PortKind)> = self
            .dp
            .ports()
            .map_err(io_err("dataplane"))?
            .into_iter()
            .map(|p| (p.port.0, (p.label, p.kind)))
            .collect();
        let members: HashMap<std::net::IpAddr, String> = self
            .cluster
            .as_ref()
            .map(|c| c.peers())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.address.parse::<std::net::SocketAddr>().ok()?.ip(), p.name)))
            .collect();
        let inner = self.inner.lock().expect("lock poisoned");
        let names = network_names(&inner.state);
        let pinned: HashMap<(u32, switch::MacAddr), &str> = inner
            .state
            .remote
            .iter()
            .filter_map(|(net, eps)| Some((inner.state.networks.get(net)?.switch_id, eps)))
            .flat_map(|(sid, eps)| eps.values().map(move |e| ((sid, switch::MacAddr(e.mac)), &*e.host)))
            .collect();
        let now = std::time::Instant::now();
        Ok(entries
            .into_iter()
            .map(|e| {
                let (interface, kind) = ports.get(&e.port.0).cloned().unwrap_or((String::new(), PortKind::Tap));
                let remote_host = match kind {
                    PortKind::Vtep => pinned
                        .get(&(e.network.0, e.mac))
                        .map(|h| h.to_string())
                        .or_else(|| {
                            let ip = interface
                                .strip_prefix("vtep:")?
                                .parse::<std::net::SocketAddr>()
                                .ok()?
                                .ip();
                            members.get(&ip).cloned()
                        })
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                FdbResource {
                    network: names.get(&e.network.0).copied().unwrap_or("?").to_string(),
                    mac: e.mac.to_string(),
                    port: e.port.0,
                    interface,
                    age_seconds: now.saturating_duration_since(e.last_seen).as_secs(),
                    kind: if e.is_static { "static".into() } else { "learned".into() },
                    remote_host,
                }
            })
            .collect())
    }
}

impl Daemon {
    /// Traces a synthetic frame through the switch from one of a network's ports.
    pub fn trace(&self, req: TraceRequest) -> Result<TraceResource, OpError> {
        let (net_name, switch_id, endpoint_port, port_ips) = {
            let inner = self.inner.lock().expect("lock poisoned");
            let net = inner.state.network(&req.network)?;
            if !net.is_switched() {
                return Err(OpError::Model(ModelError::Invalid(format!(
                    "network {} has no switch ports to trace (its frames are the kernel's)",
                    net.name
                ))));
            }
            // A sandbox name stands for its port on this network.
            let endpoint_port: Vec<PortId> = inner
                .state
                .sandbox(&req.in_port)
                .ok()
                .and_then(|sb| {
                    let ep = inner.state.endpoints_of_network(&net.id).find(|e| e.sandbox == sb.id)?;
                    inner.endpoint_ports.get(&ep.id).copied()
                })
                .into_iter()
                .collect();
            // The addresses behind each endpoint's port, for frames traced from it.
            let port_ips: Vec<(PortId, Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>)> = inner
                .state
                .endpoints_of_network(&net.id)
                .filter_map(|e| Some((*inner.endpoint_ports.get(&e.id)?, e.ip, e.ip6)))
                .collect();
            (net.name.clone(), net.switch_id, endpoint_port, port_ips)
        };
        let ports = self.dp.ports().map_err(io_err("dataplane"))?;
        let found = find_port(&ports, &req.in_port, &endpoint_port, &format!(" on network {net_name}"))?;
        if found.network.0 != switch_id {
            return Err(OpError::Model(ModelError::Invalid(format!(
                "port {} ({}) is not on network {net_name}",
                found.port, found.label
            ))));
        }
        let own_mac = self
            .dp
            .fdb()
            .map_err(io_err("dataplane"))?
            .into_iter()
            .find(|e| e.is_static && e.port == found.port)
            .map(|e| e.mac);
        let (ip, ip6) = port_ips
            .iter()
            .find(|(p, _, _)| *p == found.port)
            .map_or((None, None), |(_, ip, ip6)| (*ip, *ip6));
        let own = control_plane::framespec::PortAddresses { mac: own_mac, ip, ip6 };
        let frame = control_plane::framespec::build(&req.frame, own)
            .map_err(|m| OpError::Model(ModelError::Invalid(m.to_string())))?;
        let out = self.dp.trace(found.port, frame.clone()).map_err(io_err("dataplane"))?;
        Ok(TraceResource {
            network: net_name,
            in_port: PortRef {
                port: found.port.0,
                interface: found.label.clone(),
            },
            frame: control_plane::framespec::to_hex(&frame),
            stages: out
                .stages
                .into_iter()
                .map(|s| TraceStageResource {
                    stage: s.stage.to_string(),
                    decision: s.decision,
                })
                .collect(),
            verdict: out.verdict,
            out_ports: out
                .out_ports
                .into_iter()
                .map(|p| PortRef {
                    port: p.0,
                    interface: label_of(&ports, p),
                })
                .collect(),
        })
    }
}

/// The port `key` names: a port number, an interface, or a sandbox with one of
/// `sandbox_ports`; `whose` ends the not-found message (` on network NAME`, or nothing).
fn find_port<'a>(
    ports: &'a [crate::dataplane::PortInfo],
    key: &str,
    sandbox_ports: &[PortId],
    whose: &str,
) -> Result<&'a crate::dataplane::PortInfo, OpError> {
    let by_key = key
        .parse::<u32>()
        .ok()
        .and_then(|n| ports.iter().find(|p| p.port.0 == n))
        .or_else(|| ports.iter().find(|p| p.label == key));
    match (by_key, sandbox_ports) {
        (Some(p), _) => Ok(p),
        (None, [one]) => ports
            .iter()
            .find(|p| p.port == *one)
            .ok_or_else(|| OpError::Model(ModelError::NotFound(format!("sandbox {key}'s port is gone")))),
        (None, []) => Err(OpError::Model(ModelError::NotFound(format!(
            "no port {key:?}{whose}: give a port number or interface from `switchctl ports`, or a sandbox's name"
        )))),
        (None, many) => {
            let names: Vec<String> = many.iter().map(|p| label_of(ports, *p)).collect();
            Err(OpError::Model(ModelError::Invalid(format!(
                "sandbox {key} has {} interfaces: name one of {}",
                many.len(),
                names.join(", ")
            ))))
        }
    }
}

fn label_of(ports: &[crate::dataplane::PortInfo], p: PortId) -> String {
    ports
        .iter()
        .find(|i| i.port == p)
        .map_or_else(|| p.to_string(), |i| i.label.clone())
}

/// Network names by switch network ID, for listings of switch objects.
fn network_names(state: &State) -> HashMap<u32, &str> {
    state
        .networks
        .values()
        .map(|n| (n.switch_id, n.name.as_str()))
        .collect()
}
