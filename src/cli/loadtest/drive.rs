//! Driving the load: one task per connection, and per HTTP/2 stream, each sending its next
//! request when the previous one was answered (closed model) or when it is due (open model:
//! latency from the due time, so a stall also counts against the requests it delayed).

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::Uri;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};

use super::conn::Conn;
use super::report::Outcome;
use super::{Fail, Load, Plan};

/// Longest latency recorded, in microseconds (longer ones count as this).
const MAX_US: u64 = 60_000_000;

/// What every lane shares.
struct Shared {
    uri: Uri,
    plan: Arc<Plan>,
    load: Arc<Load>,
    issued: AtomicU64,
    done: AtomicU64,
    started: Instant,
    deadline: Option<Instant>,
    /// Open model: the time between two requests of one lane.
    interval: Option<Duration>,
    lanes: usize,
}

/// One lane's results.
struct Tally {
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

/// Loads `target` by `plan`; a progress line on a terminal when `progress`.
pub(super) async fn drive(target: &str, plan: &Arc<Plan>, load: &Arc<Load>, progress: bool) -> Result<Outcome, Fail> {
    let uri: Uri = target
        .parse()
        .map_err(|_| (super::super::EXIT_CONFIG, format!("{target:?} is not a URL")))?;
    // Fail at once on an unreachable target, not N times later.
    drop(Conn::<Full<Bytes>>::open(&uri, plan.http2).await?);
    let lanes = plan.connections * plan.streams;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        uri,
        plan: plan.clone(),
        load: load.clone(),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        started,
        deadline: plan.duration.map(|d| started + d),
        interval: plan
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(lanes as f64 / r)),
        lanes,
    });
    // Microseconds, 1 µs to 60 s, 3 significant figures.
    let template = Histogram::<u64>::new_with_bounds(1, MAX_US, 3).map_err(|e| (1, e.to_string()))?;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..plan.connections {
        let (shared, template) = (shared.clone(), template.clone());
        tasks.spawn(async move { connection(c, shared, template).await });
    }
    let ticker = (progress && std::io::stderr().is_terminal()).then(|| tokio::spawn(ticker(shared.clone())));
    let mut latency = template;
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        for t in joined.map_err(|e| (1, e.to_string()))? {
            let _ = latency.add(&t.latency);
            for (k, v) in t.statuses {
                *statuses.entry(k).or_insert(0) += v;
            }
            errors += t.errors;
        }
    }
    if let Some(t) = ticker {
        t.abort();
        eprintln!();
    }
    Ok(Outcome {
        target: target.to_owned(),
        elapsed: started.elapsed(),
        latency,
        statuses,
        errors,
        distinct_tokens: load.distinct(),
    })
}

/// Connection `c`: opened once, its streams (HTTP/2) run side by side on it.
async fn connection(c: usize, shared: Arc<Shared>, template: Histogram<u64>) -> Vec<Tally> {
    let first = Conn::<Full<Bytes>>::open(&shared.uri, shared.plan.http2).await.ok();
    let mut streams = tokio::task::JoinSet::new();
    for s in 1..shared.plan.streams {
        let conn = first.as_ref().and_then(Conn::stream);
        let (shared, template) = (shared.clone(), template.clone());
        let lane = c * shared.plan.streams + s;
        streams.spawn(async move { lane_loop(lane, conn, shared, template).await });
    }
    let mut tallies = vec![lane_loop(c * shared.plan.streams, first, shared, template).await];
    while let Some(Ok(t)) = streams.join_next().await {
        tallies.push(t);
    }
    tallies
}

/// One lane: requests one after another until the time or the request budget is up. A
/// failed connection is replaced by a new one of the lane's own.
async fn lane_loop(
    lane: usize,
    mut conn: Option<Conn<Full<Bytes>>>,
    sh: Arc<Shared>,
    latency: Histogram<u64>,
) -> Tally {
    let mut t = Tally {
        latency,
        statuses: BTreeMap::new(),
        errors: 0,
    };
    let plan = &sh.plan;
    // Open model: each lane's requests are due at fixed times, staggered across lanes.
    let mut due = sh
        .interval
        .map(|i| sh.started + i.mul_f64(lane as f64 / sh.lanes as f64));
    loop {
        if sh.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let i = sh.issued.fetch_add(1, Ordering::Relaxed);
        if plan.requests.is_some_and(|b| i >= b) {
            break;
        }
        let intended = match (due, sh.interval) {
            (Some(at), Some(step)) => {
                tokio::time::sleep_until(at.into()).await;
                due = Some(at + step);
                at
            }
            _ => Instant::now(),
        };
        let answered = match conn.as_mut() {
            Some(c) => send_one(c, &sh, i).await,
            None => match Conn::open(&sh.uri, plan.http2).await {
                Ok(c) => send_one(conn.insert(c), &sh, i).await,
                Err(_) => None,
            },
        };
        match answered {
            Some(status) => {
                *t.statuses.entry(status).or_insert(0) += 1;
                let us = u64::try_from(intended.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = t.latency.record(us.clamp(1, MAX_US));
            }
            None => {
                t.errors += 1;
                conn = None;
            }
        }
        sh.done.fetch_add(1, Ordering::Relaxed);
    }
    t
}

/// Sends request `i` and reads its answer to the end: its status, or `None` on any failure.
async fn send_one(c: &mut Conn<Full<Bytes>>, sh: &Shared, i: u64) -> Option<u16> {
    let plan = &sh.plan;
    let (auth, body) = sh.load.request(i, plan.invalid_share).ok()?;
    let mut req = c.request(&plan.method, &sh.uri);
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth);
    }
    if let Some(ct) = &plan.content_type {
        req = req.header(CONTENT_TYPE, ct.clone());
    }
    for (k, v) in &plan.headers {
        req = req.header(k, v);
    }
    let req = req.body(Full::new(body)).ok()?;
    let resp = c.send.send(req).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

/// A progress line on stderr, once a second.
async fn ticker(sh: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let n = sh.done.load(Ordering::Relaxed);
        let secs = sh.started.elapsed().as_secs_f64();
        eprint!("\r{secs:5.1} s  {n} requests  {:.0} req/s   ", n as f64 / secs);
    }
}
