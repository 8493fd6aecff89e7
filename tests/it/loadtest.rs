//! `portcullis loadtest` against a real gateway and upstream: request counts, statuses of a
//! token mix, the JSON it prints, and tokens fetched from the embedded issuer.

use std::process::Command;

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

#[tokio::test]
async fn counts_statuses_of_a_token_mix_and_compares_two_targets() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let url = h.url("/items/1");
    let direct = h.upstream.url("/items/1");
    let r = tokio::task::spawn_blocking(move || {
        loadtest(&[
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
    })
    .await
    .unwrap();
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

#[tokio::test]
async fn fetches_its_tokens_from_a_token_endpoint() {
    let hash = portcullis::issuer::hash_secret("svc-secret").unwrap();
    let config = format!(
        r#"
[[realm]]
name = "t"
issuer = "http://127.0.0.1/realms/t"
algorithms = ["ES256"]
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
"#
    );
    let key = TestKey::es256("k1");
    let h = Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&key]))
        .key(key)
        .start()
        .await;
    let url = h.url("/items/1");
    let token_url = h.url("/realms/t/token");
    let r = tokio::task::spawn_blocking(move || {
        loadtest(&[
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
    })
    .await
    .unwrap();
    assert_eq!(r["status"]["200"], 50, "{r}");
}

#[tokio::test]
async fn drives_http2_cleartext_too() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let url = h.url("/items/1");
    let r = tokio::task::spawn_blocking(move || {
        loadtest(&[
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
    })
    .await
    .unwrap();
    assert_eq!(r["protocol"], "h2c");
    assert_eq!(r["status"]["200"], 100, "{r}");
    assert_eq!(h.upstream.hits(), 100);
}
