//! The embedded DNS of user-defined networks: which names a query may see and what the answer
//! is. No sockets here: switchd feeds query bytes in and sends back what comes out.
//!
//! ```text
//!  query bytes ──► asker an endpoint of the arrival network? ── no ──► REFUSED (never forwarded)
//!                     │ yes
//!                     ▼
//!                   parse ──► scope: the asker's networks, the arrival network first
//!                     │          (user-defined networks only; no leak across networks)
//!                     ├─ A or AAAA NAME | NAME.NETWORK    ──► local answer (all matches of the
//!                     │  | ALIAS | the asker's LINK ALIAS     first network that has any; a
//!                     │                                       link first)
//!                     ├─ PTR of an address in scope       ──► NAME.NETWORK.
//!                     │  (in-addr.arpa or ip6.arpa)
//!                     ├─ other types for a local name     ──► NOERROR, no data
//!                     └─ anything else                    ──► Forward (upstream resolvers)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::ids::Id;
use crate::model::{Network, State};

/// TTL of local answers, in seconds (Docker's embedded DNS uses 600).
pub const LOCAL_TTL: u32 = 600;

/// What to do with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send these bytes back to the asker.
    Reply(Vec<u8>),
    /// Not a local name: forward the query to the upstream resolvers.
    Forward,
    /// The asker is no endpoint of the network it asked on: send these bytes (REFUSED) back,
    /// answer nothing, forward nothing.
    Refuse(Vec<u8>),
    /// Not a DNS message at all: send nothing.
    Ignore,
}

/// The sandbox whose endpoint on `network` holds `asker`: who may ask the network's DNS.
/// Only this host's endpoints: a sandbox on another host asks its own host's gateway.
pub fn member(state: &State, network: &Id, asker: IpAddr) -> Option<Id> {
    state
        .endpoints_of_network(network)
        .find(|e| holds(e, asker))
        .map(|e| e.sandbox.clone())
}

/// Whether endpoint `e` holds `ip` (either family).
fn holds(e: &crate::model::Endpoint, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => e.ip == Some(v),
        IpAddr::V6(v) => e.ip6 == Some(v),
    }
}

/// The networks a query may see: the asker's user-defined networks, the one the query arrived
/// on first. An asker that is no endpoint of the arrival network sees none.
pub fn scope<'a>(state: &'a State, arrival: &Id, asker: IpAddr) -> Vec<&'a Network> {
    let user = |id: &Id| state.networks.get(id).filter(|n| !n.builtin && n.has_addresses());
    let Some(sb) = member(state, arrival, asker) else {
        return Vec::new();
    };
    let mut nets: Vec<&Network> = user(arrival).into_iter().collect();
    for e in state.endpoints_of_sandbox(&sb) {
        if let Some(n) = user(&e.network) {
            if !nets.iter().any(|x| x.id == n.id) {
                nets.push(n);
            }
        }
    }
    nets
}

/// Addresses of `name` (a sandbox name, `name.network`, an alias, or a link alias of the
/// asking sandbox `asker`'s endpoint there) in the first network of `scope` that has it, of
/// both families; `None` when no network in scope knows the name.
pub fn lookup(state: &State, scope: &[&Network], asker: Option<&Id>, name: &str) -> Option<Vec<IpAddr>> {
    for net in scope {
        let bare = name
            .strip_suffix(net.name.to_ascii_lowercase().as_str())
            .and_then(|s| s.strip_suffix('.'))
            .unwrap_or(name);
        // A link's alias is the asker's own name for another sandbox, before any other.
        let linked = asker.and_then(|sb| {
            let own = state.endpoints_of_network(&net.id).find(|e| &e.sandbox == sb)?;
            let link = own.links.iter().find(|l| l.alias.eq_ignore_ascii_case(bare))?;
            let other = state
                .endpoints_of_network(&net.id)
                .find(|e| e.sandbox == link.sandbox)?;
            let v4 = other.ip.map(IpAddr::from);
            Some(v4.into_iter().chain(other.ip6.map(IpAddr::from)).collect::<Vec<_>>())
        });
        if let Some(ips) = linked.filter(|ips| !ips.is_empty()) {
            return Some(ips);
        }
        let named = |sandbox: &str, aliases: &[String]| {
            sandbox.eq_ignore_ascii_case(bare) || aliases.iter().any(|a| a.eq_ignore_ascii_case(bare))
        };
        let local = state.endpoints_of_network(&net.id).filter(|e| {
            state
                .sandboxes
                .get(&e.sandbox)
                .is_some_and(|s| named(&s.name, &e.aliases))
        });
        let remote = state.remote.get(&net.id).into_iter().flat_map(|m| m.values());
        let ips: Vec<IpAddr> = local
            .flat_map(|e| {
                let v4 = e.ip.map(IpAddr::from);
                v4.into_iter().chain(e.ip6.map(IpAddr::from))
            })
            .chain(remote.filter(|r| named(&r.sandbox, &r.aliases)).flat_map(|r| {
                let v6 = net.overlay_ip6(r.ip).map(IpAddr::from);
                std::iter::once(IpAddr::from(r.ip)).chain(v6)
            }))
            .collect();
        if !ips.is_empty() {
            return Some(ips);
        }
    }
    None
}

/// `NAME.NETWORK.` of the sandbox holding `ip` in a network of `scope`.
pub fn lookup_ptr(state: &State, scope: &[&Network], ip: IpAddr) -> Option<String> {
    scope.iter().find_map(|net| {
        let local = state
            .endpoints_of_network(&net.id)
            .find(|e| holds(e, ip))
            .and_then(|e| state.sandboxes.get(&e.sandbox))
            .map(|sb| sb.name.clone());
        let remote = || {
            state
                .remote
                .get(&net.id)?
                .values()
                .find(|r| IpAddr::from(r.ip) == ip || net.overlay_ip6(r.ip).map(IpAddr::from) == Some(ip))
                .map(|r| r.sandbox.clone())
        };
        local.or_else(remote).map(|name| format!("{name}.{}.", net.name))
    })
}

/// The address of a reverse name such as `10.0.168.192.in-addr.arpa`, or of an `ip6.arpa`
/// one: 32 nibbles, lowest first (RFC 3596).
pub fn reverse_ip(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".ip6.arpa") {
        let nibbles: Vec<u8> = rest
            .split('.')
            .map(|p| match p.as_bytes() {
                [c] => (*c as char).to_digit(16).map(|d| d as u8),
                _ => None,
            })
            .collect::<Option<_>>()?;
        if nibbles.len() != 32 {
            return None;
        }
        let bits = nibbles.iter().rev().fold(0u128, |acc, n| acc << 4 | u128::from(*n));
        return Some(Ipv6Addr::from(bits).into());
    }
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut o: Vec<u8> = rest.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if o.len() != 4 {
        return None;
    }
    o.reverse();
    Some(Ipv4Addr::new(o[0], o[1], o[2], o[3]).into())
}

/// Decides what to do with `query` from `asker`, arriving on network `arrival`. Names stay
/// inside their network: only an endpoint of `arrival` gets an answer or a forwarded query;
/// anyone else (another network's sandbox, the host, the underlay) is refused.
pub fn decide(state: &State, arrival: &Id, asker: IpAddr, query: &[u8]) -> Decision {
    if member(state, arrival, asker).is_none() {
        return match Message::from_vec(query) {
            Ok(msg) if msg.metadata.message_type == MessageType::Query => {
                Decision::Refuse(error(&msg, ResponseCode::Refused))
            }
            _ => Decision::Ignore,
        };
    }
    let Ok(msg) = Message::from_vec(query) else {
        return match query.get(..2) {
            Some(id) => Decision::Reply(header_only(u16::from_be_bytes([id[0], id[1]]), ResponseCode::FormErr)),
            None => Decision::Ignore,
        };
    };
    if msg.metadata.message_type != MessageType::Query {
        return Decision::Ignore;
    }
    if msg.metadata.op_code != OpCode::Query {
        return Decision::Reply(error(&msg, ResponseCode::NotImp));
    }
    let [q] = msg.queries.as_slice() else {
        return Decision::Reply(error(&msg, ResponseCode::FormErr));
    };
    let name = q.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let scope = scope(state, arrival, asker);
    if scope.is_empty() {
        return Decision::Forward;
    }
    match q.query_type() {
        RecordType::PTR => match reverse_ip(&name).and_then(|ip| lookup_ptr(state, &scope, ip)) {
            Some(target) => match Name::from_ascii(&target) {
                Ok(t) => Decision::Reply(answer(&msg, q, vec![RData::PTR(PTR(t))])),
                Err(_) => Decision::Forward,
            },
            None => Decision::Forward,
        },
        // A local name asked for another type, or for a family it lacks: it exists, with no
        // such data.
        qt => match lookup(state, &scope, member(state, arrival, asker).as_ref(), &name) {
            Some(ips) => {
                let data = ips
                    .into_iter()
                    .filter_map(|ip| match (qt, ip) {
                        (RecordType::A, IpAddr::V4(v)) => Some(RData::A(A(v))),
                        (RecordType::AAAA, IpAddr::V6(v)) => Some(RData::AAAA(AAAA(v))),
                        _ => None,
                    })
                    .collect();
                Decision::Reply(answer(&msg, q, data))
            }
            None => Decision::Forward,
        },
    }
}

fn response(msg: &Message, code: ResponseCode) -> Message {
    let mut r = Message::response(msg.metadata.id, msg.metadata.op_code);
    r.metadata.recursion_desired = msg.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.metadata.response_code = code;
    for q in &msg.queries {
        r.add_query(q.clone());
    }
    r
}

fn answer(msg: &Message, q: &Query, data: Vec<RData>) -> Vec<u8> {
    let mut r = response(msg, ResponseCode::NoError);
    r.metadata.authoritative = true;
    for d in data {
        r.add_answer(Record::from_rdata(q.name().clone(), LOCAL_TTL, d));
    }
    r.to_vec()
        .unwrap_or_else(|_| header_only(msg.metadata.id, ResponseCode::ServFail))
}

fn error(msg: &Message, code: ResponseCode) -> Vec<u8> {
    response(msg, code)
        .to_vec()
        .unwrap_or_else(|_| header_only(msg.metadata.id, code))
}

/// A SERVFAIL answer to `query` (upstream down or timed out), if it parses at all.
pub fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    Some(error(&msg, ResponseCode::ServFail))
}

/// A bare 12-byte response header: ID, QR set, RA set, the code, no sections.
fn header_only(id: u16, code: ResponseCode) -> Vec<u8> {
    let id = id.to_be_bytes();
    let rcode = (u16::from(code) & 0x0f) as u8;
    vec![id[0], id[1], 0x80, 0x80 | rcode, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// Whether a UDP answer was truncated (the TC bit), so the query must be retried over TCP.
pub fn is_truncated(answer: &[u8]) -> bool {
    answer.get(2).is_some_and(|b| b & 0x02 != 0)
}

#[cfg(test)]
mod tests;
