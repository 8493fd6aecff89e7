//! Report-only rollout (`enforce = false`), end to end: requests judged as usual, the
//! verdict logged and counted as `would_refuse_<reason>`, and forwarded anyway, with claim
//! headers only from a token that was good in itself.

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

/// The default configuration (no catch-all) with an admin listener, its resource server
/// report-only, and its `admin` resource enforcing regardless.
fn config() -> String {
    let text = config_with("admin_listen = \"127.0.0.1:0\"");
    let text = edit(
        &text,
        "response_timeout = \"1s\"",
        "response_timeout = \"1s\"\nenforce = false",
    );
    edit(&text, "max_age = \"5m\"", "max_age = \"5m\"\nenforce = true")
}

/// GET /items/1 with `token`, as request `id`.
async fn get_as(h: &Harness, id: &str, token: &str) -> Answer {
    let auth = bearer(token);
    h.send(
        Method::GET,
        "/items/1",
        &[("x-request-id", id), ("authorization", &auth)],
        "",
    )
    .await
}

#[tokio::test]
async fn report_only_forwards_what_it_would_refuse_and_says_why() {
    let h = Harness::builder().config(config()).start().await;
    assert_eq!(
        h.send(Method::GET, "/nowhere", &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    let logs = Logs::capture();

    // No token: forwarded, without claim headers even when the client sends its own.
    let a = h
        .send(
            Method::GET,
            "/items/1",
            &[("x-request-id", "ro-1"), ("x-auth-sub", "forged")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.headers.get("www-authenticate"), None);
    let seen = h.upstream.last().await;
    assert_eq!(seen.headers.get("x-auth-sub"), None);
    let line = logs.access_line("ro-1");
    assert_eq!(line["outcome"], "would_refuse_missing_token", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["resource"], "read", "{line}");

    // A good token without the scope: forwarded with its claim headers.
    let write_only = h.key.sign(&claims("write"));
    let a = get_as(&h, "ro-2", &write_only).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(seen.headers["x-auth-sub"], "client-1");
    assert_eq!(seen.headers["x-auth-scope"], "write");
    let line = logs.access_line("ro-2");
    assert_eq!(line["outcome"], "would_refuse_insufficient_scope", "{line}");
    assert_eq!(line["detail"], "insufficient scope", "{line}");

    // A token that is no good (expired, forged): forwarded, no claim headers.
    let mut expired = claims("read");
    expired["exp"] = json!(NOW - 3600);
    expired["iat"] = json!(NOW - 7200);
    let forged = TestKey::es256("k1").sign(&claims("read"));
    for (id, token, outcome) in [
        ("ro-3", h.key.sign(&expired), "would_refuse_expired"),
        ("ro-4", forged, "would_refuse_bad_signature"),
    ] {
        let a = get_as(&h, id, &token).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(h.upstream.last().await.headers.get("x-auth-sub"), None, "{id}");
        assert_eq!(logs.access_line(id)["outcome"], outcome);
    }

    // A good token: allowed as ever.
    let read = h.key.sign(&claims("read"));
    let a = get_as(&h, "ro-5", &read).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(logs.access_line("ro-5")["outcome"], "allowed");

    // A resource that enforces on a report-only resource server refuses as ever.
    let a = h.send(Method::GET, "/items/admin/x", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream.hits(), 5);

    let (_, text) = scrape(&h).await;
    let series = |resource: &str, outcome: &str, class: &str| {
        format!(
            "portcullis_requests_total{{resource_server=\"api\",resource=\"{resource}\",outcome=\"{outcome}\",status=\"{class}\"}}"
        )
    };
    assert_eq!(
        must(&text, &series("read", "would_refuse_missing_token", "2xx")),
        1.0,
        "{text}"
    );
    assert_eq!(
        must(&text, &series("read", "would_refuse_insufficient_scope", "2xx")),
        1.0,
        "{text}"
    );
    assert_eq!(must(&text, &series("admin", "missing_token", "4xx")), 1.0, "{text}");
}

#[tokio::test]
async fn enforce_false_on_one_resource_leaves_the_others_enforcing() {
    // `enforce = false` on one resource, the resource server enforcing: only that resource
    // is report-only.
    let text = config_with("");
    let text = edit(&text, "scopes = [\"write\"]", "scopes = [\"write\"]\nenforce = false");
    let h = Harness::builder().config(text).start().await;
    let read = h.key.sign(&claims("read"));
    assert_eq!(h.post("/items/1", &read, "").await.status, StatusCode::OK);
    assert_insufficient_scope(&h.get("/items/admin/x", &read).await, "admin");
    assert_eq!(
        h.send(Method::GET, "/either", &[], "").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.send(Method::PUT, "/items/1", &[], "").await.status, StatusCode::OK);
}
