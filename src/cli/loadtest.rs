//! `portcullis loadtest`: HTTP/1.1 (or h2c) load over N keep-alive connections for a time or a number
//! of requests, as fast as possible (closed model) or at a fixed rate (open model, latency
//! measured from when each request was due, so a stall is not hidden by the requests it
//! delayed), with bearer tokens from a fixed value, a realm's signing key or a token
//! endpoint, and a share of invalid ones. Reports req/s, latency percentiles (HDR
//! histogram), status counts and errors, as a table or JSON; `--compare` runs the same load
//! against a second target and prints the ratios.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use portcullis::issuer::{MintRequest, mint};

/// What `loadtest` was asked for: its command-line arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Params {
    /// The URL to load (http://).
    #[arg(long)]
    pub target: String,
    /// Run the same load against this URL next and print the ratios.
    #[arg(long)]
    pub compare: Option<String>,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// How long, e.g. 10s (default 10s unless --requests is given).
    #[arg(long)]
    pub duration: Option<String>,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Requests per second in all (open model: latency from when each was due); default
    /// as fast as possible (closed model).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// A fixed bearer token.
    #[arg(long, conflicts_with_all = ["config", "token_url"])]
    pub token: Option<String>,
    /// Mint tokens from this configuration's realm key (with --resource-server).
    #[arg(long, requires = "resource_server")]
    pub config: Option<PathBuf>,
    /// The resource server minted tokens are for (or, with --token-url, the `resource`).
    #[arg(long)]
    pub resource_server: Option<String>,
    /// Scopes of minted or fetched tokens.
    #[arg(long)]
    pub scope: Option<String>,
    /// Mint this many distinct tokens and send them in turn (default: one, a cache hit).
    #[arg(long)]
    pub unique: Option<usize>,
    /// Fetch tokens from this token endpoint by client_credentials (refreshed before
    /// they expire).
    #[arg(long, requires_all = ["client_id", "client_secret"])]
    pub token_url: Option<String>,
    /// The client of --token-url.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Its secret.
    #[arg(long)]
    pub client_secret: Option<String>,
    /// The share of requests (0 to 1) with an invalid token: bad signature, expired, wrong
    /// audience, in turn (only a bad signature for fixed or fetched tokens).
    #[arg(long, default_value_t = 0.0)]
    pub invalid_share: f64,
    /// HTTP/2 over cleartext with prior knowledge (h2c), one stream at a time per
    /// connection, instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

type Fail = (u8, String);

pub(super) fn run(p: &Params) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis loadtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_all(p)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("portcullis loadtest: {e}");
            ExitCode::from(code)
        }
    }
}

async fn run_all(p: &Params) -> Result<(), Fail> {
    let usage = |m: String| (super::EXIT_CONFIG, m);
    if p.connections == 0 {
        return Err(usage("--connections must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&p.invalid_share) {
        return Err(usage("--invalid-share must be between 0 and 1".into()));
    }
    let duration = match (&p.duration, p.requests) {
        (Some(d), _) => Some(portcullis::config::parse_duration(d).map_err(usage)?),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let method =
        Method::from_bytes(p.method.as_bytes()).map_err(|_| usage(format!("{:?} is not a method", p.method)))?;
    let tokens = Arc::new(Tokens::new(p).await?);
    let plan = Plan {
        connections: p.connections,
        duration,
        requests: p.requests,
        rate: p.rate,
        method,
        invalid_share: p.invalid_share,
        http2: p.http2,
    };
    let first = drive(&p.target, &plan, &tokens, !p.json).await?;
    let second = match &p.compare {
        Some(url) => Some(drive(url, &plan, &tokens, !p.json).await?),
        None => None,
    };
    if p.json {
        let mut out = first.json(&plan);
        if let Some(s) = &second {
            out["compare"] = s.json(&plan);
            out["ratios"] = ratios(&first, s);
        }
        println!("{out}");
    } else {
        first.print(&plan);
        if let Some(s) = &second {
            s.print(&plan);
            let r = ratios(&first, s);
            println!(
                "ratio {} / {}: req/s {:.3}, p50 {:.2}x, p99 {:.2}x",
                first.target, s.target, r["rps"], r["p50"], r["p99"]
            );
        }
    }
    Ok(())
}

/// How to load.
struct Plan {
    connections: usize,
    duration: Option<Duration>,
    requests: Option<u64>,
    rate: Option<f64>,
    method: Method,
    invalid_share: f64,
    /// HTTP/2 over cleartext (prior knowledge) instead of HTTP/1.1.
    http2: bool,
}

/// The bearer tokens requests carry: valid ones, and the invalid variants of the mix.
struct Tokens {
    valid: TokenSupply,
    /// Bad signature, expired, wrong audience (those the source can make).
    invalid: Vec<HeaderValue>,
}

enum TokenSupply {
    None,
    /// The same token every time (also a fetched one, swapped when refreshed).
    One(Arc<arc_swap::ArcSwap<HeaderValue>>),
    /// A pool of distinct tokens, sent in turn.
    Pool(Vec<HeaderValue>),
}

fn bearer(token: &str) -> Result<HeaderValue, Fail> {
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| (1, "the token is not a header value".into()))
}

/// `token` with its signature's last character changed: a bad signature.
fn tampered(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap_or('A');
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

impl Tokens {
    async fn new(p: &Params) -> Result<Self, Fail> {
        if let Some(t) = &p.token {
            return Ok(Self {
                valid: TokenSupply::One(Arc::new(arc_swap::ArcSwap::from_pointee(bearer(t)?))),
                invalid: vec![bearer(&tampered(t))?],
            });
        }
        if let (Some(config), Some(rs)) = (&p.config, &p.resource_server) {
            return Self::minted(config, rs, p.scope.as_deref(), p.unique);
        }
        if let Some(url) = &p.token_url {
            // clap requires --client-id and --client-secret with --token-url.
            let params = FetchParams::of(p);
            let fetched = fetch(url, &params).await?;
            let invalid = vec![bearer(&tampered(&fetched.0))?];
            let one = Arc::new(arc_swap::ArcSwap::from_pointee(bearer(&fetched.0)?));
            // Refreshed before it expires: at 80 % of its lifetime.
            if let Some(ttl) = fetched.1 {
                let url = url.clone();
                let slot = one.clone();
                tokio::spawn(async move {
                    let mut ttl = ttl;
                    loop {
                        tokio::time::sleep(ttl.mul_f64(0.8).max(Duration::from_secs(1))).await;
                        if let Ok((t, next)) = fetch(&url, &params).await
                            && let Ok(v) = bearer(&t)
                        {
                            slot.store(Arc::new(v));
                            ttl = next.unwrap_or(ttl);
                        }
                    }
                });
            }
            return Ok(Self {
                valid: TokenSupply::One(one),
                invalid,
            });
        }
        Ok(Self {
            valid: TokenSupply::None,
            invalid: Vec::new(),
        })
    }

    /// Tokens minted from the realm's signing key for resource server `rs`: one (a cache hit
    /// after the first request) or a pool of `unique` distinct ones; the invalid variants
    /// are a bad signature, an expired token and one for another audience.
    fn minted(config: &std::path::Path, rs: &str, scope: Option<&str>, unique: Option<usize>) -> Result<Self, Fail> {
        let clock = portcullis::time::system();
        let snap = portcullis::app::load_snapshot(config, clock.clone(), None)
            .map_err(|e| (super::EXIT_CONFIG, format!("invalid configuration:\n{e}")))?;
        let (_, server) = snap
            .resource_server(rs)
            .ok_or_else(|| (super::EXIT_CONFIG, format!("no resource server has id {rs:?}")))?;
        let realm = &snap.realms[server.realm];
        let key = match server.signing_alg {
            Some(alg) => realm.signing.active(alg),
            None => realm.signing.first(),
        }
        .ok_or_else(|| (1, format!("realm {:?} has no signing key", realm.name.as_str())))?;
        let scope = scope.map_or_else(|| server.default_scopes.to_space_separated(), str::to_owned);
        let now = clock.now();
        let mint_at = |audience: &str, now: i64, n: usize| -> Result<String, Fail> {
            let subject = format!("loadtest-{n}");
            mint(
                &MintRequest {
                    issuer: &realm.issuer,
                    audience,
                    subject: &subject,
                    client_id: "portcullis-loadtest",
                    scope: &scope,
                    now,
                    ttl: server.access_token_ttl,
                    auth_time: now,
                },
                key,
            )
            .map_err(|e| (1, e.to_string()))
        };
        let audience = server.audience.as_str();
        let first = mint_at(audience, now, 0)?;
        let valid = match unique {
            Some(n) if n > 1 => TokenSupply::Pool(
                (0..n)
                    .map(|i| mint_at(audience, now, i).and_then(|t| bearer(&t)))
                    .collect::<Result<_, _>>()?,
            ),
            _ => TokenSupply::One(Arc::new(arc_swap::ArcSwap::from_pointee(bearer(&first)?))),
        };
        let ttl = i64::try_from(server.access_token_ttl.as_secs()).unwrap_or(3600);
        let invalid = vec![
            bearer(&tampered(&first))?,
            bearer(&mint_at(audience, now - 2 * ttl - 3600, 0)?)?,
            bearer(&mint_at("https://not-this-audience.invalid", now, 0)?)?,
        ];
        Ok(Self { valid, invalid })
    }

    /// The `Authorization` of request number `i`: invalid for the first `share` of each
    /// hundred, in turn through the variants.
    fn for_request(&self, i: u64, share: f64) -> Option<HeaderValue> {
        let hundredth = (i % 100) as f64;
        if hundredth < share * 100.0 && !self.invalid.is_empty() {
            let n = usize::try_from(i / 100).unwrap_or(0) + usize::try_from(i % 100).unwrap_or(0);
            return self.invalid.get(n % self.invalid.len()).cloned();
        }
        match &self.valid {
            TokenSupply::None => None,
            TokenSupply::One(t) => Some(HeaderValue::clone(&t.load())),
            TokenSupply::Pool(pool) => pool.get(usize::try_from(i).unwrap_or(0) % pool.len().max(1)).cloned(),
        }
    }
}

/// What a client_credentials request sends.
#[derive(Clone)]
struct FetchParams {
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    resource: Option<String>,
}

impl FetchParams {
    fn of(p: &Params) -> Self {
        Self {
            client_id: p.client_id.clone().unwrap_or_default(),
            client_secret: p.client_secret.clone().unwrap_or_default(),
            scope: p.scope.clone(),
            resource: p.resource_server.clone(),
        }
    }
}

/// A token from `url` by client_credentials (RFC 6749 § 4.4, `client_secret_basic`), and
/// its lifetime.
async fn fetch(url: &str, p: &FetchParams) -> Result<(String, Option<Duration>), Fail> {
    use base64::Engine as _;
    let uri: Uri = url
        .parse()
        .map_err(|_| (super::EXIT_CONFIG, format!("{url:?} is not a URL")))?;
    // Built before any await: the serializer is not Send.
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(s) = &p.scope {
            form.append_pair("scope", s);
        }
        if let Some(r) = &p.resource {
            form.append_pair("resource", r);
        }
        form.finish()
    };
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(&p.client_id), enc(&p.client_secret)));
    let mut conn = Conn::open(&uri, false).await?;
    let req = Request::post(uri.clone())
        .header(HOST, conn.host.clone())
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(Bytes::from(form)))
        .map_err(|e| (1, e.to_string()))?;
    let resp = conn
        .send
        .send(req)
        .await
        .map_err(|e| (1, format!("token endpoint: {e}")))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| (1, e.to_string()))?
        .to_bytes();
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| (1, format!("token endpoint answered {status} without JSON")))?;
    let token = v["access_token"]
        .as_str()
        .ok_or_else(|| (1, format!("token endpoint answered {status}: {v}")))?
        .to_owned();
    Ok((token, v["expires_in"].as_u64().map(Duration::from_secs)))
}

/// One connection: HTTP/1.1, or HTTP/2 over cleartext with prior knowledge (h2c).
struct Conn<B> {
    send: Sender<B>,
    host: HeaderValue,
}

enum Sender<B> {
    H1(hyper::client::conn::http1::SendRequest<B>),
    H2(hyper::client::conn::http2::SendRequest<B>),
}

impl<B> Sender<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn send(&mut self, req: Request<B>) -> hyper::Result<http::Response<hyper::body::Incoming>> {
        match self {
            Self::H1(s) => s.send_request(req).await,
            Self::H2(s) => s.send_request(req).await,
        }
    }
}

impl<B> Conn<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn open(uri: &Uri, http2: bool) -> Result<Self, Fail> {
        if uri.scheme_str() != Some("http") {
            return Err((super::EXIT_CONFIG, format!("{uri}: only http:// targets are supported")));
        }
        let authority = uri.authority().ok_or((super::EXIT_CONFIG, format!("{uri}: no host")))?;
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((authority.host(), port))
            .await
            .map_err(|e| (1, format!("cannot connect to {authority}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let send = if http2 {
            let (send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .map_err(|e| (1, format!("{authority}: no HTTP/2 (h2c): {e}")))?;
            tokio::spawn(conn);
            Sender::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| (1, e.to_string()))?;
            tokio::spawn(conn);
            Sender::H1(send)
        };
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| (1, "bad host".to_owned()))?;
        Ok(Self { send, host })
    }
}

/// One target's results.
struct Outcome {
    target: String,
    elapsed: Duration,
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

/// Loads `target` by `plan`; a progress line on a terminal when `progress`.
async fn drive(target: &str, plan: &Plan, tokens: &Arc<Tokens>, progress: bool) -> Result<Outcome, Fail> {
    let uri: Uri = target
        .parse()
        .map_err(|_| (super::EXIT_CONFIG, format!("{target:?} is not a URL")))?;
    // Fail at once on an unreachable target, not N times later.
    drop(Conn::<Empty<Bytes>>::open(&uri, plan.http2).await?);
    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = plan.duration.map(|d| started + d);
    let per_conn_interval = plan
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(plan.connections as f64 / r));
    // Microseconds, 1 µs to 60 s, 3 significant figures.
    let template = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| (1, e.to_string()))?;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..plan.connections {
        let mut h = template.clone();
        let (uri, tokens, issued, done) = (uri.clone(), tokens.clone(), issued.clone(), done.clone());
        let (method, share, budget, http2) = (plan.method.clone(), plan.invalid_share, plan.requests, plan.http2);
        // Open model: each connection's requests are due at fixed times, staggered.
        let first_due = per_conn_interval.map(|i| started + i.mul_f64(c as f64 / plan.connections as f64));
        tasks.spawn(async move {
            let mut statuses = BTreeMap::new();
            let mut errors = 0u64;
            let mut conn: Option<Conn<Empty<Bytes>>> = None;
            let mut due = first_due;
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if budget.is_some_and(|b| i >= b) {
                    break;
                }
                let intended = match (due, per_conn_interval) {
                    (Some(t), Some(step)) => {
                        tokio::time::sleep_until(t.into()).await;
                        due = Some(t + step);
                        t
                    }
                    _ => Instant::now(),
                };
                if conn.is_none() {
                    match Conn::open(&uri, http2).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            errors += 1;
                            done.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                // HTTP/1.1: origin form and Host; HTTP/2: the whole URI (its :authority).
                let mut req = if http2 {
                    Request::builder().method(method.clone()).uri(uri.clone())
                } else {
                    Request::builder()
                        .method(method.clone())
                        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
                        .header(HOST, c.host.clone())
                };
                if let Some(auth) = tokens.for_request(i, share) {
                    req = req.header(AUTHORIZATION, auth);
                }
                let Ok(req) = req.body(Empty::<Bytes>::new()) else {
                    errors += 1;
                    continue;
                };
                let answered = async {
                    let resp = c.send.send(req).await.ok()?;
                    let status = resp.status().as_u16();
                    resp.into_body().collect().await.ok()?;
                    Some(status)
                }
                .await;
                match answered {
                    Some(status) => {
                        *statuses.entry(status).or_insert(0) += 1;
                        let us = u64::try_from(intended.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                        let _ = h.record(us.min(60_000_000));
                    }
                    None => {
                        errors += 1;
                        conn = None;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (h, statuses, errors)
        });
    }
    let show = progress && std::io::stderr().is_terminal();
    let ticker = show.then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = done.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                eprint!("\r{secs:5.1} s  {n} requests  {:.0} req/s   ", n as f64 / secs);
            }
        })
    });
    let mut latency = template;
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (h, s, e) = joined.map_err(|e| (1, e.to_string()))?;
        let _ = latency.add(&h);
        for (k, v) in s {
            *statuses.entry(k).or_insert(0) += v;
        }
        errors += e;
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
    })
}

impl Outcome {
    fn count(&self) -> u64 {
        self.statuses.values().sum()
    }

    fn rps(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Milliseconds at quantile `q`.
    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    fn json(&self, plan: &Plan) -> Value {
        json!({
            "target": self.target,
            "connections": plan.connections,
            "model": if plan.rate.is_some() { "open" } else { "closed" },
            "protocol": if plan.http2 { "h2c" } else { "http/1.1" },
            "rate": plan.rate,
            "duration_s": self.elapsed.as_secs_f64(),
            "requests": self.count(),
            "errors": self.errors,
            "rps": self.rps(),
            "latency_ms": {
                "p50": self.ms(0.5), "p90": self.ms(0.9), "p99": self.ms(0.99), "p999": self.ms(0.999),
                "max": self.latency.max() as f64 / 1000.0,
            },
            "status": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    }

    fn print(&self, plan: &Plan) {
        println!(
            "{}  {} {} connections, {}  {:.1} s",
            self.target,
            plan.connections,
            if plan.http2 { "HTTP/2" } else { "HTTP/1.1" },
            match plan.rate {
                Some(r) => format!("open model at {r} req/s"),
                None => "closed model".to_owned(),
            },
            self.elapsed.as_secs_f64()
        );
        println!("| requests | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            self.count(),
            self.rps(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.latency.max() as f64 / 1000.0,
            self.errors
        );
        let statuses: Vec<String> = self.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("statuses: {}", statuses.join(", "));
    }
}

fn ratios(a: &Outcome, b: &Outcome) -> Value {
    let div = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    json!({
        "rps": div(a.rps(), b.rps()),
        "p50": div(a.ms(0.5), b.ms(0.5)),
        "p99": div(a.ms(0.99), b.ms(0.99)),
    })
}
