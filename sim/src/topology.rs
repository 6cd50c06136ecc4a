//! `switchsim up|down TOPOLOGY.toml`: a real multi-host topology in network namespaces, made
//! from a file and left running; `down` removes everything it made, also after a crashed run.
//!
//! ```toml
//! name = "lab"          # prefix of every namespace it makes: 1-8 of [a-z0-9]
//! underlay = 96         # the hosts' wire is 10.96.0.0/24; host N (from 1) is 10.96.0.N
//! underlay6 = false     # true: the wire is fd10:96::/64 instead, host N fd10:96::N
//! [[host]]
//! name = "h1"
//! [[network]]
//! name = "ovl"
//! on = "h1"             # the host that creates it (an overlay reaches every host)
//! driver = "overlay"    # bridge (default), overlay or macvlan
//! subnet = "10.88.0.0/24"
//! [[sandbox]]
//! name = "a"
//! on = "h1"
//! network = "ovl"
//! ip = "10.88.0.10"     # optional
//! ```

use std::path::Path;

use serde::Deserialize;

use testbed::netns::{Fabric, Host, NETNS_DIR};

/// A topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Prefix of everything made.
    pub name: String,
    /// Third octet of the underlay 10.X.0.0/24 (or the second group of fd10:X::/64).
    pub underlay: u8,
    /// The underlay is IPv6: the cluster gossips and tunnels over fd10:X::/64.
    #[serde(default)]
    pub underlay6: bool,
    /// Hosts, each running switchd, numbered from 1 in order.
    #[serde(default)]
    pub host: Vec<HostDef>,
    /// Networks.
    #[serde(default)]
    pub network: Vec<NetworkDef>,
    /// Sandboxes.
    #[serde(default)]
    pub sandbox: Vec<SandboxDef>,
}

/// A host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDef {
    /// Its name (and cluster certificate name).
    pub name: String,
}

/// A network, created on one host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    /// Name.
    pub name: String,
    /// The creating host.
    pub on: String,
    /// bridge, overlay or macvlan.
    #[serde(default)]
    pub driver: Option<String>,
    /// Subnet.
    #[serde(default)]
    pub subnet: Option<String>,
    /// `-o K=V` options.
    #[serde(default)]
    pub options: Vec<String>,
}

/// A sandbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxDef {
    /// Name (the namespace is `NAMEHOST-NAME`).
    pub name: String,
    /// Its host.
    pub on: String,
    /// Its network (default: bridge).
    #[serde(default)]
    pub network: Option<String>,
    /// A fixed address.
    #[serde(default)]
    pub ip: Option<String>,
}

/// Why a topology was refused or could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// Not TOML of a topology's shape.
    #[error("invalid topology: {0}")]
    Toml(#[from] toml::de::Error),
    /// A topology name that namespaces cannot carry.
    #[error("invalid name {0:?}: 1-8 characters of [a-z0-9]")]
    Name(String),
    /// Too few or too many hosts.
    #[error("a topology needs 1-250 [[host]] entries")]
    HostCount,
    /// A host name that namespaces cannot carry.
    #[error("invalid host name {0:?}: 1-4 characters of [a-z0-9]")]
    HostName(String),
    /// A network or sandbox on a host not declared.
    #[error("{kind} {name}: host {host:?} is not a [[host]]")]
    UnknownHost {
        /// `network` or `sandbox`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The host named.
        host: String,
    },
    /// Namespaces of the topology exist already.
    #[error("topology {0} is up already: run switchsim down first")]
    AlreadyUp(String),
    /// A switchctl step failed while building it.
    #[error("switchctl {args}: {stderr}")]
    Step {
        /// The command's arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
}

impl Topology {
    /// Parses and checks a topology file's text.
    ///
    /// # Errors
    /// [`TopologyError`], naming the bad value and what is accepted.
    pub fn parse(text: &str) -> Result<Topology, TopologyError> {
        let t: Topology = toml::from_str(text)?;
        let ok_name = |n: &str, max: usize| {
            !n.is_empty() && n.len() <= max && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        };
        if !ok_name(&t.name, 8) {
            return Err(TopologyError::Name(t.name));
        }
        if t.host.is_empty() || t.host.len() > 250 {
            return Err(TopologyError::HostCount);
        }
        if let Some(h) = t.host.iter().find(|h| !ok_name(&h.name, 4)) {
            return Err(TopologyError::HostName(h.name.clone()));
        }
        let unknown = |kind, name: &str, host: &str| {
            (!t.host.iter().any(|x| x.name == host)).then(|| TopologyError::UnknownHost {
                kind,
                name: name.to_string(),
                host: host.to_string(),
            })
        };
        let placed = t.network.iter().map(|n| ("network", &n.name, &n.on));
        let placed = placed.chain(t.sandbox.iter().map(|s| ("sandbox", &s.name, &s.on)));
        if let Some(e) = placed.filter_map(|(k, n, h)| unknown(k, n, h)).next() {
            return Err(e);
        }
        Ok(t)
    }

    fn hosts(&self) -> Vec<&str> {
        self.host.iter().map(|h| h.name.as_str()).collect()
    }

    /// Whether anything of this topology exists.
    pub fn is_up(&self) -> bool {
        let prefixes: Vec<String> = self.host.iter().map(|h| format!("{}{}-", self.name, h.name)).collect();
        std::fs::read_dir(NETNS_DIR).is_ok_and(|d| {
            d.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                prefixes.iter().any(|p| n.starts_with(p)) || n == format!("{}-ul", self.name)
            })
        })
    }

    /// Builds it and leaves it running; prints how to reach each piece.
    ///
    /// # Errors
    /// It is up already, or a step failed (what was made is removed again).
    pub fn up(&self, bin_dir: &Path) -> Result<(), TopologyError> {
        if self.is_up() {
            return Err(TopologyError::AlreadyUp(self.name.clone()));
        }
        let fabric = if self.underlay6 {
            Fabric::new6(&self.name, self.underlay, bin_dir)
        } else {
            Fabric::new(&self.name, self.underlay, bin_dir)
        };
        for h in &self.host {
            fabric.cert("ca", &h.name);
        }
        let hosts: Vec<(String, Host)> = self
            .host
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), fabric.start(i as u8 + 1, &h.name)))
            .collect();
        let host = |n: &str| &hosts.iter().find(|(name, _)| name == n).expect("checked").1;
        let made = self.populate(&host);
        if let Err(e) = made {
            drop(hosts);
            drop(fabric);
            Fabric::remove(&self.name, &self.hosts());
            return Err(e);
        }
        println!("# topology {} is up", self.name);
        for (name, h) in &hosts {
            println!(
                "host {name}: ip netns exec {} ...   switchctl -H {} ...",
                h.ns(),
                h.socket().display()
            );
        }
        for s in &self.sandbox {
            println!("sandbox {}: ip netns exec {} ...", s.name, host(&s.on).name(&s.name));
        }
        println!("# remove it with: switchsim down TOPOLOGY.toml");
        for (_, h) in hosts {
            h.detach();
        }
        fabric.detach();
        Ok(())
    }

    fn populate<'a>(&self, host: &dyn Fn(&str) -> &'a Host) -> Result<(), TopologyError> {
        let step = |h: &Host, args: Vec<String>| {
            let out = h.ctl(&args);
            if out.ok() {
                Ok(())
            } else {
                Err(TopologyError::Step {
                    args: args.join(" "),
                    stderr: out.stderr.trim().to_string(),
                })
            }
        };
        for n in &self.network {
            let mut args = vec!["network".to_string(), "create".into()];
            if let Some(d) = &n.driver {
                args.extend(["-d".into(), d.clone()]);
            }
            if let Some(s) = &n.subnet {
                args.extend(["--subnet".into(), s.clone()]);
            }
            for o in &n.options {
                args.extend(["-o".into(), o.clone()]);
            }
            args.push(n.name.clone());
            step(host(&n.on), args)?;
        }
        for s in &self.sandbox {
            let h = host(&s.on);
            let mut args = vec!["sandbox".to_string(), "create".into()];
            if let Some(n) = &s.network {
                // An overlay made elsewhere arrives by gossip: wait for it here.
                for _ in 0..100 {
                    if h.ctl(["network", "inspect", n.as_str()]).ok() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                args.extend(["--network".into(), n.clone()]);
            }
            if let Some(ip) = &s.ip {
                args.extend(["--ip".into(), ip.clone()]);
            }
            args.push(h.name(&s.name));
            step(h, args)?;
        }
        Ok(())
    }

    /// Removes everything the topology made (nothing to remove is not an error); how many
    /// namespaces went.
    pub fn down(&self) -> usize {
        Fabric::remove(&self.name, &self.hosts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_underlay_is_ipv4_unless_said() {
        let t = Topology::parse("name = \"lab\"\nunderlay = 9\n[[host]]\nname = \"h1\"\n").unwrap();
        assert!(!t.underlay6);
        let t = Topology::parse("name = \"lab\"\nunderlay = 9\nunderlay6 = true\n[[host]]\nname = \"h1\"\n").unwrap();
        assert!(t.underlay6);
        let e = Topology::parse("name = \"lab\"\nunderlay = 9\nunderlay6 = \"yes\"\n[[host]]\nname = \"h1\"\n");
        assert!(e.unwrap_err().to_string().contains("invalid type"));
    }

    #[test]
    fn bad_topologies_are_named() {
        let e = Topology::parse("name = \"Lab!\"\nunderlay = 9\n[[host]]\nname = \"h1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid name \"Lab!\""), "{e}");
        let e = Topology::parse("name = \"lab\"\nunderlay = 9\n").unwrap_err();
        assert_eq!(e, TopologyError::HostCount);
        let t = "name = \"lab\"\nunderlay = 9\n[[host]]\nname = \"h1\"\n[[sandbox]]\nname = \"a\"\non = \"h9\"\n";
        let e = Topology::parse(t).unwrap_err().to_string();
        assert!(e.contains("sandbox a: host \"h9\" is not a [[host]]"), "{e}");
        let e = Topology::parse("name = \"lab\"\nunderlay = 300\n[[host]]\nname = \"h1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid topology"), "{e}");
    }
}
