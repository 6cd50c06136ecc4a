//! The Prometheus text exposition (format 0.0.4) of [`StatsResource`], served by
//! `switchd --metrics ADDR` at `/metrics`.

use std::fmt::Write as _;

use crate::api::StatsResource;

/// One metric family being written: its HELP and TYPE lines once, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn start<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A counter family: its name, its help, and how an item's value is read.
type Counter<T> = (&'static str, &'static str, fn(&T) -> u64);
/// A family's name, kind, help and how to read its value from one item.
type Sampled<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// Counter families over `items`: one family per (name, help, value) and in each one sample
/// per item, with the item's labels.
fn counters<T>(
    out: &mut String,
    items: &[T],
    families: &[Counter<T>],
    labels: impl Fn(&T) -> Vec<(&'static str, String)>,
) {
    for (name, help, get) in families {
        let mut f = Family::start(out, name, "counter", help);
        for item in items {
            let l = labels(item);
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.sample(name, &l, get(item));
        }
    }
}

/// Renders every counter and gauge of `s`.
pub fn render(s: &StatsResource) -> String {
    let mut out = String::new();
    let o = &mut out;
    Family::start(
        o,
        "switchd_build_info",
        "gauge",
        "The release and API version; always 1.",
    )
    .sample(
        "switchd_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("api_version", crate::api::API_VERSION),
        ],
        1,
    );
    Family::start(o, "switchd_networks", "gauge", "Networks known to this host.").sample(
        "switchd_networks",
        &[],
        s.networks,
    );
    Family::start(o, "switchd_sandboxes", "gauge", "Sandboxes on this host.").sample(
        "switchd_sandboxes",
        &[],
        s.sandboxes,
    );
    ports(o, s);
    if let Some(v) = &s.vxlan {
        vxlan(o, v);
    }
    dataplane(o, s);
    descriptors(o, &s.descriptors);
    if let Some(c) = &s.cluster {
        cluster(o, c);
    }
    dns(o, s);
    out
}

/// Per-port counters, drops by reason, and MAC table sizes.
fn ports(o: &mut String, s: &StatsResource) {
    let port_counters: [Counter<crate::api::PortResource>; 5] = [
        (
            "switchd_port_rx_packets_total",
            "Frames received on a switch port.",
            |p| p.rx_packets,
        ),
        ("switchd_port_rx_bytes_total", "Bytes received on a switch port.", |p| {
            p.rx_bytes
        }),
        ("switchd_port_tx_packets_total", "Frames sent on a switch port.", |p| {
            p.tx_packets
        }),
        ("switchd_port_tx_bytes_total", "Bytes sent on a switch port.", |p| {
            p.tx_bytes
        }),
        (
            "switchd_port_learn_refused_total",
            "Source addresses not learned because of the port's limit.",
            |p| p.learn_refused,
        ),
    ];
    counters(o, &s.ports, &port_counters, |p| {
        vec![
            ("port", p.port.to_string()),
            ("interface", p.interface.clone()),
            ("network", p.network.clone()),
            ("kind", p.kind.clone()),
        ]
    });
    let name = "switchd_port_drops_total";
    let mut f = Family::start(o, name, "counter", "Frames dropped on a switch port, by reason.");
    for p in &s.ports {
        let port = p.port.to_string();
        for (reason, n) in &p.drops {
            let labels = [
                ("port", port.as_str()),
                ("interface", &p.interface),
                ("network", &p.network),
                ("reason", reason),
            ];
            f.sample(name, &labels, *n);
        }
    }
    let name = "switchd_mac_table_entries";
    let mut f = Family::start(o, name, "gauge", "MAC table entries, by network and type.");
    for m in &s.mac_table {
        f.sample(name, &[("network", &m.network), ("type", "static")], m.r#static);
        f.sample(name, &[("network", &m.network), ("type", "learned")], m.learned);
    }
}

/// The VXLAN port's counters.
fn vxlan(o: &mut String, v: &crate::api::VxlanResource) {
    let counters = [
        (
            "switchd_vxlan_rx_packets_total",
            "VXLAN datagrams received.",
            v.rx_packets,
        ),
        (
            "switchd_vxlan_rx_malformed_total",
            "Datagrams on the VXLAN port that were not VXLAN.",
            v.rx_malformed,
        ),
        (
            "switchd_vxlan_rx_unknown_vni_total",
            "VXLAN frames of VNIs no network here has.",
            v.rx_unknown_vni,
        ),
        (
            "switchd_vxlan_rx_unknown_vtep_total",
            "VXLAN frames from addresses that are no peer of their network.",
            v.rx_unknown_vtep,
        ),
        ("switchd_vxlan_tx_packets_total", "VXLAN datagrams sent.", v.tx_packets),
        ("switchd_vxlan_tx_errors_total", "VXLAN sends that failed.", v.tx_errors),
        (
            "switchd_vxlan_rx_unsealed_total",
            "VXLAN frames of encrypted networks that came in clear, refused.",
            v.rx_unsealed,
        ),
        (
            "switchd_esp_rx_packets_total",
            "ESP datagrams received.",
            v.esp.rx_packets,
        ),
        (
            "switchd_esp_tx_packets_total",
            "ESP datagrams sealed and sent.",
            v.esp.tx_packets,
        ),
        (
            "switchd_esp_tx_no_key_total",
            "Frames of encrypted networks dropped for a peer with no security association yet.",
            v.esp.tx_no_key,
        ),
        ("switchd_esp_tx_errors_total", "ESP sends that failed.", v.esp.tx_errors),
        (
            "switchd_esp_sas_installed_total",
            "Security associations installed.",
            v.esp.sas_installed,
        ),
        (
            "switchd_esp_key_exchanges_total",
            "Key exchanges completed.",
            v.esp.key_exchanges,
        ),
        (
            "switchd_esp_key_exchanges_failed_total",
            "Key exchanges that failed.",
            v.esp.key_exchanges_failed,
        ),
    ];
    for (name, help, n) in counters {
        Family::start(o, name, "counter", help).sample(name, &[], n);
    }
    let name = "switchd_esp_rx_refused_total";
    let mut f = Family::start(o, name, "counter", "ESP datagrams refused, by reason.");
    let e = &v.esp;
    for (reason, n) in [
        ("malformed", e.rx_malformed),
        ("unknown_spi", e.rx_unknown_spi),
        ("wrong_peer", e.rx_wrong_peer),
        ("forged", e.rx_forged),
        ("replayed", e.rx_replayed),
    ] {
        f.sample(name, &[("reason", reason)], n);
    }
}

/// How the dataplane writes and polls.
fn dataplane(o: &mut String, s: &StatsResource) {
    let (w, p) = (&s.port_writes, &s.polling);
    let dataplane = [
        (
            "switchd_port_writes_batched",
            "gauge",
            "1 when a burst's port writes go in one io_uring submission.",
            u64::from(w.batched),
        ),
        (
            "switchd_port_write_frames_total",
            "counter",
            "Frames written to ports in bursts.",
            w.frames,
        ),
        (
            "switchd_port_write_bursts_total",
            "counter",
            "Bursts of port writes.",
            w.bursts,
        ),
        (
            "switchd_poll_rounds_total",
            "counter",
            "Rounds with traffic after which the dataplane kept polling.",
            p.rounds,
        ),
    ];
    for (name, kind, help, n) in dataplane {
        Family::start(o, name, kind, help).sample(name, &[], n);
    }
    let name = "switchd_poll_after_traffic_seconds";
    Family::start(
        o,
        name,
        "gauge",
        "How long the dataplane polls after traffic (0: never).",
    )
    .sample(name, &[], p.micros as f64 / 1e6);
}

/// Descriptors open, the limit, and what is held for others.
fn descriptors(o: &mut String, d: &crate::api::Descriptors) {
    let descriptors = [
        (
            "switchd_open_descriptors",
            "gauge",
            "Descriptors switchd has open.",
            d.open,
        ),
        (
            "switchd_descriptor_limit",
            "gauge",
            "switchd's descriptor limit (RLIMIT_NOFILE).",
            d.limit,
        ),
        (
            "switchd_descriptors_exhausted_total",
            "counter",
            "Times switchd ran out of descriptors and backed off.",
            d.exhausted,
        ),
    ];
    for (name, kind, help, n) in descriptors {
        Family::start(o, name, kind, help).sample(name, &[], n);
    }
    let caps: [Sampled<crate::api::CapStats>; 3] = [
        (
            "switchd_held_for_others",
            "gauge",
            "Descriptors held for others now, by consumer.",
            |c| c.used,
        ),
        (
            "switchd_held_for_others_max",
            "gauge",
            "The cap on descriptors held for others, by consumer.",
            |c| c.max,
        ),
        (
            "switchd_held_for_others_refused_total",
            "counter",
            "Requests for a descriptor refused at the cap, by consumer.",
            |c| c.refused,
        ),
    ];
    for (name, kind, help, get) in caps {
        let mut f = Family::start(o, name, kind, help);
        for c in &d.caps {
            f.sample(name, &[("consumer", c.name.as_str())], get(c));
        }
    }
}

/// Cluster members, gossip and anti-entropy.
fn cluster(o: &mut String, c: &crate::api::ClusterStats) {
    let name = "switchd_cluster_peers";
    let mut f = Family::start(o, name, "gauge", "Cluster members by state, this host included.");
    for state in ["alive", "suspect", "down"] {
        f.sample(name, &[("state", state)], c.peers.get(state).copied().unwrap_or(0));
    }
    let name = "switchd_gossip_messages_total";
    let mut f = Family::start(o, name, "counter", "Gossip datagrams, by direction and outcome.");
    f.sample(
        name,
        &[("direction", "received"), ("outcome", "accepted")],
        c.gossip_received.saturating_sub(c.gossip_refused),
    );
    f.sample(
        name,
        &[("direction", "received"), ("outcome", "refused")],
        c.gossip_refused,
    );
    f.sample(
        name,
        &[("direction", "received"), ("outcome", "unauthenticated")],
        c.gossip_unauthenticated,
    );
    f.sample(name, &[("direction", "received"), ("outcome", "stale")], c.gossip_stale);
    f.sample(
        name,
        &[("direction", "received"), ("outcome", "revoked")],
        c.gossip_revoked,
    );
    f.sample(
        name,
        &[("direction", "received"), ("outcome", "forged")],
        c.gossip_forged,
    );
    f.sample(
        name,
        &[("direction", "received"), ("outcome", "unverified")],
        c.gossip_unverified,
    );
    f.sample(name, &[("direction", "sent"), ("outcome", "sent")], c.gossip_sent);
    let name = "switchd_records_refused_total";
    let mut f = Family::start(o, name, "counter", "Cluster records refused, by reason.");
    f.sample(name, &[("reason", "ahead")], c.records_ahead);
    f.sample(name, &[("reason", "forged")], c.records_forged);
    f.sample(name, &[("reason", "unknown_origin")], c.records_unknown_origin);
    let name = "switchd_members_refused_total";
    let mut f = Family::start(
        o,
        name,
        "counter",
        "New cluster members refused: the member table was full.",
    );
    f.sample(name, &[], c.members_refused);
    let name = "switchd_sync_exchanges_total";
    let mut f = Family::start(o, name, "counter", "Anti-entropy exchanges, by result.");
    f.sample(name, &[("result", "ok")], c.sync_ok);
    f.sample(name, &[("result", "failed")], c.sync_failed);
}

/// The embedded DNS's counters per network.
fn dns(o: &mut String, s: &StatsResource) {
    let dns: [Counter<crate::api::DnsStats>; 6] = [
        (
            "switchd_dns_queries_total",
            "DNS queries received by the embedded DNS.",
            |d| d.queries,
        ),
        (
            "switchd_dns_answered_total",
            "DNS queries answered from the fabric's names.",
            |d| d.answered,
        ),
        (
            "switchd_dns_forwarded_total",
            "DNS queries sent on to the upstream resolvers.",
            |d| d.forwarded,
        ),
        (
            "switchd_dns_failures_total",
            "DNS queries answered SERVFAIL because no upstream answered.",
            |d| d.failures,
        ),
        (
            "switchd_dns_limited_total",
            "DNS queries dropped by the per-asker limits.",
            |d| d.limited,
        ),
        (
            "switchd_dns_refused_total",
            "DNS queries refused: the asker was no endpoint of the network.",
            |d| d.refused,
        ),
    ];
    counters(o, &s.dns, &dns, |d| vec![("network", d.network.clone())]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CapStats, ClusterStats, Descriptors, DnsStats, MacTableCount, Polling, PortResource, PortWrites};

    fn stats() -> StatsResource {
        StatsResource {
            networks: 4,
            sandboxes: 2,
            ports: vec![PortResource {
                port: 3,
                network: "my_net".into(),
                kind: "tap".into(),
                interface: "web/eth0".into(),
                rx_packets: 10,
                rx_bytes: 1000,
                tx_packets: 9,
                tx_bytes: 900,
                learn_refused: 0,
                drops: [("hairpin".to_string(), 2)].into(),
            }],
            mac_table: vec![MacTableCount {
                network: "my_net".into(),
                r#static: 2,
                learned: 1,
            }],
            vxlan: None,
            cluster: Some(ClusterStats {
                peers: [("alive".to_string(), 3)].into(),
                gossip_received: 7,
                gossip_refused: 1,
                ..Default::default()
            }),
            dns: vec![DnsStats {
                network: "we\"ird".into(),
                queries: 5,
                ..Default::default()
            }],
            port_writes: PortWrites {
                batched: true,
                frames: 640,
                bursts: 10,
            },
            polling: Polling { micros: 50, rounds: 7 },
            descriptors: Descriptors {
                open: 40,
                limit: 1024,
                exhausted: 0,
                caps: vec![CapStats {
                    name: "proxy_udp_flows".into(),
                    used: 192,
                    max: 192,
                    refused: 1300,
                }],
            },
        }
    }

    #[test]
    fn every_sample_belongs_to_a_declared_family_and_parses() {
        let text = render(&stats());
        let mut declared = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert_eq!(
                    kind == "counter",
                    name.ends_with("_total"),
                    "{line}: counters, and only they, end in _total"
                );
                assert!(declared.insert(name.to_string()), "{name} declared twice");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let name_end = line.find(['{', ' ']).unwrap();
            assert!(declared.contains(&line[..name_end]), "undeclared: {line}");
            let value = line.rsplit_once(' ').unwrap().1;
            value.parse::<f64>().unwrap_or_else(|_| panic!("value of {line}"));
            // Prometheus' names: counters end in _total, and units are base units.
            let name = &line[..name_end];
            assert!(
                !["_microseconds", "_milliseconds", "_kilobytes"]
                    .iter()
                    .any(|u| name.ends_with(u)),
                "{name}: base units only"
            );
        }
        assert!(text.contains(
            "switchd_port_drops_total{port=\"3\",interface=\"web/eth0\",network=\"my_net\",reason=\"hairpin\"} 2\n"
        ));
        assert!(text.contains("switchd_mac_table_entries{network=\"my_net\",type=\"learned\"} 1\n"));
        assert!(text.contains("switchd_cluster_peers{state=\"suspect\"} 0\n"));
        assert!(text.contains("switchd_gossip_messages_total{direction=\"received\",outcome=\"accepted\"} 6\n"));
        assert!(text.contains("switchd_dns_queries_total{network=\"we\\\"ird\"} 5\n"));
        assert!(!text.contains("switchd_vxlan_"), "no VTEP, no VXLAN samples");
        assert!(text.contains("switchd_port_writes_batched 1\n"));
        assert!(text.contains("switchd_port_write_frames_total 640\n"));
        assert!(text.contains("switchd_poll_after_traffic_seconds 0.00005\n"));
        let release = env!("CARGO_PKG_VERSION");
        assert!(text.contains(&format!(
            "switchd_build_info{{version=\"{release}\",api_version=\"1.0\"}} 1\n"
        )));
        assert!(text.contains("switchd_poll_rounds_total 7\n"));
        assert!(text.contains("switchd_descriptor_limit 1024\n"));
        assert!(text.contains("switchd_held_for_others_refused_total{consumer=\"proxy_udp_flows\"} 1300\n"));
    }
}
