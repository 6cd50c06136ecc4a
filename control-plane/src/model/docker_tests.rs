//! The Docker plugin's flow through the model, in the order Docker's libnetwork calls.

use super::*;
use std::net::IpAddr;

const NET: &str = "2bcd35caf9ecef96ad443477065e601c0d8d94e7d2e3041ee6e338a200770b7e";
const EP1: &str = "f59d236215183b1af7a1760abbae3cac0666625e7c6f5cff711327656305fb57";
const EP2: &str = "65539a98ca0ac6356c2bbda5f40cdc06ef2ee9bfd6af25309ad4762b7da67a73";

fn fresh() -> State {
    State::with_defaults(
        [
            Id::from_random([1; 32]),
            Id::from_random([2; 32]),
            Id::from_random([3; 32]),
        ],
        SystemTime::UNIX_EPOCH,
    )
}

fn spec(id: &str, pool: &str, gw: &str, opts: &[(&str, &str)]) -> DockerNetworkSpec {
    DockerNetworkSpec {
        id: id.into(),
        options: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ipv4: vec![("switch-local".into(), pool.into(), gw.into())],
        ..Default::default()
    }
}

/// RequestPool, the gateway, CreateNetwork: what `docker network create` does.
fn network(s: &mut State, subnet: &str, range: &str) -> (String, Id) {
    let (pool, cidr) = s
        .docker_request_pool(subnet, range, false, &HostFacts::default())
        .unwrap();
    let gw = s.docker_request_address(&pool, "", true).unwrap();
    let (net, made) = s
        .docker_create_network(
            spec(NET, &cidr.to_string(), &format!("{gw}/24"), &[]),
            "switch",
            SystemTime::UNIX_EPOCH,
            &crate::HostFacts::default(),
        )
        .unwrap();
    assert!(made);
    (pool, net)
}

fn join(s: &mut State, ep: &str, key: &str) -> Result<Joined, ModelError> {
    s.docker_join(NET, ep, key, Id::from_random([9; 32]), SystemTime::UNIX_EPOCH)
}

#[test]
fn a_container_walks_through_docker_s_calls() {
    let mut s = fresh();
    let (pool, net) = network(&mut s, "192.168.0.0/24", "");
    assert_eq!(s.networks[&net].name, "docker-2bcd35caf9ec");
    assert_eq!(s.networks[&net].ipam.unwrap().gateway, Ipv4Addr::new(192, 168, 0, 1));
    // docker run --ip 192.168.0.10
    let ip = s.docker_request_address(&pool, "192.168.0.10", false).unwrap();
    let (mac, chosen) = s
        .docker_create_endpoint(NET, EP1, (&format!("{ip}/24"), ""), "")
        .unwrap();
    assert_eq!((mac.to_string().as_str(), chosen), ("02:42:c0:a8:00:0a", true));
    let j = join(&mut s, EP1, "/var/run/docker/netns/e8cd194b75b1").unwrap();
    assert!(j.new_sandbox);
    let sb = &s.sandboxes[&j.sandbox];
    assert_eq!(sb.name, "docker-e8cd194b75b1");
    let ep = &s.endpoints[&j.endpoint];
    assert_eq!(ep.ip.map(IpAddr::from), Some(ip));
    assert!(ep.handoff);
    assert_eq!(ep.ifname.as_deref(), Some("swdf59d23621518"));
    // No other endpoint takes a held address, switchd's or Docker's.
    assert!(s.docker_request_address(&pool, "192.168.0.10", false).is_err());
    let next = s.docker_request_address(&pool, "", false).unwrap();
    assert_eq!(next, Ipv4Addr::new(192, 168, 0, 2));
    // docker stop: Leave, DeleteEndpoint, ReleaseAddress; the sandbox goes with its last endpoint.
    let left = s.docker_leave(NET, EP1).unwrap();
    assert!(left.sandbox_removed);
    assert!(s.docker_delete_endpoint(NET, EP1).unwrap().is_none());
    s.docker_release_address(&pool, "192.168.0.10").unwrap();
    s.docker_release_address(&pool, "192.168.0.2").unwrap();
    assert!(s.sandboxes.values().all(|x| x.name != "docker-e8cd194b75b1"));
    // docker start: the same address again.
    assert_eq!(s.docker_request_address(&pool, "192.168.0.10", false).unwrap(), ip);
    s.docker_release_address(&pool, "192.168.0.10").unwrap();
    // docker network rm
    s.docker_release_address(&pool, "192.168.0.1").unwrap();
    assert!(s.docker_release_pool(&pool).is_err(), "a network still uses it");
    assert!(s.docker_delete_network(NET).unwrap().is_some());
    s.docker_release_pool(&pool).unwrap();
    assert!(s.docker == DockerState::default());
}

#[test]
fn two_networks_of_one_container_share_its_sandbox() {
    let mut s = fresh();
    let (pool, _) = network(&mut s, "10.1.0.0/24", "");
    let a = s.docker_request_address(&pool, "", false).unwrap();
    s.docker_create_endpoint(NET, EP1, (&format!("{a}/24"), ""), "")
        .unwrap();
    let b = s.docker_request_address(&pool, "", false).unwrap();
    s.docker_create_endpoint(NET, EP2, (&format!("{b}/24"), ""), "")
        .unwrap();
    let key = "/run/docker/netns/abc";
    let j1 = join(&mut s, EP1, key).unwrap();
    // The same network twice in one sandbox is refused, as switchd's connect refuses it.
    let e = join(&mut s, EP2, key).unwrap_err();
    assert!(e.to_string().contains("already connected"), "{e}");
    assert!(!s.docker.endpoints[&Id::parse(EP2).unwrap()].joined);
    let j2 = s
        .docker_join(
            NET,
            EP2,
            "/run/docker/netns/def",
            Id::from_random([8; 32]),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
    assert_ne!(j1.sandbox, j2.sandbox);
}

#[test]
fn hostile_requests_change_nothing() {
    let mut s = fresh();
    let (pool, _) = network(&mut s, "10.2.0.0/24", "10.2.0.128/25");
    let before = s.clone();
    let refused = [
        s.clone()
            .docker_request_pool("10.2.0.0/16", "", false, &HostFacts::default())
            .map(|_| ()),
        s.clone()
            .docker_request_pool("fe80::/64", "", true, &HostFacts::default())
            .map(|_| ()),
        s.clone()
            .docker_request_pool("fd00::/64", "fd00::/80", true, &HostFacts::default())
            .map(|_| ()),
        s.clone()
            .docker_request_pool("224.0.0.0/24", "", false, &HostFacts::default())
            .map(|_| ()),
        s.clone().docker_request_address("nope", "", false).map(|_| ()),
        s.clone().docker_request_address(&pool, "10.3.0.1", false).map(|_| ()),
        s.clone().docker_request_address(&pool, "10.2.0.1", false).map(|_| ()),
        s.clone().docker_request_address(&pool, "x", false).map(|_| ()),
        s.clone()
            .docker_create_network(
                spec("zz", "10.4.0.0/24", "10.4.0.1/24", &[]),
                "switch",
                SystemTime::UNIX_EPOCH,
                &crate::HostFacts::default(),
            )
            .map(|_| ()),
        s.clone()
            .docker_create_endpoint(NET, EP1, ("10.2.0.200/24", ""), "")
            .map(|_| ()),
        s.clone()
            .docker_create_endpoint(NET, "short", ("10.2.0.200/24", ""), "")
            .map(|_| ()),
        s.clone()
            .docker_create_endpoint(EP2, EP1, ("10.2.0.200/24", ""), "")
            .map(|_| ()),
        s.clone().docker_leave(NET, EP1).map(|_| ()),
        s.clone().docker_delete_endpoint(NET, EP1).map(|_| ()),
        s.clone().docker_delete_network(EP2).map(|_| ()),
        join(&mut s.clone(), EP1, "/x").map(|_| ()),
    ];
    for (i, r) in refused.iter().enumerate() {
        assert!(r.is_err(), "request {i} was accepted");
    }
    // An IPv6-only network (no IPv4 pool from Docker) is switchctl's to make, and says so.
    let v6_only = DockerNetworkSpec {
        ipv4: vec![],
        ipv6: true,
        ..spec(EP2, "", "", &[])
    };
    let e = s
        .clone()
        .docker_create_network(v6_only, "switch", SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Docker gave no IPv4 subnet: IPv6-only networks are made with switchctl"),
        "{e}"
    );
    // An address from the pool, then a join with a relative key.
    let ip = s.docker_request_address(&pool, "", false).unwrap();
    assert_eq!(ip, Ipv4Addr::new(10, 2, 0, 128));
    s.docker_create_endpoint(NET, EP1, (&format!("{ip}/24"), ""), "")
        .unwrap();
    let after_create = s.clone();
    assert!(join(&mut s, EP1, "netns/abc").is_err());
    assert!(join(&mut s, EP1, "/a/../b").is_err());
    assert_eq!(s, after_create);
    assert_ne!(before, s);
}

#[test]
fn an_overlay_needs_switchd_s_ipam_and_a_second_host_joins_by_name() {
    let mut s = fresh();
    // Docker's default IPAM made the pool: switchd's IPAM has none of it.
    let e = s
        .docker_create_network(
            spec(NET, "10.5.0.0/24", "10.5.0.1/24", &[("switch.driver", "overlay")]),
            "switch",
            SystemTime::UNIX_EPOCH,
            &crate::HostFacts::default(),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "an overlay network's addresses must be unique across hosts: add --ipam-driver switch to docker network create"
    );
    // The overlay as another host made it (switchctl here), then the Docker network that is it.
    s.host_index = Some(1);
    let made = NetworkSpec {
        name: "my_net2".into(),
        driver: "overlay".into(),
        subnet: Some("10.6.0.0/24".into()),
        ..Default::default()
    };
    let net = s
        .create_network(
            made,
            Id::from_random([7; 32]),
            SystemTime::UNIX_EPOCH,
            &HostFacts::default(),
        )
        .unwrap();
    let (pool, _) = s
        .docker_request_pool("10.6.0.0/24", "", false, &HostFacts::default())
        .unwrap();
    assert!(
        s.docker_request_address(&pool, "10.6.0.9", true).is_err(),
        "another gateway"
    );
    let gw = s.docker_request_address(&pool, "", true).unwrap();
    assert_eq!(gw, Ipv4Addr::new(10, 6, 0, 1));
    let opts = [("switch.driver", "overlay"), ("switch.network", "my_net2")];
    let (linked, made) = s
        .docker_create_network(
            spec(NET, "10.6.0.0/24", "10.6.0.1/24", &opts),
            "switch",
            SystemTime::UNIX_EPOCH,
            &crate::HostFacts::default(),
        )
        .unwrap();
    assert_eq!((linked.clone(), made), (net.clone(), false));
    // Host 1's share of the addresses, never host 0's.
    let ip = s.docker_request_address(&pool, "", false).unwrap();
    let pool_of = s.address_pool(&s.networks[&net]).unwrap().unwrap();
    let IpAddr::V4(v4) = ip else { panic!("{ip} is not IPv4") };
    assert!(pool_of.may_allocate(v4), "{ip} is outside host 1's share");
    assert!(
        s.remove_network("my_net2").is_err(),
        "switchctl cannot remove Docker's network"
    );
    s.docker_release_address(&pool, &ip.to_string()).unwrap();
    // Removing the Docker network leaves the overlay it did not make.
    assert!(s.docker_delete_network(NET).unwrap().is_none());
    assert!(s.networks.contains_key(&net));
}

#[test]
fn published_ports_clash_with_other_sandboxes() {
    let mut s = fresh();
    let (pool, _) = network(&mut s, "10.7.0.0/24", "");
    for (ep, key) in [(EP1, "/k/1"), (EP2, "/k/2")] {
        let ip = s.docker_request_address(&pool, "", false).unwrap();
        s.docker_create_endpoint(NET, ep, (&format!("{ip}/24"), ""), "")
            .unwrap();
        let sandbox = Id::from_random([key.len() as u8 + key.as_bytes()[3]; 32]);
        s.docker_join(NET, ep, key, sandbox, SystemTime::UNIX_EPOCH).unwrap();
    }
    let all = std::net::Ipv4Addr::UNSPECIFIED.into();
    let b: Vec<_> = crate::ports::parse_request("8080:80", all)
        .unwrap()
        .iter()
        .filter_map(crate::ports::PortRequest::fixed)
        .collect();
    s.docker_publish(NET, EP1, b.clone()).unwrap();
    let e = s.docker_publish(NET, EP2, b).unwrap_err();
    assert!(e.to_string().contains("already published by sandbox docker-1"), "{e}");
}

#[test]
fn the_engine_names_a_container_s_sandbox() {
    let mut s = fresh();
    let (pool, _) = network(&mut s, "10.8.0.0/24", "");
    let ip = s.docker_request_address(&pool, "", false).unwrap();
    s.docker_create_endpoint(NET, EP1, (&format!("{ip}/24"), ""), "")
        .unwrap();
    let j = join(&mut s, EP1, "/k/1").unwrap();
    let aliases = vec![
        "web".to_string(),
        "vm1".to_string(),
        "bad name".to_string(),
        "web".to_string(),
    ];
    assert_eq!(
        s.docker_name(&j.endpoint, "vm1", &aliases).unwrap().as_deref(),
        Some("vm1")
    );
    assert_eq!(s.sandboxes[&j.sandbox].name, "vm1");
    assert_eq!(s.endpoints[&j.endpoint].aliases, vec!["web".to_string()]);
    // Told again: nothing changes. A name another sandbox has is not taken.
    assert_eq!(s.docker_name(&j.endpoint, "vm1", &aliases).unwrap(), None);
    assert_eq!(s.docker_name(&j.endpoint, "bridge name", &[]).unwrap(), None);
    assert!(s.docker_name(&Id::parse(EP2).unwrap(), "x", &[]).is_err(), "not joined");
    let ip = s.docker_request_address(&pool, "", false).unwrap();
    s.docker_create_endpoint(NET, EP2, (&format!("{ip}/24"), ""), "")
        .unwrap();
    let j2 = s
        .docker_join(NET, EP2, "/k/2", Id::from_random([8; 32]), SystemTime::UNIX_EPOCH)
        .unwrap();
    assert_eq!(s.docker_name(&j2.endpoint, "vm1", &[]).unwrap(), None);
    assert_eq!(s.sandboxes[&j2.sandbox].name, "docker-2");
}

#[test]
fn a_network_docker_made_takes_docker_s_name_when_it_is_free() {
    let mut s = fresh();
    let (_, net) = network(&mut s, "192.168.0.0/24", "");
    // Taken (the default bridge), invalid, or unknown: nothing changes.
    assert_eq!(s.docker_name_network(NET, "bridge").unwrap(), None);
    assert_eq!(s.docker_name_network(NET, "-bad name").unwrap(), None);
    assert!(matches!(s.docker_name_network(EP1, "x"), Err(ModelError::NotFound(_))));
    assert_eq!(s.networks[&net].name, "docker-2bcd35caf9ec");
    assert_eq!(
        s.docker_name_network(NET, "my_net2").unwrap().as_deref(),
        Some("my_net2")
    );
    assert_eq!(s.networks[&net].name, "my_net2");
    // Named once: a later name (a Docker rename is not one the protocol tells) keeps it.
    assert_eq!(s.docker_name_network(NET, "other").unwrap(), None);
    assert_eq!(s.networks[&net].name, "my_net2");
}

#[test]
fn docker_s_addresses_on_a_claimed_overlay_are_this_host_s_claims() {
    use crate::cluster::records::Version;
    use crate::cluster::space::{Claim, Space};
    let mut s = fresh();
    s.host_name = Some("h1".into());
    let made = NetworkSpec {
        name: "ov".into(),
        driver: "overlay".into(),
        subnet: Some("10.8.0.0/24".into()),
        ..Default::default()
    };
    let net = s
        .create_network(
            made,
            Id::from_random([8; 32]),
            SystemTime::UNIX_EPOCH,
            &HostFacts::default(),
        )
        .unwrap();
    let claim = |owner: &str, counter| Claim {
        owner: owner.into(),
        version: Version {
            counter,
            origin: "h0".into(),
        },
    };
    s.networks.get_mut(&net).unwrap().space = Some(Space::new(256));
    s.merge_claim(&net, (0, 256), claim("h0", 1));
    let (pool, _) = s
        .docker_request_pool("10.8.0.0/24", "", false, &HostFacts::default())
        .unwrap();
    s.docker_request_address(&pool, "", true).unwrap();
    // Nothing is h1's yet: other hosts may give some.
    assert!(matches!(
        s.docker_request_address(&pool, "", false),
        Err(ModelError::OutOfClaims { .. })
    ));
    // A static address h0 owns is not taken; h0 is named.
    let e = s.docker_request_address(&pool, "10.8.0.9", false).unwrap_err();
    assert!(
        matches!(&e, ModelError::OwnedElsewhere { offset: 9, owner, .. } if owner == "h0"),
        "{e:?}"
    );
    s.merge_claim(&net, (128, 256), claim("h1", 2));
    assert_eq!(
        s.docker_request_address(&pool, "", false).unwrap(),
        Ipv4Addr::new(10, 8, 0, 128)
    );
}

#[test]
fn a_dual_stack_network_walks_through_docker_s_calls() {
    let mut s = fresh();
    // docker network create --ipv6 --ipam-driver switch: a pool of each family, a gateway
    // of each, then CreateNetwork with both.
    let (pool4, cidr4) = s
        .docker_request_pool("10.9.0.0/24", "", false, &HostFacts::default())
        .unwrap();
    let (pool6, cidr6) = s.docker_request_pool("", "", true, &HostFacts::default()).unwrap();
    assert_eq!(cidr6, "fd01:101:101::/64", "a /64 of the host's unique local prefix");
    assert!(
        s.docker_request_pool("fd01:101:101::/80", "", true, &HostFacts::default())
            .is_err(),
        "overlaps the pool"
    );
    let gw4 = s.docker_request_address(&pool4, "", true).unwrap();
    let gw6 = s.docker_request_address(&pool6, "", true).unwrap();
    assert_eq!(gw6.to_string(), "fd01:101:101::1");
    let net_spec = DockerNetworkSpec {
        ipv6: true,
        ipv6_pools: vec![("switch-local".into(), cidr6.clone(), format!("{gw6}/64"))],
        ..spec(NET, &cidr4, &format!("{gw4}/24"), &[])
    };
    let (net, made) = s
        .docker_create_network(net_spec, "switch", SystemTime::UNIX_EPOCH, &HostFacts::default())
        .unwrap();
    assert!(made);
    assert_eq!(s.networks[&net].ipam6[0].subnet.to_string(), cidr6);
    assert_eq!(
        s.docker.networks[&Id::parse(NET).unwrap()].pool6.as_deref(),
        Some(pool6.as_str())
    );
    // docker run: an address of each family, the endpoint, the join.
    let ip4 = s.docker_request_address(&pool4, "", false).unwrap();
    let ip6 = s.docker_request_address(&pool6, "", false).unwrap();
    assert_eq!(ip6.to_string(), "fd01:101:101::2");
    let addrs = (format!("{ip4}/24"), format!("{ip6}/64"));
    s.docker_create_endpoint(NET, EP1, (&addrs.0, &addrs.1), "").unwrap();
    join(&mut s, EP1, "/var/run/docker/netns/c1").unwrap();
    let ep = &s.endpoints[&Id::parse(EP1).unwrap()];
    assert_eq!(ep.ip6.map(IpAddr::from), Some(ip6));
    // A sandbox of switchd's on the network takes neither Docker's addresses nor the gateway.
    let sb = SandboxSpec {
        name: "mine".into(),
        network: s.networks[&net].name.clone(),
        ..Default::default()
    };
    s.create_sandbox(
        sb,
        Id::from_random([7; 32]),
        Id::from_random([8; 32]),
        std::path::Path::new("/run/netns"),
        SystemTime::UNIX_EPOCH,
    )
    .unwrap();
    let mine = s.endpoints.values().find(|e| e.id == Id::from_random([8; 32])).unwrap();
    assert_eq!(mine.ip6.unwrap().to_string(), "fd01:101:101::3");
    // An address Docker holds for an endpoint yet to join is no sandbox's to ask for.
    let held = s.docker_request_address(&pool6, "", false).unwrap();
    let sb = SandboxSpec {
        name: "asks".into(),
        network: s.networks[&net].name.clone(),
        ip6: Some(held.to_string()),
        ..Default::default()
    };
    let e = s
        .create_sandbox(
            sb,
            Id::from_random([5; 32]),
            Id::from_random([6; 32]),
            std::path::Path::new("/run/netns"),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains(&format!("address {held} is already in use")),
        "{e}"
    );
    // An IPv6 address switchd's IPAM did not hand out, or outside the subnet, is refused.
    let v4 = format!("{}/24", s.docker_request_address(&pool4, "", false).unwrap());
    let e = s
        .docker_create_endpoint(NET, EP2, (&v4, "fd01:101:101::77/64"), "")
        .unwrap_err();
    assert!(e.to_string().contains("was not handed out by switchd's IPAM"), "{e}");
    let e = s.docker_create_endpoint(NET, EP2, (&v4, "fd99::7/64"), "").unwrap_err();
    assert!(e.to_string().contains("has no IPv6 subnet holding it"), "{e}");
    // Released, the address goes back to the pool; the pool goes once the network has.
    s.docker_release_address(&pool6, &format!("{ip6}/64")).unwrap();
    assert!(!s.docker.pools6[&pool6]
        .held
        .contains(&"fd01:101:101::2".parse().unwrap()));
    assert!(s.docker_release_pool(&pool6).is_err(), "the network still uses it");
}
