//! Seeing into the switch: `ports`, `fdb`, `capture`, `trace` and `stats`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use hyper::Method;
use switch_api::{
    FdbResource, NetworkResource, PortResource, StatsResource, TraceRequest, TraceResource, VersionResource,
};

use switch_client::client::{path, Client};

use crate::{pretty, table, Format};

/// `switchctl version`: this client's release and API, then the server's, as `docker version`
/// prints them; an unreachable server is an error after the client's part.
pub(crate) fn version(c: &Client, format: Format) -> anyhow::Result<ExitCode> {
    let client = VersionResource::of_this(env!("CARGO_PKG_VERSION"));
    let server: Result<VersionResource, _> = c.get("/version");
    if format == Format::Json {
        let both = serde_json::json!({"Client": client, "Server": server.as_ref().ok()});
        println!("{}", pretty(&both));
    } else {
        print!("{}", version_text(&client, server.as_ref().ok()));
    }
    server?;
    Ok(ExitCode::SUCCESS)
}

/// `docker version`'s layout: a block per side, labels in a column.
fn version_text(client: &VersionResource, server: Option<&VersionResource>) -> String {
    let row = |label: &str, value: &str| format!(" {:<18}{value}\n", format!("{label}:"));
    let mut s = String::from("Client:\n");
    s += &row("Version", &client.version);
    s += &row("API version", &client.api_version);
    s += &row("OS/Arch", &format!("{}/{}", client.os, client.arch));
    if let Some(v) = server {
        s += "\nServer: switchd\n";
        s += &row("Version", &v.version);
        s += &row(
            "API version",
            &format!("{} (minimum version {})", v.api_version, v.min_api_version),
        );
        s += &row("OS/Arch", &format!("{}/{}", v.os, v.arch));
        s += &row("Kernel version", &v.kernel_version);
    }
    s
}

pub(crate) fn ports(c: &Client, format: Format) -> anyhow::Result<ExitCode> {
    let list: Vec<PortResource> = c.get("/ports")?;
    if format == Format::Json {
        println!("{}", pretty(&list));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                p.port.to_string(),
                p.interface.clone(),
                p.kind.clone(),
                p.network.clone(),
                p.rx_packets.to_string(),
                p.rx_bytes.to_string(),
                p.tx_packets.to_string(),
                p.tx_bytes.to_string(),
                drops_cell(&p.drops),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "PORT",
                "INTERFACE",
                "KIND",
                "NETWORK",
                "RX PKTS",
                "RX BYTES",
                "TX PKTS",
                "TX BYTES",
                "DROPS"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn fdb(c: &Client, network: Option<&str>, format: Format) -> anyhow::Result<ExitCode> {
    let mut list: Vec<FdbResource> = c.get("/fdb")?;
    if let Some(n) = network {
        let net: NetworkResource = c.get(&path(&["networks", n]))?;
        list.retain(|e| e.network == net.name);
    }
    list.sort_by(|a, b| (&a.network, &a.mac).cmp(&(&b.network, &b.mac)));
    if format == Format::Json {
        println!("{}", pretty(&list));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            vec![
                e.network.clone(),
                e.mac.clone(),
                if e.remote_host.is_empty() {
                    format!("{} ({})", e.port, e.interface)
                } else {
                    format!("{} ({}, host {})", e.port, e.interface, e.remote_host)
                },
                format!("{}s", e.age_seconds),
                e.kind.clone(),
            ]
        })
        .collect();
    print!("{}", table::render(&["NETWORK", "MAC", "PORT", "AGE", "TYPE"], &rows));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn capture(
    c: &Client,
    port: &str,
    file: Option<&std::path::Path>,
    count: Option<u64>,
) -> anyhow::Result<ExitCode> {
    use switch_api::capture::{summary, Direction, Reader};
    if count == Some(0) {
        anyhow::bail!("invalid count 0: capture at least 1 frame");
    }
    // `-w -`: the pcapng stream to standard output (for `| tcpdump -r -`), each chunk as it comes.
    let to_stdout = file == Some(std::path::Path::new("-"));
    let mut out: Option<Box<dyn Write>> = match file {
        Some(_) if to_stdout => Some(Box::new(std::io::stdout())),
        Some(f) => Some(Box::new(
            std::fs::File::create(f).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", f.display()))?,
        )),
        None => None,
    };
    let mut query = path(&["ports", port, "capture"]);
    if let Some(n) = count {
        query.push_str(&format!("?count={n}"));
    }
    let mut reader = Reader::default();
    let (mut frames, mut failed) = (0u64, None);
    let stdout = std::io::stdout();
    c.stream(&query, |chunk| {
        if let Some(f) = out.as_mut() {
            if let Err(e) = f
                .write_all(chunk)
                .and_then(|()| if to_stdout { f.flush() } else { Ok(()) })
            {
                failed = Some(anyhow::anyhow!("cannot write the capture: {e}"));
                return false;
            }
        }
        reader.feed(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(fr)) => {
                    frames += 1;
                    if out.is_none() {
                        let secs = fr.ns / 1_000_000_000;
                        let dir = match fr.dir {
                            Some(Direction::Inbound) => "in ",
                            Some(Direction::Outbound) => "out",
                            None => "?  ",
                        };
                        let mut o = stdout.lock();
                        let _ = writeln!(
                            o,
                            "{:02}:{:02}:{:02}.{:06} {dir} {}",
                            secs / 3600 % 24,
                            secs / 60 % 60,
                            secs % 60,
                            fr.ns % 1_000_000_000 / 1000,
                            summary(&fr.frame)
                        );
                        let _ = o.flush();
                    }
                }
                Ok(None) => return true,
                Err(e) => {
                    failed = Some(anyhow::anyhow!("switchd sent a broken capture: {e}"));
                    return false;
                }
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    match file {
        Some(_) if to_stdout => eprintln!("{frames} frames written to standard output"),
        Some(f) => eprintln!("{frames} frames written to {}", f.display()),
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn trace(
    c: &Client,
    network: String,
    in_port: String,
    frame: String,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let req = TraceRequest {
        network,
        in_port,
        frame,
    };
    let t: TraceResource = c.json(Method::POST, "/trace", Some(&req))?;
    if format == Format::Json {
        println!("{}", pretty(&t));
        return Ok(ExitCode::SUCCESS);
    }
    let bytes = switch_api::framespec::build(&format!("hex={}", t.frame), Default::default()).unwrap_or_default();
    println!(
        "network {}, in port {} ({}): {}",
        t.network,
        t.in_port.port,
        t.in_port.interface,
        switch_api::capture::summary(&bytes)
    );
    let width = t.stages.iter().map(|s| s.stage.len()).max().unwrap_or(0);
    for s in &t.stages {
        println!("  {:width$}  {}", s.stage, s.decision);
    }
    println!("verdict: {}", t.verdict);
    Ok(ExitCode::SUCCESS)
}

/// Drops by reason as one table cell: `reason=n,...`, or `-` when there are none.
pub(crate) fn stats(c: &Client, format: Format) -> anyhow::Result<ExitCode> {
    let s: StatsResource = c.get("/stats")?;
    if format == Format::Json {
        println!("{}", pretty(&s));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "networks {}, sandboxes {}, switch ports {}",
        s.networks,
        s.sandboxes,
        s.ports.len()
    );
    print_port_totals(&s.ports);
    let rows: Vec<Vec<String>> = s
        .mac_table
        .iter()
        .map(|m| vec![m.network.clone(), m.r#static.to_string(), m.learned.to_string()])
        .collect();
    print!(
        "\n{}",
        table::render(&["NETWORK", "STATIC MACS", "LEARNED MACS"], &rows)
    );
    print_host(&s);
    Ok(ExitCode::SUCCESS)
}

/// The tunnels, the writes, polling, descriptors, the cluster and DNS.
fn print_host(s: &StatsResource) {
    if let Some(v) = &s.vxlan {
        let at = v.address.as_deref().unwrap_or("closed: no overlay network");
        println!(
            "\nvxlan (udp {}, {at}): rx {} (malformed {}, unknown VNI {}, unknown VTEP {}), tx {} (errors {})",
            v.port, v.rx_packets, v.rx_malformed, v.rx_unknown_vni, v.rx_unknown_vtep, v.tx_packets, v.tx_errors
        );
        let e = &v.esp;
        if let Some(at) = &e.address {
            println!(
                "esp (udp {}, {at}): SAs {} in, {} out ({} installed, key exchanges {} ok, {} failed); rx {} (malformed {}, unknown SPI {}, wrong peer {}, forged {}, replayed {}), tx {} (no key {}, errors {}); clear datagrams refused {}",
                e.port, e.sas_in, e.sas_out, e.sas_installed, e.key_exchanges, e.key_exchanges_failed,
                e.rx_packets, e.rx_malformed, e.rx_unknown_spi, e.rx_wrong_peer, e.rx_forged, e.rx_replayed,
                e.tx_packets, e.tx_no_key, e.tx_errors, v.rx_unsealed
            );
        }
    }
    let w = &s.port_writes;
    if w.batched {
        let avg = w.frames as f64 / w.bursts.max(1) as f64;
        println!(
            "port writes: batched (io_uring), {} frames in {} bursts ({avg:.1} a burst)",
            w.frames, w.bursts
        );
    } else {
        println!("port writes: one write per frame");
    }
    let p = &s.polling;
    if p.micros == 0 {
        println!("polling after traffic: off");
    } else {
        println!("polling after traffic: {} µs, after {} rounds", p.micros, p.rounds);
    }
    let d = &s.descriptors;
    println!(
        "descriptors: {} open of {}; out of descriptors {} times",
        d.open, d.limit, d.exhausted
    );
    if !d.caps.is_empty() {
        let rows: Vec<Vec<String>> = d
            .caps
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.used.to_string(),
                    c.max.to_string(),
                    c.refused.to_string(),
                ]
            })
            .collect();
        print!(
            "\n{}",
            table::render(&["HELD FOR OTHERS", "IN USE", "MAX", "REFUSED"], &rows)
        );
    }
    if let Some(cl) = &s.cluster {
        let peers: Vec<String> = cl.peers.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!(
            "cluster: members {}; gossip received {} (refused {}, unauthenticated {}, replayed or stale {}, from revoked hosts {}, forged {}, from senders not known yet {}), sent {}; records refused as ahead of the clock {}, as forged {}, waiting for their origin's certificate {}; exchanges ok {}, failed {}",
            peers.join(", "),
            cl.gossip_received,
            cl.gossip_refused,
            cl.gossip_unauthenticated,
            cl.gossip_stale,
            cl.gossip_revoked,
            cl.gossip_forged,
            cl.gossip_unverified,
            cl.gossip_sent,
            cl.records_ahead,
            cl.records_forged,
            cl.records_unknown_origin,
            cl.sync_ok,
            cl.sync_failed
        );
    }
    if !s.dns.is_empty() {
        let rows: Vec<Vec<String>> = s
            .dns
            .iter()
            .map(|d| {
                vec![
                    d.network.clone(),
                    d.queries.to_string(),
                    d.answered.to_string(),
                    d.forwarded.to_string(),
                    d.failures.to_string(),
                    d.limited.to_string(),
                    d.refused.to_string(),
                ]
            })
            .collect();
        let header = [
            "DNS NETWORK",
            "QUERIES",
            "ANSWERED",
            "FORWARDED",
            "FAILED",
            "LIMITED",
            "REFUSED",
        ];
        print!("\n{}", table::render(&header, &rows));
    }
}

/// Each port's counters, then the switch's totals, as one table.
fn print_port_totals(ports: &[PortResource]) {
    let sum = |f: fn(&PortResource) -> u64| ports.iter().map(f).sum::<u64>();
    let mut drops: BTreeMap<String, u64> = BTreeMap::new();
    for p in ports {
        for (r, n) in &p.drops {
            *drops.entry(r.clone()).or_default() += n;
        }
    }
    // Each port, then the switch's totals.
    let mut rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            vec![
                p.port.to_string(),
                p.interface.clone(),
                p.rx_packets.to_string(),
                p.rx_bytes.to_string(),
                p.tx_packets.to_string(),
                p.tx_bytes.to_string(),
                p.learn_refused.to_string(),
                drops_cell(&p.drops),
            ]
        })
        .collect();
    rows.push(vec![
        "total".into(),
        String::new(),
        sum(|p| p.rx_packets).to_string(),
        sum(|p| p.rx_bytes).to_string(),
        sum(|p| p.tx_packets).to_string(),
        sum(|p| p.tx_bytes).to_string(),
        sum(|p| p.learn_refused).to_string(),
        drops_cell(&drops),
    ]);
    let header = [
        "PORT",
        "INTERFACE",
        "RX PKTS",
        "RX BYTES",
        "TX PKTS",
        "TX BYTES",
        "LEARN REFUSED",
        "DROPS",
    ];
    print!("\n{}", table::render(&header, &rows));
}

pub(crate) fn drops_cell(drops: &BTreeMap<String, u64>) -> String {
    if drops.is_empty() {
        return "-".into();
    }
    drops
        .iter()
        .map(|(r, n)| format!("{r}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prints_both_sides_as_docker_does() {
        let client = VersionResource::of_this("0.1.0");
        let server = VersionResource {
            min_api_version: "1.0".into(),
            kernel_version: "6.1.0-27-amd64".into(),
            ..VersionResource::of_this("0.1.0")
        };
        let arch = switch_api::go_arch(std::env::consts::ARCH);
        assert_eq!(
            version_text(&client, Some(&server)),
            format!(
                "Client:\n Version:          0.1.0\n API version:      1.0\n OS/Arch:          linux/{arch}\n\n\
                 Server: switchd\n Version:          0.1.0\n API version:      1.0 (minimum version 1.0)\n \
                 OS/Arch:          linux/{arch}\n Kernel version:   6.1.0-27-amd64\n"
            )
        );
        assert!(!version_text(&client, None).contains("Server"));
        // The client's own JSON has no server-only keys.
        let json = serde_json::to_value(&client).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 4, "{json}");
        assert_eq!(switch_api::go_arch("x86_64"), "amd64");
    }
}
