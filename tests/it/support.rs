//! Test support: real keys, real tokens, a real upstream and the real gateway, all on
//! `127.0.0.1:0`. Time is a `ManualClock` handed to the gateway.
//!
//! - Keys and tokens: [`TestKey`], [`claims`], [`public_jwks`].
//! - [`Upstream`]: the one test upstream (echo, fixed answer, chunked, TLS, or a handler).
//! - [`Harness::builder`]: the one way a test starts a gateway (or, with
//!   [`HarnessBuilder::prepare`], lays its files out for the binary).
//! - Clients: [`send`] through hyper, and [`raw_send`] / [`RawConn`] for bytes written
//!   exactly as given; both give an [`Answer`]. Raw answers are parsed with `httparse` and
//!   read by their framing (Content-Length, chunked, or to the close).
//! - Waiting ([`within`]) and metrics ([`scrape`], [`sample`]).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
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
// Typed references into a snapshot, for tests that look entities up by position.
pub use portcullis::model::{EntityRef, RealmRef, ResourceRef, ResourceServerRef};
use portcullis::time::{Clock, ManualClock};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, MutexGuard};
use tokio_rustls::TlsAcceptor;

/// A fixed "now" for tests: 2026-06-01T00:00:00Z.
pub const NOW: i64 = 1_780_272_000;

/// The issuer and audience the default test configuration uses.
pub const ISSUER: &str = "https://issuer.test/realms/t";
pub const AUDIENCE: &str = "https://api.test";

/// A generated key pair, usable to sign test tokens (with jsonwebtoken, a library apart from
/// the issuer's signer), to publish, and as the issuer's own key (`signing`).
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub alg_name: &'static str,
    pub private: Value,
    pub public: Value,
    pub signing: Arc<portcullis::jwks::SigningKey>,
    /// The private key as jsonwebtoken takes it: test tokens are signed apart from the
    /// product's signer.
    pub encoding: jsonwebtoken::EncodingKey,
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
        let encoding = match alg_name {
            "ES256" | "ES384" => jsonwebtoken::EncodingKey::from_ec_pem(
                &josekit::jwk::alg::ec::EcKeyPair::from_jwk(&jwk)
                    .unwrap()
                    .to_pem_private_key(),
            ),
            "EdDSA" => jsonwebtoken::EncodingKey::from_ed_pem(
                &josekit::jwk::alg::ed::EdKeyPair::from_jwk(&jwk)
                    .unwrap()
                    .to_pem_private_key(),
            ),
            _ => jsonwebtoken::EncodingKey::from_rsa_pem(
                &josekit::jwk::alg::rsa::RsaKeyPair::from_jwk(&jwk)
                    .unwrap()
                    .to_pem_private_key(),
            ),
        }
        .expect("a jsonwebtoken key");
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
            encoding,
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
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg).expect("sign");
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

/// `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Authorization: Basic` per RFC 6749 § 2.3.1: both parts form-urlencoded, then Base64.
pub fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(id), enc(secret))))
}

/// An `application/x-www-form-urlencoded` body of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The decoded JSON of part `i` (0 = header, 1 = payload) of a compact JWS, unverified.
pub fn jwt_part(token: &str, i: usize) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[i])
        .unwrap_or_else(|e| panic!("part {i} is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("part {i} is not JSON: {e}"))
}

// ---------------------------------------------------------------------------------------
// The test upstream.

/// A response body as the test upstream's handlers write it.
pub type UpBody = UnsyncBoxBody<Bytes, Infallible>;

/// `text` as a whole body (sent with a Content-Length).
pub fn full(text: impl Into<Bytes>) -> UpBody {
    Full::new(text.into()).boxed_unsync()
}

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub version: Version,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the upstream answers every request with, unless a handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    /// The body; `None` echoes the request: `upstream saw GET /path?q (0 body bytes)`.
    pub body: Option<String>,
    /// Sends the body in pieces of this many bytes and no Content-Length, so HTTP/1.1
    /// frames it chunked; `None` sends it whole.
    pub chunked: Option<usize>,
}

impl Reply {
    /// The echo, with `x-upstream: yes` and a hop-by-hop `keep-alive: timeout=5` (which the
    /// gateway must remove).
    pub fn echo() -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: None,
            chunked: None,
        }
        .header("x-upstream", "yes")
        .header("keep-alive", "timeout=5")
    }

    /// `status` and `body`, and no other header.
    pub fn fixed(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body.into()),
            chunked: None,
        }
    }

    /// One more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The body in pieces of `piece` bytes, of unknown length (chunked on HTTP/1.1).
    pub fn chunked(mut self, piece: usize) -> Self {
        assert!(piece > 0, "a piece has at least one byte");
        self.chunked = Some(piece);
        self
    }
}

type Handler = Arc<dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<UpBody>> + Send>> + Send + Sync>;

/// The one test upstream, on `127.0.0.1:0`. It counts every request; unless a handler
/// answers, it records each one whole ([`Seen`]) and answers with its [`Reply`], a request
/// whose path ends in `/slow` after 5 s (past the default configuration's 1 s response
/// timeout). With [`UpstreamBuilder::tls`] it speaks only TLS and records the SNI name.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
}

struct UpstreamState {
    hits: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    reply: Mutex<Reply>,
    sni: Mutex<Option<String>>,
}

/// How an [`Upstream`] answers; from [`Upstream::builder`].
pub struct UpstreamBuilder {
    reply: Reply,
    tls: Option<TlsAcceptor>,
    handler: Option<Handler>,
}

impl UpstreamBuilder {
    /// What it answers. Defaults to [`Reply::echo`].
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Speaks only TLS, with `cert` and `key`.
    pub fn tls(mut self, cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Self {
        let config = rustls::ServerConfig::builder_with_provider(portcullis::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        self.tls = Some(TlsAcceptor::from(Arc::new(config)));
        self
    }

    /// `handler` answers every request instead (for bodies the test feeds or reads as they
    /// stream): the request is counted, not recorded.
    pub fn handler<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<UpBody>> + Send + 'static,
    {
        self.handler = Some(Arc::new(move |req| Box::pin(handler(req))));
        self
    }

    pub async fn start(self) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up = Upstream {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(UpstreamState {
                hits: AtomicUsize::new(0),
                seen: Mutex::new(Vec::new()),
                reply: Mutex::new(self.reply),
                sni: Mutex::new(None),
            }),
        };
        let (state, tls, handler) = (up.state.clone(), self.tls, self.handler);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (state, tls, handler) = (state.clone(), tls.clone(), handler.clone());
                tokio::spawn(async move {
                    let Some(acceptor) = tls else {
                        return serve_connection(tcp, state, handler).await;
                    };
                    // A refused handshake is what some tests expect: nothing to serve then.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    *state.sni.lock().await = stream.get_ref().1.server_name().map(str::to_owned);
                    serve_connection(stream, state, handler).await;
                });
            }
        });
        up
    }
}

async fn serve_connection<S>(stream: S, state: Arc<UpstreamState>, handler: Option<Handler>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let (state, handler) = (state.clone(), handler.clone());
        async move { Ok::<_, Infallible>(answer(&state, handler, req).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

async fn answer(state: &UpstreamState, handler: Option<Handler>, req: Request<Incoming>) -> Response<UpBody> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(handler) = handler {
        return handler(req).await;
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    state.seen.lock().await.push(Seen {
        method: parts.method.clone(),
        version: parts.version,
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body: body.clone(),
    });
    if parts.uri.path().ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Read after recording: a test holding the reply ([`Upstream::hold`]) holds the answer
    // of a request already counted.
    let reply = state.reply.lock().await.clone();
    let text = reply.body.unwrap_or_else(|| {
        format!(
            "upstream saw {} {} ({} body bytes)",
            parts.method,
            parts.uri,
            body.len()
        )
    });
    let body = match reply.chunked {
        None => full(text),
        Some(piece) => Pieces(Bytes::from(text).chunks(piece).map(Bytes::copy_from_slice).collect()).boxed_unsync(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = reply.status;
    for (name, value) in &reply.headers {
        resp.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    resp
}

/// A body of known pieces and unknown length: HTTP/1.1 sends it chunked.
struct Pieces(VecDeque<Bytes>);

impl Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

impl Upstream {
    /// The echoing upstream a harness gets unless told otherwise.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// An upstream answering `200` with `body` and no other header (a JWKS endpoint).
    pub async fn serving(body: impl Into<String>) -> Self {
        Self::builder().reply(Reply::fixed(StatusCode::OK, body)).start().await
    }

    pub fn builder() -> UpstreamBuilder {
        UpstreamBuilder {
            reply: Reply::echo(),
            tls: None,
            handler: None,
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests reached it.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The last request it recorded.
    pub async fn last(&self) -> Seen {
        self.state
            .seen
            .lock()
            .await
            .last()
            .cloned()
            .expect("upstream saw nothing")
    }

    /// Every request it recorded, in order.
    pub async fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().await.clone()
    }

    /// The SNI name of the last TLS handshake.
    pub async fn sni(&self) -> Option<String> {
        self.state.sni.lock().await.clone()
    }

    /// Answers with `status` and `body` from now on (its headers stay).
    pub async fn set(&self, status: StatusCode, body: impl Into<String>) {
        let mut reply = self.state.reply.lock().await;
        reply.status = status;
        reply.body = Some(body.into());
    }

    /// Sets (or, with `None`, removes) the answer's header `name`.
    pub async fn set_header(&self, name: &str, value: Option<&str>) {
        let mut reply = self.state.reply.lock().await;
        reply.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            reply.headers.push((name.to_owned(), v.to_owned()));
        }
    }

    /// The reply itself, locked: requests that arrive are counted and recorded, then wait
    /// for their answer until the guard is dropped.
    pub async fn hold(&self) -> MutexGuard<'_, Reply> {
        self.state.reply.lock().await
    }
}

/// A loopback address that was just free and is closed again: connecting is refused at once.
pub fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------
// The gateway.

/// A realm/resource-server/protected-resource configuration for tests, with the
/// placeholders [`HarnessBuilder::config`] fills in.
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

/// The default test configuration without its catch-all resource (so a path can miss),
/// with `server` as its `[server]` table.
pub fn config_with(server: &str) -> String {
    format!(
        "[server]\n{server}\n{}",
        default_config().replace("paths = [\"/**\"]", "paths = [\"/open/**\"]")
    )
}

/// `text` with the first `from` replaced by `to`; panics when `from` is absent, so a drift
/// of a base configuration cannot silently turn a test into a no-op.
pub fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "config does not contain {from:?}");
    text.replacen(from, to, 1)
}

/// `text` with the placeholders filled in: `{upstream}` (the upstream's address), `{keys}`
/// (the local JWKS file, `keys.json`) and `{dir}` (the configuration's directory). Without
/// a `[store]` of its own, the gateway gets an SQLite store in `dir`: tests never share one,
/// nor write to the working directory.
fn render(text: &str, dir: &Path, upstream: SocketAddr) -> String {
    let text = if text.contains("[store]") {
        text.to_owned()
    } else {
        format!("{text}\n[store]\nurl = \"sqlite://{{dir}}/store.db\"\n")
    };
    text.replace("{upstream}", &upstream.to_string())
        .replace("{keys}", &dir.join("keys.json").display().to_string())
        .replace("{dir}", &dir.display().to_string())
}

/// A running gateway with its upstream, keys and clock.
pub struct Harness {
    /// Shared by its [`Harness::replica`]s: they serve the same files.
    pub dir: Arc<tempfile::TempDir>,
    pub gateway: Gateway,
    pub upstream: Upstream,
    pub key: TestKey,
    pub clock: Arc<ManualClock>,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

/// What a gateway is started with; from [`Harness::builder`].
pub struct HarnessBuilder {
    config: String,
    key: Option<TestKey>,
    jwks: Option<String>,
    files: Vec<(String, String)>,
    upstream: Option<Upstream>,
    clock: Option<Arc<ManualClock>>,
    workers: Option<NonZeroUsize>,
    drain: Duration,
}

impl HarnessBuilder {
    /// The configuration (`portcullis.toml`), placeholders filled in as [`render`] says.
    /// Defaults to [`default_config`].
    pub fn config(mut self, text: impl Into<String>) -> Self {
        self.config = text.into();
        self
    }

    /// The key `h.key` names, published in the local JWKS file. Defaults to a new ES256 key
    /// `k1`.
    pub fn key(mut self, key: TestKey) -> Self {
        self.key = Some(key);
        self
    }

    /// The local JWKS file's document. Defaults to the public half of [`Self::key`].
    pub fn jwks(mut self, doc: impl Into<String>) -> Self {
        self.jwks = Some(doc.into());
        self
    }

    /// A file `name` beside the configuration.
    pub fn file(mut self, name: &str, text: impl Into<String>) -> Self {
        self.files.push((name.to_owned(), text.into()));
        self
    }

    /// The upstream `{upstream}` names. Defaults to [`Upstream::start`].
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// The gateway's clock. Defaults to a manual clock at [`NOW`].
    pub fn clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Serves on `n` dedicated worker threads (as the binary serves) instead of the test's
    /// runtime.
    pub fn workers(mut self, n: NonZeroUsize) -> Self {
        self.workers = Some(n);
        self
    }

    /// How long shutdown waits for requests in flight. Defaults to 5 s.
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Writes the files without starting a gateway (for tests that run the binary).
    pub async fn prepare(self) -> Prepared {
        init_logs();
        let upstream = match self.upstream {
            Some(up) => up,
            None => Upstream::start().await,
        };
        let key = self.key.unwrap_or_else(|| TestKey::es256("k1"));
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
        };
        write("keys.json", &self.jwks.unwrap_or_else(|| public_jwks(&[&key])));
        for (name, text) in &self.files {
            write(name, text);
        }
        write("portcullis.toml", &render(&self.config, dir.path(), upstream.addr));
        Prepared {
            config: dir.path().join("portcullis.toml"),
            dir,
            upstream,
            key,
        }
    }

    pub async fn start(self) -> Harness {
        let clock = self.clock.clone().unwrap_or_else(|| ManualClock::new(NOW));
        let (workers, drain) = (self.workers, self.drain);
        let files = self.prepare().await;
        let gateway = Gateway::start(Options {
            config: files.config,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            clock: clock.clone(),
            drain,
            workers,
        })
        .await
        .unwrap_or_else(|e| panic!("gateway: {e}"));
        Harness {
            dir: Arc::new(files.dir),
            gateway,
            upstream: files.upstream,
            key: files.key,
            clock,
            client: client(),
        }
    }
}

/// A gateway's files, written and not served: [`HarnessBuilder::prepare`].
pub struct Prepared {
    pub dir: tempfile::TempDir,
    /// `portcullis.toml` in `dir`.
    pub config: PathBuf,
    pub upstream: Upstream,
    pub key: TestKey,
}

impl Prepared {
    /// `text` with this gateway's placeholders filled in.
    pub fn render(&self, text: &str) -> String {
        render(text, self.dir.path(), self.upstream.addr)
    }
}

impl Harness {
    /// A gateway on [`default_config`], its upstream and a new ES256 key `k1`.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            config: default_config(),
            key: None,
            jwks: None,
            files: Vec::new(),
            upstream: None,
            clock: None,
            workers: None,
            drain: Duration::from_secs(5),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway.local_addr(), path)
    }

    /// GET `path` with `Authorization: Bearer <token>`.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, &[("authorization", &bearer(token))], "")
            .await
    }

    /// POST `body` to `path` with `Authorization: Bearer <token>`.
    pub async fn post(&self, path: &str, token: &str, body: &str) -> Answer {
        self.send(Method::POST, path, &[("authorization", &bearer(token))], body)
            .await
    }

    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        send(&self.client, method, &self.url(path), headers, body).await
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The configuration file the gateway was started on.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("portcullis.toml")
    }

    /// `text` with this gateway's placeholders filled in, as at start.
    pub fn render(&self, text: &str) -> String {
        render(text, self.dir.path(), self.upstream.addr)
    }

    /// Another gateway on the same files (so the same store): a second replica, with its own
    /// memory and caches, on the same clock and upstream.
    pub async fn replica(&self) -> Harness {
        Harness {
            dir: self.dir.clone(),
            gateway: start_gateway(self.config_path(), self.clock.clone()).await,
            upstream: self.upstream.clone(),
            key: self.key.clone(),
            clock: self.clock.clone(),
            client: client(),
        }
    }

    /// Stops the gateway and starts a new one on the same files: a restart, memory lost,
    /// only what the files and the store hold carried over.
    pub async fn restart(&mut self) {
        let next = start_gateway(self.config_path(), self.clock.clone()).await;
        let old = std::mem::replace(&mut self.gateway, next);
        old.shutdown().await;
    }

    /// Whether the running configuration has the protected resource `id`.
    pub fn has_resource(&self, id: &str) -> bool {
        self.gateway
            .verifier()
            .snapshot()
            .resources
            .iter()
            .any(|r| r.id.as_str() == id)
    }

    /// Replaces the configuration with `text` (rendered), by writing a new file and renaming
    /// it over the old one, as editors and ConfigMap updates do: readers never see half a
    /// file. Nothing is reloaded here.
    pub fn write_config(&self, text: &str) {
        let tmp = self.dir.path().join("portcullis.toml.tmp");
        std::fs::write(&tmp, self.render(text)).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }
}

/// A gateway on `config`, listening on a free loopback port.
async fn start_gateway(config: PathBuf, clock: Arc<ManualClock>) -> Gateway {
    Gateway::start(Options {
        config,
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        clock,
        drain: Duration::from_secs(5),
        workers: None,
    })
    .await
    .unwrap_or_else(|e| panic!("gateway: {e}"))
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

/// The JSON log lines written on this test's thread while it lives (the current-thread
/// runtime of a `#[tokio::test]` polls the gateway's tasks here too).
pub struct Logs {
    file: tempfile::NamedTempFile,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    /// Starts capturing, at INFO and above.
    ///
    /// NB: tracing caches whether anyone listens at a callsite when it first fires; a
    /// callsite firing for the first time on another test's thread while this capture
    /// starts may cache "nobody" after the rebuild below. A test that must see a line lets
    /// its callsite fire once before capturing (e.g. one request), so only rebuilds, which
    /// see this capture, decide.
    pub fn capture() -> Self {
        let file = tempfile::NamedTempFile::new().unwrap();
        let writer = Arc::new(file.reopen().unwrap());
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(writer)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        // A callsite another test's thread hit first may have cached "nobody listens".
        tracing::callsite::rebuild_interest_cache();
        Self { file, _guard: guard }
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(self.file.path()).unwrap()
    }

    /// The access lines written so far.
    pub fn access(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect()
    }

    /// The access line of the request with `id`.
    pub fn access_line(&self, id: &str) -> Value {
        self.access()
            .into_iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id} in:\n{}", self.text()))
    }
}

/// Seconds since `NOW` the clock shows.
pub fn elapsed(clock: &ManualClock) -> i64 {
    clock.now() - NOW
}

// ---------------------------------------------------------------------------------------
// Answers and clients.

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub version: Version,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// Reads `resp` to its end.
    pub async fn read(resp: Response<Incoming>) -> Self {
        let (version, status) = (resp.version(), resp.status());
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Self {
            version,
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The value of header `name`, if there is one and it is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

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

/// Asserts RFC 6750's `invalid_token` answer: 401, a Bearer challenge naming the error, and
/// the error in the JSON body.
#[track_caller]
pub fn assert_invalid_token(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.body);
    let challenge = a.challenge();
    assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
    assert!(challenge.contains(r#"error="invalid_token""#), "{what}: {challenge}");
    assert_eq!(a.error(), "invalid_token", "{what}: {}", a.body);
}

/// Asserts RFC 6750's `insufficient_scope` answer: 403 and a challenge naming the error and
/// the `scope` wanted.
#[track_caller]
pub fn assert_insufficient_scope(a: &Answer, scope: &str) {
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let challenge = a.challenge();
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(challenge.contains(&format!("scope=\"{scope}\"")), "{challenge}");
}

/// The access token of a 200 token answer.
#[track_caller]
pub fn access_token(a: &Answer) -> String {
    assert_eq!(a.status, StatusCode::OK, "token request failed: {}", a.body);
    a.json()["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token: {}", a.body))
        .to_owned()
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
    Answer::read(resp).await
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: what is written is exactly what the gateway parses.

/// What the raw client does with its side of the connection once the request is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Keeps it open and reads the answer to EOF.
    Open,
    /// Shuts down its writing half (a body ends early) and reads the answer to EOF.
    HalfClose,
}

/// Writes `request` exactly as given on a new connection, reads until the server closes it
/// (so the request should say `Connection: close`, or be one the server closes on) and
/// parses the answer.
pub async fn raw_send(addr: SocketAddr, request: &[u8], end: End) -> Answer {
    let mut conn = RawConn::open(addr).await;
    conn.write(request).await;
    if end == End::HalfClose {
        conn.stream.shutdown().await.expect("shutdown");
    }
    conn.answer_at_close().await
}

/// Sends `GET target HTTP/1.1` with `headers` (a `Host` and `Connection: close` are added
/// unless given; a given `Connection` must include `close`) and reads the answer to EOF.
pub async fn raw_get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = format!("GET {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("connection")) {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw_send(addr, req.as_bytes(), End::Open).await
}

/// One raw connection, for exchanges on a kept-alive connection.
pub struct RawConn {
    stream: TcpStream,
    /// Bytes read past the last answer.
    unread: Vec<u8>,
}

impl RawConn {
    pub async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect {addr}: {e}")),
            unread: Vec::new(),
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes `request` and reads its whole answer; the connection stays open.
    pub async fn exchange(&mut self, request: &[u8], what: &str) -> Answer {
        self.write(request).await;
        within(what, async {
            loop {
                if let Some((answer, used)) = parse_answer(&self.unread, false) {
                    self.unread.drain(..used);
                    return answer;
                }
                let mut buf = [0u8; 8192];
                let n = self.stream.read(&mut buf).await.expect("read");
                if n == 0 {
                    let (answer, _) = parse_answer(&self.unread, true).expect("a whole answer at the close");
                    return answer;
                }
                self.unread.extend_from_slice(&buf[..n]);
            }
        })
        .await
    }

    /// Reads until the server closes the connection and parses the answer.
    pub async fn answer_at_close(mut self) -> Answer {
        let mut bytes = std::mem::take(&mut self.unread);
        // A reset after the answer is a close too.
        let _ = within("the answer and the close", self.stream.read_to_end(&mut bytes)).await;
        let (answer, _) = parse_answer(&bytes, true).expect("a whole answer at the close");
        answer
    }
}

/// Parses the HTTP/1.x answer at the start of `bytes` with httparse and reads its body by
/// its framing (RFC 9112 § 6.3): none for 1xx, 204 and 304; chunked; Content-Length; else
/// to the close. `closed`: no more bytes will come. `None`: more bytes are needed.
fn parse_answer(bytes: &[u8], closed: bool) -> Option<(Answer, usize)> {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let mut head = httparse::Response::new(&mut slots);
    let head_len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if !closed => return None,
        Ok(httparse::Status::Partial) if bytes.is_empty() => panic!("the server closed without an answer"),
        Ok(httparse::Status::Partial) => panic!("the answer ended inside its head: {:?}", lossy(bytes)),
        Err(e) => panic!("not an HTTP/1.x answer ({e}): {:?}", lossy(bytes)),
    };
    let version = match head.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let status = StatusCode::from_u16(head.code.expect("a whole head has a status")).unwrap();
    let mut headers = HeaderMap::new();
    for h in head.headers.iter() {
        headers.append(
            HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(h.value).unwrap(),
        );
    }
    let rest = &bytes[head_len..];
    let chunked = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("chunked")));
    let length = headers.get(CONTENT_LENGTH).map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .expect("a Content-Length")
    });
    let framed = if status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
    {
        Some((Vec::new(), 0))
    } else if chunked {
        dechunk(rest)
    } else if let Some(n) = length {
        rest.get(..n).map(|body| (body.to_vec(), n))
    } else if closed {
        Some((rest.to_vec(), rest.len()))
    } else {
        None
    };
    let Some((body, body_len)) = framed else {
        assert!(!closed, "the answer ended inside its body: {:?}", lossy(bytes));
        return None;
    };
    let answer = Answer {
        version,
        status,
        headers,
        body: lossy(&body),
    };
    Some((answer, head_len + body_len))
}

/// Decodes the chunked body (RFC 9112 § 7.1) at the start of `bytes`: its data and the
/// bytes it took, or `None` if it is not all there yet.
fn dechunk(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&bytes[at..]) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => panic!("a malformed chunk size: {:?}", String::from_utf8_lossy(&bytes[at..])),
        };
        at += size_len;
        if size == 0 {
            // The trailer section: field lines, then an empty line.
            loop {
                let line = bytes[at..].windows(2).position(|w| w == b"\r\n")?;
                at += line + 2;
                if line == 0 {
                    return Some((data, at));
                }
            }
        }
        let end = at + usize::try_from(size).unwrap();
        let crlf = bytes.get(end..end + 2)?;
        assert_eq!(crlf, b"\r\n", "a chunk without its CRLF");
        data.extend_from_slice(&bytes[at..end]);
        at = end + 2;
    }
}

#[test]
fn raw_answers_are_read_by_their_framing() {
    let parse = |text: &str| parse_answer(text.as_bytes(), true).expect("whole");
    // Chunked, with a chunk extension and a trailer; what follows is another answer.
    let (a, used) = parse(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 1\r\n\r\nHTTP/1.1 204",
    );
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "hello, world"));
    assert_eq!(
        used,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 1\r\n\r\n"
            .len()
    );
    // Content-Length, then bytes that are not this answer's.
    let (a, _) = parse("HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}extra");
    assert_eq!(
        (a.status, a.body.as_str(), a.header("connection")),
        (StatusCode::BAD_REQUEST, "{}", Some("close"))
    );
    // No framing: to the close.
    let (a, _) = parse("HTTP/1.0 200 OK\r\n\r\nall of it");
    assert_eq!(a.body, "all of it");
    // Not yet whole while the connection is open.
    assert!(parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", false).is_none());
    assert!(
        parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            false
        )
        .is_none()
    );
}

// ---------------------------------------------------------------------------------------
// Waiting and metrics.

/// The guard on waiting for an event that must come: a regression fails instead of hanging.
/// Never an assertion about speed.
pub const GUARD: Duration = Duration::from_secs(60);

pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing happened within {GUARD:?}"))
}

/// Polls `probe` every 50 ms until it holds, for 10 s at the most: whether it held. For
/// what happens on its own time (a file watcher); a guard, never an assertion about speed.
pub async fn polled(mut probe: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..200 {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Asserts that `probe` comes to hold ([`polled`]).
pub async fn eventually(what: &str, probe: impl AsyncFnMut() -> bool) {
    assert!(polled(probe).await, "{what} did not happen within 10 s");
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

/// A PostgreSQL database of a test's own on the server `PORTCULLIS_TEST_POSTGRES` names
/// (e.g. `postgres://postgres@127.0.0.1:5432/postgres`); dropped by [`TestDb::drop`].
pub struct TestDb {
    /// The database's URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDb {
    /// A new empty database, or `None` (saying so once) when no server is configured.
    pub async fn create() -> Option<Self> {
        let Ok(admin) = std::env::var("PORTCULLIS_TEST_POSTGRES") else {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!("PORTCULLIS_TEST_POSTGRES is not set: PostgreSQL tests skipped"));
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "portcullis_t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PORTCULLIS_TEST_POSTGRES={admin} is unreachable: {e}"));
        sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Some(Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }

    /// Drops the database (closing whatever still uses it).
    pub async fn drop(self) {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin)
            .await
            .unwrap();
        sqlx::Executor::execute(
            &mut conn,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str(),
        )
        .await
        .unwrap();
    }
}

fn rand_suffix() -> u32 {
    rand::random::<u32>()
}

/// A TCP relay the test controls, put between the gateway and a server it depends on (the
/// store's PostgreSQL): [`Relay::cut`] closes every connection and refuses new ones, as a
/// network partition would; [`Relay::restore`] lets them through again.
pub struct Relay {
    pub addr: SocketAddr,
    open: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    /// A relay to `target`, open.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (o, l) = (open.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the peer sees the connection closed
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().await.push(link.abort_handle());
            }
        });
        Self { addr, open, links }
    }

    /// Closes every connection through the relay and refuses new ones.
    pub async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// How many resource servers the configuration declares (the built-in Management APIs left
/// out).
pub fn declared_servers(snap: &portcullis::Snapshot) -> usize {
    snap.resource_servers.iter().filter(|rs| !rs.management).count()
}

/// How many protected resources the configuration declares (the Management APIs' left out).
pub fn declared_resources(snap: &portcullis::Snapshot) -> usize {
    snap.resources
        .iter()
        .filter(|pr| !snap.resource_servers[pr.resource_server].management)
        .count()
}

// ---------------------------------------------------------------------------------------
// Node packages the tests run (tests/<name>, installed with `npm ci --prefix tests/<name>`).

/// `tests/<name>` with `package` installed, or `None` (saying why) when node or the package
/// is missing and the environment variable `required` is not `1` (then it panics).
pub fn node_package(name: &str, package: &str, required: &str) -> Option<PathBuf> {
    let must = std::env::var(required).is_ok_and(|v| v == "1");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(name);
    let node = std::process::Command::new("node").arg("--version").output();
    let missing = match node {
        Err(e) => Some(format!("node not found ({e})")),
        Ok(_) if !dir.join("node_modules").join(package).join("package.json").exists() => {
            Some(format!("{package} is not installed in {}", dir.display()))
        }
        Ok(_) => None,
    };
    match missing {
        None => Some(dir),
        Some(why) if must => panic!("{required}=1 but {why}; run `npm ci --prefix tests/{name}`"),
        Some(why) => {
            eprintln!("{why}: its test is skipped (install node 20 and npm, then `npm ci --prefix tests/{name}`)");
            None
        }
    }
}

/// A node process, stopped when dropped.
pub struct NodeServer(std::process::Child);

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `node <script>` in `dir` and reads the port it prints first (`{"port": N}`).
pub async fn node_server(dir: &Path, script: &str) -> (NodeServer, u16) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new("node")
        .arg(script)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("node {script}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let server = NodeServer(child);
    let read = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = reader.read_line(&mut line).map(|_| line);
        // Keep reading what it prints later: a closed pipe would end it with EPIPE.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        read
    });
    // A guard so a broken server fails the test instead of hanging it.
    let line = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("node {script} never said its port"))
        .unwrap()
        .unwrap();
    let port = serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (server, port)
}
