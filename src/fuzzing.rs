//! Entry points of the fuzz targets in `fuzz/` (libFuzzer through `cargo fuzz`), one per
//! parser that reads attacker or operator input. Each takes the fuzzer's bytes, calls the
//! parser as the gateway does, and asserts the properties the parser promises, not only
//! that it returns. A failed assertion here is a finding: these panics are the harness's,
//! never the gateway's. Not part of the API; the targets themselves are three lines each.

use std::path::PathBuf;
use std::sync::OnceLock;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderValue, Uri, Version};
use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::config::{CompileContext, Env};
use crate::issuer::client_auth::{self, Presented};
use crate::issuer::form::Form;
use crate::issuer::{HMAC_ALGS, JWT_BEARER, OAuthError};
use crate::jwks::{Fetcher, alg_name};
use crate::routing;
use crate::routing::path::MAX_SEGMENTS;
use crate::time::SharedClock;
use crate::token::jwe::JweKeys;
use crate::token::{self, Claims, TokenError, jws};

// ---------------------------------------------------------------------------------------
// Path normalizer
// ---------------------------------------------------------------------------------------

/// The path normalizer: a normalized path is a fixed point, starts with `/`, has no `.`,
/// `..` or empty segment (but a trailing slash), and carries only bytes a path may carry raw
/// plus uppercase escapes of the rest; spelling an input differently (unreserved characters
/// escaped, escapes in the other case) changes neither the answer nor the refusal.
pub fn path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let result = routing::normalize(raw);
    let escaped = escape_unreserved(raw);
    assert_eq!(routing::normalize(&escaped), result, "{raw:?} spelled {escaped:?}");
    let flipped = flip_escape_case(raw);
    assert_eq!(routing::normalize(&flipped), result, "{raw:?} spelled {flipped:?}");
    let Ok(normalized) = result else { return };
    let text = normalized.as_str();
    assert_eq!(
        routing::normalize(text).as_ref(),
        Ok(&normalized),
        "{raw:?} → {text:?} is not a fixed point"
    );
    assert!(text.starts_with('/') && !text.contains("//"), "{raw:?} → {text:?}");
    let segments: Vec<&str> = normalized.segments().collect();
    assert!(
        !segments.is_empty() && segments.len() <= MAX_SEGMENTS,
        "{raw:?} → {text:?}"
    );
    assert_eq!(format!("/{}", segments.join("/")), text, "{raw:?}: segments");
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        assert!(*segment != "." && *segment != "..", "{raw:?} → {text:?}");
        assert!(i == last || !segment.is_empty(), "{raw:?} → {text:?}");
        check_normalized_bytes(segment, raw);
    }
}

/// Every byte of a normalized segment is one a path may carry raw, or part of an uppercase
/// escape of a byte that is neither unreserved nor refused.
fn check_normalized_bytes(segment: &str, raw: &str) {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let value = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some((hex, value)) = hex.zip(value) else {
                panic!("{raw:?}: broken escape in {segment:?}");
            };
            assert_eq!(
                hex,
                hex.to_ascii_uppercase(),
                "{raw:?}: lowercase escape in {segment:?}"
            );
            assert!(!is_unreserved(value), "{raw:?}: escaped unreserved byte in {segment:?}");
            assert!(
                !matches!(value, b'/' | b'\\' | b';') && value >= 0x20 && value != 0x7f,
                "{raw:?}: refused byte escaped in {segment:?}"
            );
            i += 3;
        } else {
            let b = bytes[i];
            assert!(
                is_unreserved(b) || b"!$&'()*+,=:@".contains(&b),
                "{raw:?}: raw {b:#04x} in {segment:?}"
            );
            i += 1;
        }
    }
}

/// `raw` with every unreserved character outside an escape written as its escape.
fn escape_unreserved(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(raw.len() * 3);
    let mut i = 0;
    while i < bytes.len() {
        match escape_at(bytes, i) {
            Some(escape) => {
                out.extend_from_slice(escape);
                i += 3;
            }
            None => {
                let b = bytes[i];
                if is_unreserved(b) {
                    out.extend_from_slice(format!("%{b:02X}").as_bytes());
                } else {
                    out.push(b);
                }
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `raw` with the hex letters of every escape in the other case.
fn flip_escape_case(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        match escape_at(bytes, i) {
            Some(escape) => {
                out.push(b'%');
                for &h in &escape[1..] {
                    out.push(if h.is_ascii_uppercase() {
                        h.to_ascii_lowercase()
                    } else {
                        h.to_ascii_uppercase()
                    });
                }
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The well-formed escape (`%` and two hex digits) at `i`, if there is one.
fn escape_at(bytes: &[u8], i: usize) -> Option<&[u8]> {
    let escape = bytes.get(i..i + 3)?;
    (escape[0] == b'%' && escape[1].is_ascii_hexdigit() && escape[2].is_ascii_hexdigit()).then_some(escape)
}

/// RFC 3986 § 2.3 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

// ---------------------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------------------

/// Host validation. Input: a version selector byte, then the request target, then up to
/// three `Host` field values, separated by newlines. An accepted host holds none of
/// `@ / ? # \ %`, no whitespace, only visible ASCII; the answer is the same when asked twice;
/// a `Host` beside an authority is still validated; HTTP/2's two must agree.
pub fn host(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let version = match selector % 3 {
        0 => Version::HTTP_10,
        1 => Version::HTTP_11,
        _ => Version::HTTP_2,
    };
    let mut lines = rest.split(|b| *b == b'\n');
    let Some(Ok(uri)) = lines.next().map(Uri::try_from) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines.take(3) {
        let Ok(value) = HeaderValue::from_bytes(line) else {
            return;
        };
        headers.append(HOST, value);
    }
    let answer = routing::request_host(version, &uri, &headers);
    assert_eq!(
        answer,
        routing::request_host(version, &uri, &headers),
        "not deterministic"
    );
    let fields: Vec<&HeaderValue> = headers.get_all(HOST).iter().collect();
    if fields.len() > 1 {
        assert_eq!(answer, Err(routing::HostError::Repeated));
    }
    let Ok(Some(found)) = answer else { return };
    let text = found.as_str();
    assert!(
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() && !b"@/?#\\%\"".contains(&b)),
        "accepted host {text:?}"
    );
    let value = found.to_header_value();
    assert_eq!(value.as_ref().map(HeaderValue::as_bytes), Some(text.as_bytes()));
    // A `Host` field the authority overrode was validated all the same: alone, it passes.
    if let Some(field) = fields.first().filter(|f| !f.is_empty()) {
        let mut alone = HeaderMap::new();
        alone.insert(HOST, (*field).clone());
        let origin = Uri::from_static("/");
        assert!(
            matches!(routing::request_host(Version::HTTP_11, &origin, &alone), Ok(Some(_))),
            "Host {field:?} passed beside {uri}"
        );
        if version == Version::HTTP_2 && uri.authority().is_some() {
            assert!(
                field.as_bytes().eq_ignore_ascii_case(text.as_bytes()),
                "{field:?} vs {text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bearer extraction
// ---------------------------------------------------------------------------------------

/// Bearer extraction. Input: `Authorization` field values separated by newlines. A token is
/// found only in a single `Bearer` field, is a `b64token` and is what the field carries
/// after the scheme; several fields are always an invalid request.
pub fn bearer(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n').take(4) {
        let Ok(value) = HeaderValue::from_bytes(line) else {
            return;
        };
        headers.append(AUTHORIZATION, value);
    }
    let answer = token::bearer(&headers);
    let fields: Vec<&HeaderValue> = headers.get_all(AUTHORIZATION).iter().collect();
    match (&answer, fields.as_slice()) {
        (Err(TokenError::InvalidRequest(_)), [_, _, ..]) | (Ok(None), []) => {}
        (_, [_, _, ..]) => panic!("{fields:?}: several fields gave {answer:?}"),
        (_, []) => panic!("no field gave {answer:?}"),
        (Ok(Some(t)), [field]) => {
            let value = field.to_str().unwrap_or_else(|_| panic!("{field:?} is not text"));
            let (scheme, rest) = value.split_once(' ').unwrap_or_else(|| panic!("{value:?}: no scheme"));
            assert!(scheme.eq_ignore_ascii_case("bearer"), "{value:?}");
            assert_eq!(rest.trim_matches(' '), *t, "{value:?}");
            let body = t.trim_end_matches('=');
            assert!(
                !body.is_empty()
                    && body
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)),
                "{t:?} is no b64token"
            );
        }
        (Ok(None), [field]) => {
            let scheme = field.to_str().ok().and_then(|v| v.split_once(' ')).map(|(s, _)| s);
            assert!(!scheme.is_some_and(|s| s.eq_ignore_ascii_case("bearer")), "{field:?}");
        }
        (Err(e), [_]) => assert!(matches!(e, TokenError::Malformed(_)), "{e:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// JWS header and claims
// ---------------------------------------------------------------------------------------

/// Algorithms an allow-list is drawn from: HMAC among them, as a misconfiguration the
/// access-token header check must survive (it never takes HMAC).
const ALGS: [Algorithm; 8] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::RS512,
];

/// JWS splitting, header policy and claims parsing. Input: an allow-list selector byte, a
/// mode byte, then either a compact token (even mode) or a header and a payload JSON
/// separated by a newline, encoded here (odd mode) so the fuzzer reaches the JSON. An
/// accepted access-token header's `alg` is on the allow-list, is the header's `alg`, and is
/// never `none` or HMAC; parsed claims are what the JSON says.
pub fn jws(data: &[u8]) {
    let [selector, mode, rest @ ..] = data else { return };
    let allowed: Vec<Algorithm> = (0..ALGS.len())
        .filter(|i| selector >> i & 1 == 1)
        .map(|i| ALGS[i])
        .collect();
    let token = if mode & 1 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else { return };
        token.to_owned()
    } else {
        let mut parts = rest.splitn(2, |b| *b == b'\n');
        let header = parts.next().unwrap_or_default();
        let payload = parts.next().unwrap_or_default();
        format!("{}.{}.c2ln", b64(header), b64(payload))
    };
    let Ok(compact) = jws::split(&token) else { return };
    for part in [compact.header, compact.payload, compact.signature] {
        assert!(!part.is_empty() && !part.contains('.'), "{token:?}");
    }
    assert_eq!(compact.signing_input, format!("{}.{}", compact.header, compact.payload));
    assert_eq!(token, format!("{}.{}", compact.signing_input, compact.signature));
    let require_at_jwt = mode & 2 == 2;
    if let Ok(header) = jws::header(compact.header, &allowed, require_at_jwt) {
        assert!(
            allowed.contains(&header.alg) && !HMAC_ALGS.contains(&header.alg),
            "{header:?}"
        );
        assert_eq!(header_alg(compact.header).as_deref(), Some(alg_name(header.alg)));
        if require_at_jwt {
            let typ = header.typ.as_deref().unwrap_or_default().to_ascii_lowercase();
            assert!(typ == "at+jwt" || typ == "application/at+jwt", "{header:?}");
        }
    }
    if let Ok(header) = jws::assertion_header(compact.header, &allowed) {
        assert!(allowed.contains(&header.alg), "{header:?}");
        assert_eq!(header_alg(compact.header).as_deref(), Some(alg_name(header.alg)));
    }
    if let Ok(payload) = jws::b64(compact.payload) {
        claims(&payload);
    }
}

/// The `alg` member of an encoded header, read independently of the header check. Not
/// through [`Value`]: a header is any JSON text, and `Value` has limits JSON has not (a
/// number beyond `f64`, nesting deeper than 128, a lone surrogate escape), which the header
/// check rightly does not apply to the members it ignores.
fn header_alg(encoded: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Alg {
        alg: Option<String>,
    }
    let bytes = jws::b64(encoded).ok()?;
    serde_json::from_slice::<Alg>(&bytes).ok()?.alg
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Parsed claims agree with a plain reading of the same JSON.
fn claims(json: &[u8]) {
    let parsed = Claims::parse(json);
    assert_eq!(parsed, Claims::parse(json), "not deterministic");
    let Ok(claims) = parsed else { return };
    let Ok(Value::Object(raw)) = serde_json::from_slice::<Value>(json) else {
        panic!("claims parsed from a non-object")
    };
    let string = |name: &str| raw.get(name).and_then(Value::as_str);
    assert_eq!(claims.iss(), string("iss"));
    assert_eq!(claims.sub(), string("sub"));
    assert_eq!(claims.client_id(), string("client_id"));
    assert_eq!(claims.jti(), string("jti"));
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    };
    let aud: Vec<String> = match raw.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(v) => list(v),
        None => Vec::new(),
    };
    assert_eq!(claims.aud().collect::<Vec<_>>(), aud);
    let scopes = raw
        .get("scope")
        .or_else(|| raw.get("scp"))
        .map(list)
        .unwrap_or_default();
    assert_eq!(claims.scopes().collect::<Vec<_>>(), scopes);
    let time = |name: &str| {
        raw.get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64)))
    };
    assert_eq!(
        (claims.exp, claims.nbf, claims.iat, claims.auth_time),
        (time("exp"), time("nbf"), time("iat"), time("auth_time"))
    );
}

// ---------------------------------------------------------------------------------------
// JWE
// ---------------------------------------------------------------------------------------

/// The content of every RFC 7520 § 5 example.
const RFC7520_PLAINTEXT: &str = include_str!("../tests/it/rfc7520/plaintext.txt");

/// The signed JWT the seed corpus's nested tokens were encrypted from (signature not real:
/// decryption does not check it).
pub const SEALED_INNER: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJmdXp6In0.c2ln";

/// The fixed key sets, RFC 7520's published keys: (JWKS, `alg`, `enc`).
const JWE_SETS: [(&str, &str, &str); 5] = [
    (include_str!("../tests/it/rfc7520/5_2.jwks.json"), "RSA-OAEP", "A256GCM"),
    (
        include_str!("../tests/it/rfc7520/5_5.jwks.json"),
        "ECDH-ES",
        "A128CBC-HS256",
    ),
    (
        include_str!("../tests/it/rfc7520/5_4.jwks.json"),
        "ECDH-ES+A128KW",
        "A128GCM",
    ),
    (include_str!("../tests/it/rfc7520/5_8.jwks.json"), "A128KW", "A128GCM"),
    (include_str!("../tests/it/rfc7520/5_6.jwks.json"), "dir", "A128GCM"),
];

/// The key sets of [`JWE_SETS`], built once per process.
pub fn jwe_keys() -> &'static [JweKeys] {
    static KEYS: OnceLock<Vec<JweKeys>> = OnceLock::new();
    KEYS.get_or_init(|| {
        JWE_SETS
            .iter()
            .map(|(doc, alg, enc)| match JweKeys::from_jwks(doc.as_bytes(), alg, enc) {
                Ok((keys, _)) => keys,
                Err(e) => panic!("fixture {alg}/{enc}: {e}"),
            })
            .collect()
    })
}

/// JWE decryption. Input: a key-set selector byte, then a compact token. Never panics, and
/// never yields content other than what was sealed under these keys (the RFC's plaintext and
/// [`SEALED_INNER`]): random input never decrypts.
pub fn jwe(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(token) = std::str::from_utf8(rest) else { return };
    let keys = jwe_keys();
    let set = &keys[usize::from(selector) % keys.len()];
    if let Ok(content) = set.decrypt_content(token) {
        assert!(
            content == RFC7520_PLAINTEXT.trim().as_bytes() || content == SEALED_INNER.as_bytes(),
            "{token:?} decrypted to unsealed content"
        );
    }
    if let Ok(inner) = set.decrypt(token) {
        assert_eq!(inner, SEALED_INNER, "{token:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// A directory holding the fuzzed configuration file and key files it may name.
struct ConfigDir {
    file: PathBuf,
    fetcher: Fetcher,
    clock: SharedClock,
}

fn config_dir() -> &'static ConfigDir {
    static DIR: OnceLock<ConfigDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portcullis-fuzz-config-{}", std::process::id()));
        let files = [
            ("keys/demo.private.jwks.json", DEMO_KEYS.to_owned()),
            ("signing.json", DEMO_KEYS.to_owned()),
            ("keys.json", public_half(DEMO_KEYS)),
            ("enc.jwks.json", JWE_SETS[1].0.to_owned()),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, text));
            if let Err(e) = written {
                panic!("{}: {e}", path.display());
            }
        }
        ConfigDir {
            file: dir.join("portcullis.toml"),
            fetcher: Fetcher::new(),
            clock: crate::time::ManualClock::new(1_700_000_000),
        }
    })
}

/// The demo configuration's private signing keys.
const DEMO_KEYS: &str = include_str!("../config/keys/demo.private.jwks.json");

/// A JWKS document without its private members.
fn public_half(doc: &str) -> String {
    let mut value: Value = serde_json::from_str(doc).unwrap_or_else(|e| panic!("fixture: {e}"));
    if let Some(keys) = value.get_mut("keys").and_then(Value::as_array_mut) {
        for key in keys.iter_mut().filter_map(Value::as_object_mut) {
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
                key.remove(private);
            }
        }
    }
    value.to_string()
}

/// No environment: `client_secret_env` names nothing.
fn no_env(_: &str) -> Option<String> {
    None
}

/// The configuration loader and compiler, on the input written as a TOML file. Never panics;
/// a refused configuration has at least one error, and every error names the file, an
/// entity and what is wrong.
pub fn config(data: &[u8]) {
    let dir = config_dir();
    if let Err(e) = std::fs::write(&dir.file, data) {
        panic!("{}: {e}", dir.file.display());
    }
    let env: Env = no_env;
    let cx = CompileContext {
        managed: &[],
        clock: dir.clock.clone(),
        fetcher: dir.fetcher.clone(),
        previous: None,
        env,
    };
    let Err(errors) = crate::config::load(&dir.file, &cx) else {
        return;
    };
    assert!(!errors.is_empty(), "refused without an error");
    for e in &errors.0 {
        assert_eq!(e.file, dir.file, "{e}");
        assert!(!e.entity.is_empty() && !e.message.is_empty(), "{e:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Issuer requests
// ---------------------------------------------------------------------------------------

/// The issuer's form parsing and client-credential reading. Input: an `Authorization` value
/// (empty: none), a newline, then the form body. The form holds what the body says (empty
/// values omitted, `resource` repeatable, nothing else repeated); exactly one credential
/// method is read, and it is the one the request carries; an assertion's claimed id is its
/// `client_id` or else its unverified `sub`.
pub fn issuer_form(data: &[u8]) {
    let (auth, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let form = match Form::parse(body) {
        Ok(form) => form,
        Err(e) => {
            assert!(matches!(e, OAuthError::InvalidRequest(_)), "{e:?}");
            return;
        }
    };
    let mut resources = Vec::new();
    for (k, v) in form_urlencoded::parse(body).filter(|(_, v)| !v.is_empty()) {
        if k == "resource" {
            resources.push(v.into_owned());
        } else {
            assert_eq!(form.get(&k), Some(&*v), "{k:?}");
        }
    }
    assert_eq!(form.resources, resources);
    let mut headers = HeaderMap::new();
    if !auth.is_empty() {
        let Ok(value) = HeaderValue::from_bytes(auth) else {
            return;
        };
        headers.insert(AUTHORIZATION, value);
    }
    let Ok(presented) = client_auth::presented(&headers, &form) else {
        return;
    };
    check_presented(&presented, &headers, &form);
}

fn check_presented(presented: &Presented, headers: &HeaderMap, form: &Form) {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let post = form.get("client_secret").is_some();
    let assertion = form.get("client_assertion").is_some();
    assert_eq!(usize::from(basic) + usize::from(post) + usize::from(assertion), 1);
    match presented {
        Presented::Basic { id, .. } => {
            assert!(basic);
            assert!(form.get("client_id").is_none_or(|body| body == id));
        }
        Presented::Post { id, secret } => {
            assert!(post);
            assert_eq!(
                (form.get("client_id"), form.get("client_secret")),
                (Some(&**id), Some(&**secret))
            );
        }
        Presented::Assertion { jwt, id } => {
            assert!(assertion && form.get("client_assertion_type") == Some(JWT_BEARER));
            assert_eq!(id.as_deref(), form.get("client_id"));
            let unverified_sub = || {
                let payload = jwt.split('.').nth(1)?;
                let claims = Claims::parse(&jws::b64(payload).ok()?).ok()?;
                claims.sub().map(str::to_owned)
            };
            let expected = id.clone().or_else(unverified_sub);
            assert_eq!(presented.claimed_id(), expected);
            if let Ok(compact) = jws::split(jwt)
                && let Ok(header) = jws::assertion_header(compact.header, &HMAC_ALGS)
            {
                assert!(HMAC_ALGS.contains(&header.alg));
            }
        }
    }
}

/// The fuzz findings, minimized (`cargo fuzz tmin`) and replayed through the harness that
/// found them: each input once failed its property.
#[cfg(test)]
mod tests {
    /// jws: `{"alg":"ES256","":1E2000}`, a header with a member `serde_json::Value` cannot
    /// hold; the header check accepted it (rightly: it is JSON), the harness's independent
    /// reading of `alg` refused it.
    #[test]
    fn jws_header_with_a_number_beyond_f64() {
        super::jws(b"\xff\x03{\"alg\":\"ES256\",\"\":1E2000}\n}");
    }
}
