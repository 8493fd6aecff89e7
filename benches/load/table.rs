//! Measuring a row (the server process's CPU and peak RSS around a load) and printing the
//! tables.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::loadgen::Outcome;
use crate::procs::{self, Proc};
use crate::{BoxError, Opts, cores};

/// A row: the load's outcome and what the server process spent on it.
pub(crate) struct Measured {
    pub(crate) name: String,
    pub(crate) workers: Option<usize>,
    pub(crate) outcome: Outcome,
    /// Server CPU (user + system) per answered request, µs.
    pub(crate) cpu_us: Option<f64>,
    pub(crate) peak_rss_kib: Option<u64>,
    pub(crate) notes: Vec<String>,
}

impl Measured {
    /// A row without a server process of ours (the upstream alone, say).
    pub(crate) fn without_process(name: &str, outcome: Outcome) -> Self {
        Self {
            name: name.into(),
            workers: None,
            outcome,
            cpu_us: None,
            peak_rss_kib: None,
            notes: Vec::new(),
        }
    }
}

/// Runs `load` and reads `server`'s CPU time before and after it, and its peak RSS.
pub(crate) fn measure(
    name: &str,
    workers: Option<usize>,
    server: &Proc,
    load: impl FnOnce() -> Result<Outcome, BoxError>,
) -> Result<Measured, BoxError> {
    let before = procs::cpu_ticks(server.pid());
    let outcome = load()?;
    let after = procs::cpu_ticks(server.pid());
    let served = (outcome.requests).max(1) as f64;
    let tck = procs::clk_tck() as f64;
    let cpu_us = match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / tck * 1e6 / served),
        _ => None,
    };
    Ok(Measured {
        name: name.into(),
        workers,
        outcome,
        cpu_us,
        peak_rss_kib: procs::peak_rss_kib(server.pid()),
        notes: Vec::new(),
    })
}

/// The samples of a gateway's `/metrics` (admin listener) whose series starts with
/// `prefix`: (series, value).
pub(crate) fn samples(admin: SocketAddr, prefix: &str) -> Vec<(String, f64)> {
    let fetch = || -> Option<Bytes> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let stream = tokio::net::TcpStream::connect(admin).await.ok()?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
            tokio::spawn(conn);
            let req = Request::get("/metrics")
                .header(HOST, HeaderValue::from_static("admin"))
                .body(Empty::<Bytes>::new())
                .ok()?;
            let resp = tokio::time::timeout(Duration::from_secs(5), send.send_request(req))
                .await
                .ok()?
                .ok()?;
            resp.into_body().collect().await.ok().map(|b| b.to_bytes())
        })
    };
    let Some(body) = fetch() else { return Vec::new() };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// A counter or gauge without labels.
pub(crate) fn metric(admin: SocketAddr, name: &str) -> Option<u64> {
    samples(admin, name)
        .into_iter()
        .find(|(series, _)| series == name)
        .map(|(_, v)| v as u64)
}

/// How the connections spread over the gateway's workers, e.g. `17/16`, when it has more
/// than one.
pub(crate) fn worker_spread(admin: SocketAddr) -> Option<String> {
    let mut per: Vec<(String, f64)> = samples(admin, "portcullis_worker_connections_total{");
    per.sort_by(|a, b| a.0.cmp(&b.0));
    (per.len() > 1).then(|| per.iter().map(|(_, v)| format!("{v:.0}")).collect::<Vec<_>>().join("/"))
}

/// The header every table starts with: date, machine, load shape.
pub(crate) fn print_header(o: &Opts, what: &str) {
    use portcullis::time::Clock as _;
    let now = portcullis::time::SystemClock.now();
    let date = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let list: Vec<String> = o.workers.iter().map(|w| w.to_string()).collect();
    println!();
    println!("# portcullis load: {what}");
    println!(
        "# {} | {} cores ({cpu}) | {} connections{} | {} s per row | gateway workers {} | generator: `portcullis loadtest`, {} threads{}",
        humantime::format_rfc3339_seconds(date),
        cores(),
        o.connections,
        if o.http2 {
            format!(" × {} h2c streams", o.streams)
        } else {
            String::new()
        },
        o.seconds,
        list.join(","),
        o.generator_threads,
        o.pin_generator
            .as_ref()
            .map_or(String::new(), |c| format!(" on CPU {c}")),
    );
    match (&o.pin_generator, &o.pin_gateway) {
        (None, None) => println!(
            "# the load generator, the upstream and the servers share these {} cores: the numbers are a lower bound",
            cores()
        ),
        _ => println!(
            "# pinned: generator {}, gateway {}, upstream {}",
            o.pin_generator.as_deref().unwrap_or("any"),
            o.pin_gateway.as_deref().unwrap_or("any"),
            o.pin_upstream.as_deref().unwrap_or("any"),
        ),
    }
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

/// The gateway suite's table; ratios against the row named `base`.
pub(crate) fn print(rows: &[Measured], base: &str) {
    let base_rps = rows.iter().find(|r| r.name == base).map(|r| r.outcome.rps);
    println!();
    println!(
        "| row | workers | req/s | × {base} | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | server peak RSS MiB | notes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let o = &r.outcome;
        let ratio = match base_rps {
            Some(d) if d > 0.0 => format!("{:.2}", o.rps / d),
            _ => "-".into(),
        };
        let mut notes = r.notes.clone();
        if o.errors > 0 {
            notes.push(format!("{} errors", o.errors));
        }
        if o.unexpected > 0 {
            notes.push(format!("unexpected: {}", o.unexpected_statuses));
        }
        if let Some(n) = o.wrapped_pool {
            notes.push(format!("pool of {n} wrapped around"));
        }
        println!(
            "| {} | {} | {:.0} | {ratio} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.workers.map_or("-".into(), |w| w.to_string()),
            o.rps,
            ms(o.p50),
            ms(o.p99),
            ms(o.p999),
            r.cpu_us.map_or("-".into(), |c| format!("{c:.1}")),
            r.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            notes.join("; "),
        );
    }
}
