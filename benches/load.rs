#![allow(missing_docs)]
//! Load harness: the real `portcullis` binary and an echo upstream as separate processes,
//! driven over loopback with N keep-alive HTTP/1.1 connections for T seconds, one table out.
//!
//! ```text
//! cargo bench --bench load                                   # every row, default workers
//! cargo bench --bench load -- --seconds 3 --workers 1,2      # both worker sets
//! cargo bench --bench load -- --rows cache-on,unique         # rows whose name contains a filter
//! cargo bench --bench load -- --target http://127.0.0.1:8080/orders/42 --token "$TOKEN"
//! ```
//!
//! Latencies go into a plain `Vec<u64>` of nanoseconds, sorted once per row: exact
//! percentiles, no extra dependency, and at most a few MB for a few hundred thousand requests.

use std::convert::Infallible;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use portcullis::issuer::{MintRequest, mint};
use portcullis::jwks::SigningKey;
use portcullis::time::Clock;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const HELP: &str = "\
cargo bench --bench load -- [options]

  --connections N     keep-alive connections, one task each (default 32)
  --seconds T         seconds of load per row (default 5)
  --workers LIST      gateway --workers, comma-separated sets, e.g. 1,2 (default: the cores)
  --rows LIST         run only rows whose name contains one of these (comma-separated)
  --client-threads N  load generator runtime threads (default: the cores)
  --unique-tokens N   pre-minted tokens per unique-token row (default 10000 x seconds);
                      a row that uses them all stops early (marked 'pool')
                      (cache-100k always sends 100000 distinct tokens, however long it takes)
  --no-access-log     start the gateway with RUST_LOG=info,access=off
  --target URL        load an already running gateway (http://) instead; only that row
  --token TOKEN       with --target: sent as 'Authorization: Bearer TOKEN'
  --header K:V        with --target: an extra request header (repeatable)
  --expect STATUS     with --target: the expected status (default 200)
";

/// Distinct tokens the `cache-100k` row sends, each once: the verified-token cache's
/// default capacity, for the peak RSS with a full cache.
const CACHE_FILL: usize = 100_000;

const ROWS: [&str; 9] = [
    "direct",
    "cache-on",
    "cache-off-rs256",
    "cache-off-es256",
    "unique-rs256",
    "unique-es256",
    "jwe-rsa-oaep",
    "bad-token-401",
    "cache-100k",
];

struct Opts {
    connections: usize,
    seconds: f64,
    workers: Vec<usize>,
    rows: Vec<String>,
    client_threads: usize,
    unique_tokens: Option<usize>,
    access_log: bool,
    target: Option<String>,
    token: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    expect: StatusCode,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_opts(args: &[String]) -> Result<Opts, BoxError> {
    let mut o = Opts {
        connections: 32,
        seconds: 5.0,
        workers: vec![cores()],
        rows: Vec::new(),
        client_threads: cores(),
        unique_tokens: None,
        access_log: true,
        target: None,
        token: None,
        headers: Vec::new(),
        expect: StatusCode::OK,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--connections" => o.connections = val()?.parse()?,
            "--seconds" => o.seconds = val()?.parse()?,
            "--workers" => {
                o.workers = val()?
                    .split(',')
                    .map(|w| w.trim().parse::<usize>())
                    .collect::<Result<_, _>>()?;
            }
            "--rows" => o.rows = val()?.split(',').map(|s| s.trim().to_owned()).collect(),
            "--client-threads" => o.client_threads = val()?.parse()?,
            "--unique-tokens" => o.unique_tokens = Some(val()?.parse()?),
            "--no-access-log" => o.access_log = false,
            "--target" => o.target = Some(val()?),
            "--token" => o.token = Some(val()?),
            "--header" => {
                let v = val()?;
                let (k, v) = v.split_once(':').ok_or("--header wants K:V")?;
                o.headers.push((
                    HeaderName::from_bytes(k.trim().as_bytes())?,
                    HeaderValue::from_str(v.trim())?,
                ));
            }
            "--expect" => o.expect = StatusCode::from_u16(val()?.parse()?)?,
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other:?}\n{HELP}").into()),
        }
    }
    if o.connections == 0 || o.client_threads == 0 || o.workers.contains(&0) {
        return Err("--connections, --client-threads and --workers must be at least 1".into());
    }
    if !(o.seconds > 0.0 && o.seconds <= 3600.0) {
        return Err("--seconds must be in (0, 3600]".into());
    }
    Ok(o)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--upstream") {
        let addr = args.get(1).map_or("127.0.0.1:0", String::as_str);
        if let Err(e) = run_upstream(addr) {
            eprintln!("upstream: {e}");
            std::process::exit(1);
        }
        return;
    }
    let result = parse_opts(&args).and_then(|o| {
        if o.target.is_some() {
            run_target(&o)
        } else {
            run_all(&o)
        }
    });
    if let Err(e) = result {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The upstream: a minimal echo server, a separate process (this binary, `--upstream ADDR`).

fn run_upstream(addr: &str) -> Result<(), BoxError> {
    // The parent holds our stdin; when it goes away (even killed), stdin ends and so do we.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut out = std::io::stdout();
        writeln!(out, "{}", listener.local_addr()?)?;
        out.flush()?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(|_req: Request<Incoming>| async {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
                        }),
                    )
                    .await;
            });
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Child processes, killed on drop (normal exit, error or panic).

struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("load: killing {}: {e}", self.name);
        }
        let _ = self.child.wait();
    }
}

fn spawn_upstream() -> Result<(Proc, SocketAddr), BoxError> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--upstream", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("upstream: no stdout")?;
    let proc = Proc {
        name: "upstream",
        child,
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .parse()
        .map_err(|e| format!("upstream said {line:?}: {e}"))?;
    Ok((proc, addr))
}

/// A started gateway: the process, its listener and its admin listener, if any.
struct Gateway {
    proc: Proc,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
}

fn spawn_gateway(config: &Path, log: &Path, workers: usize, access_log: bool) -> Result<Gateway, BoxError> {
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--log-format", "json", "--workers", &workers.to_string()])
        .env("RUST_LOG", if access_log { "info" } else { "info,access=off" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: the access log then costs the gateway its writes and us nothing.
        .stderr(fs::File::create(log)?)
        .spawn()?;
    let mut proc = Proc {
        name: "portcullis",
        child,
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let text = fs::read_to_string(log)?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["message"] == "portcullis listening" {
                let addr = v["addr"].as_str().ok_or("listening line without addr")?.parse()?;
                let admin = v["admin"].as_str().and_then(|a| a.parse().ok());
                return Ok(Gateway { proc, addr, admin });
            }
        }
        if let Some(status) = proc.child.try_wait()? {
            return Err(format!("portcullis exited ({status}):\n{text}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("portcullis did not start within 30 s".into())
}

/// utime + stime of `pid`, in clock ticks (/proc/<pid>/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Peak resident set size of `pid` in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second: `getconf CLK_TCK`, else 100 (Linux's USER_HZ everywhere in practice).
fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

// ---------------------------------------------------------------------------------------------
// Keys, configuration and tokens.

const REALM_ISSUER: &str = "https://issuer.load";
const API_AUD: &str = "https://api.load";
const ENC_AUD: &str = "https://enc.load";

fn jwk_json(mut jwk: Jwk, kid: &str, alg: Option<&str>, key_use: Option<&str>) -> serde_json::Value {
    jwk.set_key_id(kid);
    if let Some(alg) = alg {
        jwk.set_algorithm(alg);
    }
    if let Some(u) = key_use {
        jwk.set_key_use(u);
    }
    let map: serde_json::Map<String, serde_json::Value> = jwk.into();
    serde_json::Value::Object(map)
}

fn write_keys(dir: &Path) -> Result<(), BoxError> {
    let rs = jwk_json(Jwk::generate_rsa_key(2048)?, "k-rs256", Some("RS256"), None);
    let es = jwk_json(Jwk::generate_ec_key(EcCurve::P256)?, "k-es256", Some("ES256"), None);
    let enc = jwk_json(Jwk::generate_rsa_key(2048)?, "e-oaep", None, Some("enc"));
    fs::write(
        dir.join("keys.json"),
        serde_json::json!({ "keys": [rs, es] }).to_string(),
    )?;
    fs::write(dir.join("enc.json"), serde_json::json!({ "keys": [enc] }).to_string())?;
    Ok(())
}

fn config_text(upstream: SocketAddr, cache: bool) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
token_cache = {cache}
admin_listen = "127.0.0.1:0"

[[realm]]
name = "load"
issuer = "{REALM_ISSUER}"
algorithms = ["RS256", "ES256"]
signing_keys = "keys.json"

[[resource_server]]
id = "api"
realm = "load"
audience = "{API_AUD}"
upstream = "http://{upstream}"
scopes = ["read"]

[[resource_server]]
id = "enc"
realm = "load"
audience = "{ENC_AUD}"
upstream = "http://{upstream}"
scopes = ["read"]
encryption = "resource_server"
encryption_jwks_file = "enc.json"
key_alg = "RSA-OAEP"

[[protected_resource]]
id = "items"
resource_server = "api"
paths = ["/items/**"]
scopes = ["read"]

[[protected_resource]]
id = "enc-items"
resource_server = "enc"
paths = ["/enc/**"]
scopes = ["read"]
"#
    )
}

fn mint_one(key: &SigningKey, audience: &str, now: i64) -> Result<String, BoxError> {
    Ok(mint(
        &MintRequest {
            issuer: REALM_ISSUER,
            audience,
            subject: "load",
            client_id: "load",
            scope: "read",
            now,
            ttl: Duration::from_secs(3600),
            auth_time: now,
        },
        key,
    )?)
}

/// `n` distinct tokens, minted on every core.
fn mint_pool(key: &SigningKey, n: usize, now: i64) -> Result<Vec<HeaderValue>, BoxError> {
    let threads = cores().max(1);
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let count = per.min(n.saturating_sub(i * per));
                s.spawn(move || -> Result<Vec<HeaderValue>, String> {
                    (0..count)
                        .map(|_| {
                            let t = mint_one(key, API_AUD, now).map_err(|e| e.to_string())?;
                            bearer(&t).map_err(|e| e.to_string())
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            all.extend(h.join().map_err(|_| "a minting thread panicked")??);
        }
        Ok(all)
    })
}

fn bearer(token: &str) -> Result<HeaderValue, BoxError> {
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}

/// A token with one signature character changed (not the last, whose low bits may be unused).
fn tamper(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len().saturating_sub(10);
    if let Some(b) = bytes.get_mut(i) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The load generator.

enum Tokens {
    One(Option<HeaderValue>),
    Pool(Arc<Vec<HeaderValue>>, AtomicUsize),
}

impl Tokens {
    /// The next Authorization value: `Err(())` when the pool is used up.
    fn next(&self) -> Result<Option<&HeaderValue>, ()> {
        match self {
            Tokens::One(v) => Ok(v.as_ref()),
            Tokens::Pool(pool, i) => pool.get(i.fetch_add(1, Ordering::Relaxed)).map(Some).ok_or(()),
        }
    }
}

struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    tokens: Tokens,
    expect: StatusCode,
}

#[derive(Default)]
struct Outcome {
    lat_ns: Vec<u64>,
    errors: u64,
    unexpected: u64,
    pool_used_up: bool,
    elapsed: Duration,
}

async fn connect(addr: SocketAddr) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, BoxError> {
    let stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await??;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn one_connection(t: Arc<Target>, deadline: tokio::time::Instant) -> Outcome {
    let mut out = Outcome {
        lat_ns: Vec::with_capacity(1 << 14),
        ..Outcome::default()
    };
    let mut sender = None;
    while tokio::time::Instant::now() < deadline {
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(t.addr).await {
                Ok(s) => sender.insert(s),
                Err(_) => {
                    out.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if s.ready().await.is_err() {
            sender = None;
            continue;
        }
        let Ok(auth) = t.tokens.next() else {
            out.pool_used_up = true;
            break;
        };
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.uri_mut() = match t.path.parse() {
            Ok(u) => u,
            Err(_) => break,
        };
        let h = req.headers_mut();
        h.insert(HOST, t.host.clone());
        if let Some(auth) = auth {
            h.insert(AUTHORIZATION, auth.clone());
        }
        for (k, v) in &t.headers {
            h.insert(k.clone(), v.clone());
        }
        let start = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let resp = s.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, BoxError>(status)
        })
        .await;
        let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match answer {
            Ok(Ok(status)) if status == t.expect => out.lat_ns.push(took),
            Ok(Ok(_)) => out.unexpected += 1,
            _ => {
                out.errors += 1;
                sender = None;
            }
        }
    }
    out
}

fn drive(rt: &tokio::runtime::Runtime, target: Target, connections: usize, seconds: f64) -> Outcome {
    let target = Arc::new(target);
    rt.block_on(async {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(one_connection(target.clone(), deadline)))
            .collect();
        let mut all = Outcome::default();
        for task in tasks {
            match task.await {
                Ok(o) => {
                    all.lat_ns.extend(o.lat_ns);
                    all.errors += o.errors;
                    all.unexpected += o.unexpected;
                    all.pool_used_up |= o.pool_used_up;
                }
                Err(_) => all.errors += 1,
            }
        }
        all.elapsed = start.elapsed();
        all.lat_ns.sort_unstable();
        all
    })
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Row {
    name: String,
    workers: Option<usize>,
    outcome: Outcome,
    cpu_us_per_req: Option<f64>,
    peak_rss_kib: Option<u64>,
    /// `portcullis_token_cache_entries` after the row, where read.
    cached: Option<u64>,
}

impl Row {
    fn rps(&self) -> f64 {
        self.outcome.lat_ns.len() as f64 / self.outcome.elapsed.as_secs_f64().max(1e-9)
    }
}

fn pct(sorted: &[u64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted.get(i).map(|ns| *ns as f64 / 1e6)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn print_header(o: &Opts, what: &str) {
    let now = portcullis::time::SystemClock.now();
    let date = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!();
    println!("# portcullis load: {what}");
    let workers = if o.target.is_some() {
        String::new()
    } else {
        let list: Vec<String> = o.workers.iter().map(|w| w.to_string()).collect();
        format!(" | gateway workers {}", list.join(","))
    };
    println!(
        "# {} | {} cores ({cpu}) | {} connections | {} s per row{workers} | generator threads {}",
        humantime::format_rfc3339_seconds(date),
        cores(),
        o.connections,
        o.seconds,
        o.client_threads,
    );
    if o.target.is_none() {
        println!(
            "# the load generator, the upstream and the gateway share these {} cores: the numbers are a lower bound",
            cores()
        );
    }
}

fn print_table(rows: &[Row], with_proc: bool) {
    let direct = rows.iter().find(|r| r.name == "direct").map(Row::rps);
    let mut head = "| row | workers | req/s | × direct | p50 ms | p99 ms | p99.9 ms |".to_owned();
    let mut rule = "|---|---:|---:|---:|---:|---:|---:|".to_owned();
    if with_proc {
        head.push_str(" gateway CPU µs/req | gateway peak RSS MiB |");
        rule.push_str("---:|---:|");
    }
    head.push_str(" notes |");
    rule.push_str("---|");
    println!();
    println!("{head}");
    println!("{rule}");
    for r in rows {
        let l = &r.outcome.lat_ns;
        let ratio = match direct {
            Some(d) if d > 0.0 => format!("{:.2}", r.rps() / d),
            _ => "-".into(),
        };
        let mut line = format!(
            "| {} | {} | {:.0} | {ratio} | {} | {} | {} |",
            r.name,
            r.workers.map_or("-".into(), |w| w.to_string()),
            r.rps(),
            ms(pct(l, 0.50)),
            ms(pct(l, 0.99)),
            ms(pct(l, 0.999)),
        );
        if with_proc {
            line.push_str(&format!(
                " {} | {} |",
                r.cpu_us_per_req.map_or("-".into(), |c| format!("{c:.1}")),
                r.peak_rss_kib
                    .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            ));
        }
        let mut notes = Vec::new();
        if r.outcome.errors > 0 {
            notes.push(format!("{} errors", r.outcome.errors));
        }
        if r.outcome.unexpected > 0 {
            notes.push(format!("{} unexpected statuses", r.outcome.unexpected));
        }
        if r.outcome.pool_used_up {
            notes.push(format!("pool used up after {:.1} s", r.outcome.elapsed.as_secs_f64()));
        }
        if let Some(n) = r.cached {
            notes.push(format!("{n} tokens cached"));
        }
        line.push_str(&format!(" {} |", notes.join("; ")));
        println!("{line}");
    }
}

/// `portcullis_token_cache_entries` from the gateway's admin listener.
async fn cache_entries(admin: SocketAddr) -> Option<u64> {
    let mut sender = connect(admin).await.ok()?;
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = "/metrics".parse().ok()?;
    req.headers_mut().insert(HOST, HeaderValue::from_static("admin"));
    let body = sender
        .send_request(req)
        .await
        .ok()?
        .into_body()
        .collect()
        .await
        .ok()?
        .to_bytes();
    let text = std::str::from_utf8(&body).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("portcullis_token_cache_entries "))
        .and_then(|v| v.trim().parse().ok())
}

fn generator(o: &Opts) -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .enable_all()
        .build()?)
}

// ---------------------------------------------------------------------------------------------
// --target: one row against a running gateway.

fn run_target(o: &Opts) -> Result<(), BoxError> {
    let url = o.target.as_deref().ok_or("no --target")?;
    let uri: http::Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err("--target must be an http:// URL".into());
    }
    let authority = uri.authority().ok_or("--target has no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let rt = generator(o)?;
    let addr = rt
        .block_on(tokio::net::lookup_host((authority.host(), port)))?
        .next()
        .ok_or("--target: the host does not resolve")?;
    let path = uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
    let auth = o.token.as_deref().map(bearer).transpose()?;
    print_header(o, &format!("--target {url}"));
    let target = Target {
        addr,
        host: HeaderValue::from_str(authority.as_str())?,
        path,
        headers: o.headers.clone(),
        tokens: Tokens::One(auth),
        expect: o.expect,
    };
    let outcome = drive(&rt, target, o.connections, o.seconds);
    print_table(
        &[Row {
            name: "target".into(),
            workers: None,
            outcome,
            cpu_us_per_req: None,
            peak_rss_kib: None,
            cached: None,
        }],
        false,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Every row: upstream and gateways started here.

fn wanted(o: &Opts, name: &str) -> bool {
    o.rows.is_empty() || o.rows.iter().any(|f| name.contains(f.as_str()))
}

fn run_all(o: &Opts) -> Result<(), BoxError> {
    let rows: Vec<&str> = ROWS.iter().copied().filter(|r| wanted(o, r)).collect();
    if rows.is_empty() {
        return Err(format!("--rows matches none of {}", ROWS.join(", ")).into());
    }
    let dir = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?; // apart from the config: the gateway watches that directory
    eprintln!("load: generating keys");
    write_keys(dir.path())?;
    let (upstream, up_addr) = spawn_upstream()?;
    eprintln!("load: upstream {} on {up_addr}", upstream.pid());
    let config_on = dir.path().join("cache-on.toml");
    let config_off = dir.path().join("cache-off.toml");
    fs::write(&config_on, config_text(up_addr, true))?;
    fs::write(&config_off, config_text(up_addr, false))?;

    // The same configuration, loaded in process, for the realm's signing keys and the
    // resource server's encryption key.
    let snap =
        portcullis::app::load_snapshot(&config_on, portcullis::time::system(), None).map_err(|e| format!("{e}"))?;
    let keys = &snap.realms.iter().next().ok_or("no realm")?.signing;
    let key = |kid: &str| {
        keys.keys()
            .iter()
            .find(|k| k.kid == kid)
            .cloned()
            .ok_or_else(|| format!("no key {kid}"))
    };
    let rs256 = key("k-rs256")?;
    let es256 = key("k-es256")?;
    let (_, enc) = snap.resource_server("enc").ok_or("no resource server enc")?;
    let jwe_keys = enc.jwe.clone().ok_or("enc has no JWE keys")?;
    let now = portcullis::time::SystemClock.now();
    let es_token = mint_one(&es256, API_AUD, now)?;
    let rs_token = mint_one(&rs256, API_AUD, now)?;
    let jwe_token = jwe_keys.encrypt(&mint_one(&es256, ENC_AUD, now)?)?;
    let bad_token = tamper(&es_token);
    let pool_size = o.unique_tokens.unwrap_or((10_000.0 * o.seconds).ceil() as usize).max(1);

    let rt = generator(o)?;
    let tck = clk_tck() as f64;
    let host = HeaderValue::from_static("api.load");
    let mut table = Vec::new();
    let mut pools: std::collections::HashMap<&str, Arc<Vec<HeaderValue>>> = std::collections::HashMap::new();

    if rows.contains(&"direct") {
        eprintln!("load: direct");
        let target = Target {
            addr: up_addr,
            host: host.clone(),
            path: "/items/1".into(),
            headers: Vec::new(),
            tokens: Tokens::One(Some(bearer(&es_token)?)),
            expect: StatusCode::OK,
        };
        table.push(Row {
            name: "direct".into(),
            workers: None,
            outcome: drive(&rt, target, o.connections, o.seconds),
            cpu_us_per_req: None,
            peak_rss_kib: None,
            cached: None,
        });
    }

    for &workers in &o.workers {
        for &name in rows.iter().filter(|r| **r != "direct") {
            let (config, path, tokens, expect) = match name {
                "cache-on" => (
                    &config_on,
                    "/items/1",
                    Tokens::One(Some(bearer(&es_token)?)),
                    StatusCode::OK,
                ),
                "cache-off-rs256" => (
                    &config_off,
                    "/items/1",
                    Tokens::One(Some(bearer(&rs_token)?)),
                    StatusCode::OK,
                ),
                "cache-off-es256" => (
                    &config_off,
                    "/items/1",
                    Tokens::One(Some(bearer(&es_token)?)),
                    StatusCode::OK,
                ),
                "unique-rs256" | "unique-es256" | "cache-100k" => {
                    // Minted once, reused by each worker set (every row is a fresh gateway).
                    let pool = match pools.get(name) {
                        Some(p) => Arc::clone(p),
                        None => {
                            let k = if name == "unique-rs256" { &rs256 } else { &es256 };
                            let n = if name == "cache-100k" { CACHE_FILL } else { pool_size };
                            eprintln!("load: minting {n} tokens for {name}");
                            let t0 = Instant::now();
                            let p = Arc::new(mint_pool(k, n, portcullis::time::SystemClock.now())?);
                            eprintln!("load: minted in {:.1} s", t0.elapsed().as_secs_f64());
                            pools.insert(name, Arc::clone(&p));
                            p
                        }
                    };
                    (
                        &config_on,
                        "/items/1",
                        Tokens::Pool(pool, AtomicUsize::new(0)),
                        StatusCode::OK,
                    )
                }
                "jwe-rsa-oaep" => (
                    &config_on,
                    "/enc/1",
                    Tokens::One(Some(bearer(&jwe_token)?)),
                    StatusCode::OK,
                ),
                "bad-token-401" => (
                    &config_on,
                    "/items/1",
                    Tokens::One(Some(bearer(&bad_token)?)),
                    StatusCode::UNAUTHORIZED,
                ),
                other => return Err(format!("unknown row {other}").into()),
            };
            eprintln!("load: {name}, --workers {workers}");
            let log = logs.path().join(format!("{name}-w{workers}.log"));
            let gw = spawn_gateway(config, &log, workers, o.access_log)?;
            let before = cpu_ticks(gw.proc.pid());
            // cache-100k runs until every token was sent once.
            let seconds = if name == "cache-100k" { 3600.0 } else { o.seconds };
            let outcome = drive(
                &rt,
                Target {
                    addr: gw.addr,
                    host: host.clone(),
                    path: path.into(),
                    headers: Vec::new(),
                    tokens,
                    expect,
                },
                o.connections,
                seconds,
            );
            let after = cpu_ticks(gw.proc.pid());
            let rss = peak_rss_kib(gw.proc.pid());
            let cached = match gw.admin {
                Some(admin) if name == "cache-100k" => rt.block_on(cache_entries(admin)),
                _ => None,
            };
            drop(gw);
            let _ = fs::remove_file(&log);
            let served = (outcome.lat_ns.len() as u64 + outcome.unexpected).max(1) as f64;
            let cpu = match (before, after) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / tck * 1e6 / served),
                _ => None,
            };
            table.push(Row {
                name: name.into(),
                workers: Some(workers),
                outcome,
                cpu_us_per_req: cpu,
                peak_rss_kib: rss,
                cached,
            });
        }
    }
    drop(upstream);
    print_header(o, "every row");
    println!(
        "# cache-on, cache-off-*, bad-token-401: one repeated ES256/RS256 token; unique-*: a new token per request \
         (cache on, so each is a full verification plus a cache insert); jwe-rsa-oaep: one repeated RSA-OAEP JWE, \
         so after the first request it is the cache-hit path; bad-token-401: a tampered signature, answered 401; \
         cache-100k: 100000 distinct ES256 tokens, each sent once (the peak RSS of a full cache). \
         CPU from /proc/<pid>/stat at {tck} ticks/s; peak RSS is VmHWM."
    );
    print_table(&table, true);
    Ok(())
}
