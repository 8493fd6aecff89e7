//! Test support: real keys, real tokens, a real upstream and the real gateway, all on
//! `127.0.0.1:0`. Time is a `ManualClock` handed to the gateway.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
// Typed references into a snapshot, for tests that look entities up by position.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use jsonwebtoken::Algorithm;
use portcullis::app::{Gateway, Options};
use portcullis::jwks::SigningKeys;
pub use portcullis::model::{EntityRef, RealmRef, ResourceRef, ResourceServerRef};
use portcullis::time::{Clock, ManualClock};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// A fixed "now" for tests: 2026-06-01T00:00:00Z.
pub const NOW: i64 = 1_780_272_000;

/// The issuer and audience the default test configuration uses.
pub const ISSUER: &str = "https://issuer.test/realms/t";
pub const AUDIENCE: &str = "https://api.test";

/// A generated key pair, usable to sign (through portcullis' own key loader, which turns
/// the private JWK into a jsonwebtoken key) and to publish.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub alg_name: &'static str,
    pub private: Value,
    pub public: Value,
    pub signing: Arc<portcullis::jwks::SigningKey>,
}

impl TestKey {
    pub fn generate(alg_name: &'static str, kid: &str) -> Self {
        let mut jwk = match alg_name {
            "ES256" => Jwk::generate_ec_key(EcCurve::P256),
            "ES384" => Jwk::generate_ec_key(EcCurve::P384),
            "RS256" | "PS256" | "RS384" | "RS512" | "PS384" | "PS512" => Jwk::generate_rsa_key(2048),
            "EdDSA" => Jwk::generate_ed_key(EdCurve::Ed25519),
            other => panic!("no test key for {other}"),
        }
        .expect("keygen");
        jwk.set_key_id(kid);
        jwk.set_algorithm(alg_name);
        jwk.set_key_use("sig");
        // josekit's to_public_key keeps only the key parameters and `use`.
        let mut public = jwk.to_public_key().unwrap();
        public.set_key_id(kid);
        public.set_algorithm(alg_name);
        let public: serde_json::Map<String, Value> = public.into();
        let private: serde_json::Map<String, Value> = jwk.into();
        let private = Value::Object(private);
        let set = SigningKeys::parse(json!({ "keys": [private.clone()] }).to_string().as_bytes()).expect("signing key");
        let signing = set.keys()[0].clone();
        Self {
            kid: kid.to_owned(),
            alg: signing.alg,
            alg_name,
            private,
            public: Value::Object(public),
            signing,
        }
    }

    pub fn es256(kid: &str) -> Self {
        Self::generate("ES256", kid)
    }

    /// Signs `claims` with header `{"alg", "kid", "typ": "at+jwt"}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({ "alg": self.alg_name, "kid": self.kid, "typ": "at+jwt" }),
            claims,
        )
    }

    /// Signs with an arbitrary header (for attack tokens); the signature is real.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.signing.key, self.alg).expect("sign");
        format!("{input}.{sig}")
    }
}

pub fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A JWKS document of the given keys' public halves.
pub fn public_jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.public.clone()).collect::<Vec<_>>() }).to_string()
}

/// A JWKS document of the given keys' private halves.
pub fn private_jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.private.clone()).collect::<Vec<_>>() }).to_string()
}

/// Valid access-token claims for the test realm and audience at `NOW`.
pub fn claims(scope: &str) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "client-1",
        "client_id": "client-1",
        "aud": AUDIENCE,
        "scope": scope,
        "iat": NOW,
        "exp": NOW + 300,
        "auth_time": NOW,
        "jti": "j1",
    })
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A recording upstream. `/slow` waits 5 s before answering; `/stream` answers with a
/// chunked body; everything else echoes.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub async fn last(&self) -> Seen {
        self.seen.lock().await.last().cloned().expect("upstream saw nothing")
    }
}

pub async fn spawn_upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let up = Upstream {
        addr,
        hits: Arc::new(AtomicUsize::new(0)),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let state = up.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move {
                        state.hits.fetch_add(1, Ordering::SeqCst);
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        state.seen.lock().await.push(Seen {
                            method: parts.method.clone(),
                            uri: parts.uri.to_string(),
                            headers: parts.headers.clone(),
                            body: body.clone(),
                        });
                        if parts.uri.path().ends_with("/slow") {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                        let mut resp = Response::new(Full::new(Bytes::from(format!(
                            "upstream saw {} {} ({} body bytes)",
                            parts.method,
                            parts.uri,
                            body.len()
                        ))));
                        resp.headers_mut()
                            .insert("x-upstream", http::HeaderValue::from_static("yes"));
                        resp.headers_mut()
                            .insert("keep-alive", http::HeaderValue::from_static("timeout=5"));
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    up
}

/// A realm/resource-server/protected-resource configuration for tests. `{upstream}` and
/// `{keys}` are filled in by [`Harness::start`].
pub fn default_config() -> String {
    r#"
[[realm]]
name = "t"
issuer = "https://issuer.test/realms/t"
algorithms = ["ES256", "RS256", "PS256", "ES384", "EdDSA"]
jwks_file = "{keys}"

[[resource_server]]
id = "api"
realm = "t"
audience = "https://api.test"
upstream = "http://{upstream}"
scopes = ["read", "write", "admin"]
default_scopes = ["read"]
response_timeout = "1s"

[resource_server.claim_headers]
sub = "x-auth-sub"
scope = "x-auth-scope"

[[protected_resource]]
id = "public-ish"
resource_server = "api"
paths = ["/**"]

[[protected_resource]]
id = "read"
resource_server = "api"
methods = ["GET"]
paths = ["/items", "/items/**"]
scopes = ["read"]

[[protected_resource]]
id = "write"
resource_server = "api"
methods = ["POST", "PUT"]
paths = ["/items", "/items/**"]
scopes = ["write"]

[[protected_resource]]
id = "admin"
resource_server = "api"
paths = ["/items/admin/**"]
scopes = ["admin"]
max_age = "5m"

[[protected_resource]]
id = "either"
resource_server = "api"
paths = ["/either"]
scopes = ["read", "write"]
scope_match = "any"

[[protected_resource]]
id = "short-lived"
resource_server = "api"
paths = ["/short"]
max_token_lifetime = "10m"

[[protected_resource]]
id = "slow"
resource_server = "api"
paths = ["/slow"]
"#
    .to_owned()
}

/// A running gateway with its upstream, keys and clock.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub gateway: Gateway,
    pub upstream: Upstream,
    pub key: TestKey,
    pub clock: Arc<ManualClock>,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

impl Harness {
    /// Starts the default test configuration with one ES256 key.
    pub async fn start() -> Self {
        Self::start_with(&default_config(), TestKey::es256("k1")).await
    }

    /// Starts `config` (with `{upstream}` and `{keys}` placeholders) and `key` in the
    /// local JWKS file.
    pub async fn start_with(config: &str, key: TestKey) -> Self {
        Self::start_on(config, key, None).await
    }

    /// As [`Harness::start_with`], served by `workers` dedicated worker threads (as the
    /// binary serves) instead of the test's runtime.
    pub async fn start_on(config: &str, key: TestKey, workers: Option<std::num::NonZeroUsize>) -> Self {
        init_logs();
        let upstream = spawn_upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let keys_path = dir.path().join("keys.json");
        std::fs::write(&keys_path, public_jwks(&[&key])).unwrap();
        let text = config
            .replace("{upstream}", &upstream.addr.to_string())
            .replace("{keys}", &keys_path.display().to_string());
        let config_path = dir.path().join("portcullis.toml");
        std::fs::write(&config_path, text).unwrap();
        let clock = ManualClock::new(NOW);
        let gateway = Gateway::start(Options {
            config: config_path,
            listen: Some("127.0.0.1:0".parse().unwrap()),
            clock: clock.clone(),
            drain: Duration::from_secs(5),
            workers,
        })
        .await
        .expect("gateway");
        Self {
            dir,
            gateway,
            upstream,
            key,
            clock,
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway.local_addr(), path)
    }

    /// GET `path` with `Authorization: Bearer <token>`.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, &[("authorization", &format!("Bearer {token}"))], "")
            .await
    }

    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        send(&self.client, method, &self.url(path), headers, body).await
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn challenge(&self) -> String {
        self.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// `error` of the JSON body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("request to {url}: {e}"));
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Seconds since `NOW` the clock shows.
pub fn elapsed(clock: &ManualClock) -> i64 {
    clock.now() - NOW
}

/// What the JWKS server answers: status, body, extra headers.
pub type Served = (StatusCode, String, HashMap<String, String>);

/// A minimal JWKS server whose document, status and delay the test controls, counting
/// fetches.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    pub doc: Arc<Mutex<Served>>,
    pub fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(doc: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Self {
            addr,
            doc: Arc::new(Mutex::new((StatusCode::OK, doc, HashMap::new()))),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let state = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            state.fetches.fetch_add(1, Ordering::SeqCst);
                            let (status, body, headers) = state.doc.lock().await.clone();
                            let mut resp = Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = status;
                            for (k, v) in headers {
                                resp.headers_mut().insert(
                                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                    http::HeaderValue::from_str(&v).unwrap(),
                                );
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    pub fn uri(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    pub async fn set(&self, status: StatusCode, doc: String) {
        let mut g = self.doc.lock().await;
        g.0 = status;
        g.1 = doc;
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// Logs to the test's output when `RUST_LOG` is set (e.g. `RUST_LOG=info cargo test`).
pub fn init_logs() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

// ---------------------------------------------------------------------------------------
// Waiting, raw exchanges and metrics, for tests on the listener and the admin endpoint.

/// The guard on waiting for an event that must come.
pub const GUARD: Duration = Duration::from_secs(60);

/// The default test configuration without its catch-all resource (so a path can miss),
/// with `server` as its `[server]` table.
pub fn config_with(server: &str) -> String {
    format!(
        "[server]\n{server}\n{}",
        default_config().replace("paths = [\"/**\"]", "paths = [\"/open/**\"]")
    )
}

pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing happened within {GUARD:?}"))
}

/// Writes `request` on a new connection and reads until the server closes it.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    // A reset after the answer is a close too.
    let _ = within("the answer and the close", s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

pub fn status_of(raw: &str) -> u16 {
    raw.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"))
}

pub async fn scrape(h: &Harness) -> (Answer, String) {
    let admin = h.gateway.admin_addr().expect("no admin listener");
    let a = send(&h.client, Method::GET, &format!("http://{admin}/metrics"), &[], "").await;
    let body = a.body.clone();
    (a, body)
}

/// The value of the sample whose line starts with `series` (name and labels, exactly).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

pub fn must(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}
