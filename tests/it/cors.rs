//! CORS per resource server, end to end: preflights answered by the gateway without a token
//! (allowed, refused, or treated as any `OPTIONS` when CORS is off), actual answers' headers
//! on 200 and 401, `*` and credentials, `Vary`, the upstream's own CORS headers replaced,
//! and the access line and metrics of preflights.

use http::{Method, StatusCode};

use crate::support::*;

const APP: &str = "https://app.test";

/// The default configuration (no catch-all) with an admin listener, the resource server
/// `api` with `cors` (a TOML table body), and a second resource server without CORS.
fn config(cors: &str) -> String {
    let base = config_with("admin_listen = \"127.0.0.1:0\"");
    let base = edit(
        &base,
        "[resource_server.claim_headers]",
        &format!("[resource_server.cors]\n{cors}\n\n[resource_server.claim_headers]"),
    );
    base + r#"
[[resource_server]]
id = "plain"
realm = "t"
audience = "https://plain.test"
upstream = "http://{upstream}"
scopes = ["read"]

[[protected_resource]]
id = "plain-all"
resource_server = "plain"
paths = ["/plain/**"]
"#
}

fn strict() -> String {
    config(&format!(
        r#"origins = ["{APP}", "http://localhost:3000"]
methods = ["GET", "PUT", "DELETE"]
headers = ["authorization", "content-type", "x-trace"]
expose_headers = ["x-request-id", "www-authenticate"]
credentials = true
max_age = "10m""#
    ))
}

fn preflight<'a>(origin: &'a str, method: &'a str, headers: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", method),
        ("access-control-request-headers", headers),
    ]
}

#[tokio::test]
async fn an_allowed_preflight_is_answered_by_the_gateway_without_a_token() {
    let h = Harness::builder().config(strict()).start().await;
    let a = h
        .send(
            Method::OPTIONS,
            "/items/42",
            &preflight(APP, "PUT", "authorization,content-type"),
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some(APP));
    assert_eq!(a.header("access-control-allow-methods"), Some("GET, PUT, DELETE"));
    assert_eq!(
        a.header("access-control-allow-headers"),
        Some("authorization, content-type, x-trace")
    );
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(a.header("access-control-max-age"), Some("600"));
    assert!(a.header("vary").unwrap().contains("Origin"));
    assert_eq!(h.upstream.hits(), 0, "a preflight never reaches the upstream");
    // The other listed origin too, on a path routed by the method asked for (`admin` takes
    // any method).
    let a = h
        .send(
            Method::OPTIONS,
            "/items/admin/1",
            &preflight("http://localhost:3000", "DELETE", ""),
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some("http://localhost:3000"));
    // A method no resource of the path takes routes nowhere, as the actual request would:
    // answered as any OPTIONS to an unmatched path is.
    let a = h
        .send(Method::OPTIONS, "/items", &preflight(APP, "DELETE", ""), "")
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
}

#[tokio::test]
async fn a_disallowed_origin_method_or_header_is_refused_without_allow_headers() {
    let h = Harness::builder().config(strict()).start().await;
    for (origin, method, headers) in [
        ("https://evil.test", "PUT", "authorization"),
        // Not exactly as listed: origins are compared byte for byte.
        ("https://app.test:443", "GET", ""),
        ("https://APP.test", "GET", ""),
        ("null", "GET", ""),
        (APP, "PATCH", ""),
        (APP, "PUT", "authorization, x-secret"),
    ] {
        let a = h
            .send(
                Method::OPTIONS,
                "/items/admin/1",
                &preflight(origin, method, headers),
                "",
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{origin} {method} {headers}");
        for name in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-allow-credentials",
        ] {
            assert_eq!(a.header(name), None, "{origin} {method} {headers}: {name}");
        }
    }
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn without_cors_a_preflight_is_any_options_request_and_answers_get_no_cors_headers() {
    let h = Harness::builder().config(strict()).start().await;
    // `plain` has no CORS: the preflight needs a token, as any OPTIONS request.
    let a = h
        .send(Method::OPTIONS, "/plain/x", &preflight(APP, "GET", ""), "")
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), None);
    assert_eq!(a.header("vary"), None);
    // The default configuration has no CORS anywhere.
    let h = Harness::start().await;
    let a = h
        .send(Method::OPTIONS, "/items/1", &preflight(APP, "GET", ""), "")
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_is_routed_and_checked_as_any_request() {
    let h = Harness::builder().config(strict()).start().await;
    // No Access-Control-Request-Method: an ordinary OPTIONS, which needs a token.
    let a = h.send(Method::OPTIONS, "/either", &[("origin", APP)], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    // Still an answer of a resource server with CORS: readable by the app.
    assert_eq!(a.header("access-control-allow-origin"), Some(APP));
    let token = h.key.sign(&claims("read"));
    let a = h
        .send(
            Method::OPTIONS,
            "/either",
            &[("origin", APP), ("authorization", &bearer(&token))],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.last().await.method, Method::OPTIONS);
}

#[tokio::test]
async fn actual_answers_allowed_or_refused_carry_the_gateways_cors_headers() {
    // The upstream sets its own, permissive CORS headers: the gateway's replace them.
    let upstream = Upstream::builder()
        .reply(
            Reply::echo()
                .header("access-control-allow-origin", "*")
                .header("access-control-allow-methods", "*")
                .header("vary", "Accept-Encoding"),
        )
        .start()
        .await;
    let h = Harness::builder().config(strict()).upstream(upstream).start().await;
    let token = h.key.sign(&claims("read"));
    let auth = bearer(&token);

    let a = h
        .send(
            Method::GET,
            "/items/1",
            &[("origin", APP), ("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some(APP));
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        a.header("access-control-expose-headers"),
        Some("x-request-id, www-authenticate")
    );
    assert_eq!(
        a.header("access-control-allow-methods"),
        None,
        "the upstream's is removed"
    );
    let vary: Vec<&str> = a.headers.get_all("vary").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"], "the upstream's Vary is kept");

    // A 401 is readable by the app, so it can go and get a token.
    let a = h.send(Method::GET, "/items/1", &[("origin", APP)], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some(APP));
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    assert!(a.challenge().starts_with("Bearer "));
    assert_eq!(a.header("vary"), Some("Origin"));

    // Another origin's answer: never reflected, the upstream's `*` gone too, still Vary.
    let a = h
        .send(
            Method::GET,
            "/items/1",
            &[("origin", "https://evil.test"), ("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), None);
    assert_eq!(a.header("access-control-allow-credentials"), None);
    assert!(a.headers.get_all("vary").iter().any(|v| v == "Origin"));

    // No Origin (not a browser's cross-origin call): no allow headers, Vary all the same.
    let a = h.send(Method::GET, "/items/1", &[("authorization", &auth)], "").await;
    assert_eq!(a.header("access-control-allow-origin"), None);
    assert!(a.headers.get_all("vary").iter().any(|v| v == "Origin"));
}

#[tokio::test]
async fn any_origin_is_answered_with_a_star_and_never_with_credentials() {
    let h = Harness::builder()
        .config(config("origins = [\"*\"]\nmethods = [\"GET\", \"PUT\"]"))
        .start()
        .await;
    let a = h
        .send(
            Method::OPTIONS,
            "/items/1",
            &preflight("https://anyone.test", "PUT", "Authorization"),
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    assert_eq!(a.header("access-control-allow-credentials"), None);
    assert_eq!(
        a.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    let a = h
        .send(Method::GET, "/items/1", &[("origin", "https://anyone.test")], "")
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    assert_eq!(a.header("access-control-expose-headers"), None);
}

#[test]
fn a_star_with_credentials_and_origins_a_browser_never_sends_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (cors, wants) in [
        ("origins = [\"*\"]\ncredentials = true", "credentials"),
        ("origins = [\"https://app.test/\"]", "\"https://app.test\""),
        ("origins = [\"https://App.test:443\"]", "\"https://app.test\""),
        ("origins = [\"null\"]", "opaque origin"),
        ("origins = [\"*\", \"https://app.test\"]", "stands alone"),
        ("methods = [\"GET\"]", "is required"),
        (
            "origins = [\"https://app.test\"]\nheaders = [\"*\"]",
            "list the header names",
        ),
        ("origins = [\"https://app.test\"]\nmax_age = \"soon\"", "cors.max_age"),
        ("origins = [\"https://app.test\"]\nallow = true", "allow"),
    ] {
        let text = config(cors)
            .replace("{upstream}", "127.0.0.1:1")
            .replace("{keys}", &dir.path().join("keys.json").display().to_string());
        std::fs::write(dir.path().join("keys.json"), public_jwks(&[&TestKey::es256("k1")])).unwrap();
        let path = dir.path().join("portcullis.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cors}: accepted");
        assert!(err.contains("portcullis.toml"), "{cors}: {err}");
        if wants != "allow" {
            assert!(err.contains("resource_server \"api\": field `cors."), "{cors}: {err}");
        }
        assert!(err.contains(wants), "{cors}: {err}");
    }
}

#[tokio::test]
async fn preflights_are_logged_and_counted_as_preflight_or_preflight_refused() {
    let h = Harness::builder().config(strict()).start().await;
    assert_eq!(
        h.send(Method::GET, "/nowhere", &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    let logs = Logs::capture();
    let mut ok = preflight(APP, "PUT", "");
    ok.push(("x-request-id", "pf-ok"));
    assert_eq!(
        h.send(Method::OPTIONS, "/items/1", &ok, "").await.status,
        StatusCode::NO_CONTENT
    );
    let mut bad = preflight("https://evil.test", "PUT", "");
    bad.push(("x-request-id", "pf-bad"));
    assert_eq!(
        h.send(Method::OPTIONS, "/items/1", &bad, "").await.status,
        StatusCode::FORBIDDEN
    );
    let line = logs.access_line("pf-ok");
    assert_eq!(line["outcome"], "preflight", "{line}");
    assert_eq!(line["resource"], "write", "{line}");
    assert_eq!(line["resource_server"], "api", "{line}");
    assert_eq!(line["status"], 204, "{line}");
    let line = logs.access_line("pf-bad");
    assert_eq!(line["outcome"], "preflight_refused", "{line}");
    assert_eq!(line["detail"], "origin not allowed", "{line}");

    let (_, text) = scrape(&h).await;
    let series = |outcome: &str, class: &str| {
        format!(
            "portcullis_requests_total{{resource_server=\"api\",resource=\"write\",outcome=\"{outcome}\",status=\"{class}\"}}"
        )
    };
    assert_eq!(must(&text, &series("preflight", "2xx")), 1.0, "{text}");
    assert_eq!(must(&text, &series("preflight_refused", "4xx")), 1.0, "{text}");
}
