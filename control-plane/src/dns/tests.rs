use std::path::Path;
use std::time::SystemTime;

use std::net::IpAddr;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::*;
use crate::model::{ConnectSpec, NetworkSpec, SandboxSpec};

fn id(n: u8) -> Id {
    Id::from_random([n; 32])
}

/// my_net1 (172.18/16): vm1 (alias web), vm3. my_net2 (192.168.0/24): vm2; vm3 joins it too.
fn world() -> State {
    let t = SystemTime::UNIX_EPOCH;
    let mut s = State::with_defaults([id(1), id(2), id(3)], t);
    s.create_network(
        NetworkSpec {
            name: "my_net1".into(),
            ..Default::default()
        },
        id(4),
        t,
        &crate::HostFacts::default(),
    )
    .unwrap();
    let n2 = NetworkSpec {
        name: "my_net2".into(),
        subnet: Some("192.168.0.0/24".into()),
        ..Default::default()
    };
    s.create_network(n2, id(5), t, &crate::HostFacts::default()).unwrap();
    let sb = |name: &str, net: &str, aliases: Vec<String>| SandboxSpec {
        name: name.into(),
        network: net.into(),
        aliases,
        ..Default::default()
    };
    let dir = Path::new("/run/netns");
    s.create_sandbox(sb("vm1", "my_net1", vec!["web".into()]), id(10), id(11), dir, t)
        .unwrap();
    s.create_sandbox(sb("vm2", "my_net2", vec![]), id(12), id(13), dir, t)
        .unwrap();
    s.create_sandbox(sb("vm3", "my_net1", vec![]), id(14), id(15), dir, t)
        .unwrap();
    s.connect("my_net2", "vm3", ConnectSpec::default(), id(16)).unwrap();
    s.create_sandbox(sb("old", "bridge", vec![]), id(17), id(18), dir, t)
        .unwrap();
    s
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

fn ask(s: &State, net: u8, asker: [u8; 4], name: &str, t: RecordType) -> Decision {
    decide(s, &id(net), Ipv4Addr::from(asker).into(), &query(name, t))
}

fn answers(d: Decision) -> (ResponseCode, Vec<String>) {
    let Decision::Reply(bytes) = d else {
        panic!("expected a reply, got {d:?}")
    };
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.id, 4242);
    let v = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            RData::PTR(p) => p.0.to_ascii(),
            other => format!("{other:?}"),
        })
        .collect();
    (m.metadata.response_code, v)
}

const VM1: [u8; 4] = [172, 18, 0, 2];
const VM3_ON_NET2: [u8; 4] = [192, 168, 0, 3];

#[test]
fn names_aliases_and_network_qualified_names() {
    let s = world();
    assert_eq!(answers(ask(&s, 4, VM1, "vm3.", RecordType::A)).1, ["172.18.0.3"]);
    assert_eq!(answers(ask(&s, 4, VM1, "WEB.", RecordType::A)).1, ["172.18.0.2"]);
    assert_eq!(
        answers(ask(&s, 4, VM1, "vm3.my_net1.", RecordType::A)).1,
        ["172.18.0.3"]
    );
    let (code, v) = answers(ask(&s, 4, VM1, "vm3.", RecordType::AAAA));
    assert_eq!((code, v.len()), (ResponseCode::NoError, 0), "known name, no IPv6 data");
}

#[test]
fn a_link_alias_is_the_linking_sandbox_s_alone() {
    let mut s = world();
    let t = SystemTime::UNIX_EPOCH;
    // vm4 joins my_net1 linked to vm3 as "db", and to vm1 under vm1's own name.
    let spec = SandboxSpec {
        name: "vm4".into(),
        network: "my_net1".into(),
        links: vec!["vm3:db".into(), "vm1".into()],
        ..Default::default()
    };
    s.create_sandbox(spec, id(20), id(21), Path::new("/run/netns"), t)
        .unwrap();
    let vm4 = [172, 18, 0, 4];
    assert_eq!(answers(ask(&s, 4, vm4, "db.", RecordType::A)).1, ["172.18.0.3"]);
    assert_eq!(answers(ask(&s, 4, vm4, "DB.my_net1.", RecordType::A)).1, ["172.18.0.3"]);
    assert_eq!(answers(ask(&s, 4, vm4, "vm1.", RecordType::A)).1, ["172.18.0.2"]);
    assert_eq!(
        ask(&s, 4, VM1, "db.", RecordType::A),
        Decision::Forward,
        "only vm4 knows db"
    );
    // A link given at connect, on the network joined; a link to a sandbox that is not on the
    // network resolves to nothing there.
    let cs = ConnectSpec {
        links: vec!["vm1:front".into(), "vm2:other".into()],
        ..ConnectSpec::default()
    };
    s.connect("my_net2", "vm4", cs, id(22)).unwrap();
    let vm4_on_net2 = [192, 168, 0, 4];
    assert_eq!(ask(&s, 5, vm4_on_net2, "front.", RecordType::A), Decision::Forward);
    assert_eq!(
        answers(ask(&s, 5, vm4_on_net2, "other.", RecordType::A)).1,
        ["192.168.0.2"]
    );
    // Refused with the reason, the state unchanged.
    let before = s.clone();
    for (net, links, says) in [
        (
            "bridge",
            vec!["old"],
            "links on network connect are supported only for user-defined networks",
        ),
        ("my_net2", vec!["nobody:x"], "nobody"),
        ("my_net2", vec!["vm1:a b"], "link alias"),
        ("my_net2", vec!["vm3:x", "vm2:X"], "link alias X is given twice"),
    ] {
        let cs = ConnectSpec {
            links: links.into_iter().map(String::from).collect(),
            ..ConnectSpec::default()
        };
        let e = s.connect(net, "vm1", cs, id(23)).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    let self_link = ConnectSpec {
        links: vec!["vm1:me".into()],
        ..ConnectSpec::default()
    };
    let e = s.connect("my_net2", "vm1", self_link, id(23)).unwrap_err();
    assert!(e.to_string().contains("cannot link sandbox vm1 to itself"), "{e}");
    let opts = ConnectSpec {
        driver_opts: [("com.docker.network.endpoint.sysctls".to_string(), "x".to_string())].into(),
        ..ConnectSpec::default()
    };
    let e = s.connect("my_net2", "vm1", opts, id(23)).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown driver option \"com.docker.network.endpoint.sysctls\""),
        "{e}"
    );
    assert_eq!(s, before);
    let named = ConnectSpec {
        driver_opts: [("com.docker.network.endpoint.ifname".to_string(), "lan0".to_string())].into(),
        ..ConnectSpec::default()
    };
    let ep = s.connect("my_net2", "vm1", named, id(23)).unwrap();
    assert_eq!(s.endpoints[&ep].ifname.as_deref(), Some("lan0"));
}

#[test]
fn no_leak_across_networks_but_multi_homed_askers_see_both() {
    let s = world();
    // vm1 (my_net1 only) cannot see vm2 (my_net2 only): forwarded upstream, not answered.
    assert_eq!(ask(&s, 4, VM1, "vm2.", RecordType::A), Decision::Forward);
    // vm3 is on both: asking on my_net2 sees vm2, and vm1 through its other network.
    assert_eq!(
        answers(ask(&s, 5, VM3_ON_NET2, "vm2.", RecordType::A)).1,
        ["192.168.0.2"]
    );
    assert_eq!(
        answers(ask(&s, 5, VM3_ON_NET2, "vm1.", RecordType::A)).1,
        ["172.18.0.2"]
    );
    // vm3 itself is found with the address of the asker's network.
    assert_eq!(
        answers(ask(&s, 5, [192, 168, 0, 2], "vm3.", RecordType::A)).1,
        ["192.168.0.3"]
    );
    assert_eq!(answers(ask(&s, 4, VM1, "vm3.", RecordType::A)).1, ["172.18.0.3"]);
    // The default bridge has no names.
    assert_eq!(ask(&s, 1, [172, 17, 0, 2], "old.", RecordType::A), Decision::Forward);
}

#[test]
fn ptr_answers_name_dot_network() {
    let s = world();
    assert_eq!(
        answers(ask(&s, 4, VM1, "3.0.18.172.in-addr.arpa.", RecordType::PTR)).1,
        ["vm3.my_net1."]
    );
    assert_eq!(
        ask(&s, 4, VM1, "2.0.168.192.in-addr.arpa.", RecordType::PTR),
        Decision::Forward
    );
    assert_eq!(
        reverse_ip("1.2.3.4.in-addr.arpa"),
        Some(Ipv4Addr::new(4, 3, 2, 1).into())
    );
    assert_eq!(reverse_ip("2.3.4.in-addr.arpa"), None);
}

#[test]
fn garbage_gets_formerr_or_nothing_and_servfail_is_well_formed() {
    let s = world();
    assert_eq!(decide(&s, &id(4), Ipv4Addr::from(VM1).into(), &[1]), Decision::Ignore);
    let Decision::Reply(r) = decide(&s, &id(4), Ipv4Addr::from(VM1).into(), &[0x12, 0x34, 0xff]) else {
        panic!()
    };
    assert_eq!((r[0], r[1], r[3] & 0x0f), (0x12, 0x34, 1));
    let sf = servfail(&query("x.example.", RecordType::A)).unwrap();
    assert_eq!(
        Message::from_vec(&sf).unwrap().metadata.response_code,
        ResponseCode::ServFail
    );
    assert!(!is_truncated(&sf));
}

#[test]
fn answers_follow_disconnect_and_removal_at_once() {
    let mut s = world();
    s.disconnect("my_net2", "vm3").unwrap();
    assert_eq!(ask(&s, 5, [192, 168, 0, 2], "vm3.", RecordType::A), Decision::Forward);
    s.remove_sandbox("vm1").unwrap();
    assert_eq!(ask(&s, 4, [172, 18, 0, 3], "web.", RecordType::A), Decision::Forward);
}

#[test]
fn only_endpoints_of_the_network_get_answers() {
    let s = world();
    // vm1 is on my_net1 only: asking my_net2's server about my_net2's names is refused, and
    // nothing is forwarded for it either.
    for (name, t) in [("vm2.", RecordType::A), ("example.org.", RecordType::A)] {
        let Decision::Refuse(r) = ask(&s, 5, VM1, name, t) else {
            panic!("{name} answered to a stranger")
        };
        let m = Message::from_vec(&r).unwrap();
        assert_eq!((m.metadata.id, m.metadata.response_code), (4242, ResponseCode::Refused));
        assert!(m.answers.is_empty());
    }
    // The host, the underlay: no endpoint at all.
    assert!(matches!(
        ask(&s, 4, [10, 99, 0, 2], "vm3.", RecordType::A),
        Decision::Refuse(_)
    ));
    assert!(matches!(
        ask(&s, 4, [172, 18, 0, 1], "vm3.", RecordType::A),
        Decision::Refuse(_)
    ));
    // Garbage from a stranger gets nothing at all.
    assert_eq!(
        decide(&s, &id(4), Ipv4Addr::new(10, 99, 0, 2).into(), &[0x12, 0x34, 0xff]),
        Decision::Ignore
    );
}

/// my_net6 (dual-stack, fd06::/64): vm6 at fd06::2 (alias db), vm7 at fd06::7; vm1 of
/// my_net1 (IPv4 only) joins it too.
fn world6() -> State {
    let mut s = world();
    let n = NetworkSpec {
        name: "my_net6".into(),
        ipv6: true,
        pools6: vec![crate::model::PoolSpec {
            subnet: Some("fd06::/64".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let t = SystemTime::UNIX_EPOCH;
    s.create_network(n, id(6), t, &crate::HostFacts::default()).unwrap();
    let dir = Path::new("/run/netns");
    let sb = |name: &str, ip6: Option<&str>| SandboxSpec {
        name: name.into(),
        network: "my_net6".into(),
        ip6: ip6.map(Into::into),
        aliases: if name == "vm6" { vec!["db".into()] } else { vec![] },
        ..Default::default()
    };
    s.create_sandbox(sb("vm6", None), id(20), id(21), dir, t).unwrap();
    s.create_sandbox(sb("vm7", Some("fd06::7")), id(22), id(23), dir, t)
        .unwrap();
    s.connect("my_net6", "vm1", ConnectSpec::default(), id(24)).unwrap();
    s
}

fn ask6(s: &State, net: u8, asker: &str, name: &str, t: RecordType) -> Decision {
    decide(s, &id(net), asker.parse::<IpAddr>().unwrap(), &query(name, t))
}

#[test]
fn aaaa_and_ip6_arpa_answer_over_either_family() {
    let s = world6();
    // Asked over IPv6 or IPv4, the same names: AAAA gives the IPv6 address, A the IPv4 one.
    assert_eq!(answers(ask6(&s, 6, "fd06::7", "vm6.", RecordType::AAAA)).1, ["fd06::2"]);
    assert_eq!(
        answers(ask6(&s, 6, "fd06::7", "DB.my_net6.", RecordType::AAAA)).1,
        ["fd06::2"]
    );
    let v4 = s
        .endpoints
        .values()
        .find(|e| e.ip6 == Some("fd06::7".parse().unwrap()))
        .unwrap()
        .ip
        .unwrap();
    assert_eq!(
        answers(ask6(&s, 6, &v4.to_string(), "vm6.", RecordType::AAAA)).1,
        ["fd06::2"]
    );
    assert_eq!(answers(ask6(&s, 6, "fd06::7", "vm6.", RecordType::A)).1.len(), 1);
    assert_eq!(
        answers(ask6(
            &s,
            6,
            "fd06::2",
            "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.0.d.f.ip6.arpa.",
            RecordType::PTR
        ))
        .1,
        ["vm7.my_net6."]
    );
    // vm1 is on my_net1 (IPv4 only) and my_net6: asking on my_net1 sees my_net6's IPv6
    // names, and its own my_net1 names have no IPv6 data.
    assert_eq!(answers(ask(&s, 4, VM1, "vm7.", RecordType::AAAA)).1, ["fd06::7"]);
    let (code, v) = answers(ask(&s, 4, VM1, "vm3.", RecordType::AAAA));
    assert_eq!((code, v.len()), (ResponseCode::NoError, 0));
    // Strangers are refused over IPv6 as over IPv4: an address of no endpoint, or an endpoint
    // of another network.
    assert!(matches!(
        ask6(&s, 6, "fd06::99", "vm6.", RecordType::AAAA),
        Decision::Refuse(_)
    ));
    assert!(matches!(
        ask6(&s, 4, "fd06::7", "vm3.", RecordType::A),
        Decision::Refuse(_)
    ));
    assert!(
        matches!(ask6(&s, 6, "fd06::1", "vm6.", RecordType::AAAA), Decision::Refuse(_)),
        "the gateway is no endpoint"
    );
    // Reverse names of other shapes are no address.
    assert_eq!(reverse_ip("7.0.ip6.arpa"), None);
    assert_eq!(reverse_ip(&format!("{}ip6.arpa", "g.".repeat(32))), None);
    assert_eq!(reverse_ip(&format!("{}ip6.arpa", "10.".repeat(32))), None);
}
