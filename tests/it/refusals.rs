//! Every token refusal (extract, verify, authorize), end to end
//! through the real gateway: `401` with `error="invalid_token"` in the challenge and the
//! JSON body, and the upstream never contacted. Each refusal sits next to a control that
//! is accepted, so a test fails if the check it names were removed (an attack token
//! carries a real signature wherever one can be made, so only the check stops it).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::support::*;

// ---------------------------------------------------------------------------------------
// Helpers (local to this file: support.rs is shared).
// ---------------------------------------------------------------------------------------

/// The realm's algorithm line in [`default_config`].
const DEFAULT_ALGS: &str = r#"algorithms = ["ES256", "RS256", "PS256", "ES384", "EdDSA"]"#;

/// Asserts the `invalid_token` answer for `token` at GET `path`, upstream untouched.
async fn refused(h: &Harness, path: &str, token: &str, what: &str) {
    let before = h.upstream.hits();
    let a = h.get(path, token).await;
    assert_invalid_token(&a, what);
    assert_eq!(h.upstream.hits(), before, "{what}: the upstream was contacted");
}

/// Asserts that each of `bad` as claim `name` of `c`, and `c` without `name`, is refused
/// at GET `/items/1`.
async fn refused_values(h: &Harness, c: &Value, name: &str, bad: &[Value]) {
    for v in bad {
        let token = h.key.sign(&with(c.clone(), name, v.clone()));
        refused(h, "/items/1", &token, &format!("{name} {v}")).await;
    }
    let token = h.key.sign(&without(c.clone(), name));
    refused(h, "/items/1", &token, &format!("no {name}")).await;
}

/// Asserts `token` goes through at GET `path` and reaches the upstream exactly once.
async fn accepted(h: &Harness, path: &str, token: &str, what: &str) {
    let before = h.upstream.hits();
    let a = h.get(path, token).await;
    assert_eq!(a.status, StatusCode::OK, "{what}: {} {}", a.body, a.challenge());
    assert_eq!(h.upstream.hits(), before + 1, "{what}: not forwarded once");
}

/// `header.payload.signature` from already-encoded segments, signed by `key` with `alg`.
fn sign_segments(key: &TestKey, alg: Algorithm, header: &str, payload: &str) -> String {
    let input = format!("{header}.{payload}");
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, alg).expect("sign");
    format!("{input}.{sig}")
}

/// A token with `header` and `claims`, really signed by `key` with `alg` (which may differ
/// from both the key's published `alg` and the header's).
fn sign_as(key: &TestKey, alg: Algorithm, header: &Value, claims: &Value) -> String {
    sign_segments(key, alg, &b64(&header.to_string()), &b64(&claims.to_string()))
}

/// A token with an arbitrary, already-encoded signature segment.
fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(&header.to_string()), b64(&claims.to_string()))
}

/// An HMAC-signed token (`alg` is HS256/384/512) with `secret` as the HMAC key.
fn hmac(secret: &[u8], alg: Algorithm, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg).expect("hmac");
    format!("{input}.{sig}")
}

/// `claims` with `name` set to `value`.
fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

/// `claims` without `name`.
fn without(mut claims: Value, name: &str) -> Value {
    if let Some(m) = claims.as_object_mut() {
        m.remove(name);
    }
    claims
}

/// The standard header a key signs with.
fn header_of(key: &TestKey) -> Value {
    json!({ "alg": key.alg_name, "kid": key.kid, "typ": "at+jwt" })
}

/// A key's public JWK without its `alg`, so that every algorithm of its type fits it.
fn public_without_alg(key: &TestKey) -> Value {
    without(key.public.clone(), "alg")
}

fn jwks_of(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

// ---------------------------------------------------------------------------------------
// alg: none, HMAC, the allow-list, key types
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_any_spelling_is_refused() {
    let h = Harness::start().await;
    let c = claims("read");
    // A real ES256 signature over exactly the signing input of each forged token, so that a
    // verifier falling back to the key's own algorithm would accept it.
    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [
            json!({ "alg": alg }),
            json!({ "alg": alg, "typ": "at+jwt" }),
            json!({ "alg": alg, "kid": "k1", "typ": "at+jwt" }),
        ] {
            let unsigned = forge(&header, &c, "");
            refused(&h, "/items/1", &unsigned, &format!("{header} with an empty signature")).await;
            let two_parts = unsigned.trim_end_matches('.').to_owned();
            refused(
                &h,
                "/items/1",
                &two_parts,
                &format!("{header} without a signature part"),
            )
            .await;
            refused(
                &h,
                "/items/1",
                &forge(&header, &c, "AAAA"),
                &format!("{header} with junk signature"),
            )
            .await;
            let really_signed = sign_as(&h.key, Algorithm::ES256, &header, &c);
            refused(
                &h,
                "/items/1",
                &really_signed,
                &format!("{header} with a real ES256 signature"),
            )
            .await;
        }
    }
    // No alg at all, or an empty one, is no better.
    for header in [
        json!({ "kid": "k1" }),
        json!({ "alg": "", "kid": "k1" }),
        json!({ "alg": null, "kid": "k1" }),
    ] {
        refused(
            &h,
            "/items/1",
            &sign_as(&h.key, Algorithm::ES256, &header, &c),
            &header.to_string(),
        )
        .await;
    }
    assert_eq!(h.upstream.hits(), 0);
    // Control: the same claims, honestly signed, pass.
    accepted(&h, "/items/1", &h.key.sign(&c), "honest ES256").await;
}

#[tokio::test]
async fn hmac_with_the_public_key_as_secret_is_refused() {
    let ec = TestKey::es256("k1");
    let rsa = TestKey::generate("RS256", "r1");
    let jwks = public_jwks(&[&ec, &rsa]);
    let h = Harness::builder().jwks(&jwks).key(ec.clone()).start().await;
    let c = claims("read");
    let field = |k: &TestKey, name: &str| -> String {
        k.public[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", k.public))
            .to_owned()
    };
    let decoded = |s: String| URL_SAFE_NO_PAD.decode(s).unwrap();
    // Everything an attacker can read from the realm's published keys.
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("EC public JWK JSON", ec.public.to_string().into_bytes()),
        ("whole JWKS document", jwks.clone().into_bytes()),
        ("EC x coordinate bytes", decoded(field(&ec, "x"))),
        ("EC x coordinate text", field(&ec, "x").into_bytes()),
        (
            "EC x||y bytes",
            [decoded(field(&ec, "x")), decoded(field(&ec, "y"))].concat(),
        ),
        ("RSA public JWK JSON", rsa.public.to_string().into_bytes()),
        ("RSA modulus bytes", decoded(field(&rsa, "n"))),
    ];
    for (what, secret) in &secrets {
        for (alg, name) in [
            (Algorithm::HS256, "HS256"),
            (Algorithm::HS384, "HS384"),
            (Algorithm::HS512, "HS512"),
        ] {
            for kid in [Some("k1"), Some("r1"), None] {
                let mut header = json!({ "alg": name, "typ": "at+jwt" });
                if let Some(kid) = kid {
                    header["kid"] = json!(kid);
                }
                let token = hmac(secret, alg, &header, &c);
                refused(
                    &h,
                    "/items/1",
                    &token,
                    &format!("{name} keyed with {what}, kid {kid:?}"),
                )
                .await;
            }
        }
    }
    assert_eq!(h.upstream.hits(), 0);
    accepted(&h, "/items/1", &ec.sign(&c), "honest ES256").await;
    accepted(&h, "/items/1", &rsa.sign(&c), "honest RS256").await;
}

/// The realm accepts ES256 and RS256 only. Its RSA key is published without `alg`, so the
/// key itself fits every RSA algorithm: only the realm's allow-list stops a PS256 (or
/// RS384, ...) token that really verifies under that key.
#[tokio::test]
async fn algorithm_outside_the_realm_allow_list_is_refused() {
    let ec = TestKey::es256("k1");
    let rsa = TestKey::generate("RS256", "r1");
    let jwks = jwks_of(&[ec.public.clone(), public_without_alg(&rsa)]);
    let narrow = edit(&default_config(), DEFAULT_ALGS, r#"algorithms = ["ES256", "RS256"]"#);
    let h = Harness::builder()
        .config(narrow)
        .jwks(&jwks)
        .key(ec.clone())
        .start()
        .await;
    let c = claims("read");
    let others = [
        (Algorithm::PS256, "PS256"),
        (Algorithm::PS384, "PS384"),
        (Algorithm::PS512, "PS512"),
        (Algorithm::RS384, "RS384"),
        (Algorithm::RS512, "RS512"),
    ];
    let mut tokens = Vec::new();
    for (alg, name) in others {
        for header in [
            json!({ "alg": name, "kid": "r1", "typ": "at+jwt" }),
            json!({ "alg": name, "typ": "at+jwt" }),
        ] {
            let token = sign_as(&rsa, alg, &header, &c);
            refused(&h, "/items/1", &token, &format!("{header} on an ES256+RS256 realm")).await;
            tokens.push((header, token));
        }
    }
    assert_eq!(h.upstream.hits(), 0);
    accepted(
        &h,
        "/items/1",
        &sign_as(&rsa, Algorithm::RS256, &header_of(&rsa), &c),
        "RS256",
    )
    .await;
    accepted(&h, "/items/1", &ec.sign(&c), "ES256").await;

    // Control: the very same tokens pass on a realm that lists every RSA algorithm, so the
    // allow-list (and nothing else) refused them above.
    let wide = edit(
        &default_config(),
        DEFAULT_ALGS,
        r#"algorithms = ["ES256", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]"#,
    );
    let wide = Harness::builder().config(wide).jwks(jwks).key(ec).start().await;
    for (header, token) in &tokens {
        accepted(&wide, "/items/1", token, &format!("{header} on a realm allowing it")).await;
    }
}

#[tokio::test]
async fn header_alg_must_fit_the_key_it_names() {
    let ec = TestKey::es256("k1");
    let rsa = TestKey::generate("RS256", "r1"); // published with alg RS256
    let ed = TestKey::generate("EdDSA", "d1");
    let jwks = public_jwks(&[&ec, &rsa, &ed]);
    let h = Harness::builder().jwks(jwks).key(ec.clone()).start().await;
    let c = claims("read");
    let cases = [
        // RS256 naming the EC key, really signed by the RSA key.
        (
            sign_as(&rsa, Algorithm::RS256, &json!({ "alg": "RS256", "kid": "k1" }), &c),
            "RS256 with the EC kid",
        ),
        // ES256 naming the RSA key, really signed by the EC key.
        (
            sign_as(&ec, Algorithm::ES256, &json!({ "alg": "ES256", "kid": "r1" }), &c),
            "ES256 with the RSA kid",
        ),
        // EdDSA naming the EC key, really signed by the Ed25519 key.
        (
            sign_as(&ed, Algorithm::EdDSA, &json!({ "alg": "EdDSA", "kid": "k1" }), &c),
            "EdDSA with the EC kid",
        ),
        // ES256 naming the Ed25519 key.
        (
            sign_as(&ec, Algorithm::ES256, &json!({ "alg": "ES256", "kid": "d1" }), &c),
            "ES256 with the Ed kid",
        ),
        // PS256 is on the realm's list and the RSA key could do it, but the key is published
        // for RS256 only: a real PS256 signature by that very key is refused.
        (
            sign_as(&rsa, Algorithm::PS256, &json!({ "alg": "PS256", "kid": "r1" }), &c),
            "PS256 with an RS256-only key",
        ),
        (
            sign_as(&rsa, Algorithm::PS256, &json!({ "alg": "PS256" }), &c),
            "kid-less PS256, no PS256 key",
        ),
        // ES384 is on the realm's list but no P-384 key exists.
        (
            sign_as(&ec, Algorithm::ES256, &json!({ "alg": "ES384", "kid": "k1" }), &c),
            "ES384 naming a P-256 key",
        ),
    ];
    for (token, what) in &cases {
        refused(&h, "/items/1", token, what).await;
    }
    assert_eq!(h.upstream.hits(), 0);
    accepted(&h, "/items/1", &ec.sign(&c), "ES256 with its own kid").await;
    accepted(&h, "/items/1", &rsa.sign(&c), "RS256 with its own kid").await;
    accepted(&h, "/items/1", &ed.sign(&c), "EdDSA with its own kid").await;
}

// ---------------------------------------------------------------------------------------
// crit and key-carrying headers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_crit_is_refused_even_when_signed() {
    let h = Harness::start().await;
    let c = claims("read");
    let base = header_of(&h.key);
    for (crit, extra) in [
        (json!(["exp"]), ("exp", json!(NOW + 300))),
        (json!(["urn:example:unknown"]), ("urn:example:unknown", json!(true))),
        (json!(["b64"]), ("b64", json!(true))),
        (json!([]), ("x", json!(1))),
    ] {
        let mut header = base.clone();
        header["crit"] = crit;
        header[extra.0] = extra.1;
        refused(
            &h,
            "/items/1",
            &h.key.sign_with_header(&header, &c),
            &header.to_string(),
        )
        .await;
    }
    assert_eq!(h.upstream.hits(), 0);
    // Control: an unknown header parameter outside `crit` is simply ignored.
    let mut header = base;
    header["urn:example:unknown"] = json!(true);
    accepted(
        &h,
        "/items/1",
        &h.key.sign_with_header(&header, &c),
        "unknown non-critical parameter",
    )
    .await;
}

#[tokio::test]
async fn key_headers_are_refused_and_never_followed() {
    let h = Harness::start().await;
    // A key server an attacker controls, on loopback, serving the attacker's key.
    let attacker = TestKey::es256("evil");
    let attacker_k1 = TestKey::es256("k1"); // an attacker key reusing the realm's kid
    let evil = Upstream::serving(public_jwks(&[&attacker, &attacker_k1])).await;
    let c = claims("read");
    let with_param = |name: &str, value: Value| {
        let mut header = header_of(&h.key);
        header[name] = value;
        header
    };
    // Real signatures by the realm's own key: the parameters alone make them refused.
    let cert = STANDARD.encode(b"not really a certificate");
    for header in [
        with_param("jku", json!(evil.url("/jwks.json"))),
        with_param("x5u", json!(evil.url("/jwks.json"))),
        with_param("jwk", h.key.public.clone()),
        with_param("x5c", json!([cert])),
        with_param("x5c", json!([])),
        with_param("jwk", json!({})),
    ] {
        refused(
            &h,
            "/items/1",
            &h.key.sign_with_header(&header, &c),
            &format!("{header} signed by k1"),
        )
        .await;
    }
    // Attacker-signed tokens that carry (or point at) the attacker's public key.
    for key in [&attacker, &attacker_k1] {
        for (name, value) in [
            ("jwk", key.public.clone()),
            ("jwk", without(key.public.clone(), "kid")),
            ("jku", json!(evil.url("/jwks.json"))),
            ("x5u", json!(evil.url("/jwks.json"))),
        ] {
            let mut header = header_of(key);
            header[name] = value;
            refused(
                &h,
                "/items/1",
                &key.sign_with_header(&header, &c),
                &format!("{header} signed by the attacker"),
            )
            .await;
            // Without the realm's kid, too.
            if let Some(m) = header.as_object_mut() {
                m.remove("kid");
            }
            refused(
                &h,
                "/items/1",
                &key.sign_with_header(&header, &c),
                &format!("{header} signed by the attacker"),
            )
            .await;
        }
        // Without any key header, the attacker's key is simply unknown.
        refused(&h, "/items/1", &key.sign(&c), "attacker-signed, plain header").await;
    }
    assert_eq!(evil.hits(), 0, "a jku/x5u URL was fetched");
    assert_eq!(h.upstream.hits(), 0);
    accepted(&h, "/items/1", &h.key.sign(&c), "the realm key, plain header").await;
}

// ---------------------------------------------------------------------------------------
// Size and syntax
// ---------------------------------------------------------------------------------------

/// A token signed by `key` whose claims carry `pad` filler characters.
fn padded(key: &TestKey, pad: usize) -> String {
    key.sign(&with(claims("read"), "pad", json!("x".repeat(pad))))
}

/// The largest padding that keeps the token within `limit` bytes, and that token.
fn largest_within(key: &TestKey, limit: usize) -> (usize, String) {
    let base = padded(key, 0).len();
    assert!(base < limit, "an unpadded token is already {base} bytes");
    // Each 3 pad bytes add 4 base64url characters.
    let mut pad = (limit - base) * 3 / 4;
    while padded(key, pad).len() > limit {
        pad -= 1;
    }
    while padded(key, pad + 1).len() <= limit {
        pad += 1;
    }
    (pad, padded(key, pad))
}

#[tokio::test]
async fn token_over_max_token_bytes_is_refused_even_if_signed() {
    let h = Harness::start().await;
    let (pad, fits) = largest_within(&h.key, 8 * 1024);
    let over = padded(&h.key, pad + 1);
    assert!(
        fits.len() > 8 * 1024 - 4 && over.len() > 8 * 1024,
        "{} {}",
        fits.len(),
        over.len()
    );
    refused(
        &h,
        "/items/1",
        &over,
        &format!("{} bytes, correctly signed", over.len()),
    )
    .await;
    refused(&h, "/items/1", &padded(&h.key, 12_000), "~16 KiB, correctly signed").await;
    assert_eq!(h.upstream.hits(), 0);
    accepted(&h, "/items/1", &fits, &format!("{} bytes", fits.len())).await;
}

#[tokio::test]
async fn configured_max_token_bytes_is_honoured() {
    let config = edit(
        &default_config(),
        DEFAULT_ALGS,
        &format!("{DEFAULT_ALGS}\nmax_token_bytes = 1024"),
    );
    let h = Harness::builder().config(config).start().await;
    let (pad, fits) = largest_within(&h.key, 1024);
    refused(
        &h,
        "/items/1",
        &padded(&h.key, pad + 1),
        "1 KiB + a little, correctly signed",
    )
    .await;
    assert_eq!(h.upstream.hits(), 0);
    accepted(&h, "/items/1", &fits, &format!("{} bytes", fits.len())).await;
}

#[tokio::test]
async fn junk_tokens_are_refused() {
    let h = Harness::start().await;
    let c = claims("read");
    let good = h.key.sign(&c);
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 3);
    let (hd, pl, sig) = (parts[0], parts[1], parts[2]);
    let hdr = header_of(&h.key).to_string();
    // Segments written with standard (padded, +/) base64 instead of base64url; the header
    // is chosen so that its standard encoding needs padding.
    let padded_header = {
        let mut text = hdr.clone();
        while text.len().is_multiple_of(3) {
            text.insert(1, ' ');
        }
        STANDARD.encode(text)
    };
    assert!(padded_header.ends_with('='));
    let plus_slash_claims = {
        // Find filler whose claims encode with a '+' or '/' in standard base64.
        let mut n = 0;
        loop {
            let text = with(c.clone(), "f", json!("?".repeat(n))).to_string();
            let enc = STANDARD.encode(&text).trim_end_matches('=').to_owned();
            if enc.contains('+') || enc.contains('/') {
                break enc;
            }
            n += 1;
        }
    };
    // A real token whose signature segment differs in the standard base64 alphabet (ECDSA
    // signatures are randomized: sign until one has a '-' or '_').
    let std_alphabet_sig = (0..1000)
        .map(|i| h.key.sign(&with(c.clone(), "jti", json!(i))))
        .find_map(|t| {
            let (input, sig) = t.rsplit_once('.')?;
            (sig.contains(['-', '_'])).then(|| format!("{input}.{}", sig.replace('-', "+").replace('_', "/")))
        })
        .expect("no signature with '-' or '_' in 1000 tries");
    let junk: Vec<(String, &str)> = vec![
        ("junk".into(), "one word"),
        ("~~~.~~~.~~~".into(), "b64token characters that are not base64url"),
        (format!("{hd}.{pl}"), "two parts"),
        (format!("{hd}.{pl}.{sig}.{sig}"), "four parts"),
        (format!("{hd}..{sig}"), "empty payload"),
        (format!(".{pl}.{sig}"), "empty header"),
        (format!("{hd}.{pl}.{sig}="), "padding after the signature"),
        (format!("{hd}.{pl}.{sig}=="), "double padding after the signature"),
        (format!("{hd}=.{pl}.{sig}"), "padding after the header"),
        (format!("{padded_header}.{pl}.{sig}"), "padded standard base64 header"),
        (
            sign_segments(&h.key, Algorithm::ES256, &padded_header, pl),
            "padded header, signed",
        ),
        (
            sign_segments(&h.key, Algorithm::ES256, hd, &plus_slash_claims),
            "standard base64 claims, signed",
        ),
        (
            format!("{}{}.{pl}.{sig}", &hd[..hd.len() - 1], '~'),
            "header with a stray character",
        ),
        (std_alphabet_sig, "signature in standard base64"),
    ];
    for (token, what) in &junk {
        refused(&h, "/items/1", token, what).await;
    }
    // Validly signed, but the header or the claims are not what they must be.
    let b = |s: &str| b64(s);
    let signed: Vec<(String, &str)> = vec![
        (
            sign_segments(&h.key, Algorithm::ES256, &b("not json"), pl),
            "header not JSON",
        ),
        (
            sign_segments(&h.key, Algorithm::ES256, &b(r#"["ES256"]"#), pl),
            "header a JSON array",
        ),
        (
            sign_segments(&h.key, Algorithm::ES256, &b(r#""ES256""#), pl),
            "header a JSON string",
        ),
        (
            sign_segments(&h.key, Algorithm::ES256, &b(&hdr[..hdr.len() - 1]), pl),
            "header cut short",
        ),
        (
            sign_segments(&h.key, Algorithm::ES256, hd, &b("not json")),
            "claims not JSON",
        ),
        (
            sign_segments(&h.key, Algorithm::ES256, hd, &b("[1,2]")),
            "claims a JSON array",
        ),
        (
            sign_segments(&h.key, Algorithm::ES256, hd, &b(r#""claims""#)),
            "claims a JSON string",
        ),
        (sign_segments(&h.key, Algorithm::ES256, hd, &b("null")), "claims null"),
        (sign_segments(&h.key, Algorithm::ES256, hd, &b("")), "claims empty"),
        // Duplicate `alg`: a last-wins (or first-wins) parser would see ES256 and verify the
        // real signature; the gateway refuses the ambiguity.
        (
            sign_segments(
                &h.key,
                Algorithm::ES256,
                &b(r#"{"alg":"none","kid":"k1","typ":"at+jwt","alg":"ES256"}"#),
                pl,
            ),
            "duplicate alg, ES256 last",
        ),
        (
            sign_segments(
                &h.key,
                Algorithm::ES256,
                &b(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","alg":"HS256"}"#),
                pl,
            ),
            "duplicate alg, ES256 first",
        ),
        (
            sign_segments(
                &h.key,
                Algorithm::ES256,
                &b(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","alg":"ES256"}"#),
                pl,
            ),
            "duplicate alg, same value twice",
        ),
        (
            sign_segments(
                &h.key,
                Algorithm::ES256,
                &b(r#"{"alg":"ES256","kid":"nope","typ":"at+jwt","kid":"k1"}"#),
                pl,
            ),
            "duplicate kid",
        ),
    ];
    for (token, what) in &signed {
        refused(&h, "/items/1", token, what).await;
    }
    assert_eq!(h.upstream.hits(), 0);
    // Control: the unmodified token, and the same header text re-signed, pass.
    accepted(&h, "/items/1", &good, "the untouched token").await;
    accepted(
        &h,
        "/items/1",
        &sign_segments(&h.key, Algorithm::ES256, &b(&hdr), pl),
        "re-signed",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Time claims
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn exp_is_enforced_with_leeway() {
    let h = Harness::start().await;
    let c = with(claims("read"), "iat", json!(NOW - 600));
    let sign = |c: &Value| h.key.sign(c);
    // "now >= exp + leeway" is expired: 60 s after exp is the first refused second.
    for (claims, what) in [
        (with(c.clone(), "exp", json!(NOW - 60)), "exp 60 s ago"),
        (with(c.clone(), "exp", json!(NOW - 61)), "exp 61 s ago"),
        (with(c.clone(), "exp", json!(NOW - 86_400)), "exp a day ago"),
        (without(c.clone(), "exp"), "no exp"),
    ] {
        refused(&h, "/items/1", &sign(&claims), what).await;
    }
    for bad in [
        json!((NOW + 300).to_string()),
        json!("tomorrow"),
        json!(null),
        json!(true),
        json!([NOW + 300]),
        json!({ "t": NOW + 300 }),
    ] {
        refused(
            &h,
            "/items/1",
            &sign(&with(c.clone(), "exp", bad.clone())),
            &format!("exp {bad}"),
        )
        .await;
    }
    assert_eq!(h.upstream.hits(), 0);
    for (claims, what) in [
        (with(c.clone(), "exp", json!(NOW - 59)), "exp 59 s ago"),
        (with(c.clone(), "exp", json!(NOW - 30)), "exp 30 s ago"),
        (with(c, "exp", json!(NOW + 1)), "exp in 1 s"),
    ] {
        accepted(&h, "/items/1", &sign(&claims), what).await;
    }
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_are_refused_beyond_leeway() {
    let h = Harness::start().await;
    let c = with(claims("read"), "exp", json!(NOW + 3600));
    let sign = |c: &Value| h.key.sign(c);
    for (claims, what) in [
        (with(c.clone(), "nbf", json!(NOW + 61)), "nbf in 61 s"),
        (with(c.clone(), "nbf", json!(NOW + 3000)), "nbf in 50 min"),
        (with(c.clone(), "iat", json!(NOW + 61)), "iat in 61 s"),
        (with(c.clone(), "iat", json!(NOW + 3000)), "iat in 50 min"),
    ] {
        refused(&h, "/items/1", &sign(&claims), what).await;
    }
    for name in ["nbf", "iat"] {
        refused(
            &h,
            "/items/1",
            &sign(&with(c.clone(), name, json!(NOW.to_string()))),
            &format!("{name} as a string"),
        )
        .await;
    }
    assert_eq!(h.upstream.hits(), 0);
    for (claims, what) in [
        (with(c.clone(), "nbf", json!(NOW + 60)), "nbf in 60 s"),
        (with(c.clone(), "nbf", json!(NOW - 10)), "nbf passed"),
        (with(c.clone(), "iat", json!(NOW + 60)), "iat in 60 s"),
        (without(without(c, "iat"), "nbf"), "no iat, no nbf"),
    ] {
        accepted(&h, "/items/1", &sign(&claims), what).await;
    }
}

// ---------------------------------------------------------------------------------------
// iss, aud, lifetime cap
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn issuer_must_be_the_realms() {
    let h = Harness::start().await;
    let c = claims("read");
    refused_values(
        &h,
        &c,
        "iss",
        &[
            json!("https://evil.test/realms/t"),
            json!(format!("{ISSUER}/")),
            json!(ISSUER.to_uppercase()),
            json!(""),
            json!([ISSUER]),
            json!(null),
        ],
    )
    .await;
    assert_eq!(h.upstream.hits(), 0);
    accepted(&h, "/items/1", &h.key.sign(&c), "the realm's issuer").await;
}

#[tokio::test]
async fn audience_must_contain_the_resource_servers() {
    let h = Harness::start().await;
    let c = claims("read");
    refused_values(
        &h,
        &c,
        "aud",
        &[
            json!("https://other.test"),
            json!(format!("{AUDIENCE}/")),
            json!(""),
            json!([]),
            json!(["https://other.test"]),
            json!(["https://other.test", "https://third.test"]),
            json!([AUDIENCE, 7]),
            json!(7),
            json!({ "aud": AUDIENCE }),
            json!(null),
        ],
    )
    .await;
    assert_eq!(h.upstream.hits(), 0);
    accepted(&h, "/items/1", &h.key.sign(&c), "aud string").await;
    accepted(
        &h,
        "/items/1",
        &h.key.sign(&with(c.clone(), "aud", json!([AUDIENCE]))),
        "aud [it]",
    )
    .await;
    let several = json!(["https://other.test", AUDIENCE]);
    accepted(&h, "/items/1", &h.key.sign(&with(c, "aud", several)), "aud [other, it]").await;
}

#[tokio::test]
async fn max_token_lifetime_caps_the_short_resource_only() {
    let h = Harness::start().await;
    let lifetime = |secs: i64| h.key.sign(&with(claims("read"), "exp", json!(NOW + secs)));
    let hour = lifetime(3600);
    refused(&h, "/short", &hour, "1 h token on a 10 min resource").await;
    refused(&h, "/short", &lifetime(601), "10 min 1 s token on a 10 min resource").await;
    // The cap needs iat to be judged.
    let no_iat = h
        .key
        .sign(&without(with(claims("read"), "exp", json!(NOW + 300)), "iat"));
    refused(&h, "/short", &no_iat, "no iat on a capped resource").await;
    // An old iat makes the lifetime longer even when little of it is left.
    let old = h.key.sign(&with(claims("read"), "iat", json!(NOW - 3000)));
    refused(&h, "/short", &old, "iat 50 min ago, exp in 5 min").await;
    assert_eq!(h.upstream.hits(), 0);
    accepted(&h, "/short", &lifetime(300), "5 min token").await;
    accepted(&h, "/short", &lifetime(600), "exactly 10 min token").await;
    // The cap belongs to /short; the same 1 h token is fine elsewhere.
    accepted(&h, "/items/1", &hour, "1 h token on an uncapped resource").await;
    accepted(&h, "/items/1", &no_iat, "no iat on an uncapped resource").await;
    // And the cached verification of the 1 h token does not let it into /short.
    refused(&h, "/short", &hour, "1 h token on /short after a cache hit elsewhere").await;
}

// ---------------------------------------------------------------------------------------
// typ, kid-less tokens, every algorithm
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn typ_values() {
    let h = Harness::start().await;
    let c = claims("read");
    let typed = |typ: Option<&str>| {
        let mut header = json!({ "alg": "ES256", "kid": "k1" });
        if let Some(t) = typ {
            header["typ"] = json!(t);
        }
        h.key.sign_with_header(&header, &c)
    };
    for typ in ["dpop+jwt", "logout+jwt", "secevent+jwt", "JWE", "at+jwt2", ""] {
        refused(&h, "/items/1", &typed(Some(typ)), &format!("typ {typ:?}")).await;
    }
    let non_string = h
        .key
        .sign_with_header(&json!({ "alg": "ES256", "kid": "k1", "typ": 1 }), &c);
    refused(&h, "/items/1", &non_string, "typ a number").await;
    assert_eq!(h.upstream.hits(), 0);
    for typ in [
        Some("at+jwt"),
        Some("application/at+jwt"),
        Some("AT+JWT"),
        Some("JWT"),
        Some("jwt"),
        None,
    ] {
        accepted(&h, "/items/1", &typed(typ), &format!("typ {typ:?}")).await;
    }

    // With require_at_jwt_typ, only at+jwt passes.
    let strict = edit(
        &default_config(),
        DEFAULT_ALGS,
        &format!("{DEFAULT_ALGS}\nrequire_at_jwt_typ = true"),
    );
    let s = Harness::builder().config(strict).key(h.key.clone()).start().await;
    for typ in [Some("JWT"), Some("application/jwt"), None, Some("dpop+jwt")] {
        refused(
            &s,
            "/items/1",
            &typed(typ),
            &format!("typ {typ:?} when at+jwt is required"),
        )
        .await;
    }
    assert_eq!(s.upstream.hits(), 0);
    for typ in [Some("at+jwt"), Some("application/at+jwt")] {
        accepted(
            &s,
            "/items/1",
            &typed(typ),
            &format!("typ {typ:?} when at+jwt is required"),
        )
        .await;
    }
}

#[tokio::test]
async fn kidless_tokens_verify_when_a_key_fits() {
    let ec_a = TestKey::es256("a");
    let ec_b = TestKey::es256("b");
    let rsa = TestKey::generate("RS256", "r");
    let ed = TestKey::generate("EdDSA", "d");
    let jwks = public_jwks(&[&ec_a, &rsa, &ed, &ec_b]);
    let h = Harness::builder().jwks(jwks).key(ec_a.clone()).start().await;
    let c = claims("read");
    let kidless = |k: &TestKey, typ: bool| {
        let mut header = json!({ "alg": k.alg_name });
        if typ {
            header["typ"] = json!("at+jwt");
        }
        k.sign_with_header(&header, &c)
    };
    // Refusals first: an unknown signer, and an algorithm no key has.
    let stranger = TestKey::es256("a");
    refused(
        &h,
        "/items/1",
        &kidless(&stranger, true),
        "kid-less, signed by an unknown key",
    )
    .await;
    let ps = TestKey::generate("PS256", "p");
    refused(&h, "/items/1", &kidless(&ps, true), "kid-less PS256, no PS256 key").await;
    let es384 = TestKey::generate("ES384", "e384");
    refused(&h, "/items/1", &kidless(&es384, true), "kid-less ES384, no ES384 key").await;
    assert_eq!(h.upstream.hits(), 0);
    for k in [&ec_a, &ec_b, &rsa, &ed] {
        accepted(
            &h,
            "/items/1",
            &kidless(k, true),
            &format!("kid-less {} ({})", k.alg_name, k.kid),
        )
        .await;
        accepted(
            &h,
            "/items/1",
            &kidless(k, false),
            &format!("kid-less, untyped {}", k.alg_name),
        )
        .await;
    }
}

#[tokio::test]
async fn every_supported_algorithm_verifies() {
    let keys: Vec<TestKey> = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
        .into_iter()
        .map(|alg| TestKey::generate(alg, &format!("key-{alg}")))
        .collect();
    let refs: Vec<&TestKey> = keys.iter().collect();
    let h = Harness::builder()
        .jwks(public_jwks(&refs))
        .key(keys[0].clone())
        .start()
        .await;
    let c = claims("read");
    // Each key's token with the next key's kid (of another type or alg) is refused.
    for (i, k) in keys.iter().enumerate() {
        let other = &keys[(i + 1) % keys.len()];
        let header = json!({ "alg": k.alg_name, "kid": other.kid, "typ": "at+jwt" });
        refused(
            &h,
            "/items/1",
            &k.sign_with_header(&header, &c),
            &format!("{} under {}", k.kid, other.kid),
        )
        .await;
        // And a flipped signature byte never verifies.
        let good = k.sign(&c);
        let (input, sig) = good.rsplit_once('.').unwrap_or_else(|| panic!("{good}"));
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[0] ^= 1;
        let tampered = format!("{input}.{}", URL_SAFE_NO_PAD.encode(raw));
        refused(
            &h,
            "/items/1",
            &tampered,
            &format!("{} with a flipped signature bit", k.alg_name),
        )
        .await;
    }
    assert_eq!(h.upstream.hits(), 0);
    for k in &keys {
        accepted(&h, "/items/1", &k.sign(&c), k.alg_name).await;
        let kidless = k.sign_with_header(&json!({ "alg": k.alg_name, "typ": "at+jwt" }), &c);
        accepted(&h, "/items/1", &kidless, &format!("{} without kid", k.alg_name)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The verified-token cache
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn cached_tokens_still_expire_and_still_need_scopes() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read")); // exp = NOW + 300
    accepted(&h, "/items/1", &token, "first use").await;
    assert_eq!(h.gateway.verifier().cache().len(), 1, "the token was not cached");
    // A cache hit on a route needing another scope: 403, not forwarded.
    let a = h.post("/items", &token, "{}").await;
    assert_insufficient_scope(&a, "write");
    assert_eq!(a.error(), "insufficient_scope");
    assert_eq!(h.upstream.hits(), 1);
    // A token differing from the cached one by its signature is not a cache hit.
    let mut tampered = token.clone();
    let last = tampered.pop().expect("empty token");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    refused(&h, "/items/1", &tampered, "the cached token with another signature").await;
    accepted(&h, "/items/1", &token, "cache hit").await;
    // Up to the last second of leeway it passes ...
    h.clock.advance(300 + 59);
    accepted(&h, "/items/1", &token, "exp + 59 s").await;
    // ... then it is refused although it is still in the cache.
    h.clock.advance(1);
    refused(&h, "/items/1", &token, "exp + 60 s, cached").await;
    h.clock.advance(3600);
    refused(&h, "/items/1", &token, "an hour later, cached").await;
    assert_eq!(h.upstream.hits(), 3);
}

#[tokio::test]
async fn cached_tokens_are_checked_against_each_resource_servers_audience() {
    let config = format!(
        "{}{}",
        default_config(),
        r#"
[[resource_server]]
id = "other"
realm = "t"
audience = "https://other.test"
upstream = "http://{upstream}"
scopes = ["read"]

[[protected_resource]]
id = "other"
resource_server = "other"
paths = ["/other/**"]
scopes = ["read"]
"#
    );
    let h = Harness::builder().config(config).start().await;
    let token = h.key.sign(&claims("read"));
    accepted(&h, "/items/1", &token, "for api").await;
    refused(&h, "/other/1", &token, "api's token at the other resource server").await;
    let both = h
        .key
        .sign(&with(claims("read"), "aud", json!([AUDIENCE, "https://other.test"])));
    accepted(&h, "/other/1", &both, "a token for both").await;
    accepted(&h, "/items/1", &both, "a token for both").await;
}

// ---------------------------------------------------------------------------------------
// Ambiguous credentials
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn several_authorization_headers_are_invalid_request() {
    let h = Harness::start().await;
    let good = format!("Bearer {}", h.key.sign(&claims("read")));
    let other = format!("Bearer {}", h.key.sign(&claims("read write")));
    for headers in [
        vec![("authorization", good.as_str()), ("authorization", good.as_str())],
        vec![("authorization", good.as_str()), ("authorization", other.as_str())],
        vec![
            ("authorization", good.as_str()),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ],
        vec![
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("authorization", good.as_str()),
        ],
    ] {
        let a = h.send(Method::GET, "/items/1", &headers, "").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{headers:?}: {}", a.body);
        assert!(
            a.challenge().contains(r#"error="invalid_request""#),
            "{}",
            a.challenge()
        );
        assert_eq!(a.error(), "invalid_request");
    }
    assert_eq!(h.upstream.hits(), 0);
    let a = h.send(Method::GET, "/items/1", &[("authorization", &good)], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.hits(), 1);
}
