//! The files a sandbox sees under /etc (published at /etc/netns/NAME, which `ip netns exec`
//! and `switchctl sandbox exec` bind over /etc): resolv.conf and hosts.

use std::fmt::Write;
use std::net::IpAddr;

use crate::model::{Sandbox, SandboxMode, State};

/// resolv.conf of a sandbox: the embedded DNS (its first network's gateway) on a
/// user-defined network; the upstream resolvers on the default bridge (no names there, as in
/// Docker); none for host and none mode (they see the host's file).
pub fn resolv_conf(state: &State, sb: &Sandbox, upstreams: &[IpAddr]) -> Option<String> {
    let sb = state.namespace_owner(sb);
    if sb.mode != SandboxMode::Bridge {
        return None;
    }
    let eps = state.endpoints_of_sandbox(&sb.id);
    let net = eps
        .iter()
        .find(|e| e.ip.is_some() || e.ip6.is_some())
        .and_then(|e| state.networks.get(&e.network))?;
    let dns = &sb.dns;
    // On a user-defined network the embedded DNS answers (and forwards to the sandbox's
    // --dns, if any, what it does not know); elsewhere the resolvers are named here.
    let embedded = !net.builtin && net.is_switched();
    let servers: Vec<IpAddr> = if embedded {
        vec![net.dns_gateway()?]
    } else if dns.servers.is_empty() {
        upstreams.iter().copied().filter(|ip| !ip.is_loopback()).collect()
    } else {
        dns.servers.clone()
    };
    if servers.is_empty() && dns.is_empty() {
        return None;
    }
    let mut out: String = servers.iter().map(|ip| format!("nameserver {ip}\n")).collect();
    let search: Vec<&str> = dns.search.iter().map(String::as_str).filter(|d| *d != ".").collect();
    if !search.is_empty() {
        let _ = writeln!(out, "search {}", search.join(" "));
    }
    let mut options: Vec<&str> = Vec::new();
    // The embedded DNS answers bare names: they go to it first, unless the sandbox set ndots.
    if embedded && !dns.options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0");
    }
    options.extend(dns.options.iter().map(String::as_str));
    if !options.is_empty() {
        let _ = writeln!(out, "options {}", options.join(" "));
    }
    Some(out)
}

/// hosts of a sandbox: localhost, its own addresses under its name, and its links.
pub fn hosts(state: &State, sb: &Sandbox) -> Option<String> {
    let owner = state.namespace_owner(sb);
    if owner.mode != SandboxMode::Bridge {
        return None;
    }
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for e in state.endpoints_of_sandbox(&owner.id) {
        let v4 = e.ip.map(std::net::IpAddr::from);
        for ip in v4.into_iter().chain(e.ip6.map(Into::into)) {
            let _ = writeln!(out, "{ip}\t{}", owner.name);
        }
    }
    for l in &owner.links {
        let Some(other) = state.sandboxes.get(&l.sandbox) else {
            continue;
        };
        let ip = state.endpoints_of_sandbox(&other.id).iter().find_map(|e| {
            let net = state.networks.get(&e.network)?;
            net.builtin.then_some(e.ip).flatten()
        });
        if let Some(ip) = ip {
            let _ = writeln!(out, "{ip}\t{} {}", l.alias, other.name);
        }
    }
    for h in &owner.extra_hosts {
        // host-gateway: the host's address on the sandbox's first network, if it has one.
        if let Some(ip) = h.ip.or_else(|| state.host_gateway(owner)) {
            let _ = writeln!(out, "{ip}\t{}", h.name);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NetworkSpec, SandboxSpec};
    use crate::Id;
    use std::path::Path;
    use std::time::SystemTime;

    #[test]
    fn files_per_mode() {
        let id = |n| Id::from_random([n; 32]);
        let t = SystemTime::UNIX_EPOCH;
        let mut s = State::with_defaults([id(1), id(2), id(3)], t);
        s.create_network(
            NetworkSpec {
                name: "u".into(),
                ..Default::default()
            },
            id(4),
            t,
            &crate::HostFacts::default(),
        )
        .unwrap();
        let dir = Path::new("/run/netns");
        let spec = |name: &str, net: &str, links: Vec<String>| SandboxSpec {
            name: name.into(),
            network: net.into(),
            links,
            ..Default::default()
        };
        s.create_sandbox(spec("db", "", vec![]), id(10), id(11), dir, t)
            .unwrap();
        s.create_sandbox(spec("web", "", vec!["db:database".into()]), id(12), id(13), dir, t)
            .unwrap();
        s.create_sandbox(spec("app", "u", vec![]), id(14), id(15), dir, t)
            .unwrap();
        s.create_sandbox(spec("side", "container:app", vec![]), id(16), id(17), dir, t)
            .unwrap();
        s.create_sandbox(spec("h", "host", vec![]), id(18), id(19), dir, t)
            .unwrap();
        let up: Vec<IpAddr> = vec!["127.0.0.53".parse().unwrap(), "10.99.0.2".parse().unwrap()];
        let sb = |n: &str| s.sandbox(n).unwrap();
        assert_eq!(resolv_conf(&s, sb("web"), &up).unwrap(), "nameserver 10.99.0.2\n");
        assert_eq!(
            resolv_conf(&s, sb("app"), &up).unwrap(),
            "nameserver 172.18.0.1\noptions ndots:0\n"
        );
        assert_eq!(resolv_conf(&s, sb("side"), &up), resolv_conf(&s, sb("app"), &up));
        assert_eq!(resolv_conf(&s, sb("h"), &up), None);
        let h = hosts(&s, sb("web")).unwrap();
        assert!(
            h.contains("172.17.0.3\tweb\n") && h.contains("172.17.0.2\tdatabase db\n"),
            "{h}"
        );
        // On a user-defined network a link is a name of the embedded DNS, not a hosts line.
        s.create_sandbox(spec("ux", "u", vec!["db".into()]), id(30), id(31), dir, t)
            .unwrap();
        let ux = hosts(&s, s.sandbox("ux").unwrap()).unwrap();
        assert!(!ux.contains("db"), "{ux}");
        let e = s
            .create_sandbox(spec("x", "", vec!["app".into()]), id(20), id(21), dir, t)
            .unwrap_err();
        assert!(e.to_string().contains("cannot link to app"), "{e}");
    }

    #[test]
    fn a_sandbox_s_own_resolvers_search_options_and_hosts() {
        let id = |n| Id::from_random([n; 32]);
        let t = SystemTime::UNIX_EPOCH;
        let mut s = State::with_defaults([id(1), id(2), id(3)], t);
        let user = NetworkSpec {
            name: "u".into(),
            subnet: Some("10.5.0.0/24".into()),
            ..Default::default()
        };
        s.create_network(user, id(4), t, &crate::HostFacts::default()).unwrap();
        let dir = Path::new("/run/netns");
        let spec = |name: &str, net: &str| SandboxSpec {
            name: name.into(),
            network: net.into(),
            dns: vec!["192.0.2.53".into(), "2001:db8::53".into()],
            dns_search: vec!["corp.example".into(), "example".into()],
            dns_options: vec!["timeout:1".into(), "rotate".into()],
            add_hosts: vec!["db:192.0.2.7".into(), "v6=2001:db8::7".into(), "gw:host-gateway".into()],
            ..Default::default()
        };
        s.create_sandbox(spec("app", "u"), id(10), id(11), dir, t).unwrap();
        s.create_sandbox(spec("old", ""), id(12), id(13), dir, t).unwrap();
        let sb = |n: &str| s.sandbox(n).unwrap();
        let up: Vec<IpAddr> = vec!["10.99.0.2".parse().unwrap()];
        // A user network: the embedded DNS, which forwards to the --dns servers.
        assert_eq!(
            resolv_conf(&s, sb("app"), &up).unwrap(),
            "nameserver 10.5.0.1\nsearch corp.example example\noptions ndots:0 timeout:1 rotate\n"
        );
        // The default bridge: the --dns servers themselves, in place of the host's.
        assert_eq!(
            resolv_conf(&s, sb("old"), &up).unwrap(),
            "nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch corp.example example\noptions timeout:1 rotate\n"
        );
        let h = hosts(&s, sb("app")).unwrap();
        assert!(h.ends_with("192.0.2.7\tdb\n2001:db8::7\tv6\n10.5.0.1\tgw\n"), "{h}");
        assert!(hosts(&s, sb("old")).unwrap().ends_with("172.17.0.1\tgw\n"));
        // A sandbox's own ndots wins over the embedded DNS's ndots:0.
        let mut own = spec("nd", "u");
        own.dns_options = vec!["ndots:3".into()];
        s.create_sandbox(own, id(14), id(15), dir, t).unwrap();
        let nd = s.sandbox("nd").unwrap();
        assert!(resolv_conf(&s, nd, &up).unwrap().ends_with("options ndots:3\n"));
        // Refused by name, and nothing made.
        let before = s.clone();
        for (field, value, says) in [
            ("dns", "nonsense", "invalid --dns \"nonsense\""),
            ("dns", "127.0.0.1", "invalid --dns 127.0.0.1"),
            ("search", "bad domain", "invalid --dns-search \"bad domain\""),
            ("option", "ndots 2", "invalid --dns-option \"ndots 2\""),
            ("host", "nocolon", "invalid --add-host \"nocolon\": expected NAME:IP"),
            ("host", "db:999.1.1.1", "\"999.1.1.1\" is no IP address"),
            ("host", "-x:192.0.2.1", "\"-x\" is no host name"),
        ] {
            let mut bad = spec("bad", "u");
            match field {
                "dns" => bad.dns = vec![value.into()],
                "search" => bad.dns_search = vec![value.into()],
                "option" => bad.dns_options = vec![value.into()],
                _ => bad.add_hosts = vec![value.into()],
            }
            let e = s.create_sandbox(bad, id(20), id(21), dir, t).unwrap_err().to_string();
            assert!(e.contains(says), "{value}: {e}");
        }
        let mut many = spec("bad", "u");
        many.dns = (0..17).map(|i| format!("192.0.2.{i}")).collect();
        let e = s.create_sandbox(many, id(20), id(21), dir, t).unwrap_err().to_string();
        assert!(
            e.contains("17 values of --dns given: a sandbox takes at most 16"),
            "{e}"
        );
        let host_mode = SandboxSpec {
            name: "h".into(),
            network: "host".into(),
            dns: vec!["192.0.2.53".into()],
            ..Default::default()
        };
        let e = s
            .create_sandbox(host_mode, id(20), id(21), dir, t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("conflicting options: --dns"), "{e}");
        assert_eq!(s, before);
    }
}
