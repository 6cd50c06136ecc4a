//! Harnesses for the parsers of untrusted input in this crate (API bodies and request lines,
//! DNS questions, gossip messages and records, anti-entropy state, frame and port specs): each takes arbitrary bytes, must never
//! panic, and asserts what must hold for any input. The fuzz targets in `fuzz/` call them
//! under libFuzzer; `sim/tests/fuzz_corpus.rs` replays the committed corpus and seeded
//! random inputs through them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

use hickory_proto::op::Message;

use crate::api::IntoSpec;
use crate::api::{NetworkConnect, NetworkCreate, SandboxCreate};
use crate::cluster::exchange::{decode_bucket_digests, ExchangeState};
use crate::cluster::membership::{HostId, Membership};
use crate::cluster::records::Record;
use crate::cluster::records::Records;
use crate::cluster::seal::GossipKey;
use crate::model::{NetworkSpec, SandboxSpec};
use crate::{dns, framespec, ports, request, HostFacts, Id, State};

fn id(n: u8) -> Id {
    Id::from_random([n; 32])
}

/// API bodies into the model: lines of a letter (n: network create, s: sandbox create,
/// c: connect, r: network rm) and the JSON the daemon would receive. A refused request leaves
/// the state exactly as it was.
pub fn api_requests(data: &[u8]) {
    let mut s = State::with_defaults([id(1), id(2), id(3)], SystemTime::UNIX_EPOCH);
    // Fresh IDs for every object, as the daemon's random ones are.
    let fresh = |k: usize| {
        let mut b = [0xa5u8; 32];
        b[..8].copy_from_slice(&(k as u64).to_be_bytes());
        Id::from_random(b)
    };
    for (i, part) in data.split(|b| *b == b'\n').enumerate() {
        let before = s.clone();
        let (a, b) = (fresh(2 * i), fresh(2 * i + 1));
        let r = match part.first() {
            Some(b'n') => serde_json::from_slice::<NetworkCreate>(&part[1..]).ok().map(|req| {
                req.into_spec().and_then(|spec| {
                    s.create_network(spec, a, SystemTime::UNIX_EPOCH, &HostFacts::default())
                        .map(drop)
                })
            }),
            Some(b's') => serde_json::from_slice::<SandboxCreate>(&part[1..]).ok().map(|req| {
                req.into_spec()
                    .and_then(|spec| s.create_sandbox(spec, a, b, Path::new("/run/netns"), SystemTime::UNIX_EPOCH))
                    .map(drop)
            }),
            Some(b'c') => serde_json::from_slice::<NetworkConnect>(&part[1..]).ok().map(|req| {
                (&req)
                    .into_spec()
                    .and_then(|spec| s.connect("bridge", &req.container, spec, a))
                    .map(drop)
            }),
            Some(b'r') => Some(s.remove_network(&String::from_utf8_lossy(&part[1..])).map(drop)),
            _ => None,
        };
        if let Some(Err(_)) = r {
            assert!(s == before, "a refused request changed state");
        }
    }
}

/// A state with a user network (10.9.0.0/24) holding sandboxes at .2 and .3, built once.
fn dns_world() -> &'static State {
    static WORLD: OnceLock<State> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut s = State::with_defaults([id(1), id(2), id(3)], SystemTime::UNIX_EPOCH);
        let net = NetworkSpec {
            name: "n1".into(),
            subnet: Some("10.9.0.0/24".into()),
            ..Default::default()
        };
        s.create_network(net, id(4), SystemTime::UNIX_EPOCH, &HostFacts::default())
            .expect("a valid network");
        for (k, name) in [(5u8, "vm1"), (7, "vm2")] {
            let sb = SandboxSpec {
                name: name.into(),
                network: "n1".into(),
                port_kind: "tap".into(),
                aliases: vec!["web".into()],
                ..Default::default()
            };
            s.create_sandbox(sb, id(k), id(k + 1), Path::new("/run/netns"), SystemTime::UNIX_EPOCH)
                .expect("a valid sandbox");
        }
        s
    })
}

/// DNS questions: four bytes of the asker's address, a byte choosing the network it asked
/// on, then the message. Whatever comes back parses as DNS, and an asker that is no endpoint
/// of the network is never answered or forwarded.
pub fn dns_question(data: &[u8]) {
    let [a, b, c, d, which, query @ ..] = data else { return };
    let s = dns_world();
    let asker = Ipv4Addr::new(*a, *b, *c, *d).into();
    let arrival = if which & 1 == 0 { id(4) } else { id(1) };
    let decision = dns::decide(s, &arrival, asker, query);
    let member = dns::member(s, &arrival, asker).is_some();
    match &decision {
        dns::Decision::Reply(r) => {
            assert!(member, "a stranger was answered");
            Message::from_vec(r).expect("replies parse");
        }
        dns::Decision::Refuse(r) => {
            assert!(!member, "a member was refused");
            Message::from_vec(r).expect("refusals parse");
        }
        dns::Decision::Forward => assert!(member, "a stranger's query was forwarded"),
        dns::Decision::Ignore => {}
    }
}

/// Gossip: the datagram is opened with a key (authentication fails on anything not sealed
/// with it), fed to a member as if it had been authenticated (messages split at 0xa5), and
/// read as a record: a record that decodes encodes and decodes to itself.
pub fn gossip(data: &[u8]) {
    let _ = GossipKey::from_bytes(&[7; 32]).open(data);
    let me = HostId {
        name: "h1".into(),
        addr: SocketAddr::from(([10, 0, 0, 1], 7946)),
        bump: 1,
    };
    let mut m = Membership::new(me, 7);
    for chunk in data.split(|b| *b == 0xa5) {
        let _ = m.handle_data(chunk);
        let _ = m.handle_signed(chunk, "h2", SocketAddr::from(([10, 0, 0, 2], 7946)));
    }
    // The sender's envelope, as opened from the seal: a message is taken only in the name
    // whose signature holds.
    let opened = crate::cluster::seal::Opened {
        nonce: [1; 12],
        sent_ms: 5,
        payload: data.to_vec(),
    };
    let auth = crate::cluster::cheap::Cheap::new("h1");
    if let crate::cluster::envelope::Verdict::Message { name, .. } = crate::cluster::envelope::open(&auth, &opened, 5) {
        assert_eq!(name, "h1", "only the one certificate known here signs");
    }
    if let Ok(r) = Record::decode(data) {
        let again = Record::decode(&r.encode()).expect("an encoded record decodes");
        assert_eq!(again, r);
    }
}

/// Frame specs (`switchctl trace --frame`) and port specs (`-p`), as text: a frame is built
/// within its bounds or refused with a sentence; a port binding that parses parses again
/// from its own `-p` form to itself.
pub fn specs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mac = switch::MacAddr([2, 0x42, 10, 9, 0, 2]);
    let own = framespec::PortAddresses {
        mac: Some(mac),
        ip: Some(Ipv4Addr::new(10, 9, 0, 2)),
        ip6: Some(std::net::Ipv6Addr::new(0xfd09, 0, 0, 0, 0, 0, 0, 2)),
    };
    if let Ok(f) = framespec::build(&text, own) {
        assert!(
            (14..=65_535 + 4 + 28).contains(&f.len()),
            "a frame of {} bytes",
            f.len()
        );
    }
    let all = std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    if let Ok(requests) = ports::parse_request(&text, all) {
        for r in requests {
            let again = r.to_string();
            assert_eq!(ports::parse_request(&again, all), Ok(vec![r]), "{again}");
            assert!(r.host_ports().contains(&r.binding.host_port) || r.binding.host_port == 0);
        }
    }
    if let Ok(exposed) = ports::parse_expose(&text) {
        assert!(!exposed.is_empty() && exposed.iter().all(|(p, _)| *p > 0));
    }
}

/// API request lines as any client of the socket may send them: a path, then after `?` a
/// query. Segments never hold an unescaped `/`; a capture count that is accepted is 1 or more.
pub fn api_paths(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text.as_ref(), None),
    };
    for seg in request::path_segments(path) {
        assert!(
            !seg.contains('/') || path.to_ascii_lowercase().contains("%2f"),
            "{path:?}"
        );
    }
    if let Ok(Some(n)) = request::capture_count(query) {
        assert!(n > 0 && query.is_some_and(|q| q.contains("count=")));
    }
    // A prune's filters are taken only from a filters parameter, and never panic.
    let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 31);
    if let Ok(f) = request::prune_filters(query, now) {
        let given = f.until.is_some() || !f.labels.is_empty() || !f.not_labels.is_empty();
        assert!(!given || query.is_some_and(|q| q.contains("filters=")), "{query:?}");
    }
}

/// What a peer sends in an anti-entropy exchange: its state (read, and applied to a host's
/// records as switchd applies it) and its bucket digests. A state that is read re-encodes to
/// itself, and applying it never panics.
pub fn anti_entropy(data: &[u8]) {
    let _ = decode_bucket_digests(data);
    let Ok(state) = ExchangeState::decode(data) else { return };
    assert_eq!(ExchangeState::decode(&state.encode()).as_ref(), Ok(&state));
    let mut mine = Records::new("h1");
    crate::cluster::exchange::merge(&mut mine, state);
    let _ = (mine.digest(), mine.bucket_digests());
}
