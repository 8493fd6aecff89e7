//! Open resources (`auth = "none"`), end to end: no token asked for or checked, still
//! normalized, routed by specificity, forwarded with the header rules, logged and counted as
//! `public`; declared in files or through the Management API.

use http::{Method, StatusCode};

use crate::support::*;

/// The default configuration (no catch-all) with an admin listener, and an open health
/// check inside the protected `/items/**` tree.
fn config() -> String {
    config_with("admin_listen = \"127.0.0.1:0\"")
        + r#"
[[protected_resource]]
id = "health"
resource_server = "api"
paths = ["/items/health"]
auth = "none"
"#
}

#[tokio::test]
async fn an_open_resource_is_forwarded_without_a_token_logged_and_counted_public() {
    let h = Harness::builder().config(config()).start().await;
    // One access line before capturing, so its callsite is registered and the capture's
    // rebuild covers it (see `Logs::capture`).
    assert_eq!(
        h.send(Method::GET, "/nowhere", &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    let logs = Logs::capture();

    // No token: forwarded, any method (the resource names none), on the normalized path.
    let a = h
        .send(
            Method::GET,
            "/items/x/../health?deep=1",
            &[("x-request-id", "open-1")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.last().await.uri, "/items/health?deep=1");
    let a = h.send(Method::POST, "/items/health", &[], "ping").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(&h.upstream.last().await.body[..], b"ping");

    // Claim headers sent by the client never pass, and none are added; a token, even a
    // broken one, is neither checked nor refused, and goes on untouched (the resource
    // server keeps `Authorization` by default).
    let a = h
        .send(
            Method::GET,
            "/items/health",
            &[
                ("x-auth-sub", "forged"),
                ("x-auth-scope", "admin"),
                ("authorization", "Bearer not-a-token"),
            ],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(seen.headers.get("x-auth-sub"), None);
    assert_eq!(seen.headers.get("x-auth-scope"), None);
    assert_eq!(
        seen.headers.get("authorization").map(|v| v.as_bytes()),
        Some(&b"Bearer not-a-token"[..])
    );
    assert_eq!(h.upstream.hits(), 3);

    // Specificity is unchanged around it: the rest of the tree still needs a token.
    let a = h.send(Method::GET, "/items/healthz", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = h.send(Method::GET, "/items/health/deeper", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream.hits(), 3);

    let (_, text) = scrape(&h).await;
    let series = |outcome: &str, class: &str| {
        format!(
            "portcullis_requests_total{{resource_server=\"api\",resource=\"health\",outcome=\"{outcome}\",status=\"{class}\"}}"
        )
    };
    assert_eq!(must(&text, &series("public", "2xx")), 3.0, "{text}");
    assert_eq!(sample(&text, &series("allowed", "2xx")), None, "{text}");

    let line = logs.access_line("open-1");
    assert_eq!(line["outcome"], "public", "{line}");
    assert_eq!(line["resource"], "health", "{line}");
    assert_eq!(line["path"], "/items/health", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line.get("client").is_none(), "{line}");
}

#[tokio::test]
async fn an_open_resource_of_a_resource_server_out_of_force_is_not_found_not_challenged() {
    let config = edit(
        &config(),
        "response_timeout = \"1s\"",
        "response_timeout = \"1s\"\ndisabled_on = \"2020-01-01T00:00:00Z\"",
    );
    let h = Harness::builder().config(config).start().await;
    let a = h.send(Method::GET, "/items/health", &[], "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert_eq!(a.headers.get("www-authenticate"), None);
    assert_eq!(h.upstream.hits(), 0);
}
