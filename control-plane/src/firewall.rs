//! The host's packet filter for the fabric, as one nftables table generated from the state.
//!
//! switchd owns exactly one table, `ip switchd`, and replaces it whole on every change in one
//! atomic `nft -f` transaction (`add table; delete table; table { ... }`), so the kernel never
//! holds a half-updated ruleset and no other table is touched. What it says:
//!
//! - outbound: traffic from a bridge network's subnet leaving by any other interface is
//!   masqueraded to the host's address (`--internal` networks get no such rule);
//! - isolation (Docker's isolation chains): nothing enters a network's gateway interface from
//!   elsewhere unless it belongs to a connection the network opened or to a published port;
//!   an internal network's traffic never leaves its gateway interface.

use std::fmt::Write;

use crate::model::{Driver, State};

/// The table's name (family `ip`).
pub const TABLE: &str = "switchd";

/// The nft script that replaces the table with the ruleset for `state`.
pub fn ruleset(state: &State) -> String {
    let mut nets: Vec<_> = state
        .networks
        .values()
        .filter(|n| n.driver == Driver::Bridge)
        .filter_map(|n| Some((n, n.ipam?, n.bridge_name.as_deref()?)))
        .collect();
    nets.sort_by_key(|(n, _, _)| n.switch_id);
    let mut forward = String::new();
    let mut post = String::new();
    for (net, ipam, gw) in &nets {
        let gw = quote(gw);
        let _ = writeln!(forward, "        iifname {gw} oifname {gw} accept");
        if net.internal {
            let _ = writeln!(forward, "        iifname {gw} drop");
        }
        let _ = writeln!(forward, "        oifname {gw} ct state established,related accept");
        let _ = writeln!(forward, "        oifname {gw} ct status dnat accept");
        let _ = writeln!(forward, "        oifname {gw} drop");
        if !net.internal {
            let _ = writeln!(post, "        ip saddr {} oifname != {gw} masquerade", ipam.subnet);
        }
    }
    format!(
        "add table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         table ip {TABLE} {{\n\
         \x20   chain forward {{\n\
         \x20       type filter hook forward priority filter; policy accept;\n\
         {forward}\
         \x20   }}\n\
         \x20   chain postrouting {{\n\
         \x20       type nat hook postrouting priority srcnat; policy accept;\n\
         {post}\
         \x20   }}\n\
         }}\n"
    )
}

/// The nft script that removes the table (idempotent).
pub fn teardown() -> String {
    format!("add table ip {TABLE}\ndelete table ip {TABLE}\n")
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
        s.create_network(spec("a", "10.1.0.0/24", false), id(4), SystemTime::UNIX_EPOCH, &[])
            .unwrap();
        s.create_network(spec("i", "10.2.0.0/24", true), id(5), SystemTime::UNIX_EPOCH, &[])
            .unwrap();
        let r = ruleset(&s);
        assert!(
            r.starts_with("add table ip switchd\ndelete table ip switchd\ntable ip switchd {\n"),
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
        for gw in ["switch0", "br-a", "br-i"] {
            assert!(r.contains(&format!("oifname \"{gw}\" drop")), "{gw}: {r}");
            assert!(
                r.contains(&format!("oifname \"{gw}\" ct state established,related accept")),
                "{r}"
            );
        }
        assert_eq!(teardown(), "add table ip switchd\ndelete table ip switchd\n");
    }
}
