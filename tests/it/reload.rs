//! Hot reload: a complete, valid configuration replaces the running one; a broken edit
//! changes nothing; requests in flight never see a half-applied configuration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::support::*;

/// Variant B adds a protected resource `/extra` needing `write`.
fn variant_b(config: &str) -> String {
    format!(
        "{config}\n[[protected_resource]]\nid = \"extra\"\nresource_server = \"api\"\npaths = [\"/extra\"]\nscopes = [\"write\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_see_a_wrong_answer_while_the_config_churns() {
    let base = default_config().replace("paths = [\"/**\"]", "paths = [\"/open/**\"]");
    let h = Arc::new(Harness::builder().config(&base).start().await);
    let read = h.key.sign(&claims("read"));
    let write = h.key.sign(&claims("read write"));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (h, read, write, stop, sent) = (h.clone(), read.clone(), write.clone(), stop.clone(), sent.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // Allowed in every valid version.
                let a = h.get("/items/1", &read).await;
                assert_eq!(a.status, StatusCode::OK, "{}", a.body);
                // Unknown in A, needs `write` in B: 404 or 403 for `read`, never anything else.
                let a = h.get("/extra", &read).await;
                assert!(
                    matches!(a.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
                    "{} {}",
                    a.status,
                    a.body
                );
                // 404 in A, 200 in B for `write`.
                let a = h.get("/extra", &write).await;
                assert!(
                    matches!(a.status, StatusCode::NOT_FOUND | StatusCode::OK),
                    "{} {}",
                    a.status,
                    a.body
                );
                sent.fetch_add(3, Ordering::Relaxed);
            }
        }));
    }
    let broken = [
        "this is not toml [[[",
        &base.replace("issuer = ", "issur = "),
        &variant_b(&base).replace("scopes = [\"write\"]\n", "scopes = [\"nope\"]\n"),
        &base.replace("default_scopes = [\"read\"]", "default_scopes = [\"absent\"]"),
    ];
    for round in 0..12 {
        let valid = if round % 2 == 0 { variant_b(&base) } else { base.clone() };
        h.write_config(&valid);
        h.gateway
            .reload()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(h.has_resource("extra"), round % 2 == 0);
        let bad = broken[round % broken.len()];
        h.write_config(bad);
        assert!(
            h.gateway.reload().await.is_err(),
            "round {round}: a broken config was accepted"
        );
        // Still the last good one.
        assert_eq!(
            h.has_resource("extra"),
            round % 2 == 0,
            "round {round}: a broken edit changed the running configuration"
        );
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("a client saw a wrong answer");
    }
    assert!(sent.load(Ordering::Relaxed) > 0);
    let (ok, failed) = h.gateway.reload_counts();
    assert!(ok >= 12 && failed >= 12, "{ok} {failed}");
}

#[tokio::test]
async fn a_reload_keeps_remote_keys_of_unchanged_realms() {
    let jwks = Upstream::serving("").await;
    let key = TestKey::es256("k1");
    jwks.set(StatusCode::OK, public_jwks(&[&key])).await;
    let config = default_config().replace(
        "jwks_file = \"{keys}\"",
        &format!(
            "jwks_uri = \"{}\"\ndanger_allow_http_jwks = true",
            jwks.url("/jwks.json")
        ),
    );
    let h = Harness::builder().config(&config).key(key).start().await;
    assert_eq!(jwks.hits(), 1);
    h.write_config(&variant_b(&config));
    h.gateway.reload().await.unwrap();
    assert_eq!(jwks.hits(), 1, "an unchanged realm refetched its keys on reload");
    let token = h.key.sign(&claims("write"));
    assert_eq!(h.get("/extra", &token).await.status, StatusCode::OK);
    // Changing the realm's key source does refetch.
    h.write_config(&variant_b(&config).replace(
        "danger_allow_http_jwks = true",
        "danger_allow_http_jwks = true\njwks_ttl = \"10m\"",
    ));
    h.gateway.reload().await.unwrap();
    assert_eq!(jwks.hits(), 2);
}

#[tokio::test]
async fn the_watcher_reloads_on_a_file_change() {
    let h = Harness::start().await;
    h.write_config(&variant_b(&default_config()));
    // Wait (bounded) for the watcher; this asserts that it happens, not how fast.
    eventually("the watcher's reload", async || h.has_resource("extra")).await;
    let token = h.key.sign(&claims("write"));
    let a = h.get("/extra", &token).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn a_verdict_reached_under_the_old_rules_never_answers_under_the_new() {
    let h = Harness::start().await;
    let token = h.key.sign(&claims("read"));
    let v = h.gateway.verifier();
    // A request loads the snapshot of the day...
    let old = v.snapshot();
    // ...a reload then gives the realm another issuer (its keys stay the same)...
    h.write_config(&default_config().replace("/realms/t\"", "/realms/t-next\""));
    h.gateway.reload().await.unwrap();
    // ...and the request, still on the old snapshot, stores its verdict after the swap.
    let (i, _) = old.resource_server("api").expect("no api");
    let judge = old.judge(i).expect("no judge");
    portcullis::token::verify(&token, &judge, v.cache()).await.unwrap();
    // Under the new rules the token is refused, not answered from that verdict.
    let a = h.get("/items/1", &token).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(v.cache().hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_beside_the_configuration_never_reload_it_nor_hold_an_edit_back() {
    let h = Harness::start().await;
    let dir = h.dir.path().to_path_buf();
    let log = dir.join("gateway.log");
    let config = std::fs::read_to_string(dir.join("portcullis.toml")).unwrap();
    // A log written beside the configuration, now and then, and the configuration itself
    // rewritten with the same bytes (as a deployment tool re-applying it does): nothing to
    // reload.
    for i in 0..5 {
        std::fs::write(&log, format!("line {i}\n")).unwrap();
        if i == 2 {
            let tmp = dir.join("portcullis.toml.tmp");
            std::fs::write(&tmp, &config).unwrap();
            std::fs::rename(&tmp, dir.join("portcullis.toml")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Now the log is written without pause while a real edit lands: the edit is applied.
    let stop = Arc::new(AtomicBool::new(false));
    let noise = {
        let (stop, log) = (stop.clone(), log.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let _ = std::fs::write(&log, format!("line {i}\n"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    h.write_config(&variant_b(&default_config()));
    let applied = polled(async || h.has_resource("extra")).await;
    stop.store(true, Ordering::Relaxed);
    let _ = noise.await;
    assert!(
        applied,
        "an edit was held back by a file changing beside the configuration"
    );
    assert_eq!(
        h.gateway.reload_counts(),
        (1, 0),
        "only the real edit reloads the configuration"
    );
    // A file the configuration names is an input: a new key set is picked up.
    let next = TestKey::es256("k2");
    std::fs::write(dir.join("keys.json"), public_jwks(&[&next])).unwrap();
    let token = next.sign(&claims("read"));
    let accepted = polled(async || h.get("/items/1", &token).await.status == StatusCode::OK).await;
    assert!(accepted, "the watcher missed a change to the realm's jwks_file");
    assert_eq!(h.gateway.reload_counts(), (2, 0));
}
