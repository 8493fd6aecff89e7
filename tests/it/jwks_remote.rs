//! Remote key sets (`jwks_uri`), end to end: a realm whose only keys come from a JWKS
//! endpoint the test controls. Time is the harness' `ManualClock`; nothing here sleeps.

use std::sync::Arc;

use http::{Method, StatusCode};
use portcullis::jwks::{FetchError, RealmKeys};
use serde_json::json;

use crate::support::*;

/// The default test configuration with the realm's `jwks_file` replaced by `uri` (plain
/// http on loopback) and the extra realm settings in `extra`.
fn remote_config(uri: &str, extra: &str) -> String {
    let realm = format!("jwks_uri = \"{uri}\"\ndanger_allow_http_jwks = true\n{extra}\n");
    let config = default_config();
    assert!(
        config.contains("jwks_file = \"{keys}\"\n"),
        "default_config changed shape"
    );
    config.replace("jwks_file = \"{keys}\"\n", &realm)
}

/// Starts a gateway whose only realm takes its keys from `server`.
async fn start_remote(server: &Upstream, extra: &str, key: &TestKey) -> Harness {
    Harness::builder()
        .config(remote_config(&server.url("/jwks.json"), extra))
        .key(key.clone())
        .start()
        .await
}

/// The realm's key store as the running gateway sees it.
fn realm_keys(h: &Harness) -> Arc<RealmKeys> {
    h.gateway.verifier().snapshot().realms[RealmRef::at(0)].keys.clone()
}

/// A valid `read` token signed by `key`; a distinct `jti` gives a distinct token text, so
/// it cannot be answered from the verified-token cache.
fn token(key: &TestKey, jti: &str) -> String {
    let mut c = claims("read");
    c["jti"] = json!(jti);
    key.sign(&c)
}

/// A token signed by `key` but naming `kid` in its header.
fn token_with_kid(key: &TestKey, kid: &str, jti: &str) -> String {
    let mut c = claims("read");
    c["jti"] = json!(jti);
    key.sign_with_header(&json!({ "alg": key.alg_name, "kid": kid, "typ": "at+jwt" }), &c)
}

fn assert_ok(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::OK, "{what}: {}", a.body);
}

fn assert_unavailable(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {}", a.body);
    assert_eq!(a.error(), "temporarily_unavailable", "{what}");
    assert!(!a.challenge().contains("invalid_token"), "{what}: {}", a.challenge());
}

#[tokio::test]
async fn remote_only_realm_verifies_tokens_from_the_served_set() {
    let es = TestKey::es256("remote-es");
    let rs = TestKey::generate("RS256", "remote-rs");
    let server = Upstream::serving(public_jwks(&[&es, &rs])).await;
    let h = start_remote(&server, "", &es).await;

    let keys = realm_keys(&h);
    let health = keys.health();
    assert!(health.usable, "{health:?}");
    assert_eq!(health.local_keys, 0, "the realm has no local keys");
    assert_eq!(health.remote_keys, Some(2), "{health:?}");
    assert_eq!(server.hits(), 1, "fetched once at start");

    assert_ok(&h.get("/items/1", &token(&es, "a")).await, "ES256 key from the set");
    assert_ok(&h.get("/items/1", &token(&rs, "b")).await, "RS256 key from the set");
    assert_eq!(h.upstream.hits(), 2);

    // A key that merely claims a served kid does not verify.
    let impostor = TestKey::es256("remote-es");
    assert_invalid_token(&h.get("/items/1", &token(&impostor, "c")).await, "impostor");
    assert_eq!(h.upstream.hits(), 2);
}

#[tokio::test]
async fn rotation_new_kid_is_refetched_and_removed_kid_is_refused() {
    let old = TestKey::es256("old");
    let new = TestKey::es256("new");
    let server = Upstream::serving(public_jwks(&[&old])).await;
    let h = start_remote(&server, "", &old).await;
    let keys = realm_keys(&h);
    assert_eq!(server.hits(), 1);

    // Verified once, so it is in the verified-token cache from now on.
    let old_token = token(&old, "old-1");
    assert_ok(&h.get("/items/1", &old_token).await, "old key before rotation");
    let new_token = token(&new, "new-1");

    // The authorization server publishes the new key before using it.
    server.set(StatusCode::OK, public_jwks(&[&old, &new])).await;
    let before = keys.generation();
    assert_ok(&h.get("/items/1", &new_token).await, "new kid, found by refetch");
    assert_eq!(server.hits(), 2, "one unknown-kid refetch");
    assert!(keys.generation() > before, "the new set bumps the generation");
    assert_ok(&h.get("/items/1", &old_token).await, "old key still published");

    // The old key is withdrawn.
    server.set(StatusCode::OK, public_jwks(&[&new])).await;
    let before = keys.generation();
    keys.refresh().await.expect("refresh");
    assert_eq!(server.hits(), 3);
    assert!(keys.generation() > before, "withdrawing a key bumps the generation");
    assert_eq!(keys.health().remote_keys, Some(1));

    let hits = h.upstream.hits();
    // The cache entry was made under the old generation: it must not answer any more.
    assert_invalid_token(&h.get("/items/1", &old_token).await, "old token (cached before)");
    assert_invalid_token(&h.get("/items/1", &token(&old, "old-2")).await, "old key, new token");
    assert_eq!(h.upstream.hits(), hits, "refused tokens never reach the upstream");
    assert_ok(&h.get("/items/1", &new_token).await, "new key after rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kids_cause_at_most_one_refetch_per_cooldown() {
    let good = TestKey::es256("good");
    let forger = TestKey::es256("forger");
    let server = Upstream::serving(public_jwks(&[&good])).await;
    let h = start_remote(&server, "jwks_refetch_cooldown = \"30s\"", &good).await;
    assert_eq!(server.hits(), 1, "fetched once at start");

    // 20 concurrent requests, each with a different forged kid.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let client = h.client.clone();
        let url = h.url("/items/1");
        let bearer = format!("Bearer {}", token_with_kid(&forger, &format!("forged-c{i}"), "f"));
        set.spawn(async move { send(&client, Method::GET, &url, &[("authorization", &bearer)], "").await });
    }
    while let Some(a) = set.join_next().await {
        let a = a.expect("request task");
        assert_invalid_token(&a, "concurrent forged kid");
    }
    assert_eq!(server.hits(), 2, "20 concurrent unknown kids: one refetch");

    // 20 sequential ones inside the same cooldown: none.
    for i in 0..20 {
        let a = h
            .get("/items/1", &token_with_kid(&forger, &format!("forged-s{i}"), "f"))
            .await;
        assert_invalid_token(&a, "sequential forged kid");
    }
    assert_eq!(server.hits(), 2, "no refetch within the cooldown");

    // Still inside the cooldown one second before it ends.
    h.clock.advance(29);
    let a = h.get("/items/1", &token_with_kid(&forger, "forged-29", "f")).await;
    assert_invalid_token(&a, "forged kid at +29 s");
    assert_eq!(server.hits(), 2, "no refetch at +29 s");

    // Past the cooldown: exactly one more, then quiet again.
    h.clock.advance(2);
    for i in 0..20 {
        let a = h
            .get("/items/1", &token_with_kid(&forger, &format!("forged-late{i}"), "f"))
            .await;
        assert_invalid_token(&a, "forged kid after the cooldown");
    }
    assert_eq!(server.hits(), 3, "one refetch after the cooldown");

    assert_eq!(h.upstream.hits(), 0);
    assert_ok(&h.get("/items/1", &token(&good, "g")).await, "genuine token");
    assert_eq!(server.hits(), 3, "a known kid needs no fetch");
}

/// Verifications that queue behind an in-flight unknown-kid refetch reuse its result: a
/// just-published kid presented by many clients at once costs one fetch and every one of
/// them passes (the cooldown alone would refuse all but the first).
///
/// Deterministic without sleeping: the test holds the JWKS server's reply
/// ([`Upstream::hold`]), so the first refetch stays in flight until every verification has
/// queued behind it (this runtime has one thread, so spawned tasks run to their first wait
/// before the test task resumes).
#[tokio::test]
async fn verifications_queued_behind_a_refetch_reuse_its_result() {
    let old = TestKey::es256("old");
    let new = TestKey::es256("new");
    let server = Upstream::serving(public_jwks(&[&old])).await;
    let h = start_remote(&server, "jwks_refetch_cooldown = \"30s\"", &old).await;
    assert_eq!(server.hits(), 1);
    let verifier = h.gateway.verifier().clone();
    let snap = verifier.snapshot();
    let (rs, _) = snap.resource_server("api").expect("no resource server api");

    let mut doc = server.hold().await;
    doc.body = Some(public_jwks(&[&old, &new]));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (verifier, snap) = (verifier.clone(), snap.clone());
        let t = token(&new, &format!("q{i}"));
        set.spawn(async move { verifier.verify_for(&snap, rs, &t).await.map(|_| ()) });
    }
    // Wait (by yielding, not by time) until the first refetch reached the server, where it
    // now waits for the document.
    let mut spins = 0u32;
    while server.hits() < 2 {
        spins += 1;
        assert!(spins < 1_000_000, "the refetch never reached the JWKS server");
        tokio::task::yield_now().await;
    }
    drop(doc);
    while let Some(r) = set.join_next().await {
        let r = r.expect("verify task");
        assert!(r.is_ok(), "queued verification of the new kid: {r:?}");
    }
    assert_eq!(server.hits(), 2, "one refetch for all of them");
}

#[tokio::test]
async fn outage_serves_last_good_keys_until_max_stale() {
    let key = TestKey::es256("k1");
    let server = Upstream::serving(public_jwks(&[&key])).await;
    let extra = "jwks_ttl = \"60s\"\njwks_max_stale = \"120s\"";
    let h = start_remote(&server, extra, &key).await;
    let keys = realm_keys(&h);

    let cached = token(&key, "cached");
    assert_ok(&h.get("/items/1", &cached).await, "before the outage");

    server.set(StatusCode::INTERNAL_SERVER_ERROR, "down").await;
    match keys.refresh().await {
        Err(FetchError::Status(s)) => assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR),
        other => panic!("refresh during the outage: {other:?}"),
    }
    let health = keys.health();
    assert!(health.usable, "{health:?}");
    assert_eq!(health.remote_keys, Some(1), "last good keys kept");
    assert_eq!(health.failures, 1);
    assert!(
        health.last_error.as_deref().is_some_and(|e| e.contains("500")),
        "{health:?}"
    );

    // Past the TTL but within max_stale: the last good keys keep serving.
    h.clock.advance(100);
    assert!(keys.refresh().await.is_err(), "still down");
    assert_ok(
        &h.get("/items/1", &token(&key, "stale-1")).await,
        "stale keys, new token",
    );
    assert_ok(&h.get("/items/1", &cached).await, "stale keys, cached token");
    // Exactly at the limit (ttl 60 + max_stale 120) they still serve.
    h.clock.set(NOW + 180);
    assert_ok(
        &h.get("/items/1", &token(&key, "stale-2")).await,
        "at the staleness limit",
    );
    let hits = h.upstream.hits();
    assert_eq!(hits, 4);

    // Beyond ttl + max_stale: no usable keys, 503, upstream untouched.
    h.clock.set(NOW + 181);
    let health = keys.health();
    assert!(!health.usable, "{health:?}");
    assert_eq!(health.remote_keys, None, "{health:?}");
    assert!(!h.gateway.verifier().snapshot().ready());
    let a = h.get("/items/1", &token(&key, "too-stale")).await;
    assert_unavailable(&a, "new token, keys too stale");
    assert!(a.headers.get("retry-after").is_some(), "{:?}", a.headers);
    assert_unavailable(&h.get("/items/1", &cached).await, "cached token, keys too stale");
    assert_eq!(h.upstream.hits(), hits, "the upstream is not contacted");

    // The endpoint comes back: keys are fresh again.
    server.set(StatusCode::OK, public_jwks(&[&key])).await;
    keys.refresh().await.expect("refresh");
    assert_ok(&h.get("/items/1", &token(&key, "recovered")).await, "after recovery");
}

#[tokio::test]
async fn no_keys_at_start_is_503_until_a_fetch_succeeds() {
    let key = TestKey::es256("k1");
    let server = Upstream::serving(public_jwks(&[&key])).await;
    server.set(StatusCode::INTERNAL_SERVER_ERROR, "down").await;
    let h = start_remote(&server, "", &key).await;
    let keys = realm_keys(&h);
    assert_eq!(server.hits(), 1, "tried once at start");
    let health = keys.health();
    assert!(!health.usable, "{health:?}");
    assert_eq!(health.remote_keys, None);
    assert_eq!(health.failures, 1);

    let t = token(&key, "a");
    assert_unavailable(&h.get("/items/1", &t).await, "no keys yet");
    // An unknown kid is no reason to hammer a failing endpoint either: still 503.
    let forger = TestKey::es256("x");
    assert_unavailable(&h.get("/items/1", &token(&forger, "b")).await, "unknown kid, no keys");
    assert_eq!(h.upstream.hits(), 0);

    server.set(StatusCode::OK, public_jwks(&[&key])).await;
    keys.refresh().await.expect("refresh");
    assert!(keys.health().usable);
    assert!(h.gateway.verifier().snapshot().ready());
    assert_ok(&h.get("/items/1", &t).await, "after the first successful fetch");
    assert_eq!(h.upstream.hits(), 1);
}

#[tokio::test]
async fn unreachable_endpoint_at_start_is_503() {
    let key = TestKey::es256("k1");
    let uri = format!("http://{}/jwks.json", closed_port());
    let h = Harness::builder()
        .config(remote_config(&uri, "jwks_fetch_timeout = \"2s\""))
        .key(key.clone())
        .start()
        .await;
    let keys = realm_keys(&h);
    assert!(!keys.health().usable);
    assert_unavailable(&h.get("/items/1", &token(&key, "a")).await, "endpoint unreachable");
    assert_eq!(h.upstream.hits(), 0);
    match keys.refresh().await {
        Err(FetchError::Transport(_)) => {}
        other => panic!("refresh of a closed port: {other:?}"),
    }
}

/// Asserts the remote keys fetched at `fetched_at` are usable through `fetched_at + secs`
/// and gone one second later (the realm is configured with `jwks_max_stale = "0s"`, so
/// usability ends exactly with freshness).
fn assert_fresh_for(h: &Harness, keys: &RealmKeys, fetched_at: i64, secs: i64, what: &str) {
    h.clock.set(fetched_at + secs);
    let health = keys.health();
    assert_eq!(
        health.remote_keys,
        Some(1),
        "{what}: still fresh at +{secs} s: {health:?}"
    );
    assert_eq!(health.remote_age, Some(secs), "{what}");
    h.clock.set(fetched_at + secs + 1);
    let health = keys.health();
    assert_eq!(
        health.remote_keys,
        None,
        "{what}: expired at +{} s: {health:?}",
        secs + 1
    );
    assert!(!health.usable, "{what}");
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_within_bounds() {
    let key = TestKey::es256("k1");
    let server = Upstream::serving(public_jwks(&[&key])).await;
    server.set_header("cache-control", Some("max-age=10")).await;
    let extra = "jwks_ttl = \"5m\"\njwks_min_ttl = \"60s\"\njwks_max_ttl = \"10m\"\njwks_max_stale = \"0s\"";
    let h = start_remote(&server, extra, &key).await;
    let keys = realm_keys(&h);

    // max-age=10 is raised to min_ttl (60 s).
    assert_fresh_for(&h, &keys, NOW, 60, "max-age=10");
    // ...and the expiry shows in requests: 503, not a pass.
    assert_unavailable(&h.get("/items/1", &token(&key, "late")).await, "after freshness");

    let cases = [
        (Some("public, max-age=90"), 90, "max-age within bounds"),
        (Some("max-age=100000"), 600, "max-age above max_ttl"),
        (Some("no-store"), 60, "no-store counts as zero"),
        (None, 300, "no Cache-Control: jwks_ttl"),
    ];
    let mut at = NOW + 1000;
    for (header, fresh, what) in cases {
        server.set_header("cache-control", header).await;
        h.clock.set(at);
        keys.refresh().await.unwrap_or_else(|e| panic!("{what}: refresh: {e}"));
        assert_fresh_for(&h, &keys, at, fresh, what);
        at += 10_000;
    }

    // While fresh, tokens pass.
    h.clock.set(at);
    keys.refresh().await.expect("refresh");
    let mut c = claims("read");
    c["iat"] = json!(at);
    c["exp"] = json!(at + 300);
    assert_ok(&h.get("/items/1", &key.sign(&c)).await, "fresh keys");
}

#[tokio::test]
async fn oversized_key_set_is_refused_and_keys_are_kept() {
    let k1 = TestKey::es256("k1");
    let k2 = TestKey::es256("k2");
    let server = Upstream::serving(public_jwks(&[&k1])).await;
    let h = start_remote(&server, "jwks_max_bytes = 2048", &k1).await;
    let keys = realm_keys(&h);
    assert!(keys.health().usable);
    let generation = keys.generation();

    // A valid key set, made too large by an ignored member.
    let doc = |pad: usize| json!({ "keys": [k2.public.clone()], "pad": "x".repeat(pad) }).to_string();
    let big = doc(4096);
    assert!(big.len() > 2048);
    server.set(StatusCode::OK, big).await;
    match keys.refresh().await {
        Err(FetchError::TooLarge(n)) => assert_eq!(n, 2048),
        other => panic!("refresh of an oversized set: {other:?}"),
    }
    let health = keys.health();
    assert!(
        health.last_error.as_deref().is_some_and(|e| e.contains("larger than")),
        "{health:?}"
    );
    assert_eq!(health.remote_keys, Some(1), "the last good keys are kept");
    assert_eq!(keys.generation(), generation, "keys not replaced");
    assert_ok(&h.get("/items/1", &token(&k1, "a")).await, "old key still serves");
    assert_invalid_token(
        &h.get("/items/1", &token(&k2, "b")).await,
        "key only in the oversized set",
    );

    // The same document under the bound is taken, so size was the only reason.
    let small = doc(100);
    assert!(small.len() <= 2048);
    server.set(StatusCode::OK, small).await;
    keys.refresh().await.expect("refresh");
    assert_ne!(keys.generation(), generation);
    assert_ok(&h.get("/items/1", &token(&k2, "c")).await, "key from the small set");
    assert_invalid_token(&h.get("/items/1", &token(&k1, "d")).await, "key no longer served");
}
