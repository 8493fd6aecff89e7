//! The embedded issuer under hostile load: the cost of client authentication is bounded
//! (argon2 runs under a core-sized semaphore with a bounded queue, identical checks in flight
//! are coalesced, failures are counted before the hash is paid), failures throttle one
//! (client, source address) pair and never the client everywhere, and unknown client ids pay
//! the same verification and throttle as known ones. Sources are distinct loopback addresses
//! (the whole of 127.0.0.0/8 reaches the gateway on Linux).

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use crate::support::*;

const TOKEN: &str = "/realms/t/token";
const INTROSPECT: &str = "/realms/t/introspect";
const CLIENT_SECRET: &str = "limits-client-Secret-51f0";
const RS_SECRET: &str = "limits-rs-Secret-8c2e";
/// Failures a (client, source) pair may have within the window before it is throttled.
const MAX_FAILURES: usize = 5;
/// The throttle's window, seconds.
const WINDOW: i64 = 60;

fn hashes() -> &'static (String, String) {
    static HASHES: OnceLock<(String, String)> = OnceLock::new();
    HASHES.get_or_init(|| {
        let h = |s: &str| portcullis::issuer::hash_secret(s).expect("hash");
        (h(CLIENT_SECRET), h(RS_SECRET))
    })
}

/// One issuing realm, one resource server with its own credentials, one Basic client;
/// `head` first.
fn harness(head: &str) -> HarnessBuilder {
    let (client_hash, rs_hash) = hashes();
    let config = format!(
        r#"{head}
[[realm]]
name = "t"
issuer = "http://127.0.0.1/realms/t"
algorithms = ["ES256"]
signing_keys = "{{dir}}/signing.json"

[[resource_server]]
id = "api"
realm = "t"
audience = "https://api.test"
upstream = "http://{{upstream}}"
scopes = ["read"]
default_scopes = ["read"]
default = true
client_id = "api-rs"
client_secret_hash = "{rs_hash}"

[[protected_resource]]
id = "items"
resource_server = "api"
paths = ["/items/**"]
scopes = ["read"]

[[client]]
client_id = "basic-client"
realm = "t"
token_endpoint_auth_method = "client_secret_basic"
client_secret_hash = "{client_hash}"
scopes = ["read"]
"#
    );
    Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&TestKey::es256("realm-es")]))
}

/// The loopback address `127.0.0.n`.
fn source(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// POSTs a form to `path` over a fresh connection from `src`.
async fn post_from(src: IpAddr, gateway: SocketAddr, path: &str, authorization: &str, body: &str) -> Answer {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(src, 0))
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    let stream = socket
        .connect(gateway)
        .await
        .unwrap_or_else(|e| panic!("connect from {src}: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post(path)
        .header("host", gateway.to_string())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", authorization)
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .unwrap_or_else(|e| panic!("{path} from {src}: {e}"));
    Answer::read(resp).await
}

async fn token_from(src: IpAddr, gateway: SocketAddr, id: &str, secret: &str) -> Answer {
    post_from(src, gateway, TOKEN, &basic(id, secret), "grant_type=client_credentials").await
}

async fn introspect_from(src: IpAddr, gateway: SocketAddr, id: &str, secret: &str) -> Answer {
    post_from(src, gateway, INTROSPECT, &basic(id, secret), "token=a.b.c").await
}

#[track_caller]
fn refused(a: &Answer, why: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{why}: {}", a.body);
    assert_eq!(a.error(), "invalid_client", "{why}: {}", a.body);
}

/// A refusal because this (client, source) pair failed too often: `Retry-After` within the
/// window.
#[track_caller]
fn throttled(a: &Answer, why: &str) {
    refused(a, why);
    let after: i64 = a
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{why}: no Retry-After: {:?}", a.headers));
    assert!((1..=WINDOW).contains(&after), "{why}: Retry-After {after}");
}

/// A plain failure: no `Retry-After`.
#[track_caller]
fn failed(a: &Answer, why: &str) {
    refused(a, why);
    assert!(a.headers.get("retry-after").is_none(), "{why}: {:?}", a.headers);
}

#[tokio::test]
async fn failures_from_one_source_throttle_that_source_only() {
    let h = harness("").start().await;
    let (gw, clock) = (h.gateway.local_addr(), &h.clock);
    let (attacker, owner) = (source(2), source(1));
    for (path, id, secret) in [
        (TOKEN, "basic-client", CLIENT_SECRET),
        (INTROSPECT, "api-rs", RS_SECRET),
    ] {
        let call = |src: IpAddr, secret: &'static str| async move {
            if path == TOKEN {
                token_from(src, gw, id, secret).await
            } else {
                introspect_from(src, gw, id, secret).await
            }
        };
        for i in 0..MAX_FAILURES {
            failed(&call(attacker, "wrong-Secret").await, &format!("{path}: failure {i}"));
        }
        // The attacking source is throttled, even with the right secret...
        throttled(&call(attacker, secret).await, &format!("{path}: the attacker's source"));
        // ...while the owner, from its own address, is not refused at all.
        let a = call(owner, secret).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: the owner was locked out: {}", a.body);
        // Nor is anyone else's first failure turned into a throttle.
        failed(
            &call(source(3), "wrong-Secret").await,
            &format!("{path}: a third source"),
        );
    }
    // The window passes on the gateway's clock: the attacking source may try again.
    clock.advance(WINDOW);
    let a = token_from(attacker, gw, "basic-client", CLIENT_SECRET).await;
    assert_eq!(a.status, StatusCode::OK, "after the window: {}", a.body);
    let a = introspect_from(attacker, gw, "api-rs", RS_SECRET).await;
    assert_eq!(a.status, StatusCode::OK, "after the window: {}", a.body);
}

#[tokio::test]
async fn a_success_clears_only_its_own_sources_failures() {
    let h = harness("").start().await;
    let gw = h.gateway.local_addr();
    for i in 0..MAX_FAILURES - 1 {
        failed(
            &token_from(source(4), gw, "basic-client", "wrong").await,
            &format!("{i}"),
        );
        failed(
            &token_from(source(5), gw, "basic-client", "wrong").await,
            &format!("{i}"),
        );
    }
    // Source 4 succeeds: its count starts over; source 5's does not.
    assert_eq!(
        token_from(source(4), gw, "basic-client", CLIENT_SECRET).await.status,
        StatusCode::OK
    );
    failed(
        &token_from(source(4), gw, "basic-client", "wrong").await,
        "4 after its success",
    );
    failed(
        &token_from(source(5), gw, "basic-client", "wrong").await,
        "5's fifth failure",
    );
    throttled(
        &token_from(source(5), gw, "basic-client", "wrong").await,
        "5's sixth try",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_right_secrets_from_one_source_is_one_check_not_guessing() {
    // A client that starts 32 workers at once, behind one address, before any of its checks
    // is remembered: identical checks share one verification and are one try, so none of
    // them is taken for a failure (each used to reserve one, and the sixth was throttled).
    let h = harness("").start().await;
    let gw = h.gateway.local_addr();
    let tasks: Vec<_> = (0..32)
        .map(|_| tokio::spawn(token_from(source(6), gw, "basic-client", CLIENT_SECRET)))
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let a = t.await.unwrap();
        assert_eq!(a.status, StatusCode::OK, "request {i}: {}", a.body);
    }
    // Guessing is still counted: distinct wrong secrets at once from another source.
    let tasks: Vec<_> = (0..2 * MAX_FAILURES)
        .map(|i| {
            let wrong: &'static str = Box::leak(format!("wrong-{i}").into_boxed_str());
            tokio::spawn(token_from(source(7), gw, "basic-client", wrong))
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.iter().all(|a| a.status == StatusCode::UNAUTHORIZED));
    throttled(
        &token_from(source(7), gw, "basic-client", CLIENT_SECRET).await,
        "after ten distinct wrong secrets at once",
    );
}

#[tokio::test]
async fn unknown_client_ids_are_verified_and_throttled_like_known_ones() {
    let h = harness("").start().await;
    let gw = h.gateway.local_addr();
    // An unknown id answers exactly as a known id with a wrong secret, and goes through the
    // same per-source throttle (it pays the same dummy verification).
    for (path, id) in [(TOKEN, "nobody"), (INTROSPECT, "no-rs")] {
        for i in 0..MAX_FAILURES {
            let a = if path == TOKEN {
                token_from(source(6), gw, id, "any-Secret").await
            } else {
                introspect_from(source(6), gw, id, "any-Secret").await
            };
            failed(&a, &format!("{path}: unknown id, failure {i}"));
        }
        let a = if path == TOKEN {
            token_from(source(6), gw, id, "any-Secret").await
        } else {
            introspect_from(source(6), gw, id, "any-Secret").await
        };
        throttled(&a, &format!("{path}: unknown id, throttled"));
    }
    // The real client from that very source is not affected by the unknown ids' failures.
    assert_eq!(
        token_from(source(6), gw, "basic-client", CLIENT_SECRET).await.status,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------
// Memory under concurrency: the real binary, its own /proc status.

/// Kills and reaps the gateway process on drop.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `kB` line of `/proc/<pid>/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Waits until process `pid` has a SIGHUP handler (bit 0 of `SigCgt` in its status).
async fn catches_sighup(pid: u32) {
    for _ in 0..400 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & 1 == 1);
        if caught {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the gateway never installed its SIGHUP handler");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_secret_checks_keep_memory_bounded() {
    let files = harness("[server]\nlisten = \"127.0.0.1:0\"\n").prepare().await;
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&files.config)
        .args(["--log-format", "json"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut gateway = Reaper(child);
    let pid = gateway.0.id();
    let stderr = gateway.0.stderr.take().expect("no stderr");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Anything not JSON (a panic, a usage error) is kept for the failure message.
            let v = serde_json::from_str::<serde_json::Value>(&line).unwrap_or(serde_json::Value::String(line));
            let _ = tx.send(v);
        }
    });
    let mut seen = Vec::new();
    let mut next_log = async |what: &str| loop {
        let v = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what:?} log line: {seen:?}"))
            .unwrap_or_else(|| panic!("the gateway exited: {seen:?}"));
        if v["message"] == what {
            return v;
        }
        seen.push(v);
    };
    let started = next_log("portcullis listening").await;
    let gw: SocketAddr = started["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no addr: {started}"));
    let baseline = proc_kib(pid, "VmRSS");

    let fire = async |n: usize, path: &'static str, id: &'static str, secret: &'static str, many_sources: bool| {
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let src = if many_sources {
                // 127.0.0.10 .. 127.0.0.137
                source(10 + u8::try_from(i).unwrap_or(0))
            } else {
                source(1)
            };
            let body = if path == TOKEN {
                "grant_type=client_credentials"
            } else {
                "token=a.b.c"
            };
            let auth = basic(id, secret);
            tasks.push(tokio::spawn(async move { post_from(src, gw, path, &auth, body).await }));
        }
        let mut answers = Vec::with_capacity(n);
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        answers
    };
    let check_refusals = |answers: &[Answer], what: &str| {
        for a in answers {
            match a.status {
                StatusCode::UNAUTHORIZED => assert_eq!(a.error(), "invalid_client", "{what}: {}", a.body),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(a.error(), "temporarily_unavailable", "{what}: {}", a.body);
                    assert!(a.headers.get("retry-after").is_some(), "{what}: {:?}", a.headers);
                }
                s => panic!("{what}: {s} {}", a.body),
            }
        }
    };
    // Verifications run at most one per core (argon2id: 19 MiB each). On a machine with more
    // than two cores, each further core may hold one more.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let bound_mib = 100 + 20 * cores.saturating_sub(2);
    let check_growth = |what: &str| {
        let peak = proc_kib(pid, "VmHWM");
        let growth_mib = peak.saturating_sub(baseline) / 1024;
        eprintln!(
            "{what}: RSS baseline {} MiB, peak {} MiB, growth {growth_mib} MiB (bound {bound_mib} MiB, {cores} cores)",
            baseline / 1024,
            peak / 1024
        );
        assert!(
            growth_mib < bound_mib,
            "{what}: RSS grew by {growth_mib} MiB (bound {bound_mib} MiB)"
        );
    };
    // Right after a reload (remembered checks forgotten), 128 correct secrets at once: one
    // verification serves them all. (SIGHUP before the gateway handles it would end it.)
    catches_sighup(pid).await;
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill");
    next_log("configuration reloaded").await;
    let answers = fire(128, TOKEN, "basic-client", CLIENT_SECRET, true).await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::OK, "a correct secret after a reload: {}", a.body);
    }
    check_growth("correct secrets after a reload");
    // 128 wrong secrets at once for one known client: from one source, then from 128.
    let answers = fire(128, TOKEN, "basic-client", "wrong-Secret-1", false).await;
    check_refusals(&answers, "one source");
    let answers = fire(128, TOKEN, "basic-client", "wrong-Secret-2", true).await;
    check_refusals(&answers, "many sources");
    // The same through a resource server's credentials at introspection.
    let answers = fire(128, INTROSPECT, "api-rs", "wrong-Secret-3", true).await;
    check_refusals(&answers, "introspection");
    check_growth("wrong secrets");
}
