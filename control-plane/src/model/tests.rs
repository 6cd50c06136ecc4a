use crate::ports::Proto;
use std::path::Path;

use super::*;

fn id(n: u8) -> Id {
    Id::from_random([n; 32])
}

struct Ids(u8);

impl Ids {
    fn next(&mut self) -> Id {
        self.0 += 1;
        id(self.0)
    }
}

fn fresh() -> (State, Ids) {
    (
        State::with_defaults([id(1), id(2), id(3)], SystemTime::UNIX_EPOCH),
        Ids(10),
    )
}

fn net(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        ..Default::default()
    }
}

fn sb(name: &str, network: &str) -> SandboxSpec {
    SandboxSpec {
        name: name.into(),
        network: network.into(),
        ..Default::default()
    }
}

fn create_sb(s: &mut State, ids: &mut Ids, spec: SandboxSpec) -> Result<Id, ModelError> {
    let (a, b) = (ids.next(), ids.next());
    s.create_sandbox(spec, a, b, Path::new("/run/netns"), SystemTime::UNIX_EPOCH)
}

fn ep_of<'a>(s: &'a State, sandbox: &str, network: &str) -> &'a Endpoint {
    let sid = &s.sandbox(sandbox).unwrap().id;
    let nid = &s.network(network).unwrap().id;
    s.endpoints
        .values()
        .find(|e| &e.sandbox == sid && &e.network == nid)
        .unwrap()
}

#[test]
fn defaults_are_dockers() {
    let (s, _) = fresh();
    let b = s.network("bridge").unwrap();
    assert_eq!(b.ipam.unwrap().subnet.to_string(), "172.17.0.0/16");
    assert_eq!(b.ipam.unwrap().gateway, Ipv4Addr::new(172, 17, 0, 1));
    assert_eq!(s.network("host").unwrap().driver, Driver::Host);
    assert_eq!(s.network("none").unwrap().driver, Driver::Null);
}

#[test]
fn automatic_and_chosen_subnets() {
    let (mut s, mut ids) = fresh();
    s.create_network(
        net("my_net1"),
        ids.next(),
        SystemTime::UNIX_EPOCH,
        &HostFacts::default(),
    )
    .unwrap();
    assert_eq!(
        s.network("my_net1").unwrap().ipam.unwrap().subnet.to_string(),
        "172.18.0.0/16"
    );
    let spec = NetworkSpec {
        subnet: Some("192.168.0.0/24".into()),
        gateway: Some("192.168.0.1".into()),
        ..net("my_net2")
    };
    s.create_network(spec, ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    let n2 = s.network("my_net2").unwrap();
    assert_eq!(
        n2.bridge_name.as_deref(),
        Some(format!("sw-{}", n2.id.short()).as_str())
    );
    assert_eq!(s.network("my_net2").unwrap().switch_id, 3);
    // Automatic subnets skip what the host already routes, but not the default route.
    let routes: Vec<Ipv4Cidr> = ["172.19.0.0/16", "172.20.1.0/24"]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    s.create_network(
        net("my_net3"),
        ids.next(),
        SystemTime::UNIX_EPOCH,
        &HostFacts {
            routes: routes.to_vec(),
            ..HostFacts::default()
        },
    )
    .unwrap();
    assert_eq!(
        s.network("my_net3").unwrap().ipam.unwrap().subnet.to_string(),
        "172.21.0.0/16"
    );
}

#[test]
fn bad_network_input_is_refused_and_changes_nothing() {
    let (mut s, mut ids) = fresh();
    s.create_network(
        NetworkSpec {
            subnet: Some("192.168.0.0/24".into()),
            ..net("a")
        },
        ids.next(),
        SystemTime::UNIX_EPOCH,
        &crate::HostFacts::default(),
    )
    .unwrap();
    let before = s.clone();
    let cases: Vec<(NetworkSpec, &str)> = vec![
        (
            NetworkSpec {
                subnet: Some("10.0.0.0/33".into()),
                ..net("x")
            },
            "prefix length must be 0-32",
        ),
        (
            NetworkSpec {
                subnet: Some("10.0.0.0/24".into()),
                gateway: Some("10.0.1.1".into()),
                ..net("x")
            },
            "invalid gateway 10.0.1.1",
        ),
        (
            NetworkSpec {
                subnet: Some("192.168.0.128/25".into()),
                ..net("x")
            },
            "overlaps network a",
        ),
        (net("a"), "network with name a already exists"),
        (net("bad name"), "invalid network name"),
        (
            NetworkSpec {
                driver: "weird".into(),
                ..net("x")
            },
            "unknown driver \"weird\"",
        ),
        (
            NetworkSpec {
                options: [("nope".into(), "1".into())].into(),
                ..net("x")
            },
            "unknown option \"nope\"",
        ),
        (
            NetworkSpec {
                options: [(OPT_MAC_AGING.into(), "0".into())].into(),
                ..net("x")
            },
            "invalid value \"0\" for option mac_aging",
        ),
        (
            NetworkSpec {
                gateway: Some("10.0.0.1".into()),
                ..net("x")
            },
            "need --subnet",
        ),
        (
            NetworkSpec {
                subnet: Some("10.0.0.0/24".into()),
                ip_range: Some("10.0.1.0/25".into()),
                ..net("x")
            },
            "must lie inside the subnet",
        ),
        (
            NetworkSpec {
                subnet: Some("127.1.0.0/16".into()),
                ..net("x")
            },
            "invalid subnet \"127.1.0.0/16\": it overlaps 127.0.0.0/8 (loopback)",
        ),
        (
            NetworkSpec {
                subnet: Some("224.0.0.0/24".into()),
                ..net("x")
            },
            "overlaps 224.0.0.0/4 (multicast)",
        ),
        (
            NetworkSpec {
                subnet: Some("0.0.0.0/24".into()),
                ..net("x")
            },
            "overlaps 0.0.0.0/8",
        ),
        (
            NetworkSpec {
                subnet: Some("248.0.0.0/24".into()),
                ..net("x")
            },
            "overlaps 240.0.0.0/4 (reserved)",
        ),
        (
            NetworkSpec {
                options: [(OPT_PORT_SECURITY.into(), "no".into())].into(),
                ..net("x")
            },
            "invalid value \"no\" for option port_security: true or false",
        ),
        (
            NetworkSpec {
                options: [(OPT_BUM_PPS.into(), "-1".into())].into(),
                ..net("x")
            },
            "invalid value \"-1\" for option bum_pps",
        ),
    ];
    for (spec, want) in cases {
        let e = s
            .create_network(spec, ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
            .unwrap_err();
        assert!(e.to_string().contains(want), "{e} should mention {want}");
        assert_eq!(s, before);
    }
    // A bridge subnet that overlaps a host route is refused with the route named; a macvlan
    // network shares its LAN's subnet by design.
    let routes: Vec<Ipv4Cidr> = vec!["10.99.0.0/24".parse().unwrap()];
    let spec = NetworkSpec {
        subnet: Some("10.99.0.0/16".into()),
        ..net("x")
    };
    let e = s
        .create_network(
            spec.clone(),
            ids.next(),
            SystemTime::UNIX_EPOCH,
            &HostFacts {
                routes: routes.to_vec(),
                ..HostFacts::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        (
            e.status(),
            e.to_string().contains("overlaps the host's route to 10.99.0.0/24")
        ),
        (409, true),
        "{e}"
    );
    assert_eq!(s, before);
    let lan = NetworkSpec {
        driver: "macvlan".into(),
        subnet: Some("10.99.0.0/24".into()),
        options: [(OPT_PARENT.into(), "eth0".into())].into(),
        ..net("lan")
    };
    s.create_network(
        lan,
        ids.next(),
        SystemTime::UNIX_EPOCH,
        &HostFacts {
            routes: routes.to_vec(),
            ..HostFacts::default()
        },
    )
    .unwrap();
    assert_eq!(s.remove_network("bridge").unwrap_err().status(), 403);
    assert_eq!(
        s.remove_network("nope").unwrap_err().to_string(),
        "network nope not found"
    );
}

#[test]
fn sandboxes_get_addresses_and_docker_macs() {
    let (mut s, mut ids) = fresh();
    create_sb(&mut s, &mut ids, sb("vm0", "")).unwrap();
    let e = ep_of(&s, "vm0", "bridge");
    assert_eq!(e.ip, Some(Ipv4Addr::new(172, 17, 0, 2)));
    assert_eq!(e.mac.unwrap().to_string(), "02:42:ac:11:00:02");
    assert_eq!(e.ifname.as_deref(), Some("eth0"));
    let e = create_sb(
        &mut s,
        &mut ids,
        SandboxSpec {
            ip: Some("172.17.0.9".into()),
            ..sb("vm9", "bridge")
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "user-specified IP address is supported on user-defined networks only"
    );
}

#[test]
fn static_ips_connect_disconnect_and_release() {
    let (mut s, mut ids) = fresh();
    let spec = NetworkSpec {
        subnet: Some("192.168.0.0/24".into()),
        gateway: Some("192.168.0.1".into()),
        ..net("my_net2")
    };
    s.create_network(spec, ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    s.create_network(
        net("my_net1"),
        ids.next(),
        SystemTime::UNIX_EPOCH,
        &HostFacts::default(),
    )
    .unwrap();
    create_sb(
        &mut s,
        &mut ids,
        SandboxSpec {
            ip: Some("192.168.0.10".into()),
            ..sb("vm1", "my_net2")
        },
    )
    .unwrap();
    create_sb(
        &mut s,
        &mut ids,
        SandboxSpec {
            ip: Some("192.168.0.20".into()),
            ..sb("vm2", "my_net2")
        },
    )
    .unwrap();
    create_sb(&mut s, &mut ids, sb("vm3", "my_net1")).unwrap();
    let before = s.clone();
    for (ip, want) in [
        ("192.168.0.10", "already in use on network my_net2 by sandbox vm1"),
        ("192.168.1.5", "not in the network's subnet"),
        ("nonsense", "invalid IP address"),
    ] {
        let e = s
            .connect(
                "my_net2",
                "vm3",
                ConnectSpec {
                    ip: Some(ip.into()),
                    ..Default::default()
                },
                ids.next(),
            )
            .unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        assert_eq!(s, before);
        // The same refusal when the sandbox is being made: no sandbox is left behind.
        let e = create_sb(
            &mut s,
            &mut ids,
            SandboxSpec {
                ip: Some(ip.into()),
                ..sb("vm4", "my_net2")
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        assert_eq!(s, before);
    }
    s.connect("my_net2", "vm3", ConnectSpec::default(), ids.next()).unwrap();
    let e = ep_of(&s, "vm3", "my_net2");
    assert_eq!(
        (e.ifname.as_deref(), e.ip),
        (Some("eth1"), Some(Ipv4Addr::new(192, 168, 0, 2)))
    );
    let again = s
        .connect("my_net2", "vm3", ConnectSpec::default(), ids.next())
        .unwrap_err();
    assert_eq!(again.to_string(), "sandbox vm3 is already connected to network my_net2");
    let e = s.remove_network("my_net2").unwrap_err();
    assert!(e.to_string().contains("has active endpoints: "), "{e}");
    s.disconnect("my_net2", "vm3").unwrap();
    assert!(s.disconnect("my_net2", "vm3").is_err());
    s.remove_sandbox("vm1").unwrap();
    s.connect(
        "my_net2",
        "vm3",
        ConnectSpec {
            ip: Some("192.168.0.10".into()),
            ..Default::default()
        },
        ids.next(),
    )
    .unwrap();
    assert_eq!(s.prune_networks(&Default::default()).len(), 0);
}

#[test]
fn modes_host_none_container() {
    let (mut s, mut ids) = fresh();
    create_sb(&mut s, &mut ids, sb("h", "host")).unwrap();
    create_sb(&mut s, &mut ids, sb("n", "none")).unwrap();
    create_sb(&mut s, &mut ids, sb("web", "")).unwrap();
    create_sb(&mut s, &mut ids, sb("side", "container:web")).unwrap();
    create_sb(&mut s, &mut ids, sb("side2", "container:side")).unwrap();
    let web = s.sandbox("web").unwrap().id.clone();
    assert_eq!(s.sandbox("side2").unwrap().mode, SandboxMode::Container(web));
    assert!(ep_of(&s, "h", "host").ip.is_none());
    assert!(!s.sandbox("h").unwrap().owns_namespace());
    assert!(s.sandbox("n").unwrap().owns_namespace());
    let e = s.remove_sandbox("web").unwrap_err();
    assert_eq!(
        e.to_string(),
        "sandbox web shares its network namespace with side, side2: remove them first"
    );
    let e = s
        .connect("bridge", "side", ConnectSpec::default(), ids.next())
        .unwrap_err();
    assert_eq!(e.status(), 403);
    let e = create_sb(
        &mut s,
        &mut ids,
        SandboxSpec {
            ip: Some("1.2.3.4".into()),
            ..sb("x", "host")
        },
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("conflicting options: --ip"), "{e}");
    assert!(matches!(
        create_sb(&mut s, &mut ids, sb("y", "container:ghost")),
        Err(ModelError::SandboxNotFound(_))
    ));
    assert!(matches!(
        create_sb(&mut s, &mut ids, sb("web", "")),
        Err(ModelError::Conflict(_))
    ));
}

#[test]
fn lookup_by_id_prefix() {
    let (s, _) = fresh();
    let b = s.network("bridge").unwrap();
    assert_eq!(s.network(&b.id.short()).unwrap().name, "bridge");
    assert_eq!(s.network(&b.id.to_string()).unwrap().name, "bridge");
}

#[test]
fn state_survives_json() {
    let (mut s, mut ids) = fresh();
    create_sb(&mut s, &mut ids, sb("vm0", "")).unwrap();
    let j = serde_json::to_vec(&s).unwrap();
    assert_eq!(serde_json::from_slice::<State>(&j).unwrap(), s);
}

/// An overlay network's spec with driver options `opts`.
fn ov(name: &str, opts: &[(&str, &str)]) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        driver: "overlay".into(),
        options: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

#[test]
fn overlay_networks_vnis_and_static_vteps() {
    let (mut s, mut ids) = fresh();
    s.create_network(ov("o1", &[]), ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    s.create_network(
        ov("o2", &[("vni", "42")]),
        ids.next(),
        SystemTime::UNIX_EPOCH,
        &HostFacts::default(),
    )
    .unwrap();
    s.create_network(ov("o3", &[]), ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    let o1 = s.network("o1").unwrap();
    assert_eq!((o1.vni, o1.mtu), (Some(4096), 1450));
    assert_eq!(o1.options.get(OPT_VXLANID_LIST).map(String::as_str), Some("4096"));
    assert_eq!(o1.gateway_mac().unwrap().0[..2], [0x02, 0x53]);
    assert_eq!(s.network("o2").unwrap().vni, Some(42));
    assert_eq!(s.network("o3").unwrap().vni, Some(4097));
    let before = s.clone();
    let e = s
        .create_network(
            ov("o4", &[("vni", "42")]),
            ids.next(),
            SystemTime::UNIX_EPOCH,
            &HostFacts::default(),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "VNI 42 is already used by network o2");
    let e = s
        .create_network(
            ov("o4", &[("vni", "16777216")]),
            ids.next(),
            SystemTime::UNIX_EPOCH,
            &crate::HostFacts::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("a VNI of 1-16777215"), "{e}");
    let e = s.create_network(
        NetworkSpec {
            options: [("vni".into(), "5".into())].into(),
            ..net("b")
        },
        ids.next(),
        SystemTime::UNIX_EPOCH,
        &crate::HostFacts::default(),
    );
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("unknown option \"vni\" for a bridge network"));
    assert_eq!(s, before);

    assert_eq!(
        s.add_vtep("o1", "10.99.0.2", 4789).unwrap().to_string(),
        "10.99.0.2:4789"
    );
    assert_eq!(
        s.add_vtep("o1", "10.99.0.3:8472", 4789).unwrap().to_string(),
        "10.99.0.3:8472"
    );
    assert!(matches!(
        s.add_vtep("o1", "10.99.0.2:4789", 4789),
        Err(ModelError::Conflict(_))
    ));
    // An IPv6 underlay's peers.
    assert_eq!(
        s.add_vtep("o1", "2001:db8::2", 4789).unwrap().to_string(),
        "[2001:db8::2]:4789"
    );
    assert_eq!(
        s.add_vtep("o1", "[2001:db8::3]:8472", 4789).unwrap().to_string(),
        "[2001:db8::3]:8472"
    );
    s.remove_vtep("o1", "[2001:db8::2]:4789", 4789).unwrap();
    s.remove_vtep("o1", "2001:db8::3:8472", 4789).unwrap_err();
    s.remove_vtep("o1", "[2001:db8::3]:8472", 4789).unwrap();
    for bad in [
        "nonsense",
        "0.0.0.0",
        "224.0.0.1",
        "10.0.0.1:0",
        "::",
        "ff02::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "[2001:db8::2]:0",
    ] {
        assert!(
            s.add_vtep("o1", bad, 4789)
                .unwrap_err()
                .to_string()
                .contains("invalid VTEP"),
            "{bad}"
        );
    }
    assert!(s
        .add_vtep("bridge", "10.99.0.2", 4789)
        .unwrap_err()
        .to_string()
        .contains("static VTEPs belong to overlay networks"));
    s.remove_vtep("o1", "10.99.0.2", 4789).unwrap();
    assert!(s.remove_vtep("o1", "10.99.0.2", 4789).is_err());
    assert_eq!(s.network("o1").unwrap().vteps.len(), 1);
    let e = create_sb(
        &mut s,
        &mut ids,
        SandboxSpec {
            port_kind: "veth".into(),
            ..sb("v", "o1")
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("--port-kind veth is not available on overlay"),
        "{e}"
    );
}

#[test]
fn cluster_hosts_allocate_overlay_addresses_from_their_share() {
    let (mut s, mut ids) = fresh();
    s.host_index = Some(1);
    let ov = NetworkSpec {
        name: "o".into(),
        driver: "overlay".into(),
        subnet: Some("10.66.0.0/24".into()),
        options: [("max_hosts".to_string(), "4".to_string())].into(),
        ..Default::default()
    };
    s.create_network(ov, ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    create_sb(&mut s, &mut ids, sb("x", "o")).unwrap();
    assert_eq!(
        ep_of(&s, "x", "o").ip,
        Some(Ipv4Addr::new(10, 66, 0, 8)),
        "host 1's first block"
    );
    // A bridge network is this host's alone: no share.
    create_sb(&mut s, &mut ids, sb("y", "bridge")).unwrap();
    assert_eq!(ep_of(&s, "y", "bridge").ip, Some(Ipv4Addr::new(172, 17, 0, 2)));
    s.host_index = Some(4);
    let e = create_sb(&mut s, &mut ids, sb("z", "o")).unwrap_err();
    assert!(e.to_string().contains("beyond network o's max_hosts 4"), "{e}");
}

#[test]
fn claimed_overlay_addresses_come_only_from_this_host_s_claims() {
    use crate::cluster::records::Version;
    use crate::cluster::space::{Claim, Space};
    let (mut s, mut ids) = fresh();
    s.host_index = Some(1);
    s.host_name = Some("h1".into());
    let ov = NetworkSpec {
        name: "o".into(),
        driver: "overlay".into(),
        subnet: Some("10.67.0.0/24".into()),
        ..Default::default()
    };
    let nid = ids.next();
    s.create_network(ov, nid.clone(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    let claim = |owner: &str, counter| Claim {
        owner: owner.into(),
        version: Version {
            counter,
            origin: "h0".into(),
        },
    };
    s.networks.get_mut(&nid).unwrap().space = Some(Space::new(256));
    assert!(s.merge_claim(&nid, (0, 256), claim("h0", 1)));
    assert!(!s.merge_claim(&nid, (0, 256), claim("h0", 1)), "nothing new");
    // Nothing of it is this host's: other hosts may give some.
    let e = create_sb(&mut s, &mut ids, sb("x", "o")).unwrap_err();
    assert_eq!(
        e,
        ModelError::OutOfClaims {
            network: nid.clone(),
            name: "o".into()
        }
    );
    assert_eq!(e.to_string(), "no available IPv4 addresses on network o");
    let held_before = s.clone();
    // h0 gives h1 the upper half; h1 hands out its first address, and a static one of its own.
    assert!(s.merge_claim(&nid, (128, 256), claim("h1", 2)));
    create_sb(&mut s, &mut ids, sb("x", "o")).unwrap();
    assert_eq!(ep_of(&s, "x", "o").ip, Some(Ipv4Addr::new(10, 67, 0, 128)));
    let mut fixed = sb("y", "o");
    fixed.ip = Some("10.67.0.200".into());
    create_sb(&mut s, &mut ids, fixed).unwrap();
    // An address h0 owns is not h1's to hand out.
    let mut theirs = sb("z", "o");
    theirs.ip = Some("10.67.0.20".into());
    let e = create_sb(&mut s, &mut ids, theirs).unwrap_err();
    assert!(
        e.to_string()
            .contains("10.67.0.20 of network o is not this host's to hand out: its owner is h0"),
        "{e}"
    );
    // What h1 can give: the upper half of its longest free run (.129-.199, between the
    // addresses it holds; .201-.254 before the broadcast address is shorter).
    assert_eq!(s.donation(&nid, "h1", 1000), Some((164, 200)));
    assert_eq!(s.donation(&nid, "h1", 4), Some((196, 200)));
    assert_eq!(
        held_before.donation(&nid, "h1", 4),
        None,
        "nothing to give before the claim"
    );
    // Free addresses by host, as h1 sees them: h0's 128 less the network's and the gateway's
    // addresses and one an endpoint of h0's has; h1's 128 less its two and the broadcast one.
    let remote = |ip: [u8; 4]| {
        std::sync::Arc::new(crate::cluster::records::EndpointRecord {
            network: nid.clone(),
            host: "h0".into(),
            vtep: "192.0.2.1:4789".parse().unwrap(),
            sandbox: "r".into(),
            mac: [2, 0, 0, 0, 0, ip[3]],
            ip: Ipv4Addr::from(ip),
            aliases: Vec::new(),
        })
    };
    s.remote
        .entry(nid.clone())
        .or_default()
        .insert(ids.next(), remote([10, 67, 0, 5]));
    let free = s.free_by_host(&nid);
    assert_eq!((free["h0"], free["h1"]), (125, 125));
    assert_eq!(s.donors(&nid), ["h0"]);
    // With h0 full by this host's view, the holders are asked all the same (the view may
    // lag), the three holding the most only.
    for (i, (a, b)) in [(2u32, 5u32), (6, 128)].into_iter().enumerate() {
        assert!(s.merge_claim(&nid, (a, b), claim(&format!("g{i}"), 3 + i as u64)));
    }
    let r = s.remote.get_mut(&nid).unwrap();
    r.clear();
    for o in 0..128u8 {
        r.insert(ids.next(), remote([10, 67, 0, o]));
    }
    assert_eq!(s.free_by_host(&nid).get("g1"), Some(&0));
    assert_eq!(s.donors(&nid), ["g1", "g0", "h0"]);
    // Claims are stored with the network.
    let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back.networks[&nid].space, s.networks[&nid].space);
}

#[test]
fn macvlan_networks_need_a_parent_of_their_own() {
    let (mut s, mut ids) = fresh();
    let mv = |name: &str, opts: &[(&str, &str)]| NetworkSpec {
        name: name.into(),
        driver: "macvlan".into(),
        subnet: Some("10.90.0.0/24".into()),
        options: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    let t = SystemTime::UNIX_EPOCH;
    let e = s
        .create_network(mv("m", &[]), ids.next(), t, &HostFacts::default())
        .unwrap_err();
    assert!(e.to_string().contains("needs -o parent=IFACE"), "{e}");
    for (parent, says) in [
        (
            "eth0.4095",
            "invalid VLAN ID 4095 in parent \"eth0.4095\": a VLAN ID is 1-4094",
        ),
        ("eth0.0", "invalid VLAN ID 0"),
        ("eth0.x", "IFACE.VLAN with a VLAN ID of 1-4094"),
        ("eth0.10.20", "IFACE.VLAN with a VLAN ID of 1-4094"),
        (".10", "an interface name of 1-15 characters"),
        ("averylongname.10", "an interface name of 1-15 characters"),
    ] {
        let e = s
            .create_network(mv("m", &[("parent", parent)]), ids.next(), t, &HostFacts::default())
            .unwrap_err();
        assert!(e.to_string().contains(says), "{parent}: {e}");
    }
    let e = s
        .create_network(
            mv("m", &[("parent", "eth0"), ("mac_aging", "5")]),
            ids.next(),
            t,
            &HostFacts::default(),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown option \"mac_aging\" for a macvlan network"),
        "{e}"
    );
    s.create_network(mv("m", &[("parent", "eth0")]), ids.next(), t, &HostFacts::default())
        .unwrap();
    let n = s.network("m").unwrap();
    assert_eq!(
        (n.driver, n.bridge_name.clone(), n.macvlan_mode.as_deref()),
        (Driver::Macvlan, None, Some("bridge"))
    );
    assert!(!n.is_switched());
    let other = NetworkSpec {
        subnet: Some("10.91.0.0/24".into()),
        ..mv("m2", &[("parent", "eth0")])
    };
    let e = s
        .create_network(other, ids.next(), t, &HostFacts::default())
        .unwrap_err();
    assert!(e.to_string().contains("already used by macvlan network m"), "{e}");

    // VLANs of one parent are networks of their own; each VLAN once.
    let vlan = |name: &str, parent: &str, subnet: &str| NetworkSpec {
        subnet: Some(subnet.into()),
        ..mv(name, &[("parent", parent)])
    };
    s.create_network(
        vlan("v10", "eth0.10", "10.92.0.0/24"),
        ids.next(),
        t,
        &HostFacts::default(),
    )
    .unwrap();
    s.create_network(
        vlan("v20", "eth0.20", "10.93.0.0/24"),
        ids.next(),
        t,
        &HostFacts::default(),
    )
    .unwrap();
    let v10 = s.network("v10").unwrap();
    assert_eq!((v10.parent_iface(), v10.vlan), (Some("eth0"), Some(10)));
    assert_eq!(s.network("m").unwrap().parent_iface(), Some("eth0"));
    let e = s
        .create_network(
            vlan("v10b", "eth0.010", "10.94.0.0/24"),
            ids.next(),
            t,
            &HostFacts::default(),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("parent interface eth0.010 is already used by macvlan network v10"),
        "{e}"
    );
    let e = s
        .create_network(
            vlan("v30", "eth0.30", "10.92.0.128/25"),
            ids.next(),
            t,
            &HostFacts::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("overlaps"), "{e}");
    assert!(s.network("v10b").is_err() && s.network("v30").is_err());
}

#[test]
fn interfaces_can_be_named_and_the_first_network_routes() {
    let (mut s, mut ids) = fresh();
    s.create_network(net("n1"), ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    s.create_network(net("n2"), ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    s.create_network(net("n3"), ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    let labels = BTreeMap::from([("cni.container".to_string(), "abc".to_string())]);
    let spec = SandboxSpec {
        ifname: Some("net1".into()),
        labels: labels.clone(),
        ..sb("c1", "n1")
    };
    create_sb(&mut s, &mut ids, spec).unwrap();
    assert_eq!(s.sandbox("c1").unwrap().labels, labels);
    let e = ep_of(&s, "c1", "n1");
    assert_eq!((e.ifname.as_deref(), e.has_default_route()), (Some("net1"), true));
    let before = s.clone();
    for (name, want) in [
        ("net1", "sandbox c1 already has an interface named net1"),
        ("a/b", "invalid interface name \"a/b\""),
        ("0123456789abcdef", "invalid interface name"),
        ("..", "invalid interface name"),
        ("", "invalid interface name"),
    ] {
        let spec = ConnectSpec {
            ifname: Some(name.into()),
            ..Default::default()
        };
        let e = s.connect("n2", "c1", spec, ids.next()).unwrap_err();
        assert!(e.to_string().contains(want), "{name}: {e}");
        assert_eq!(s, before);
    }
    let spec = ConnectSpec {
        ifname: Some("net2".into()),
        ..Default::default()
    };
    s.connect("n2", "c1", spec, ids.next()).unwrap();
    let e = ep_of(&s, "c1", "n2");
    assert_eq!((e.ifname.as_deref(), e.has_default_route()), (Some("net2"), false));
    // Unnamed interfaces still take the first free ethN; the default route stays with n1.
    s.connect("n3", "c1", ConnectSpec::default(), ids.next()).unwrap();
    let e = ep_of(&s, "c1", "n3");
    assert_eq!((e.ifname.as_deref(), e.has_default_route()), (Some("eth0"), false));
    // The network that routed is left: the next one joined takes the default route over.
    s.disconnect("n1", "c1").unwrap();
    s.connect("n1", "c1", ConnectSpec::default(), ids.next()).unwrap();
    assert!(ep_of(&s, "c1", "n1").has_default_route());
    // A name needs an interface to name.
    let spec = SandboxSpec {
        ifname: Some("x".into()),
        ..sb("c2", "none")
    };
    let e = create_sb(&mut s, &mut ids, spec).unwrap_err();
    assert!(e.to_string().contains("an interface name cannot be given"), "{e}");
}

#[test]
fn stores_before_named_interfaces_route_through_eth0() {
    let (mut s, mut ids) = fresh();
    create_sb(&mut s, &mut ids, sb("old", "bridge")).unwrap();
    let mut e = ep_of(&s, "old", "bridge").clone();
    e.default_route = None;
    let json = serde_json::to_string(&e).unwrap();
    assert!(!json.contains("default_route"), "{json}");
    let back: Endpoint = serde_json::from_str(&json).unwrap();
    assert!(back.has_default_route());
    e.ifname = Some("eth1".into());
    assert!(!e.has_default_route());
}

#[test]
fn an_id_in_use_is_refused_and_changes_nothing() {
    let (mut s, mut ids) = fresh();
    let vm = create_sb(&mut s, &mut ids, sb("vm0", "")).unwrap();
    let before = s.clone();
    let taken = s.endpoints_of_sandbox(&vm)[0].id.clone();
    let e = s
        .create_sandbox(
            sb("vm1", ""),
            ids.next(),
            taken.clone(),
            Path::new("/run/netns"),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap_err();
    assert!(e.to_string().contains("is already in use"), "{e}");
    let e = s
        .create_network(net("n9"), vm.clone(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap_err();
    assert_eq!(e.status(), 409);
    assert_eq!(s, before);
}

#[test]
fn a_network_from_the_cluster_passes_the_checks_of_a_local_create() {
    use crate::cluster::records::NetworkRecord;
    let (mut s, mut ids) = fresh();
    let good = NetworkRecord {
        name: "ov".into(),
        subnet: "10.70.0.0/24".parse().unwrap(),
        gateway: "10.70.0.1".parse().unwrap(),
        vni: 4200,
        max_hosts: 64,
        claimed: true,
        mtu: DEFAULT_OVERLAY_MTU,
        internal: false,
        created: SystemTime::UNIX_EPOCH,
        encrypted: false,
        subnet6: None,
    };
    let routes: Vec<Ipv4Cidr> = vec!["10.80.0.0/16".parse().unwrap()];
    for (bad, says) in [
        (
            NetworkRecord {
                subnet: "0.0.0.0/1".parse().unwrap(),
                gateway: "0.0.0.1".parse().unwrap(),
                ..good.clone()
            },
            "it overlaps 0.0.0.0/8",
        ),
        (
            NetworkRecord {
                subnet: "10.80.1.0/24".parse().unwrap(),
                gateway: "10.80.1.1".parse().unwrap(),
                ..good.clone()
            },
            "overlaps the host's route to 10.80.0.0/16",
        ),
        (
            NetworkRecord {
                subnet: "172.17.5.0/24".parse().unwrap(),
                gateway: "172.17.5.1".parse().unwrap(),
                ..good.clone()
            },
            "overlaps network bridge",
        ),
        (
            NetworkRecord {
                gateway: "10.70.0.0".parse().unwrap(),
                ..good.clone()
            },
            "invalid gateway 10.70.0.0",
        ),
        (
            NetworkRecord {
                vni: 1 << 24,
                ..good.clone()
            },
            "a VNI of 1-16777215",
        ),
        (
            NetworkRecord {
                mtu: 20,
                ..good.clone()
            },
            "an MTU of 68-65535",
        ),
        (
            NetworkRecord {
                name: "no/slash".into(),
                ..good.clone()
            },
            "no/slash",
        ),
    ] {
        let before = s.clone();
        let e = s
            .adopt_network(
                ids.next(),
                &bad,
                &HostFacts {
                    routes: routes.to_vec(),
                    ..HostFacts::default()
                },
            )
            .unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with(&format!("cluster network {} refused: ", bad.name)), "{e}");
        assert!(e.contains(says), "{says}: {e}");
        assert_eq!(s.networks.len(), before.networks.len(), "nothing adopted");
    }
    let id = ids.next();
    assert!(s
        .adopt_network(
            id.clone(),
            &good,
            &HostFacts {
                routes: routes.to_vec(),
                ..HostFacts::default()
            }
        )
        .unwrap());
    assert!(
        !s.adopt_network(
            id.clone(),
            &good,
            &HostFacts {
                routes: routes.to_vec(),
                ..HostFacts::default()
            }
        )
        .unwrap(),
        "known already"
    );
    let n = &s.networks[&id];
    assert_eq!(
        (n.vni, n.mtu, n.space.is_some()),
        (Some(4200), DEFAULT_OVERLAY_MTU, true)
    );
}

#[test]
fn an_encrypted_overlay_network_takes_docker_s_spelling_and_no_static_vtep() {
    use crate::cluster::records::NetworkRecord;
    let (mut s, mut ids) = fresh();
    let t = SystemTime::UNIX_EPOCH;
    // `--opt encrypted` carries no value; true and false are taken too.
    for (name, v, sealed) in [("e1", "", true), ("e2", "true", true), ("e3", "false", false)] {
        let id = s
            .create_network(ov(name, &[("encrypted", v)]), ids.next(), t, &HostFacts::default())
            .unwrap();
        let n = &s.networks[&id];
        assert_eq!(n.encrypted, sealed, "{name}");
        let mtu = if sealed {
            DEFAULT_ENCRYPTED_MTU
        } else {
            DEFAULT_OVERLAY_MTU
        };
        assert_eq!(n.mtu, mtu, "{name}: room for ESP under a 1500-byte underlay");
        assert_eq!(s.network_record(&id).unwrap().encrypted, sealed);
    }
    let before = s.clone();
    let e = s.create_network(
        ov("e4", &[("encrypted", "yes please")]),
        ids.next(),
        t,
        &HostFacts::default(),
    );
    assert!(e.unwrap_err().to_string().contains("true, false, or no value"));
    let bridge = NetworkSpec {
        options: [("encrypted".into(), String::new())].into(),
        ..net("b")
    };
    let e = s
        .create_network(bridge, ids.next(), t, &HostFacts::default())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown option \"encrypted\" for a bridge network"),
        "{e}"
    );
    let e = s.add_vtep("e1", "10.99.0.2", 4789).unwrap_err();
    assert!(matches!(e, ModelError::Forbidden(_)), "{e}");
    assert!(e.to_string().contains("network e1 is encrypted"), "{e}");
    assert_eq!(s, before, "nothing changed");
    // A host adopting the network from the cluster seals it too.
    let rec = NetworkRecord {
        name: "from-peer".into(),
        subnet: "10.72.0.0/24".parse().unwrap(),
        gateway: "10.72.0.1".parse().unwrap(),
        vni: 4300,
        max_hosts: 64,
        claimed: true,
        mtu: DEFAULT_ENCRYPTED_MTU,
        internal: false,
        created: t,
        encrypted: true,
        subnet6: None,
    };
    let id = ids.next();
    assert!(s.adopt_network(id.clone(), &rec, &HostFacts::default()).unwrap());
    assert!(s.networks[&id].encrypted);
    assert_eq!(s.networks[&id].options.get("encrypted").map(String::as_str), Some(""));
}

#[test]
fn docker_s_masquerade_icc_and_host_binding_options_are_taken_and_checked() {
    let (mut s, mut ids) = fresh();
    let with = |name: &str, opts: &[(&str, &str)]| NetworkSpec {
        options: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..net(name)
    };
    let t = SystemTime::UNIX_EPOCH;
    let nid = s
        .create_network(
            with(
                "local",
                &[
                    (OPT_HOST_BINDING_IPV4, "127.0.0.1"),
                    (OPT_IP_MASQUERADE, "false"),
                    (OPT_ICC, "false"),
                ],
            ),
            ids.next(),
            t,
            &HostFacts::default(),
        )
        .unwrap();
    let n = &s.networks[&nid];
    assert_eq!(
        (n.ip_masquerade(), n.icc(), n.host_binding_ipv4()),
        (false, false, Some(Ipv4Addr::LOCALHOST))
    );
    let port = n.sandbox_port(switch::NetworkId(9), 1514, MacAddr([2, 0, 0, 0, 0, 1]), (None, None));
    assert!(port.isolated);
    let plain = s
        .create_network(net("plain"), ids.next(), t, &HostFacts::default())
        .unwrap();
    assert_eq!(
        (
            s.networks[&plain].ip_masquerade(),
            s.networks[&plain].icc(),
            s.networks[&plain].host_binding_ipv4()
        ),
        (true, true, None)
    );
    // A port without an address binds the network's; one with its own keeps it.
    let spec = SandboxSpec {
        publish: vec!["8080:80".into(), "0.0.0.0:8081:81".into(), "[::]:8082:82".into()],
        ..sb("web", "local")
    };
    create_sb(&mut s, &mut ids, spec).unwrap();
    let ips: Vec<String> = s
        .sandbox("web")
        .unwrap()
        .ports
        .iter()
        .map(|p| p.host_ip.to_string())
        .collect();
    assert_eq!(ips, ["127.0.0.1", "0.0.0.0", "::"]);
    let before = s.clone();
    for (k, v, says) in [
        (
            OPT_IP_MASQUERADE,
            "no",
            "invalid value \"no\" for option com.docker.network.bridge.enable_ip_masquerade: true or false",
        ),
        (OPT_HOST_BINDING_IPV4, "::1", "a unicast IPv4 address of the host"),
        (
            OPT_ICC,
            "0",
            "invalid value \"0\" for option com.docker.network.bridge.enable_icc: true or false",
        ),
        (OPT_HOST_BINDING_IPV4, "224.0.0.1", "a unicast IPv4 address of the host"),
    ] {
        let e = s
            .create_network(with("bad", &[(k, v)]), ids.next(), t, &HostFacts::default())
            .unwrap_err();
        assert!(e.to_string().contains(says), "{v}: {e}");
    }
    // Docker's bridge driver alone has enable_icc; an overlay's sandboxes on other hosts are
    // not behind this host's gateway.
    let e = s
        .create_network(
            NetworkSpec {
                driver: "overlay".into(),
                ..with("o", &[(OPT_ICC, "false")])
            },
            ids.next(),
            t,
            &HostFacts::default(),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown option \"com.docker.network.bridge.enable_icc\" for an overlay network"),
        "{e}"
    );
    assert_eq!(s, before);
}

#[test]
fn auxiliary_addresses_are_never_handed_out() {
    let (mut s, mut ids) = fresh();
    let t = SystemTime::UNIX_EPOCH;
    let aux = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(n, ip)| (n.to_string(), ip.to_string())).collect()
    };
    let spec = |name: &str, v4: &[(&str, &str)], v6: &[(&str, &str)]| NetworkSpec {
        subnet: Some("10.40.0.0/29".into()),
        aux_addresses: aux(v4),
        ipv6: true,
        pools6: vec![PoolSpec {
            subnet: Some("fd40::/125".into()),
            aux_addresses: aux(v6),
            ..PoolSpec::default()
        }],
        ..net(name)
    };
    let nid = s
        .create_network(
            spec(
                "lan",
                &[("router", "10.40.0.2"), ("printer", "10.40.0.4")],
                &[("router6", "fd40::2")],
            ),
            ids.next(),
            t,
            &HostFacts::default(),
        )
        .unwrap();
    // Dynamic addresses skip them; a static one is refused, naming the name.
    create_sb(&mut s, &mut ids, sb("a", "lan")).unwrap();
    create_sb(&mut s, &mut ids, sb("b", "lan")).unwrap();
    assert_eq!(ep_of(&s, "a", "lan").ip, Some(Ipv4Addr::new(10, 40, 0, 3)));
    assert_eq!(ep_of(&s, "a", "lan").ip6, Some("fd40::3".parse().unwrap()));
    assert_eq!(ep_of(&s, "b", "lan").ip, Some(Ipv4Addr::new(10, 40, 0, 5)));
    let before = s.clone();
    let e = create_sb(
        &mut s,
        &mut ids,
        SandboxSpec {
            ip: Some("10.40.0.4".into()),
            ..sb("c", "lan")
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "address 10.40.0.4 is reserved as auxiliary address \"printer\" on network lan"
    );
    let e = create_sb(
        &mut s,
        &mut ids,
        SandboxSpec {
            ip6: Some("fd40::2".into()),
            ..sb("c", "lan")
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("reserved as auxiliary address \"router6\""),
        "{e}"
    );
    assert_eq!(s, before);
    // Inspect shows each with its subnet, as Docker does.
    let r = <crate::api::NetworkResource as crate::api::FromModel<_>>::of(&s, &s.networks[&nid]);
    assert_eq!(
        r.ipam.config[0].auxiliary_addresses,
        aux(&[("printer", "10.40.0.4"), ("router", "10.40.0.2")])
    );
    assert_eq!(r.ipam.config[1].auxiliary_addresses, aux(&[("router6", "fd40::2")]));
    // One more sandbox fits (.6); the /29 is then full, the aux addresses untouched.
    create_sb(&mut s, &mut ids, sb("c", "lan")).unwrap();
    let e = create_sb(&mut s, &mut ids, sb("d", "lan")).unwrap_err();
    assert!(e.to_string().contains("no available IPv4 addresses"), "{e}");

    let (mut s, mut ids) = fresh();
    let before = s.clone();
    for (v4, v6, says) in [
        (&[("x", "10.41.0.9")][..], &[][..], "invalid aux-address x=10.41.0.9: no matching subnet: it must lie in the subnet given with it (10.40.0.0/29)"),
        (&[("x", "10.40.0.1")], &[], "it is the subnet's network, broadcast or gateway address (10.40.0.0/29)"),
        (&[("x", "10.40.0.7")], &[], "network, broadcast or gateway"),
        (&[("x", "router")], &[], "expected NAME=IP with an IPv4 or IPv6 address"),
        (&[("", "10.40.0.2")], &[], "a name is 1-64 characters"),
        (&[("x\n", "10.40.0.2")], &[], "a name is 1-64 characters"),
        (&[("x", "10.40.0.2"), ("y", "10.40.0.2")], &[], "invalid aux-address y=10.40.0.2: the address is auxiliary address x already"),
        (&[("x", "10.40.0.2")], &[("x", "fd40::2")], "invalid aux-address x=fd40::2: the name is given twice"),
        (&[], &[("x", "fd41::2")], "no matching subnet: it must lie in the subnet given with it (fd40::/125)"),
        (&[], &[("x", "fd40::1")], "gateway"),
        (&[("x", "fd40::2")], &[], "no matching subnet"),
    ] {
        let e = s
            .create_network(spec("bad", v4, v6), ids.next(), t, &HostFacts::default())
            .unwrap_err();
        assert!(e.to_string().contains(says), "{v4:?} {v6:?}: {e}");
    }
    // Without a subnet given, nothing can hold one; an overlay's addresses are dealt between
    // hosts; a macvlan host_access child's address is the host's.
    let cases = [
        (
            NetworkSpec {
                aux_addresses: aux(&[("x", "172.17.0.5")]),
                ..net("auto")
            },
            "no matching subnet: it must lie in the subnet given with it (none)",
        ),
        (
            NetworkSpec {
                driver: "overlay".into(),
                ..spec("ov", &[("x", "10.40.0.2")], &[])
            },
            "an overlay network takes no auxiliary addresses",
        ),
        (
            NetworkSpec {
                driver: "macvlan".into(),
                subnet: Some("10.42.0.0/24".into()),
                aux_addresses: aux(&[("x", "10.42.0.254")]),
                options: [("parent", "eth9"), ("host_access", "true")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..net("mv")
            },
            "invalid aux-address x=10.42.0.254: it is the address of the host's own interface (host_access)",
        ),
    ];
    for (spec, says) in cases {
        let e = s
            .create_network(spec, ids.next(), t, &HostFacts::default())
            .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    let many = (0..=MAX_AUX_ADDRESSES).map(|i| (format!("d{i}"), format!("10.43.{}.{}", i / 200, 2 + i % 200)));
    let e = s
        .create_network(
            NetworkSpec {
                subnet: Some("10.43.0.0/16".into()),
                aux_addresses: many.collect(),
                ..net("many")
            },
            ids.next(),
            t,
            &HostFacts::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("a network takes at most 256"), "{e}");
    assert_eq!(s, before);
}

#[test]
fn host_ports_left_open_are_chosen_and_exposed_ports_published_with_publish_all() {
    let (mut s, mut ids) = fresh();
    s.create_network(net("web"), ids.next(), SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    let with = |name: &str, publish: &[&str], expose: &[&str], all: bool| SandboxSpec {
        publish: publish.iter().map(ToString::to_string).collect(),
        expose: expose.iter().map(ToString::to_string).collect(),
        publish_all: all,
        ..sb(name, "web")
    };
    let shown = |s: &State, name: &str| -> Vec<String> {
        s.sandbox(name).unwrap().ports.iter().map(ToString::to_string).collect()
    };
    create_sb(
        &mut s,
        &mut ids,
        with("a", &["80", "127.0.0.1::53/udp", "9000-9010:81"], &[], false),
    )
    .unwrap();
    assert_eq!(
        shown(&s, "a"),
        [
            "80/tcp -> 0.0.0.0:49153",
            "53/udp -> 127.0.0.1:49153",
            "81/tcp -> 0.0.0.0:9000"
        ]
    );
    // The next sandbox's open ports skip what is published, and what the host says is busy.
    let mut spec = with("b", &["80", "9000-9010:81"], &["443", "8000-8001/udp", "80"], true);
    spec.host_port_free = Some(|b| b.host_port != 49155);
    create_sb(&mut s, &mut ids, spec).unwrap();
    assert_eq!(
        shown(&s, "b"),
        [
            "80/tcp -> 0.0.0.0:49154",
            "81/tcp -> 0.0.0.0:9001",
            "443/tcp -> 0.0.0.0:49156",
            "8000/udp -> 0.0.0.0:49154",
            "8001/udp -> 0.0.0.0:49156",
        ]
    );
    let exposed = &s.sandbox("b").unwrap().exposed;
    assert_eq!(
        exposed,
        &[
            (443, Proto::Tcp),
            (8000, Proto::Udp),
            (8001, Proto::Udp),
            (80, Proto::Tcp),
            (81, Proto::Tcp)
        ]
    );
    // Many open ports at once, past many published ones: each is a look-up, not a scan.
    for name in ["m1", "m2"] {
        create_sb(&mut s, &mut ids, with(name, &[], &["1-1000"], true)).unwrap();
    }
    let m2 = &s.sandbox("m2").unwrap().ports;
    assert_eq!((m2.len(), m2[0].host_port, m2[999].host_port), (1000, 50156, 51155));
    // --expose alone publishes nothing; SCTP goes through the firewall.
    create_sb(&mut s, &mut ids, with("c", &["9132:132/sctp"], &["7000"], false)).unwrap();
    assert_eq!(shown(&s, "c"), ["132/sctp -> 0.0.0.0:9132"]);
    let before = s.clone();
    for (spec, says) in [
        (
            with("d", &["9000-9000:81"], &[], false),
            "host port 0.0.0.0:9000/tcp is already published by sandbox a",
        ),
        (
            with("d", &["9000-9001:81"], &[], false),
            "no free host port for 81/tcp in 9000-9001",
        ),
        (
            with("d", &["127.0.0.1:9133:132/sctp"], &[], false),
            "SCTP ports are published through the host's firewall alone",
        ),
        (
            with("d", &["1-2000"], &[], false),
            "a sandbox exposes and publishes at most 1024 ports",
        ),
        (
            with("d", &[], &["1-2000"], true),
            "a sandbox exposes and publishes at most 1024 ports",
        ),
        (with("d", &[], &["80/icmp"], false), "invalid protocol \"icmp\""),
        (
            SandboxSpec {
                network: "host".into(),
                ..with("d", &[], &["80"], true)
            },
            "-p cannot be used with network mode \"host\"",
        ),
    ] {
        let e = create_sb(&mut s, &mut ids, spec).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    assert_eq!(s, before);
}

#[test]
fn default_address_pools_and_the_bridge_s_address() {
    let (mut s, mut ids) = fresh();
    let t = SystemTime::UNIX_EPOCH;
    let host = HostFacts {
        pools: vec!["base=10.123.0.0/16,size=24".parse().unwrap()],
        pools6: vec!["base=fd12:3456::/48,size=64".parse().unwrap()],
        routes: vec!["10.123.0.0/24".parse().unwrap()],
        ..HostFacts::default()
    };
    let six = |name: &str| NetworkSpec {
        ipv6: true,
        ..net(name)
    };
    let a = s.create_network(six("a"), ids.next(), t, &host).unwrap();
    let b = s.create_network(net("b"), ids.next(), t, &host).unwrap();
    let subnets = |id: &Id| {
        let n = &s.networks[id];
        (
            n.ipam.unwrap().subnet.to_string(),
            n.ipam6.first().map(|p| p.subnet.to_string()),
        )
    };
    assert_eq!(
        subnets(&a),
        ("10.123.1.0/24".into(), Some("fd12:3456::/64".into())),
        "past the host's route"
    );
    assert_eq!(subnets(&b), ("10.123.2.0/24".into(), None));
    // --bip moves the default bridge while no sandbox is on it.
    assert!(s.set_bip("10.124.0.1/24", &host).unwrap());
    assert!(
        !s.set_bip("10.124.0.1/24", &host).unwrap(),
        "the same again changes nothing"
    );
    let bridge = s.network(DEFAULT_BRIDGE).unwrap().ipam.unwrap();
    assert_eq!(
        (bridge.subnet.to_string(), bridge.gateway.to_string()),
        ("10.124.0.0/24".into(), "10.124.0.1".into())
    );
    create_sb(&mut s, &mut ids, sb("x", "bridge")).unwrap();
    assert_eq!(ep_of(&s, "x", "bridge").ip, Some(Ipv4Addr::new(10, 124, 0, 2)));
    let before = s.clone();
    let e = s.set_bip("10.125.0.1/24", &host).unwrap_err();
    assert!(
        e.to_string()
            .contains("would move the default bridge from 10.124.0.1/24, where sandboxes x have their addresses"),
        "{e}"
    );
    assert_eq!(s, before);
    s.remove_sandbox("x").unwrap();
    let before_bad = s.clone();
    for (bip, says) in [
        (
            "10.125.0.1",
            "invalid --bip \"10.125.0.1\": expected the bridge's address and prefix length",
        ),
        ("10.125.0.x/24", "expected an IPv4 address"),
        ("10.125.0.1/33", "a prefix length is 0-32"),
        ("10.125.0.0/24", "it must be a host address inside the subnet"),
        ("10.125.0.1/31", "prefix length must be at most 30"),
        ("10.123.1.1/24", "overlaps network a"),
        ("127.0.0.1/8", "loopback"),
    ] {
        let e = s.set_bip(bip, &host).unwrap_err();
        assert!(e.to_string().contains(says), "{bip}: {e}");
    }
    assert_eq!(s, before_bad);
}
