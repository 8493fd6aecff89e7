//! Operations, end to end on loopback: `/metrics` on the admin listener, access lines and
//! request ids, the listener's limits (slowloris, header size and count, idle connections,
//! open connections, request bodies) and a drain that lets a slow request finish.
//!
//! Nothing here asserts on how long something took: a test waits for the event it expects
//! (a close, a refusal, an answer), with a generous guard only so a regression fails instead
//! of hanging.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

use crate::support::*;

#[tokio::test]
async fn metrics_count_requests_tokens_and_keys_with_bounded_labels() {
    let secret = "ops-client-Secret-4411";
    let hash = portcullis::issuer::hash_secret(secret).unwrap();
    let key = TestKey::es256("k1");
    let config = config_with("admin_listen = \"127.0.0.1:0\"")
        .replace("jwks_file = \"{keys}\"", "signing_keys = \"{dir}/signing.json\"")
        + &format!("\n[[client]]\nclient_id = \"c1\"\nrealm = \"t\"\nclient_secret_hash = \"{hash}\"\n");
    let h = Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&key]))
        .key(key)
        .start()
        .await;

    // A token from the embedded issuer, and a refused token request.
    let form = ("content-type", "application/x-www-form-urlencoded");
    let good = basic("c1", secret);
    let bad = basic("c1", "wrong");
    let body = "grant_type=client_credentials&scope=read&resource=https%3A%2F%2Fapi.test";
    let a = h
        .send(Method::POST, "/realms/t/token", &[form, ("authorization", &good)], body)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let token = a.json()["access_token"].as_str().unwrap_or_default().to_owned();
    let a = h
        .send(Method::POST, "/realms/t/token", &[form, ("authorization", &bad)], body)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);

    // Allowed twice (a cache miss, then a hit), refused three ways, and two paths no
    // resource matches, one of them refused by normalization.
    for _ in 0..2 {
        assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
    }
    let a = h.send(Method::GET, "/items/1", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = h.post("/items", &token, "").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.get("/zz-raw-client-path-7f3", &token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/zz-raw-encoded%2Fpath-9c1", &token).await.status,
        StatusCode::BAD_REQUEST
    );
    h.gateway.reload().await.unwrap();

    let (a, text) = scrape(&h).await;
    assert_eq!(a.status, StatusCode::OK);
    let ct = a.headers.get("content-type").map(|v| v.to_str().unwrap_or_default());
    assert!(
        ct.is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{ct:?}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let req = |rs: &str, pr: &str, outcome: &str, class: &str| {
        format!(
            "portcullis_requests_total{{resource_server=\"{rs}\",resource=\"{pr}\",outcome=\"{outcome}\",status=\"{class}\"}}"
        )
    };
    assert_eq!(must(&text, &req("api", "read", "allowed", "2xx")), 2.0);
    assert_eq!(must(&text, &req("api", "read", "missing_token", "4xx")), 1.0);
    assert_eq!(must(&text, &req("api", "write", "insufficient_scope", "4xx")), 1.0);
    assert_eq!(must(&text, &req("-", "-", "no_route", "4xx")), 1.0);
    assert_eq!(must(&text, &req("-", "-", "bad_path", "4xx")), 1.0);
    assert_eq!(
        must(
            &text,
            "portcullis_request_duration_seconds_count{resource_server=\"api\"}"
        ),
        4.0
    );
    assert_eq!(
        must(
            &text,
            "portcullis_request_duration_seconds_count{resource_server=\"-\"}"
        ),
        2.0
    );
    assert_eq!(
        must(
            &text,
            "portcullis_upstream_duration_seconds_count{resource_server=\"api\"}"
        ),
        2.0
    );
    assert!(
        text.contains("portcullis_upstream_duration_seconds_bucket{le=\"+Inf\",resource_server=\"api\"} 2")
            || text.contains("portcullis_upstream_duration_seconds_bucket{resource_server=\"api\",le=\"+Inf\"} 2"),
        "{text}"
    );
    assert_eq!(
        must(
            &text,
            "portcullis_tokens_issued_total{realm=\"t\",resource_server=\"api\"}"
        ),
        1.0
    );
    assert_eq!(
        must(
            &text,
            "portcullis_issuer_errors_total{realm=\"t\",endpoint=\"token\",error=\"invalid_client\"}"
        ),
        1.0
    );
    // Three verifications: a miss, then hits (the 403 is decided after verification).
    assert_eq!(must(&text, "portcullis_token_cache_misses_total"), 1.0);
    assert_eq!(must(&text, "portcullis_token_cache_hits_total"), 2.0);
    assert_eq!(must(&text, "portcullis_jwks_usable{realm=\"t\"}"), 1.0);
    assert_eq!(must(&text, "portcullis_jwks_fetches_total{realm=\"t\"}"), 0.0);
    assert_eq!(must(&text, "portcullis_config_reloads_total"), 1.0);
    assert_eq!(must(&text, "portcullis_config_reload_failures_total"), 0.0);
    assert!(must(&text, "portcullis_connections_total") >= 1.0, "{text}");
    assert!(sample(&text, "portcullis_connections_open").is_some(), "{text}");
    // Client input never becomes a label: not the paths, not the token, not the secret.
    for never in ["zz-raw", "7f3", "9c1", &token, secret, "wrong"] {
        assert!(!text.contains(never), "{never:?} in:\n{text}");
    }
    // And the remote JWKS figures appear for remote realms only after a fetch: none here.
    assert!(!text.contains("portcullis_jwks_key_age_seconds{"), "{text}");
}

#[tokio::test]
async fn upstream_errors_are_counted_by_kind() {
    // An upstream that refuses connections.
    let config = config_with("admin_listen = \"127.0.0.1:0\"").replace("{upstream}", &closed_port().to_string());
    let h = Harness::builder().config(config).start().await;
    let a = h.get("/items/1", &h.key.sign(&claims("read"))).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.body);
    let (_, text) = scrape(&h).await;
    assert_eq!(
        must(
            &text,
            "portcullis_upstream_errors_total{resource_server=\"api\",kind=\"unreachable\"}"
        ),
        1.0
    );
    assert_eq!(
        must(
            &text,
            "portcullis_requests_total{resource_server=\"api\",resource=\"read\",outcome=\"upstream_error\",status=\"5xx\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_travel_both_ways() {
    let h = Harness::builder().config(config_with("")).start().await;
    let auth = format!("Bearer {}", h.key.sign(&claims("read")));
    let id_of = |a: &Answer| {
        a.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no x-request-id in {:?}", a.headers))
            .to_owned()
    };
    let upstream_id = |seen: &Seen| {
        seen.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let generated = |id: &str| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());

    // A sane id is kept, passed upstream and returned.
    let a = h
        .send(
            Method::GET,
            "/items/1",
            &[("authorization", &auth), ("x-request-id", "trace-42.a:b")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(id_of(&a), "trace-42.a:b");
    assert_eq!(upstream_id(&h.upstream.last().await), "trace-42.a:b");

    // None, or one that is not a bounded token: a new one, the same both ways.
    let long = "x".repeat(200);
    for sent in [None, Some("has spaces, and a comma"), Some(long.as_str())] {
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(sent.map(|s| ("x-request-id", s)));
        let a = h.send(Method::GET, "/items/1", &headers, "").await;
        let id = id_of(&a);
        assert!(generated(&id), "{sent:?} → {id}");
        assert_eq!(upstream_id(&h.upstream.last().await), id);
    }

    // A client cannot strip it with `Connection: x-request-id`.
    let a = h
        .send(
            Method::GET,
            "/items/1",
            &[
                ("authorization", &auth),
                ("x-request-id", "keep-me"),
                ("connection", "x-request-id"),
            ],
            "",
        )
        .await;
    assert_eq!(id_of(&a), "keep-me");
    assert_eq!(upstream_id(&h.upstream.last().await), "keep-me");

    // Refusals carry one too, and two requests never share a generated one.
    let a = h.send(Method::GET, "/items/1", &[], "").await;
    let b = h.send(Method::GET, "/nowhere", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.status, StatusCode::NOT_FOUND);
    assert!(generated(&id_of(&a)) && generated(&id_of(&b)));
    assert_ne!(id_of(&a), id_of(&b));
}

#[tokio::test]
async fn access_lines_name_the_request_and_never_the_token() {
    let h = Harness::builder().config(config_with("")).start().await;
    // One access line before capturing (see `Logs::capture`).
    assert_eq!(
        h.send(Method::GET, "/nowhere", &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    let logs = Logs::capture();
    let token = h.key.sign(&claims("read"));
    let auth = format!("Bearer {token}");
    let a = h
        .send(
            Method::GET,
            "/items/%61b/../1?access_token=QUERY-SECRET",
            &[("authorization", &auth), ("x-request-id", "log-test-1")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = h
        .send(
            Method::POST,
            "/items",
            &[("authorization", &auth), ("x-request-id", "log-test-2")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let text = logs.text();
    let lines = logs.access();
    let line = |id: &str| logs.access_line(id);
    let ok = line("log-test-1");
    assert!(ok["timestamp"].is_string(), "{ok}");
    assert_eq!(ok["method"], "GET");
    // The normalized path, without the query.
    assert_eq!(ok["path"], "/items/1");
    assert_eq!(ok["resource"], "read");
    assert_eq!(ok["resource_server"], "api");
    assert_eq!(ok["outcome"], "allowed");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["client"], "client-1");
    assert!(ok["duration_us"].is_u64() && ok["upstream_us"].is_u64(), "{ok}");
    assert_eq!(ok["remote"], "127.0.0.1");
    let refused = line("log-test-2");
    assert_eq!(refused["resource"], "write");
    assert_eq!(refused["outcome"], "insufficient_scope");
    assert_eq!(refused["status"], 403);
    assert!(refused.get("upstream_us").is_none(), "{refused}");
    assert_eq!(lines.len(), 2, "one line per request:\n{text}");
    // Never the token (nor any part of its signature), never the query.
    let sig = token.rsplit('.').next().unwrap_or_default();
    for never in [token.as_str(), sig, "QUERY-SECRET", "access_token"] {
        assert!(!text.contains(never), "{never:?} logged:\n{text}");
    }
}

#[tokio::test]
async fn a_slowloris_connection_is_closed() {
    let h = Harness::builder()
        .config(config_with("header_read_timeout = \"1s\""))
        .start()
        .await;
    let mut s = TcpStream::connect(h.gateway.local_addr()).await.unwrap();
    // A request line and one header, then nothing: the head never completes.
    s.write_all(b"GET /items/1 HTTP/1.1\r\nHost: gw.test\r\nX-Slow: ")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = within("the server closing a half-sent head", s.read_to_end(&mut out)).await;
    // Closed (EOF or reset) without the request ever reaching the upstream.
    assert_eq!(h.upstream.hits(), 0);
    // Complete requests are still served.
    let a = h.get("/items/1", &h.key.sign(&claims("read"))).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_or_too_many_headers_are_refused_with_431() {
    let h = Harness::builder()
        .config(config_with("max_header_bytes = 16384\nmax_headers = 20"))
        .start()
        .await;
    let auth = format!("Bearer {}", h.key.sign(&claims("read")));
    let addr = h.gateway.local_addr();
    let head = |extra: &str| {
        format!("GET /items/1 HTTP/1.1\r\nHost: gw.test\r\nAuthorization: {auth}\r\nConnection: close\r\n{extra}\r\n")
    };
    let many: String = (0..30).map(|i| format!("X-H-{i}: v\r\n")).collect();
    let big = format!("X-Big: {}\r\n", "b".repeat(20_000));
    assert_eq!(raw_send(addr, head(&many).as_bytes(), End::Open).await.status, 431);
    assert_eq!(raw_send(addr, head(&big).as_bytes(), End::Open).await.status, 431);
    assert_eq!(h.upstream.hits(), 0);
    let few: String = (0..5).map(|i| format!("X-H-{i}: v\r\n")).collect();
    assert_eq!(raw_send(addr, head(&few).as_bytes(), End::Open).await.status, 200);
}

#[tokio::test]
async fn bodies_over_max_body_bytes_get_413() {
    let config = config_with("").replace(
        "response_timeout = \"1s\"",
        "response_timeout = \"30s\"\nmax_body_bytes = 1024",
    );
    let h = Harness::builder().config(config).start().await;
    let auth = format!("Bearer {}", h.key.sign(&claims("write")));

    // By Content-Length: refused before anything reaches the upstream.
    let a = h
        .send(Method::POST, "/items", &[("authorization", &auth)], &"x".repeat(2048))
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert_eq!(a.error(), "request_too_large");
    assert_eq!(h.upstream.hits(), 0);
    // Up to the limit goes through whole.
    let a = h
        .send(Method::POST, "/items", &[("authorization", &auth)], &"x".repeat(1024))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.last().await.body.len(), 1024);
    let whole = h.upstream.hits();

    // Chunked, no length: cut as it streams. The upstream may see the head, never the body.
    let addr = h.gateway.local_addr();
    let chunked = |chunks: &[usize]| {
        let mut req = format!(
            "POST /items HTTP/1.1\r\nHost: gw.test\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for n in chunks {
            req.extend(format!("{n:x}\r\n").bytes());
            req.extend(std::iter::repeat_n(b'c', *n));
            req.extend(b"\r\n");
        }
        req.extend(b"0\r\n\r\n");
        req
    };
    let a = raw_send(addr, &chunked(&[800, 800, 800]), End::Open).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.body.contains("request_too_large"), "{a:?}");
    // A chunked body within the limit streams through whole.
    let a = raw_send(addr, &chunked(&[500, 500]), End::Open).await;
    assert_eq!(a.status, 200, "{a:?}");
    // Whatever the upstream recorded of the cut request (it may still be recording), it
    // never had a body: only the one within the limit arrived.
    let seen = h.upstream.seen().await;
    let bodies: Vec<usize> = seen.iter().skip(whole).map(|s| s.body.len()).collect();
    assert!(bodies.iter().all(|n| *n == 0 || *n == 1000), "{bodies:?}");
    assert_eq!(bodies.iter().filter(|n| **n == 1000).count(), 1, "{bodies:?}");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    // HTTP/1.1 idle connections end at header_read_timeout (hyper times the next head from
    // the moment a connection goes idle); HTTP/2 ones only by the idle timer.
    let h = Harness::builder()
        .config(config_with("idle_timeout = \"1s\"\nheader_read_timeout = \"60s\""))
        .start()
        .await;
    let tcp = TcpStream::connect(h.gateway.local_addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = Request::builder()
        .uri(h.url("/items/1"))
        .header("authorization", format!("Bearer {}", h.key.sign(&claims("read"))))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.into_body().collect().await;
    // The server ends the connection (GOAWAY, then close): the client's connection task ends.
    let ended = within("the idle connection closing", conn).await;
    assert!(ended.is_ok());
}

#[tokio::test]
async fn connections_past_max_connections_wait_for_a_free_slot() {
    let h = Harness::builder()
        .config(config_with("max_connections = 1\nadmin_listen = \"127.0.0.1:0\""))
        .start()
        .await;
    let auth = format!("Bearer {}", h.key.sign(&claims("read")));
    let addr = h.gateway.local_addr();
    let request = format!("GET /items/1 HTTP/1.1\r\nHost: gw.test\r\nAuthorization: {auth}\r\n\r\n");
    // The first connection takes the only slot and stays open (kept alive).
    let mut first = RawConn::open(addr).await;
    let a = first.exchange(request.as_bytes(), "the first answer").await;
    assert_eq!(a.status, 200, "{a:?}");
    // The second connects (the kernel queues it) and sends, but is not accepted yet.
    let second = tokio::spawn(async move {
        let request =
            format!("GET /items/1 HTTP/1.1\r\nHost: gw.test\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
        raw_send(addr, request.as_bytes(), End::Open).await
    });
    let (_, text) = scrape(&h).await;
    assert_eq!(must(&text, "portcullis_connections_open"), 1.0, "{text}");
    // Closing the first frees the slot: the second is served.
    drop(first);
    let a = within("the second answer", second).await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test]
async fn a_drain_lets_a_slow_request_finish_and_refuses_new_connections() {
    // An upstream whose every request waits until the test releases it, telling the test
    // when a request arrived.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let up = Upstream::builder()
        .handler(move |_req| {
            let (arrived_tx, gate) = (arrived_tx.clone(), gate.clone());
            async move {
                let released = gate.notified();
                let _ = arrived_tx.send(());
                released.await;
                Response::new(full("finally"))
            }
        })
        .start()
        .await;
    // The test owns the gateway (to shut it down) and picks a drain deadline no test machine
    // reaches.
    let h = Harness::builder()
        .config(default_config().replace("response_timeout = \"1s\"", "response_timeout = \"120s\""))
        .upstream(up)
        .drain(Duration::from_secs(300))
        .start()
        .await;
    let addr = h.gateway.local_addr();
    let url = h.url("/slow");
    let auth = bearer(&h.key.sign(&claims("read")));
    let client = h.client.clone();

    let slow = tokio::spawn(async move { send(&client, Method::GET, &url, &[("authorization", &auth)], "").await });
    within("the slow request reaching the upstream", arrived.recv()).await;
    let shutdown = tokio::spawn(h.gateway.shutdown());
    // Shutdown has begun once connecting is refused.
    within("new connections being refused", async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The in-flight request holds the drain open until it is answered.
    assert!(!shutdown.is_finished());
    release.notify_waiters();
    let a = within("the slow answer", slow).await.unwrap();
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, "finally");
    within("the drain ending", shutdown).await.unwrap();
}

/// Writes the default test configuration with `server` as its `[server]` table and
/// `rs_extra` in its resource server, and loads it.
fn load_limits(server: &str, rs_extra: &str) -> Result<portcullis::Snapshot, portcullis::config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, public_jwks(&[&TestKey::es256("k1")])).unwrap();
    let text = format!("[server]\n{server}\n{}", default_config())
        .replace("{upstream}", "127.0.0.1:9")
        .replace("{keys}", &keys.display().to_string())
        .replace(
            "response_timeout = \"1s\"",
            &format!("response_timeout = \"1s\"\n{rs_extra}"),
        );
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    portcullis::app::load_snapshot(&path, portcullis::time::system(), None)
}

#[test]
fn limit_settings_have_defaults_and_are_checked_at_load() {
    let snap = load_limits("", "").unwrap();
    let s = &snap.settings;
    assert_eq!(
        (s.max_header_bytes, s.max_headers, s.idle_timeout, s.max_connections),
        (65536, 100, Duration::from_secs(60), None)
    );
    assert_eq!(snap.resource_servers[ResourceServerRef::at(0)].max_body_bytes, None);

    let snap = load_limits(
        "max_header_bytes = 8192\nmax_headers = 7\nidle_timeout = \"5m\"\nmax_connections = 3",
        "max_body_bytes = 10",
    )
    .unwrap();
    let s = &snap.settings;
    assert_eq!(
        (s.max_header_bytes, s.max_headers, s.idle_timeout, s.max_connections),
        (8192, 7, Duration::from_secs(300), Some(3))
    );
    assert_eq!(snap.resource_servers[ResourceServerRef::at(0)].max_body_bytes, Some(10));

    let errors = load_limits(
        "max_header_bytes = 8191\nmax_headers = 0\nidle_timeout = \"0s\"\nmax_connections = 0",
        "max_body_bytes = 0",
    )
    .expect_err("bad limits were accepted")
    .0;
    let fields: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.entity.as_str(), e.field.as_deref().unwrap_or_default()))
        .collect();
    for field in ["max_header_bytes", "max_headers", "idle_timeout", "max_connections"] {
        assert!(fields.contains(&("server", field)), "{field}: {fields:?}");
    }
    assert!(
        fields.iter().any(|(e, f)| e.contains("api") && *f == "max_body_bytes"),
        "{fields:?}"
    );
}
