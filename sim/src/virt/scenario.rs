//! Scenario files (`sim/scenarios/*.toml`): how many hosts, what the links do, and a timeline
//! of actions.
//!
//! ```toml
//! name = "converge"
//! hosts = 100
//! duration_s = 30
//! [link]
//! latency_ms = 0.5
//! jitter_ms = 0.2
//! loss = 0.0
//! [[network]]
//! name = "blue"
//! subnet = "10.64.0.0/16"
//! [[step]]
//! at_s = 0
//! action = "join"
//! over_s = 5
//! ```

use serde::Deserialize;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name, for the report.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Hosts (`--hosts` overrides).
    pub hosts: u32,
    /// Simulated seconds.
    pub duration_s: f64,
    /// Seed of every random choice (`--seed` overrides).
    #[serde(default)]
    pub seed: u64,
    /// Membership and records only: no switches, sandboxes or frames (for 10,000 hosts).
    #[serde(default)]
    pub membership_only: bool,
    /// The underlay.
    #[serde(default)]
    pub link: Link,
    /// Overlay networks the steps refer to.
    #[serde(default)]
    pub network: Vec<NetworkDef>,
    /// The timeline.
    #[serde(default)]
    pub step: Vec<Step>,
}

/// Every link of the underlay.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// One-way latency.
    #[serde(default = "default_latency")]
    pub latency_ms: f64,
    /// Extra latency, uniform in [0, jitter).
    #[serde(default = "default_jitter")]
    pub jitter_ms: f64,
    /// Probability that a datagram is lost.
    #[serde(default)]
    pub loss: f64,
}

fn default_latency() -> f64 {
    0.5
}

fn default_jitter() -> f64 {
    0.2
}

impl Default for Link {
    fn default() -> Self {
        Link {
            latency_ms: default_latency(),
            jitter_ms: default_jitter(),
            loss: 0.0,
        }
    }
}

/// An overlay network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDef {
    /// Name.
    pub name: String,
    /// Subnet (big enough for the hosts' shares: blocks of 8 per host).
    pub subnet: String,
    /// An IPv6 subnet beside it (a dual-stack network: each endpoint's IPv6 address is its
    /// IPv4 address's twin).
    #[serde(default)]
    pub subnet6: Option<String>,
}

/// One action at one time.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// When, in simulated seconds.
    pub at_s: f64,
    /// What.
    #[serde(flatten)]
    pub action: Action,
}

/// What a step does.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The first `share` of the hosts (all by default) start and join the first, spread over
    /// `over_s`; hosts already started are left alone, so a later join brings the rest.
    Join {
        /// The window.
        #[serde(default)]
        over_s: f64,
        /// The share of hosts that have started once this step is done.
        #[serde(default = "all")]
        share: f64,
    },
    /// Host `host` creates overlay network `network`.
    CreateNetwork {
        /// The network (from `[[network]]`).
        network: String,
        /// The creating host.
        #[serde(default)]
        host: u32,
    },
    /// Every live host creates `per_host` sandboxes on `network`, spread over `over_s`.
    Sandboxes {
        /// The network.
        network: String,
        /// How many per host.
        per_host: u32,
        /// The window.
        #[serde(default)]
        over_s: f64,
        /// Only on this host (every live host when not given).
        #[serde(default)]
        on: Option<u32>,
    },
    /// `count` sandboxes on random live hosts, one every `every_s`: single new endpoints in a
    /// settled cluster, whose convergence is what the 1.5 s goal is about.
    Probe {
        /// The network.
        network: String,
        /// How many.
        count: u32,
        /// The gap between two.
        every_s: f64,
    },
    /// `count` sandboxes each ping a random sandbox of another host on the same network.
    Ping {
        /// The network.
        network: String,
        /// How many pings.
        count: u32,
        /// Over IPv6 (a dual-stack network's twins) rather than IPv4.
        #[serde(default)]
        ipv6: bool,
    },
    /// `count` pairs of sandboxes on different hosts exchange `bytes` over TCP.
    Tcp {
        /// The network.
        network: String,
        /// How many flows.
        count: u32,
        /// Bytes per flow.
        bytes: u32,
        /// Over IPv6 (a dual-stack network's twins) rather than IPv4.
        #[serde(default)]
        ipv6: bool,
    },
    /// `count` random live hosts die (no goodbye).
    Crash {
        /// How many.
        count: u32,
    },
    /// Every crashed host comes back (its stored state kept, as switchd's is).
    Restart,
    /// The first `fraction` of the hosts cannot reach the rest.
    Partition {
        /// The share of hosts on the first side.
        fraction: f64,
    },
    /// The partition ends.
    Heal,
    /// A live host forgets every crashed host that has not come back (`switchctl cluster
    /// forget`): an exchange with every host it reaches, then it takes over their addresses.
    /// A forgotten host never comes back.
    Forget,
    /// The CA revokes `count` random live hosts (`switchctl cluster revoke`), through another
    /// live host: they keep running, and every other host must cut them off and withdraw
    /// their endpoints.
    Revoke {
        /// How many.
        count: u32,
    },
    /// `count` random endpoints of `network` move: removed from their host, then after
    /// `gap_s` made again on another host with the same address.
    Move {
        /// The network.
        network: String,
        /// How many.
        count: u32,
        /// Between the removal and the new creation.
        #[serde(default = "default_gap")]
        gap_s: f64,
    },
    /// Every link loses `loss` of its datagrams from now on.
    Loss {
        /// The probability.
        loss: f64,
    },
}

fn default_gap() -> f64 {
    2.0
}

fn all() -> f64 {
    1.0
}

/// Why a scenario was refused; the message names the bad value and what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// Not TOML of a scenario's shape.
    #[error("invalid scenario: {0}")]
    Toml(#[from] toml::de::Error),
    /// A host count out of range.
    #[error("invalid hosts {0}: give 1-100000")]
    Hosts(u32),
    /// A duration out of range.
    #[error("invalid duration_s {0}: give 0-3600 seconds")]
    Duration(f64),
    /// Negative latency or jitter, or a loss outside 0-1.
    #[error("invalid [link]: latency_ms and jitter_ms are >= 0, loss is 0-1")]
    Link,
    /// A network's subnet.
    #[error("invalid subnet {subnet:?} of network {network}: {source}")]
    Subnet {
        /// The network.
        network: String,
        /// Its subnet as given.
        subnet: String,
        /// Why it was refused.
        source: control_plane::cidr::CidrError,
    },
    /// A step outside the run.
    #[error("step {step}: at_s {at_s} is outside 0-{duration_s} (duration_s)")]
    StepTime {
        /// The step, from 1.
        step: usize,
        /// When it was to run.
        at_s: f64,
        /// The run's length.
        duration_s: f64,
    },
    /// A step on a host the scenario does not have.
    #[error("step {step}: host {host} does not exist (hosts are 0-{last})")]
    NoHost {
        /// The step, from 1.
        step: usize,
        /// The host named.
        host: u32,
        /// The last host.
        last: u32,
    },
    /// A fraction or loss outside 0-1.
    #[error("step {step}: {what} {value} is outside 0-1")]
    Ratio {
        /// The step, from 1.
        step: usize,
        /// `fraction`, `share` or `loss`.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// A network step in a membership-only scenario.
    #[error("step {0}: a membership_only scenario has no networks")]
    MembershipOnly(usize),
    /// A network not declared.
    #[error("step {step}: network {network:?} is not declared under [[network]]")]
    UnknownNetwork {
        /// The step, from 1.
        step: usize,
        /// The network named.
        network: String,
    },
}

impl Scenario {
    /// Parses and checks a scenario file's text.
    ///
    /// # Errors
    /// [`ScenarioError`], naming the bad value and what is accepted.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    /// Checks values the types do not.
    ///
    /// # Errors
    /// As [`Scenario::parse`].
    pub fn check(&self) -> Result<(), ScenarioError> {
        if self.hosts == 0 || self.hosts > 100_000 {
            return Err(ScenarioError::Hosts(self.hosts));
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 3600.0) {
            return Err(ScenarioError::Duration(self.duration_s));
        }
        let l = self.link;
        if !(0.0..=1.0).contains(&l.loss) || l.latency_ms < 0.0 || l.jitter_ms < 0.0 {
            return Err(ScenarioError::Link);
        }
        for n in &self.network {
            n.subnet
                .parse::<control_plane::Ipv4Cidr>()
                .map_err(|source| ScenarioError::Subnet {
                    network: n.name.clone(),
                    subnet: n.subnet.clone(),
                    source,
                })?;
        }
        for (i, st) in self.step.iter().enumerate() {
            self.check_step(i + 1, st)?;
        }
        Ok(())
    }

    fn check_step(&self, step: usize, st: &Step) -> Result<(), ScenarioError> {
        if !(0.0..=self.duration_s).contains(&st.at_s) {
            return Err(ScenarioError::StepTime {
                step,
                at_s: st.at_s,
                duration_s: self.duration_s,
            });
        }
        let ratio = |what, value| ScenarioError::Ratio { step, what, value };
        let net = match &st.action {
            Action::CreateNetwork { network, host } => {
                if *host >= self.hosts {
                    return Err(ScenarioError::NoHost {
                        step,
                        host: *host,
                        last: self.hosts - 1,
                    });
                }
                Some(network)
            }
            Action::Sandboxes { on: Some(host), .. } if *host >= self.hosts => {
                return Err(ScenarioError::NoHost {
                    step,
                    host: *host,
                    last: self.hosts - 1,
                });
            }
            Action::Sandboxes { network, .. }
            | Action::Probe { network, .. }
            | Action::Ping { network, .. }
            | Action::Tcp { network, .. }
            | Action::Move { network, .. } => Some(network),
            Action::Partition { fraction } if !(0.0..=1.0).contains(fraction) => {
                return Err(ratio("fraction", *fraction))
            }
            Action::Join { share, .. } if !(0.0..=1.0).contains(share) => return Err(ratio("share", *share)),
            Action::Loss { loss } if !(0.0..=1.0).contains(loss) => return Err(ratio("loss", *loss)),
            _ => None,
        };
        if let Some(n) = net {
            if self.membership_only {
                return Err(ScenarioError::MembershipOnly(step));
            }
            if !self.network.iter().any(|x| x.name == *n) {
                return Err(ScenarioError::UnknownNetwork {
                    step,
                    network: n.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            Scenario::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
        assert!(n >= 5, "converge, crash, partition, move, lossy");
    }

    #[test]
    fn bad_values_are_named() {
        let base = "name = \"x\"\nhosts = 3\nduration_s = 10\n";
        let e = Scenario::parse("name = \"x\"\nhosts = 0\nduration_s = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid hosts 0"), "{e}");
        let e = Scenario::parse(&format!(
            "{base}[[step]]\nat_s = 1\naction = \"ping\"\nnetwork = \"nope\"\ncount = 1\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("network \"nope\" is not declared"), "{e}");
        let e = Scenario::parse(&format!("{base}[[step]]\nat_s = 11\naction = \"heal\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at_s 11 is outside"), "{e}");
        let e = Scenario::parse(&format!("{base}[[step]]\nat_s = 1\naction = \"fly\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `fly`"), "{e}");
        let e = Scenario::parse(&format!("{base}[link]\nloss = 2\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("loss is 0-1"), "{e}");
        let e = Scenario::parse(&format!("{base}[[step]]\nat_s = 1\naction = \"join\"\nshare = 1.5\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("share 1.5"), "{e}");
    }
}
