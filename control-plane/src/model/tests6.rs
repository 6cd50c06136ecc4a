//! IPv6 in the model: dual-stack networks, their subnets and the endpoints' addresses.

use std::path::Path;

use super::*;

fn id(n: u8) -> Id {
    Id::from_random([n; 32])
}

fn fresh() -> State {
    State::with_defaults([id(1), id(2), id(3)], SystemTime::UNIX_EPOCH)
}

fn v6(name: &str, pools: &[(&str, Option<&str>, Option<&str>)]) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        ipv6: true,
        pools6: pools
            .iter()
            .map(|(s, g, r)| PoolSpec {
                subnet: Some(s.to_string()),
                gateway: g.map(Into::into),
                ip_range: r.map(Into::into),
                ..PoolSpec::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn create(s: &mut State, n: u8, spec: NetworkSpec) -> Result<Id, ModelError> {
    s.create_network(spec, id(n), SystemTime::UNIX_EPOCH, &HostFacts::default())
}

fn sandbox(s: &mut State, n: u8, name: &str, network: &str, ip6: Option<&str>) -> Result<Id, ModelError> {
    let spec = SandboxSpec {
        name: name.into(),
        network: network.into(),
        ip6: ip6.map(Into::into),
        ..Default::default()
    };
    s.create_sandbox(
        spec,
        id(n),
        id(n + 100),
        Path::new("/run/netns"),
        SystemTime::UNIX_EPOCH,
    )
}

fn ip6_of(s: &State, sandbox: &str) -> Option<Ipv6Addr> {
    let sid = &s.sandbox(sandbox).unwrap().id;
    s.endpoints.values().find(|e| &e.sandbox == sid).unwrap().ip6
}

#[test]
fn ipv6_without_a_subnet_takes_a_64_of_the_host_s_unique_local_prefix() {
    let mut s = fresh();
    let ula = s.ula_prefix();
    assert_eq!(
        ula.to_string(),
        "fd01:101:101::/48",
        "fd, then five bytes of the bridge's ID"
    );
    create(&mut s, 10, v6("a", &[])).unwrap();
    create(&mut s, 11, v6("b", &[])).unwrap();
    let a = s.network("a").unwrap();
    assert!(a.enable_ipv6());
    assert!(a.ipam.is_some(), "a dual-stack network keeps its IPv4 subnet");
    assert_eq!(a.ipam6[0].subnet.to_string(), "fd01:101:101::/64");
    assert_eq!(a.ipam6[0].gateway.to_string(), "fd01:101:101::1");
    assert_eq!(
        s.network("b").unwrap().ipam6[0].subnet.to_string(),
        "fd01:101:101:1::/64"
    );
    assert!(!s.network("bridge").unwrap().enable_ipv6());
}

#[test]
fn endpoints_get_the_lowest_free_address_of_the_first_subnet_with_room() {
    let mut s = fresh();
    create(
        &mut s,
        10,
        v6(
            "n",
            &[
                ("2001:db8:1::/126", None, None),
                ("2001:db8:2::/64", Some("2001:db8:2::fe"), Some("2001:db8:2::100/120")),
            ],
        ),
    )
    .unwrap();
    sandbox(&mut s, 20, "a", "n", None).unwrap();
    assert_eq!(ip6_of(&s, "a"), Some("2001:db8:1::2".parse().unwrap()));
    sandbox(&mut s, 21, "b", "n", None).unwrap();
    assert_eq!(ip6_of(&s, "b"), Some("2001:db8:1::3".parse().unwrap()));
    // The /126 holds the anycast address, the gateway and two endpoints: the next comes from
    // the second subnet's range.
    sandbox(&mut s, 22, "c", "n", None).unwrap();
    assert_eq!(ip6_of(&s, "c"), Some("2001:db8:2::100".parse().unwrap()));
    sandbox(&mut s, 23, "d", "n", Some("2001:db8:2::7")).unwrap();
    assert_eq!(ip6_of(&s, "d"), Some("2001:db8:2::7".parse().unwrap()));
    // Each endpoint also keeps its IPv4 address.
    let sid = s.sandbox("d").unwrap().id.clone();
    assert!(s.endpoints.values().find(|e| e.sandbox == sid).unwrap().ip.is_some());
    // A sandbox on a network without IPv6 has none.
    sandbox(&mut s, 24, "e", "bridge", None).unwrap();
    assert_eq!(ip6_of(&s, "e"), None);
}

#[test]
fn bad_ipv6_input_is_refused_by_name_and_changes_nothing() {
    let mut s = fresh();
    let before = s.clone();
    let refused = |s: &mut State, spec: NetworkSpec| create(s, 11, spec).unwrap_err().to_string();
    let one = |sub: &str, gw: Option<&str>, r: Option<&str>| v6("n", &[(sub, gw, r)]);
    assert_eq!(
        refused(
            &mut s,
            NetworkSpec {
                ipv6: false,
                ..one("2001:db8::/64", None, None)
            }
        ),
        "subnet 2001:db8::/64 is IPv6, but IPv6 is off on the network: add --ipv6"
    );
    assert_eq!(
        refused(&mut s, one("fe80::/64", None, None)),
        "invalid subnet \"fe80::/64\": it overlaps fe80::/10 (link-local); choose a unicast range such as a unique local fd00::/8 prefix or a global one"
    );
    assert!(refused(&mut s, one("ff02::/64", None, None)).contains("(multicast)"));
    assert!(refused(&mut s, one("::/0", None, None)).contains("the unspecified and loopback addresses"));
    assert_eq!(
        refused(&mut s, one("2001:db8::/127", None, None)),
        "invalid subnet \"2001:db8::/127\": prefix length must be at most 126 to hold a gateway and an endpoint"
    );
    assert_eq!(
        refused(&mut s, one("2001:db8::1/64", None, None)),
        "invalid subnet \"2001:db8::1/64\": host bits are set; did you mean 2001:db8::/64?"
    );
    assert_eq!(
        refused(&mut s, one("2001:db8::/64", Some("2001:db8::"), None)),
        "invalid gateway 2001:db8::: it must be an address inside the subnet 2001:db8::/64 other than its first (the subnet-router anycast address)"
    );
    assert!(refused(&mut s, one("2001:db8::/64", Some("2001:db9::1"), None)).contains("invalid gateway 2001:db9::1"));
    assert_eq!(
        refused(&mut s, one("2001:db8::/64", None, Some("2001:db9::/80"))),
        "invalid ip-range 2001:db9::/80: it must lie inside the subnet 2001:db8::/64"
    );
    assert_eq!(
        refused(
            &mut s,
            v6("n", &[("2001:db8::/48", None, None), ("2001:db8::/64", None, None)])
        ),
        "subnet 2001:db8::/64 overlaps network n (2001:db8::/48): choose a subnet that no network uses"
    );
    let many: Vec<String> = (0..17).map(|i| format!("2001:db8:{i:x}::/64")).collect();
    let many: Vec<(&str, Option<&str>, Option<&str>)> = many.iter().map(|s| (s.as_str(), None, None)).collect();
    assert_eq!(
        refused(&mut s, v6("n", &many)),
        "17 IPv6 subnets given: a network takes at most 16"
    );
    assert_eq!(s, before);
    create(&mut s, 10, one("2001:db8::/64", None, None)).unwrap();
    assert!(refused(&mut s, v6("m", &[("2001:db8::/56", None, None)])).contains("overlaps network n (2001:db8::/64)"));

    let before = s.clone();
    let refused = |s: &mut State, net: &str, ip6: &str| sandbox(s, 20, "a", net, Some(ip6)).unwrap_err().to_string();
    assert_eq!(
        refused(&mut s, "n", "2001:db9::5"),
        "invalid IPv6 address 2001:db9::5: it must lie inside a subnet of network n (2001:db8::/64)"
    );
    assert_eq!(
        refused(&mut s, "n", "2001:db8::1"),
        "invalid IPv6 address 2001:db8::1: it is the subnet-router anycast or the gateway address of 2001:db8::/64"
    );
    assert!(refused(&mut s, "n", "10.0.0.1").contains("expected an IPv6 address"));
    assert_eq!(
        refused(&mut s, "bridge", "2001:db8::5"),
        "network bridge has IPv6 off, so it cannot give 2001:db8::5: --ip6 needs a network created with --ipv6"
    );
    assert!(refused(&mut s, "host", "2001:db8::5").contains("gives no addresses"));
    assert_eq!(s, before);
    sandbox(&mut s, 20, "a", "n", Some("2001:db8::5")).unwrap();
    assert_eq!(
        sandbox(&mut s, 21, "b", "n", Some("2001:db8::5"))
            .unwrap_err()
            .to_string(),
        "address 2001:db8::5 is already in use on network n by sandbox a"
    );
}

#[test]
fn a_dual_stack_state_survives_json() {
    let mut s = fresh();
    create(&mut s, 10, v6("n", &[])).unwrap();
    sandbox(&mut s, 20, "a", "n", None).unwrap();
    let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    // A network without IPv6 writes no IPv6 field, so older stores read the same.
    let plain = serde_json::to_string(s.network("bridge").unwrap()).unwrap();
    assert!(!plain.contains("ipam6"), "{plain}");
}

fn overlay(name: &str, v4: &str, v6: Option<(&str, Option<&str>)>) -> NetworkSpec {
    NetworkSpec {
        driver: "overlay".into(),
        subnet: Some(v4.into()),
        ..v6_spec(name, v6)
    }
}

fn v6_spec(name: &str, pool: Option<(&str, Option<&str>)>) -> NetworkSpec {
    match pool {
        Some((s, g)) => v6(name, &[(s, g, None)]),
        None => v6(name, &[]),
    }
}

#[test]
fn an_overlay_endpoint_s_ipv6_address_is_its_ipv4_address_s_twin() {
    let mut s = fresh();
    create(&mut s, 10, overlay("ov", "10.80.0.0/24", Some(("fd80::/120", None)))).unwrap();
    let ov = s.network("ov").unwrap();
    assert_eq!(
        ov.ipam6[0].gateway.to_string(),
        "fd80::1",
        "the gateway at the IPv4 gateway's offset"
    );
    sandbox(&mut s, 20, "a", "ov", None).unwrap();
    assert_eq!(ip6_of(&s, "a"), Some("fd80::2".parse().unwrap()));
    // --ip6 asks for the IPv4 twin too, and --ip gives the IPv6 twin.
    sandbox(&mut s, 21, "b", "ov", Some("fd80::9")).unwrap();
    let b = &s.sandbox("b").unwrap().id;
    let e = s.endpoints.values().find(|e| &e.sandbox == b).unwrap();
    assert_eq!(
        (e.ip.unwrap().to_string(), e.ip6.unwrap().to_string()),
        ("10.80.0.9".into(), "fd80::9".into())
    );
    let spec = SandboxSpec {
        name: "c".into(),
        network: "ov".into(),
        ip: Some("10.80.0.7".into()),
        ..Default::default()
    };
    s.create_sandbox(spec, id(22), id(122), Path::new("/run/netns"), SystemTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(ip6_of(&s, "c"), Some("fd80::7".parse().unwrap()));

    let before = s.clone();
    let spec = SandboxSpec {
        name: "d".into(),
        network: "ov".into(),
        ip: Some("10.80.0.7".into()),
        ip6: Some("fd80::8".into()),
        ..Default::default()
    };
    let err = s
        .create_sandbox(spec, id(23), id(123), Path::new("/run/netns"), SystemTime::UNIX_EPOCH)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--ip 10.80.0.7 and --ip6 fd80::8 are not twins: on overlay network ov, --ip6 fd80::8 goes with --ip 10.80.0.8"
    );
    assert!(sandbox(&mut s, 24, "d", "ov", Some("fd80::1:0"))
        .unwrap_err()
        .to_string()
        .contains("twin in fd80::/120"));
    assert!(sandbox(&mut s, 24, "d", "ov", Some("fd80::9"))
        .unwrap_err()
        .to_string()
        .contains("10.80.0.9 is already in use"));
    assert_eq!(s, before);
}

#[test]
fn an_overlay_s_ipv6_subnet_holds_its_ipv4_subnet_s_offsets() {
    let mut s = fresh();
    let err = |s: &mut State, spec: NetworkSpec| create(s, 11, spec).unwrap_err().to_string();
    assert_eq!(
        err(&mut s, overlay("ov", "10.80.0.0/24", Some(("fd80::/121", None)))),
        "invalid subnet \"fd80::/121\": an overlay network's IPv6 subnet holds every offset of its IPv4 subnet 10.80.0.0/24, so its prefix length must be at most 120"
    );
    assert_eq!(
        err(
            &mut s,
            overlay("ov", "10.80.0.0/24", Some(("fd80::/64", Some("fd80::fe"))))
        ),
        "invalid gateway fd80::fe: an overlay network's IPv6 gateway is at its IPv4 gateway's offset, fd80::1"
    );
    let two = NetworkSpec {
        driver: "overlay".into(),
        ..v6("ov", &[("fd80::/64", None, None), ("fd81::/64", None, None)])
    };
    assert!(err(&mut s, two).starts_with("2 IPv6 subnets given: an overlay network takes one"));
    // Without a subnet: a /64 of the host's prefix, the gateway at the IPv4 gateway's offset.
    let spec = NetworkSpec {
        driver: "overlay".into(),
        subnet: Some("10.81.0.0/24".into()),
        gateway: Some("10.81.0.254".into()),
        ..v6("auto", &[])
    };
    create(&mut s, 12, spec).unwrap();
    assert_eq!(
        s.network("auto").unwrap().ipam6[0].gateway.to_string(),
        "fd01:101:101::fe"
    );
}

#[test]
fn another_host_adopts_an_overlay_network_with_its_ipv6_subnet() {
    let mut s = fresh();
    create(&mut s, 10, overlay("ov", "10.80.0.0/24", Some(("fd80::/64", None)))).unwrap();
    let rec = s.network_record(&id(10)).unwrap();
    assert_eq!(rec.subnet6.map(|c| c.to_string()).as_deref(), Some("fd80::/64"));
    let mut other = State::with_defaults([id(4), id(5), id(6)], SystemTime::UNIX_EPOCH);
    assert!(other.adopt_network(id(10), &rec, &HostFacts::default()).unwrap());
    assert_eq!(other.networks[&id(10)].ipam6, s.networks[&id(10)].ipam6);
    // A record whose IPv6 subnet this host would refuse is refused whole.
    let bad = crate::cluster::records::NetworkRecord {
        subnet6: Some("fe80::/64".parse().unwrap()),
        name: "ov2".into(),
        vni: 4097,
        subnet: "10.82.0.0/24".parse().unwrap(),
        gateway: "10.82.0.1".parse().unwrap(),
        ..rec
    };
    let e = other
        .adopt_network(id(11), &bad, &HostFacts::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("link-local"), "{e}");
}

#[test]
fn the_host_s_own_macvlan_child_keeps_the_last_ipv6_address() {
    let mut s = fresh();
    let spec = NetworkSpec {
        driver: "macvlan".into(),
        subnet: Some("10.90.0.0/24".into()),
        options: [
            ("parent".to_string(), "eth9".to_string()),
            ("host_access".to_string(), "true".to_string()),
        ]
        .into(),
        ..v6("mv", &[("fd90::/64", None, None)])
    };
    create(&mut s, 10, spec).unwrap();
    let net = s.network("mv").unwrap();
    assert_eq!(
        net.host_access_address6(),
        Some("fd90::ffff:ffff:ffff:ffff".parse().unwrap())
    );
    assert_eq!(
        sandbox(&mut s, 20, "a", "mv", Some("fd90::ffff:ffff:ffff:ffff"))
            .unwrap_err()
            .to_string(),
        "address fd90::ffff:ffff:ffff:ffff is reserved for the host's own interface (host_access) on network mv"
    );
    sandbox(&mut s, 21, "b", "mv", None).unwrap();
    assert_eq!(ip6_of(&s, "b"), Some("fd90::2".parse().unwrap()));
}

#[test]
fn an_ipv6_subnet_the_host_routes_elsewhere_is_refused_and_avoided() {
    let mut s = fresh();
    let ula = s.ula_prefix();
    let first64: Ipv6Cidr = format!("{}/64", ula.network()).parse().unwrap();
    let host = HostFacts {
        routes6: vec!["2001:db8:5::/48".parse().unwrap(), first64],
        ..HostFacts::default()
    };
    let before = s.clone();
    let e = s
        .create_network(
            v6("n", &[("2001:db8:5:1::/64", None, None)]),
            id(10),
            SystemTime::UNIX_EPOCH,
            &host,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "subnet 2001:db8:5:1::/64 overlaps the host's route to 2001:db8:5::/48: choose a subnet the host does not reach through another interface"
    );
    assert_eq!(s, before, "nothing changed");
    // An overlay's subnet is checked the same way.
    let e = s
        .create_network(
            overlay("o", "10.9.0.0/24", Some(("2001:db8:5:2::/64", None))),
            id(11),
            SystemTime::UNIX_EPOCH,
            &host,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("overlaps the host's route to 2001:db8:5::/48"),
        "{e}"
    );
    // A subnet of the host's own ULA /48 skips the /64 the host reaches elsewhere.
    let nid = s
        .create_network(v6("auto", &[]), id(12), SystemTime::UNIX_EPOCH, &host)
        .unwrap();
    assert_ne!(s.networks[&nid].ipam6[0].subnet, first64);
    assert!(ula.contains(s.networks[&nid].ipam6[0].subnet.network()));
    // A macvlan network shares its LAN's subnet, which the host routes by design.
    let spec = NetworkSpec {
        driver: "macvlan".into(),
        subnet: Some("10.90.0.0/24".into()),
        options: [("parent".to_string(), "eth9".to_string())].into(),
        ..v6("mv", &[("2001:db8:5:3::/64", None, None)])
    };
    s.create_network(spec, id(13), SystemTime::UNIX_EPOCH, &host).unwrap();
    // The host routes its own networks' subnets too (the gateway TAP holds their gateways):
    // a subnet overlapping one is refused naming the network.
    s.create_network(
        v6("own", &[("fd70::/64", None, None)]),
        id(14),
        SystemTime::UNIX_EPOCH,
        &host,
    )
    .unwrap();
    let mut host = host;
    host.routes6.push("fd70::/64".parse().unwrap());
    let e = s
        .create_network(
            v6("again", &[("fd70::/56", None, None)]),
            id(15),
            SystemTime::UNIX_EPOCH,
            &host,
        )
        .unwrap_err();
    assert!(e.to_string().contains("overlaps network own (fd70::/64)"), "{e}");
}

#[test]
fn overlay_mtus_leave_room_for_an_ipv6_underlay_s_longer_header() {
    let mut s = fresh();
    let host = HostFacts {
        underlay6: true,
        ..HostFacts::default()
    };
    let plain = s
        .create_network(overlay("o", "10.9.0.0/24", None), id(10), SystemTime::UNIX_EPOCH, &host)
        .unwrap();
    let mut sealed_spec = overlay("e", "10.9.1.0/24", None);
    sealed_spec.options.insert("encrypted".into(), String::new());
    let sealed = s
        .create_network(sealed_spec, id(11), SystemTime::UNIX_EPOCH, &host)
        .unwrap();
    let bridge = s
        .create_network(v6("b", &[]), id(12), SystemTime::UNIX_EPOCH, &host)
        .unwrap();
    assert_eq!(
        [s.networks[&plain].mtu, s.networks[&sealed].mtu, s.networks[&bridge].mtu],
        [1430, 1380, DEFAULT_MTU]
    );
    // 1500 less the outer IPv6 and UDP headers, VXLAN and the inner Ethernet header.
    assert_eq!(1500 - 40 - 8 - 8 - 14, DEFAULT_OVERLAY_MTU6);
}

fn only6(name: &str, subnet: &str) -> NetworkSpec {
    NetworkSpec {
        disable_ipv4: true,
        ..v6(name, &[(subnet, None, None)])
    }
}

#[test]
fn an_ipv6_only_network_gives_ipv6_alone_and_everything_follows_it() {
    let mut s = fresh();
    let nid = create(&mut s, 10, only6("o6", "fd75::/64")).unwrap();
    let net = &s.networks[&nid];
    assert_eq!(
        (net.ipam, net.has_addresses(), net.dns_gateway()),
        (None, true, Some("fd75::1".parse().unwrap()))
    );
    let sid = sandbox(&mut s, 20, "a", "o6", None).unwrap();
    let e = s.endpoints.values().find(|e| e.sandbox == sid).unwrap().clone();
    assert_eq!((e.ip, e.ip6), (None, Some("fd75::2".parse().unwrap())));
    // Its MAC comes from its random ID: locally administered, unicast, no address's.
    let mac = e.mac.unwrap().0;
    assert_eq!((mac[0], &mac[1..]), (0x02, &id(120).bytes()[..5]));
    assert!(e.has_default_route());
    let before = s.clone();
    let e4 = sandbox(&mut s, 21, "b", "o6", None).map(|_| ());
    assert_eq!(e4, Ok(()));
    let spec = SandboxSpec {
        name: "c".into(),
        network: "o6".into(),
        ip: Some("10.0.0.9".into()),
        ..Default::default()
    };
    let bad = s.create_sandbox(spec, id(22), id(122), Path::new("/run/netns"), SystemTime::UNIX_EPOCH);
    assert_eq!(
        bad.unwrap_err().to_string(),
        "network o6 has no IPv4 (--ipv4=false): --ip 10.0.0.9 does not apply; give --ip6"
    );
    assert_eq!(s.sandboxes.len(), before.sandboxes.len() + 1, "only b was made");
    // The sandbox's files and published ports follow its IPv6 address.
    let sb = s.sandbox("a").unwrap().clone();
    assert_eq!(
        crate::etc::resolv_conf(&s, &sb, &[]).unwrap(),
        "nameserver fd75::1\noptions ndots:0\n"
    );
    assert_eq!(
        (s.port_target(&sb), s.port_target6(&sb), s.proxy_target(&sb)),
        (None, Some("fd75::2".parse().unwrap()), Some("fd75::2".parse().unwrap()))
    );
    // The firewall isolates and masquerades it like any network, over IPv6 alone.
    let rules = crate::firewall::ruleset(&s);
    let gw = s.networks[&nid].bridge_name.clone().unwrap();
    assert!(rules.contains(&format!("oifname \"{gw}\" drop")), "{rules}");
    assert!(
        rules.contains(&format!("ip6 saddr fd75::/64 oifname != \"{gw}\" masquerade")),
        "{rules}"
    );
    // It survives a restart.
    let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn what_an_ipv6_only_network_cannot_be_is_refused_by_name() {
    let mut s = fresh();
    let before = s.clone();
    let cases = [
        (
            NetworkSpec {
                disable_ipv4: true,
                ..NetworkSpec {
                    name: "x".into(),
                    ..Default::default()
                }
            },
            "a network without IPv4 needs IPv6: add --ipv6 to --ipv4=false",
        ),
        (
            NetworkSpec {
                subnet: Some("10.75.0.0/24".into()),
                ..only6("x", "fd75::/64")
            },
            "10.75.0.0/24 is IPv4, but IPv4 is off on the network (--ipv4=false): give IPv6 subnets alone",
        ),
        (
            NetworkSpec {
                driver: "overlay".into(),
                ..only6("x", "fd75::/64")
            },
            "an overlay network needs IPv4 (--ipv4=false is refused): each endpoint's IPv6 address is its IPv4 address's twin",
        ),
    ];
    for (spec, says) in cases {
        assert_eq!(create(&mut s, 10, spec).unwrap_err().to_string(), says);
    }
    assert_eq!(s, before);
}
