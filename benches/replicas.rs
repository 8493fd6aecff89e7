#![allow(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot set up should stop loudly
//! Two replicas on one store: Management API writes per second, and how long a change takes
//! to reach the other replica (a protected resource created on A enforced by B; a token
//! revoked on A refused by B), p50/p99/max.
//!
//! ```text
//! PORTCULLIS_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench replicas
//! cargo bench --bench replicas            # without PostgreSQL: one SQLite file, both replicas polling
//! cargo bench --bench replicas -- 200     # writes per measurement (default 100)
//! ```
//!
//! Both gateways run in this process on the demo configuration (its keys and clients) with
//! the store swapped in, on the system clock; requests go over loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis::app::{Gateway, Options};
use serde_json::{Value, json};
use sqlx::Connection;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const ADMIN_SCOPES: &str = "read:protected_resources create:protected_resources update:protected_resources \
delete:protected_resources revoke:tokens";

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let (url, engine, cleanup) = store_url(dir.path()).await;
    let config = dir.path().join("portcullis.toml");
    let demo = std::fs::read_to_string("config/portcullis.toml").unwrap();
    let keys = std::fs::canonicalize("config/keys").unwrap();
    std::fs::write(
        &config,
        format!(
            "{}\n[store]\nurl = \"{url}\"\n",
            demo.replace("\"keys/", &format!("\"{}/", keys.display()))
        ),
    )
    .unwrap();
    let a = start(&config).await;
    let b = start(&config).await;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let token = admin_token(&client, a.local_addr()).await;

    // Writes per second: creates, one after the other (each compiled, committed, applied).
    let started = Instant::now();
    for i in 0..n {
        create(&client, a.local_addr(), &token, &format!("w{i}")).await;
    }
    let writes = n as f64 / started.elapsed().as_secs_f64();

    // Entity propagation: created on A, time until B's running configuration has it.
    let mut entity = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("p{i}");
        let t = Instant::now();
        create(&client, a.local_addr(), &token, &id).await;
        while !b.verifier().snapshot().resources.iter().any(|pr| pr.id.as_str() == id) {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        entity.push(t.elapsed());
    }

    // Revocation propagation: revoked on A (committed before the answer), time until B
    // refuses the token (B has it cached as valid before).
    let mut revocation = Vec::with_capacity(n);
    for _ in 0..n {
        let user = demo_token(&client, a.local_addr()).await;
        let _ = get(&client, b.local_addr(), "/orders/1", &user).await; // cached on B
        let t = Instant::now();
        revoke(&client, a.local_addr(), &user).await;
        while get(&client, b.local_addr(), "/orders/1", &user).await != StatusCode::UNAUTHORIZED {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        revocation.push(t.elapsed());
    }

    println!("replicas: 2 gateways in one process, store {engine}, {n} operations each");
    println!("| measurement | value |");
    println!("|---|---:|");
    println!("| management writes/s (sequential creates, compile + commit + apply) | {writes:.1} |");
    for (name, mut v) in [
        ("entity created on A → enforced by B", entity),
        ("token revoked on A → refused by B", revocation),
    ] {
        v.sort();
        let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "| {name}: p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
            ms(pct(0.5)),
            ms(pct(0.99)),
            ms(*v.last().unwrap())
        );
    }
    a.shutdown().await;
    b.shutdown().await;
    cleanup.await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// PostgreSQL (a database of the run's own) when `PORTCULLIS_TEST_POSTGRES` names a server,
/// else an SQLite file in `dir`; and what drops the database afterwards.
async fn store_url(dir: &std::path::Path) -> (String, &'static str, std::pin::Pin<Box<dyn Future<Output = ()>>>) {
    match std::env::var("PORTCULLIS_TEST_POSTGRES") {
        Ok(admin) => {
            let name = format!("portcullis_bench_{}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
            let url = format!("{base}/{name}");
            let cleanup = Box::pin(async move {
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                let _ = sqlx::Executor::execute(&mut conn, format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await;
            });
            (url, "postgres", cleanup)
        }
        Err(_) => (
            format!("sqlite://{}/store.db", dir.display()),
            "sqlite (one file, polled)",
            Box::pin(async {}),
        ),
    }
}

async fn start(config: &std::path::Path) -> Gateway {
    Gateway::start(Options {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        workers: None,
        ..Options::new(config)
    })
    .await
    .unwrap()
}

async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn token(client: &HttpClient, addr: SocketAddr, basic: &str, form: &str) -> String {
    let req = Request::post(format!("http://{addr}/realms/demo/token"))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form.to_owned())))
        .unwrap();
    let (status, body) = send(client, req).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

async fn admin_token(client: &HttpClient, addr: SocketAddr) -> String {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("demo-admin:demo-admin-secret");
    let form = format!(
        "grant_type=client_credentials&resource={}&scope={}",
        "http%3A%2F%2F127.0.0.1%3A8080%2Fapi%2Fv1%2Fdemo",
        ADMIN_SCOPES.replace(' ', "+").replace(':', "%3A")
    );
    token(client, addr, &basic, &form).await
}

async fn demo_token(client: &HttpClient, addr: SocketAddr) -> String {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("demo-client:demo-client-secret");
    token(
        client,
        addr,
        &basic,
        "grant_type=client_credentials&scope=orders%3Aread",
    )
    .await
}

async fn create(client: &HttpClient, addr: SocketAddr, token: &str, id: &str) {
    let body = json!({"id": id, "resource_server": "orders", "paths": [format!("/bench/{id}")]}).to_string();
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}/api/v1/demo/protected-resources"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let (status, body) = send(client, req).await;
    assert_eq!(status, StatusCode::CREATED, "{body:?}");
}

async fn revoke(client: &HttpClient, addr: SocketAddr, token: &str) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("orders-rs:orders-rs-secret");
    let req = Request::post(format!("http://{addr}/realms/demo/revoke"))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("token={token}"))))
        .unwrap();
    let (status, body) = send(client, req).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
}

async fn get(client: &HttpClient, addr: SocketAddr, path: &str, token: &str) -> StatusCode {
    let req = Request::get(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(client, req).await.0
}
