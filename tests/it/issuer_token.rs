//! The embedded issuer's token endpoint, metadata and JWKS, end to end: a real gateway on
//! loopback with two issuing realms, real argon2 client secrets, real signing keys, the
//! clock stopped at `NOW`. Every rule is checked through HTTP, and where a refusal depends
//! on time, moving the clock shows the same request succeeding.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use http::{Method, StatusCode};
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use serde_json::{Map, Value, json};

use crate::support::basic as basic_header;
use crate::support::*;

const ISS: &str = "http://127.0.0.1/realms/t";
const TOKEN: &str = "/realms/t/token";
const API: &str = "https://api.test";
const REPORTS: &str = "https://reports.test";
const EDGE: &str = "https://edge.test";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
/// 2026-01-01T00:00:00Z, before `NOW`.
const JAN_2026: i64 = 1_767_225_600;
/// 2027-01-01T00:00:00Z, after `NOW`.
const JAN_2027: i64 = 1_798_761_600;

/// Every client of the test configuration and its secret.
const SECRETS: [(&str, &str); 10] = [
    ("basic-client", "basic-Secret-7f3a9c"),
    ("post-client", "post-Secret-51d0be"),
    ("limited", "limited-Secret-a8e2"),
    ("long", "long-Secret-0c4d19"),
    ("disabled", "disabled-Secret-77b1"),
    ("future", "future-Secret-3e90"),
    ("thr-a", "thr-a-Secret-6b2f"),
    ("thr-b", "thr-b-Secret-c915"),
    ("n-client", "n-client-Secret-4d7e"),
    ("nobody", "nobody-Secret-9a0d"),
];

fn secret(client: &str) -> &'static str {
    SECRETS
        .iter()
        .find(|(c, _)| *c == client)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("no secret for {client}"))
}

/// argon2 PHC hashes of [`SECRETS`], computed once for the whole binary.
fn hash_of(client: &str) -> String {
    static HASHES: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    HASHES
        .get_or_init(|| {
            SECRETS
                .iter()
                .map(|(c, s)| {
                    let h = portcullis::issuer::hash_secret(s).expect("hash");
                    (*c, h)
                })
                .collect()
        })
        .get(client)
        .cloned()
        .unwrap_or_else(|| panic!("no hash for {client}"))
}

/// The signing keys: realm `t` has an active ES256 key, an RS256 key, an EdDSA key and a
/// retired ES256 key (published, never used: the first key of an alg is the active one);
/// realm `n` has one ES256 key.
struct Keys {
    es: TestKey,
    rs: TestKey,
    ed: TestKey,
    es_retired: TestKey,
    n: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es: TestKey::es256("es-active"),
        rs: TestKey::generate("RS256", "rs-1"),
        ed: TestKey::generate("EdDSA", "ed-1"),
        es_retired: TestKey::es256("es-retired"),
        n: TestKey::es256("n-es"),
    })
}

/// The configuration. `realm_extra` is appended to realm `t`'s table.
fn config(realm_extra: &str) -> String {
    let mut text = format!(
        r#"
[[realm]]
name = "t"
issuer = "{ISS}"
algorithms = ["ES256", "RS256", "EdDSA"]
signing_keys = "signing-t.json"
access_token_ttl = "30m"
{realm_extra}

[[realm]]
name = "n"
issuer = "http://127.0.0.1/realms/n"
algorithms = ["ES256"]
signing_keys = "signing-n.json"

[[resource_server]]
id = "api"
realm = "t"
audience = "{API}"
upstream = "http://{{upstream}}"
scopes = ["read", "write", "admin"]
default_scopes = ["read", "write"]
access_token_ttl = "1h"
signing_alg = "ES256"
default = true

# No access_token_ttl: the realm's 30m applies.
[[resource_server]]
id = "reports"
realm = "t"
audience = "{REPORTS}"
upstream = "http://{{upstream}}"
scopes = ["reports:read"]
default_scopes = ["reports:read"]
signing_alg = "RS256"

[[resource_server]]
id = "edge"
realm = "t"
audience = "{EDGE}"
upstream = "http://{{upstream}}"
scopes = ["edge"]
signing_alg = "EdDSA"

[[resource_server]]
id = "closed"
realm = "t"
audience = "https://closed.test"
upstream = "http://{{upstream}}"
scopes = ["old"]
disabled_on = "2026-01-01T00:00:00Z"

# Realm n has no default resource server.
[[resource_server]]
id = "nd"
realm = "n"
audience = "https://nd.test"
upstream = "http://{{upstream}}"
scopes = ["nd"]

[[protected_resource]]
id = "items-read"
resource_server = "api"
methods = ["GET"]
paths = ["/items", "/items/**"]
scopes = ["read"]

[[protected_resource]]
id = "items-write"
resource_server = "api"
methods = ["POST"]
paths = ["/items", "/items/**"]
scopes = ["write"]

[[protected_resource]]
id = "reports"
resource_server = "reports"
paths = ["/reports/**"]
scopes = ["reports:read"]
"#
    );
    let clients: [(&str, &str, &str); 9] = [
        ("basic-client", "client_secret_basic", ""),
        ("post-client", "client_secret_post", ""),
        (
            "limited",
            "client_secret_basic",
            "scopes = [\"read\", \"reports:read\"]\nresource_servers = [\"api\"]\naccess_token_ttl = \"10m\"",
        ),
        ("long", "client_secret_basic", "access_token_ttl = \"2h\""),
        (
            "disabled",
            "client_secret_basic",
            "disabled_on = \"2026-01-01T00:00:00Z\"",
        ),
        ("future", "client_secret_basic", "valid_from = \"2027-01-01T00:00:00Z\""),
        ("thr-a", "client_secret_basic", ""),
        ("thr-b", "client_secret_basic", ""),
        ("n-client", "client_secret_basic", ""),
    ];
    for (id, method, extra) in clients {
        let realm = if id == "n-client" { "n" } else { "t" };
        text.push_str(&format!(
            "\n[[client]]\nclient_id = \"{id}\"\nrealm = \"{realm}\"\ntoken_endpoint_auth_method = \"{method}\"\nclient_secret_hash = \"{}\"\n{extra}\n",
            hash_of(id)
        ));
    }
    text
}

/// Starts the gateway with [`config`]`(realm_extra)`.
async fn start(realm_extra: &str) -> Harness {
    let k = keys();
    Harness::builder()
        .config(config(realm_extra))
        .file("signing-t.json", private_jwks(&[&k.es, &k.rs, &k.ed, &k.es_retired]))
        .file("signing-n.json", private_jwks(&[&k.n]))
        .key(k.es.clone())
        .start()
        .await
}

/// How a token request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// `Authorization: Basic` with (client_id, secret).
    Basic(&'a str, &'a str),
    /// `client_id` + `client_secret` in the body.
    Post(&'a str, &'a str),
    /// Both at once (RFC 6749 § 2.3 forbids it).
    Both(&'a str, &'a str),
    /// None.
    Anonymous,
}

impl Auth<'_> {
    fn secret(&self) -> Option<&str> {
        match self {
            Self::Basic(_, s) | Self::Post(_, s) | Self::Both(_, s) => Some(s),
            Self::Anonymous => None,
        }
    }
}

fn basic(client: &str) -> Auth<'_> {
    Auth::Basic(client, secret(client))
}

/// POSTs a token request to `path`; checks that the answer never echoes the secret.
async fn token_at(h: &Harness, path: &str, auth: Auth<'_>, params: &[(&str, &str)]) -> Answer {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    let mut headers: Vec<(&str, String)> = vec![(FORM.0, FORM.1.to_owned())];
    match auth {
        Auth::Basic(id, s) => headers.push(("authorization", basic_header(id, s))),
        Auth::Post(id, s) => all.extend([("client_id", id), ("client_secret", s)]),
        Auth::Both(id, s) => {
            headers.push(("authorization", basic_header(id, s)));
            all.extend([("client_id", id), ("client_secret", s)]);
        }
        Auth::Anonymous => {}
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = h.send(Method::POST, path, &headers, &form(&all)).await;
    if let Some(s) = auth.secret() {
        assert_not_echoed(&a, s);
    }
    a
}

async fn token(h: &Harness, auth: Auth<'_>, params: &[(&str, &str)]) -> Answer {
    token_at(h, TOKEN, auth, params).await
}

/// `grant_type=client_credentials` plus `params`.
fn cc<'a>(params: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("grant_type", "client_credentials")];
    v.extend_from_slice(params);
    v
}

fn assert_not_echoed(a: &Answer, secret: &str) {
    assert!(!a.body.contains(secret), "the secret is echoed in the body: {}", a.body);
    for (name, v) in &a.headers {
        assert!(
            !String::from_utf8_lossy(v.as_bytes()).contains(secret),
            "the secret is echoed in header {name}"
        );
    }
}

/// Asserts a 200 token answer and returns its JSON.
fn ok(a: &Answer) -> Value {
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.json()
}

/// Asserts an OAuth error answer: status, `error`, `Cache-Control: no-store`.
fn refused(a: &Answer, status: StatusCode, error: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.error(), error, "{}", a.body);
    assert_eq!(header(a, "cache-control"), "no-store");
    assert_eq!(header(a, "content-type"), "application/json");
}

fn header(a: &Answer, name: &str) -> String {
    a.headers
        .get(name)
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// A JWT's header and claims, decoded without verification.
fn parts(jwt: &str) -> (Value, Value) {
    (jwt_part(jwt, 0), jwt_part(jwt, 1))
}

/// The access token of a 200 answer, with its header and claims.
fn issued(a: &Answer) -> (String, Value, Value) {
    let body = ok(a);
    let at = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token: {body}"))
        .to_owned();
    let (h, c) = parts(&at);
    (at, h, c)
}

#[tokio::test]
async fn client_secret_basic_and_post_get_rfc9068_tokens_the_gateway_accepts() {
    let h = start("").await;
    let mut jtis = BTreeSet::new();
    for (auth, id) in [
        (basic("basic-client"), "basic-client"),
        (Auth::Post("post-client", secret("post-client")), "post-client"),
    ] {
        let a = token(&h, auth, &cc(&[("scope", "read")])).await;
        let body = ok(&a);
        assert_eq!(header(&a, "cache-control"), "no-store");
        assert_eq!(header(&a, "content-type"), "application/json");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "read");
        let (_, hd, c) = issued(&a);
        assert_eq!(hd["typ"], "at+jwt");
        assert_eq!(hd["alg"], "ES256");
        assert_eq!(hd["kid"], "es-active");
        assert_eq!(c["iss"], ISS);
        assert_eq!(c["sub"], id);
        assert_eq!(c["client_id"], id);
        assert_eq!(c["aud"], API);
        assert_eq!(c["scope"], "read");
        assert_eq!(c["iat"], NOW);
        assert_eq!(c["exp"], NOW + 3600);
        assert_eq!(c["auth_time"], NOW);
        let jti = c["jti"].as_str().unwrap_or_default().to_owned();
        assert!(!jti.is_empty(), "{c}");
        assert!(jtis.insert(jti), "jti repeated");
    }
    // auth_time and iat follow the clock: they are the moment of this request.
    h.clock.advance(100);
    let a = token(&h, basic("basic-client"), &cc(&[("scope", "read")])).await;
    let (read_token, _, c) = issued(&a);
    assert_eq!(c["auth_time"], NOW + 100);
    assert_eq!(c["iat"], NOW + 100);
    assert!(jtis.insert(c["jti"].as_str().unwrap_or_default().to_owned()));

    // Through the gateway: allowed with the scope, refused without it.
    let a = h.get("/items/1", &read_token).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.hits(), 1);
    let a = h.post("/items/1", &read_token, "{}").await;
    assert_insufficient_scope(&a, "write");
    assert_eq!(h.upstream.hits(), 1);
    let a = token(&h, basic("basic-client"), &cc(&[("scope", "read write")])).await;
    let (rw, _, _) = issued(&a);
    let a = h.post("/items/1", &rw, "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.hits(), 2);
    // A token for another audience does not open this resource server.
    let a = token(&h, basic("basic-client"), &cc(&[("resource", REPORTS)])).await;
    let (reports_token, _, _) = issued(&a);
    let a = h.get("/items/1", &reports_token).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(h.get("/reports/x", &reports_token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn failed_client_authentication_is_invalid_client() {
    let h = start("").await;
    let params = cc(&[]);
    // Wrong secret over Basic: 401 with a Basic challenge.
    let a = token(&h, Auth::Basic("basic-client", "not-the-Secret-1"), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(a.challenge(), r#"Basic realm="t", error="invalid_client""#);
    assert!(a.headers.get("retry-after").is_none());
    // Wrong secret in the body.
    let a = token(&h, Auth::Post("post-client", "not-the-Secret-2"), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    // Unknown client, with a secret that is some other client's.
    let a = token(&h, Auth::Basic("nobody", secret("basic-client")), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(a.challenge(), r#"Basic realm="t", error="invalid_client""#);
    let a = token(&h, Auth::Post("nobody", secret("post-client")), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    // A client of realm n is unknown at realm t's endpoint.
    let a = token(&h, basic("n-client"), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    // The right secret with the wrong method: registered for post, presented over Basic...
    let a = token(&h, Auth::Basic("post-client", secret("post-client")), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(a.challenge(), r#"Basic realm="t", error="invalid_client""#);
    // ...and registered for Basic, presented in the body.
    let a = token(&h, Auth::Post("basic-client", secret("basic-client")), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    // No authentication at all.
    let a = token(&h, Auth::Anonymous, &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    // The same clients with their own method succeed (the refusals above were the method).
    ok(&token(&h, basic("basic-client"), &params).await);
    ok(&token(&h, Auth::Post("post-client", secret("post-client")), &params).await);
}

#[tokio::test]
async fn malformed_token_requests_are_refused() {
    let h = start("").await;
    let s = secret("basic-client");
    // Two authentication methods at once.
    let a = token(&h, Auth::Both("basic-client", s), &cc(&[])).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_request");
    // No grant_type.
    let a = token(&h, basic("basic-client"), &[("scope", "read")]).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_request");
    // Another grant.
    let a = token(
        &h,
        basic("basic-client"),
        &[("grant_type", "password"), ("username", "u"), ("password", "p")],
    )
    .await;
    refused(&a, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    // A repeated parameter.
    let a = token(&h, basic("basic-client"), &cc(&[("scope", "read"), ("scope", "write")])).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_request");
    // Not a form: the same parameters as JSON.
    let auth = basic_header("basic-client", s);
    let a = h
        .send(
            Method::POST,
            TOKEN,
            &[("content-type", "application/json"), ("authorization", &auth)],
            r#"{"grant_type":"client_credentials"}"#,
        )
        .await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_request");
    assert_not_echoed(&a, s);
    // No content type at all, form body.
    let a = h
        .send(
            Method::POST,
            TOKEN,
            &[("authorization", &auth)],
            "grant_type=client_credentials",
        )
        .await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_request");
    // GET is not the token endpoint's method.
    let a = h
        .send(
            Method::GET,
            &format!("{TOKEN}?grant_type=client_credentials"),
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{}", a.body);
    assert_eq!(header(&a, "allow"), "POST");
    assert_not_echoed(&a, s);
    // The same request as a form POST is fine (the refusals above were the shape).
    let a = h
        .send(
            Method::POST,
            TOKEN,
            &[FORM, ("authorization", &auth)],
            "grant_type=client_credentials",
        )
        .await;
    ok(&a);
    // A media-type parameter does not make it another type.
    let a = h
        .send(
            Method::POST,
            TOKEN,
            &[
                ("content-type", "application/x-www-form-urlencoded; charset=UTF-8"),
                ("authorization", &auth),
            ],
            "grant_type=client_credentials",
        )
        .await;
    ok(&a);
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn clients_and_resource_servers_out_of_their_validity_get_no_tokens() {
    let h = start("").await;
    let params = cc(&[]);
    // disabled_on 2026-01-01 < NOW.
    let a = token(&h, basic("disabled"), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    // valid_from 2027-01-01 > NOW.
    let a = token(&h, basic("future"), &params).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    // Resource server disabled_on 2026-01-01 < NOW.
    let closed = cc(&[("resourceServer", "closed")]);
    let a = token(&h, basic("basic-client"), &closed).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_target");
    let a = token(&h, basic("basic-client"), &cc(&[("resource", "https://closed.test")])).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_target");

    // Only time made the difference: before 2026, the disabled ones work, and the future
    // client does not yet.
    h.clock.set(JAN_2026 - 1);
    ok(&token(&h, basic("disabled"), &params).await);
    let (_, _, c) = issued(&token(&h, basic("basic-client"), &closed).await);
    assert_eq!(c["aud"], "https://closed.test");
    refused(
        &token(&h, basic("future"), &params).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    // From 2027 on, the future client works.
    h.clock.set(JAN_2027);
    let (_, _, c) = issued(&token(&h, basic("future"), &params).await);
    assert_eq!(c["sub"], "future");
    assert_eq!(c["auth_time"], JAN_2027);
}

#[tokio::test]
async fn the_target_comes_from_resource_then_resource_server_then_the_realm_default() {
    let h = start("").await;
    let aud = |a: &Answer| issued(a).2["aud"].clone();
    // resource = an audience URI.
    let a = token(&h, basic("basic-client"), &cc(&[("resource", REPORTS)])).await;
    assert_eq!(aud(&a), REPORTS);
    // resourceServer = an id.
    let a = token(&h, basic("basic-client"), &cc(&[("resourceServer", "reports")])).await;
    assert_eq!(aud(&a), REPORTS);
    // Neither: the realm's default resource server.
    let a = token(&h, basic("basic-client"), &cc(&[])).await;
    assert_eq!(aud(&a), API);
    // resource wins... when both name the same server, fine.
    let a = token(
        &h,
        basic("basic-client"),
        &cc(&[("resource", REPORTS), ("resourceServer", "reports")]),
    )
    .await;
    assert_eq!(aud(&a), REPORTS);
    // The same resource twice is one target.
    let a = token(
        &h,
        basic("basic-client"),
        &cc(&[("resource", REPORTS), ("resource", REPORTS)]),
    )
    .await;
    assert_eq!(aud(&a), REPORTS);

    let refused_target = |a: &Answer| refused(a, StatusCode::BAD_REQUEST, "invalid_target");
    // Two different resources.
    refused_target(
        &token(
            &h,
            basic("basic-client"),
            &cc(&[("resource", REPORTS), ("resource", API)]),
        )
        .await,
    );
    // resource and resourceServer disagreeing.
    refused_target(
        &token(
            &h,
            basic("basic-client"),
            &cc(&[("resource", API), ("resourceServer", "reports")]),
        )
        .await,
    );
    // Unknown resource, unknown id.
    refused_target(&token(&h, basic("basic-client"), &cc(&[("resource", "https://nope.test")])).await);
    refused_target(&token(&h, basic("basic-client"), &cc(&[("resourceServer", "nope")])).await);
    // A resource server of another realm is unknown here.
    refused_target(&token(&h, basic("basic-client"), &cc(&[("resource", "https://nd.test")])).await);
    refused_target(&token(&h, basic("basic-client"), &cc(&[("resourceServer", "nd")])).await);
    // The client may get tokens for api only.
    let (_, _, c) = issued(&token(&h, basic("limited"), &cc(&[("resource", API)])).await);
    assert_eq!(c["aud"], API);
    refused_target(&token(&h, basic("limited"), &cc(&[("resource", REPORTS)])).await);
    refused_target(&token(&h, basic("limited"), &cc(&[("resourceServer", "reports")])).await);

    // Realm n has no default resource server: naming none is invalid_target...
    let n_token = "/realms/n/token";
    let a = token_at(&h, n_token, basic("n-client"), &cc(&[])).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_target");
    // ...while naming its server works, with realm n's issuer and key.
    let a = token_at(&h, n_token, basic("n-client"), &cc(&[("resourceServer", "nd")])).await;
    let (_, hd, c) = issued(&a);
    assert_eq!(c["aud"], "https://nd.test");
    assert_eq!(c["iss"], "http://127.0.0.1/realms/n");
    assert_eq!(hd["kid"], "n-es");
}

#[tokio::test]
async fn scopes_are_requested_within_target_and_client_else_defaults() {
    let h = start("").await;
    let granted = |a: &Answer| -> (String, String) {
        let body = ok(a);
        let (_, _, c) = issued(a);
        (
            body["scope"].as_str().unwrap_or_default().to_owned(),
            c["scope"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let invalid_scope = |a: &Answer| refused(a, StatusCode::BAD_REQUEST, "invalid_scope");
    // Requested within both: exactly that.
    let a = token(&h, basic("basic-client"), &cc(&[("scope", "admin read")])).await;
    assert_eq!(granted(&a), ("admin read".to_owned(), "admin read".to_owned()));
    // Outside the target's scopes (reports:read is another server's).
    invalid_scope(&token(&h, basic("basic-client"), &cc(&[("scope", "read reports:read")])).await);
    invalid_scope(&token(&h, basic("basic-client"), &cc(&[("scope", "nonexistent")])).await);
    // Outside the client's allowed scopes (limited: read, reports:read).
    invalid_scope(&token(&h, basic("limited"), &cc(&[("scope", "write")])).await);
    invalid_scope(&token(&h, basic("limited"), &cc(&[("scope", "read write")])).await);
    let a = token(&h, basic("limited"), &cc(&[("scope", "read")])).await;
    assert_eq!(granted(&a).1, "read");
    // No scope: the target's default scopes (read, write)...
    let a = token(&h, basic("basic-client"), &cc(&[])).await;
    assert_eq!(granted(&a), ("read write".to_owned(), "read write".to_owned()));
    // ...that the client may have (limited may not have write).
    let a = token(&h, basic("limited"), &cc(&[])).await;
    assert_eq!(granted(&a), ("read".to_owned(), "read".to_owned()));
    // Another target's defaults.
    let a = token(&h, basic("basic-client"), &cc(&[("resource", REPORTS)])).await;
    assert_eq!(granted(&a).1, "reports:read");
}

/// The same request under both `scope_source` settings.
#[tokio::test]
async fn scope_source_any_resource_server_grants_other_servers_scopes_for_the_target() {
    let request = cc(&[("resource", API), ("scope", "read reports:read")]);
    let h = start("").await;
    let a = token(&h, basic("basic-client"), &request).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_scope");
    drop(h);

    let h = start("scope_source = \"any_resource_server\"").await;
    let a = token(&h, basic("basic-client"), &request).await;
    assert_eq!(ok(&a)["scope"], "read reports:read");
    let (at, _, c) = issued(&a);
    assert_eq!(c["aud"], API, "the token is still built for the target");
    assert_eq!(c["scope"], "read reports:read");
    // It opens the target, not the server whose scope it borrowed.
    assert_eq!(h.get("/items/1", &at).await.status, StatusCode::OK);
    assert_eq!(h.get("/reports/x", &at).await.status, StatusCode::UNAUTHORIZED);
    // Still: a scope no server defines, and a scope the client may not have, are refused.
    let a = token(&h, basic("basic-client"), &cc(&[("scope", "read nonexistent")])).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_scope");
    let a = token(&h, basic("limited"), &cc(&[("scope", "edge")])).await;
    refused(&a, StatusCode::BAD_REQUEST, "invalid_scope");
    let a = token(&h, basic("limited"), &cc(&[("scope", "read reports:read")])).await;
    assert_eq!(ok(&a)["scope"], "read reports:read");
}

#[tokio::test]
async fn lifetime_is_the_clients_never_above_the_targets() {
    let h = start("").await;
    let lifetime = |a: &Answer| -> (i64, i64) {
        let body = ok(a);
        let (_, _, c) = issued(a);
        let span = c["exp"].as_i64().unwrap_or_default() - c["iat"].as_i64().unwrap_or_default();
        (body["expires_in"].as_i64().unwrap_or_default(), span)
    };
    // Client 10m, target 1h.
    assert_eq!(lifetime(&token(&h, basic("limited"), &cc(&[])).await), (600, 600));
    // Client 2h, target 1h.
    assert_eq!(lifetime(&token(&h, basic("long"), &cc(&[])).await), (3600, 3600));
    // No client TTL: the target's 1h.
    assert_eq!(
        lifetime(&token(&h, basic("basic-client"), &cc(&[])).await),
        (3600, 3600)
    );
    // Target without its own TTL: the realm's 30m, for clients without one and above it.
    let reports = cc(&[("resource", REPORTS)]);
    assert_eq!(
        lifetime(&token(&h, basic("basic-client"), &reports).await),
        (1800, 1800)
    );
    assert_eq!(lifetime(&token(&h, basic("long"), &reports).await), (1800, 1800));
}

/// Verifies `jwt` with josekit, using the JWK the issuer publishes for `kid`.
fn josekit_verify(jwt: &str, jwks: &Value, kid: &str) -> Map<String, Value> {
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("kid {kid} not published: {jwks}"));
    let jwk = Jwk::from_map(jwk.clone()).expect("josekit JWK");
    let verifier: Box<dyn JwsVerifier> = match jwk.algorithm() {
        Some("ES256") => Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap()),
        Some("RS256") => Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).unwrap()),
        Some("EdDSA") => Box::new(josekit::jws::EdDSA.verifier_from_jwk(&jwk).unwrap()),
        other => panic!("unexpected alg {other:?}"),
    };
    let (payload, header) = josekit::jwt::decode_with_verifier(jwt, verifier.as_ref())
        .unwrap_or_else(|e| panic!("josekit refused the token of {kid}: {e}"));
    assert_eq!(header.token_type(), Some("at+jwt"));
    assert_eq!(header.key_id(), Some(kid));
    payload.claims_set().clone()
}

#[tokio::test]
async fn tokens_are_signed_with_the_targets_alg_and_verify_with_josekit() {
    let h = start("").await;
    let jwks = h.send(Method::GET, "/realms/t/jwks", &[], "").await;
    assert_eq!(jwks.status, StatusCode::OK);
    let jwks = jwks.json();
    let mut tokens = Vec::new();
    for (target, alg, kid) in [
        (API, "ES256", "es-active"),
        (REPORTS, "RS256", "rs-1"),
        (EDGE, "EdDSA", "ed-1"),
    ] {
        let a = token(&h, basic("basic-client"), &cc(&[("resource", target)])).await;
        let (at, hd, c) = issued(&a);
        assert_eq!(hd["alg"], alg, "{target}");
        assert_eq!(hd["kid"], kid, "{target}: the active key, never the retired one");
        let verified = josekit_verify(&at, &jwks, kid);
        assert_eq!(Value::Object(verified.clone()), c);
        assert_eq!(verified["aud"], target);
        assert_eq!(verified["iss"], ISS);
        tokens.push((at, kid));
    }
    // The verification is real: the ES256 token does not verify under the retired key of
    // the same alg (even labelled with the active kid), nor with a changed signature.
    let (es_token, _) = &tokens[0];
    let verifier = |key: &TestKey, kid: &str| {
        let mut jwk = Jwk::from_map(key.public.as_object().cloned().unwrap_or_default()).unwrap();
        jwk.set_key_id(kid);
        josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap()
    };
    let k = keys();
    assert!(josekit::jwt::decode_with_verifier(es_token, &verifier(&k.es, "es-active")).is_ok());
    assert!(josekit::jwt::decode_with_verifier(es_token, &verifier(&k.es_retired, "es-active")).is_err());
    let mut tampered = es_token.clone();
    let last = tampered.pop().unwrap_or('A');
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(josekit::jwt::decode_with_verifier(&tampered, &verifier(&k.es, "es-active")).is_err());
}

#[tokio::test]
async fn metadata_is_served_at_both_well_known_paths() {
    let h = start("").await;
    let inserted = h
        .send(Method::GET, "/.well-known/oauth-authorization-server/realms/t", &[], "")
        .await;
    let appended = h
        .send(Method::GET, "/realms/t/.well-known/oauth-authorization-server", &[], "")
        .await;
    for a in [&inserted, &appended] {
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(header(a, "content-type"), "application/json");
    }
    let m = inserted.json();
    assert_eq!(m, appended.json());
    assert_eq!(m["issuer"], ISS);
    assert_eq!(m["token_endpoint"], format!("{ISS}/token"));
    assert_eq!(m["jwks_uri"], format!("{ISS}/jwks"));
    assert_eq!(m["introspection_endpoint"], format!("{ISS}/introspect"));
    assert_eq!(m["revocation_endpoint"], format!("{ISS}/revoke"));
    assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    let methods = m["token_endpoint_auth_methods_supported"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(methods.contains(&json!("client_secret_basic")), "{m}");
    assert!(methods.contains(&json!("client_secret_post")), "{m}");
    // The endpoints it names are the ones served.
    let path = |url: &Value| {
        url.as_str()
            .unwrap_or_default()
            .trim_start_matches("http://127.0.0.1")
            .to_owned()
    };
    let jwks = h.send(Method::GET, &path(&m["jwks_uri"]), &[], "").await;
    assert_eq!(jwks.status, StatusCode::OK);
    let a = token_at(&h, &path(&m["token_endpoint"]), basic("basic-client"), &cc(&[])).await;
    assert_eq!(issued(&a).2["iss"], m["issuer"]);
    // Realm n has its own metadata, with its own issuer.
    let n = h
        .send(Method::GET, "/.well-known/oauth-authorization-server/realms/n", &[], "")
        .await;
    assert_eq!(n.status, StatusCode::OK);
    assert_eq!(n.json()["issuer"], "http://127.0.0.1/realms/n");
    assert_eq!(n.json()["token_endpoint"], "http://127.0.0.1/realms/n/token");
    // Metadata is read-only.
    let a = h
        .send(
            Method::POST,
            "/.well-known/oauth-authorization-server/realms/t",
            &[FORM],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn jwks_publishes_every_signing_key_and_no_private_member() {
    let h = start("").await;
    let a = h.send(Method::GET, "/realms/t/jwks", &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(header(&a, "content-type"), "application/jwk-set+json");
    let doc = a.json();
    let published = doc["keys"].as_array().cloned().unwrap_or_default();
    let kids: BTreeSet<&str> = published.iter().filter_map(|k| k["kid"].as_str()).collect();
    assert_eq!(
        kids,
        BTreeSet::from(["es-active", "rs-1", "ed-1", "es-retired"]),
        "{doc}"
    );
    assert_eq!(published.len(), 4);
    let k = keys();
    for (test_key, kty, params) in [
        (&k.es, "EC", &["crv", "x", "y"][..]),
        (&k.es_retired, "EC", &["crv", "x", "y"][..]),
        (&k.rs, "RSA", &["n", "e"][..]),
        (&k.ed, "OKP", &["crv", "x"][..]),
    ] {
        let jwk = published
            .iter()
            .find(|p| p["kid"] == test_key.kid.as_str())
            .unwrap_or_else(|| panic!("{} missing", test_key.kid));
        assert_eq!(jwk["kty"], kty);
        assert_eq!(jwk["alg"], test_key.alg_name);
        // The public parameters are the key's own.
        for p in params {
            assert_eq!(jwk[*p], test_key.public[*p], "{} {p}", test_key.kid);
        }
        // No private member, under any name...
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(
                jwk.get(private).is_none(),
                "{} publishes {private}: {jwk}",
                test_key.kid
            );
        }
        // ...and no private value anywhere in the document.
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            if let Some(v) = test_key.private.get(private).and_then(Value::as_str) {
                assert!(!a.body.contains(v), "{}'s {private} leaks", test_key.kid);
            }
        }
    }
    // The test keys really had private parts to leak.
    assert!(k.rs.private.get("qi").is_some() && k.ed.private.get("d").is_some() && k.es.private.get("d").is_some());
    // Realm n publishes its own key only.
    let n = h.send(Method::GET, "/realms/n/jwks", &[], "").await.json();
    let n_kids: Vec<&str> = n["keys"]
        .as_array()
        .map(|ks| ks.iter().filter_map(|k| k["kid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(n_kids, ["n-es"]);
    assert!(n["keys"][0].get("d").is_none());
}

#[tokio::test]
async fn repeated_failures_throttle_that_client_only() {
    let h = start("").await;
    // The right secret works, and is remembered.
    ok(&token(&h, basic("thr-a"), &cc(&[])).await);
    for i in 0..5 {
        let a = token(&h, Auth::Basic("thr-a", &format!("wrong-Secret-{i}")), &cc(&[])).await;
        refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(a.headers.get("retry-after").is_none(), "attempt {i}");
    }
    // Now even the right (and remembered) secret is refused, over Basic and the standard way.
    let a = token(&h, basic("thr-a"), &cc(&[])).await;
    refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(a.headers.get("retry-after").is_some(), "{:?}", a.headers);
    assert_eq!(a.challenge(), r#"Basic realm="t", error="invalid_client""#);
    // Another client is unaffected, even after four failures of its own.
    for i in 0..4 {
        let a = token(&h, Auth::Basic("thr-b", &format!("wrong-Secret-{i}")), &cc(&[])).await;
        refused(&a, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    ok(&token(&h, basic("thr-b"), &cc(&[])).await);
    ok(&token(&h, basic("basic-client"), &cc(&[])).await);
    // And thr-a is still refused.
    let a = token(&h, basic("thr-a"), &cc(&[])).await;
    assert!(a.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn secrets_are_never_echoed() {
    let h = start("").await;
    // A secret shaped to be noticed, with characters that need encoding.
    let odd = "Echo-Me-If-You-Dare:%+&=";
    let cases: Vec<(Auth<'_>, Vec<(&str, &str)>)> = vec![
        (Auth::Basic("basic-client", odd), cc(&[])),
        (Auth::Post("post-client", odd), cc(&[])),
        (Auth::Basic("nobody", odd), cc(&[])),
        (Auth::Post("basic-client", odd), cc(&[])),
        (Auth::Both("basic-client", odd), cc(&[])),
        (Auth::Basic("post-client", secret("post-client")), cc(&[])),
        (Auth::Post("basic-client", secret("basic-client")), cc(&[])),
        (basic("disabled"), cc(&[])),
        (basic("basic-client"), vec![("grant_type", "password")]),
        (basic("basic-client"), vec![]),
        (basic("basic-client"), cc(&[("scope", "nonexistent")])),
        (basic("basic-client"), cc(&[("resource", "https://nope.test")])),
        (basic("basic-client"), cc(&[("scope", "read")])),
        (
            Auth::Post("post-client", secret("post-client")),
            cc(&[("scope", "read")]),
        ),
    ];
    let mut statuses = BTreeSet::new();
    for (auth, params) in cases {
        // token() asserts the secret appears in no body and no header.
        let a = token(&h, auth, &params).await;
        statuses.insert(a.status.as_u16());
        if let Some(s) = auth.secret() {
            // Nor its Basic encoding.
            if let Auth::Basic(id, _) | Auth::Both(id, _) = auth {
                let header = basic_header(id, s);
                let encoded = header.trim_start_matches("Basic ");
                assert!(!a.body.contains(encoded), "{}", a.body);
            }
        }
    }
    // Errors and successes both were seen.
    assert_eq!(statuses, BTreeSet::from([200, 400, 401]));
}
