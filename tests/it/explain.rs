//! `portcullis explain`, the binary: the resource that matches and why it beats the others,
//! what it requires, each check of a token, offline.

use serde_json::{Value, json};

use crate::support::*;

fn explain(config: &std::path::Path, args: &[&str]) -> (String, std::process::Output) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), out)
}

fn explain_json(config: &std::path::Path, args: &[&str]) -> Value {
    let (text, out) = explain(config, &[args, &["--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The result of check `name`.
fn check<'a>(x: &'a Value, name: &str) -> &'a Value {
    x["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {x}"))
}

/// Claims valid now (the binary judges by the system clock).
fn live(scope: &str) -> Value {
    let now = portcullis::time::SystemClock.now();
    let mut c = claims(scope);
    c["iat"] = json!(now);
    c["exp"] = json!(now + 300);
    c["auth_time"] = json!(now);
    c
}

use portcullis::time::Clock as _;

#[tokio::test]
async fn explains_the_match_the_requirements_and_every_check() {
    let files = Harness::builder().prepare().await;
    let wrong = files.key.sign(&live("write"));
    let x = explain_json(
        &files.config,
        &["GET", "https://api.test/items/x/../1", "--token", &wrong],
    );
    assert_eq!(x["path"], "/items/1", "{x}");
    assert_eq!(x["matched"]["resource"], "read", "{x}");
    assert_eq!(x["matched"]["pattern"], "/items/**", "{x}");
    assert_eq!(x["matched"]["scopes"], json!(["read"]), "{x}");
    assert_eq!(x["matched"]["audience"], AUDIENCE, "{x}");
    let losers = x["also_matching"].as_array().unwrap();
    assert_eq!(losers.len(), 1, "{x}");
    assert_eq!(losers[0]["resource"], "public-ish");
    assert!(losers[0]["why"].as_str().unwrap().contains("more specific"), "{x}");
    for pass in [
        "signature and key",
        "issuer",
        "lifetime (exp, nbf, iat)",
        "audience",
        "max_age",
    ] {
        assert_eq!(check(&x, pass)["result"], "pass", "{pass}: {x}");
    }
    assert_eq!(check(&x, "scopes")["result"], "fail", "{x}");
    assert_eq!(check(&x, "revocation")["result"], "unknown", "{x}");
    assert!(x["verdict"].as_str().unwrap().contains("403 insufficient_scope"), "{x}");

    // Every failing check is shown, not only the first.
    let mut c = live("read");
    c["exp"] = json!(portcullis::time::SystemClock.now() - 3600);
    c["aud"] = json!("https://elsewhere.test");
    let x = explain_json(
        &files.config,
        &["GET", "https://api.test/items/1", "--token", &files.key.sign(&c)],
    );
    assert_eq!(check(&x, "lifetime (exp, nbf, iat)")["result"], "fail", "{x}");
    assert_eq!(check(&x, "audience")["result"], "fail", "{x}");
    assert!(x["verdict"].as_str().unwrap().contains("expired"), "{x}");

    // A forged token fails at the signature, and nothing after it is reached.
    let forged = TestKey::es256("k1").sign(&live("read"));
    let x = explain_json(&files.config, &["GET", "https://api.test/items/1", "--token", &forged]);
    assert_eq!(check(&x, "signature and key")["result"], "fail", "{x}");
    assert_eq!(x["checks"].as_array().unwrap().len(), 1, "{x}");

    // The text form, for people.
    let (text, out) = explain(&files.config, &["GET", "https://api.test/items/1", "--token", &wrong]);
    assert!(out.status.success());
    assert!(text.contains("matched: read (pattern \"/items/**\")"), "{text}");
    assert!(text.contains("beats public-ish"), "{text}");
    assert!(text.contains("fail     scopes"), "{text}");
    assert!(text.contains("verdict: refused: insufficient_scope"), "{text}");
    assert!(!text.contains(&wrong), "the token is never printed");
}

#[tokio::test]
async fn explains_no_route_open_report_only_and_introspected_tokens() {
    let config = config_with("")
        + r#"
[[protected_resource]]
id = "health"
resource_server = "api"
paths = ["/items/health"]
auth = "none"
"#;
    let config = edit(&config, "scopes = [\"write\"]", "scopes = [\"write\"]\nenforce = false");
    let files = Harness::builder().config(config).prepare().await;
    let x = explain_json(&files.config, &["GET", "http://api.test/nowhere"]);
    assert!(x["verdict"].as_str().unwrap().starts_with("404"), "{x}");
    let x = explain_json(&files.config, &["GET", "/items/health"]);
    assert_eq!(x["matched"]["auth"], "none", "{x}");
    assert!(x["verdict"].as_str().unwrap().contains("open resource"), "{x}");
    let read = files.key.sign(&live("read"));
    let x = explain_json(&files.config, &["POST", "/items/1", "--token", &read]);
    assert_eq!(x["matched"]["enforce"], false, "{x}");
    assert!(
        x["verdict"]
            .as_str()
            .unwrap()
            .contains("would_refuse_insufficient_scope"),
        "{x}"
    );
    let (_, out) = explain(&files.config, &["NOT A METHOD", "/items/1"]);
    assert!(!out.status.success());

    // An introspecting realm: its opaque tokens are not knowable offline.
    let introspecting = edit(
        &config_with(""),
        "jwks_file = \"{keys}\"",
        "jwks_file = \"{keys}\"\nintrospection_endpoint = \"https://as.test/introspect\"\nintrospection_client_id = \"gw\"\nintrospection_client_secret_file = \"gw.secret\"",
    );
    let files = Harness::builder()
        .config(introspecting)
        .file("gw.secret", "s3cret")
        .prepare()
        .await;
    let x = explain_json(&files.config, &["GET", "/items/1", "--token", "opaque-abc"]);
    assert_eq!(check(&x, "introspection")["result"], "unknown", "{x}");
    assert_eq!(
        x["matched"]["tokens"],
        "jwt, or introspection for tokens that are not JWS/JWE"
    );
}
