#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items
#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly
//! The whole request pipeline in process: a client on a kept-alive loopback connection,
//! the real gateway (accept, parse, route, extract, verify, authorize, forward, answer)
//! and a minimal upstream, all on one current-thread runtime, so a figure is the CPU of
//! one proxied request end to end without cross-thread wake-ups or other processes.
//!
//! `cargo bench --bench pipeline`
//!
//! Rows: `direct` (client → upstream, the floor), `cache_hit` (a repeated ES256 token),
//! `cache_off/ES256` and `cache_off/RS256` (full signature check per request),
//! `refused_bad_signature` (401 from the refusal memory) and `missing_token` (401 before
//! any token work). No log subscriber is installed: access lines cost nothing here; the
//! load harness (`--bench load`) measures them.

mod common;

use common::NOW;

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use portcullis::app::{Gateway, Options};
use portcullis::time::ManualClock;
use tokio::sync::Mutex;

fn must<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

async fn upstream() -> SocketAddr {
    let listener = must(tokio::net::TcpListener::bind("127.0.0.1:0").await);
    let addr = must(listener.local_addr());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn write_config(dir: &Path, upstream: SocketAddr, cache: bool) -> std::path::PathBuf {
    let keys: Vec<serde_json::Value> = [("k-ES256", "ES256"), ("k-RS256", "RS256")]
        .into_iter()
        .map(|(kid, alg)| {
            let mut jwk = must(if alg == "ES256" {
                Jwk::generate_ec_key(EcCurve::P256)
            } else {
                Jwk::generate_rsa_key(2048)
            });
            jwk.set_key_id(kid);
            jwk.set_algorithm(alg);
            serde_json::Value::Object(jwk.into())
        })
        .collect();
    let keys_file = if cache { "keys-on.json" } else { "keys-off.json" };
    must(std::fs::write(
        dir.join(keys_file),
        serde_json::json!({ "keys": keys }).to_string(),
    ));
    let config = dir.join(if cache { "on.toml" } else { "off.toml" });
    must(std::fs::write(
        &config,
        format!(
            r#"
[server]
token_cache = {cache}

[[realm]]
name = "bench"
issuer = "https://issuer.bench"
algorithms = ["ES256", "RS256"]
signing_keys = "{keys_file}"

[[resource_server]]
id = "api"
realm = "bench"
audience = "https://api.bench"
upstream = "http://{upstream}"
scopes = ["read"]

[resource_server.claim_headers]
sub = "x-auth-sub"

[[protected_resource]]
id = "read"
resource_server = "api"
paths = ["/items/**"]
scopes = ["read"]
"#
        ),
    ));
    config
}

async fn start(config: std::path::PathBuf) -> Gateway {
    must(
        Gateway::start(Options {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            clock: ManualClock::new(NOW),
            drain: Duration::from_secs(1),
            workers: None,
            ..Options::new(config)
        })
        .await,
    )
}

fn token(gw: &Gateway, kid: &str) -> String {
    common::token(&gw.verifier().snapshot(), kid)
}

async fn connect(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let stream = must(tokio::net::TcpStream::connect(addr).await);
    must(stream.set_nodelay(true));
    let (sender, conn) = must(hyper::client::conn::http1::handshake(TokioIo::new(stream)).await);
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// One request on `sender`'s connection, answered and read whole.
async fn exchange(sender: &mut SendRequest<Empty<Bytes>>, auth: Option<&HeaderValue>, expect: StatusCode) {
    must(sender.ready().await);
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = http::Uri::from_static("/items/42");
    req.headers_mut().insert(HOST, HeaderValue::from_static("api.bench"));
    if let Some(a) = auth {
        req.headers_mut().insert(AUTHORIZATION, a.clone());
    }
    let resp = must(sender.send_request(req).await);
    assert_eq!(resp.status(), expect);
    black_box(must(resp.into_body().collect().await).to_bytes());
}

fn bearer(token: &str) -> HeaderValue {
    must(HeaderValue::from_str(&format!("Bearer {token}")))
}

fn bench_pipeline(c: &mut Criterion) {
    let rt = must(tokio::runtime::Builder::new_current_thread().enable_all().build());
    let dir = must(tempfile::tempdir());
    let up = rt.block_on(upstream());
    let (on, off) = rt.block_on(async {
        (
            start(write_config(dir.path(), up, true)).await,
            start(write_config(dir.path(), up, false)).await,
        )
    });
    let es_on = bearer(&token(&on, "k-ES256"));
    let es_off = bearer(&token(&off, "k-ES256"));
    let rs_off = bearer(&token(&off, "k-RS256"));
    let bad = {
        let mut t = token(&on, "k-ES256").into_bytes();
        let i = t.len() - 10;
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        must(HeaderValue::from_bytes(&[b"Bearer ", &t[..]].concat()))
    };

    // One kept-alive connection per target, shared by the iterations of its benches.
    let shared = |addr| Rc::new(Mutex::new(rt.block_on(connect(addr))));
    let run = |conn: &Rc<Mutex<SendRequest<Empty<Bytes>>>>, auth: Option<HeaderValue>, expect: StatusCode| {
        let conn = conn.clone();
        async move { exchange(&mut *conn.lock().await, auth.as_ref(), expect).await }
    };
    let mut g = c.benchmark_group("pipeline");
    let direct = shared(up);
    g.bench_function("direct", |b| {
        b.to_async(&rt)
            .iter(|| run(&direct, Some(es_on.clone()), StatusCode::OK))
    });
    let conn = shared(on.local_addr());
    g.bench_function("cache_hit", |b| {
        b.to_async(&rt).iter(|| run(&conn, Some(es_on.clone()), StatusCode::OK))
    });
    g.bench_function("refused_bad_signature", |b| {
        b.to_async(&rt)
            .iter(|| run(&conn, Some(bad.clone()), StatusCode::UNAUTHORIZED))
    });
    g.bench_function("missing_token", |b| {
        b.to_async(&rt).iter(|| run(&conn, None, StatusCode::UNAUTHORIZED))
    });
    let conn_off = shared(off.local_addr());
    for (alg, auth) in [("ES256", &es_off), ("RS256", &rs_off)] {
        g.bench_with_input(BenchmarkId::new("cache_off", alg), auth, |b, auth| {
            b.to_async(&rt)
                .iter(|| run(&conn_off, Some(auth.clone()), StatusCode::OK))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
