//! Encrypted access tokens, end to end: the embedded issuer wraps its
//! RFC 9068 JWS in a compact JWE for a resource server that encrypts, and the gateway
//! decrypts, verifies and caches it. Seed 001's three tables, every refusal (all the same
//! `invalid_token`), the load-time checks, RFC 7520 § 5's published examples, and
//! interoperability with an independent JWE implementation written here on `aws-lc-rs`
//! primitives (RFC 7516 § 5.1 and § 5.2), each way.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use josekit::JoseError;
use josekit::jwe::{self as jose, JweDecrypter, JweEncrypter, JweHeader};
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::{Jwk, KeyPair as _};
use portcullis::token::jwe::JweKeys;
use portcullis::token::{Claims, Outer, TokenError};
use serde_json::{Map, Value, json};

use crate::support::*;

const ISS: &str = "http://127.0.0.1/realms/t";
const TOKEN_PATH: &str = "/realms/t/token";
const CLIENT: &str = "jwe-client";
const SECRET: &str = "jwe-Secret-2b7e41c9";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
/// The audience two resource servers share, so that only the encryption tells them apart.
const SEED_AUD: &str = "https://seed.test";
/// The audience resource servers `a` and `b` of the refusal tests share.
const SHARED_AUD: &str = "https://shared.test";

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

/// The realm's signing key (ES256, kid `sig-1`), shared by the whole binary.
fn signer() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::es256("sig-1"))
}

/// The argon2 hash of [`SECRET`], computed once.
fn secret_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| portcullis::issuer::hash_secret(SECRET).expect("hash"))
}

/// The content-encryption key length of `enc`, in bytes (RFC 7518 § 5.1).
fn cek_len(enc: &str) -> u8 {
    match enc {
        "A128GCM" => 16,
        "A192GCM" => 24,
        "A256GCM" | "A128CBC-HS256" => 32,
        "A192CBC-HS384" => 48,
        "A256CBC-HS512" => 64,
        other => panic!("no content algorithm {other}"),
    }
}

/// A fresh private encryption key for `key_alg` (and, for `dir`, sized for `enc`), with
/// `kid`, `use: enc` and `alg`.
fn enc_key(key_alg: &str, enc: &str, kid: &str) -> Jwk {
    let mut jwk = match key_alg {
        "RSA-OAEP" | "RSA-OAEP-256" | "RSA1_5" => Jwk::generate_rsa_key(2048),
        "ECDH-ES" | "ECDH-ES+A128KW" | "ECDH-ES+A256KW" => Jwk::generate_ec_key(EcCurve::P256),
        "A128KW" => Jwk::generate_oct_key(16),
        "A256KW" => Jwk::generate_oct_key(32),
        "dir" => Jwk::generate_oct_key(cek_len(enc)),
        other => panic!("no test key for {other}"),
    }
    .unwrap_or_else(|e| panic!("keygen {key_alg}: {e}"));
    jwk.set_key_id(kid);
    jwk.set_key_use("enc");
    jwk.set_algorithm(key_alg);
    jwk
}

fn to_map(jwk: &Jwk) -> Map<String, Value> {
    jwk.clone().into()
}

/// A JWKS document of `keys` as given (private keys stay private).
fn jwks(keys: &[&Jwk]) -> String {
    json!({ "keys": keys.iter().map(|k| Value::Object(to_map(k))).collect::<Vec<_>>() }).to_string()
}

/// The public half of an asymmetric key (a symmetric key is its own).
fn public(jwk: &Jwk) -> Jwk {
    if jwk.key_type() == "oct" {
        return jwk.clone();
    }
    let mut p = jwk.to_public_key().expect("public key");
    if let Some(kid) = jwk.key_id() {
        p.set_key_id(kid);
    }
    p
}

/// `jwk` without `kid` and `alg`, so josekit neither copies a kid into a header nor
/// refuses an algorithm the key is not labelled with: the tests choose both explicitly.
fn bare(jwk: &Jwk) -> Jwk {
    let mut m = to_map(jwk);
    m.remove("kid");
    m.remove("alg");
    Jwk::from_map(m).expect("jwk")
}

fn boxed_enc<E: JweEncrypter + 'static>(r: Result<E, JoseError>) -> Result<Box<dyn JweEncrypter>, JoseError> {
    r.map(|e| Box::new(e) as Box<dyn JweEncrypter>)
}

fn boxed_dec<D: JweDecrypter + 'static>(r: Result<D, JoseError>) -> Result<Box<dyn JweDecrypter>, JoseError> {
    r.map(|d| Box::new(d) as Box<dyn JweDecrypter>)
}

/// A josekit encrypter for `alg` (including the refused `RSA1_5`, to make attack tokens).
fn encrypter(alg: &str, key: &Jwk) -> Box<dyn JweEncrypter> {
    let key = bare(key);
    match alg {
        // Deprecated in josekit for the reason we refuse it; we need it to attack with.
        #[allow(deprecated)]
        "RSA1_5" => boxed_enc(jose::RSA1_5.encrypter_from_jwk(&key)),
        "RSA-OAEP" => boxed_enc(jose::RSA_OAEP.encrypter_from_jwk(&key)),
        "RSA-OAEP-256" => boxed_enc(jose::RSA_OAEP_256.encrypter_from_jwk(&key)),
        "ECDH-ES" => boxed_enc(jose::ECDH_ES.encrypter_from_jwk(&key)),
        "ECDH-ES+A128KW" => boxed_enc(jose::ECDH_ES_A128KW.encrypter_from_jwk(&key)),
        "ECDH-ES+A256KW" => boxed_enc(jose::ECDH_ES_A256KW.encrypter_from_jwk(&key)),
        "A128KW" => boxed_enc(jose::A128KW.encrypter_from_jwk(&key)),
        "A256KW" => boxed_enc(jose::A256KW.encrypter_from_jwk(&key)),
        "dir" => boxed_enc(jose::Dir.encrypter_from_jwk(&key)),
        other => panic!("no encrypter for {other}"),
    }
    .unwrap_or_else(|e| panic!("{alg} encrypter: {e}"))
}

/// A josekit decrypter for `alg` that ignores `kid`: whether it opens a token depends on
/// the key material alone.
fn decrypter(alg: &str, key: &Jwk) -> Box<dyn JweDecrypter> {
    let key = bare(key);
    match alg {
        // To show RFC 7520 § 5.1 is a valid example we still refuse.
        #[allow(deprecated)]
        "RSA1_5" => boxed_dec(jose::RSA1_5.decrypter_from_jwk(&key)),
        "RSA-OAEP" => boxed_dec(jose::RSA_OAEP.decrypter_from_jwk(&key)),
        "RSA-OAEP-256" => boxed_dec(jose::RSA_OAEP_256.decrypter_from_jwk(&key)),
        "ECDH-ES" => boxed_dec(jose::ECDH_ES.decrypter_from_jwk(&key)),
        "ECDH-ES+A128KW" => boxed_dec(jose::ECDH_ES_A128KW.decrypter_from_jwk(&key)),
        "ECDH-ES+A256KW" => boxed_dec(jose::ECDH_ES_A256KW.decrypter_from_jwk(&key)),
        "A128KW" => boxed_dec(jose::A128KW.decrypter_from_jwk(&key)),
        "A256KW" => boxed_dec(jose::A256KW.decrypter_from_jwk(&key)),
        "dir" => boxed_dec(jose::Dir.decrypter_from_jwk(&key)),
        other => panic!("no decrypter for {other}"),
    }
    .unwrap_or_else(|e| panic!("{alg} decrypter: {e}"))
}

/// A JWE header with `enc`, `cty: JWT` and, if given, `kid`.
fn jwe_header(enc: &str, kid: Option<&str>) -> JweHeader {
    let mut h = JweHeader::new();
    h.set_content_encryption(enc);
    h.set_content_type("JWT");
    if let Some(kid) = kid {
        h.set_key_id(kid);
    }
    h
}

/// Encrypts `content` with josekit to (the public half of) `key` under `alg`.
fn seal(content: &str, header: &JweHeader, alg: &str, key: &Jwk) -> String {
    let enc = encrypter(alg, &public(key));
    jose::serialize_compact(content.as_bytes(), header, enc.as_ref()).unwrap_or_else(|e| panic!("seal {alg}: {e}"))
}

/// Decrypts `token` with josekit and `key` (kid ignored).
fn open(token: &str, alg: &str, key: &Jwk) -> Result<Vec<u8>, String> {
    let d = decrypter(alg, key);
    jose::deserialize_compact(token, d.as_ref())
        .map(|(content, _)| content)
        .map_err(|e| e.to_string())
}

/// Which of the named `keys` (all for `alg`) open `token`.
fn openers(token: &str, alg: &str, keys: &[(&str, &Jwk)]) -> Vec<String> {
    keys.iter()
        .filter(|(_, k)| open(token, alg, k).is_ok())
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("base64url {s:?}: {e}"))
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("JSON: {e}: {}", String::from_utf8_lossy(bytes)))
}

/// The five parts of a compact JWE.
fn jwe_parts(token: &str) -> Vec<&str> {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 5, "not a compact JWE: {token}");
    parts
}

/// The protected header of a compact JWE.
fn protected(token: &str) -> Value {
    json_of(&b64d(jwe_parts(token)[0]))
}

/// The header and claims of a compact JWS, unverified.
fn jws_parts(jws: &str) -> (Value, Value) {
    (jwt_part(jws, 0), jwt_part(jws, 1))
}

/// Valid inner claims for audience `aud` at `NOW`, as the realm's issuer.
fn inner_claims(aud: &str) -> Value {
    json!({
        "iss": ISS,
        "sub": CLIENT,
        "client_id": CLIENT,
        "aud": aud,
        "scope": "read",
        "iat": NOW,
        "exp": NOW + 300,
        "auth_time": NOW,
        "jti": "jwe-1",
    })
}

/// Flips the low bit of the first byte of part `i` of a compact serialization.
fn tamper(token: &str, i: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut bytes = b64d(&parts[i]);
    assert!(!bytes.is_empty(), "part {i} is empty");
    bytes[0] ^= 1;
    parts[i] = URL_SAFE_NO_PAD.encode(bytes);
    parts.join(".")
}

// ---------------------------------------------------------------------------------------
// Configuration and the gateway
// ---------------------------------------------------------------------------------------

/// Realm `t`: issues with [`signer`] (and so verifies with it); `extra` lines appended.
fn realm_toml(extra: &str) -> String {
    format!(
        r#"
[[realm]]
name = "t"
issuer = "{ISS}"
algorithms = ["ES256"]
signing_keys = "signing.json"
{extra}
"#
    )
}

/// The one client, `client_secret_basic`.
fn client_toml() -> String {
    format!(
        r#"
[[client]]
client_id = "{CLIENT}"
realm = "t"
token_endpoint_auth_method = "client_secret_basic"
client_secret_hash = "{}"
"#,
        secret_hash()
    )
}

/// Resource server `id` of realm `t` with audience `aud`, `scopes` and `extra` lines, and
/// one protected resource over `/<id in lower case>/**`.
fn rs_toml(id: &str, aud: &str, scopes: &[&str], extra: &str) -> String {
    let scopes = scopes.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let path = id.to_lowercase();
    format!(
        r#"
[[resource_server]]
id = "{id}"
realm = "t"
audience = "{aud}"
upstream = "http://{{upstream}}"
scopes = [{scopes}]
{extra}

[[protected_resource]]
id = "{id}-all"
resource_server = "{id}"
paths = ["/{path}/**"]
"#
    )
}

/// `encryption = "resource_server"` with its key file and algorithms.
fn own_keys(file: &str, key_alg: &str, content_alg: &str) -> String {
    format!(
        "encryption = \"resource_server\"\nencryption_jwks_file = \"{file}\"\nkey_alg = \"{key_alg}\"\ncontent_alg = \"{content_alg}\""
    )
}

/// `encryption = "realm"` with RSA-OAEP-256 + A256GCM.
const REALM_KEYS: &str = "encryption = \"realm\"\nkey_alg = \"RSA-OAEP-256\"\ncontent_alg = \"A256GCM\"";

/// Starts the gateway on `config` (`{upstream}` filled in) with [`signer`] in
/// `signing.json` and `files` beside it.
async fn start(config: &str, files: &[(String, String)]) -> Harness {
    let mut builder = Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[signer()]))
        .key(signer().clone());
    for (name, text) in files {
        builder = builder.file(name, text);
    }
    builder.start().await
}

/// A `client_credentials` token request with `params`.
async fn issue(h: &Harness, params: &[(&str, &str)]) -> Answer {
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend_from_slice(params);
    let auth = basic(CLIENT, SECRET);
    h.send(
        Method::POST,
        TOKEN_PATH,
        &[FORM, ("authorization", auth.as_str())],
        &form(&pairs),
    )
    .await
}

/// The verified-token cache entry of `token` for resource server `rs_id`, exactly as the
/// gateway looks it up.
fn cached(h: &Harness, rs_id: &str, token: &str) -> Option<Arc<Claims>> {
    let v = h.gateway.verifier();
    let snap = v.snapshot();
    let (i, _) = snap.resource_server(rs_id)?;
    v.cached(&snap, i, token)
}

/// `portcullis::token::verify` for `rs_id`'s route, with the gateway's cache and realm
/// keys but `jwe` as the outer-layer keys.
async fn verify_with(h: &Harness, rs_id: &str, token: &str, jwe: &JweKeys) -> Result<Arc<Claims>, TokenError> {
    let v = h.gateway.verifier();
    let snap = v.snapshot();
    let (i, _) = snap
        .resource_server(rs_id)
        .unwrap_or_else(|| panic!("no resource server {rs_id}"));
    let judge = snap.judge(i).unwrap_or_else(|| panic!("no judge for {rs_id}"));
    assert!(judge.outer.is_some(), "{rs_id} does not encrypt");
    let judge = portcullis::token::Judge {
        outer: Some(Outer { keys: jwe }),
        ..judge
    };
    portcullis::token::verify(token, &judge, v.cache()).await
}

fn jwe_keys(doc: &str, alg: &str, enc: &str) -> JweKeys {
    JweKeys::from_jwks(doc.as_bytes(), alg, enc)
        .unwrap_or_else(|e| panic!("{alg}/{enc}: {e}"))
        .0
}

// ---------------------------------------------------------------------------------------
// 1. Every key-management algorithm, issuer to gateway
// ---------------------------------------------------------------------------------------

/// Every key-management algorithm once, and every content algorithm at least once.
const PAIRS: [(&str, &str); 8] = [
    ("RSA-OAEP", "A256GCM"),
    ("RSA-OAEP-256", "A128CBC-HS256"),
    ("ECDH-ES", "A256GCM"),
    ("ECDH-ES+A128KW", "A128GCM"),
    ("ECDH-ES+A256KW", "A256CBC-HS512"),
    ("A128KW", "A192GCM"),
    ("A256KW", "A192CBC-HS384"),
    ("dir", "A128CBC-HS256"),
];

#[tokio::test]
async fn issuer_encrypts_and_gateway_decrypts_every_key_management_algorithm() {
    let realm_key = enc_key("RSA-OAEP-256", "A256GCM", "realm-enc");
    let mut files = vec![("realm-enc.json".to_owned(), jwks(&[&realm_key]))];
    let mut config = realm_toml("decryption_keys = \"realm-enc.json\"") + &client_toml();
    // (resource server, kid, key_alg, content_alg, private key)
    let mut servers: Vec<(String, String, &str, &str, Jwk)> = Vec::new();
    for (i, (alg, enc)) in PAIRS.iter().enumerate() {
        let id = format!("rs{i}");
        let kid = format!("{id}-enc");
        let key = enc_key(alg, enc, &kid);
        let file = format!("{id}.enc.json");
        files.push((file.clone(), jwks(&[&key])));
        config += &rs_toml(
            &id,
            &format!("https://{id}.test"),
            &["read"],
            &own_keys(&file, alg, enc),
        );
        servers.push((id, kid, alg, enc, key));
    }
    // And one encrypting to the realm's key.
    config += &rs_toml("viarealm", "https://viarealm.test", &["read"], REALM_KEYS);
    servers.push((
        "viarealm".to_owned(),
        "realm-enc".to_owned(),
        "RSA-OAEP-256",
        "A256GCM",
        realm_key.clone(),
    ));
    let h = start(&config, &files).await;

    for (id, kid, alg, enc, key) in &servers {
        let what = format!("{id} ({alg} + {enc})");
        let token = access_token(&issue(&h, &[("resourceServer", id), ("scope", "read")]).await);
        // The issuer's answer: a compact JWE (five parts) with the configured algorithms,
        // `cty: JWT` (RFC 7519 § 5.2) and the kid of the key it used.
        let parts = jwe_parts(&token);
        let hd = protected(&token);
        assert_eq!(hd["alg"], *alg, "{what}: {hd}");
        assert_eq!(hd["enc"], *enc, "{what}: {hd}");
        assert_eq!(hd["cty"], "JWT", "{what}: {hd}");
        assert_eq!(hd["kid"], kid.as_str(), "{what}: {hd}");
        assert!(hd.get("zip").is_none(), "{what}: {hd}");
        // Direct key agreement and `dir` carry no encrypted key (RFC 7516 § 5.1 step 5).
        assert_eq!(parts[1].is_empty(), matches!(*alg, "dir" | "ECDH-ES"), "{what}");
        assert_eq!(hd["epk"].is_object(), alg.starts_with("ECDH-ES"), "{what}: {hd}");
        // Its content is the issuer's signed RFC 9068 token, and our key opens it.
        let inner = open(&token, alg, key).unwrap_or_else(|e| panic!("{what}: {e}"));
        let inner = String::from_utf8(inner).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (ih, ic) = jws_parts(&inner);
        assert_eq!(ih["typ"], "at+jwt", "{what}");
        assert_eq!(ih["alg"], "ES256", "{what}");
        assert_eq!(ih["kid"], "sig-1", "{what}");
        assert_eq!(ic["aud"], format!("https://{id}.test"), "{what}");
        assert_eq!(ic["iss"], ISS, "{what}");
        assert_eq!(ic["scope"], "read", "{what}");

        // Keys of the same algorithm and kid but other material cannot open it.
        let decoy = jwe_keys(&jwks(&[&enc_key(alg, enc, kid)]), alg, enc);
        assert!(cached(&h, id, &token).is_none(), "{what}");
        assert!(
            verify_with(&h, id, &token, &decoy).await.is_err(),
            "{what}: decoy keys opened the token"
        );

        // The gateway accepts it and reaches the upstream.
        let hits = h.upstream.hits();
        let a = h.get(&format!("/{id}/x"), &token).await;
        assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.body);
        assert_eq!(h.upstream.hits(), hits + 1, "{what}");

        // It is now in the verified-token cache, under this resource server's tag...
        let entry = cached(&h, id, &token).unwrap_or_else(|| panic!("{what}: not cached"));
        assert_eq!(
            entry.aud().collect::<Vec<_>>(),
            vec![format!("https://{id}.test")],
            "{what}"
        );
        // ...and a cache hit costs no decryption: the very same claims come back (a fresh
        // decryption would build new ones). Only these keys' verdicts answer: the decoy,
        // another key set, is a miss and cannot open it.
        let v = h.gateway.verifier();
        let snap = v.snapshot();
        let (i, _) = snap.resource_server(id).unwrap_or_else(|| panic!("no {id}"));
        let again = v
            .verify_for(&snap, i, &token)
            .await
            .unwrap_or_else(|e| panic!("{what}: not served from the cache: {e}"));
        assert!(Arc::ptr_eq(&entry, &again), "{what}");
        assert!(verify_with(&h, id, &token, &decoy).await.is_err(), "{what}");

        // A second request is a cache hit: accepted, no new entry.
        let entries = h.gateway.verifier().cache().len();
        let a = h.get(&format!("/{id}/y"), &token).await;
        assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.body);
        assert_eq!(h.upstream.hits(), hits + 2, "{what}");
        assert_eq!(h.gateway.verifier().cache().len(), entries, "{what}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. Seed 001's three tables
// ---------------------------------------------------------------------------------------

/// The realm's decryption key and RS1's and RS2's own keys, all RSA-OAEP-256 + A256GCM,
/// so only the key material tells them apart.
struct SeedKeys {
    realm: Jwk,
    rs1: Jwk,
    rs2: Jwk,
}

impl SeedKeys {
    fn new() -> Self {
        Self {
            realm: enc_key("RSA-OAEP-256", "A256GCM", "realm-enc"),
            rs1: enc_key("RSA-OAEP-256", "A256GCM", "rs1-enc"),
            rs2: enc_key("RSA-OAEP-256", "A256GCM", "rs2-enc"),
        }
    }

    fn files(&self) -> Vec<(String, String)> {
        vec![
            ("realm-enc.json".to_owned(), jwks(&[&self.realm])),
            ("rs1-enc.json".to_owned(), jwks(&[&self.rs1])),
            ("rs2-enc.json".to_owned(), jwks(&[&self.rs2])),
        ]
    }

    /// Which keys open `token`: a subset of "realm", "RS1", "RS2".
    fn openers(&self, token: &str) -> Vec<String> {
        openers(
            token,
            "RSA-OAEP-256",
            &[("realm", &self.realm), ("RS1", &self.rs1), ("RS2", &self.rs2)],
        )
    }

    /// The inner token's claims, opened with `key`.
    fn claims(token: &str, key: &Jwk) -> Value {
        let inner = open(token, "RSA-OAEP-256", key).unwrap();
        jws_parts(&String::from_utf8(inner).unwrap()).1
    }
}

/// Seed 001's setting: RS1 (Scope1) encrypting with `rs1` (`"realm"` or
/// `"resource_server"`), RS2 (Scope2) with its own key; `default` names the default
/// resource server; `any_scope` sets `scope_source = "any_resource_server"`.
fn seed_config(rs1: &str, default: Option<&str>, any_scope: bool) -> String {
    let scope_source = if any_scope {
        "scope_source = \"any_resource_server\""
    } else {
        ""
    };
    let default_line = |id: &str| if default == Some(id) { "default = true" } else { "" };
    let rs1_enc = match rs1 {
        "realm" => REALM_KEYS.to_owned(),
        _ => own_keys("rs1-enc.json", "RSA-OAEP-256", "A256GCM"),
    };
    let rs2_enc = own_keys("rs2-enc.json", "RSA-OAEP-256", "A256GCM");
    realm_toml(&format!("decryption_keys = \"realm-enc.json\"\n{scope_source}"))
        + &client_toml()
        + &rs_toml(
            "RS1",
            SEED_AUD,
            &["Scope1"],
            &format!("{rs1_enc}\n{}", default_line("RS1")),
        )
        + &rs_toml(
            "RS2",
            SEED_AUD,
            &["Scope2"],
            &format!("{rs2_enc}\n{}", default_line("RS2")),
        )
}

/// Seed 001, first table: RS1 encrypts with the realm's key, RS2 with its own. A request
/// with `resourceServer=RS2` and `scope=Scope1` (a scope of RS1; the realm takes scopes from
/// any resource server) gets Scope1, encrypted as RS2 says: with RS2's key.
#[tokio::test]
async fn seed_table_1_resource_server_parameter_chooses_the_encryption() {
    let k = SeedKeys::new();
    let h = start(&seed_config("realm", None, true), &k.files()).await;

    let a = issue(&h, &[("resourceServer", "RS2"), ("scope", "Scope1")]).await;
    let token = access_token(&a);
    assert_eq!(a.json()["scope"], "Scope1", "{}", a.body);
    assert_eq!(protected(&token)["kid"], "rs2-enc");
    assert_eq!(k.openers(&token), ["RS2"], "only RS2's private key opens it");
    let c = SeedKeys::claims(&token, &k.rs2);
    assert_eq!(c["scope"], "Scope1");
    assert_eq!(c["aud"], SEED_AUD);
    // RS2's routes take it; RS1's, which expect the realm's key, do not.
    assert_eq!(h.get("/rs2/x", &token).await.status, StatusCode::OK);
    assert_eq!(h.get("/rs1/x", &token).await.status, StatusCode::UNAUTHORIZED);

    // The same scope for RS1 is encrypted with the realm's key instead.
    let token = access_token(&issue(&h, &[("resourceServer", "RS1"), ("scope", "Scope1")]).await);
    assert_eq!(protected(&token)["kid"], "realm-enc");
    assert_eq!(k.openers(&token), ["realm"]);
    assert_eq!(SeedKeys::claims(&token, &k.realm)["scope"], "Scope1");
    assert_eq!(h.get("/rs1/x", &token).await.status, StatusCode::OK);
    assert_eq!(h.get("/rs2/x", &token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream.hits(), 2);
}

/// Seed 001, second table: RS1 is the default and both use their own keys. A request
/// without `resourceServer` and `scope=Scope1` gets Scope1 encrypted with RS1's key.
#[tokio::test]
async fn seed_table_2_default_resource_server_chooses_the_encryption() {
    let k = SeedKeys::new();
    let h = start(&seed_config("resource_server", Some("RS1"), false), &k.files()).await;

    let a = issue(&h, &[("scope", "Scope1")]).await;
    let token = access_token(&a);
    assert_eq!(a.json()["scope"], "Scope1", "{}", a.body);
    assert_eq!(protected(&token)["kid"], "rs1-enc");
    assert_eq!(k.openers(&token), ["RS1"], "only RS1's private key opens it");
    assert_eq!(SeedKeys::claims(&token, &k.rs1)["scope"], "Scope1");
    assert_eq!(h.get("/rs1/x", &token).await.status, StatusCode::OK);
    assert_eq!(h.get("/rs2/x", &token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream.hits(), 1);
}

/// Seed 001's warning and third table: the default moves from RS1 to RS2 (a second
/// configuration, reloaded). New tokens without `resourceServer` are encrypted with RS2's
/// key; `resourceServer=RS1` still wins over the default (third table); and a token
/// encrypted for RS1 before the change is refused at RS2's routes (while RS1 still takes it).
#[tokio::test]
async fn seed_changing_the_default_resource_server() {
    let k = SeedKeys::new();
    let h = start(&seed_config("resource_server", Some("RS1"), false), &k.files()).await;
    let old = access_token(&issue(&h, &[("scope", "Scope1")]).await);
    assert_eq!(k.openers(&old), ["RS1"]);
    assert_eq!(h.get("/rs1/x", &old).await.status, StatusCode::OK);

    // The administrator makes RS2 the default: write the second configuration, reload.
    let path = h.config_dir().join("portcullis.toml");
    std::fs::write(
        &path,
        seed_config("resource_server", Some("RS2"), false).replace("{upstream}", &h.upstream.addr.to_string()),
    )
    .unwrap();
    let v = h.gateway.verifier();
    let previous = v.snapshot();
    let next = portcullis::app::load_snapshot(&path, h.clock.clone(), Some(&previous)).expect("second configuration");
    v.replace(next);

    // Without resourceServer: the new default, RS2, and its key.
    let a = issue(&h, &[("scope", "Scope2")]).await;
    let new = access_token(&a);
    assert_eq!(protected(&new)["kid"], "rs2-enc");
    assert_eq!(k.openers(&new), ["RS2"]);
    // Scope1 is RS1's, so without resourceServer it is now refused.
    let a = issue(&h, &[("scope", "Scope1")]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.error(), "invalid_scope", "{}", a.body);
    // Third table: resourceServer=RS1 has priority over the default.
    let a = issue(&h, &[("resourceServer", "RS1"), ("scope", "Scope1")]).await;
    let rs1 = access_token(&a);
    assert_eq!(a.json()["scope"], "Scope1");
    assert_eq!(protected(&rs1)["kid"], "rs1-enc");
    assert_eq!(k.openers(&rs1), ["RS1"]);

    let hits = h.upstream.hits();
    // The old RS1 token at RS2's routes: refused (same audience; only the key differs).
    let a = h.get("/rs2/x", &old).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.error(), "invalid_token");
    assert_eq!(h.upstream.hits(), hits);
    // RS2's routes take RS2's token; RS1's routes still take RS1's tokens.
    assert_eq!(h.get("/rs2/x", &new).await.status, StatusCode::OK);
    assert_eq!(h.get("/rs1/x", &old).await.status, StatusCode::OK);
    assert_eq!(h.get("/rs1/x", &rs1).await.status, StatusCode::OK);
    assert_eq!(h.upstream.hits(), hits + 3);
}

// ---------------------------------------------------------------------------------------
// 3. Refusals at the gateway: all one indistinguishable invalid_token
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn gateway_refusals_are_one_indistinguishable_invalid_token() {
    const ALG: &str = "RSA-OAEP-256";
    const ENC: &str = "A256GCM";
    let a_key = enc_key(ALG, ENC, "a-enc");
    let b_key = enc_key(ALG, ENC, "b-enc");
    let files = vec![
        ("a.enc.json".to_owned(), jwks(&[&a_key])),
        ("b.enc.json".to_owned(), jwks(&[&b_key])),
    ];
    // `a` and `b` share an audience, so only their encryption tells their tokens apart.
    let config = realm_toml("")
        + &rs_toml("a", SHARED_AUD, &["read"], &own_keys("a.enc.json", ALG, ENC))
        + &rs_toml("b", SHARED_AUD, &["read"], &own_keys("b.enc.json", ALG, ENC))
        + &rs_toml("plain", "https://plain.test", &["read"], "");
    let h = start(&config, &files).await;

    let inner = signer().sign(&inner_claims(SHARED_AUD));
    let to_a = |content: &str| seal(content, &jwe_header(ENC, Some("a-enc")), ALG, &a_key);

    // Controls: what is right is accepted.
    let good = to_a(&inner);
    let ok = |a: &Answer| assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    ok(&h.get("/a/x", &good).await);
    // Without a kid, the keys of the configured algorithm are tried.
    ok(&h.get("/a/x", &seal(&inner, &jwe_header(ENC, None), ALG, &a_key)).await);
    // `at+jwt` as cty, as some issuers send.
    let mut at_jwt = jwe_header(ENC, Some("a-enc"));
    at_jwt.set_content_type("at+jwt");
    ok(&h.get("/a/x", &seal(&inner, &at_jwt, ALG, &a_key)).await);
    ok(&h
        .get("/plain/x", &signer().sign(&inner_claims("https://plain.test")))
        .await);
    assert!(cached(&h, "a", &good).is_some(), "the good token is cached for a");
    let hits = h.upstream.hits();
    assert_eq!(hits, 4);

    // The inner token's flaws.
    let claims_b64 = b64(&inner_claims(SHARED_AUD).to_string());
    let unsigned = format!("{}.{claims_b64}.", b64(r#"{"alg":"none","typ":"at+jwt"}"#));
    let impostor = TestKey::es256("sig-1").sign(&inner_claims(SHARED_AUD));
    let bad_sig = {
        let (head, sig) = inner.rsplit_once('.').unwrap_or_else(|| panic!("{inner}"));
        let mut sig = b64d(sig);
        sig[0] ^= 1;
        format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig))
    };
    let mut wrong_iss = inner_claims(SHARED_AUD);
    wrong_iss["iss"] = json!("https://elsewhere.test/realms/t");
    let wrong_iss = signer().sign(&wrong_iss);

    // The outer layer's flaws.
    let mut zip = jwe_header(ENC, Some("a-enc"));
    zip.set_compression("DEF");
    let mut text = jwe_header(ENC, Some("a-enc"));
    text.set_content_type("text/plain");
    let mut crit = jwe_header(ENC, Some("a-enc"));
    crit.set_critical(&vec!["exp"]);
    crit.set_claim("exp", Some(json!(NOW + 300))).unwrap();
    let mut embedded = jwe_header(ENC, Some("a-enc"));
    embedded.set_jwk(public(&a_key));
    let tampered_header = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut hd = protected(&good);
        hd["x"] = json!(1);
        parts[0] = b64(&hd.to_string());
        parts.join(".")
    };

    let cases: Vec<(&str, &str, String)> = vec![
        ("garbage", "/a/x", "junk".to_owned()),
        ("five garbage parts", "/a/x", "a.b.c.d.e".to_owned()),
        ("unsigned inner token (alg none)", "/a/x", to_a(&unsigned)),
        (
            "inner token signed by another key with the realm's kid",
            "/a/x",
            to_a(&impostor),
        ),
        ("inner signature tampered", "/a/x", to_a(&bad_sig)),
        ("inner token from another issuer", "/a/x", to_a(&wrong_iss)),
        ("content is not a JWT", "/a/x", to_a("hello, gateway")),
        ("content type is not a JWT", "/a/x", seal(&inner, &text, ALG, &a_key)),
        (
            "encrypted to b's key, at a",
            "/a/x",
            seal(&inner, &jwe_header(ENC, Some("b-enc")), ALG, &b_key),
        ),
        (
            "encrypted to b's key, labelled with a's kid",
            "/a/x",
            seal(&inner, &jwe_header(ENC, Some("a-enc")), ALG, &b_key),
        ),
        (
            "unknown kid",
            "/a/x",
            seal(&inner, &jwe_header(ENC, Some("no-such-kid")), ALG, &a_key),
        ),
        (
            "refused key-management algorithm RSA1_5",
            "/a/x",
            seal(&inner, &jwe_header(ENC, Some("a-enc")), "RSA1_5", &a_key),
        ),
        (
            "another key-management algorithm than configured (RSA-OAEP)",
            "/a/x",
            seal(&inner, &jwe_header(ENC, Some("a-enc")), "RSA-OAEP", &a_key),
        ),
        (
            "another content algorithm than configured (A128CBC-HS256)",
            "/a/x",
            seal(&inner, &jwe_header("A128CBC-HS256", Some("a-enc")), ALG, &a_key),
        ),
        ("tampered protected header", "/a/x", tampered_header),
        ("tampered encrypted key", "/a/x", tamper(&good, 1)),
        ("tampered iv", "/a/x", tamper(&good, 2)),
        ("tampered ciphertext", "/a/x", tamper(&good, 3)),
        ("tampered tag", "/a/x", tamper(&good, 4)),
        ("compressed (zip: DEF)", "/a/x", seal(&inner, &zip, ALG, &a_key)),
        ("critical header", "/a/x", seal(&inner, &crit, ALG, &a_key)),
        ("embedded jwk header", "/a/x", seal(&inner, &embedded, ALG, &a_key)),
        ("plain JWS where encryption is configured", "/a/x", inner.clone()),
        (
            "JWE where encryption is not configured",
            "/plain/x",
            seal(
                &signer().sign(&inner_claims("https://plain.test")),
                &jwe_header(ENC, Some("a-enc")),
                ALG,
                &a_key,
            ),
        ),
        // Cached for a (same realm, same audience): b's outer policy was never passed.
        ("a JWE cached for a, at b", "/b/x", good.clone()),
    ];

    let first = h.get("/a/x", "junk").await;
    assert_invalid_token(&first, "junk");
    for (what, path, token) in &cases {
        let a = h.get(path, token).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.body);
        assert_eq!(a.body, first.body, "{what}: the body differs");
        assert_eq!(a.challenge(), first.challenge(), "{what}: the challenge differs");
        assert_eq!(
            a.headers.get("content-type"),
            first.headers.get("content-type"),
            "{what}"
        );
        assert_eq!(h.upstream.hits(), hits, "{what}: the upstream was reached");
        assert!(cached(&h, "b", token).is_none(), "{what}: cached for b");
    }
    // And the good token still works where it belongs.
    ok(&h.get("/a/x", &good).await);
}

// ---------------------------------------------------------------------------------------
// 4. Load-time errors
// ---------------------------------------------------------------------------------------

#[test]
fn load_time_errors_name_file_entity_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    };
    let rsa = enc_key("RSA-OAEP", "A128CBC-HS256", "rsa-1");
    write("signing.json", &private_jwks(&[signer()]));
    write("bare.json", &public_jwks(&[signer()]));
    write(
        "realm-enc.json",
        &jwks(&[&enc_key("RSA-OAEP", "A128CBC-HS256", "realm-enc")]),
    );
    write(
        "realm-pub.json",
        &jwks(&[&public(&enc_key("RSA-OAEP", "A128CBC-HS256", "rp-1"))]),
    );
    write("rsa.json", &jwks(&[&bare(&rsa)]));
    write("pub.json", &jwks(&[&public(&rsa)]));
    write(
        "clash-sig.json",
        &jwks(&[&enc_key("RSA-OAEP", "A128CBC-HS256", "sig-1")]),
    );
    write(
        "clash-dec.json",
        &jwks(&[&enc_key("RSA-OAEP", "A128CBC-HS256", "realm-enc")]),
    );

    let realms = format!(
        r#"
[[realm]]
name = "t"
issuer = "{ISS}"
algorithms = ["ES256"]
signing_keys = "signing.json"
decryption_keys = "realm-enc.json"

[[realm]]
name = "bare"
issuer = "https://bare.test/realms/bare"
algorithms = ["ES256"]
jwks_file = "bare.json"

[[realm]]
name = "pubrealm"
issuer = "https://pub.test/realms/pubrealm"
algorithms = ["ES256"]
jwks_file = "bare.json"
decryption_keys = "realm-pub.json"
"#
    );
    let rs = |id: &str, realm: &str, extra: &str| {
        format!(
            "\n[[resource_server]]\nid = \"{id}\"\nrealm = \"{realm}\"\naudience = \"https://{id}.test\"\nupstream = \"http://127.0.0.1:9\"\nscopes = [\"read\"]\n{extra}\n"
        )
    };
    let enc = |file: &str, alg: &str| {
        format!("encryption = \"resource_server\"\nencryption_jwks_file = \"{file}\"\nkey_alg = \"{alg}\"")
    };

    // A valid configuration of the same shape loads (the control).
    let good = realms.replace("decryption_keys = \"realm-pub.json\"", "")
        + &rs("fine", "t", &enc("rsa.json", "RSA-OAEP"))
        + &rs("fine-realm", "t", "encryption = \"realm\"\nkey_alg = \"RSA-OAEP\"");
    write("good.toml", &good);
    let good_path = dir.path().join("good.toml");
    let snap = portcullis::app::load_snapshot(&good_path, portcullis::time::system(), None)
        .unwrap_or_else(|e| panic!("the control should load:\n{e}"));
    assert!(
        snap.resource_servers
            .iter()
            .filter(|rs| !rs.management)
            .all(|rs| rs.jwe.is_some())
    );

    // (resource server, realm, its lines, the field at fault, words the message has)
    let bad: [(&str, &str, String, &[&str], &str); 11] = [
        (
            "ecdh-with-rsa",
            "t",
            enc("rsa.json", "ECDH-ES"),
            &["key_alg", "encryption_jwks_file"],
            "ECDH-ES",
        ),
        ("rsa15", "t", enc("rsa.json", "RSA1_5"), &["key_alg"], "RFC 8725"),
        (
            "pbes2",
            "t",
            enc("rsa.json", "PBES2-HS256+A128KW"),
            &["key_alg"],
            "password",
        ),
        (
            "clash-signing",
            "t",
            enc("clash-sig.json", "RSA-OAEP"),
            &["encryption_jwks_file"],
            "sig-1",
        ),
        (
            "clash-decryption",
            "t",
            enc("clash-dec.json", "RSA-OAEP"),
            &["encryption_jwks_file"],
            "realm-enc",
        ),
        (
            "public-only",
            "t",
            enc("pub.json", "RSA-OAEP"),
            &["encryption_jwks_file"],
            "public",
        ),
        (
            "realm-without-keys",
            "bare",
            "encryption = \"realm\"\nkey_alg = \"RSA-OAEP\"".to_owned(),
            &["encryption"],
            "decryption_keys",
        ),
        (
            "no-key-alg",
            "t",
            "encryption = \"resource_server\"\nencryption_jwks_file = \"rsa.json\"".to_owned(),
            &["key_alg"],
            "required",
        ),
        (
            "bad-content-alg",
            "t",
            enc("rsa.json", "RSA-OAEP") + "\ncontent_alg = \"A128CTR\"",
            &["content_alg"],
            "A128CTR",
        ),
        (
            "no-key-file",
            "t",
            "encryption = \"resource_server\"\nkey_alg = \"RSA-OAEP\"".to_owned(),
            &["encryption_jwks_file"],
            "required",
        ),
        (
            "alg-without-encryption",
            "t",
            "key_alg = \"RSA-OAEP\"".to_owned(),
            &["key_alg"],
            "applies only",
        ),
    ];
    let mut text = realms.clone();
    for (id, realm, lines, _, _) in &bad {
        text += &rs(id, realm, lines);
    }
    write("bad.toml", &text);
    let path = dir.path().join("bad.toml");
    let errors = match portcullis::app::load_snapshot(&path, portcullis::time::system(), None) {
        Ok(_) => panic!("the configuration should be refused"),
        Err(e) => e.0,
    };
    let all = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    for (id, _, _, fields, words) in &bad {
        let entity = format!("resource_server {id:?}");
        let found = errors.iter().any(|e| {
            e.file == path
                && e.entity == entity
                && e.field.as_deref().is_some_and(|f| fields.contains(&f))
                && e.message.contains(words)
        });
        assert!(
            found,
            "no error for {entity}, field {fields:?}, saying {words:?}; got:\n{all}"
        );
    }
    // The realm whose decryption keys are public only.
    assert!(
        errors.iter().any(|e| e.file == path
            && e.entity == "realm \"pubrealm\""
            && e.field.as_deref() == Some("decryption_keys")
            && e.message.contains("private")),
        "no error for realm pubrealm's decryption_keys; got:\n{all}"
    );
}

// ---------------------------------------------------------------------------------------
// 5. RFC 7520 § 5
// ---------------------------------------------------------------------------------------

fn rfc7520(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/rfc7520")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// The first key of a JWKS document.
fn first_key(doc: &str) -> Jwk {
    let set = josekit::jwk::JwkSet::from_bytes(doc.as_bytes()).expect("JWKS");
    set.keys().first().map(|k| (*k).clone()).expect("an empty JWKS")
}

/// The JWE examples of RFC 7520 § 5 whose algorithms we accept decrypt with their published
/// keys (the files in `tests/it/rfc7520/` are the RFC's figures, unwrapped). § 5.3 (PBES2)
/// and § 5.7 (A256GCMKW) use algorithms we do not accept; § 5.10 to 5.13 exist only in the
/// JSON serializations.
#[test]
fn rfc7520_examples_decrypt_with_their_published_keys() {
    let plaintext = rfc7520("plaintext.txt");
    assert!(plaintext.starts_with("You can trust us") && plaintext.contains('\u{2013}'));
    for (section, alg, enc, kid) in [
        ("5_2", "RSA-OAEP", "A256GCM", "samwise.gamgee@hobbiton.example"),
        ("5_4", "ECDH-ES+A128KW", "A128GCM", "peregrin.took@tuckborough.example"),
        (
            "5_5",
            "ECDH-ES",
            "A128CBC-HS256",
            "meriadoc.brandybuck@buckland.example",
        ),
        ("5_6", "dir", "A128GCM", "77c7e2b8-6e13-45cf-8672-617b5b45243a"),
        ("5_8", "A128KW", "A128GCM", "81b20965-8332-43d9-a468-82160ad91ac8"),
    ] {
        let doc = rfc7520(&format!("{section}.jwks.json"));
        let token = rfc7520(&format!("{section}.jwe"));
        let hd = protected(&token);
        assert_eq!(
            (hd["alg"].as_str(), hd["enc"].as_str()),
            (Some(alg), Some(enc)),
            "§{section}"
        );
        let (keys, kids) = JweKeys::from_jwks(doc.as_bytes(), alg, enc)
            .unwrap_or_else(|e| panic!("§{section}: the published key is refused: {e}"));
        assert_eq!(kids, [kid], "§{section}");
        assert!(keys.can_decrypt(), "§{section}");
        let content = keys
            .decrypt_content(&token)
            .unwrap_or_else(|e| panic!("§{section}: {e}"));
        assert_eq!(String::from_utf8_lossy(&content), plaintext, "§{section}");
        // The content is no JWT, so as an access token it is refused.
        assert!(keys.decrypt(&token).is_err(), "§{section}");
        // A flipped tag bit is caught.
        assert!(keys.decrypt_content(&tamper(&token, 4)).is_err(), "§{section}");
        // Other settings than the example's refuse it.
        let other_enc = if enc == "A128GCM" { "A256GCM" } else { "A128GCM" };
        if alg != "dir"
            && let Ok((other, _)) = JweKeys::from_jwks(doc.as_bytes(), alg, other_enc)
        {
            assert!(other.decrypt_content(&token).is_err(), "§{section} with {other_enc}");
        }
    }

    // § 5.1 (RSA1_5): a valid example (josekit decrypts it with the published key) that we
    // refuse to load at all (RFC 8725 § 3.2).
    let doc = rfc7520("5_1.jwks.json");
    let key = first_key(&doc);
    let token = rfc7520("5_1.jwe");
    let content = open(&token, "RSA1_5", &key).expect("§5.1");
    assert_eq!(String::from_utf8_lossy(&content), plaintext);
    assert!(JweKeys::from_jwks(doc.as_bytes(), "RSA1_5", "A128CBC-HS256").is_err());

    // § 5.9 (zip: DEF, with § 5.8's key): valid (josekit inflates it), refused by our policy.
    let doc = rfc7520("5_8.jwks.json");
    let keys = jwe_keys(&doc, "A128KW", "A128GCM");
    let token = rfc7520("5_9.jwe");
    assert_eq!(protected(&token)["zip"], "DEF");
    let key = first_key(&doc);
    let content = open(&token, "A128KW", &key).expect("§5.9");
    assert_eq!(String::from_utf8_lossy(&content), plaintext);
    assert_eq!(
        keys.decrypt_content(&token),
        Err(TokenError::Decryption("compression refused"))
    );
}

// ---------------------------------------------------------------------------------------
// 6. An independent implementation (aws-lc-rs primitives, RFC 7516), both ways
// ---------------------------------------------------------------------------------------

/// A random byte string.
fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut v).expect("rand");
    v
}

fn aes_gcm(len: usize) -> &'static aead::Algorithm {
    match len {
        16 => &aead::AES_128_GCM,
        32 => &aead::AES_256_GCM,
        other => panic!("no AES-GCM with a {other}-byte key"),
    }
}

/// RFC 7516 § 5.1 for an AES-GCM `enc`, by hand: `protected` is the JSON header, `cek` the
/// content-encryption key and `encrypted_key` its wrapping (empty for `dir`).
fn build_jwe(protected: &Value, cek: &[u8], encrypted_key: &[u8], plaintext: &[u8]) -> String {
    // Step 13-14: the encoded protected header is the additional authenticated data.
    let header = URL_SAFE_NO_PAD.encode(protected.to_string());
    // Step 9: a 96-bit IV.
    let iv: [u8; 12] = random(12).try_into().expect("12 bytes");
    let key = LessSafeKey::new(UnboundKey::new(aes_gcm(cek.len()), cek).unwrap());
    // Step 15: encrypt; the ciphertext and the 128-bit tag travel separately.
    let mut ciphertext = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(header.as_bytes()),
            &mut ciphertext,
        )
        .expect("seal");
    // Step 19: the compact serialization.
    [
        header,
        URL_SAFE_NO_PAD.encode(encrypted_key),
        URL_SAFE_NO_PAD.encode(iv),
        URL_SAFE_NO_PAD.encode(ciphertext),
        URL_SAFE_NO_PAD.encode(tag.as_ref()),
    ]
    .join(".")
}

/// RFC 7516 § 5.2 for an AES-GCM `enc`, by hand: the content of `token` given its CEK.
fn open_jwe(token: &str, cek: &[u8]) -> Vec<u8> {
    let p = jwe_parts(token);
    let iv: [u8; 12] = b64d(p[2]).try_into().expect("a 96-bit IV");
    let mut in_out = b64d(p[3]);
    in_out.extend_from_slice(&b64d(p[4]));
    let key = LessSafeKey::new(UnboundKey::new(aes_gcm(cek.len()), cek).unwrap());
    key.open_in_place(
        Nonce::assume_unique_for_key(iv),
        Aad::from(p[0].as_bytes()),
        &mut in_out,
    )
    .expect("the tag does not verify")
    .to_vec()
}

/// The RSA private key of `jwk` as aws-lc-rs OAEP keys (josekit only converts the format).
fn rsa_oaep(jwk: &Jwk) -> (OaepPublicEncryptingKey, OaepPrivateDecryptingKey) {
    let pair = RsaKeyPair::from_jwk(&bare(jwk)).unwrap();
    let private = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&pair.to_der_private_key()).expect("PKCS#8");
    let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
    let private = OaepPrivateDecryptingKey::new(private).unwrap();
    (public, private)
}

/// Tokens built here, from primitives, pass the gateway: an inner ES256 JWS signed with
/// `jsonwebtoken` by a key made with aws-lc-rs, wrapped per RFC 7516 § 5.1 in RSA-OAEP-256
/// + A256GCM and in dir + A128GCM.
#[tokio::test]
async fn independent_jwe_is_accepted_by_the_gateway() {
    // The signing key: aws-lc-rs makes it, jsonwebtoken signs with it, the realm publishes
    // its JWK (built from the raw point).
    let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    let point = pair.public_key().as_ref().to_vec();
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    let sig_jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "ind-sig", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    });
    let rsa = enc_key("RSA-OAEP-256", "A256GCM", "ind-rsa");
    let dir_key = random(16);
    let dir_jwk = json!({
        "kty": "oct", "kid": "ind-dir", "use": "enc", "alg": "dir",
        "k": URL_SAFE_NO_PAD.encode(&dir_key),
    });
    let files = vec![
        ("ind-sig.json".to_owned(), json!({ "keys": [sig_jwk] }).to_string()),
        ("ind-rsa.json".to_owned(), jwks(&[&rsa])),
        ("ind-dir.json".to_owned(), json!({ "keys": [dir_jwk] }).to_string()),
    ];
    let config = format!(
        r#"
[[realm]]
name = "t"
issuer = "{ISS}"
algorithms = ["ES256"]
jwks_file = "ind-sig.json"
"#
    ) + &rs_toml(
        "oaep",
        "https://oaep.test",
        &["read"],
        &own_keys("ind-rsa.json", "RSA-OAEP-256", "A256GCM"),
    ) + &rs_toml(
        "dir",
        "https://dir.test",
        &["read"],
        &own_keys("ind-dir.json", "dir", "A128GCM"),
    );
    let h = start(&config, &files).await;

    let signing_key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut jws_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    jws_header.kid = Some("ind-sig".to_owned());
    jws_header.typ = Some("at+jwt".to_owned());
    let inner = |aud: &str| jsonwebtoken::encode(&jws_header, &inner_claims(aud), &signing_key).unwrap();

    // RSA-OAEP-256 + A256GCM: a random CEK wrapped with RSAES-OAEP (SHA-256, MGF1-SHA-256).
    let (rsa_public, _) = rsa_oaep(&rsa);
    let cek = random(32);
    let mut wrapped = vec![0u8; rsa_public.ciphertext_size()];
    let wrapped = rsa_public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut wrapped, None)
        .unwrap()
        .to_vec();
    let oaep = build_jwe(
        &json!({ "alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "ind-rsa", "cty": "JWT" }),
        &cek,
        &wrapped,
        inner("https://oaep.test").as_bytes(),
    );
    // dir + A128GCM: the shared key is the CEK; the encrypted key is empty.
    let dir = build_jwe(
        &json!({ "alg": "dir", "enc": "A128GCM", "kid": "ind-dir", "cty": "JWT" }),
        &dir_key,
        &[],
        inner("https://dir.test").as_bytes(),
    );
    assert_eq!(jwe_parts(&dir)[1], "");

    for (path, token) in [("/oaep/x", &oaep), ("/dir/x", &dir)] {
        let a = h.get(path, token).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        // The same token with one tag bit flipped is refused: the gateway really checks.
        let a = h.get(path, &tamper(token, 4)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}: {}", a.body);
    }
    // Each at the other's route: refused.
    assert_eq!(h.get("/dir/x", &oaep).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get("/oaep/x", &dir).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream.hits(), 2);
}

/// Tokens our issuer makes open with the hand-written RFC 7516 § 5.2 decryption
/// (RSAES-OAEP-256 and AES-GCM from aws-lc-rs), and their inner JWS verifies with the
/// aws-lc-rs ECDSA verifier against the realm's published key.
#[tokio::test]
async fn issuer_jwe_decrypts_with_an_independent_implementation() {
    let rsa = enc_key("RSA-OAEP-256", "A256GCM", "iss-rsa");
    let dir_key = random(16);
    let dir_jwk = json!({
        "kty": "oct", "kid": "iss-dir", "use": "enc", "alg": "dir",
        "k": URL_SAFE_NO_PAD.encode(&dir_key),
    });
    let files = vec![
        ("iss-rsa.json".to_owned(), jwks(&[&rsa])),
        ("iss-dir.json".to_owned(), json!({ "keys": [dir_jwk] }).to_string()),
    ];
    let config = realm_toml("")
        + &client_toml()
        + &rs_toml(
            "oaep",
            "https://oaep.test",
            &["read"],
            &own_keys("iss-rsa.json", "RSA-OAEP-256", "A256GCM"),
        )
        + &rs_toml(
            "dir",
            "https://dir.test",
            &["read"],
            &own_keys("iss-dir.json", "dir", "A128GCM"),
        );
    let h = start(&config, &files).await;
    let (_, rsa_private) = rsa_oaep(&rsa);

    // The realm's public signing key, as an uncompressed point for aws-lc-rs.
    let public = &signer().public;
    let coord = |c: &str| b64d(public[c].as_str().unwrap_or_else(|| panic!("no {c} in {public}")));
    let mut point = vec![4u8];
    point.extend(coord("x"));
    point.extend(coord("y"));
    let verifier = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point);

    for (rs, alg, enc, kid) in [
        ("oaep", "RSA-OAEP-256", "A256GCM", "iss-rsa"),
        ("dir", "dir", "A128GCM", "iss-dir"),
    ] {
        let token = access_token(&issue(&h, &[("resourceServer", rs), ("scope", "read")]).await);
        // § 5.2 steps 1-4: the parts and the protected header.
        let p = jwe_parts(&token);
        let hd = protected(&token);
        assert_eq!(hd["alg"], alg, "{hd}");
        assert_eq!(hd["enc"], enc, "{hd}");
        assert_eq!(hd["kid"], kid, "{hd}");
        assert_eq!(hd["cty"], "JWT", "{hd}");
        // Steps 6-10: the CEK (unwrapped with our private key, or the shared key itself).
        let cek = if alg == "dir" {
            assert!(p[1].is_empty(), "dir carries no encrypted key");
            dir_key.clone()
        } else {
            let mut buf = vec![0u8; rsa_private.min_output_size()];
            let cek = rsa_private
                .decrypt(&OAEP_SHA256_MGF1SHA256, &b64d(p[1]), &mut buf, None)
                .expect("RSA-OAEP-256")
                .to_vec();
            assert_eq!(cek.len(), 32, "an A256GCM key");
            cek
        };
        // Steps 11-16: decrypt and check the tag, with the encoded header as AAD.
        let inner = String::from_utf8(open_jwe(&token, &cek)).unwrap();
        // The nested JWS: the issuer's signature, checked with aws-lc-rs.
        let (signing_input, sig) = inner.rsplit_once('.').unwrap_or_else(|| panic!("{inner}"));
        verifier
            .verify(signing_input.as_bytes(), &b64d(sig))
            .unwrap_or_else(|e| panic!("{rs}: the inner signature does not verify: {e}"));
        let (ih, ic) = jws_parts(&inner);
        assert_eq!(ih["alg"], "ES256");
        assert_eq!(ih["typ"], "at+jwt");
        assert_eq!(ih["kid"], "sig-1");
        assert_eq!(ic["iss"], ISS);
        assert_eq!(ic["aud"], format!("https://{rs}.test"));
        assert_eq!(ic["client_id"], CLIENT);
        assert_eq!(ic["scope"], "read");
        assert_eq!(ic["iat"], NOW);
        // And the gateway takes the very token.
        assert_eq!(h.get(&format!("/{rs}/x"), &token).await.status, StatusCode::OK);
    }
}
