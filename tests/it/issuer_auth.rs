//! The embedded issuer's client authentication, end to end: `private_key_jwt` and
//! `client_secret_jwt` assertions (RFC 7523), interop with the `oauth2` crate and with an
//! independent JOSE implementation (`josekit`), RFC 7662 introspection and RFC 7009
//! revocation with the resource servers' own credentials.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AccessToken, AuthType, ClientId, ClientSecret, IntrospectionUrl, RequestTokenError, RevocationUrl, Scope,
    StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use portcullis::token::{Claims, RevocationKey};
use serde_json::{Value, json};

use crate::support::*;

/// The realm's issuer; its endpoints live under its path.
const ISS: &str = "http://127.0.0.1/realms/t";
/// The token endpoint URL as the configuration names it: an assertion's preferred `aud`.
const TOKEN_AUD: &str = "http://127.0.0.1/realms/t/token";
const TOKEN: &str = "/realms/t/token";
const INTROSPECT: &str = "/realms/t/introspect";
const REVOKE: &str = "/realms/t/revoke";
const JWKS: &str = "/realms/t/jwks";
const API_AUD: &str = "https://api.test";
const OTHER_AUD: &str = "https://other.test";
/// The realm's leeway, as configured.
const LEEWAY: i64 = 60;
/// The `api` resource server's token lifetime, as configured.
const API_TTL: i64 = 600;

// Secrets (the form-encoding of Basic credentials is exercised by the special characters).
const BASIC_SECRET: &str = "basic s3cret:with+special/chars%";
const POST_SECRET: &str = "post-secret";
const API_RS_SECRET: &str = "api-rs-secret";
const OTHER_RS_SECRET: &str = "other-rs-secret";

/// The environment variable holding `hmac-client`'s shared secret: set only in a child
/// run of the test binary (see [`rerun_with_env`]).
const HMAC_ENV: &str = "PORTCULLIS_IT_ISSUER_AUTH_HMAC_SECRET_7f3a";
const HMAC_SECRET: &str = "hmac-shared-secret-0123456789abcdef-0123";

/// Keys are slow to generate (RSA): made once for every test of this file.
struct Keys {
    realm_es: TestKey,
    realm_rs: TestKey,
    client_es: TestKey,
    client_rs: TestKey,
    client_es384: TestKey,
    /// Not registered anywhere; has the same `kid` as `client_es`.
    intruder: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        realm_es: TestKey::generate("ES256", "realm-es"),
        realm_rs: TestKey::generate("RS256", "realm-rs"),
        client_es: TestKey::generate("ES256", "client-es"),
        client_rs: TestKey::generate("RS256", "client-rs"),
        client_es384: TestKey::generate("ES384", "client-es384"),
        intruder: TestKey::generate("ES256", "client-es"),
    })
}

/// Argon2 PHC strings of the secrets (slow to make: made once).
struct Hashes {
    basic: String,
    post: String,
    api_rs: String,
    other_rs: String,
}

fn hashes() -> &'static Hashes {
    static HASHES: OnceLock<Hashes> = OnceLock::new();
    HASHES.get_or_init(|| {
        let h = |s: &str| portcullis::issuer::hash_secret(s).expect("hash");
        Hashes {
            basic: h(BASIC_SECRET),
            post: h(POST_SECRET),
            api_rs: h(API_RS_SECRET),
            other_rs: h(OTHER_RS_SECRET),
        }
    })
}

/// A realm with an embedded issuer, two resource servers with their own credentials, and
/// one client per authentication method. `{...}` placeholders are filled by [`start`].
fn issuer_config() -> String {
    r#"
[[realm]]
name = "t"
issuer = "http://127.0.0.1/realms/t"
algorithms = ["ES256", "RS256"]
leeway = "60s"
signing_keys = "{dir}/signing.json"
access_token_ttl = "1h"
scope_source = "{scope_source}"

[[resource_server]]
id = "api"
realm = "t"
audience = "https://api.test"
upstream = "http://{upstream}"
scopes = ["read", "write", "admin"]
default_scopes = ["read"]
access_token_ttl = "10m"
signing_alg = "ES256"
default = true
client_id = "api-rs"
client_secret_hash = "{api_rs_hash}"

[[resource_server]]
id = "other"
realm = "t"
audience = "https://other.test"
upstream = "http://{upstream}"
scopes = ["o:read", "o:write"]
default_scopes = ["o:read"]
access_token_ttl = "10m"
signing_alg = "RS256"
client_id = "other-rs"
client_secret_hash = "{other_rs_hash}"

[[protected_resource]]
id = "items"
resource_server = "api"
methods = ["GET"]
paths = ["/items", "/items/**"]
scopes = ["read"]

[[protected_resource]]
id = "other-items"
resource_server = "other"
methods = ["GET"]
paths = ["/other/**"]
scopes = ["o:read"]

[[client]]
client_id = "basic-client"
realm = "t"
token_endpoint_auth_method = "client_secret_basic"
client_secret_hash = "{basic_hash}"
scopes = ["read", "write", "o:read"]

[[client]]
client_id = "post-client"
realm = "t"
token_endpoint_auth_method = "client_secret_post"
client_secret_hash = "{post_hash}"
scopes = ["read"]
resource_servers = ["api"]

[[client]]
client_id = "jwt-es"
realm = "t"
token_endpoint_auth_method = "private_key_jwt"
jwks_file = "{dir}/client-es.json"
scopes = ["read", "write"]

# Registered with the very same public key as jwt-es.
[[client]]
client_id = "jwt-es-twin"
realm = "t"
token_endpoint_auth_method = "private_key_jwt"
jwks_file = "{dir}/client-es.json"
scopes = ["read", "write"]

[[client]]
client_id = "jwt-rs"
realm = "t"
token_endpoint_auth_method = "private_key_jwt"
jwks_file = "{dir}/client-rs.json"
scopes = ["read"]

# Its key's alg (ES384) is not among the realm's algorithms.
[[client]]
client_id = "jwt-es384"
realm = "t"
token_endpoint_auth_method = "private_key_jwt"
jwks_file = "{dir}/client-es384.json"
scopes = ["read"]
"#
    .to_owned()
}

/// `hmac-client`: only loadable where [`HMAC_ENV`] is set.
const HMAC_CLIENT: &str = r#"
[[client]]
client_id = "hmac-client"
realm = "t"
token_endpoint_auth_method = "client_secret_jwt"
client_secret_env = "PORTCULLIS_IT_ISSUER_AUTH_HMAC_SECRET_7f3a"
scopes = ["read"]
"#;

/// Starts the gateway on [`issuer_config`] plus `extra`, with the realm's `scope_source`.
async fn start(extra: &str, scope_source: &str) -> Harness {
    let k = keys();
    let hs = hashes();
    let config = format!("{}{extra}", issuer_config())
        .replace("{scope_source}", scope_source)
        .replace("{api_rs_hash}", &hs.api_rs)
        .replace("{other_rs_hash}", &hs.other_rs)
        .replace("{basic_hash}", &hs.basic)
        .replace("{post_hash}", &hs.post);
    Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&k.realm_es, &k.realm_rs]))
        .file("client-es.json", public_jwks(&[&k.client_es]))
        .file("client-rs.json", public_jwks(&[&k.client_rs]))
        .file("client-es384.json", public_jwks(&[&k.client_es384]))
        .key(k.realm_es.clone())
        .start()
        .await
}

async fn start_default() -> Harness {
    start("", "target").await
}

// ---------------------------------------------------------------------------------------
// Requests

async fn post_form(h: &Harness, path: &str, authorization: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    h.send(Method::POST, path, &headers, &form(pairs)).await
}

/// A token request with `client_secret_basic`.
async fn token_basic(h: &Harness, id: &str, secret: &str, extra: &[(&str, &str)]) -> Answer {
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend_from_slice(extra);
    post_form(h, TOKEN, Some(&basic(id, secret)), &pairs).await
}

/// A token request with a client assertion (and the right assertion type).
async fn token_assertion(h: &Harness, jwt: &str, extra: &[(&str, &str)]) -> Answer {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", portcullis::issuer::JWT_BEARER),
        ("client_assertion", jwt),
    ];
    pairs.extend_from_slice(extra);
    post_form(h, TOKEN, None, &pairs).await
}

async fn basic_token(h: &Harness, extra: &[(&str, &str)]) -> String {
    access_token(&token_basic(h, "basic-client", BASIC_SECRET, extra).await)
}

#[track_caller]
fn assert_invalid_client(a: &Answer, why: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{why}: {}", a.body);
    assert_eq!(a.error(), "invalid_client", "{why}: {}", a.body);
    assert!(a.json().get("access_token").is_none(), "{why}");
    assert_eq!(
        a.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..]),
        "{why}"
    );
}

// ---------------------------------------------------------------------------------------
// Assertions (RFC 7523 § 3)

/// Valid assertion claims for `client` at `NOW`.
fn assertion_claims(client: &str, jti: &str) -> Value {
    json!({
        "iss": client,
        "sub": client,
        "aud": TOKEN_AUD,
        "iat": NOW,
        "exp": NOW + 120,
        "jti": jti,
    })
}

/// Signs `claims` with `key` (header `alg` + `kid`, as clients send them).
fn assert_with(key: &TestKey, claims: &Value) -> String {
    key.sign_with_header(&json!({ "alg": key.alg_name, "kid": key.kid, "typ": "JWT" }), claims)
}

/// An assertion of `jwt-es` with `jti`, its claims first changed by `edit`.
fn es_assertion(jti: &str, edit: &dyn Fn(&mut Value)) -> String {
    let mut c = assertion_claims("jwt-es", jti);
    edit(&mut c);
    assert_with(&keys().client_es, &c)
}

/// A HMAC-signed assertion (`client_secret_jwt`, or an attack on a public-key client).
fn hmac_assertion(secret: &[u8], alg: Algorithm, alg_name: &str, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(&json!({ "alg": alg_name, "typ": "JWT" }).to_string()),
        b64(&claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg).expect("sign");
    format!("{input}.{sig}")
}

#[tokio::test]
async fn private_key_jwt_es256_and_rs256_assertions_get_tokens() {
    let h = start_default().await;
    let k = keys();
    // ES256, aud = the token endpoint; client identified by the assertion's sub alone.
    let a = token_assertion(&h, &assert_with(&k.client_es, &assertion_claims("jwt-es", "es-1")), &[]).await;
    let token = access_token(&a);
    assert_eq!(a.json()["token_type"], "Bearer");
    let c = jwt_part(&token, 1);
    assert_eq!(c["sub"], "jwt-es");
    assert_eq!(c["client_id"], "jwt-es");
    assert_eq!(c["aud"], API_AUD);
    assert_eq!(c["scope"], "read", "the target's default scopes");
    assert_eq!(c["auth_time"], NOW);
    // The token opens the protected resource through the gateway.
    let r = h.get("/items/1", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(h.upstream.hits(), 1);

    // RS256, aud = the issuer, with an agreeing client_id form parameter and a scope.
    let mut claims = assertion_claims("jwt-rs", "rs-1");
    claims["aud"] = json!(ISS);
    let a = token_assertion(
        &h,
        &assert_with(&k.client_rs, &claims),
        &[("client_id", "jwt-rs"), ("scope", "read")],
    )
    .await;
    let token = access_token(&a);
    assert_eq!(jwt_part(&token, 1)["client_id"], "jwt-rs");
    assert_eq!(h.get("/items/2", &token).await.status, StatusCode::OK);

    // aud as an array holding the token endpoint.
    let mut claims = assertion_claims("jwt-es", "es-2");
    claims["aud"] = json!(["https://somewhere.else", TOKEN_AUD]);
    access_token(&token_assertion(&h, &assert_with(&k.client_es, &claims), &[]).await);
}

#[tokio::test]
async fn private_key_jwt_jti_is_single_use() {
    let h = start_default().await;
    let k = keys();
    let jwt = assert_with(&k.client_es, &assertion_claims("jwt-es", "once"));
    access_token(&token_assertion(&h, &jwt, &[]).await);
    // The very same assertion again.
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "replayed assertion");
    // Another assertion (other exp) reusing the jti.
    let mut claims = assertion_claims("jwt-es", "once");
    claims["exp"] = json!(NOW + 200);
    assert_invalid_client(
        &token_assertion(&h, &assert_with(&k.client_es, &claims), &[]).await,
        "reused jti",
    );
    // The same jti from another client is that client's own.
    access_token(&token_assertion(&h, &assert_with(&k.client_rs, &assertion_claims("jwt-rs", "once")), &[]).await);
    // A refused assertion does not use up its jti.
    let mut claims = assertion_claims("jwt-es", "fresh");
    claims["aud"] = json!("https://not.us/token");
    assert_invalid_client(
        &token_assertion(&h, &assert_with(&k.client_es, &claims), &[]).await,
        "wrong aud",
    );
    access_token(
        &token_assertion(
            &h,
            &assert_with(&k.client_es, &assertion_claims("jwt-es", "fresh")),
            &[],
        )
        .await,
    );
}

#[tokio::test]
async fn private_key_jwt_time_rules() {
    let h = start_default().await;
    let with = es_assertion;
    // Expired beyond the leeway.
    let jwt = with("t1", &|c| c["exp"] = json!(NOW - LEEWAY - 1));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "expired assertion");
    let jwt = with("t1b", &|c| c["exp"] = json!(NOW - LEEWAY));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "expired at exp + leeway");
    // Expired but within the leeway: accepted.
    let jwt = with("t2", &|c| c["exp"] = json!(NOW - LEEWAY + 1));
    access_token(&token_assertion(&h, &jwt, &[]).await);
    // More than an hour ahead: refused (it would pin the replay memory).
    let jwt = with("t3", &|c| c["exp"] = json!(NOW + 3601));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "exp > 1 h ahead");
    // Exactly an hour: accepted.
    let jwt = with("t4", &|c| c["exp"] = json!(NOW + 3600));
    access_token(&token_assertion(&h, &jwt, &[]).await);
    // No exp at all.
    let jwt = with("t5", &|c| {
        c.as_object_mut().map(|m| m.remove("exp"));
    });
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "no exp");
    // A string exp is not a NumericDate.
    let jwt = with("t6", &|c| c["exp"] = json!((NOW + 60).to_string()));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "string exp");
    // Issued in the future, beyond the leeway; not yet valid.
    let jwt = with("t7", &|c| c["iat"] = json!(NOW + LEEWAY + 1));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "iat in the future");
    let jwt = with("t8", &|c| c["nbf"] = json!(NOW + LEEWAY + 1));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "nbf in the future");
    // Moving the clock makes a once-good assertion expire.
    let jwt = with("t9", &|c| c["exp"] = json!(NOW + 10));
    h.clock.advance(10 + LEEWAY);
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "expired by the clock");
}

#[tokio::test]
async fn private_key_jwt_identity_rules() {
    let h = start_default().await;
    let k = keys();
    let with = es_assertion;
    for (why, jwt) in [
        (
            "aud of another server",
            with("i1", &|c| c["aud"] = json!("https://other-as.test/token")),
        ),
        (
            "aud of another realm's token endpoint",
            with("i2", &|c| c["aud"] = json!("http://127.0.0.1/realms/u/token")),
        ),
        (
            "aud is the introspection endpoint",
            with("i3", &|c| c["aud"] = json!("http://127.0.0.1/realms/t/introspect")),
        ),
        (
            "no aud",
            with("i4", &|c| {
                c.as_object_mut().map(|m| m.remove("aud"));
            }),
        ),
        ("iss is not sub", with("i5", &|c| c["iss"] = json!("someone-else"))),
        (
            "iss is another client",
            with("i6", &|c| c["iss"] = json!("jwt-es-twin")),
        ),
        (
            "no iss",
            with("i7", &|c| {
                c.as_object_mut().map(|m| m.remove("iss"));
            }),
        ),
        (
            "no jti",
            with("i8", &|c| {
                c.as_object_mut().map(|m| m.remove("jti"));
            }),
        ),
        ("unknown client", {
            let mut c = assertion_claims("nobody", "i9");
            c["iss"] = json!("nobody");
            assert_with(&k.client_es, &c)
        }),
    ] {
        assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, why);
    }
    // A client_id parameter that disagrees with the assertion's sub: the twin client has the
    // very same key, so only the iss/sub = client_id rule refuses it.
    let jwt = with("i10", &|_| {});
    assert_invalid_client(
        &token_assertion(&h, &jwt, &[("client_id", "jwt-es-twin")]).await,
        "client_id of the twin",
    );
    assert_invalid_client(
        &token_assertion(&h, &jwt, &[("client_id", "jwt-rs")]).await,
        "client_id of another client",
    );
    // iss is the client named by client_id, sub another client: only the sub rule refuses.
    let jwt_sub = with("i12", &|c| c["sub"] = json!("jwt-es-twin"));
    assert_invalid_client(
        &token_assertion(&h, &jwt_sub, &[("client_id", "jwt-es")]).await,
        "sub is not the client_id",
    );
    // The same assertion with the agreeing client_id works (nothing above used its jti).
    access_token(&token_assertion(&h, &jwt, &[("client_id", "jwt-es")]).await);
    // The twin with its own assertion works too.
    let mut c = assertion_claims("jwt-es-twin", "i11");
    c["iss"] = json!("jwt-es-twin");
    let token = access_token(&token_assertion(&h, &assert_with(&k.client_es, &c), &[]).await);
    assert_eq!(jwt_part(&token, 1)["client_id"], "jwt-es-twin");
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn private_key_jwt_algorithm_and_key_rules() {
    let h = start_default().await;
    let k = keys();
    // The client's key is ES384, which the realm does not accept.
    let jwt = assert_with(&k.client_es384, &assertion_claims("jwt-es384", "a1"));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "alg not in the realm's list");
    // alg none, with and without a signature part.
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" }).to_string()),
        b64(&assertion_claims("jwt-es", "a2").to_string())
    );
    assert_invalid_client(&token_assertion(&h, &unsigned, &[]).await, "alg none");
    let mut none_sig = unsigned.clone();
    none_sig.push_str("AAAA");
    assert_invalid_client(&token_assertion(&h, &none_sig, &[]).await, "alg none with junk");
    // HS256 against a public-key client, keyed with the public key's own JSON (the classic
    // key-confusion attack) and with its x coordinate.
    let public = k.client_es.public.to_string();
    let x = k.client_es.public["x"].as_str().unwrap_or_default().to_owned();
    for secret in [public.as_bytes(), x.as_bytes()] {
        let jwt = hmac_assertion(secret, Algorithm::HS256, "HS256", &assertion_claims("jwt-es", "a3"));
        assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "HS256 for private_key_jwt");
    }
    // Signed by a key the client did not register (same kid).
    let jwt = assert_with(&k.intruder, &assertion_claims("jwt-es", "a4"));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "another key");
    // Signed by another client's (registered, accepted-alg) key.
    let jwt = assert_with(&k.client_rs, &assertion_claims("jwt-es", "a5"));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "another client's key");
    // A correctly signed assertion carrying a `jwk` header: key material in the header is
    // never used, even when it is the registered key.
    let jwt = k.client_es.sign_with_header(
        &json!({ "alg": "ES256", "kid": k.client_es.kid, "jwk": k.client_es.public }),
        &assertion_claims("jwt-es", "a6"),
    );
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "jwk header");
    // The intruder's own key in the header, signed by the intruder.
    let jwt = k.intruder.sign_with_header(
        &json!({ "alg": "ES256", "jwk": k.intruder.public }),
        &assertion_claims("jwt-es", "a7"),
    );
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "intruder jwk header");
    // A tampered payload.
    let good = assert_with(&k.client_es, &assertion_claims("jwt-es", "a8"));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut claims = assertion_claims("jwt-es", "a8");
    claims["exp"] = json!(NOW + 3000);
    parts[1] = b64(&claims.to_string());
    assert_invalid_client(&token_assertion(&h, &parts.join("."), &[]).await, "tampered");
    // Garbage.
    assert_invalid_client(&token_assertion(&h, "not.a.jwt", &[]).await, "garbage");
    // A secret-based method for a private_key_jwt client.
    let a = token_basic(&h, "jwt-es", "anything", &[]).await;
    assert_invalid_client(&a, "basic for a private_key_jwt client");
    // The untouched good assertion still works: none of the refusals used its jti.
    access_token(&token_assertion(&h, &good, &[]).await);
}

#[tokio::test]
async fn client_assertion_type_must_be_jwt_bearer() {
    let h = start_default().await;
    let jwt = assert_with(&keys().client_es, &assertion_claims("jwt-es", "ty1"));
    for ty in [
        Some("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
        Some("jwt-bearer"),
        None,
    ] {
        let mut pairs = vec![("grant_type", "client_credentials"), ("client_assertion", jwt.as_str())];
        if let Some(ty) = ty {
            pairs.push(("client_assertion_type", ty));
        }
        let a = post_form(&h, TOKEN, None, &pairs).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{ty:?}: {}", a.body);
        assert_eq!(a.error(), "invalid_request", "{ty:?}");
    }
    // Unused by the refusals, the assertion still works with the right type.
    access_token(&token_assertion(&h, &jwt, &[]).await);
}

// ---------------------------------------------------------------------------------------
// client_secret_jwt

/// Runs test `name` of this module again in a child process of the test binary, with
/// `var=value` in its environment, and checks that it ran and passed. (The crate forbids
/// `unsafe`, so a test cannot `set_var`; the secret of a `client_secret_jwt` client comes
/// from the environment at load.)
fn rerun_with_env(name: &str, var: &str, value: &str) {
    let module = module_path!();
    let path = module.split_once("::").map_or(module, |(_, rest)| rest);
    let full = format!("{path}::{name}");
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([full.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(var, value)
        .output()
        .unwrap_or_else(|e| panic!("running {full}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child run of {full} failed:\n{stdout}\n{stderr}"
    );
}

#[tokio::test]
async fn client_secret_jwt_assertions() {
    let Ok(secret) = std::env::var(HMAC_ENV) else {
        rerun_with_env("client_secret_jwt_assertions", HMAC_ENV, HMAC_SECRET);
        return;
    };
    let h = start(HMAC_CLIENT, "target").await;
    let k = keys();
    let hs = |jti: &str| {
        hmac_assertion(
            secret.as_bytes(),
            Algorithm::HS256,
            "HS256",
            &assertion_claims("hmac-client", jti),
        )
    };
    // HS256 with the shared secret.
    let token = access_token(&token_assertion(&h, &hs("h1"), &[]).await);
    assert_eq!(jwt_part(&token, 1)["client_id"], "hmac-client");
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
    // The same jti twice.
    assert_invalid_client(&token_assertion(&h, &hs("h1"), &[]).await, "replayed jti");
    // A wrong secret (one more character, a prefix).
    let wrong = format!("{secret}x");
    let jwt = hmac_assertion(
        wrong.as_bytes(),
        Algorithm::HS256,
        "HS256",
        &assertion_claims("hmac-client", "h3"),
    );
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "wrong secret");
    let jwt = hmac_assertion(
        &secret.as_bytes()[..32],
        Algorithm::HS256,
        "HS256",
        &assertion_claims("hmac-client", "h4"),
    );
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "secret prefix");
    // An RS256 assertion (signed by a registered private_key_jwt client's key).
    let jwt = assert_with(&k.client_rs, &assertion_claims("hmac-client", "h5"));
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "RS256 for client_secret_jwt");
    // The HMAC rules are the assertion rules: a wrong aud is refused.
    let mut c = assertion_claims("hmac-client", "h6");
    c["aud"] = json!("https://elsewhere/token");
    let jwt = hmac_assertion(secret.as_bytes(), Algorithm::HS256, "HS256", &c);
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "wrong aud");
    // The secret itself is no client_secret.
    let a = post_form(
        &h,
        TOKEN,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "hmac-client"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_invalid_client(&a, "client_secret_post for a client_secret_jwt client");
    // A fresh, correct assertion still works after all those refusals.
    access_token(&token_assertion(&h, &hs("h7"), &[]).await);
}

// ---------------------------------------------------------------------------------------
// Interop: the oauth2 crate

#[derive(Debug)]
struct HttpFailure(String);

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpFailure {}

type HyperClient = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// oauth2's `AsyncHttpClient` over hyper_util's legacy client. oauth2 insists on an
/// https revocation URL (RFC 7009 § 2); the test has no TLS, so `https://127.0.0.1` is
/// sent as plain http to the loopback gateway.
async fn oauth2_http(client: HyperClient, req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, HttpFailure> {
    let (mut parts, body) = req.into_parts();
    if let Some(rest) = parts.uri.to_string().strip_prefix("https://127.0.0.1:") {
        parts.uri = format!("http://127.0.0.1:{rest}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| HttpFailure(e.to_string()))?;
    }
    let resp = client
        .request(http::Request::from_parts(parts, Full::new(Bytes::from(body))))
        .await
        .map_err(|e| HttpFailure(e.to_string()))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| HttpFailure(e.to_string()))?.to_bytes();
    Ok(http::Response::from_parts(parts, body.to_vec()))
}

#[tokio::test]
async fn oauth2_crate_client_credentials_basic_and_post() {
    let h = start_default().await;
    let hc = client();
    let http = move |req: oauth2::HttpRequest| oauth2_http(hc.clone(), req);
    let token_url = TokenUrl::new(h.url(TOKEN)).unwrap();

    for (id, secret, auth) in [
        ("basic-client", BASIC_SECRET, AuthType::BasicAuth),
        ("post-client", POST_SECRET, AuthType::RequestBody),
    ] {
        let oc = BasicClient::new(ClientId::new(id.to_owned()))
            .set_client_secret(ClientSecret::new(secret.to_owned()))
            .set_token_uri(token_url.clone())
            .set_auth_type(auth.clone());
        let resp = oc
            .exchange_client_credentials()
            .add_scope(Scope::new("read".to_owned()))
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert_eq!(*resp.token_type(), oauth2::basic::BasicTokenType::Bearer, "{id}");
        assert_eq!(resp.expires_in(), Some(Duration::from_secs(API_TTL as u64)), "{id}");
        assert_eq!(resp.scopes(), Some(&vec![Scope::new("read".to_owned())]), "{id}");
        let token = resp.access_token().secret().clone();
        assert_eq!(jwt_part(&token, 1)["client_id"], id);
        // Allowed through the gateway.
        let before = h.upstream.hits();
        let r = h.get("/items/1", &token).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.body);
        assert_eq!(h.upstream.hits(), before + 1);

        // A wrong secret: oauth2 sees the RFC 6749 § 5.2 error.
        let bad = BasicClient::new(ClientId::new(id.to_owned()))
            .set_client_secret(ClientSecret::new(format!("{secret}-wrong")))
            .set_token_uri(token_url.clone())
            .set_auth_type(auth.clone());
        match bad.exchange_client_credentials().request_async(&http).await {
            Err(RequestTokenError::ServerResponse(e)) => {
                assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient, "{id}");
            }
            other => panic!("{id}: expected invalid_client, got {other:?}"),
        }
        // The other method than the registered one is refused too.
        let swapped = match auth {
            AuthType::BasicAuth => AuthType::RequestBody,
            _ => AuthType::BasicAuth,
        };
        let wrong_method = BasicClient::new(ClientId::new(id.to_owned()))
            .set_client_secret(ClientSecret::new(secret.to_owned()))
            .set_token_uri(token_url.clone())
            .set_auth_type(swapped);
        match wrong_method.exchange_client_credentials().request_async(&http).await {
            Err(RequestTokenError::ServerResponse(e)) => {
                assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient, "{id}");
            }
            other => panic!("{id}: expected invalid_client for the wrong method, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn oauth2_crate_introspection_and_revocation() {
    let h = start_default().await;
    let hc = client();
    let http = move |req: oauth2::HttpRequest| oauth2_http(hc.clone(), req);
    let token = basic_token(&h, &[("scope", "read write")]).await;
    let rs = BasicClient::new(ClientId::new("api-rs".to_owned()))
        .set_client_secret(ClientSecret::new(API_RS_SECRET.to_owned()))
        .set_introspection_url(IntrospectionUrl::new(h.url(INTROSPECT)).unwrap())
        .set_revocation_url(RevocationUrl::new(h.url(REVOKE).replacen("http://", "https://", 1)).unwrap());
    let at = AccessToken::new(token.clone());
    let info = rs.introspect(&at).request_async(&http).await.expect("introspect");
    assert!(info.active());
    assert_eq!(info.client_id().map(|c| c.as_str()), Some("basic-client"));
    assert_eq!(info.aud(), Some(&vec![API_AUD.to_owned()]));
    assert_eq!(
        info.scopes(),
        Some(&vec![Scope::new("read".to_owned()), Scope::new("write".to_owned())])
    );
    rs.revoke_token(StandardRevocableToken::AccessToken(at.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("revoke");
    let info = rs.introspect(&at).request_async(&http).await.expect("introspect");
    assert!(!info.active());
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------
// Interop: an independent JOSE implementation

async fn realm_jwks(h: &Harness) -> Value {
    let a = h.send(Method::GET, JWKS, &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.json()
}

fn josekit_jwk(jwks: &Value, kid: &str) -> josekit::jwk::Jwk {
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no key {kid} in {jwks}"));
    josekit::jwk::Jwk::from_map(key.clone()).unwrap()
}

#[tokio::test]
async fn issued_tokens_verify_with_josekit() {
    let h = start_default().await;
    let jwks = realm_jwks(&h).await;
    // No private member ever leaves.
    let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 2, "{jwks}");
    for k in &keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(k.get(private).is_none(), "{private} published: {k}");
        }
    }

    // ES256 (the api resource server's signing_alg).
    let token = basic_token(&h, &[("scope", "read write"), ("resource", API_AUD)]).await;
    let hd = jwt_part(&token, 0);
    assert_eq!(hd["alg"], "ES256");
    assert_eq!(hd["kid"], "realm-es");
    let verifier = josekit::jws::ES256
        .verifier_from_jwk(&josekit_jwk(&jwks, "realm-es"))
        .unwrap();
    let (p, jh) = josekit::jwt::decode_with_verifier(&token, &verifier).expect("josekit");
    assert_eq!(jh.token_type(), Some("at+jwt"));
    assert_eq!(jh.key_id(), Some("realm-es"));
    let c = p.claims_set();
    assert_eq!(c["iss"], ISS);
    assert_eq!(c["sub"], "basic-client");
    assert_eq!(c["client_id"], "basic-client");
    assert_eq!(c["aud"], API_AUD);
    assert_eq!(c["scope"], "read write");
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["exp"], NOW + API_TTL);
    assert_eq!(c["auth_time"], NOW);
    let jti = c["jti"].as_str().unwrap_or_default().to_owned();
    assert!(jti.len() >= 16, "jti {jti:?}");
    // Another token has another jti.
    let again = basic_token(&h, &[("scope", "read write")]).await;
    assert_ne!(jwt_part(&again, 1)["jti"].as_str(), Some(jti.as_str()));
    // josekit refuses a tampered token, and the token under the other realm key.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut forged = c.clone();
    forged.insert("scope".into(), json!("read write admin"));
    parts[1] = b64(&Value::Object(forged).to_string());
    assert!(josekit::jwt::decode_with_verifier(parts.join("."), &verifier).is_err());
    let rs_verifier = josekit::jws::RS256
        .verifier_from_jwk(&josekit_jwk(&jwks, "realm-rs"))
        .unwrap();
    assert!(josekit::jwt::decode_with_verifier(&token, &rs_verifier).is_err());

    // RS256 (the other resource server's signing_alg), chosen by resourceServer.
    let token = basic_token(&h, &[("resourceServer", "other")]).await;
    let (p, jh) = josekit::jwt::decode_with_verifier(&token, &rs_verifier).expect("josekit");
    assert_eq!(jh.algorithm(), Some("RS256"));
    assert_eq!(jh.key_id(), Some("realm-rs"));
    let c = p.claims_set();
    assert_eq!(c["aud"], OTHER_AUD);
    assert_eq!(c["scope"], "o:read", "the other server's default scopes");
    assert_eq!(c["iss"], ISS);
    // And it opens the other server's resource.
    assert_eq!(h.get("/other/x", &token).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Introspection (RFC 7662)

/// How a caller of introspection or revocation authenticates.
enum Creds<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    /// A client assertion (RFC 7523 § 2.2).
    Assertion(&'a str),
}

async fn call_rs(h: &Harness, path: &str, creds: Creds<'_>, token: Option<&str>) -> Answer {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(t) = token {
        pairs.push(("token", t));
    }
    match creds {
        Creds::Basic(id, secret) => post_form(h, path, Some(&basic(id, secret)), &pairs).await,
        Creds::Post(id, secret) => {
            pairs.push(("client_id", id));
            pairs.push(("client_secret", secret));
            post_form(h, path, None, &pairs).await
        }
        Creds::Assertion(jwt) => {
            pairs.push(("client_assertion_type", portcullis::issuer::JWT_BEARER));
            pairs.push(("client_assertion", jwt));
            post_form(h, path, None, &pairs).await
        }
    }
}

async fn introspect(h: &Harness, creds: Creds<'_>, token: &str) -> Value {
    let a = call_rs(h, INTROSPECT, creds, Some(token)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.headers.get("cache-control").map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    a.json()
}

const API_BASIC: Creds<'static> = Creds::Basic("api-rs", API_RS_SECRET);
const API_POST: Creds<'static> = Creds::Post("api-rs", API_RS_SECRET);
const OTHER_BASIC: Creds<'static> = Creds::Basic("other-rs", OTHER_RS_SECRET);

#[tokio::test]
async fn introspection_of_an_active_token() {
    let h = start_default().await;
    let token = basic_token(&h, &[("scope", "read write")]).await;
    let jti = jwt_part(&token, 1)["jti"].clone();
    for creds in [API_BASIC, API_POST] {
        let v = introspect(&h, creds, &token).await;
        assert_eq!(v["active"], true, "{v}");
        assert_eq!(v["client_id"], "basic-client");
        assert_eq!(v["sub"], "basic-client");
        assert_eq!(v["iss"], ISS);
        assert_eq!(v["aud"], API_AUD);
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["scope"], "read write");
        assert_eq!(v["iat"], NOW);
        assert_eq!(v["exp"], NOW + API_TTL);
        assert_eq!(v["jti"], jti);
    }
    // A token meant for the other resource server is not active for this one.
    let foreign = basic_token(&h, &[("resource", OTHER_AUD)]).await;
    assert_eq!(introspect(&h, API_BASIC, &foreign).await, json!({ "active": false }));
    assert_eq!(introspect(&h, OTHER_BASIC, &foreign).await["active"], true);
    assert_eq!(introspect(&h, OTHER_BASIC, &token).await, json!({ "active": false }));
    // Garbage, and a well-formed token signed by a key of no realm.
    for junk in ["garbage", "a.b.c", "a.b.c.d.e"] {
        assert_eq!(
            introspect(&h, API_BASIC, junk).await,
            json!({ "active": false }),
            "{junk}"
        );
    }
    let mut c = jwt_part(&token, 1);
    c["jti"] = json!("forged");
    let forged = keys().intruder.sign(&c);
    assert_eq!(introspect(&h, API_POST, &forged).await, json!({ "active": false }));
    // Expiry follows the (manual) clock, with the realm's leeway.
    h.clock.advance(API_TTL + LEEWAY - 1);
    assert_eq!(introspect(&h, API_BASIC, &token).await["active"], true);
    h.clock.advance(1);
    assert_eq!(introspect(&h, API_BASIC, &token).await, json!({ "active": false }));
    assert_eq!(introspect(&h, API_POST, &token).await, json!({ "active": false }));
}

#[tokio::test]
async fn introspection_shows_only_the_asking_servers_scopes() {
    // With scope_source = "any_resource_server", a token for api may carry other's scopes.
    let h = start("", "any_resource_server").await;
    let a = token_basic(
        &h,
        "basic-client",
        BASIC_SECRET,
        &[("resource", API_AUD), ("scope", "read o:read")],
    )
    .await;
    let token = access_token(&a);
    assert_eq!(jwt_part(&token, 1)["scope"], "read o:read");
    assert_eq!(jwt_part(&token, 1)["aud"], API_AUD);
    let v = introspect(&h, API_BASIC, &token).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["scope"], "read", "only api's scopes: {v}");
    // Nothing of api's at all: no scope member.
    let a = token_basic(
        &h,
        "basic-client",
        BASIC_SECRET,
        &[("resource", API_AUD), ("scope", "o:read")],
    )
    .await;
    let token = access_token(&a);
    let v = introspect(&h, API_POST, &token).await;
    assert_eq!(v["active"], true, "{v}");
    assert!(v.get("scope").is_none(), "{v}");
    // Still active false for the server the scope belongs to: the token is not for it.
    assert_eq!(introspect(&h, OTHER_BASIC, &token).await, json!({ "active": false }));
}

#[tokio::test]
async fn introspection_authentication_and_request_errors() {
    let h = start_default().await;
    let token = basic_token(&h, &[]).await;
    // Wrong secret, basic: 401 with a Basic challenge.
    let a = call_rs(&h, INTROSPECT, Creds::Basic("api-rs", "wrong"), Some(&token)).await;
    assert_invalid_client(&a, "wrong RS secret (basic)");
    assert!(a.challenge().starts_with("Basic"), "{}", a.challenge());
    assert!(a.json().get("active").is_none());
    // Wrong secret, post.
    let a = call_rs(&h, INTROSPECT, Creds::Post("api-rs", "wrong"), Some(&token)).await;
    assert_invalid_client(&a, "wrong RS secret (post)");
    // Another resource server's secret under this one's id.
    let a = call_rs(&h, INTROSPECT, Creds::Basic("api-rs", OTHER_RS_SECRET), Some(&token)).await;
    assert_invalid_client(&a, "other RS's secret");
    // A client's (correct) credentials are not a resource server's.
    let a = call_rs(&h, INTROSPECT, Creds::Basic("basic-client", BASIC_SECRET), Some(&token)).await;
    assert_invalid_client(&a, "client credentials (basic)");
    let a = call_rs(&h, INTROSPECT, Creds::Post("post-client", POST_SECRET), Some(&token)).await;
    assert_invalid_client(&a, "client credentials (post)");
    // The resource server's id (not its client_id) is no credential either.
    let a = call_rs(&h, INTROSPECT, Creds::Basic("api", API_RS_SECRET), Some(&token)).await;
    assert_invalid_client(&a, "RS id instead of client_id");
    // A client assertion is no resource-server credential.
    let jwt = assert_with(&keys().client_es, &assertion_claims("jwt-es", "in1"));
    let a = call_rs(&h, INTROSPECT, Creds::Assertion(&jwt), Some(&token)).await;
    assert_invalid_client(&a, "assertion at introspection");
    // No credentials at all.
    let a = post_form(&h, INTROSPECT, None, &[("token", &token)]).await;
    assert_invalid_client(&a, "no credentials");
    // Missing token parameter.
    let a = call_rs(&h, INTROSPECT, API_BASIC, None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.error(), "invalid_request");
    // GET is not allowed.
    let a = h
        .send(
            Method::GET,
            INTROSPECT,
            &[("authorization", &basic("api-rs", API_RS_SECRET))],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    // The right credentials still work.
    assert_eq!(introspect(&h, API_BASIC, &token).await["active"], true);
}

// ---------------------------------------------------------------------------------------
// Revocation (RFC 7009)

fn claims_of(token: &str) -> Claims {
    let part = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap();
    Claims::parse(&bytes).unwrap()
}

fn is_revoked(h: &Harness, token: &str) -> bool {
    h.gateway
        .verifier()
        .revocations()
        .is_revoked(&RevocationKey::of("t", &claims_of(token), token))
}

async fn revoke(h: &Harness, creds: Creds<'_>, token: &str) {
    let a = call_rs(h, REVOKE, creds, Some(token)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.is_empty(), "{}", a.body);
}

#[tokio::test]
async fn revoked_token_is_refused_at_once() {
    let h = start_default().await;
    let t1 = basic_token(&h, &[]).await;
    let t2 = basic_token(&h, &[]).await;
    assert_ne!(t1, t2);
    // Both work, and t1 is now in the gateway's token cache.
    assert_eq!(h.get("/items/1", &t1).await.status, StatusCode::OK);
    assert_eq!(h.get("/items/1", &t1).await.status, StatusCode::OK);
    assert_eq!(h.get("/items/2", &t2).await.status, StatusCode::OK);
    assert!(h.gateway.verifier().revocations().never_used());
    assert_eq!(h.upstream.hits(), 3);

    revoke(&h, API_BASIC, &t1).await;
    assert!(is_revoked(&h, &t1));
    assert!(!is_revoked(&h, &t2));
    // Refused at once, cached or not.
    let a = h.get("/items/1", &t1).await;
    assert_invalid_token(&a, "revoked");
    assert_eq!(h.upstream.hits(), 3);
    assert_eq!(introspect(&h, API_BASIC, &t1).await, json!({ "active": false }));
    // Revoking again is fine and changes nothing.
    revoke(&h, API_POST, &t1).await;
    assert_eq!(h.get("/items/1", &t1).await.status, StatusCode::UNAUTHORIZED);
    // The client's other token still works.
    assert_eq!(h.get("/items/2", &t2).await.status, StatusCode::OK);
    assert_eq!(introspect(&h, API_BASIC, &t2).await["active"], true);
    // The client can still get new tokens.
    let t3 = basic_token(&h, &[]).await;
    assert_eq!(h.get("/items/3", &t3).await.status, StatusCode::OK);

    // Revoking garbage: 200, nothing happens.
    revoke(&h, API_BASIC, "garbage").await;
    revoke(&h, API_BASIC, "a.b.c").await;
    // Another resource server revoking a token for api's audience: refused, no effect.
    let a = call_rs(&h, REVOKE, OTHER_BASIC, Some(&t2)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(!is_revoked(&h, &t2));
    assert_eq!(h.get("/items/2", &t2).await.status, StatusCode::OK);
    assert_eq!(introspect(&h, API_BASIC, &t2).await["active"], true);
    // Revocation needs the caller's credentials, and a token.
    let a = call_rs(&h, REVOKE, Creds::Basic("api-rs", "wrong"), Some(&t2)).await;
    assert_invalid_client(&a, "wrong RS secret at revocation");
    let a = call_rs(&h, REVOKE, Creds::Basic("basic-client", "wrong"), Some(&t2)).await;
    assert_invalid_client(&a, "wrong client secret at revocation");
    let a = call_rs(&h, REVOKE, API_BASIC, None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.error(), "invalid_request");
    assert_eq!(h.get("/items/2", &t2).await.status, StatusCode::OK);

    // Past exp + leeway every token of the lot is refused as expired; nothing panics.
    h.clock.advance(API_TTL + LEEWAY);
    for t in [&t1, &t2, &t3] {
        let a = h.get("/items/1", t).await;
        assert_invalid_token(&a, "past exp + leeway");
        assert_eq!(introspect(&h, API_BASIC, t).await, json!({ "active": false }));
    }
}

#[tokio::test]
async fn revocation_is_kept_only_while_the_token_could_be_accepted() {
    let h = start_default().await;
    let t1 = basic_token(&h, &[]).await;
    let t2 = basic_token(&h, &[]).await;
    // At exp + leeway the token is dead anyway: revoking it records nothing.
    h.clock.advance(API_TTL + LEEWAY);
    revoke(&h, API_BASIC, &t1).await;
    assert!(h.gateway.verifier().revocations().never_used());
    assert!(!is_revoked(&h, &t1));
    assert_eq!(h.get("/items/1", &t1).await.status, StatusCode::UNAUTHORIZED);
    // One second earlier, within the leeway, the gateway still accepts it; revoking it then
    // is recorded and refuses it.
    h.clock.advance(-1);
    assert_eq!(h.get("/items/2", &t2).await.status, StatusCode::OK);
    revoke(&h, API_BASIC, &t2).await;
    assert!(!h.gateway.verifier().revocations().never_used());
    assert!(is_revoked(&h, &t2));
    let a = h.get("/items/2", &t2).await;
    assert_invalid_token(&a, "revoked within the leeway");
}

// ---------------------------------------------------------------------------------------
// Who may revoke (RFC 7009 § 2.1)

/// The revocation endpoint's URL: an assertion's `aud` there.
const REVOKE_AUD: &str = "http://127.0.0.1/realms/t/revoke";

/// A token request with `client_secret_post`.
async fn post_token(h: &Harness, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", "post-client"),
        ("client_secret", POST_SECRET),
    ];
    pairs.extend_from_slice(extra);
    access_token(&post_form(h, TOKEN, None, &pairs).await)
}

#[track_caller]
fn assert_revoked_ok(a: &Answer, why: &str) {
    assert_eq!(a.status, StatusCode::OK, "{why}: {}", a.body);
    assert!(a.body.is_empty(), "{why}: {}", a.body);
}

#[tokio::test]
async fn a_client_may_revoke_its_own_token() {
    let h = start_default().await;
    let k = keys();
    // client_secret_basic, with the usual hint.
    let t1 = basic_token(&h, &[]).await;
    assert_eq!(h.get("/items/1", &t1).await.status, StatusCode::OK);
    let a = post_form(
        &h,
        REVOKE,
        Some(&basic("basic-client", BASIC_SECRET)),
        &[("token", &t1), ("token_type_hint", "access_token")],
    )
    .await;
    assert_revoked_ok(&a, "basic");
    assert_eq!(h.get("/items/1", &t1).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(introspect(&h, API_BASIC, &t1).await, json!({ "active": false }));
    // client_secret_post.
    let t2 = post_token(&h, &[]).await;
    let a = post_form(
        &h,
        REVOKE,
        None,
        &[
            ("token", &t2),
            ("client_id", "post-client"),
            ("client_secret", POST_SECRET),
        ],
    )
    .await;
    assert_revoked_ok(&a, "post");
    assert_eq!(h.get("/items/2", &t2).await.status, StatusCode::UNAUTHORIZED);
    // private_key_jwt, the assertion addressed to the revocation endpoint, then to the issuer.
    for (i, aud) in [REVOKE_AUD, ISS].into_iter().enumerate() {
        let jwt = assert_with(&k.client_es, &assertion_claims("jwt-es", &format!("rv-tok-{i}")));
        let t3 = access_token(&token_assertion(&h, &jwt, &[]).await);
        let mut claims = assertion_claims("jwt-es", &format!("rv-{i}"));
        claims["aud"] = json!(aud);
        let a = call_rs(
            &h,
            REVOKE,
            Creds::Assertion(&assert_with(&k.client_es, &claims)),
            Some(&t3),
        )
        .await;
        assert_revoked_ok(&a, aud);
        assert_eq!(h.get("/items/3", &t3).await.status, StatusCode::UNAUTHORIZED, "{aud}");
    }
    // A token for the other resource server, revoked by the client it was issued to.
    let t4 = basic_token(&h, &[("resource", OTHER_AUD)]).await;
    assert_eq!(h.get("/other/x", &t4).await.status, StatusCode::OK);
    let a = call_rs(&h, REVOKE, Creds::Basic("basic-client", BASIC_SECRET), Some(&t4)).await;
    assert_revoked_ok(&a, "other audience");
    assert_eq!(h.get("/other/x", &t4).await.status, StatusCode::UNAUTHORIZED);
    // The client's other tokens are untouched, and it still gets new ones.
    let t5 = basic_token(&h, &[]).await;
    assert_eq!(h.get("/items/5", &t5).await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoking_another_partys_token_is_refused() {
    let h = start_default().await;
    let api_token = basic_token(&h, &[]).await;
    let refused = |a: &Answer, why: &str| {
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{why}: {}", a.body);
        assert_eq!(a.error(), "unauthorized_client", "{why}: {}", a.body);
    };
    // Another resource server: the token is not for its audience.
    refused(
        &call_rs(&h, REVOKE, OTHER_BASIC, Some(&api_token)).await,
        "other resource server",
    );
    // Another client: the token was not issued to it.
    refused(
        &call_rs(&h, REVOKE, Creds::Post("post-client", POST_SECRET), Some(&api_token)).await,
        "another client",
    );
    let jwt = assert_with(&keys().client_es, &assertion_claims("jwt-es", "rv-x"));
    let a = call_rs(&h, REVOKE, Creds::Assertion(&jwt), Some(&api_token)).await;
    refused(&a, "another client with an assertion");
    // Nothing was revoked.
    assert_eq!(h.get("/items/1", &api_token).await.status, StatusCode::OK);
    assert_eq!(introspect(&h, API_BASIC, &api_token).await["active"], true);
    // Invalid tokens are answered as revoked whoever asks (RFC 7009 § 2.2).
    for creds in [OTHER_BASIC, Creds::Post("post-client", POST_SECRET)] {
        revoke(&h, creds, "garbage").await;
    }
    // The resource server the token is for may revoke it.
    revoke(&h, API_BASIC, &api_token).await;
    assert_eq!(h.get("/items/1", &api_token).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oauth2_crate_client_revokes_its_own_token() {
    let h = start_default().await;
    let hc = client();
    let http = move |req: oauth2::HttpRequest| oauth2_http(hc.clone(), req);
    let revocation_url = RevocationUrl::new(h.url(REVOKE).replacen("http://", "https://", 1)).unwrap();
    for (id, secret, auth, token) in [
        (
            "basic-client",
            BASIC_SECRET,
            AuthType::BasicAuth,
            basic_token(&h, &[]).await,
        ),
        (
            "post-client",
            POST_SECRET,
            AuthType::RequestBody,
            post_token(&h, &[]).await,
        ),
    ] {
        assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK, "{id}");
        let oc = BasicClient::new(ClientId::new(id.to_owned()))
            .set_client_secret(ClientSecret::new(secret.to_owned()))
            .set_auth_type(auth)
            .set_revocation_url(revocation_url.clone());
        oc.revoke_token(StandardRevocableToken::AccessToken(AccessToken::new(token.clone())))
            .unwrap_or_else(|e| panic!("{id}: {e:?}"))
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{id}: revoke: {e:?}"));
        assert_eq!(h.get("/items/1", &token).await.status, StatusCode::UNAUTHORIZED, "{id}");
    }
}

// ---------------------------------------------------------------------------------------
// Error answers clients read

#[tokio::test]
async fn a_failed_basic_authentication_challenge_names_the_error() {
    let h = start_default().await;
    let token = basic_token(&h, &[]).await;
    let want = r#"Basic realm="t", error="invalid_client""#;
    let a = token_basic(&h, "basic-client", "wrong", &[]).await;
    assert_invalid_client(&a, "token");
    assert_eq!(a.challenge(), want);
    for path in [INTROSPECT, REVOKE] {
        let a = call_rs(&h, path, Creds::Basic("api-rs", "wrong"), Some(&token)).await;
        assert_invalid_client(&a, path);
        assert_eq!(a.challenge(), want, "{path}");
    }
    // Not Basic: no Basic challenge.
    let a = call_rs(&h, INTROSPECT, Creds::Post("api-rs", "wrong"), Some(&token)).await;
    assert_invalid_client(&a, "post");
    assert!(a.headers.get("www-authenticate").is_none(), "{:?}", a.headers);
}

#[tokio::test]
async fn a_body_client_id_must_name_the_basic_client() {
    let h = start_default().await;
    let auth = basic("basic-client", BASIC_SECRET);
    // Another client's id beside the Basic credentials.
    for other in ["post-client", "nobody"] {
        let a = post_form(
            &h,
            TOKEN,
            Some(&auth),
            &[("grant_type", "client_credentials"), ("client_id", other)],
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{other}: {}", a.body);
        assert_eq!(a.error(), "invalid_request", "{other}");
        assert!(a.json().get("access_token").is_none());
    }
    // The same id is fine.
    access_token(
        &post_form(
            &h,
            TOKEN,
            Some(&auth),
            &[("grant_type", "client_credentials"), ("client_id", "basic-client")],
        )
        .await,
    );
    // Also at introspection and revocation.
    let token = basic_token(&h, &[]).await;
    for path in [INTROSPECT, REVOKE] {
        let a = post_form(
            &h,
            path,
            Some(&basic("api-rs", API_RS_SECRET)),
            &[("token", &token), ("client_id", "other-rs")],
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.body);
        assert_eq!(a.error(), "invalid_request", "{path}");
    }
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn client_secret_jwt_says_when_the_secret_is_too_short_for_the_alg() {
    let Ok(secret) = std::env::var(HMAC_ENV) else {
        rerun_with_env(
            "client_secret_jwt_says_when_the_secret_is_too_short_for_the_alg",
            HMAC_ENV,
            HMAC_SECRET,
        );
        return;
    };
    let h = start(HMAC_CLIENT, "target").await;
    assert_eq!(secret.len(), 40, "the test secret is long enough for HS256 only");
    // The realm advertises every HMAC alg.
    let meta = h
        .send(Method::GET, "/.well-known/oauth-authorization-server/realms/t", &[], "")
        .await
        .json();
    let algs = meta["token_endpoint_auth_signing_alg_values_supported"].to_string();
    assert!(algs.contains("HS384") && algs.contains("HS512"), "{algs}");
    for (alg, name, min) in [(Algorithm::HS384, "HS384", 48), (Algorithm::HS512, "HS512", 64)] {
        // Signed with the right secret: refused, saying why.
        let jwt = hmac_assertion(
            secret.as_bytes(),
            alg,
            name,
            &assertion_claims("hmac-client", &format!("short-{name}")),
        );
        let a = token_assertion(&h, &jwt, &[]).await;
        assert_invalid_client(&a, name);
        let why = a.json()["error_description"].as_str().unwrap_or_default().to_owned();
        assert!(
            why.contains(name) && why.contains(&format!("at least {min} bytes")) && why.contains("HS256"),
            "{name}: {why}"
        );
        // Signed with a wrong secret: the generic refusal, telling nothing of the secret.
        let wrong = format!("{secret}-but-wrong-and-longer-than-sixty-four-bytes-0123456789");
        let jwt = hmac_assertion(
            wrong.as_bytes(),
            alg,
            name,
            &assertion_claims("hmac-client", &format!("wrong-{name}")),
        );
        let a = token_assertion(&h, &jwt, &[]).await;
        assert_invalid_client(&a, name);
        assert_eq!(
            a.json()["error_description"],
            "the client assertion is invalid",
            "{name}"
        );
    }
    // The refusals used no jti: the same jti signed with HS256 works.
    let jwt = hmac_assertion(
        secret.as_bytes(),
        Algorithm::HS256,
        "HS256",
        &assertion_claims("hmac-client", "short-HS512"),
    );
    access_token(&token_assertion(&h, &jwt, &[]).await);
}

#[tokio::test]
async fn client_credentials_auth_time_is_when_the_client_authenticated() {
    let fresh = r#"
[[protected_resource]]
id = "fresh"
resource_server = "api"
methods = ["GET"]
paths = ["/fresh"]
scopes = ["read"]
max_age = "5m"
"#;
    let h = start(fresh, "target").await;
    let token = basic_token(&h, &[]).await;
    let c = jwt_part(&token, 1);
    assert_eq!(c["auth_time"], c["iat"], "{c}");
    assert_eq!(h.get("/fresh", &token).await.status, StatusCode::OK);
    // Past max_age (the token itself still valid): the client must authenticate again.
    h.clock.advance(301);
    let a = h.get("/fresh", &token).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(
        a.challenge().contains("insufficient_user_authentication"),
        "{}",
        a.challenge()
    );
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
    let again = basic_token(&h, &[]).await;
    assert_eq!(jwt_part(&again, 1)["auth_time"], NOW + 301);
    assert_eq!(h.get("/fresh", &again).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// State in the store: restarts, replicas, an unreachable store.

/// The realm's store record of `token`'s revocation: its key and until when.
fn store_revocation(token: &str) -> ([u8; 32], i64) {
    let c = claims_of(token);
    let exp = c.exp.expect("exp");
    (*RevocationKey::of("t", &c, token).as_bytes(), exp + LEEWAY)
}

#[tokio::test]
async fn a_revocation_survives_a_restart() {
    let mut h = start_default().await;
    let t = basic_token(&h, &[]).await;
    assert_eq!(h.get("/items/1", &t).await.status, StatusCode::OK);
    revoke(&h, API_BASIC, &t).await;
    h.restart().await;
    assert!(is_revoked(&h, &t), "loaded from the store at start");
    assert_invalid_token(&h.get("/items/1", &t).await, "revoked");
    // And an assertion jti stays used.
    let jwt = es_assertion("restart-1", &|_| {});
    access_token(&token_assertion(&h, &jwt, &[]).await);
    h.restart().await;
    assert_invalid_client(&token_assertion(&h, &jwt, &[]).await, "replayed after a restart");
}

#[tokio::test]
async fn replicas_on_one_postgres_share_revocations_assertions_and_managed_entities() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    // `mgmt` may create protected resources through the Management API.
    let mgmt = r#"
[[client]]
client_id = "mgmt"
realm = "t"
token_endpoint_auth_method = "client_secret_post"
client_secret_hash = "{post_hash}"
scopes = ["create:protected_resources"]
"#;
    let a = start(&format!("{mgmt}\n[store]\nurl = \"{}\"\n", db.url), "target").await;
    let b = a.replica().await;
    let t = basic_token(&a, &[]).await;
    assert_eq!(
        b.get("/items/1", &t).await.status,
        StatusCode::OK,
        "B verified and cached it"
    );
    revoke(&a, API_BASIC, &t).await;
    eventually("B refuses the token A revoked", async || {
        b.get("/items/1", &t).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_invalid_token(&b.get("/items/1", &t).await, "revoked");

    let jwt = es_assertion("replicas-1", &|_| {});
    access_token(&token_assertion(&a, &jwt, &[]).await);
    assert_invalid_client(&token_assertion(&b, &jwt, &[]).await, "replayed on the other replica");

    // A protected resource created through A's Management API is enforced by both.
    let t2 = basic_token(&a, &[("scope", "read")]).await;
    assert_eq!(b.get("/managed/1", &t2).await.status, StatusCode::NOT_FOUND);
    let admin = access_token(
        &post_form(
            &a,
            TOKEN,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "mgmt"),
                ("client_secret", POST_SECRET),
                ("resource", "http://127.0.0.1:8080/api/v1/t"),
                ("scope", "create:protected_resources"),
            ],
        )
        .await,
    );
    let body = json!({
        "id": "managed", "resource_server": "api", "paths": ["/managed/**"], "scopes": ["write"],
    })
    .to_string();
    let created = a
        .send(
            Method::POST,
            "/api/v1/t/protected-resources",
            &[("authorization", &bearer(&admin)), ("content-type", "application/json")],
            &body,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    for h in [&a, &b] {
        eventually("the managed resource is enforced", async || h.has_resource("managed")).await;
        assert_insufficient_scope(&h.get("/managed/1", &t2).await, "write");
    }
    drop((a, b));
    db.drop().await;
}

#[tokio::test]
async fn an_unreachable_store_keeps_serving_refuses_writes_and_catches_up() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let target = db_addr(&db.url);
    let relay = Relay::start(target).await;
    let via_relay = db.url.replacen(&target.to_string(), &relay.addr.to_string(), 1);
    let h = start(
        &format!("\n[store]\nurl = \"{via_relay}\"\npoll_interval = \"200ms\"\n"),
        "target",
    )
    .await;
    let t1 = basic_token(&h, &[]).await;
    let t2 = basic_token(&h, &[]).await;
    assert_eq!(h.get("/items/1", &t1).await.status, StatusCode::OK);

    relay.cut().await;
    // Serving goes on: tokens are verified in memory, and issued without the store.
    assert_eq!(h.get("/items/1", &t1).await.status, StatusCode::OK);
    assert_eq!(h.get("/items/2", &t2).await.status, StatusCode::OK);
    access_token(&token_basic(&h, "basic-client", BASIC_SECRET, &[]).await);
    // A revocation is never kept in one process only: 503, and the token still works.
    let a = call_rs(&h, REVOKE, API_BASIC, Some(&t1)).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.error(), "temporarily_unavailable");
    assert!(!is_revoked(&h, &t1));
    // The replay check fails closed.
    let a = token_assertion(&h, &es_assertion("cut-1", &|_| {}), &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    // Meanwhile another replica (straight to the store) revokes t2.
    let direct = portcullis::store::Store::open(&db.url).await.unwrap();
    let (key, until) = store_revocation(&t2);
    direct.revoke("t", &key, until, "other-replica", NOW).await.unwrap();
    assert_eq!(
        h.get("/items/2", &t2).await.status,
        StatusCode::OK,
        "not seen while cut off"
    );

    relay.restore();
    eventually("catches up on t2's revocation", async || is_revoked(&h, &t2)).await;
    assert_invalid_token(&h.get("/items/2", &t2).await, "revoked");
    revoke(&h, API_BASIC, &t1).await;
    assert_invalid_token(&h.get("/items/1", &t1).await, "revoked");
    access_token(&token_assertion(&h, &es_assertion("cut-1", &|_| {}), &[]).await);
    drop((h, direct));
    db.drop().await;
}

/// The host:port of a `postgres://` URL.
fn db_addr(url: &str) -> std::net::SocketAddr {
    let after = url.split_once('@').map_or(url, |(_, rest)| rest);
    let after = after.strip_prefix("postgres://").unwrap_or(after);
    let host_port = after.split('/').next().unwrap_or(after);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&host_port)
        .unwrap()
        .next()
        .unwrap()
}
