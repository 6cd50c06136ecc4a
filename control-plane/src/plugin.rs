//! Docker's plugin protocol, as libnetwork's remote network driver and remote IPAM driver
//! speak it: JSON requests POSTed to `/Plugin.Activate`, `/NetworkDriver.*` and
//! `/IpamDriver.*`, answered with JSON, or with `{"Err": "..."}` and a 4xx when refused.
//! Here are the messages and what their values mean in the model's terms; switchd serves them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::DockerNetworkSpec;
pub use crate::ports::PortRequest;
use crate::ports::{PortBinding, Proto};

/// The media type of every request and reply.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";
/// Docker's option key of the driver options (`-o`) of a network.
pub const GENERIC: &str = "com.docker.network.generic";
/// Docker's option key of `--internal`.
pub const INTERNAL: &str = "com.docker.network.internal";
/// Docker's option key of `--ipv6`.
pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
/// Docker's option key of a container's published ports.
pub const PORT_MAP: &str = "com.docker.network.portmap";
/// The `RequestAddressType` of a network's gateway address.
pub const GATEWAY_ADDRESS: &str = "com.docker.network.gateway";
/// The address spaces switchd's IPAM names (it has one set of pools either way).
pub const ADDRESS_SPACE_LOCAL: &str = "switch-local";
/// See [`ADDRESS_SPACE_LOCAL`].
pub const ADDRESS_SPACE_GLOBAL: &str = "switch-global";

/// A refusal: `{"Err": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The message.
    #[serde(rename = "Err")]
    pub err: String,
}

/// `IpamDriver.RequestPool`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestPool {
    /// The address space (either of switchd's).
    pub address_space: String,
    /// The subnet asked for (`--subnet`), empty for one chosen.
    pub pool: String,
    /// `--ip-range`.
    pub sub_pool: String,
    /// `--ipam-opt`.
    pub options: Option<BTreeMap<String, String>>,
    /// Whether it is an IPv6 pool.
    #[serde(rename = "V6")]
    pub v6: bool,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReleasePool {
    /// The pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress` and `IpamDriver.ReleaseAddress`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AddressRequest {
    /// The pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address asked for (`--ip`, `--gateway`), or empty.
    pub address: String,
    /// `RequestAddressType` says a gateway is asked for.
    pub options: Option<BTreeMap<String, String>>,
}

impl AddressRequest {
    /// Whether the network's gateway is asked for.
    pub fn is_gateway(&self) -> bool {
        self.options
            .as_ref()
            .and_then(|o| o.get("RequestAddressType"))
            .is_some_and(|t| t == GATEWAY_ADDRESS)
    }
}

/// One pool of a network as `CreateNetwork` gives it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamData {
    /// The address space.
    pub address_space: String,
    /// The subnet.
    pub pool: String,
    /// The gateway, `IP/LEN`.
    pub gateway: String,
}

/// `NetworkDriver.CreateNetwork`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateNetwork {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Docker's options: the `-o` options under [`GENERIC`], `--internal`, `--ipv6`.
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, Value>,
    /// The IPv4 pools.
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Vec<IpamData>,
    /// The IPv6 pools.
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Vec<IpamData>,
}

/// Why a request from the Docker Engine was refused; the message names the value and what is
/// accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginRequestError {
    /// An option that must be a boolean is not.
    #[error("invalid value {value} for {key}: expected true or false")]
    NotABoolean {
        /// The option.
        key: String,
        /// Its value, as JSON.
        value: Value,
    },
    /// A driver option that must be a string is not.
    #[error("invalid value {value} for option {key}: expected a string")]
    NotAString {
        /// The option.
        key: String,
        /// Its value, as JSON.
        value: Value,
    },
    /// The generic options are not an object.
    #[error("invalid {GENERIC} {0}: expected an object of strings")]
    Generic(Value),
    /// The port map does not have Docker's shape.
    #[error("invalid {PORT_MAP}: {0}")]
    PortMap(String),
    /// A protocol other than TCP, UDP and SCTP.
    #[error("invalid protocol {0} in {PORT_MAP}: switchd publishes tcp (6), udp (17) and sctp (132)")]
    Protocol(u8),
    /// Container port 0.
    #[error("invalid container port 0 in {PORT_MAP}: ports are 1-65535")]
    ContainerPortZero,
    /// A host address that is no address.
    #[error("invalid host address {0:?} in {PORT_MAP}: expected an IPv4 or IPv6 address")]
    HostAddress(String),
    /// A range from port 0.
    #[error("invalid host port range 0-{0} in {PORT_MAP}: a range starts at 1 or above")]
    RangeFromZero(u16),
}

impl CreateNetwork {
    /// The request in the model's terms.
    ///
    /// # Errors
    /// An option whose value is not a string (`-o`) or a boolean (`--internal`, `--ipv6`).
    pub fn spec(self) -> Result<DockerNetworkSpec, PluginRequestError> {
        let flag = |key: &str| match self.options.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(PluginRequestError::NotABoolean {
                key: key.to_string(),
                value: v.clone(),
            }),
        };
        let mut options = BTreeMap::new();
        match self.options.get(GENERIC) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let Value::String(s) = v else {
                        return Err(PluginRequestError::NotAString {
                            key: k.clone(),
                            value: v.clone(),
                        });
                    };
                    options.insert(k.clone(), s.clone());
                }
            }
            Some(v) => return Err(PluginRequestError::Generic(v.clone())),
        }
        Ok(DockerNetworkSpec {
            internal: flag(INTERNAL)?,
            ipv6: flag(ENABLE_IPV6)?,
            id: self.network_id,
            options,
            ipv6_pools: self
                .ipv6_data
                .into_iter()
                .map(|d| (d.address_space, d.pool, d.gateway))
                .collect(),
            ipv4: self
                .ipv4_data
                .into_iter()
                .map(|d| (d.address_space, d.pool, d.gateway))
                .collect(),
        })
    }
}

/// `NetworkDriver.DeleteNetwork`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NetworkRef {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// The interface `CreateEndpoint` gives (what Docker's IPAM handed out, and `--mac-address`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointInterface {
    /// `IP/LEN`.
    pub address: String,
    /// `IP/LEN`, or empty.
    #[serde(rename = "AddressIPv6")]
    pub address_ipv6: String,
    /// The MAC, or empty for the driver to choose.
    pub mac_address: String,
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateEndpoint {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The interface's addresses.
    #[serde(rename = "Interface")]
    pub interface: Option<EndpointInterface>,
}

/// `DeleteEndpoint`, `Leave`, `EndpointOperInfo`, `RevokeExternalConnectivity`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EndpointRef {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// `NetworkDriver.Join`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Join {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The path of the container's network namespace.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
}

/// `NetworkDriver.ProgramExternalConnectivity`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Connectivity {
    /// Docker's network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Docker's endpoint ID.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// [`PORT_MAP`] among others.
    #[serde(rename = "Options")]
    pub options: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerBinding {
    proto: u8,
    #[serde(default, rename = "IP")]
    _ip: String,
    port: u16,
    #[serde(default, rename = "HostIP")]
    host_ip: String,
    #[serde(default)]
    host_port: u16,
    #[serde(default)]
    host_port_end: u16,
}

impl Connectivity {
    /// The published ports of the container (none when Docker gave no port map).
    ///
    /// # Errors
    /// A malformed port map: a protocol other than TCP, UDP and SCTP, port 0, a bad host address, a
    /// range that ends before it starts.
    pub fn ports(&self) -> Result<Vec<PortRequest>, PluginRequestError> {
        let Some(v) = self.options.get(PORT_MAP).filter(|v| !v.is_null()) else {
            return Ok(Vec::new());
        };
        let list: Vec<DockerBinding> =
            serde_json::from_value(v.clone()).map_err(|e| PluginRequestError::PortMap(e.to_string()))?;
        list.into_iter()
            .map(|b| {
                let proto = match b.proto {
                    6 => Proto::Tcp,
                    17 => Proto::Udp,
                    132 => Proto::Sctp,
                    p => return Err(PluginRequestError::Protocol(p)),
                };
                if b.port == 0 {
                    return Err(PluginRequestError::ContainerPortZero);
                }
                let host_ip: std::net::IpAddr = match b.host_ip.as_str() {
                    "" => Ipv4Addr::UNSPECIFIED.into(),
                    s => s.parse().map_err(|_| PluginRequestError::HostAddress(s.to_string()))?,
                };
                let end = b.host_port_end.max(b.host_port);
                if b.host_port == 0 && b.host_port_end != 0 {
                    return Err(PluginRequestError::RangeFromZero(b.host_port_end));
                }
                Ok(PortRequest {
                    binding: PortBinding {
                        host_ip,
                        host_port: b.host_port,
                        container_port: b.port,
                        proto,
                    },
                    host_port_end: end,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_network_carries_the_options_docker_gives() {
        let body = r#"{"NetworkID":"2bcd35caf9ecef96ad443477065e601c0d8d94e7d2e3041ee6e338a200770b7e",
            "Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{"foo":"bar","switch.driver":"overlay"},
            "com.docker.network.internal":true},
            "IPv4Data":[{"AddressSpace":"l","Gateway":"10.9.0.1/24","Pool":"10.9.0.0/24"}],"IPv6Data":[]}"#;
        let r: CreateNetwork = serde_json::from_str(body).unwrap();
        let s = r.spec().unwrap();
        assert!(s.internal && !s.ipv6 && s.ipv6_pools.is_empty());
        assert_eq!(s.options["switch.driver"], "overlay");
        assert_eq!(s.ipv4, vec![("l".into(), "10.9.0.0/24".into(), "10.9.0.1/24".into())]);
    }

    #[test]
    fn options_that_are_not_strings_are_refused() {
        let r: CreateNetwork =
            serde_json::from_str(r#"{"Options":{"com.docker.network.generic":{"mtu":1400}}}"#).unwrap();
        assert_eq!(
            r.spec().unwrap_err().to_string(),
            "invalid value 1400 for option mtu: expected a string"
        );
        let r: CreateNetwork = serde_json::from_str(r#"{"Options":{"com.docker.network.internal":"yes"}}"#).unwrap();
        assert!(r.spec().unwrap_err().to_string().contains("expected true or false"));
    }

    #[test]
    fn the_port_map_becomes_bindings() {
        let body = r#"{"Options":{"com.docker.network.portmap":[
            {"Proto":6,"IP":"","Port":82,"HostIP":"","HostPort":0,"HostPortEnd":0},
            {"Proto":17,"IP":"","Port":81,"HostIP":"127.0.0.1","HostPort":8081,"HostPortEnd":8081},
            {"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8000,"HostPortEnd":8010}]}}"#;
        let c: Connectivity = serde_json::from_str(body).unwrap();
        let p = c.ports().unwrap();
        assert_eq!(p[0].binding.host_port, 0);
        assert_eq!(p[1].binding.to_string(), "81/udp -> 127.0.0.1:8081");
        assert_eq!((p[2].binding.host_port, p[2].host_port_end), (8000, 8010));
        let bad = |m: &str| {
            let c: Connectivity =
                serde_json::from_str(&format!(r#"{{"Options":{{"com.docker.network.portmap":[{m}]}}}}"#)).unwrap();
            c.ports().unwrap_err().to_string()
        };
        assert!(bad(r#"{"Proto":1,"Port":80}"#).contains("invalid protocol 1 "));
        let sctp: Connectivity = serde_json::from_str(
            r#"{"Options":{"com.docker.network.portmap":[{"Proto":132,"Port":80,"HostPort":9000,"HostPortEnd":9000}]}}"#,
        )
        .unwrap();
        assert_eq!(sctp.ports().unwrap()[0].binding.to_string(), "80/sctp -> 0.0.0.0:9000");
        assert!(bad(r#"{"Proto":6,"Port":0}"#).contains("container port 0"));
        assert!(bad(r#"{"Proto":6,"Port":80,"HostIP":"::g"}"#).contains("::g"));
        let c: Connectivity = serde_json::from_str(
            r#"{"Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostIP":"::1","HostPort":8080}]}}"#,
        )
        .unwrap();
        assert_eq!(c.ports().unwrap()[0].binding.to_string(), "80/tcp -> [::1]:8080");
        assert!(bad(r#"{"Proto":6,"Port":80,"HostPort":70000}"#).contains("invalid com.docker.network.portmap"));
    }

    #[test]
    fn a_gateway_request_is_told_by_its_type() {
        let r: AddressRequest = serde_json::from_str(
            r#"{"PoolID":"p","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#,
        )
        .unwrap();
        assert!(r.is_gateway());
        let r: AddressRequest = serde_json::from_str(r#"{"PoolID":"p","Address":"10.0.0.5","Options":null}"#).unwrap();
        assert!(!r.is_gateway());
    }
}
