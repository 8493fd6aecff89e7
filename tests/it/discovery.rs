//! RFC 9728 discovery, end to end: each resource server's protected resource metadata, the
//! `resource_metadata` of every challenge, the embedded issuer's RFC 8414 metadata naming
//! its resources and an authorization endpoint that serves no flow; and the whole flow as
//! the official MCP TypeScript SDK runs it (client_credentials), against a real MCP server
//! behind the gateway.
//!
//! The SDK test needs node and `npm ci --prefix tests/mcp`; without them it is skipped,
//! saying so, unless `PORTCULLIS_TEST_MCP=1` (as `.ci/run` sets), when that is a failure.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const ORIGIN: &str = "http://gw.test";
const ISS: &str = "http://gw.test/realms/mcp";
const MCP: &str = "http://gw.test/mcp";
const SECRET: &str = "agent-Secret-5c1e77";
const METADATA: &str = "/.well-known/oauth-protected-resource";

fn agent_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| portcullis::issuer::hash_secret(SECRET).unwrap())
}

/// A gateway whose public origin is `http://gw.test`, with an embedded issuer, an MCP
/// endpoint at `upstream`, two resource servers whose audiences share the root path, and one
/// whose audience is no URL.
fn config(upstream: &str) -> String {
    format!(
        r#"
[server]
public_url = "{ORIGIN}/"

[[realm]]
name = "mcp"
issuer = "{ISS}"
algorithms = ["ES256"]
signing_keys = "{{dir}}/signing.json"

[[resource_server]]
id = "mcp"
name = "Tools"
realm = "mcp"
audience = "{MCP}"
upstream = "http://{upstream}"
scopes = ["tools:read", "tools:call"]
default_scopes = ["tools:read"]

[resource_server.claim_headers]
sub = "x-auth-sub"

[[protected_resource]]
id = "mcp"
resource_server = "mcp"
paths = ["/mcp", "/mcp/**"]
scopes = ["tools:call"]

[[resource_server]]
id = "api"
realm = "mcp"
audience = "https://api.test"
upstream = "http://{upstream}"
scopes = ["read"]

[[protected_resource]]
id = "api"
resource_server = "api"
paths = ["/api/**"]
scopes = ["read"]

[[resource_server]]
id = "other"
realm = "mcp"
audience = "https://other.test/"
upstream = "http://{upstream}"

[[resource_server]]
id = "urn"
realm = "mcp"
audience = "urn:example:legacy"
upstream = "http://{upstream}"

[[protected_resource]]
id = "legacy"
resource_server = "urn"
paths = ["/legacy/**"]

[[client]]
client_id = "agent"
realm = "mcp"
client_secret_hash = "{hash}"
scopes = ["tools:read", "tools:call", "read"]
"#,
        hash = agent_hash()
    )
}

async fn start(upstream: &str) -> Harness {
    let key = TestKey::es256("k1");
    Harness::builder()
        .config(config(upstream))
        .file("signing.json", private_jwks(&[&key]))
        .key(key)
        .start()
        .await
}

/// A token of the embedded issuer for `resource`.
async fn token(h: &Harness, resource: &str, scope: &str) -> String {
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("resource", resource),
        ("scope", scope),
    ]);
    let a = h
        .send(
            Method::POST,
            "/realms/mcp/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &basic("agent", SECRET)),
            ],
            &body,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.json()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn each_resource_server_is_described_at_its_audience_path_from_the_configured_origin() {
    let h = start("{upstream}").await;
    // The Host a client sends changes nothing in the document.
    let a = h
        .send(Method::GET, &format!("{METADATA}/mcp"), &[("host", "evil.test")], "")
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.json(),
        json!({
            "resource": MCP,
            "authorization_servers": [ISS],
            "scopes_supported": ["tools:read", "tools:call"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Tools",
        })
    );
    // Two audiences at the root path: the request's host picks which one is meant.
    let api = h.send(Method::GET, METADATA, &[("host", "API.test:443")], "").await;
    assert_eq!(api.json()["resource"], "https://api.test", "{}", api.body);
    let other = h.send(Method::GET, METADATA, &[("host", "other.test")], "").await;
    assert_eq!(other.json()["resource"], "https://other.test/", "{}", other.body);
    assert_eq!(other.json().get("scopes_supported"), None, "it has no scopes");
    let neither = h.send(Method::GET, METADATA, &[("host", "elsewhere.test")], "").await;
    assert_eq!(neither.status, StatusCode::NOT_FOUND, "{}", neither.body);
    // The built-in Management API is described too; the audience that is no URL is not.
    let m = h.send(Method::GET, &format!("{METADATA}/api/v1/mcp"), &[], "").await;
    assert_eq!(m.json()["resource"], "http://gw.test/api/v1/mcp", "{}", m.body);
    let a = h.send(Method::GET, &format!("{METADATA}/legacy"), &[], "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    // Read-only.
    let a = h.send(Method::POST, &format!("{METADATA}/mcp"), &[], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow"), Some("GET, HEAD"));
    assert_eq!(h.upstream.hits(), 0);
}

#[tokio::test]
async fn every_challenge_says_where_the_resource_metadata_is() {
    let h = start("{upstream}").await;
    let at = format!("resource_metadata=\"{ORIGIN}{METADATA}/mcp\"");
    // No token, whatever the Host.
    let a = h.send(Method::POST, "/mcp", &[("host", "evil.test")], "{}").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.challenge(), format!("Bearer realm=\"mcp\", {at}"));
    // A bad token.
    let a = h.post("/mcp", "junk", "{}").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.challenge().contains("error=\"invalid_token\""), "{}", a.challenge());
    assert!(a.challenge().ends_with(&at), "{}", a.challenge());
    // A token without the scope.
    let t = token(&h, MCP, "tools:read").await;
    let a = h.post("/mcp", &t, "{}").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.challenge().contains("scope=\"tools:call\""), "{}", a.challenge());
    assert!(a.challenge().ends_with(&at), "{}", a.challenge());
    // Another resource server's challenge names its own document; an audience that is no URL
    // has none to name.
    let a = h.send(Method::GET, "/api/x", &[], "").await;
    assert!(
        a.challenge()
            .ends_with(&format!("resource_metadata=\"{ORIGIN}{METADATA}\"")),
        "{}",
        a.challenge()
    );
    let a = h.send(Method::GET, "/legacy/x", &[], "").await;
    assert_eq!(a.challenge(), "Bearer realm=\"mcp\"");
}

#[tokio::test]
async fn the_issuer_metadata_lists_its_resources_and_an_authorization_endpoint_that_serves_no_flow() {
    let h = start("{upstream}").await;
    let m = h
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server/realms/mcp",
            &[],
            "",
        )
        .await
        .json();
    assert_eq!(m["issuer"], ISS);
    assert_eq!(m["authorization_endpoint"], format!("{ISS}/authorize"));
    assert_eq!(m["response_types_supported"], json!(["none"]));
    assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        m["protected_resources"],
        json!([
            MCP,
            "https://api.test",
            "https://other.test/",
            "urn:example:legacy",
            "http://gw.test/api/v1/mcp"
        ])
    );
    // RFC 6749 § 4.1.2.1, never redirected: no client registers a redirection URI, and
    // following the request's own would make an open redirector.
    let query = "?response_type=code&client_id=agent&redirect_uri=https%3A%2F%2Fevil.test%2Fcb&state=s";
    for (method, path) in [
        (Method::GET, format!("/realms/mcp/authorize{query}")),
        (Method::POST, "/realms/mcp/authorize".to_owned()),
    ] {
        let a = h.send(method.clone(), &path, &[], "").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{method}: {}", a.body);
        assert_eq!(a.header("location"), None);
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert_eq!(a.json()["error"], "unsupported_response_type", "{}", a.body);
    }
    let a = h.send(Method::PUT, "/realms/mcp/authorize", &[], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow"), Some("GET, POST"));
}

// ---------------------------------------------------------------------------------------
// The MCP TypeScript SDK.

/// `tests/mcp` with the SDK installed, or `None` when node or the SDK is missing and
/// `PORTCULLIS_TEST_MCP` does not ask for them.
fn sdk() -> Option<PathBuf> {
    node_package("mcp", "@modelcontextprotocol/sdk", "PORTCULLIS_TEST_MCP")
}

#[tokio::test]
async fn the_mcp_typescript_sdk_discovers_gets_a_client_credentials_token_and_calls_a_tool() {
    let Some(dir) = sdk() else { return };
    let (_server, port) = node_server(&dir, "server.mjs").await;
    let h = start(&format!("127.0.0.1:{port}")).await;
    let mut client = Command::new("node");
    client
        .arg("client.mjs")
        .args([
            &h.gateway.local_addr().to_string(),
            ORIGIN,
            "agent",
            SECRET,
            ISS,
            "tools:call",
        ])
        .current_dir(&dir)
        .stderr(Stdio::inherit());
    // The gateway serves on this test's runtime: the client runs beside it, not in its way.
    let run = tokio::task::spawn_blocking(move || client.output());
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the MCP client never finished")
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from the client:\n{text}"));
    assert!(out.status.success(), "the client failed: {report:#}");

    // The tool answered, and the upstream saw the verified client as the gateway said.
    assert_eq!(
        report["result"]["content"],
        json!([{ "type": "text", "text": "sub=agent" }]),
        "{report:#}"
    );
    // The discovery, step by step.
    let steps: Vec<(String, String, u64)> = report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_owned(),
                r["path"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let step = |method: &str, path: &str, status: u64| (method.to_owned(), path.to_owned(), status);
    assert_eq!(
        steps[..4],
        [
            step("POST", "/mcp", 401),
            step("GET", "/.well-known/oauth-protected-resource/mcp", 200),
            step("GET", "/.well-known/oauth-authorization-server/realms/mcp", 200),
            step("POST", "/realms/mcp/token", 200),
        ],
        "{report:#}"
    );
    assert_eq!(
        report["requests"][0]["challenge"],
        format!("Bearer realm=\"mcp\", resource_metadata=\"{ORIGIN}{METADATA}/mcp\"")
    );
    // After the token, every call goes through the gateway (a stateless server may still
    // refuse the SDK's optional event stream with 405 itself).
    assert!(
        steps[4..]
            .iter()
            .all(|(_, path, status)| path == "/mcp" && ![401, 403].contains(status)),
        "after the token, only allowed calls: {report:#}"
    );
    assert!(
        steps[4..].iter().any(|(m, _, s)| m == "POST" && *s == 200),
        "{report:#}"
    );
    // The token is for the resource the metadata names (the SDK sent it as `resource`), with
    // the scope the client asked for.
    let claims = jwt_part(report["token"].as_str().unwrap(), 1);
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["client_id"], "agent");
    assert_eq!(claims["scope"], "tools:call");
}
