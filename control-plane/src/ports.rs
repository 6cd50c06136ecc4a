//! Published ports: `-p [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`, with ranges `a-b:c-d`;
//! an IPv6 host address in brackets (`[::1]:8080:80`). Without a host address a port is
//! published on every address of both families, as Docker's `0.0.0.0` and `[::]` pair.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortBinding {
    /// The host address it listens on (0.0.0.0: every address of both families; `::`: every
    /// IPv6 address).
    pub host_ip: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The sandbox's port.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

impl PortBinding {
    /// Whether the two would claim the same host socket.
    pub fn clashes(&self, other: &PortBinding) -> bool {
        let covers = |a: IpAddr, b: IpAddr| {
            a == b || a == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || (a == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && b.is_ipv6())
        };
        self.proto == other.proto
            && self.host_port == other.host_port
            && (covers(self.host_ip, other.host_ip) || covers(other.host_ip, self.host_ip))
    }

    /// The host sockets it is served on, as `docker port` lists them: `0.0.0.0` is both
    /// `0.0.0.0` and `[::]`.
    pub fn listens(&self) -> Vec<SocketAddr> {
        let mut v = vec![SocketAddr::new(self.host_ip, self.host_port)];
        if self.host_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
            v.push(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), self.host_port));
        }
        v
    }
}

impl fmt::Display for PortBinding {
    /// Docker's `docker port` line: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.container_port,
            self.proto.as_str(),
            SocketAddr::new(self.host_ip, self.host_port)
        )
    }
}

/// Why a `-p` value was refused; the message names the bad part and the accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortSpecError {
    /// A protocol other than tcp and udp.
    #[error("invalid protocol {proto:?} in {spec:?}: accepted are tcp and udp")]
    Protocol {
        /// The whole value.
        spec: String,
        /// The protocol given.
        proto: String,
    },
    /// A host address that is not an address.
    #[error("invalid host IP {ip:?} in {spec:?}: expected an IPv4 address, or an IPv6 one in brackets like [::1]")]
    HostIp {
        /// The whole value.
        spec: String,
        /// The address given.
        ip: String,
    },
    /// Not `[HOSTIP:]HOSTPORT:CONTAINERPORT`.
    #[error("invalid port publication {0:?}: expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp], e.g. 127.0.0.1:8080:80/tcp")]
    Form(String),
    /// A port or range out of bounds.
    #[error("invalid port {port:?} in {spec:?}: ports are 1-65535, ranges a-b with a <= b")]
    Port {
        /// The whole value.
        spec: String,
        /// The port or range given.
        port: String,
    },
    /// Host and container ranges of different sizes.
    #[error("invalid port publication {0:?}: the host and container ranges differ in size")]
    RangeSizes(String),
}

fn range(s: &str, spec: &str) -> Result<(u16, u16), PortSpecError> {
    let bad = || PortSpecError::Port {
        spec: spec.to_string(),
        port: s.to_string(),
    };
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let b: u16 = b.parse().ok().filter(|p| *p >= a).ok_or_else(bad)?;
    Ok((a, b))
}

/// Parses one `-p` value into its bindings (several for a range), binding every address
/// when it names none.
///
/// # Errors
/// One sentence naming the bad part and the accepted form.
pub fn parse(spec: &str) -> Result<Vec<PortBinding>, PortSpecError> {
    parse_binding(spec, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// As [`parse`], binding `default_ip` when the value names no address (a network's
/// `host_binding_ipv4`).
///
/// # Errors
/// As [`parse`].
pub fn parse_binding(spec: &str, default_ip: IpAddr) -> Result<Vec<PortBinding>, PortSpecError> {
    let (main, proto) = match spec.rsplit_once('/') {
        Some((m, "tcp")) => (m, Proto::Tcp),
        Some((m, "udp")) => (m, Proto::Udp),
        Some((_, p)) => {
            return Err(PortSpecError::Protocol {
                spec: spec.to_string(),
                proto: p.to_string(),
            })
        }
        None => (spec, Proto::Tcp),
    };
    let bad_ip = |ip: &str| PortSpecError::HostIp {
        spec: spec.to_string(),
        ip: ip.to_string(),
    };
    // `[IPv6]:HOST:CONTAINER`: the brackets hold the colons of the address.
    let (ip, ports) = match main.strip_prefix('[').and_then(|r| r.split_once("]:")) {
        Some((ip, rest)) => {
            let ip: Ipv6Addr = ip.parse().map_err(|_| bad_ip(ip))?;
            (Some(IpAddr::V6(ip)), rest)
        }
        None => (None, main),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (ip, host, cont) = match (ip, parts.as_slice()) {
        (Some(ip), [h, c]) => (ip, *h, *c),
        (None, [h, c]) => (default_ip, *h, *c),
        (None, [ip, h, c]) => {
            let ip: Ipv4Addr = ip.parse().map_err(|_| bad_ip(ip))?;
            (IpAddr::V4(ip), *h, *c)
        }
        _ => return Err(PortSpecError::Form(spec.to_string())),
    };
    let (h0, h1) = range(host, spec)?;
    let (c0, c1) = range(cont, spec)?;
    if h1 - h0 != c1 - c0 {
        return Err(PortSpecError::RangeSizes(spec.to_string()));
    }
    Ok((0..=h1 - h0)
        .map(|i| PortBinding {
            host_ip: ip,
            host_port: h0 + i,
            container_port: c0 + i,
            proto,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let b = parse("8080:80").unwrap();
        assert_eq!(b[0].to_string(), "80/tcp -> 0.0.0.0:8080");
        let b = parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(b[0].to_string(), "53/udp -> 127.0.0.1:5353");
        let b = parse("[::1]:8080:80").unwrap();
        assert_eq!(b[0].to_string(), "80/tcp -> [::1]:8080");
        assert_eq!(b[0].listens(), ["[::1]:8080".parse().unwrap()]);
        let all = parse("8080:80").unwrap()[0];
        assert_eq!(
            all.listens(),
            ["0.0.0.0:8080".parse().unwrap(), "[::]:8080".parse().unwrap()]
        );
        let b = parse("9000-9002:7000-7002/tcp").unwrap();
        assert_eq!(
            b.iter().map(|b| (b.host_port, b.container_port)).collect::<Vec<_>>(),
            [(9000, 7000), (9001, 7001), (9002, 7002)]
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert_eq!(parse("80"), Err(PortSpecError::Form("80".into())));
        assert!(parse("80")
            .unwrap_err()
            .to_string()
            .contains("expected [HOSTIP:]HOSTPORT:CONTAINERPORT"));
        assert!(parse("8080:80/sctp")
            .unwrap_err()
            .to_string()
            .contains("invalid protocol \"sctp\""));
        assert!(parse("0:80").unwrap_err().to_string().contains("invalid port \"0\""));
        assert!(parse("70000:80")
            .unwrap_err()
            .to_string()
            .contains("invalid port \"70000\""));
        assert!(parse("9000-9001:80").unwrap_err().to_string().contains("ranges differ"));
        assert!(parse("1.2.3:80:80")
            .unwrap_err()
            .to_string()
            .contains("invalid host IP"));
        assert!(parse("[::g]:80:80")
            .unwrap_err()
            .to_string()
            .contains("invalid host IP \"::g\""));
        assert_eq!(parse("::1:80:80"), Err(PortSpecError::Form("::1:80:80".into())));
        assert_eq!(
            parse("[::1]:1.2.3.4:80:80"),
            Err(PortSpecError::Form("[::1]:1.2.3.4:80:80".into()))
        );
    }

    #[test]
    fn clashes() {
        let a = parse("0.0.0.0:8080:80").unwrap()[0];
        let b = parse("127.0.0.1:8080:81").unwrap()[0];
        let c = parse("127.0.0.1:8080:81/udp").unwrap()[0];
        let d = parse("10.0.0.1:8080:81").unwrap()[0];
        assert!(a.clashes(&b) && b.clashes(&a) && !b.clashes(&c) && !b.clashes(&d));
        // Every address of both families, all IPv6 ones, and one.
        let (v6, any6) = (parse("[::1]:8080:80").unwrap()[0], parse("[::]:8080:80").unwrap()[0]);
        assert!(a.clashes(&v6) && v6.clashes(&a) && any6.clashes(&v6) && v6.clashes(&any6));
        assert!(!any6.clashes(&b) && !b.clashes(&any6) && !v6.clashes(&d));
    }
}
