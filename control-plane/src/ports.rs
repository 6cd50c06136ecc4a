//! Published ports: `-p [[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/tcp|udp|sctp]`, with ranges
//! `a-b:c-d`; an IPv6 host address in brackets (`[::1]:8080:80`). Without a host address a port
//! is published on every address of both families, as Docker's `0.0.0.0` and `[::]` pair;
//! without a host port, on one chosen from the ephemeral range.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP: published through the firewall alone (no userland proxy serves it).
    Sctp,
}

impl Proto {
    /// `tcp`, `udp` or `sctp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The protocol of its name.
    pub fn parse(s: &str) -> Option<Proto> {
        [Proto::Tcp, Proto::Udp, Proto::Sctp]
            .into_iter()
            .find(|p| p.as_str() == s)
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
    /// A protocol other than tcp, udp and sctp.
    #[error("invalid protocol {proto:?} in {spec:?}: accepted are tcp, udp and sctp")]
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
    /// Not `[[HOSTIP:][HOSTPORT]:]CONTAINERPORT`.
    #[error("invalid port publication {0:?}: expected [[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/tcp|udp|sctp], e.g. 127.0.0.1:8080:80/tcp or 80")]
    Form(String),
    /// A port or range out of bounds.
    #[error("invalid port {port:?} in {spec:?}: ports are 1-65535, ranges a-b with a <= b")]
    Port {
        /// The whole value.
        spec: String,
        /// The port or range given.
        port: String,
    },
    /// Host and container ranges of different sizes (but one container port and a host range).
    #[error("invalid port publication {0:?}: the host and container ranges differ in size (a host range with one container port takes one host port of it)")]
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

/// The host ports chosen from when a publication names none (Docker's).
pub const EPHEMERAL_PORTS: RangeInclusive<u16> = 49153..=65535;

/// A published port as asked for: a host port of 0 is for switchd to choose from
/// [`EPHEMERAL_PORTS`], and `host_port_end` above the host port lets it choose within that
/// range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    /// The binding (host port 0: any).
    pub binding: PortBinding,
    /// The last host port it may take (the host port itself when that one is meant).
    pub host_port_end: u16,
}

impl PortRequest {
    /// The host ports it may take, in the order they are tried.
    pub fn host_ports(&self) -> RangeInclusive<u16> {
        match self.binding.host_port {
            0 => EPHEMERAL_PORTS,
            p => p..=self.host_port_end.max(p),
        }
    }

    /// The binding itself when it names one host port.
    pub fn fixed(&self) -> Option<PortBinding> {
        let p = self.binding.host_port;
        (p != 0 && self.host_port_end <= p).then_some(self.binding)
    }
}

impl fmt::Display for PortRequest {
    /// The `-p` value that asks for it: `0.0.0.0::80/tcp`, `[::1]:8000-8010:80/udp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.binding;
        match b.host_ip {
            IpAddr::V4(ip) => write!(f, "{ip}:")?,
            IpAddr::V6(ip) => write!(f, "[{ip}]:")?,
        }
        match (b.host_port, self.host_port_end) {
            (0, _) => {}
            (h, e) if e > h => write!(f, "{h}-{e}")?,
            (h, _) => write!(f, "{h}")?,
        }
        write!(f, ":{}/{}", b.container_port, b.proto.as_str())
    }
}

/// `spec` without its `/PROTO`, and the protocol (TCP when none is given).
fn split_proto(spec: &str) -> Result<(&str, Proto), PortSpecError> {
    match spec.rsplit_once('/') {
        Some((rest, p)) => Proto::parse(p)
            .map(|proto| (rest, proto))
            .ok_or_else(|| PortSpecError::Protocol {
                spec: spec.to_string(),
                proto: p.to_string(),
            }),
        None => Ok((spec, Proto::Tcp)),
    }
}

/// Parses one `-p` value, binding `default_ip` when it names no address (every address, or
/// a network's `host_binding_ipv4`): one request per container port, each naming its host
/// port (`8080:80`, `8000-8001:80-81`), a range to choose one from (`8000-8010:80`), or none
/// (`80`, `IP::80`, `8000-8001`: chosen from [`EPHEMERAL_PORTS`]).
///
/// # Errors
/// One sentence naming the bad part and the accepted form.
pub fn parse_request(spec: &str, default_ip: IpAddr) -> Result<Vec<PortRequest>, PortSpecError> {
    let (main, proto) = split_proto(spec)?;
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
        (None, [c]) => (default_ip, "", *c),
        (Some(ip), [h, c]) => (ip, *h, *c),
        (None, [h, c]) => (default_ip, *h, *c),
        (None, [ip, h, c]) => {
            let ip: Ipv4Addr = ip.parse().map_err(|_| bad_ip(ip))?;
            (IpAddr::V4(ip), *h, *c)
        }
        _ => return Err(PortSpecError::Form(spec.to_string())),
    };
    let (c0, c1) = range(cont, spec)?;
    let host = match host {
        "" => None,
        h => Some(range(h, spec)?),
    };
    let request = |c: u16, (h, end): (u16, u16)| PortRequest {
        binding: PortBinding {
            host_ip: ip,
            host_port: h,
            container_port: c,
            proto,
        },
        host_port_end: end,
    };
    match host {
        // Each container port on its own host port.
        Some((h0, h1)) if h1 - h0 == c1 - c0 => Ok((0..=c1 - c0).map(|i| request(c0 + i, (h0 + i, h0 + i))).collect()),
        // One container port on one host port of a range.
        Some((h0, h1)) if c0 == c1 => Ok(vec![request(c0, (h0, h1))]),
        Some(_) => Err(PortSpecError::RangeSizes(spec.to_string())),
        None => Ok((c0..=c1).map(|c| request(c, (0, 0))).collect()),
    }
}

/// Parses one `--expose` value, `PORT[-PORT][/PROTO]`: the sandbox's ports it names.
///
/// # Errors
/// One sentence naming the bad part and the accepted form.
pub fn parse_expose(spec: &str) -> Result<Vec<(u16, Proto)>, PortSpecError> {
    let (ports, proto) = split_proto(spec)?;
    let (a, b) = range(ports, spec)?;
    Ok((a..=b).map(|p| (p, proto)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bindings of a value that names every host port.
    fn parse(spec: &str) -> Result<Vec<PortBinding>, PortSpecError> {
        let all = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Ok(parse_request(spec, all)?
            .iter()
            .map(|r| r.fixed().expect("a host port named"))
            .collect())
    }

    #[test]
    fn host_ports_left_open_are_chosen_later() {
        let all = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let shown = |spec: &str| -> Vec<String> {
            parse_request(spec, all)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(shown("80"), ["0.0.0.0::80/tcp"]);
        assert_eq!(shown("127.0.0.1::53/udp"), ["127.0.0.1::53/udp"]);
        assert_eq!(shown("[::1]::80"), ["[::1]::80/tcp"]);
        assert_eq!(shown(":80"), ["0.0.0.0::80/tcp"]);
        assert_eq!(shown("8000-8001"), ["0.0.0.0::8000/tcp", "0.0.0.0::8001/tcp"]);
        assert_eq!(shown("8000-8010:80/sctp"), ["0.0.0.0:8000-8010:80/sctp"]);
        assert_eq!(shown("8080:80"), ["0.0.0.0:8080:80/tcp"]);
        let open = parse_request("80", all).unwrap()[0];
        assert_eq!((open.fixed(), open.host_ports()), (None, EPHEMERAL_PORTS));
        let within = parse_request("8000-8010:80", all).unwrap()[0];
        assert_eq!((within.fixed(), within.host_ports()), (None, 8000..=8010));
        // What it prints, it reads back as.
        for spec in ["80", "[::1]::80/udp", "8000-8010:80/sctp", "10.0.0.1:8080:80"] {
            for r in parse_request(spec, all).unwrap() {
                assert_eq!(parse_request(&r.to_string(), all), Ok(vec![r]), "{r}");
            }
        }
        assert_eq!(
            parse_expose("8000-8002/udp").unwrap(),
            [(8000, Proto::Udp), (8001, Proto::Udp), (8002, Proto::Udp)]
        );
        assert_eq!(parse_expose("80").unwrap(), [(80, Proto::Tcp)]);
        assert!(parse_expose("80/icmp")
            .unwrap_err()
            .to_string()
            .contains("invalid protocol \"icmp\""));
        assert!(parse_expose("0")
            .unwrap_err()
            .to_string()
            .contains("invalid port \"0\""));
    }

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
        assert_eq!(parse("1:2:3:4"), Err(PortSpecError::Form("1:2:3:4".into())));
        assert!(parse("1:2:3:4")
            .unwrap_err()
            .to_string()
            .contains("expected [[HOSTIP:][HOSTPORT]:]CONTAINERPORT"));
        assert!(parse("8080:80/icmp")
            .unwrap_err()
            .to_string()
            .contains("invalid protocol \"icmp\" in \"8080:80/icmp\": accepted are tcp, udp and sctp"));
        assert!(parse("0:80").unwrap_err().to_string().contains("invalid port \"0\""));
        assert!(parse("70000:80")
            .unwrap_err()
            .to_string()
            .contains("invalid port \"70000\""));
        assert!(parse("9000-9001:80-82")
            .unwrap_err()
            .to_string()
            .contains("ranges differ"));
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
