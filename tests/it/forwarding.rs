//! Routing and forwarding, end to end: what the upstream
//! receives (headers, path, body) and what the client gets back, through the real gateway.
//!
//! Where a hyper client could rewrite what it sends (paths, hop-by-hop headers, Host), the
//! request is written as raw bytes on a `TcpStream` so the gateway sees exactly that.
//! Waits are bounded by [`GUARD`] only so that a regression fails instead of hanging; no
//! assertion depends on how long anything takes.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

use crate::support::*;

/// The default test configuration with a generous upstream response timeout, for tests
/// that move a lot of bytes or wait on each other (never on the clock).
fn patient_config() -> String {
    default_config().replace("response_timeout = \"1s\"", "response_timeout = \"60s\"")
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn all_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------
// A body fed from a channel: unknown length (chunked on HTTP/1.1), and the sender decides
// when each piece exists.

struct ChanBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn chan_body(capacity: usize) -> (mpsc::Sender<Bytes>, ChanBody) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, ChanBody { rx })
}

// ---------------------------------------------------------------------------------------
// Hop-by-hop headers.

#[tokio::test]
async fn hop_by_hop_request_headers_are_removed() {
    let h = Harness::builder().config(patient_config()).start().await;
    let token = h.key.sign(&claims("read"));
    let auth = bearer(&token);
    let a = raw_get(
        h.gateway.local_addr(),
        "/items/7",
        &[
            ("Authorization", &auth),
            ("Connection", "close, X-Secret, x-other"),
            ("X-Secret", "1"),
            ("X-Other", "2"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "x-checksum"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("Proxy-Connection", "keep-alive"),
            ("Upgrade", "websocket"),
            ("X-End-To-End", "kept"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let seen = h.upstream.last().await;
    for gone in [
        "connection",
        "x-secret",
        "x-other",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            seen.headers.get(gone).is_none(),
            "{gone} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(header(&seen.headers, "x-end-to-end"), Some("kept"));
    assert_eq!(header(&seen.headers, "authorization"), Some(auth.as_str()));
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let h = Harness::builder().config(patient_config()).start().await;
    let token = h.key.sign(&claims("read"));
    // The recording upstream answers with `keep-alive: timeout=5` and `x-upstream: yes`.
    let a = h.get("/items/7", &token).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.headers.get("keep-alive").is_none(), "{:?}", a.headers);
    assert_eq!(header(&a.headers, "x-upstream"), Some("yes"));
}

#[tokio::test]
async fn response_headers_named_in_connection_are_removed() {
    let reply = Reply::fixed(StatusCode::OK, "ok")
        .header("connection", "X-Private-Hop")
        .header("x-private-hop", "1")
        .header("proxy-authenticate", "Basic realm=\"up\"")
        .header("x-end-to-end", "kept");
    let up = Upstream::builder().reply(reply).start().await;
    let h = Harness::builder().config(patient_config()).upstream(up).start().await;
    let token = h.key.sign(&claims("read"));
    let a = h.get("/items/7", &token).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, "ok");
    assert!(a.headers.get("x-private-hop").is_none(), "{:?}", a.headers);
    assert!(a.headers.get("proxy-authenticate").is_none(), "{:?}", a.headers);
    assert!(a.headers.get("connection").is_none(), "{:?}", a.headers);
    assert_eq!(header(&a.headers, "x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn underscored_header_names_never_reach_the_upstream() {
    // CGI and WSGI servers turn `-` and `_` alike into `_` (`HTTP_X_AUTH_SCOPE`), so an
    // underscore spelling of a claim or framing header would pass as the real one.
    let h = Harness::builder().config(patient_config()).start().await;
    let auth = bearer(&h.key.sign(&claims("read")));
    let a = raw_get(
        h.gateway.local_addr(),
        "/items/7",
        &[
            ("Authorization", &auth),
            ("X_Auth_Scope", "admin"),
            ("X_Auth_Sub", "root"),
            ("x_auth_sub", "root"),
            ("X_Forwarded_Host", "admin.internal"),
            ("X_Forwarded_For", "10.9.9.9"),
            ("X_Request_Id", "forged"),
            ("Transfer_Encoding", "chunked"),
            ("Content_Length", "5"),
            ("Some_Header", "x"),
            ("X-Dashed-Header", "kept"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let seen = h.upstream.last().await;
    for name in seen.headers.keys() {
        assert!(
            !name.as_str().contains('_'),
            "{name} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(all_values(&seen.headers, "x-auth-scope"), vec!["read".to_owned()]);
    assert_eq!(all_values(&seen.headers, "x-auth-sub"), vec!["client-1".to_owned()]);
    assert_eq!(
        all_values(&seen.headers, "x-forwarded-for"),
        vec!["127.0.0.1".to_owned()]
    );
    assert_eq!(header(&seen.headers, "x-dashed-header"), Some("kept"));
}

#[tokio::test]
async fn connection_cannot_name_away_what_the_gateway_sets() {
    let h = Harness::builder().config(patient_config()).start().await;
    let auth = bearer(&h.key.sign(&claims("read")));
    let a = raw_get(
        h.gateway.local_addr(),
        "/items/7",
        &[
            ("Host", "api.example:8080"),
            ("Authorization", &auth),
            ("X-Request-Id", "req-8"),
            (
                "Connection",
                "close, host, x-forwarded-host, x-forwarded-for, x-forwarded-proto, x-request-id, x-auth-sub, x-auth-scope",
            ),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("x-request-id"), Some("req-8"));
    let seen = h.upstream.last().await;
    assert_eq!(header(&seen.headers, "x-forwarded-host"), Some("api.example:8080"));
    assert_eq!(header(&seen.headers, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&seen.headers, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&seen.headers, "x-request-id"), Some("req-8"));
    assert_eq!(header(&seen.headers, "x-auth-sub"), Some("client-1"));
    assert_eq!(header(&seen.headers, "x-auth-scope"), Some("read"));
    assert_eq!(
        header(&seen.headers, "host"),
        Some(h.upstream.addr.to_string().as_str())
    );
    assert!(seen.headers.get("connection").is_none(), "{:?}", seen.headers);
}

// ---------------------------------------------------------------------------------------
// X-Forwarded-*.

#[tokio::test]
async fn behind_a_trusted_proxy_its_forwarding_headers_are_believed() {
    // The test client (127.0.0.1) plays a TLS-terminating load balancer the gateway trusts.
    let config = config_with("trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]")
        .replace("response_timeout = \"1s\"", "response_timeout = \"60s\"");
    let h = Harness::builder().config(config).start().await;
    // One access line before capturing (see `Logs::capture`).
    h.send(Method::GET, "/nowhere", &[], "").await;
    let logs = Logs::capture();
    let auth = bearer(&h.key.sign(&claims("read")));
    let a = h
        .send(
            Method::GET,
            "/items/7",
            &[
                ("authorization", &auth),
                ("x-request-id", "via-lb"),
                // 6.6.6.6 is what the client claimed; 198.51.100.7 reached our proxy
                // 10.1.1.1, which reached the balancer.
                ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "api.example"),
                ("forwarded", "for=198.51.100.7;proto=https"),
            ],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(
        all_values(&seen.headers, "x-forwarded-for"),
        vec!["6.6.6.6, 198.51.100.7, 10.1.1.1, 127.0.0.1".to_owned()]
    );
    assert_eq!(all_values(&seen.headers, "x-forwarded-proto"), vec!["https".to_owned()]);
    assert_eq!(
        all_values(&seen.headers, "x-forwarded-host"),
        vec!["api.example".to_owned()]
    );
    assert_eq!(
        all_values(&seen.headers, "forwarded"),
        vec!["for=198.51.100.7;proto=https".to_owned()]
    );
    let line = logs.access_line("via-lb");
    assert_eq!(line["remote"], "198.51.100.7", "the first untrusted hop: {line}");
    assert_eq!(line["peer"], "127.0.0.1", "{line}");
}

#[tokio::test]
async fn clients_behind_one_trusted_proxy_are_throttled_apart() {
    // Ten wrong secrets from one client behind the balancer throttle that client, not the
    // next one behind the same balancer.
    let hash = portcullis::issuer::hash_secret("right-Secret-1").unwrap();
    let config = format!(
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n{}\n[[client]]\nclient_id = \"c\"\nrealm = \"t\"\ntoken_endpoint_auth_method = \"client_secret_basic\"\nclient_secret_hash = \"{hash}\"\nscopes = [\"read\"]\n",
        default_config().replace(
            "[[realm]]\nname = \"t\"\n",
            "[[realm]]\nname = \"t\"\nsigning_keys = \"{dir}/signing.json\"\n"
        )
    );
    let key = TestKey::es256("k-sign");
    let h = Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&key]))
        .start()
        .await;
    let token = |xff: &'static str, secret: &'static str| {
        let h = &h;
        async move {
            h.send(
                Method::POST,
                "/realms/t/token",
                &[
                    ("authorization", &basic("c", secret)),
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("x-forwarded-for", xff),
                ],
                "grant_type=client_credentials&scope=read&resource=https%3A%2F%2Fapi.test",
            )
            .await
        }
    };
    for _ in 0..6 {
        token("203.0.113.1", "wrong").await;
    }
    let a = token("203.0.113.1", "right-Secret-1").await;
    assert!(
        a.headers.get("retry-after").is_some(),
        "the guesser is throttled: {}",
        a.body
    );
    let a = token("203.0.113.2", "right-Secret-1").await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "another client behind the balancer: {}",
        a.body
    );
}

#[tokio::test]
async fn forwarded_headers_are_appended_and_overwritten() {
    let h = Harness::builder().config(patient_config()).start().await;
    let auth = bearer(&h.key.sign(&claims("read")));
    let a = h
        .send(
            Method::GET,
            "/items/7",
            &[
                ("authorization", &auth),
                ("host", "API.example:8080"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-forwarded-for", "10.0.0.2"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.test"),
            ],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(
        all_values(&seen.headers, "x-forwarded-for"),
        vec!["10.0.0.1, 10.0.0.2, 127.0.0.1".to_owned()]
    );
    assert_eq!(all_values(&seen.headers, "x-forwarded-proto"), vec!["http".to_owned()]);
    assert_eq!(
        all_values(&seen.headers, "x-forwarded-host"),
        vec!["API.example:8080".to_owned()]
    );
    // The upstream is addressed by its own name, not the client's.
    assert_eq!(
        header(&seen.headers, "host"),
        Some(h.upstream.addr.to_string().as_str())
    );

    // No client value: the client's address alone; the Host the client used.
    let a = h.send(Method::GET, "/items/8", &[("authorization", &auth)], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(
        all_values(&seen.headers, "x-forwarded-for"),
        vec!["127.0.0.1".to_owned()]
    );
    assert_eq!(all_values(&seen.headers, "x-forwarded-proto"), vec!["http".to_owned()]);
    assert_eq!(
        all_values(&seen.headers, "x-forwarded-host"),
        vec![h.gateway.local_addr().to_string()]
    );
}

// ---------------------------------------------------------------------------------------
// Claim headers and Authorization.

#[tokio::test]
async fn claim_headers_replace_spoofed_ones_and_missing_claims_leave_none() {
    let config = patient_config().replace(
        "scope = \"x-auth-scope\"",
        "scope = \"x-auth-scope\"\nemail = \"x-auth-email\"",
    );
    let h = Harness::builder().config(config).start().await;
    let mut c = claims("read");
    c["sub"] = json!("alice");
    let auth = bearer(&h.key.sign(&c));
    let spoofs = [
        ("authorization", auth.as_str()),
        ("x-auth-sub", "admin"),
        ("X-Auth-Sub", "root"),
        ("X-AUTH-EMAIL", "boss@evil.test"),
        ("x-auth-scope", "admin"),
    ];
    // The token has `sub` and `scope` but no `email`.
    let a = h.send(Method::GET, "/items/7", &spoofs, "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(all_values(&seen.headers, "x-auth-sub"), vec!["alice".to_owned()]);
    assert_eq!(all_values(&seen.headers, "x-auth-scope"), vec!["read".to_owned()]);
    assert!(
        seen.headers.get("x-auth-email").is_none(),
        "a claim the token lacks must leave no header: {:?}",
        seen.headers
    );

    // The same mapping passes the claim when the token has it.
    c["email"] = json!("alice@example.test");
    let auth = bearer(&h.key.sign(&c));
    let a = h
        .send(
            Method::GET,
            "/items/7",
            &[("authorization", &auth), ("x-auth-email", "boss@evil.test")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(
        all_values(&seen.headers, "x-auth-email"),
        vec!["alice@example.test".to_owned()]
    );
}

#[tokio::test]
async fn claim_headers_render_any_json_and_follow_a_reload() {
    let mapping =
        "scope = \"x-auth-scope\"\nroles = \"x-auth-roles\"\nlevel = \"x-auth-level\"\nnote = \"x-auth-note\"";
    let config = patient_config().replace("scope = \"x-auth-scope\"", mapping);
    let h = Harness::builder().config(&config).start().await;
    let mut c = claims("read");
    c["roles"] = json!(["reader", "auditor"]);
    c["level"] = json!(3);
    c["note"] = json!("plain text");
    c["tier"] = json!({"name": "gold"});
    let token = h.key.sign(&c);
    // Twice: the second answer comes from the verified-token cache, rendered the same.
    for _ in 0..2 {
        assert_eq!(h.get("/items/7", &token).await.status, StatusCode::OK);
        let seen = h.upstream.last().await;
        assert_eq!(header(&seen.headers, "x-auth-roles"), Some("reader auditor"));
        assert_eq!(header(&seen.headers, "x-auth-level"), Some("3"));
        assert_eq!(header(&seen.headers, "x-auth-note"), Some("plain text"));
        assert!(seen.headers.get("x-auth-tier").is_none(), "not configured yet");
    }
    // A claim no header can carry refuses the request instead of passing a mangled value.
    c["note"] = json!("two\nlines");
    let hits = h.upstream.hits();
    let a = h.get("/items/7", &h.key.sign(&c)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(h.upstream.hits(), hits);

    // A reload that forwards one more claim applies to tokens verified before it.
    h.write_config(&config.replace(
        "note = \"x-auth-note\"",
        "note = \"x-auth-note\"\ntier = \"x-auth-tier\"",
    ));
    h.gateway.reload().await.unwrap();
    assert_eq!(h.get("/items/7", &token).await.status, StatusCode::OK);
    let seen = h.upstream.last().await;
    assert_eq!(header(&seen.headers, "x-auth-tier"), Some(r#"{"name":"gold"}"#));
    assert_eq!(header(&seen.headers, "x-auth-roles"), Some("reader auditor"));
}

#[tokio::test]
async fn keep_authorization_false_removes_it_upstream() {
    let h = Harness::builder().config(patient_config()).start().await;
    let token = h.key.sign(&claims("read"));
    assert_eq!(h.get("/items/7", &token).await.status, StatusCode::OK);
    let seen = h.upstream.last().await;
    assert_eq!(
        header(&seen.headers, "authorization"),
        Some(bearer(&token).as_str()),
        "kept by default"
    );

    let config = patient_config().replace(
        "response_timeout = \"60s\"",
        "response_timeout = \"60s\"\nkeep_authorization = false",
    );
    let h = Harness::builder().config(config).start().await;
    let token = h.key.sign(&claims("read"));
    assert_eq!(h.get("/items/7", &token).await.status, StatusCode::OK);
    let seen = h.upstream.last().await;
    assert!(seen.headers.get("authorization").is_none(), "{:?}", seen.headers);
    // Only Authorization goes: the claim headers still arrive.
    assert_eq!(header(&seen.headers, "x-auth-sub"), Some("client-1"));
}

// ---------------------------------------------------------------------------------------
// Upstream failures.

#[tokio::test]
async fn refused_upstream_is_502_upstream_unavailable() {
    let config = default_config().replace("http://{upstream}", &format!("http://{}", closed_port()));
    let h = Harness::builder().config(config).start().await;
    let a = h.get("/items/7", &h.key.sign(&claims("read"))).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.body);
    assert_eq!(header(&a.headers, "content-type"), Some("application/json"));
    assert_eq!(a.error(), "upstream_unavailable");
}

#[tokio::test]
async fn slow_upstream_is_504_upstream_timeout() {
    // default_config: `response_timeout = "1s"`; the upstream sleeps 5 s on `/slow`.
    let h = Harness::start().await;
    let a = h.get("/slow", &h.key.sign(&claims("read"))).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
    assert_eq!(header(&a.headers, "content-type"), Some("application/json"));
    assert_eq!(a.error(), "upstream_timeout");
}

// ---------------------------------------------------------------------------------------
// Bodies.

#[tokio::test]
async fn large_request_body_arrives_whole() {
    let h = Harness::builder().config(patient_config()).start().await;
    let auth = bearer(&h.key.sign(&claims("read write")));
    let body: String = (0..4 * 1024 * 1024u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let a = h.send(Method::POST, "/items", &[("authorization", &auth)], &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, "upstream saw POST /items (4194304 body bytes)");
    let seen = h.upstream.last().await;
    assert_eq!(seen.body.len(), body.len());
    assert!(seen.body == body.as_bytes(), "the body arrived altered");
}

#[tokio::test]
async fn chunked_request_body_arrives() {
    let h = Harness::builder().config(patient_config()).start().await;
    let auth = bearer(&h.key.sign(&claims("read write")));
    let (tx, body) = chan_body(8);
    let chunks = ["first,", "second,", "third"];
    for c in chunks {
        tx.send(Bytes::from(c)).await.expect("send");
    }
    drop(tx);
    let client: Client<HttpConnector, ChanBody> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let req = Request::post(h.url("/items"))
        .header("authorization", &auth)
        .body(body)
        .unwrap();
    let resp = within("chunked POST", client.request(req)).await.expect("chunked POST");
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = h.upstream.last().await;
    assert_eq!(&seen.body[..], chunks.concat().as_bytes());
    assert_eq!(seen.method, Method::POST);
}

/// The `portcullis_requests_total` samples for the `write` resource with `outcome`.
fn write_outcomes(text: &str, outcome: &str) -> f64 {
    sample(
        text,
        &format!("portcullis_requests_total{{resource_server=\"api\",resource=\"write\",outcome=\"{outcome}\",status=\"4xx\"}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn malformed_or_aborted_request_bodies_are_the_clients_fault() {
    let config = format!("[server]\nadmin_listen = \"127.0.0.1:0\"\n{}", patient_config());
    let h = Harness::builder().config(config).start().await;
    let gw = h.gateway.local_addr();
    let auth = bearer(&h.key.sign(&claims("write")));
    let post = |framing: &str, body: &str| {
        format!("POST /items HTTP/1.1\r\nHost: {gw}\r\nAuthorization: {auth}\r\n{framing}\r\n\r\n{body}").into_bytes()
    };
    let chunked = "Transfer-Encoding: chunked";
    // Malformed: the gateway answers 400 and closes.
    for (what, request) in [
        (
            "a chunk size that is not hex",
            post(chunked, "5\r\nhello\r\nzz\r\n\r\n"),
        ),
        ("a chunk longer than its size", post(chunked, "3\r\nhello\r\n0\r\n\r\n")),
        ("a chunk without its CRLF", post(chunked, "5\r\nhelloXY0\r\n\r\n")),
        (
            "a chunk size past u64",
            post(chunked, "fffffffffffffffff\r\nx\r\n0\r\n\r\n"),
        ),
    ] {
        let a = raw_send(gw, &request, End::Open).await;
        assert_eq!(a.status, 400, "{what}: {a:?}");
        assert!(a.body.contains("invalid_request"), "{what}: {a:?}");
        assert_eq!(a.header("connection"), Some("close"), "{what}: {a:?}");
    }
    // Aborted: the body ends early and the client stops sending; it still reads the 400.
    for (what, request) in [
        ("shorter than its Content-Length", post("Content-Length: 100", "short")),
        ("chunked without its last chunk", post(chunked, "5\r\nhello\r\n")),
    ] {
        let a = raw_send(gw, &request, End::HalfClose).await;
        assert_eq!(a.status, 400, "{what}: {a:?}");
        assert!(a.body.contains("invalid_request"), "{what}: {a:?}");
    }
    // Gone: the client closes mid-body without waiting.
    {
        let mut stream = TcpStream::connect(gw).await.unwrap();
        stream
            .write_all(&post("Content-Length: 100", "only part"))
            .await
            .unwrap();
        drop(stream);
    }
    // Every one is counted as the client's (4xx), none as the upstream's.
    let counted = within("seven client body failures counted", async {
        loop {
            let (_, text) = scrape(&h).await;
            let n = write_outcomes(&text, "bad_request_body") + write_outcomes(&text, "client_aborted");
            if n >= 7.0 {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(write_outcomes(&counted, "bad_request_body"), 4.0, "{counted}");
    assert_eq!(write_outcomes(&counted, "client_aborted"), 3.0, "{counted}");
    assert!(
        !counted.contains("portcullis_upstream_errors_total{"),
        "counted as upstream errors:\n{counted}"
    );
    assert!(!counted.contains("status=\"5xx\""), "{counted}");
}

#[tokio::test]
async fn request_body_streams_to_the_upstream() {
    // The upstream reports the first piece it reads; the client sends the rest of its body
    // only after that, so a gateway that waits for the whole body never gets there.
    let (first_tx, mut first_rx) = mpsc::channel::<Bytes>(1);
    let up = Upstream::builder()
        .handler(move |req: Request<Incoming>| {
            let first_tx = first_tx.clone();
            async move {
                let mut body = req.into_body();
                let mut all = Vec::new();
                let mut told = false;
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    if let Ok(data) = frame.into_data() {
                        all.extend_from_slice(&data);
                        if !told && !data.is_empty() {
                            told = true;
                            let _ = first_tx.send(data).await;
                        }
                    }
                }
                Response::new(full(all))
            }
        })
        .start()
        .await;
    let h = Harness::builder().config(patient_config()).upstream(up).start().await;
    let auth = bearer(&h.key.sign(&claims("read write")));
    let (tx, body) = chan_body(1);
    let client: Client<HttpConnector, ChanBody> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let req = Request::post(h.url("/items"))
        .header("authorization", &auth)
        .body(body)
        .unwrap();
    let pending = tokio::spawn(async move { client.request(req).await });
    tx.send(Bytes::from_static(b"head-of-the-body;")).await.expect("send");
    let first = within(
        "the upstream reading the start of a body the client has not finished",
        first_rx.recv(),
    )
    .await
    .expect("the upstream ended without reading a body");
    assert!(
        b"head-of-the-body;".starts_with(&first),
        "first piece upstream: {first:?}"
    );
    tx.send(Bytes::from_static(b"tail")).await.expect("send");
    drop(tx);
    let resp = within("the streamed POST", pending)
        .await
        .unwrap()
        .expect("streamed POST");
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&echoed[..], b"head-of-the-body;tail");
}

#[tokio::test]
async fn response_body_streams_to_the_client() {
    // The upstream sends a first piece, then holds the rest until the test has received
    // that piece through the gateway; then it sends 4 MiB more.
    const REST_CHUNKS: usize = 64;
    const CHUNK: usize = 64 * 1024;
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let up = Upstream::builder()
        .handler(move |_req: Request<Incoming>| {
            let gate = gate.clone();
            async move {
                let (tx, body) = chan_body(4);
                tokio::spawn(async move {
                    if tx.send(Bytes::from_static(b"first-piece;")).await.is_err() {
                        return;
                    }
                    gate.notified().await;
                    for i in 0..REST_CHUNKS {
                        let byte = b'a' + (i % 26) as u8;
                        if tx.send(Bytes::from(vec![byte; CHUNK])).await.is_err() {
                            return;
                        }
                    }
                });
                Response::new(body.boxed_unsync())
            }
        })
        .start()
        .await;
    let h = Harness::builder().config(patient_config()).upstream(up).start().await;
    let auth = bearer(&h.key.sign(&claims("read")));
    let req = Request::get(h.url("/items/7"))
        .header("authorization", &auth)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = within(
        "the response head while the upstream body is open",
        h.client.request(req),
    )
    .await
    .expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while got.len() < b"first-piece;".len() {
        let frame = within("the first piece while the upstream body is open", body.frame())
            .await
            .unwrap_or_else(|| panic!("body ended after {} bytes", got.len()))
            .unwrap();
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    assert_eq!(&got[..], b"first-piece;");
    release.notify_one();
    let rest = within("the rest of the body", body.collect()).await.unwrap().to_bytes();
    assert_eq!(rest.len(), REST_CHUNKS * CHUNK);
    for (i, chunk) in rest.chunks(CHUNK).enumerate() {
        let byte = b'a' + (i % 26) as u8;
        assert!(chunk.iter().all(|b| *b == byte), "chunk {i} altered");
    }
}

#[tokio::test]
async fn a_chunked_upstream_answer_reaches_a_raw_client_whole() {
    // The upstream answers in pieces of unknown length: the gateway streams them on in
    // chunked framing, which the client decodes back into the one body.
    let reply = Reply::fixed(StatusCode::OK, "first,second,third").chunked(6);
    let up = Upstream::builder().reply(reply).start().await;
    let h = Harness::builder().config(patient_config()).upstream(up).start().await;
    let auth = bearer(&h.key.sign(&claims("read")));
    let a = raw_get(h.gateway.local_addr(), "/items/7", &[("Authorization", &auth)]).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("transfer-encoding"), Some("chunked"), "{a:?}");
    assert_eq!(a.body, "first,second,third");
    assert_eq!(h.upstream.hits(), 1);
}

// ---------------------------------------------------------------------------------------
// HTTP/2 from the client, HTTP/1.1 to the upstream.

#[tokio::test]
async fn h2c_prior_knowledge_is_served_and_forwarded_as_http11() {
    let up = Upstream::builder()
        .reply(Reply::fixed(StatusCode::OK, "from upstream"))
        .start()
        .await;
    let addr = up.addr;
    let h = Harness::builder().config(patient_config()).upstream(up).start().await;
    let auth = bearer(&h.key.sign(&claims("read write")));
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new());

    let req = Request::get(h.url("/items/7?x=1"))
        .header("authorization", &auth)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = within("h2c GET", h2.request(req)).await.expect("h2c GET");
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"from upstream");
    let last = h.upstream.last().await;
    assert_eq!(last.version, Version::HTTP_11);
    assert_eq!(last.uri, "/items/7?x=1");
    assert_eq!(header(&last.headers, "host"), Some(addr.to_string().as_str()));
    // HTTP/2 has no Host header: the :authority is the original host.
    assert_eq!(
        header(&last.headers, "x-forwarded-host"),
        Some(h.gateway.local_addr().to_string().as_str())
    );
    assert_eq!(header(&last.headers, "x-auth-sub"), Some("client-1"));

    // A body over HTTP/2 arrives whole over HTTP/1.1.
    let req = Request::post(h.url("/items"))
        .header("authorization", &auth)
        .body(Full::new(Bytes::from_static(b"{\"over\":\"h2\"}")))
        .unwrap();
    let resp = within("h2c POST", h2.request(req)).await.expect("h2c POST");
    assert_eq!(resp.status(), StatusCode::OK);
    let last = h.upstream.last().await;
    assert_eq!(last.version, Version::HTTP_11);
    assert_eq!(&last.body[..], b"{\"over\":\"h2\"}");
}

// ---------------------------------------------------------------------------------------
// Path confusion: one canonical path is matched and forwarded.

#[tokio::test]
async fn path_spellings_of_admin_match_the_admin_resource() {
    let h = Harness::builder().config(patient_config()).start().await;
    let gw = h.gateway.local_addr();
    let read = bearer(&h.key.sign(&claims("read")));
    let admin = bearer(&h.key.sign(&claims("read admin")));
    // Sanity: the read token reaches ordinary items, not admin.
    let a = raw_get(gw, "/items/x/y", &[("Authorization", &read)]).await;
    assert_eq!(a.status, 200, "{a:?}");
    let hits = h.upstream.hits();
    for path in [
        "/items/admin/y",
        "/items/x/../admin/y",
        "/items/%2e%2e/items/admin/y",
        "/items/%2E%2E/items/admin/y",
        "//items//admin/y",
        "/items/./admin/y",
        "/items/%2e/admin/y",
        "/items/%61dmin/y",
        "/%69tems/admin/y",
        "/items/admin/y/..//y",
    ] {
        let a = raw_get(gw, path, &[("Authorization", &read)]).await;
        assert_eq!(a.status, 403, "{path}: {a:?}");
        assert!(a.body.contains("insufficient_scope"), "{path}: {a:?}");
        let challenge = a.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("scope=\"admin\""), "{path}: {challenge}");
    }
    assert_eq!(h.upstream.hits(), hits, "a refused spelling reached the upstream");
    // With the admin scope, each spelling reaches the upstream as the one canonical path.
    for path in [
        "/items/x/../admin/y",
        "/items/%2e%2e/items/admin/y",
        "//items//admin/y",
        "/items/./admin/y",
        "/items/%61dmin/y",
    ] {
        let a = raw_get(gw, path, &[("Authorization", &admin)]).await;
        assert_eq!(a.status, 200, "{path}: {a:?}");
        assert_eq!(h.upstream.last().await.uri, "/items/admin/y", "{path}");
    }
}

#[tokio::test]
async fn ambiguous_paths_are_400() {
    let h = Harness::builder().config(patient_config()).start().await;
    let gw = h.gateway.local_addr();
    let token = bearer(&h.key.sign(&claims("read write admin")));
    for path in [
        "/items/admin%2fy",
        "/items/admin%2Fy",
        "/items%5cadmin",
        "/items\\admin",
        "/items/admin;x=1/y",
        "/items;/admin/y",
        "/..",
        "/a/../../b",
        "/%2e%2e/items",
        "/items/%zz",
        "/items/%00",
        "/items/admin%3B/y",
        "/items/admin%3b/y",
        "/items%3B/admin/y",
        "/items/admin%3Bx=1/y",
        "/items/%3b",
    ] {
        let a = raw_get(gw, path, &[("Authorization", &token)]).await;
        assert_eq!(a.status, 400, "{path}: {a:?}");
        // The gateway's own refusal, not the HTTP parser's.
        assert!(a.body.contains("invalid_request"), "{path}: {a:?}");
    }
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn upstream_receives_the_normalized_path() {
    let h = Harness::builder().config(patient_config()).start().await;
    let gw = h.gateway.local_addr();
    let token = bearer(&h.key.sign(&claims("read")));
    for (sent, forwarded) in [
        ("/items/x/../7?q=1", "/items/7?q=1"),
        ("//items//7/./8?q=a/../b", "/items/7/8?q=a/../b"),
        ("/items/%37", "/items/7"),
        ("/items/%7euser", "/items/~user"),
        ("/items/a%20b", "/items/a%20b"),
        ("/items/a%3ab", "/items/a%3Ab"),
        ("/items/7/", "/items/7/"),
        ("/items/7/8/..", "/items/7/"),
        ("/elsewhere/./x/../y", "/elsewhere/y"),
    ] {
        let a = raw_get(gw, sent, &[("Authorization", &token)]).await;
        assert_eq!(a.status, 200, "{sent}: {a:?}");
        assert_eq!(h.upstream.last().await.uri, forwarded, "{sent}");
    }
}

#[tokio::test]
async fn raw_utf8_in_a_path_is_percent_encoded_once() {
    let h = Harness::builder().config(patient_config()).start().await;
    let gw = h.gateway.local_addr();
    let token = bearer(&h.key.sign(&claims("read")));
    // The raw bytes and their escapes (either case) are one path, matched and forwarded the
    // same; so are the characters a path may not carry raw.
    for (sent, forwarded) in [
        ("/orders/café", "/orders/caf%C3%A9"),
        ("/orders/caf%C3%A9", "/orders/caf%C3%A9"),
        ("/orders/caf%c3%a9", "/orders/caf%C3%A9"),
        ("/orders/café/../x", "/orders/x"),
        ("/orders/日本?q=café", "/orders/%E6%97%A5%E6%9C%AC?q=café"),
        ("/orders/{\"a\"}|^", "/orders/%7B%22a%22%7D%7C%5E"),
    ] {
        let request =
            format!("GET {sent} HTTP/1.1\r\nHost: {gw}\r\nAuthorization: {token}\r\nConnection: close\r\n\r\n");
        let a = raw_send(gw, request.as_bytes(), End::Open).await;
        assert_eq!(a.status, 200, "{sent}: {a:?}");
        assert_eq!(h.upstream.last().await.uri, forwarded, "{sent}");
    }
}

// ---------------------------------------------------------------------------------------
// Host-based routing.

#[tokio::test]
async fn host_specific_resource_wins_only_for_its_host() {
    let config = patient_config()
        + r#"
[[protected_resource]]
id = "hosted-any"
resource_server = "api"
paths = ["/hosted/**"]
scopes = ["read"]

[[protected_resource]]
id = "hosted-admin"
resource_server = "api"
host = "admin.test"
paths = ["/hosted/**"]
scopes = ["admin"]
"#;
    let h = Harness::builder().config(config).start().await;
    let gw = h.gateway.local_addr();
    let read = bearer(&h.key.sign(&claims("read")));
    for host in ["admin.test", "ADMIN.Test", "admin.test:8443", "Admin.TEST:80"] {
        let a = raw_get(gw, "/hosted/x", &[("Host", host), ("Authorization", &read)]).await;
        assert_eq!(a.status, 403, "Host {host}: {a:?}");
        let challenge = a.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("scope=\"admin\""), "Host {host}: {challenge}");
    }
    assert_eq!(h.upstream.hits(), 0);
    for host in ["other.test", "admin.test.evil", "xadmin.test", "127.0.0.1"] {
        let a = raw_get(gw, "/hosted/x", &[("Host", host), ("Authorization", &read)]).await;
        assert_eq!(a.status, 200, "Host {host}: {a:?}");
    }
    // On admin.test, paths its resource does not cover fall back to any-host resources.
    let a = raw_get(gw, "/items/7", &[("Host", "admin.test"), ("Authorization", &read)]).await;
    assert_eq!(a.status, 200, "{a:?}");
    // And with the admin scope the host's resource lets the request through.
    let admin = bearer(&h.key.sign(&claims("read admin")));
    let a = raw_get(
        gw,
        "/hosted/x",
        &[("Host", "Admin.Test:8443"), ("Authorization", &admin)],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let seen = h.upstream.last().await;
    assert_eq!(seen.uri, "/hosted/x");
    assert_eq!(header(&seen.headers, "x-forwarded-host"), Some("Admin.Test:8443"));
}

/// The patient configuration with a resource only `admin.internal` reaches; any other host
/// falls through to the catch-all resource, which any token passes.
fn internal_host_config() -> String {
    patient_config()
        + r#"
[[protected_resource]]
id = "internal"
resource_server = "api"
host = "admin.internal"
paths = ["/hosted/**"]
scopes = ["admin"]
"#
}

#[tokio::test]
async fn malformed_hosts_are_400_and_never_routed_or_forwarded() {
    let h = Harness::builder().config(internal_host_config()).start().await;
    let gw = h.gateway.local_addr();
    let read = bearer(&h.key.sign(&claims("read")));
    // Each would have missed the `admin.internal` rule, fallen through to the catch-all and
    // reached an upstream that reads X-Forwarded-Host as a URL (or a list) as admin.internal.
    for host in [
        "evil.test@admin.internal",
        "admin.internal@evil.test",
        "evil.test/admin.internal",
        "admin.internal/x",
        "evil.test?admin.internal",
        "evil.test#admin.internal",
        "evil.test\\admin.internal",
        "admin%2Einternal",
        "admin.internal%00",
        "evil.test,admin.internal",
        "evil.test;admin.internal",
        "evil.test admin.internal",
        "\"admin.internal\"",
        "admin.internal:80@evil.test",
        "admin.internal:",
        "admin.internal:http",
        "admin.internal:99999",
        "admin.internal:80:80",
        "[::1",
        "[::1]x",
        "[::1]:x",
        "[admin.internal]",
        "[v1.admin]",
        "[fe80::1%25eth0]",
        "::1",
    ] {
        let a = raw_get(gw, "/hosted/x", &[("Host", host), ("Authorization", &read)]).await;
        assert_eq!(a.status, 400, "Host {host:?}: {a:?}");
        assert!(a.body.contains("invalid_request"), "Host {host:?}: {a:?}");
    }
    assert_eq!(h.upstream.hits(), 0, "a malformed Host reached the upstream");
    // Well-formed spellings of the host reach its resource (which wants `admin`).
    for host in [
        "admin.internal",
        "ADMIN.Internal",
        "admin.internal:8443",
        "admin.internal.",
    ] {
        let a = raw_get(gw, "/hosted/x", &[("Host", host), ("Authorization", &read)]).await;
        assert_eq!(a.status, 403, "Host {host:?}: {a:?}");
    }
    // Other well-formed hosts fall through to the catch-all, and are forwarded as sent.
    for host in [
        "other.test",
        "127.0.0.1",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "[2001:db8::a:1]:443",
        "under_score.test",
        "xn--caf-dma.test",
    ] {
        let a = raw_get(gw, "/hosted/x", &[("Host", host), ("Authorization", &read)]).await;
        assert_eq!(a.status, 200, "Host {host:?}: {a:?}");
        let seen = h.upstream.last().await;
        assert_eq!(header(&seen.headers, "x-forwarded-host"), Some(host), "{host}");
    }
}

#[tokio::test]
async fn http11_needs_exactly_one_host() {
    let h = Harness::builder().config(internal_host_config()).start().await;
    let gw = h.gateway.local_addr();
    let read = bearer(&h.key.sign(&claims("read")));
    let ask = |line: &str, hosts: &[&str]| {
        let mut req = format!("{line}\r\nAuthorization: {read}\r\nConnection: close\r\n");
        for host in hosts {
            req.push_str(&format!("Host: {host}\r\n"));
        }
        req.push_str("\r\n");
        req
    };
    // RFC 9112 § 3.2: no Host, or more than one, is a 400.
    for (what, req) in [
        ("no Host", ask("GET /items/7 HTTP/1.1", &[])),
        (
            "two equal Hosts",
            ask("GET /items/7 HTTP/1.1", &["other.test", "other.test"]),
        ),
        (
            "two Hosts",
            ask("GET /hosted/x HTTP/1.1", &["other.test", "admin.internal"]),
        ),
        (
            "no Host, absolute-form",
            ask("GET http://other.test/items/7 HTTP/1.1", &[]),
        ),
        (
            "a malformed Host, absolute-form",
            ask("GET http://other.test/items/7 HTTP/1.1", &["admin.internal@x"]),
        ),
        (
            "a malformed authority, absolute-form",
            ask(
                "GET http://evil.test@admin.internal/hosted/x HTTP/1.1",
                &["admin.internal"],
            ),
        ),
    ] {
        let a = raw_send(gw, req.as_bytes(), End::Open).await;
        assert_eq!(a.status, 400, "{what}: {a:?}");
    }
    assert_eq!(h.upstream.hits(), 0);
    // RFC 9112 § 3.2.2: the absolute-form target's authority wins over Host.
    let a = raw_send(
        gw,
        ask("GET http://admin.internal/hosted/x HTTP/1.1", &["other.test"]).as_bytes(),
        End::Open,
    )
    .await;
    assert_eq!(a.status, 403, "{a:?}");
    // HTTP/1.0 may omit Host: routed on no host, and no X-Forwarded-Host is invented.
    let a = raw_send(gw, ask("GET /hosted/x HTTP/1.0", &[]).as_bytes(), End::Open).await;
    assert_eq!(a.status, 200, "{a:?}");
    let seen = h.upstream.last().await;
    assert!(seen.headers.get("x-forwarded-host").is_none(), "{:?}", seen.headers);
}

#[tokio::test]
async fn h2_authority_is_validated_and_must_agree_with_host() {
    let h = Harness::builder().config(internal_host_config()).start().await;
    let gw = h.gateway.local_addr();
    let read = bearer(&h.key.sign(&claims("read")));
    let stream = TcpStream::connect(gw).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let mut ask = async |authority: &str, hosts: &[&str]| {
        let mut req = Request::get(format!("http://{authority}/hosted/x")).header("authorization", &read);
        for host in hosts {
            req = req.header("host", *host);
        }
        let req = req.body(Full::new(Bytes::new())).unwrap();
        let resp = within("an h2 answer", send.send_request(req))
            .await
            .expect("h2 request");
        resp.status()
    };
    assert_eq!(ask("admin.internal", &[]).await, StatusCode::FORBIDDEN);
    assert_eq!(ask("other.test", &[]).await, StatusCode::OK);
    assert_eq!(ask("other.test", &["OTHER.test"]).await, StatusCode::OK);
    let seen = h.upstream.last().await;
    assert_eq!(header(&seen.headers, "x-forwarded-host"), Some("other.test"));
    let hits = h.upstream.hits();
    // RFC 9113 § 8.3.1: a Host naming another entity than :authority is malformed.
    assert_eq!(ask("other.test", &["admin.internal"]).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        ask("other.test", &["other.test", "other.test"]).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(ask("evil.test@admin.internal", &[]).await, StatusCode::BAD_REQUEST);
    assert_eq!(ask("admin.internal:99999", &[]).await, StatusCode::BAD_REQUEST);
    assert_eq!(h.upstream.hits(), hits);
}

// ---------------------------------------------------------------------------------------
// Unmatched requests.

#[tokio::test]
async fn unmatched_status_is_configurable() {
    let narrowed = patient_config().replace("paths = [\"/**\"]", "paths = [\"/open/**\"]");

    let h = Harness::builder().config(&narrowed).start().await;
    let auth = bearer(&h.key.sign(&claims("read")));
    let a = h
        .send(Method::GET, "/nothing/here", &[("authorization", &auth)], "")
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "default: {}", a.body);

    let config = format!("[server]\nunmatched_status = 403\n{narrowed}");
    let h = Harness::builder().config(config).start().await;
    let auth = bearer(&h.key.sign(&claims("read")));
    let a = h
        .send(Method::GET, "/nothing/here", &[("authorization", &auth)], "")
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(a.error(), "not_found");
    // Without a token too: nothing matched, so there is no realm to challenge for.
    let a = h.send(Method::GET, "/nothing/here", &[], "").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(h.upstream.hits(), 0);
    // Matched requests are unaffected.
    assert_eq!(
        h.send(Method::GET, "/open/x", &[("authorization", &auth)], "")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(h.upstream.hits(), 1);
}
