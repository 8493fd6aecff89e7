//! The Management API end to end: tokens from the realm's own issuer, writes through the
//! API enforced by the gateway at once, conditional writes, validation by the compiler,
//! file entities read-only, generated secrets.

use std::sync::OnceLock;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const ADMIN_SECRET: &str = "admin-secret-0123456789";
const READER_SECRET: &str = "reader-secret-0123456789";
const API: &str = "/api/v1/t";
const AUDIENCE: &str = "http://gw.test/api/v1/t";

fn hashes() -> &'static (String, String) {
    static H: OnceLock<(String, String)> = OnceLock::new();
    H.get_or_init(|| {
        let h = |s: &str| portcullis::issuer::hash_secret(s).unwrap();
        (h(ADMIN_SECRET), h(READER_SECRET))
    })
}

/// Every Management API scope but `update:clients`' power to mint Management clients.
const ALL: &str = "read:resource_servers create:resource_servers update:resource_servers delete:resource_servers \
read:protected_resources create:protected_resources update:protected_resources delete:protected_resources \
read:clients create:clients update:clients delete:clients revoke:tokens read:changes read:activity";

fn config() -> String {
    let (admin, reader) = hashes();
    format!(
        r#"
[server]
public_url = "http://gw.test/"

[[realm]]
name = "t"
issuer = "http://127.0.0.1/realms/t"
algorithms = ["ES256"]
signing_keys = "{{dir}}/signing.json"

[[realm]]
name = "u"
issuer = "http://127.0.0.1/realms/u"
algorithms = ["ES256"]
signing_keys = "{{dir}}/signing.json"

[[resource_server]]
id = "files-api"
realm = "t"
audience = "https://files.test"
upstream = "http://{{upstream}}"
scopes = ["files:read"]

[[client]]
client_id = "admin"
realm = "t"
token_endpoint_auth_method = "client_secret_post"
client_secret_hash = "{admin}"
scopes = [{all}]

[[client]]
client_id = "reader"
realm = "t"
token_endpoint_auth_method = "client_secret_post"
client_secret_hash = "{reader}"
scopes = ["read:resource_servers", "read:clients", "create:clients"]
"#,
        all = ALL
            .split(' ')
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

async fn start() -> Harness {
    let key = TestKey::es256("k1");
    Harness::builder()
        .config(config())
        .file("signing.json", private_jwks(&[&key]))
        .key(key)
        .start()
        .await
}

/// A token from realm `realm`'s issuer for `resource`, by client_secret_post.
async fn token_for(h: &Harness, realm: &str, id: &str, secret: &str, resource: &str, scope: &str) -> String {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("resource", resource),
    ];
    if !scope.is_empty() {
        pairs.push(("scope", scope));
    }
    let a = h
        .send(
            Method::POST,
            &format!("/realms/{realm}/token"),
            &[("content-type", "application/x-www-form-urlencoded")],
            &form(&pairs),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.json()["access_token"].as_str().unwrap().to_owned()
}

async fn admin(h: &Harness) -> String {
    token_for(h, "t", "admin", ADMIN_SECRET, AUDIENCE, ALL).await
}

/// A Management API call with `token`, a JSON body and extra headers.
async fn call(
    h: &Harness,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> Answer {
    let auth = bearer(token);
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    headers.extend_from_slice(extra);
    let text = body.map(Value::to_string).unwrap_or_default();
    h.send(method, &format!("{API}{path}"), &headers, &text).await
}

fn etag(a: &Answer) -> String {
    a.header("etag").expect("an ETag").to_owned()
}

#[track_caller]
fn assert_problem(a: &Answer, status: StatusCode, field: Option<&str>) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.header("content-type"), Some("application/problem+json"), "{}", a.body);
    let p = a.json();
    assert_eq!(p["status"], status.as_u16(), "{p}");
    if let Some(field) = field {
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "no error on {field}: {p}");
    }
}

#[tokio::test]
async fn calls_need_a_token_for_this_realms_api_with_the_scope() {
    let h = start().await;
    let none = h.send(Method::GET, &format!("{API}/resource-servers"), &[], "").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"t\", resource_metadata=\"http://gw.test/.well-known/oauth-protected-resource/api/v1/t\"")
    );
    let reader = token_for(&h, "t", "reader", READER_SECRET, AUDIENCE, "read:resource_servers").await;
    assert_eq!(
        call(&h, Method::GET, "/resource-servers", &reader, None, &[])
            .await
            .status,
        StatusCode::OK
    );
    let write = call(
        &h,
        Method::POST,
        "/resource-servers",
        &reader,
        Some(&json!({"id": "x"})),
        &[],
    )
    .await;
    assert_insufficient_scope(&write, "create:resource_servers");
    // A token for realm t's API is not one for realm u's.
    let other = h
        .send(
            Method::GET,
            "/api/v1/u/resource-servers",
            &[("authorization", &bearer(&admin(&h).await))],
            "",
        )
        .await;
    assert_invalid_token(&other, "for another realm's API");
    // A token for another audience of the realm is not one for its API.
    let files = token_for(&h, "t", "admin", ADMIN_SECRET, "https://files.test", "").await;
    assert_invalid_token(
        &call(&h, Method::GET, "/resource-servers", &files, None, &[]).await,
        "another audience",
    );
}

#[tokio::test]
async fn an_api_created_through_the_api_is_enforced_at_once_and_conditional_writes_hold() {
    let h = start().await;
    let t = admin(&h).await;
    let rs = json!({
        "id": "orders", "audience": "https://orders.test", "upstream": format!("http://{}", h.upstream.addr),
        "scopes": ["orders:read", "orders:write"], "scope_descriptions": {"orders:read": "read orders"},
    });
    let a = call(&h, Method::POST, "/resource-servers", &t, Some(&rs), &[]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.header("location"), Some("/api/v1/t/resource-servers/orders"));
    let created = a.json();
    assert_eq!(
        (created["source"].as_str(), created["realm"].as_str()),
        (Some("store"), Some("t"))
    );
    assert!(
        created["client_secret"].as_str().is_some_and(|s| s.len() >= 40),
        "its own secret, once: {created}"
    );
    assert!(created.get("client_secret_hash").is_none());
    let got = call(&h, Method::GET, "/resource-servers/orders", &t, None, &[]).await;
    assert_eq!(etag(&got), etag(&a));
    assert!(got.json().get("client_secret").is_none(), "never shown again");
    let scopes = call(&h, Method::GET, "/resource-servers/orders/scopes", &t, None, &[])
        .await
        .json();
    assert_eq!(
        scopes["items"][0],
        json!({"name": "orders:read", "description": "read orders"})
    );

    let pr = json!({"id": "order", "resource_server": "orders", "paths": ["/orders/*"], "scopes": ["orders:read"]});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&pr), &[]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let v1 = etag(&a);
    let user = token_for(&h, "t", "admin", ADMIN_SECRET, "https://orders.test", "").await;
    assert_insufficient_scope(&h.get("/orders/7", &user).await, "orders:read");

    // Writes need If-Match with the current ETag.
    let patch = json!({"scopes": null});
    assert_problem(
        &call(&h, Method::PATCH, "/protected-resources/order", &t, Some(&patch), &[]).await,
        StatusCode::PRECONDITION_REQUIRED,
        None,
    );
    let a = call(
        &h,
        Method::PATCH,
        "/protected-resources/order",
        &t,
        Some(&patch),
        &[("if-match", &v1)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v2 = etag(&a);
    assert_ne!(v1, v2);
    assert_eq!(
        h.get("/orders/7", &user).await.status,
        StatusCode::OK,
        "no scope needed any more"
    );
    let stale = call(
        &h,
        Method::PATCH,
        "/protected-resources/order",
        &t,
        Some(&json!({"scopes": ["orders:write"]})),
        &[("if-match", &v1)],
    )
    .await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED, None);

    // Two operators with the same ETag: exactly one wins.
    let (read, write) = (json!({"scopes": ["orders:read"]}), json!({"scopes": ["orders:write"]}));
    let if_match = [("if-match", v2.as_str())];
    let (x, y) = tokio::join!(
        call(
            &h,
            Method::PATCH,
            "/protected-resources/order",
            &t,
            Some(&read),
            &if_match
        ),
        call(
            &h,
            Method::PATCH,
            "/protected-resources/order",
            &t,
            Some(&write),
            &if_match
        ),
    );
    let mut statuses = [x.status.as_u16(), y.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{} / {}", x.body, y.body);

    let current = etag(&call(&h, Method::GET, "/protected-resources/order", &t, None, &[]).await);
    let a = call(
        &h,
        Method::DELETE,
        "/protected-resources/order",
        &t,
        None,
        &[("if-match", &current)],
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(
        h.get("/orders/7", &user).await.status,
        StatusCode::NOT_FOUND,
        "route gone at once"
    );

    let log = call(&h, Method::GET, "/changes", &t, None, &[]).await.json();
    let actions: Vec<(&str, &str)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap(), c["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("resource_server", "create"),
            ("protected_resource", "create"),
            ("protected_resource", "update"),
            ("protected_resource", "update"),
            ("protected_resource", "delete"),
        ]
    );
    assert!(log["items"].as_array().unwrap().iter().all(|c| c["actor"] == "admin"));
}

#[tokio::test]
async fn a_write_that_would_make_the_configuration_invalid_is_refused_and_nothing_is_written() {
    let h = start().await;
    let t = admin(&h).await;
    let pr = json!({"id": "bad", "resource_server": "files-api", "paths": ["/files/**"], "scopes": ["files:wrte"]});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&pr), &[]).await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("scopes"));
    assert!(a.body.contains("files:wrte"), "{}", a.body);
    assert_eq!(
        call(&h, Method::GET, "/protected-resources/bad", &t, None, &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // A field of the wrong type or an unknown one is named before anything is compiled.
    let a = call(
        &h,
        Method::POST,
        "/protected-resources",
        &t,
        Some(&json!({"id": "x", "paths": "/x"})),
        &[],
    )
    .await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("paths"));
    let a = call(
        &h,
        Method::POST,
        "/protected-resources",
        &t,
        Some(&json!({"id": "x", "pathz": ["/x"]})),
        &[],
    )
    .await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("pathz"));
    // Only files may name files on the gateway's host.
    let c = json!({"client_id": "k", "token_endpoint_auth_method": "private_key_jwt", "jwks_file": "/etc/passwd"});
    assert_problem(
        &call(&h, Method::POST, "/clients", &t, Some(&c), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("jwks_file"),
    );
    // Two resources matching the same requests: the conflict names the other one.
    let one = json!({"id": "one", "resource_server": "files-api", "paths": ["/f/*"]});
    assert_eq!(
        call(&h, Method::POST, "/protected-resources", &t, Some(&one), &[])
            .await
            .status,
        StatusCode::CREATED
    );
    let two = json!({"id": "two", "resource_server": "files-api", "paths": ["/f/{name}"]});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&two), &[]).await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("paths"));
    assert!(a.body.contains("\\\"one\\\""), "{}", a.body);
}

#[tokio::test]
async fn file_entities_are_shown_read_only() {
    let h = start().await;
    let t = admin(&h).await;
    let a = call(&h, Method::GET, "/resource-servers/files-api", &t, None, &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["source"], "file");
    assert!(a.header("etag").is_none());
    let a = call(
        &h,
        Method::PATCH,
        "/resource-servers/files-api",
        &t,
        Some(&json!({"name": "x"})),
        &[("if-match", "*")],
    )
    .await;
    assert_problem(&a, StatusCode::CONFLICT, None);
    let list = call(&h, Method::GET, "/clients?limit=1", &t, None, &[]).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let cursor = list["next_cursor"].as_str().expect("a second page");
    let next = call(
        &h,
        Method::GET,
        &format!("/clients?limit=1&cursor={cursor}"),
        &t,
        None,
        &[],
    )
    .await
    .json();
    assert_ne!(next["items"][0]["client_id"], list["items"][0]["client_id"]);
    assert!(next["items"][0].get("client_secret_hash").is_none());
}

#[tokio::test]
async fn clients_get_generated_credentials_shown_once_and_can_have_them_replaced() {
    let h = start().await;
    let t = admin(&h).await;
    let a = call(
        &h,
        Method::POST,
        "/clients",
        &t,
        Some(&json!({"scopes": ["files:read"], "token_endpoint_auth_method": "client_secret_post"})),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let c = a.json();
    let (id, secret) = (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    );
    token_for(&h, "t", &id, &secret, "https://files.test", "files:read").await;
    let a = call(
        &h,
        Method::POST,
        &format!("/clients/{id}/secret"),
        &t,
        None,
        &[("if-match", &etag(&a))],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let fresh = a.json()["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(fresh, secret);
    token_for(&h, "t", &id, &fresh, "https://files.test", "files:read").await;
    let old = h
        .send(
            Method::POST,
            "/realms/t/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ]),
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "the old secret stopped working");
    // A caller never grants a client more of the Management API than it holds itself.
    let reader = token_for(&h, "t", "reader", READER_SECRET, AUDIENCE, "create:clients").await;
    let a = call(
        &h,
        Method::POST,
        "/clients",
        &reader,
        Some(&json!({"scopes": ["update:clients"]})),
        &[],
    )
    .await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("scopes"));
}

#[tokio::test]
async fn a_token_revoked_through_the_api_is_refused() {
    let h = start().await;
    let t = admin(&h).await;
    let user = token_for(&h, "t", "admin", ADMIN_SECRET, "https://files.test", "").await;
    let pr = json!({"id": "files", "resource_server": "files-api", "paths": ["/files/**"]});
    assert_eq!(
        call(&h, Method::POST, "/protected-resources", &t, Some(&pr), &[])
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(h.get("/files/a", &user).await.status, StatusCode::OK);
    let a = call(&h, Method::POST, "/revocations", &t, Some(&json!({"token": user})), &[]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_invalid_token(&h.get("/files/a", &user).await, "revoked");
    let doc = call(&h, Method::GET, "/openapi.json", &t, None, &[]).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], AUDIENCE);
}

/// The static admin token of realm t (its argon2id hash is in the configuration).
const STATIC_TOKEN: &str = "static-admin-token-0123456789abcdef";

#[tokio::test]
async fn the_static_admin_token_is_a_management_caller_of_its_own_realm_only() {
    let hash = portcullis::issuer::hash_secret(STATIC_TOKEN).unwrap();
    let config = config().replacen(
        "signing_keys = \"{dir}/signing.json\"\n",
        &format!("signing_keys = \"{{dir}}/signing.json\"\nmanagement_token_hash = \"{hash}\"\n"),
        1,
    ) + r#"
[[protected_resource]]
id = "files"
resource_server = "files-api"
paths = ["/files/**"]
"#;
    let key = TestKey::es256("k1");
    let h = Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&key]))
        .key(key)
        .start()
        .await;

    let list = call(&h, Method::GET, "/resource-servers", STATIC_TOKEN, None, &[]).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let created = call(
        &h,
        Method::POST,
        "/resource-servers",
        STATIC_TOKEN,
        Some(&json!({"id": "auto-api", "audience": "https://auto.test", "upstream": h.upstream.url("")})),
        &[],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let log = call(&h, Method::GET, "/changes", STATIC_TOKEN, None, &[]).await.json();
    let actors: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["static-token"], "{log}");

    // Anything else that is not a JWT is still a malformed token.
    assert_invalid_token(
        &call(
            &h,
            Method::GET,
            "/resource-servers",
            "static-admin-token-wrong",
            None,
            &[],
        )
        .await,
        "a wrong static token",
    );
    // Realm u has no static token; and t's opens nothing but t's Management API.
    let other = h
        .send(
            Method::GET,
            "/api/v1/u/resource-servers",
            &[("authorization", &bearer(STATIC_TOKEN))],
            "",
        )
        .await;
    assert_invalid_token(&other, "another realm's API");
    assert_invalid_token(&h.get("/files/1", STATIC_TOKEN).await, "a protected resource");
    assert_eq!(h.upstream.hits(), 0, "nothing reached the upstream");
}

/// `portcullis check` on the gateway's files, with `extra` arguments.
fn check(config: &std::path::Path, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn check_compiles_the_files_with_the_managed_entities_of_their_store() {
    let h = start().await;
    let t = admin(&h).await;
    let rs = json!({"id": "auto-api", "audience": "https://auto.test", "upstream": h.upstream.url("")});
    let created = call(&h, Method::POST, "/resource-servers", &t, Some(&rs), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    let o = check(&h.config_path(), &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("1 managed entities (version 1)"), "{out}");
    assert!(out.contains("resource server auto-api"), "{out}");

    // A file that now declares what the store holds: the store's entity is the second one.
    let clash = std::fs::read_to_string(h.config_path()).unwrap()
        + "\n[[resource_server]]\nid = \"auto-api\"\nrealm = \"t\"\naudience = \"https://auto2.test\"\nupstream = \"http://127.0.0.1:9\"\n";
    let path = h.dir.path().join("clash.toml");
    std::fs::write(&path, clash).unwrap();
    let o = check(&path, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(err.contains("with the 1 managed entities of store"), "{err}");
    assert!(err.contains(r#"resource_server "auto-api""#), "{err}");
    let o = check(&path, &["--no-store"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("store not read (--no-store)"));

    // A store that does not exist yet is not created by a check.
    let fresh = std::fs::read_to_string(h.config_path())
        .unwrap()
        .replace("store.db", "never.db");
    let path = h.dir.path().join("fresh.toml");
    std::fs::write(&path, fresh).unwrap();
    let o = check(&path, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not created yet"));
    assert!(!h.dir.path().join("never.db").exists());
}

#[tokio::test]
async fn writes_to_entities_with_secrets_keep_their_hashes() {
    let h = start().await;
    let t = admin(&h).await;
    let rs = json!({"id": "stock", "audience": "https://stock.test", "upstream": h.upstream.url("")});
    let created = call(&h, Method::POST, "/resource-servers", &t, Some(&rs), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    // The resource server has credentials of its own: adding a scope keeps them.
    let added = call(
        &h,
        Method::POST,
        "/resource-servers/stock/scopes",
        &t,
        Some(&json!({"name": "stock:read", "description": "Read stock"})),
        &[("if-match", &etag(&created))],
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(added.json().get("client_secret_hash").is_none(), "{}", added.body);

    let client = call(
        &h,
        Method::POST,
        "/clients",
        &t,
        Some(&json!({"scopes": ["files:read"], "token_endpoint_auth_method": "client_secret_post"})),
        &[],
    )
    .await;
    assert_eq!(client.status, StatusCode::CREATED, "{}", client.body);
    let id = client.json()["client_id"].as_str().unwrap().to_owned();
    let secret = client.json()["client_secret"].as_str().unwrap().to_owned();
    let renamed = call(
        &h,
        Method::PATCH,
        &format!("/clients/{id}"),
        &t,
        Some(&json!({"name": "Renamed"})),
        &[("if-match", &etag(&client))],
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let read = call(&h, Method::GET, &format!("/clients/{id}"), &t, None, &[]).await;
    assert!(read.json().get("client_secret_hash").is_none(), "{}", read.body);
    // The secret shown at creation still works after the rename.
    token_for(&h, "t", &id, &secret, "https://files.test", "files:read").await;
}

#[tokio::test]
async fn match_answers_as_the_gateway_routes_and_activity_counts_by_outcome() {
    let h = start().await;
    let t = admin(&h).await;
    let pr =
        json!({"id": "files-all", "resource_server": "files-api", "paths": ["/files/**"], "scopes": ["files:read"]});
    let created = call(&h, Method::POST, "/protected-resources", &t, Some(&pr), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let m = |q: &'static str| {
        let h = &h;
        let t = t.clone();
        async move { call(h, Method::GET, &format!("/match?{q}"), &t, None, &[]).await }
    };
    let found = m("method=GET&path=/files/a/../b%2Fc").await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    let body = found.json();
    assert_eq!(body["matched"]["id"], "files-all", "{body}");
    assert_eq!(body["matched"]["scopes"], json!(["files:read"]));
    assert_eq!(body["matched"]["source"], "store");
    assert_eq!(m("path=/nothing/here").await.json()["matched"], Value::Null);
    let refused = m("path=relative").await.json();
    assert_eq!(refused["matched"], Value::Null);
    assert!(refused["detail"].as_str().unwrap().contains("400"), "{refused}");
    assert_problem(&m("method=GET").await, StatusCode::BAD_REQUEST, Some("path"));

    // Requests to the realm's resource servers, counted by outcome.
    let user = h
        .key
        .sign(&json!({"iss": "http://127.0.0.1/realms/t", "aud": "https://files.test", "exp": 4_000_000_000_i64}));
    assert_eq!(h.get("/files/1", &user).await.status, StatusCode::FORBIDDEN);
    let activity = call(&h, Method::GET, "/activity", &t, None, &[]).await.json();
    assert_eq!(activity["totals"]["files-api"]["insufficient_scope"], 1, "{activity}");
    assert_eq!(activity["interval_seconds"], 10);
}

#[tokio::test]
async fn an_open_resource_created_through_the_api_is_served_without_a_token() {
    let h = start().await;
    let t = admin(&h).await;
    // A token requirement beside `auth = "none"` would never be enforced: refused, naming it.
    let bad = json!({"id": "docs", "resource_server": "files-api", "paths": ["/docs/**"], "auth": "none", "scopes": ["files:read"]});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&bad), &[]).await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("scopes"));
    let typo = json!({"id": "docs", "resource_server": "files-api", "paths": ["/docs/**"], "auth": "nobody"});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&typo), &[]).await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("auth"));

    let docs = json!({"id": "docs", "resource_server": "files-api", "paths": ["/docs/**"], "auth": "none"});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&docs), &[]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.json()["auth"], "none");
    let a = h.send(Method::GET, "/docs/index.html", &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.last().await.uri, "/docs/index.html");
    let m = call(&h, Method::GET, "/match?path=/docs/a", &t, None, &[]).await;
    assert_eq!(m.json()["matched"]["auth"], "none", "{}", m.body);

    // Back to a token: the same path is challenged again at once.
    let a = call(&h, Method::GET, "/protected-resources/docs", &t, None, &[]).await;
    let tag = etag(&a);
    let patch = json!({"auth": null, "scopes": ["files:read"]});
    let a = call(
        &h,
        Method::PATCH,
        "/protected-resources/docs",
        &t,
        Some(&patch),
        &[("if-match", &tag)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = h.send(Method::GET, "/docs/index.html", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
}

#[tokio::test]
async fn report_only_is_set_and_unset_through_the_api() {
    let h = start().await;
    let t = admin(&h).await;
    let typo = json!({"id": "files", "resource_server": "files-api", "paths": ["/files/**"], "enforce": "no"});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&typo), &[]).await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("enforce"));
    let files = json!({"id": "files", "resource_server": "files-api", "paths": ["/files/**"], "scopes": ["files:read"], "enforce": false});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&files), &[]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.json()["enforce"], false);
    let tag = etag(&a);
    // Report-only: forwarded without a token.
    let a = h.send(Method::GET, "/files/1", &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let activity = call(&h, Method::GET, "/activity", &t, None, &[]).await.json();
    assert_eq!(
        activity["totals"]["files-api"]["would_refuse_missing_token"], 1,
        "{activity}"
    );
    let doc = call(&h, Method::GET, "/openapi.json", &t, None, &[]).await;
    assert!(doc.body.contains("\"enforce\""), "the OpenAPI document lists enforce");

    // Enforcing again: refused at once.
    let patch = json!({"enforce": null});
    let a = call(
        &h,
        Method::PATCH,
        "/protected-resources/files",
        &t,
        Some(&patch),
        &[("if-match", &tag)],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = h.send(Method::GET, "/files/1", &[], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
}

#[tokio::test]
async fn cors_set_through_the_api_is_compiled_applied_at_once_and_removed_by_a_patch() {
    let h = start().await;
    let t = admin(&h).await;
    let preflight = [
        ("origin", "https://app.test"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "authorization"),
    ];
    // `*` with credentials never compiles: refused, naming the field, nothing written.
    let bad = json!({
        "id": "web", "audience": "https://web.test", "upstream": format!("http://{}", h.upstream.addr),
        "scopes": ["web:read"], "cors": {"origins": ["*"], "credentials": true},
    });
    let a = call(&h, Method::POST, "/resource-servers", &t, Some(&bad), &[]).await;
    assert_problem(&a, StatusCode::UNPROCESSABLE_ENTITY, Some("cors.origins"));
    let typo = json!({
        "id": "web", "audience": "https://web.test", "upstream": format!("http://{}", h.upstream.addr),
        "scopes": ["web:read"], "cors": {"origins": ["https://app.test"], "allow_origin": true},
    });
    let a = call(&h, Method::POST, "/resource-servers", &t, Some(&typo), &[]).await;
    assert_eq!(a.status.as_u16() / 100, 4, "{}", a.body);

    let rs = json!({
        "id": "web", "audience": "https://web.test", "upstream": format!("http://{}", h.upstream.addr),
        "scopes": ["web:read"],
        "cors": {"origins": ["https://app.test"], "methods": ["GET", "PUT"], "max_age": "1m", "expose_headers": ["x-request-id"]},
    });
    let a = call(&h, Method::POST, "/resource-servers", &t, Some(&rs), &[]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let pr = json!({"id": "web-all", "resource_server": "web", "paths": ["/web/**"], "scopes": ["web:read"]});
    let a = call(&h, Method::POST, "/protected-resources", &t, Some(&pr), &[]).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);

    let got = call(&h, Method::GET, "/resource-servers/web", &t, None, &[]).await;
    assert_eq!(
        got.json()["cors"]["origins"],
        json!(["https://app.test"]),
        "{}",
        got.body
    );
    let a = h.send(Method::OPTIONS, "/web/x", &preflight, "").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), Some("https://app.test"));
    assert_eq!(a.header("access-control-max-age"), Some("60"));
    let a = h
        .send(Method::GET, "/web/x", &[("origin", "https://app.test")], "")
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.header("access-control-allow-origin"), Some("https://app.test"));
    assert_eq!(a.header("access-control-expose-headers"), Some("x-request-id"));

    // The OpenAPI document describes the field.
    let doc = call(&h, Method::GET, "/openapi.json", &t, None, &[]).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.body);
    let cors = &doc.json()["components"]["schemas"]["ResourceServer"]["properties"]["cors"];
    assert_eq!(cors["required"], json!(["origins"]), "{cors}");

    // CORS off again: the preflight is any OPTIONS request (a token is needed).
    let patch = json!({"cors": null});
    let a = call(
        &h,
        Method::PATCH,
        "/resource-servers/web",
        &t,
        Some(&patch),
        &[("if-match", &etag(&got))],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = h.send(Method::OPTIONS, "/web/x", &preflight, "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), None);
}
