//! The real binary's lifecycle: SIGHUP reloads, SIGTERM drains and exits 0; and a
//! Kubernetes-style symlink swap of the configuration is picked up by the watcher; usage
//! errors exit 64.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};

use crate::support::*;

/// Claims valid now by the system clock (the binary runs on it, not on a ManualClock).
fn live_claims(scope: &str) -> serde_json::Value {
    use portcullis::time::Clock;
    let now = portcullis::time::SystemClock.now();
    let mut c = claims(scope);
    c["iat"] = now.into();
    c["auth_time"] = now.into();
    c["exp"] = (now + 300).into();
    c
}

fn extra(config: &str) -> String {
    format!(
        "{config}\n[[protected_resource]]\nid = \"extra\"\nresource_server = \"api\"\npaths = [\"/extra\"]\nscopes = [\"write\"]\n"
    )
}

/// Kills the process on drop (a no-op once it has exited).
#[cfg(unix)]
struct Reaper(Option<u32>);

#[cfg(unix)]
impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

#[cfg(unix)]
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_and_sigterm_drains_and_exits_zero() {
    // A config outside the watched directory is still the one SIGHUP re-reads; keep the
    // watcher out of this test by writing the new version to the same path only before HUP.
    let base = format!("[server]\nlisten = \"127.0.0.1:0\"\n{}", default_config());
    let files = Harness::builder().config(&base).prepare().await;
    let (path, key) = (&files.config, &files.key);
    let base = files.render(&base);
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(path)
        .args(["--log-format", "json", "--workers", "1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("no stderr");
    // If an assertion fails, do not leave the gateway running.
    let mut reaper = Reaper(Some(child.id()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let addr = loop {
        let v = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the gateway did not start")
            .expect("the gateway exited");
        if v["message"] == "portcullis listening" {
            break v["addr"].as_str().unwrap_or_else(|| panic!("no addr: {v}")).to_owned();
        }
    };
    // By the time it says it listens, SIGHUP, SIGINT and SIGTERM are caught: a signal sent
    // at once must not meet the default action, which ends the process.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let caught = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0);
    // Bit n-1 for signal n: SIGHUP 1, SIGINT 2, SIGTERM 15.
    let wanted = 1 | 1 << 1 | 1 << 14;
    assert_eq!(caught & wanted, wanted, "signals not caught yet: SigCgt {caught:x}");
    let client = client();
    let write = key.sign(&live_claims("write"));
    let auth = format!("Bearer {write}");
    let url = format!("http://{addr}/extra");
    // `/extra` is matched by the catch-all resource before the reload (200 for any valid token)
    // and by `extra` after: the request still passes, so check the access line's resource.
    let a = send(&client, Method::GET, &url, &[("authorization", &auth)], "").await;
    assert_eq!(a.status, StatusCode::OK);
    std::fs::write(path, extra(&base)).unwrap();
    signal(child.id(), "-HUP");
    let read = key.sign(&live_claims("read"));
    let read_auth = format!("Bearer {read}");
    eventually("the SIGHUP reload", async || {
        send(&client, Method::GET, &url, &[("authorization", &read_auth)], "")
            .await
            .status
            == StatusCode::FORBIDDEN
    })
    .await;
    // The watcher sees the same write, so also check that the signal itself was handled.
    let mut hup_seen = false;
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        if v["message"] == "SIGHUP: reloading the configuration" {
            hup_seen = true;
            break;
        }
    }
    assert!(hup_seen, "no SIGHUP reload was logged");
    // A broken edit plus SIGHUP changes nothing.
    std::fs::write(path, "not toml [[[").unwrap();
    signal(child.id(), "-HUP");
    let a = send(&client, Method::GET, &url, &[("authorization", &read_auth)], "").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    signal(child.id(), "-TERM");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    // Reaped: its pid may be reused now, so the guard must not signal it.
    reaper.0 = None;
    assert!(status.success(), "exit status {status:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_swap_of_the_config_is_seen_by_the_watcher() {
    use std::os::unix::fs::symlink;
    let h = Harness::start().await;
    let dir = h.dir.path();
    // Lay the ConfigMap structure out: portcullis.toml -> ..data/portcullis.toml, ..data -> v1.
    std::fs::create_dir(dir.join("v1")).unwrap();
    std::fs::write(dir.join("v1/portcullis.toml"), h.render(&default_config())).unwrap();
    symlink("v1", dir.join("..data")).unwrap();
    symlink("..data/portcullis.toml", dir.join("tmp-link")).unwrap();
    std::fs::rename(dir.join("tmp-link"), dir.join("portcullis.toml")).unwrap();
    // The update: a new version directory and an atomic swap of ..data.
    std::fs::create_dir(dir.join("v2")).unwrap();
    std::fs::write(dir.join("v2/portcullis.toml"), h.render(&extra(&default_config()))).unwrap();
    symlink("v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    eventually("the watcher reload after the symlink swap", async || {
        h.has_resource("extra")
    })
    .await;
    let read = h.key.sign(&claims("read"));
    assert_eq!(h.get("/extra", &read).await.status, StatusCode::FORBIDDEN);
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .output()
            .unwrap()
    };
    for bad in [
        &["serve", "--workers", "0"][..],
        &["serve", "--no-such-flag"],
        &["frobnicate"],
    ] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(64), "{bad:?}");
        assert!(!out.stderr.is_empty(), "{bad:?}: no message");
    }
    let help = run(&["serve", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--workers"));
}

#[cfg(unix)]
#[tokio::test]
async fn log_lines_are_plain_text_off_a_terminal_and_refusals_say_what_was_missing() {
    let base = format!("[server]\nlisten = \"127.0.0.1:0\"\n{}", default_config());
    let files = Harness::builder().config(&base).prepare().await;
    // stderr is a pipe, not a terminal: no colour, whatever the format.
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&files.config)
        .args(["--workers", "1"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("no stderr");
    let mut reaper = Reaper(Some(child.id()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the gateway did not start")
            .expect("the gateway exited");
        seen.push(line.clone());
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let token = files.key.sign(&live_claims("read"));
    let a = send(
        &client(),
        Method::POST,
        &format!("http://{addr}/items"),
        &[("authorization", &format!("Bearer {token}"))],
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let refusal = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no access line")
            .expect("the gateway exited");
        seen.push(line.clone());
        if line.contains("insufficient_scope") {
            break line;
        }
    };
    signal(child.id(), "-TERM");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    reaper.0 = None;
    assert!(
        seen.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes off a terminal: {seen:?}"
    );
    for wanted in [
        "kid=\\\"k1\\\"",
        "scope=\\\"read\\\"",
        "needs all of [write], missing [write]",
    ] {
        assert!(refusal.contains(wanted), "{wanted} not in {refusal}");
    }
    assert!(!refusal.contains(&token), "the token is never logged");
}
