//! The host's packet filter for the fabric, as one nftables table generated from the state.
//!
//! switchd owns exactly one table, `inet switchd` (both families: its isolation holds for IPv6
//! too), and replaces it whole on every change in one atomic `nft -f` transaction (`add table;
//! delete table; table { ... }`), so the kernel never holds a half-updated ruleset and no other
//! table is touched (but `ip switchd`, the table of switchd's before, which goes). What it says:
//!
//! - outbound: traffic from a bridge network's subnets (IPv4 and IPv6, as Docker's default
//!   NAT gateway mode does for both) leaving by any other interface is masqueraded to the
//!   host's address (`--internal` networks get no such rule);
//! - published ports: DNAT of traffic arriving for the host's addresses (not for a loopback
//!   binding, which only switchd's userland proxy serves), and masquerade of the hairpin case;
//! - DNS fairness: per-asker rate limit of UDP queries to the embedded DNS, over either family;
//! - isolation (Docker's isolation chains): nothing enters a network's gateway interface from
//!   elsewhere unless it belongs to a connection the network opened or to a published port;
//!   an internal network's traffic never leaves its gateway interface; a network with
//!   inter-container communication off routes nothing from a sandbox back to its own network
//!   but to a published port.

use std::fmt::Write;

use crate::model::State;

/// The table's name (family `inet`).
pub const TABLE: &str = "switchd";
/// UDP DNS queries per second one asker may send to the embedded DNS, and the burst above it.
pub const DNS_RATE: u32 = 400;
/// See [`DNS_RATE`].
pub const DNS_BURST: u32 = 800;

/// The nft script that replaces the table with the ruleset for `state`.
pub fn ruleset(state: &State) -> String {
    let mut nets: Vec<_> = state
        .networks
        .values()
        .filter(|n| n.is_switched() && n.has_addresses())
        .filter_map(|n| Some((n, n.ipam, n.bridge_name.as_deref()?)))
        .collect();
    nets.sort_by_key(|(n, _, _)| n.switch_id);
    let mut forward = String::new();
    let mut post = String::new();
    for (net, ipam, gw) in &nets {
        let gw = quote(gw);
        if net.icc() {
            let _ = writeln!(forward, "        iifname {gw} oifname {gw} accept");
        } else {
            // Inter-container communication off: the switch keeps sandboxes apart at layer 2,
            // and this keeps one from being routed to another through the host, but for a
            // published port.
            let _ = writeln!(forward, "        iifname {gw} oifname {gw} ct status dnat accept");
            let _ = writeln!(forward, "        iifname {gw} oifname {gw} drop");
        }
        if net.internal {
            let _ = writeln!(forward, "        iifname {gw} drop");
        }
        let _ = writeln!(forward, "        oifname {gw} ct state established,related accept");
        let _ = writeln!(forward, "        oifname {gw} ct status dnat accept");
        let _ = writeln!(forward, "        oifname {gw} drop");
        if !net.internal {
            // (An IPv6-only network has no IPv4 subnet.)
            let subnets = ipam
                .iter()
                .map(|i| ("ip", i.subnet.to_string()))
                .chain(net.ipam6.iter().map(|p| ("ip6", p.subnet.to_string())));
            for (family, subnet) in subnets {
                // Outbound NAT, unless the network was made with enable_ip_masquerade=false
                // (its subnets are then routed as they are).
                if net.ip_masquerade() {
                    let _ = writeln!(post, "        {family} saddr {subnet} oifname != {gw} masquerade");
                }
                // Hairpin: a sandbox reaching a published port of its own network through the
                // host must see the reply come back through the host too.
                let _ = writeln!(
                    post,
                    "        oifname {gw} {family} saddr {subnet} ct status dnat masquerade"
                );
            }
        }
    }
    // DNS fairness in the kernel: beyond its share, an asker's UDP queries are dropped before
    // they reach (and fill) the socket buffer that every asker of the network shares.
    let mut input = String::new();
    for (net, _, gw) in nets.iter().filter(|(n, _, _)| !n.builtin) {
        let _ = writeln!(
            input,
            "        iifname {} udp dport 53 add @dns_askers {{ ip saddr limit rate over {DNS_RATE}/second burst {DNS_BURST} packets }} counter drop",
            quote(gw)
        );
        if net.enable_ipv6() {
            let _ = writeln!(
                input,
                "        iifname {} meta nfproto ipv6 udp dport 53 add @dns_askers6 {{ ip6 saddr limit rate over {DNS_RATE}/second burst {DNS_BURST} packets }} counter drop",
                quote(gw)
            );
        }
    }
    let mut pre = String::new();
    let mut sbs: Vec<_> = state.sandboxes.values().filter(|s| !s.ports.is_empty()).collect();
    sbs.sort_by_key(|s| s.name.clone());
    for sb in sbs {
        let (target, target6) = (state.port_target(sb), state.port_target6(sb));
        for p in &sb.ports {
            // A loopback binding is the userland proxy's alone: never reachable from outside.
            if p.host_ip.is_loopback() {
                continue;
            }
            let (proto, (h, c)) = (p.proto.as_str(), (p.host_port, p.container_port));
            let all = p.host_ip == std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
            // IPv4 clients of an IPv6-only sandbox are the userland proxy's.
            if let (std::net::IpAddr::V4(ip), Some(target)) = (p.host_ip, target) {
                let daddr = if all {
                    "fib daddr type local ip daddr != 127.0.0.0/8".to_string()
                } else {
                    format!("ip daddr {ip}")
                };
                let _ = writeln!(pre, "        {daddr} {proto} dport {h} dnat ip to {target}:{c}");
            }
            // IPv6 clients reach a sandbox with an IPv6 address directly; one without is
            // served by the userland proxy.
            let Some(t6) = target6 else { continue };
            let daddr6 = match p.host_ip {
                _ if all || p.host_ip == std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) => {
                    "fib daddr type local ip6 daddr != ::1".to_string()
                }
                std::net::IpAddr::V6(ip) => format!("ip6 daddr {ip}"),
                std::net::IpAddr::V4(_) => continue,
            };
            let _ = writeln!(pre, "        {daddr6} {proto} dport {h} dnat ip6 to [{t6}]:{c}");
        }
    }
    let mut out = teardown();
    let _ = writeln!(out, "table inet {TABLE} {{");
    out.push_str("    set dns_askers {\n        type ipv4_addr; flags dynamic; timeout 10s; size 65536;\n    }\n");
    out.push_str("    set dns_askers6 {\n        type ipv6_addr; flags dynamic; timeout 10s; size 65536;\n    }\n");
    let chains = [
        ("input", "type filter hook input priority filter", input),
        ("forward", "type filter hook forward priority filter", forward),
        ("prerouting", "type nat hook prerouting priority dstnat", pre),
        ("postrouting", "type nat hook postrouting priority srcnat", post),
    ];
    for (name, hook, rules) in chains {
        let _ = write!(
            out,
            "    chain {name} {{\n        {hook}; policy accept;\n{rules}    }}\n"
        );
    }
    out.push_str("}\n");
    out
}

/// The nft script that removes the table, and the `ip` one switchd kept before (idempotent).
pub fn teardown() -> String {
    format!("add table ip {TABLE}\ndelete table ip {TABLE}\nadd table inet {TABLE}\ndelete table inet {TABLE}\n")
}

/// An interface name as an nft string literal. Names are checked to `[a-zA-Z0-9_.-]` on the
/// way in, so quoting is all that is needed.
fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NetworkSpec;
    use crate::Id;
    use std::time::SystemTime;

    #[test]
    fn masquerade_and_isolation_per_network() {
        let id = |n| Id::from_random([n; 32]);
        let mut s = State::with_defaults([id(1), id(2), id(3)], SystemTime::UNIX_EPOCH);
        let spec = |name: &str, subnet: &str, internal| NetworkSpec {
            name: name.into(),
            subnet: Some(subnet.into()),
            internal,
            options: [("com.docker.network.bridge.name".to_string(), format!("br-{name}"))].into(),
            ..Default::default()
        };
        s.create_network(
            spec("a", "10.1.0.0/24", false),
            id(4),
            SystemTime::UNIX_EPOCH,
            &crate::HostFacts::default(),
        )
        .unwrap();
        s.create_network(
            spec("i", "10.2.0.0/24", true),
            id(5),
            SystemTime::UNIX_EPOCH,
            &crate::HostFacts::default(),
        )
        .unwrap();
        let six = |name: &str, subnet: &str, internal| NetworkSpec {
            ipv6: true,
            pools6: vec![crate::model::PoolSpec {
                subnet: Some(subnet.into()),
                ..Default::default()
            }],
            subnet: None,
            ..spec(name, "", internal)
        };
        s.create_network(
            six("d", "fd0d::/64", false),
            id(16),
            SystemTime::UNIX_EPOCH,
            &crate::HostFacts::default(),
        )
        .unwrap();
        s.create_network(
            six("j", "fd0e::/64", true),
            id(17),
            SystemTime::UNIX_EPOCH,
            &crate::HostFacts::default(),
        )
        .unwrap();
        // Docker's enable_ip_masquerade=false: routed as they are, hairpin kept.
        let mut routed = spec("r", "10.3.0.0/24", false);
        routed
            .options
            .insert(crate::model::OPT_IP_MASQUERADE.into(), "false".into());
        s.create_network(routed, id(18), SystemTime::UNIX_EPOCH, &crate::HostFacts::default())
            .unwrap();
        // Docker's enable_icc=false: nothing routed back into the network but published ports.
        let mut apart = spec("p", "10.4.0.0/24", false);
        apart.options.insert(crate::model::OPT_ICC.into(), "false".into());
        s.create_network(apart, id(19), SystemTime::UNIX_EPOCH, &crate::HostFacts::default())
            .unwrap();
        let r = ruleset(&s);
        assert!(
            r.contains("iifname \"br-p\" oifname \"br-p\" ct status dnat accept\n        iifname \"br-p\" oifname \"br-p\" drop"),
            "{r}"
        );
        assert!(!r.contains("iifname \"br-p\" oifname \"br-p\" accept"), "{r}");
        assert!(r.contains("iifname \"br-a\" oifname \"br-a\" accept"), "{r}");
        assert!(
            !r.contains("ip saddr 10.3.0.0/24 oifname != \"br-r\" masquerade"),
            "{r}"
        );
        assert!(
            r.contains("oifname \"br-r\" ip saddr 10.3.0.0/24 ct status dnat masquerade"),
            "{r}"
        );
        assert!(r.contains("ip saddr 10.1.0.0/24 oifname != \"br-a\" masquerade"), "{r}");
        assert!(r.contains("ip6 saddr fd0d::/64 oifname != \"br-d\" masquerade"), "{r}");
        assert!(!r.contains("fd0e::/64"), "internal networks are not masqueraded: {r}");
        assert!(
            r.contains("iifname \"br-d\" meta nfproto ipv6 udp dport 53 add @dns_askers6 { ip6 saddr limit rate over 400/second"),
            "{r}"
        );
        assert!(!r.contains("iifname \"br-a\" meta nfproto ipv6"), "{r}");
        assert!(
            r.starts_with("add table ip switchd\ndelete table ip switchd\nadd table inet switchd\ndelete table inet switchd\ntable inet switchd {\n"),
            "{r}"
        );
        assert!(
            r.contains("ip saddr 172.17.0.0/16 oifname != \"switch0\" masquerade"),
            "{r}"
        );
        assert!(r.contains("ip saddr 10.1.0.0/24 oifname != \"br-a\" masquerade"), "{r}");
        assert!(!r.contains("10.2.0.0/24"), "internal networks are not masqueraded: {r}");
        assert!(r.contains("iifname \"br-i\" drop"), "{r}");
        assert!(!r.contains("iifname \"br-a\" drop"), "{r}");
        assert!(
            r.contains("iifname \"br-a\" udp dport 53 add @dns_askers { ip saddr limit rate over 400/second"),
            "{r}"
        );
        assert!(
            !r.contains("iifname \"switch0\" udp dport 53"),
            "no DNS on the default bridge: {r}"
        );
        for gw in ["switch0", "br-a", "br-i"] {
            assert!(r.contains(&format!("oifname \"{gw}\" drop")), "{gw}: {r}");
            assert!(
                r.contains(&format!("oifname \"{gw}\" ct state established,related accept")),
                "{r}"
            );
        }
        assert_eq!(
            teardown(),
            "add table ip switchd\ndelete table ip switchd\nadd table inet switchd\ndelete table inet switchd\n"
        );
        let sb = crate::model::SandboxSpec {
            name: "web".into(),
            network: "a".into(),
            publish: vec![
                "8080:80".into(),
                "10.9.9.9:53:53/udp".into(),
                "127.0.0.1:9000:90".into(),
            ],
            ..Default::default()
        };
        s.create_sandbox(
            sb,
            id(6),
            id(7),
            std::path::Path::new("/run/netns"),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let r = ruleset(&s);
        assert!(
            r.contains("fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat ip to 10.1.0.2:80"),
            "{r}"
        );
        assert!(
            r.contains("ip daddr 10.9.9.9 udp dport 53 dnat ip to 10.1.0.2:53"),
            "{r}"
        );
        assert!(!r.contains("9000"), "loopback bindings get no DNAT: {r}");
        assert!(
            r.contains("oifname \"br-a\" ip saddr 10.1.0.0/24 ct status dnat masquerade"),
            "{r}"
        );
        assert!(
            !r.contains("dnat ip6"),
            "a sandbox without IPv6 is the proxy's for IPv6: {r}"
        );
    }

    #[test]
    fn ipv6_clients_reach_a_dual_stack_sandbox_directly() {
        let id = |n| Id::from_random([n; 32]);
        let mut s = State::with_defaults([id(1), id(2), id(3)], SystemTime::UNIX_EPOCH);
        let net = NetworkSpec {
            name: "d".into(),
            subnet: Some("10.1.0.0/24".into()),
            ipv6: true,
            pools6: vec![crate::model::PoolSpec {
                subnet: Some("fd0d::/64".into()),
                ..Default::default()
            }],
            options: [("com.docker.network.bridge.name".to_string(), "br-d".to_string())].into(),
            ..Default::default()
        };
        s.create_network(net, id(4), SystemTime::UNIX_EPOCH, &crate::HostFacts::default())
            .unwrap();
        let sb = crate::model::SandboxSpec {
            name: "web".into(),
            network: "d".into(),
            publish: [
                "8080:80",
                "[::1]:9090:90",
                "[fd99::1]:7070:70/udp",
                "10.9.9.9:6060:60",
                "[::]:5050:50",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        };
        s.create_sandbox(
            sb,
            id(6),
            id(7),
            std::path::Path::new("/run/netns"),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let r = ruleset(&s);
        for rule in [
            "fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat ip to 10.1.0.2:80",
            "fib daddr type local ip6 daddr != ::1 tcp dport 8080 dnat ip6 to [fd0d::2]:80",
            "ip6 daddr fd99::1 udp dport 7070 dnat ip6 to [fd0d::2]:70",
            "ip daddr 10.9.9.9 tcp dport 6060 dnat ip to 10.1.0.2:60",
            "fib daddr type local ip6 daddr != ::1 tcp dport 5050 dnat ip6 to [fd0d::2]:50",
            "oifname \"br-d\" ip6 saddr fd0d::/64 ct status dnat masquerade",
        ] {
            assert!(r.contains(rule), "{rule} in {r}");
        }
        assert!(!r.contains("9090"), "loopback bindings get no DNAT: {r}");
        assert!(!r.contains("dport 5050 dnat ip to"), "[::] is IPv6 alone: {r}");
        assert!(
            !r.contains("dport 6060 dnat ip6"),
            "an IPv4 host address is IPv4 alone: {r}"
        );
    }
}
