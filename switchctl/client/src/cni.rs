//! switch-cni: a CNI plugin (specification 1.0.0 and 1.1.0) that attaches a runtime's network
//! namespace to a switchd network through switchd's API.
//!
//! ```text
//! runtime ──env CNI_* + config on stdin──► switch-cni ──HTTP over switchd's socket──► switchd
//!         ◄──result or error object on stdout──
//! ```
//!
//! A container is one switchd sandbox that adopts CNI_NETNS and carries the container ID in
//! its labels; each network it is added to is one endpoint whose interface is CNI_IFNAME.
//! ADD makes the sandbox (or connects it to one more network), DEL takes the endpoint away
//! (and the sandbox with its last one), GC removes what the runtime no longer lists, and the
//! addresses are switchd's leases, so releasing an endpoint releases its address.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use hyper::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use switch_api::{CreateResponse, EndpointConfig, EndpointIpam, NetworkConnect, NetworkDisconnect};
use switch_api::{SandboxCreate, SandboxEndpoint, SandboxResource};

use crate::client::{path, Client, ClientError};

/// The specification versions this plugin speaks.
pub const SUPPORTED: [&str; 2] = ["1.0.0", "1.1.0"];
/// switchd's socket when the configuration names none.
pub const DEFAULT_SOCKET: &str = "/run/switchd/switchd.sock";
/// Where switchd publishes sandbox namespaces (its default `--netns-dir`).
const NETNS_DIR: &str = "/run/netns";
/// The sandbox label holding the runtime's container ID.
pub const LABEL_CONTAINER: &str = "cni.switchd.container-id";

/// The specification's error codes (and ours from 100).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// The plugin is not available (STATUS).
    pub const NOT_AVAILABLE: u32 = 50;
    /// switchd refused the request (its message says why).
    pub const REFUSED: u32 = 100;
    /// CHECK found the attachment different from what was added.
    pub const CHECK_FAILED: u32 = 101;
}

/// A CNI error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// One of [`code`].
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Longer details (may be empty).
    pub details: String,
}

impl CniError {
    fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The error object as the specification prints it.
    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({"cniVersion": version, "code": self.code, "msg": self.msg});
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }
}

impl From<ClientError> for CniError {
    fn from(e: ClientError) -> CniError {
        match e {
            ClientError::Connect(m) => CniError::new(code::TRY_AGAIN, m),
            ClientError::Daemon(status, m) => CniError {
                code: code::REFUSED,
                msg: format!("switchd refused the request: {m}"),
                details: format!("HTTP status {status}"),
            },
            ClientError::Protocol(m) => CniError::new(code::IO, m),
        }
    }
}

/// The CNI_* environment of one invocation.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// CNI_COMMAND.
    pub command: String,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS, parsed.
    pub args: BTreeMap<String, String>,
}

impl Env {
    /// Reads the environment through `var`.
    ///
    /// # Errors
    /// CNI_ARGS that is not `K=V;K=V`.
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let get = |k: &str| var(k).unwrap_or_default();
        let raw = get("CNI_ARGS");
        let mut args = BTreeMap::new();
        for pair in raw.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    format!("CNI_ARGS {raw:?} has {pair:?}, which is not KEY=VALUE: expected KEY=VALUE pairs separated by ';'"),
                ));
            };
            args.insert(k.to_string(), v.to_string());
        }
        Ok(Env {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args,
        })
    }

    fn require(&self, name: &str, value: &str) -> Result<(), CniError> {
        if value.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("{name} is not set: {} needs it", self.command),
            ));
        }
        Ok(())
    }

    fn require_container(&self) -> Result<(), CniError> {
        self.require("CNI_CONTAINERID", &self.container_id)?;
        let ok = self.container_id.as_bytes()[0].is_ascii_alphanumeric()
            && self
                .container_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!(
                    "CNI_CONTAINERID {:?} is not a container ID: use letters, digits, '_', '.' and '-', starting with a letter or digit",
                    self.container_id
                ),
            ));
        }
        Ok(())
    }
}

/// The network configuration on stdin (fields this plugin does not use are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct NetConf {
    /// The configuration's specification version.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The CNI network's name.
    #[serde(default)]
    pub name: String,
    /// The switchd network (name or ID).
    #[serde(default)]
    pub network: String,
    /// switchd's socket.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// What ADD returned (CHECK, DEL).
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    /// Capability arguments from the runtime.
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: RuntimeConfig,
    /// GC: the attachments the runtime still has.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The capability arguments used: `aliases` (podman: names per CNI network), `ips` and `mac`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    /// Aliases by CNI network name.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Requested addresses (`10.1.0.5/24` or `10.1.0.5`), at most one of each family.
    #[serde(default)]
    pub ips: Vec<String>,
    /// A requested MAC address.
    #[serde(default)]
    pub mac: Option<String>,
}

/// One attachment a runtime still has (GC).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// Its container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
}

impl NetConf {
    /// Parses and checks a configuration.
    ///
    /// # Errors
    /// Not JSON, a version this plugin does not speak, or no `network`.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE,
                format!("the network configuration on stdin is not valid: {e}"),
            )
        })?;
        check_version(&conf.cni_version)?;
        if conf.network.is_empty() {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "the network configuration has no \"network\": name the switchd network to attach to",
            ));
        }
        Ok(conf)
    }

    fn socket(&self) -> &Path {
        self.socket.as_deref().unwrap_or(Path::new(DEFAULT_SOCKET))
    }
}

fn check_version(v: &str) -> Result<(), CniError> {
    if SUPPORTED.contains(&v) {
        return Ok(());
    }
    Err(CniError::new(
        code::INCOMPATIBLE_VERSION,
        format!(
            "incompatible CNI version {v:?}: switch-cni supports {}",
            SUPPORTED.join(" and ")
        ),
    ))
}

/// Runs one invocation: the version its answer is written in, and the result to print (none
/// for DEL, CHECK, GC and STATUS) or the error.
pub fn run(env: &Env, stdin: &[u8]) -> (String, Result<Option<Value>, CniError>) {
    let latest = SUPPORTED[SUPPORTED.len() - 1].to_string();
    if env.command == "VERSION" {
        return (latest.clone(), Ok(Some(version(stdin))));
    }
    let conf = match NetConf::parse(stdin) {
        Ok(c) => c,
        Err(e) => {
            // Answer in the version asked for when it can be read and is ours.
            return (asked_version(stdin).unwrap_or(latest), Err(e));
        }
    };
    let out = Client::new(conf.socket())
        .map_err(|e| CniError::new(code::IO, e.to_string()))
        .and_then(|c| {
            let p = Plugin { c, env, conf: &conf };
            match env.command.as_str() {
                "ADD" => p.add().map(Some),
                "DEL" => p.del().map(|()| None),
                "CHECK" => p.check().map(|()| None),
                "GC" => p.gc().map(|()| None),
                "STATUS" => p.status().map(|()| None),
                "" => Err(CniError::new(
                    code::INVALID_ENV,
                    "CNI_COMMAND is not set: use ADD, DEL, CHECK, GC, STATUS or VERSION",
                )),
                other => Err(CniError::new(
                    code::INVALID_ENV,
                    format!("CNI_COMMAND {other:?} is not a CNI command: use ADD, DEL, CHECK, GC, STATUS or VERSION"),
                )),
            }
        });
    (conf.cni_version.clone(), out)
}

/// The `cniVersion` on stdin, when it can be read and is one this plugin speaks.
fn asked_version(stdin: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_string))
        .filter(|v| SUPPORTED.contains(&v.as_str()))
}

/// VERSION's answer.
fn version(stdin: &[u8]) -> Value {
    json!({
        "cniVersion": asked_version(stdin).unwrap_or_else(|| SUPPORTED[SUPPORTED.len() - 1].to_string()),
        "supportedVersions": SUPPORTED,
    })
}

struct Plugin<'a> {
    c: Client,
    env: &'a Env,
    conf: &'a NetConf,
}

impl Plugin<'_> {
    /// The sandbox switchd holds for a container, if any.
    fn sandbox_of(&self, container: &str) -> Result<Option<SandboxResource>, CniError> {
        let all: Vec<SandboxResource> = self.c.get("/sandboxes")?;
        Ok(all
            .into_iter()
            .find(|s| s.labels.get(LABEL_CONTAINER).map(String::as_str) == Some(container)))
    }

    fn on_network(&self, e: &SandboxEndpoint) -> bool {
        e.network == self.conf.network || e.network_id == self.conf.network
    }

    fn add(&self) -> Result<Value, CniError> {
        let env = self.env;
        env.require_container()?;
        env.require("CNI_NETNS", &env.netns)?;
        env.require("CNI_IFNAME", &env.ifname)?;
        let rc = &self.conf.runtime_config;
        let aliases = rc.aliases.get(&self.conf.name).cloned().unwrap_or_default();
        // runtimeConfig's `ips` may hold one address of each family.
        let bare = |s: &String| s.split('/').next().unwrap_or_default().to_string();
        let ip = rc
            .ips
            .iter()
            .find(|s| !s.contains(':'))
            .map(bare)
            .or_else(|| env.args.get("IP").cloned());
        let ip6 = rc.ips.iter().find(|s| s.contains(':')).map(bare);
        let mac = rc.mac.clone().or_else(|| env.args.get("MAC").cloned());
        let mut existing = self.sandbox_of(&env.container_id)?;
        if let Some(sb) = existing.take() {
            if sb.adopted_netns.as_deref() == Some(env.netns.as_str()) {
                existing = Some(sb);
            } else {
                // Left from an earlier life of the container (a reboot without DEL): its
                // namespace is not the one the runtime has now.
                self.remove_sandbox(&sb)?;
            }
        }
        let id = match existing {
            Some(sb) => {
                if let Some(e) = sb.networks.iter().find(|e| e.interface == env.ifname) {
                    if self.on_network(e) {
                        return Ok(self.result(e));
                    }
                    return Err(CniError::new(
                        code::REFUSED,
                        format!(
                            "interface {} of container {} is already attached to network {}",
                            env.ifname, env.container_id, e.network
                        ),
                    ));
                }
                let req = NetworkConnect {
                    container: sb.id.clone(),
                    endpoint_config: Some(EndpointConfig {
                        ipam_config: Some(EndpointIpam {
                            ipv4_address: ip,
                            ipv6_address: ip6,
                        }),
                        aliases,
                        mac_address: mac,
                        port_kind: None,
                        interface: Some(env.ifname.clone()),
                        ..EndpointConfig::default()
                    }),
                };
                self.c.call(
                    Method::POST,
                    &path(&["networks", &self.conf.network, "connect"]),
                    Some(&req),
                )?;
                sb.id
            }
            None => {
                let req = SandboxCreate {
                    name: self.sandbox_name()?,
                    network: self.conf.network.clone(),
                    ipv4_address: ip,
                    ipv6_address: ip6,
                    mac_address: mac,
                    aliases,
                    netns: Some(env.netns.clone()),
                    port_kind: None,
                    links: vec![],
                    publish: vec![],
                    expose: vec![],
                    publish_all_ports: false,
                    labels: BTreeMap::from([(LABEL_CONTAINER.to_string(), env.container_id.clone())]),
                    interface: Some(env.ifname.clone()),
                    // The runtime writes the container's resolver files from the result.
                    resolver: Default::default(),
                };
                let r: CreateResponse = self.c.json(Method::POST, "/sandboxes/create", Some(&req))?;
                r.id
            }
        };
        let sb: SandboxResource = self.c.get(&path(&["sandboxes", &id]))?;
        let e = sb.networks.iter().find(|e| e.interface == env.ifname).ok_or_else(|| {
            CniError::new(
                code::IO,
                format!("switchd lists no interface {} after adding it", env.ifname),
            )
        })?;
        Ok(self.result(e))
    }

    /// The sandbox's name, which its DNS name is: the runtime's name for the container
    /// (K8S_POD_NAME, which podman sets to the container name) when valid and free, else the
    /// container ID's first 12 characters, else the whole ID. A name is free when no sandbox
    /// has it and nothing is published under it in /run/netns (where switchd publishes the
    /// namespace, and where a runtime may have put its own under that name).
    fn sandbox_name(&self) -> Result<String, CniError> {
        let all: Vec<SandboxResource> = self.c.get("/sandboxes")?;
        let free = |n: &str| {
            switch_api::names::valid(n) && !all.iter().any(|s| s.name == n) && !Path::new(NETNS_DIR).join(n).exists()
        };
        let id = &self.env.container_id;
        let short: String = id.chars().take(12).collect();
        Ok(self
            .env
            .args
            .get("K8S_POD_NAME")
            .filter(|n| free(n))
            .cloned()
            .or_else(|| free(&short).then_some(short))
            .unwrap_or_else(|| id.clone()))
    }

    /// The CNI result of one endpoint.
    fn result(&self, e: &SandboxEndpoint) -> Value {
        let mut r = json!({
            "cniVersion": self.conf.cni_version,
            "interfaces": [{"name": e.interface, "mac": e.mac_address, "sandbox": self.env.netns}],
            "ips": [],
            "dns": {},
        });
        let families = [
            (&e.ip_address, e.ip_prefix_len, &e.gateway, "0.0.0.0/0"),
            (
                &e.global_ipv6_address,
                e.global_ipv6_prefix_len,
                &e.ipv6_gateway,
                "::/0",
            ),
        ];
        let (mut ips, mut routes) = (Vec::new(), Vec::new());
        for (addr, len, gw, default) in families.into_iter().filter(|(a, ..)| !a.is_empty()) {
            let mut ip = json!({"address": format!("{addr}/{len}"), "interface": 0});
            if !gw.is_empty() {
                ip["gateway"] = json!(gw);
                if e.default_route {
                    routes.push(json!({"dst": default, "gw": gw}));
                }
            }
            ips.push(ip);
        }
        r["ips"] = json!(ips);
        if !routes.is_empty() {
            r["routes"] = json!(routes);
        }
        if !e.dns_server.is_empty() {
            r["dns"] = json!({"nameservers": [e.dns_server], "options": ["ndots:0"]});
        }
        r
    }

    fn remove_sandbox(&self, sb: &SandboxResource) -> Result<(), CniError> {
        match self.c.call::<()>(Method::DELETE, &path(&["sandboxes", &sb.id]), None) {
            Err(ClientError::Daemon(404, _)) | Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes one endpoint away: the whole sandbox with its last.
    fn detach(&self, sb: &SandboxResource, e: &SandboxEndpoint) -> Result<(), CniError> {
        if sb.networks.len() <= 1 {
            return self.remove_sandbox(sb);
        }
        let req = NetworkDisconnect {
            container: sb.id.clone(),
            force: false,
        };
        match self.c.call(
            Method::POST,
            &path(&["networks", &e.network_id, "disconnect"]),
            Some(&req),
        ) {
            Err(ClientError::Daemon(404 | 409, _)) | Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn del(&self) -> Result<(), CniError> {
        let env = self.env;
        env.require_container()?;
        env.require("CNI_IFNAME", &env.ifname)?;
        let Some(sb) = self.sandbox_of(&env.container_id)? else {
            return Ok(());
        };
        match sb
            .networks
            .iter()
            .find(|e| e.interface == env.ifname && self.on_network(e))
        {
            Some(e) => self.detach(&sb, e),
            None => Ok(()),
        }
    }

    fn gc(&self) -> Result<(), CniError> {
        let Some(valid) = &self.conf.valid_attachments else {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "GC needs \"cni.dev/valid-attachments\" in the configuration (an empty list releases everything)",
            ));
        };
        let all: Vec<SandboxResource> = self.c.get("/sandboxes")?;
        for sb in &all {
            let Some(container) = sb.labels.get(LABEL_CONTAINER) else {
                continue;
            };
            let stale: Vec<&SandboxEndpoint> = sb
                .networks
                .iter()
                .filter(|e| self.on_network(e))
                .filter(|e| {
                    !valid
                        .iter()
                        .any(|a| &a.container_id == container && a.ifname == e.interface)
                })
                .collect();
            for e in stale {
                // Re-read: an earlier detach may have changed the sandbox.
                let now: SandboxResource = match self.c.get(&path(&["sandboxes", &sb.id])) {
                    Ok(s) => s,
                    Err(ClientError::Daemon(404, _)) => break,
                    Err(e) => return Err(e.into()),
                };
                self.detach(&now, e)?;
            }
        }
        Ok(())
    }

    fn status(&self) -> Result<(), CniError> {
        let unavailable = |e: ClientError| CniError::new(code::NOT_AVAILABLE, e.to_string());
        self.c.call::<()>(Method::GET, "/_ping", None).map_err(unavailable)?;
        match self
            .c
            .call::<()>(Method::GET, &path(&["networks", &self.conf.network]), None)
        {
            Ok(_) => Ok(()),
            Err(ClientError::Daemon(404, _)) => Err(CniError::new(
                code::NOT_AVAILABLE,
                format!("switchd has no network {:?}: create it first", self.conf.network),
            )),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn check(&self) -> Result<(), CniError> {
        let env = self.env;
        env.require_container()?;
        env.require("CNI_NETNS", &env.netns)?;
        env.require("CNI_IFNAME", &env.ifname)?;
        let Some(prev) = &self.conf.prev_result else {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "CHECK needs the prevResult of ADD in the configuration",
            ));
        };
        let failed = |m: String| CniError::new(code::CHECK_FAILED, m);
        let Some(sb) = self.sandbox_of(&env.container_id)? else {
            return Err(CniError::new(
                code::UNKNOWN_CONTAINER,
                format!("switchd has no sandbox for container {}", env.container_id),
            ));
        };
        let Some(e) = sb
            .networks
            .iter()
            .find(|e| e.interface == env.ifname && self.on_network(e))
        else {
            return Err(failed(format!(
                "container {} has no interface {} on network {}",
                env.container_id, env.ifname, self.conf.network
            )));
        };
        // What ADD returned must still be what switchd holds.
        let want = self.result(e);
        let prev_if = prev["interfaces"]
            .as_array()
            .and_then(|v| v.iter().position(|i| i["name"] == json!(env.ifname)));
        let Some(idx) = prev_if else {
            return Err(failed(format!("prevResult lists no interface {}", env.ifname)));
        };
        if prev["interfaces"][idx]["mac"] != want["interfaces"][0]["mac"] {
            return Err(failed(format!(
                "interface {} had MAC {} and switchd now holds {}",
                env.ifname, prev["interfaces"][idx]["mac"], e.mac_address
            )));
        }
        let prev_addrs: Vec<&Value> = prev["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|ip| ip["interface"] == json!(idx))
            .map(|ip| &ip["address"])
            .collect();
        let held: Vec<&Value> = want["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|ip| &ip["address"])
            .collect();
        if prev_addrs != held {
            return Err(failed(format!(
                "interface {} had addresses {prev_addrs:?} and switchd now holds {held:?}",
                env.ifname
            )));
        }
        // And the namespace must hold the interface as made.
        let (mac, addrs) = interface_in(Path::new(&env.netns), &env.ifname)
            .map_err(|m| failed(format!("interface {} in {}: {m}", env.ifname, env.netns)))?;
        if !mac.eq_ignore_ascii_case(&e.mac_address) {
            return Err(failed(format!(
                "interface {} in {} has MAC {mac}, not {}",
                env.ifname, env.netns, e.mac_address
            )));
        }
        let held = [&e.ip_address, &e.global_ipv6_address].map(|a| a.parse::<std::net::IpAddr>());
        for ip in held.into_iter().flatten() {
            if !addrs.contains(&ip) {
                return Err(failed(format!(
                    "interface {} in {} does not hold {ip}",
                    env.ifname, env.netns
                )));
            }
        }
        Ok(())
    }
}

/// Why an interface could not be read from a namespace.
#[derive(Debug, thiserror::Error)]
enum NamespaceReadError {
    #[error("cannot open the namespace: {0}")]
    Open(std::io::Error),
    #[error("cannot enter the namespace: {0}")]
    Enter(nix::Error),
    #[error("cannot list interfaces: {0}")]
    List(nix::Error),
    #[error("no such interface")]
    NoInterface,
    #[error("the namespace reader panicked")]
    Panicked,
}

/// The MAC and IPv4 addresses of `ifname` in the namespace at `netns` (read from a thread that
/// enters it, so the plugin's own namespace is untouched).
fn interface_in(netns: &Path, ifname: &str) -> Result<(String, Vec<std::net::IpAddr>), NamespaceReadError> {
    let ns = std::fs::File::open(netns).map_err(NamespaceReadError::Open)?;
    let ifname = ifname.to_string();
    std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(NamespaceReadError::Enter)?;
        let mut mac = None;
        let mut addrs = Vec::new();
        for a in nix::ifaddrs::getifaddrs().map_err(NamespaceReadError::List)? {
            if a.interface_name != ifname {
                continue;
            }
            let Some(addr) = a.address else { continue };
            if let Some(l) = addr.as_link_addr() {
                if let Some(m) = l.addr() {
                    mac = Some(m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"));
                }
            } else if let Some(v4) = addr.as_sockaddr_in() {
                addrs.push(v4.ip().into());
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                addrs.push(v6.ip().into());
            }
        }
        mac.map(|m| (m, addrs)).ok_or(NamespaceReadError::NoInterface)
    })
    .join()
    .map_err(|_| NamespaceReadError::Panicked)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        let m: BTreeMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env::read(|k| m.get(k).cloned())
    }

    #[test]
    fn cni_args_are_parsed_and_bad_ones_named() {
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=c1")]).unwrap();
        assert_eq!(e.args.get("K8S_POD_NAME").map(String::as_str), Some("c1"));
        let bad = env(&[("CNI_ARGS", "IgnoreUnknown=1;oops")]).unwrap_err();
        assert_eq!(bad.code, code::INVALID_ENV);
        assert!(bad.msg.contains("\"oops\""), "{}", bad.msg);
    }

    #[test]
    fn versions_are_checked_and_answered() {
        let v = version(br#"{"cniVersion":"1.0.0"}"#);
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["supportedVersions"], json!(["1.0.0", "1.1.0"]));
        assert_eq!(version(b"")["cniVersion"], "1.1.0");
        let e = NetConf::parse(br#"{"cniVersion":"0.3.1","name":"n","type":"switch-cni","network":"x"}"#).unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        assert!(e.msg.contains("\"0.3.1\""), "{}", e.msg);
        let (v, r) = run(
            &env(&[("CNI_COMMAND", "ADD")]).unwrap(),
            br#"{"cniVersion":"0.4.0","name":"n","type":"switch-cni","network":"x"}"#,
        );
        assert_eq!((v.as_str(), r.unwrap_err().code), ("1.1.0", code::INCOMPATIBLE_VERSION));
    }

    #[test]
    fn configs_without_a_network_or_not_json_are_refused() {
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"switch-cni"}"#).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        let e = NetConf::parse(b"{").unwrap_err();
        assert_eq!(e.code, code::DECODE);
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"switch-cni","network":"x",
                 "runtimeConfig":{"aliases":{"n":["web"]}},
                 "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(c.socket(), Path::new(DEFAULT_SOCKET));
        assert_eq!(c.runtime_config.aliases["n"], vec!["web".to_string()]);
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "a");
    }

    #[test]
    fn errors_print_as_the_specification_says() {
        let e = CniError {
            code: 7,
            msg: "m".into(),
            details: String::new(),
        };
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion": "1.0.0", "code": 7, "msg": "m"})
        );
        let e: CniError = ClientError::Daemon(404, "network x not found".into()).into();
        assert_eq!(e.code, code::REFUSED);
        assert_eq!(e.to_json("1.1.0")["details"], "HTTP status 404");
        let e: CniError = ClientError::Connect("no socket".into()).into();
        assert_eq!(e.code, code::TRY_AGAIN);
    }

    #[test]
    fn results_carry_routes_and_dns_only_where_switchd_gives_them() {
        let conf = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"switch-cni","network":"x"}"#).unwrap();
        let env = Env {
            netns: "/run/netns/c".into(),
            ..Default::default()
        };
        let p = Plugin {
            c: Client::new(Path::new("/nonexistent")).unwrap(),
            env: &env,
            conf: &conf,
        };
        let mut e = SandboxEndpoint {
            network: "x".into(),
            network_id: "0".repeat(64),
            endpoint_id: "1".repeat(64),
            interface: "eth0".into(),
            port_kind: "tap".into(),
            mac_address: "02:42:0a:00:00:02".into(),
            ip_address: "10.0.0.2".into(),
            ip_prefix_len: 24,
            gateway: "10.0.0.1".into(),
            global_ipv6_address: String::new(),
            global_ipv6_prefix_len: 0,
            ipv6_gateway: String::new(),
            aliases: vec![],
            links: vec![],
            default_route: true,
            dns_server: "10.0.0.1".into(),
        };
        let r = p.result(&e);
        assert_eq!(
            r,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "mac": "02:42:0a:00:00:02", "sandbox": "/run/netns/c"}],
                "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}],
                "dns": {"nameservers": ["10.0.0.1"], "options": ["ndots:0"]},
            })
        );
        e.global_ipv6_address = "fd00::2".into();
        e.global_ipv6_prefix_len = 64;
        e.ipv6_gateway = "fd00::1".into();
        let r = p.result(&e);
        assert_eq!(
            (&r["ips"][1], &r["routes"][1]),
            (
                &json!({"address": "fd00::2/64", "gateway": "fd00::1", "interface": 0}),
                &json!({"dst": "::/0", "gw": "fd00::1"})
            )
        );
        e.default_route = false;
        e.dns_server.clear();
        let r = p.result(&e);
        assert!(r.get("routes").is_none());
        assert_eq!(r["dns"], json!({}));
    }
}
