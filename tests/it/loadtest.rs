//! `portcullis loadtest` against a real gateway and upstream: request counts, statuses of a
//! token mix, the JSON it prints, and tokens fetched from the embedded issuer.

use std::process::Command;

use portcullis::time::Clock as _;
use serde_json::Value;

use crate::support::*;

fn loadtest(args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("loadtest")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// [`loadtest`] off the test's runtime (it blocks until the load is done).
async fn run(args: &[&str]) -> Value {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || loadtest(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

#[tokio::test]
async fn counts_statuses_of_a_token_mix_and_compares_two_targets() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let url = h.url("/items/1");
    let direct = h.upstream.url("/items/1");
    let r = run(&[
        "--target",
        &url,
        "--token",
        &token,
        "--requests",
        "400",
        "--connections",
        "4",
        "--invalid-share",
        "0.25",
        "--compare",
        &direct,
    ])
    .await;
    assert_eq!(r["requests"], 400, "{r}");
    assert_eq!(r["status"]["200"], 300, "{r}");
    assert_eq!(r["status"]["401"], 100, "a quarter with a bad signature: {r}");
    assert_eq!(r["errors"], 0);
    assert_eq!(r["model"], "closed");
    for q in ["p50", "p90", "p99", "p999", "max"] {
        assert!(r["latency_ms"][q].as_f64().unwrap() > 0.0, "{q}: {r}");
    }
    // The same load straight at the upstream: every request answered 200 there.
    assert_eq!(r["compare"]["status"]["200"], 400, "{r}");
    assert!(r["ratios"]["rps"].as_f64().unwrap() > 0.0);
    assert_eq!(
        h.upstream.hits(),
        300 + 400,
        "refused requests never reached the upstream"
    );
}

/// A realm with an embedded issuer, a `client_secret_basic` client `svc` and a
/// `private_key_jwt` client `jwt-svc`, on a gateway whose clock is the real time (the
/// loadtest mints tokens and assertions by the system clock, as a user's would).
async fn issuer_harness() -> (Harness, TestKey) {
    let hash = portcullis::issuer::hash_secret("svc-secret").unwrap();
    let config = format!(
        r#"
[server]
admin_listen = "127.0.0.1:0"

[[realm]]
name = "t"
issuer = "http://127.0.0.1/realms/t"
algorithms = ["ES256", "RS256"]
signing_keys = "{{dir}}/signing.json"

[[resource_server]]
id = "api"
realm = "t"
audience = "https://api.test"
upstream = "http://{{upstream}}"
scopes = ["read"]
default = true

[[protected_resource]]
id = "items"
resource_server = "api"
paths = ["/items/**"]
scopes = ["read"]

[[client]]
client_id = "svc"
realm = "t"
token_endpoint_auth_method = "client_secret_basic"
client_secret_hash = "{hash}"
scopes = ["read"]

[[client]]
client_id = "jwt-svc"
realm = "t"
token_endpoint_auth_method = "private_key_jwt"
jwks_file = "{{dir}}/client.json"
scopes = ["read"]
"#
    );
    let key = TestKey::es256("k1");
    let rs = TestKey::generate("RS256", "k2");
    let client = TestKey::es256("c1");
    let now = portcullis::time::SystemClock.now();
    let h = Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&key, &rs]))
        .file("client.json", public_jwks(&[&client]))
        .file("client-private.json", client.private.to_string())
        .key(key)
        .clock(portcullis::time::ManualClock::new(now))
        .start()
        .await;
    (h, client)
}

#[tokio::test]
async fn fetches_its_tokens_from_a_token_endpoint() {
    let (h, _) = issuer_harness().await;
    let url = h.url("/items/1");
    let token_url = h.url("/realms/t/token");
    let r = run(&[
        "--target",
        &url,
        "--token-url",
        &token_url,
        "--client-id",
        "svc",
        "--client-secret",
        "svc-secret",
        "--scope",
        "read",
        "--requests",
        "50",
        "--connections",
        "2",
    ])
    .await;
    assert_eq!(r["status"]["200"], 50, "{r}");
}

#[tokio::test]
async fn loads_a_token_endpoint_with_basic_secrets_and_with_fresh_assertions() {
    let (h, _) = issuer_harness().await;
    let token_url = h.url("/realms/t/token");
    let key_file = h.dir.path().join("client-private.json").display().to_string();
    let (url, file) = (token_url.clone(), key_file.clone());
    let basic = run(&[
        "--target",
        &url,
        "--client-credentials",
        "--client-id",
        "svc",
        "--client-secret",
        "svc-secret",
        "--scope",
        "read",
        "--requests",
        "100",
        "--connections",
        "4",
        "--invalid-share",
        "0.2",
    ])
    .await;
    assert_eq!(basic["status"]["200"], 80, "{basic}");
    assert_eq!(
        basic["status"]["400"], 20,
        "an unknown resource is invalid_target: {basic}"
    );
    // Each assertion is new (30 minted before the load, 30 during it): a repeated jti
    // would be refused as a replay.
    let (url, aud) = (token_url.clone(), "http://127.0.0.1/realms/t".to_owned());
    let jwt = run(&[
        "--target",
        &url,
        "--client-credentials",
        "--client-id",
        "jwt-svc",
        "--client-key",
        &file,
        "--assertion-audience",
        &aud,
        "--resource-server",
        "https://api.test",
        "--premint",
        "30",
        "--requests",
        "60",
        "--connections",
        "3",
    ])
    .await;
    assert_eq!(jwt["status"]["200"], 60, "{jwt}");
    let (_, text) = scrape(&h).await;
    assert_eq!(
        must(
            &text,
            "portcullis_tokens_issued_total{realm=\"t\",resource_server=\"api\"}"
        ),
        140.0,
        "{text}"
    );
}

#[tokio::test]
async fn mints_a_pool_of_distinct_tokens_with_the_asked_algorithm() {
    let (h, _) = issuer_harness().await;
    let url = h.url("/items/1");
    let config = h.config_path().display().to_string();
    let r = run(&[
        "--target",
        &url,
        "--config",
        &config,
        "--resource-server",
        "api",
        "--alg",
        "RS256",
        "--scope",
        "read",
        "--unique",
        "20",
        "--requests",
        "60",
        "--connections",
        "2",
    ])
    .await;
    assert_eq!(r["distinct_tokens"], 20, "{r}");
    assert_eq!(r["status"]["200"], 60, "{r}");
    let (_, text) = scrape(&h).await;
    // Each distinct token verified once, its repeats answered from the cache.
    assert_eq!(must(&text, "portcullis_token_cache_misses_total"), 20.0, "{text}");
    assert_eq!(must(&text, "portcullis_token_cache_hits_total"), 40.0, "{text}");
}

#[tokio::test]
async fn drives_http2_cleartext_too() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let url = h.url("/items/1");
    let r = run(&[
        "--target",
        &url,
        "--token",
        &token,
        "--requests",
        "100",
        "--connections",
        "2",
        "--http2",
    ])
    .await;
    assert_eq!(r["protocol"], "h2c");
    assert_eq!(r["status"]["200"], 100, "{r}");
    assert_eq!(h.upstream.hits(), 100);
}

#[tokio::test]
async fn runs_several_http2_streams_on_each_connection() {
    let h = Harness::builder()
        .config(config_with("admin_listen = \"127.0.0.1:0\""))
        .start()
        .await;
    let token = h.key.sign(&claims("read"));
    let url = h.url("/open/1");
    let r = run(&[
        "--target",
        &url,
        "--token",
        &token,
        "--requests",
        "200",
        "--connections",
        "2",
        "--http2",
        "--streams",
        "4",
    ])
    .await;
    assert_eq!(r["streams"], 4, "{r}");
    assert_eq!(r["status"]["200"], 200, "{r}");
    let (_, text) = scrape(&h).await;
    // Two connections carried the load, plus the one that checked the target was up.
    assert_eq!(must(&text, "portcullis_connections_total"), 3.0, "{text}");
}

#[test]
fn streams_need_http2() {
    let o = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["loadtest", "--target", "http://127.0.0.1:9/", "--streams", "4"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--http2"), "{err}");
}
