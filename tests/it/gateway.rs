//! The gateway's refusal answers, end to end: each refusal never reaches the upstream.

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn valid_token_is_forwarded_with_claim_headers() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let a = h.get("/items/7?x=1", &token).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.hits(), 1);
    let seen = h.upstream.last().await;
    assert_eq!(seen.uri, "/items/7?x=1");
    assert_eq!(
        seen.headers.get("x-auth-sub").map(|v| v.as_bytes()),
        Some(&b"client-1"[..])
    );
    assert_eq!(
        seen.headers.get("x-auth-scope").map(|v| v.as_bytes()),
        Some(&b"read"[..])
    );
    // The Authorization header is kept by default.
    assert!(seen.headers.get("authorization").is_some());
}

/// The challenge without a token: the realm, and where the resource's RFC 9728 metadata is
/// (the origin is the configuration's, here the default `http://<listen>`).
const BARE: &str =
    r#"Bearer realm="t", resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource""#;

#[tokio::test]
async fn no_token_gets_a_bare_challenge() {
    let h = Harness::start().await;
    let a = h.send(Method::GET, "/items/7", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.challenge(), BARE);
    assert_eq!(h.upstream.hits(), 0);
    // Another scheme is no bearer token either.
    let a = h
        .send(Method::GET, "/items/7", &[("authorization", "Basic dXNlcjpwYXNz")], "")
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.challenge(), BARE);
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn bad_token_is_invalid_token() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in ["junk", "a.b.c", tampered.as_str(), "a.b.c.d.e"] {
        assert_invalid_token(&h.get("/items/7", bad).await, bad);
    }
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn missing_scope_is_insufficient_scope_with_the_scope() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let a = h.post("/items", &token, "{}").await;
    assert_insufficient_scope(&a, "write");
    assert_eq!(h.upstream.hits(), 0);
    // With the scope it goes through, body and all.
    let token = h.key.sign(&claims("read write"));
    let a = h.post("/items", &token, "{\"a\":1}").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&h.upstream.last().await.body[..], b"{\"a\":1}");
}

#[tokio::test]
async fn scp_array_and_any_rule() {
    let h = Harness::start().await;
    let mut c = claims("");
    c.as_object_mut().map(|m| m.remove("scope"));
    c["scp"] = json!(["write"]);
    let token = h.key.sign(&c);
    assert_eq!(h.get("/either", &token).await.status, StatusCode::OK);
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::FORBIDDEN);
    let none = h.key.sign(&claims("admin"));
    assert_eq!(h.get("/either", &none).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn old_authentication_is_insufficient_user_authentication() {
    let h = Harness::start().await;
    let mut c = claims("admin");
    c["auth_time"] = json!(NOW - 301);
    let a = h.get("/items/admin/x", &h.key.sign(&c)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.challenge().contains(r#"error="insufficient_user_authentication""#),
        "{}",
        a.challenge()
    );
    assert!(a.challenge().contains("max_age=300"), "{}", a.challenge());
    // No auth_time at all cannot prove a recent login either.
    c.as_object_mut().map(|m| m.remove("auth_time"));
    let a = h.get("/items/admin/x", &h.key.sign(&c)).await;
    assert!(a.challenge().contains("insufficient_user_authentication"));
    assert_eq!(h.upstream.hits(), 0);
    // Recent enough passes.
    c["auth_time"] = json!(NOW - 299);
    assert_eq!(h.get("/items/admin/x", &h.key.sign(&c)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unmatched_requests_are_refused_not_forwarded() {
    let config = default_config().replace("paths = [\"/**\"]", "paths = [\"/open/**\"]");
    let h = Harness::builder().config(config).start().await;
    let token = h.key.sign(&claims("read write admin"));
    let a = h.get("/nothing/here", &token).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // A method no resource lists for the path is unmatched too.
    let a = h
        .send(
            Method::DELETE,
            "/items/1",
            &[("authorization", &format!("Bearer {token}"))],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn repeated_bad_tokens_are_refused_from_memory() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let mut bad = token.clone();
    let last = bad.pop().unwrap_or('A');
    bad.push(if last == 'A' { 'B' } else { 'A' });
    let cache = h.gateway.verifier().cache().clone();
    assert_eq!(h.get("/items/1", &bad).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(cache.refusal_hits(), 0);
    let first = h.get("/items/1", &bad).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        cache.refusal_hits(),
        1,
        "the second refusal did the verification work again"
    );
    // The answer is the same as the first one.
    assert_eq!(first.error(), "invalid_token");
    // A good token is unaffected, and refusals never answer for other tokens.
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
    assert_eq!(cache.refusal_hits(), 1);
    // A reload forgets refusals (the rules may have changed).
    h.gateway.reload().await.unwrap();
    assert_eq!(h.get("/items/1", &bad).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(cache.refusal_hits(), 1);
}

#[tokio::test]
async fn an_authentication_time_in_the_future_is_an_invalid_token() {
    let h = Harness::start().await;
    let mut c = claims("admin read");
    // Ten years ahead would pass a five-minute max_age for ten years.
    c["auth_time"] = json!(NOW + 10 * 365 * 86_400);
    let token = h.key.sign(&c);
    for path in ["/items/admin/x", "/items/1"] {
        assert_invalid_token(&h.get(path, &token).await, path);
    }
    assert_eq!(h.upstream.hits(), 0);
    // Within the leeway is a clock difference, not a lie.
    c["auth_time"] = json!(NOW + 5);
    assert_eq!(h.get("/items/admin/x", &h.key.sign(&c)).await.status, StatusCode::OK);
}

/// The order of the P-256 group (FIPS 186-4 D.1.2.3), big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// The same ES256 token with its signature `(r, s)` replaced by `(r, n − s)`, which verifies
/// just as well (ECDSA signatures are malleable).
fn malleate_es256(token: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, sig) = token.rsplit_once('.').expect("not a JWS");
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    assert_eq!(sig.len(), 64);
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_N[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = (d + (borrow << 8)) as u8;
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[tokio::test]
async fn a_revoked_token_stays_revoked_whatever_its_signature_spelling() {
    let h = Harness::start().await;
    let mut c = claims("read");
    // Without jti, the token's identity is what was signed, not the bytes sent.
    c.as_object_mut().map(|m| m.remove("jti"));
    let token = h.key.sign(&c);
    let twin = malleate_es256(&token);
    assert_ne!(token, twin);
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
    assert_eq!(
        h.get("/items/1", &twin).await.status,
        StatusCode::OK,
        "n - s verifies too"
    );
    let v = h.gateway.verifier();
    let snap = v.snapshot();
    let (i, rs) = snap.resource_server("api").expect("no api");
    let claims = v.verify_for(&snap, i, &token).await.unwrap();
    v.revoke(&snap, rs.realm, &token, &claims);
    for t in [&token, &twin] {
        let a = h.get("/items/1", t).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    }
    // Revoking the twin (verified on its own) is the same revocation.
    let fresh = {
        let mut c = c.clone();
        c["sub"] = json!("other");
        h.key.sign(&c)
    };
    let fresh_twin = malleate_es256(&fresh);
    let claims = v.verify_for(&snap, i, &fresh_twin).await.unwrap();
    v.revoke(&snap, rs.realm, &fresh_twin, &claims);
    assert_eq!(h.get("/items/1", &fresh).await.status, StatusCode::UNAUTHORIZED);
    // With a jti, the jti is the identity: another token with it is revoked too.
    let with_jti = h.key.sign(&claims_with_jti("j-revoked", "a"));
    let claims = v.verify_for(&snap, i, &with_jti).await.unwrap();
    v.revoke(&snap, rs.realm, &with_jti, &claims);
    let same_jti = h.key.sign(&claims_with_jti("j-revoked", "b"));
    assert_eq!(h.get("/items/1", &same_jti).await.status, StatusCode::UNAUTHORIZED);
    let other_jti = h.key.sign(&claims_with_jti("j-other", "b"));
    assert_eq!(h.get("/items/1", &other_jti).await.status, StatusCode::OK);
}

fn claims_with_jti(jti: &str, sub: &str) -> serde_json::Value {
    let mut c = claims("read");
    c["jti"] = json!(jti);
    c["sub"] = json!(sub);
    c
}
