//! Opaque tokens (RFC 7662 introspection of an external authorization server), end to end:
//! against a second gateway's embedded issuer (its real introspection endpoint, with a
//! resource server's credentials), and against a small hand-written endpoint the test
//! controls (to hold, fail or count its answers).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis::time::{Clock as _, ManualClock};
use serde_json::json;
use tokio::sync::RwLock;

use crate::support::*;

const GW_SECRET: &str = "gw-introspection-secret";
const C1_SECRET: &str = "c1-secret";

/// The authorization server: a gateway whose realm `as` runs an embedded issuer. Its
/// resource server `api` has the credentials the other gateway introspects with.
fn as_config(gw_hash: &str, c1_hash: &str) -> String {
    format!(
        r#"
[[realm]]
name = "as"
issuer = "http://127.0.0.1/realms/as"
algorithms = ["ES256"]
signing_keys = "{{dir}}/signing.json"

[[resource_server]]
id = "api"
realm = "as"
audience = "https://api.test"
upstream = "http://{{upstream}}"
scopes = ["read", "write"]
default_scopes = ["read"]
access_token_ttl = "10m"
default = true
client_id = "gw"
client_secret_hash = "{gw_hash}"

[[client]]
client_id = "c1"
realm = "as"
token_endpoint_auth_method = "client_secret_basic"
client_secret_hash = "{c1_hash}"
scopes = ["read", "write"]
"#
    )
}

/// A gateway whose realm `ext` knows no keys: every token is introspected at `endpoint`.
fn gateway_config(issuer: &str, endpoint: &str, realm_extra: &str) -> String {
    format!(
        r#"
[[realm]]
name = "ext"
issuer = "{issuer}"
introspection_endpoint = "{endpoint}"
introspection_client_id = "gw"
introspection_client_secret_file = "gw.secret"
danger_allow_http_introspection = true
introspection_cache_ttl = "60s"
{realm_extra}

[[resource_server]]
id = "api"
realm = "ext"
audience = "https://api.test"
upstream = "http://{{upstream}}"
scopes = ["read", "write"]

[resource_server.claim_headers]
sub = "x-auth-sub"
scope = "x-auth-scope"

[[resource_server]]
id = "other"
realm = "ext"
audience = "https://other.test"
upstream = "http://{{upstream}}"

[[protected_resource]]
id = "read"
resource_server = "api"
methods = ["GET"]
paths = ["/items/**"]
scopes = ["read"]

[[protected_resource]]
id = "write"
resource_server = "api"
methods = ["POST"]
paths = ["/items/**"]
scopes = ["write"]

[[protected_resource]]
id = "other"
resource_server = "other"
paths = ["/other/**"]
"#
    )
}

async fn gateway(config: String, clock: &Arc<ManualClock>) -> Harness {
    Harness::builder()
        .config(config)
        .file("gw.secret", format!("{GW_SECRET}\n"))
        .clock(clock.clone())
        .start()
        .await
}

/// The `/metrics` text of `h`'s gateway.
fn metrics(h: &Harness) -> String {
    let registry =
        portcullis::admin::metrics::registry(&portcullis::metrics::Metrics::new(), h.gateway.verifier().clone());
    portcullis::admin::metrics::encode(&registry).unwrap()
}

/// Calls at the authorization server's introspection endpoint, from its access lines.
fn introspect_calls(logs: &Logs) -> usize {
    logs.access().iter().filter(|l| l["endpoint"] == "introspect").count()
}

#[tokio::test]
async fn opaque_tokens_of_an_embedded_issuer_are_introspected_and_checked_on_every_request() {
    let clock = ManualClock::new(NOW);
    let hash = |s: &str| portcullis::issuer::hash_secret(s).unwrap();
    let key = TestKey::es256("as-1");
    let asv = Harness::builder()
        .config(as_config(&hash(GW_SECRET), &hash(C1_SECRET)))
        .file("signing.json", private_jwks(&[&key]))
        .key(key)
        .clock(clock.clone())
        .start()
        .await;
    let introspect = asv.url("/realms/as/introspect");
    let h = gateway(gateway_config("http://127.0.0.1/realms/as", &introspect, ""), &clock).await;
    let mint = |scope: &'static str| {
        let asv = &asv;
        async move {
            let a = asv
                .send(
                    Method::POST,
                    "/realms/as/token",
                    &[
                        ("authorization", &basic("c1", C1_SECRET)),
                        ("content-type", "application/x-www-form-urlencoded"),
                    ],
                    &form(&[("grant_type", "client_credentials"), ("scope", scope)]),
                )
                .await;
            access_token(&a)
        }
    };
    // The access callsite fires once before the capture (see `Logs::capture`).
    let token = mint("read").await;
    let logs = Logs::capture();

    // Allowed, with the claims the authorization server vouched for as headers.
    let a = h.get("/items/1", &token).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(seen.headers["x-auth-sub"], jwt_part(&token, 1)["sub"].as_str().unwrap());
    assert_eq!(seen.headers["x-auth-scope"], "read");
    assert_eq!(introspect_calls(&logs), 1);

    // Cache hits: the route's checks still run on each.
    assert_insufficient_scope(&h.post("/items/1", &token, "").await, "write");
    let wrong_audience = h.get("/other/x", &token).await;
    assert_invalid_token(&wrong_audience, "another resource server's audience");
    assert!(wrong_audience.challenge().contains("not meant for this resource"));
    assert_eq!(h.get("/items/2", &token).await.status, StatusCode::OK);
    assert_eq!(introspect_calls(&logs), 1, "one call for four requests");

    // Inactive: refused, and the answer is reused for the negative TTL.
    assert_invalid_token(&h.get("/items/1", "no-such-token").await, "unknown token");
    assert_invalid_token(&h.get("/items/1", "no-such-token").await, "unknown token again");
    assert_eq!(introspect_calls(&logs), 2);

    // Revoked at the authorization server: refused once the cached answer's TTL is over.
    let revoked = asv
        .send(
            Method::POST,
            "/realms/as/revoke",
            &[
                ("authorization", &basic("c1", C1_SECRET)),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &form(&[("token", &token)]),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(
        h.get("/items/1", &token).await.status,
        StatusCode::OK,
        "cached for 60 s"
    );
    clock.advance(61);
    assert_invalid_token(&h.get("/items/1", &token).await, "revoked at the AS");
    assert_eq!(introspect_calls(&logs), 3);

    let text = metrics(&h);
    assert!(
        text.contains(r#"portcullis_introspection_calls_total{realm="ext",outcome="active"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"portcullis_introspection_calls_total{realm="ext",outcome="inactive"} 2"#),
        "{text}"
    );
    assert!(text.contains("portcullis_introspection_cache_hits_total 5"), "{text}");
    // Never the token, in either gateway's lines.
    assert!(!logs.text().contains(&token), "a token was logged");
}

/// A hand-written RFC 7662 endpoint: counts its calls, checks the gateway's credentials,
/// can be held (while the test holds `gate`) or answer 503 (`down`). `opaque-<scope>-…` is
/// active with that scope, `exp` 300 s after `NOW`; anything else is inactive.
struct Endpoint {
    up: Upstream,
    calls: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    gate: Arc<RwLock<()>>,
}

impl Endpoint {
    async fn start() -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(RwLock::new(()));
        let (c, d, g) = (calls.clone(), down.clone(), gate.clone());
        let up = Upstream::builder()
            .handler(move |req| {
                let (calls, down, gate) = (c.clone(), d.clone(), g.clone());
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let authorized = req.headers().get("authorization").and_then(|v| v.to_str().ok())
                        == Some(basic("gw", GW_SECRET).as_str());
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let _held = gate.read().await;
                    let answer = |status: StatusCode, body: String| {
                        Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(full(Bytes::from(body)))
                            .unwrap()
                    };
                    if down.load(Ordering::SeqCst) {
                        return answer(StatusCode::SERVICE_UNAVAILABLE, "{}".into());
                    }
                    if !authorized {
                        return answer(StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#.into());
                    }
                    let token = form_urlencoded::parse(&body)
                        .find(|(k, _)| k == "token")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    let doc = match token.strip_prefix("opaque-").and_then(|t| t.split_once('-')) {
                        Some((scope, _)) => json!({
                            "active": true, "iss": ISSUER, "aud": AUDIENCE, "scope": scope,
                            "sub": "user-1", "client_id": "c1", "exp": NOW + 300, "iat": NOW,
                        }),
                        None => json!({ "active": false }),
                    };
                    answer(StatusCode::OK, doc.to_string())
                }
            })
            .start()
            .await;
        Self { up, calls, down, gate }
    }

    fn url(&self) -> String {
        self.up.url("/introspect")
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn concurrent_requests_with_one_new_token_make_one_introspection_call() {
    let clock = ManualClock::new(NOW);
    let ep = Endpoint::start().await;
    let h = gateway(gateway_config(ISSUER, &ep.url(), ""), &clock).await;
    let held = ep.gate.write().await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url) = (h.client.clone(), h.url("/items/1"));
        requests.spawn(async move {
            send(
                &client,
                Method::GET,
                &url,
                &[("authorization", &bearer("opaque-read-1"))],
                "",
            )
            .await
        });
    }
    // Every request has missed the cache (and joined the one lookup in flight) while the
    // endpoint holds its answer.
    let introspector = || h.gateway.verifier().introspector();
    while introspector().misses() < 8 {
        tokio::task::yield_now().await;
    }
    drop(held);
    while let Some(a) = requests.join_next().await {
        assert_eq!(a.unwrap().status, StatusCode::OK);
    }
    assert_eq!(ep.calls(), 1, "eight lookups, one call");
}

#[tokio::test]
async fn endpoint_down_is_503_unless_stale_answers_are_allowed() {
    let clock = ManualClock::new(NOW);
    let ep = Endpoint::start().await;
    let strict = gateway(gateway_config(ISSUER, &ep.url(), ""), &clock).await;
    let lenient = gateway(
        gateway_config(ISSUER, &ep.url(), "introspection_max_stale = \"2m\""),
        &clock,
    )
    .await;
    for h in [&strict, &lenient] {
        assert_eq!(h.get("/items/1", "opaque-read-1").await.status, StatusCode::OK);
    }
    ep.down.store(true, Ordering::SeqCst);
    // Within the TTL, both answer from the cache.
    for h in [&strict, &lenient] {
        assert_eq!(h.get("/items/1", "opaque-read-1").await.status, StatusCode::OK);
    }
    clock.advance(61);
    let a = strict.get("/items/1", "opaque-read-1").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.error(), "temporarily_unavailable");
    assert!(a.header("retry-after").is_some());
    let a = lenient.get("/items/1", "opaque-read-1").await;
    assert_eq!(a.status, StatusCode::OK, "stale answer served: {}", a.body);
    // Stale claims are still checked: the scope the route needs is not there.
    assert_insufficient_scope(&lenient.post("/items/1", "opaque-read-1", "").await, "write");
    // A token never seen cannot be served stale.
    let a = lenient.get("/items/1", "opaque-read-2").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    // Past the stale bound, the lenient one too.
    clock.advance(120);
    let a = lenient.get("/items/1", "opaque-read-1").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    // Nobody listening at all: 503 as well, not 401.
    let dead = gateway(
        gateway_config(ISSUER, &format!("http://{}/introspect", closed_port()), ""),
        &clock,
    )
    .await;
    let a = dead.get("/items/1", "opaque-read-1").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert!(
        metrics(&dead).contains(r#"portcullis_introspection_calls_total{realm="ext",outcome="transport_error"} 1"#),
        "{}",
        metrics(&dead)
    );
    assert!(metrics(&lenient).contains("portcullis_introspection_stale_answers_total 2"));
}

#[tokio::test]
async fn a_jwt_is_still_verified_locally_in_a_realm_that_introspects() {
    let clock = ManualClock::new(NOW);
    let ep = Endpoint::start().await;
    let config = gateway_config(ISSUER, &ep.url(), "algorithms = [\"ES256\"]\njwks_file = \"{keys}\"");
    let h = gateway(config, &clock).await;
    let jwt = h.key.sign(&claims("read"));
    assert_eq!(h.get("/items/1", &jwt).await.status, StatusCode::OK);
    assert_insufficient_scope(&h.post("/items/1", &jwt, "").await, "write");
    assert_eq!(ep.calls(), 0, "a JWT is never introspected");
    // A forged JWT is refused locally, not sent to the endpoint.
    let forged = TestKey::es256("k1").sign(&claims("read"));
    assert_invalid_token(&h.get("/items/1", &forged).await, "forged JWT");
    assert_eq!(ep.calls(), 0);
    // An opaque token goes to the endpoint.
    assert_eq!(h.get("/items/1", "opaque-read-1").await.status, StatusCode::OK);
    assert_eq!(h.upstream.last().await.headers["x-auth-sub"], "user-1");
    assert_invalid_token(&h.get("/items/1", "opaque").await, "inactive");
    assert_eq!(ep.calls(), 2);
}

#[tokio::test]
async fn introspection_settings_are_checked() {
    let bad = gateway_config(ISSUER, "ftp://as.test/introspect", "introspection_timeout = \"0s\"")
        .replace("introspection_client_secret_file = \"gw.secret\"\n", "")
        .replace("introspection_client_id = \"gw\"\n", "");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, bad.replace("{upstream}", "127.0.0.1:1")).unwrap();
    let errors = portcullis::app::load_snapshot(&path, portcullis::time::system(), None)
        .expect_err("refused")
        .to_string();
    for field in [
        "introspection_endpoint",
        "introspection_client_id",
        "introspection_client_secret_env",
        "introspection_timeout",
    ] {
        assert!(errors.contains(field), "{field} not named in:\n{errors}");
    }
    assert!(errors.contains("bad.toml"), "{errors}");
    assert!(errors.contains("ext"), "{errors}");
}

/// node `oidc-provider` (tests/oidc), an independent authorization server: its opaque
/// client_credentials tokens, introspected at its RFC 7662 endpoint.
#[tokio::test]
async fn opaque_tokens_of_node_oidc_provider() {
    let Some(dir) = node_package("oidc", "oidc-provider", "PORTCULLIS_TEST_OIDC") else {
        return;
    };
    let (_server, port) = node_server(&dir, "server.mjs").await;
    let issuer = format!("http://127.0.0.1:{port}");
    // oidc-provider judges expiry by the system clock: so does this gateway's clock.
    let clock = ManualClock::new(portcullis::time::SystemClock.now());
    let h = gateway(
        gateway_config(&issuer, &format!("{issuer}/token/introspection"), ""),
        &clock,
    )
    .await;
    let a = send(
        &h.client,
        Method::POST,
        &format!("{issuer}/token"),
        &[
            ("authorization", &basic("app", "app-secret-0123456789")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &form(&[("grant_type", "client_credentials"), ("scope", "read")]),
    )
    .await;
    let token = access_token(&a);
    assert!(!token.contains('.'), "an opaque token: {token}");

    let a = h.get("/items/1", &token).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.last().await.headers["x-auth-scope"], "read");
    assert_insufficient_scope(&h.post("/items/1", &token, "").await, "write");
    assert_invalid_token(&h.get("/other/x", &token).await, "another audience");
    assert_invalid_token(&h.get("/items/1", "not-a-token-of-theirs").await, "unknown");
    let text = metrics(&h);
    assert!(
        text.contains(r#"portcullis_introspection_calls_total{realm="ext",outcome="active"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"portcullis_introspection_calls_total{realm="ext",outcome="inactive"} 1"#),
        "{text}"
    );
}
