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
    if !net.builtin && net.is_switched() {
        return Some(format!("nameserver {}\noptions ndots:0\n", net.dns_gateway()?));
    }
    let servers: Vec<&IpAddr> = upstreams.iter().filter(|ip| !ip.is_loopback()).collect();
    if servers.is_empty() {
        return None;
    }
    Some(servers.iter().map(|ip| format!("nameserver {ip}\n")).collect())
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
        let e = s
            .create_sandbox(spec("x", "u", vec!["db".into()]), id(20), id(21), dir, t)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("--link is supported on the default bridge network only"),
            "{e}"
        );
        let e = s
            .create_sandbox(spec("x", "", vec!["app".into()]), id(20), id(21), dir, t)
            .unwrap_err();
        assert!(e.to_string().contains("cannot link to app"), "{e}");
    }
}
