//! The Admin Panel: its assets as served (policy headers, ETags), and the panel itself in a
//! real headless Chromium driven through chromedriver (WebDriver), signing in with a real
//! admin client, managing a realm, and the gateway enforcing what it did.
//!
//! The browser tests need `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`). Without them they are skipped, saying so, unless
//! `PORTCULLIS_TEST_BROWSER=1` (as `.ci/run` sets), when a missing browser is a failure.
//! With `PORTCULLIS_SCREENSHOTS=DIR` they save the main screens there (`docs/` holds the
//! ones the README shows).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const ADMIN_SECRET: &str = "panel-admin-secret-0123456789";
const AUDIENCE: &str = "http://gw.test/api/v1/t";
const STATIC_TOKEN: &str = "panel-static-token-0123456789abcdef";

fn config() -> String {
    let hash = portcullis::issuer::hash_secret(ADMIN_SECRET).unwrap();
    let static_hash = portcullis::issuer::hash_secret(STATIC_TOKEN).unwrap();
    let scopes: Vec<String> = portcullis::config::management::scopes()
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    format!(
        r#"
[server]
public_url = "http://gw.test/"

[[realm]]
name = "t"
issuer = "http://127.0.0.1/realms/t"
algorithms = ["ES256"]
signing_keys = "{{dir}}/signing.json"
management_token_hash = "{static_hash}"

[[resource_server]]
id = "files-api"
realm = "t"
audience = "https://files.test"
upstream = "http://{{upstream}}"
scopes = ["files:read"]

[[client]]
client_id = "admin"
realm = "t"
token_endpoint_auth_method = "client_secret_basic"
client_secret_hash = "{hash}"
scopes = [{scopes}]
resource_servers = ["management:t"]
"#,
        scopes = scopes.join(", ")
    )
}

async fn start(config: String) -> Harness {
    let key = TestKey::es256("k1");
    Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&key]))
        .key(key)
        .start()
        .await
}

#[tokio::test]
async fn assets_are_served_with_a_strict_policy_and_revalidated_by_etag() {
    let h = start(config()).await;
    let page = h.send(Method::GET, "/admin", &[], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").unwrap();
    for rule in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!page.body.contains("<script>"), "no inline script: {}", page.body);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    let js = h.send(Method::GET, "/admin/app.js", &[], "").await;
    assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
    let tag = js.header("etag").unwrap().to_owned();
    let again = h
        .send(Method::GET, "/admin/app.js", &[("if-none-match", &tag)], "")
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(tag.as_str()));

    let described = h.send(Method::GET, "/admin/config.json", &[], "").await;
    assert!(described.body.ends_with("}\n"), "the gateway's JSON ends its line");
    let realms = described.json();
    assert_eq!(
        realms["realms"][0],
        json!({"name": "t", "api": "/api/v1/t", "audience": AUDIENCE, "token_endpoint": "/realms/t/token",
               "static_token": true, "algorithms": ["ES256"]})
    );
    let post = h.send(Method::POST, "/admin", &[], "").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    // Turned off, `/admin` is routed like any path (nothing matches here: 404).
    let off = start(config().replace("[server]\n", "[server]\nadmin_panel = false\n")).await;
    let gone = off.send(Method::GET, "/admin", &[], "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.header("content-security-policy").is_none());
}

/// A headless Chromium under chromedriver, closed (and the driver killed) on drop.
struct Browser {
    client: Option<Client>,
    driver: Child,
    shots: Option<PathBuf>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The browser, or `None` (saying why) when chromedriver is not installed and
/// `PORTCULLIS_TEST_BROWSER` does not ask for it.
async fn browser() -> Option<Browser> {
    let required = std::env::var("PORTCULLIS_TEST_BROWSER").is_ok_and(|v| v == "1");
    let port = free_port();
    let driver = match Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if !required => {
            eprintln!("chromedriver not found ({e}): browser tests skipped (apt-get install chromium chromium-driver)");
            return None;
        }
        Err(e) => panic!("PORTCULLIS_TEST_BROWSER=1 but chromedriver cannot run: {e}"),
    };
    let mut b = Browser {
        client: None,
        driver,
        shots: std::env::var_os("PORTCULLIS_SCREENSHOTS").map(PathBuf::from),
    };
    // The driver is ready when it accepts connections.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"],
    });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("no browser session through chromedriver: {e}"));
    b.client = Some(client);
    Some(b)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl Browser {
    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// The element `css`, waited for.
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c()
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no {css}: {e}\n{}", self.notices().await),
        }
    }

    /// The button labelled `label`, waited for.
    async fn button(&self, label: &str) -> fantoccini::elements::Element {
        let xpath = format!("//button[normalize-space()='{label}']");
        match self
            .c()
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::XPath(&xpath))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no button {label:?}: {e}\n{}", self.notices().await),
        }
    }

    async fn click(&self, label: &str) {
        self.button(label).await.click().await.unwrap();
    }

    async fn fill(&self, name: &str, text: &str) {
        let e = self.find(&format!("[name='{name}']")).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn tick(&self, name: &str, value: &str) {
        self.find(&format!("input[name='{name}'][value='{value}']"))
            .await
            .click()
            .await
            .unwrap();
    }

    async fn submit(&self) {
        self.find("main form button[type=submit]").await.click().await.unwrap();
    }

    /// Waits until the notices say `text`.
    async fn told(&self, text: &str) {
        let xpath = format!("//div[@id='notices'][contains(., \"{text}\")]");
        if let Err(e) = self
            .c()
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::XPath(&xpath))
            .await
        {
            panic!("never told {text:?} ({e}); notices: {}", self.notices().await);
        }
    }

    async fn notices(&self) -> String {
        match self.c().find(Locator::Id("notices")).await {
            Ok(n) => n.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Saves the screen as `name.png` when screenshots were asked for.
    async fn shot(&self, name: &str) {
        let Some(dir) = &self.shots else { return };
        let png = self.c().screenshot().await.unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("panel-{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, h: &Harness, id: &str, secret: &str) {
        self.c().goto(&h.url("/admin")).await.unwrap();
        self.fill("client_id", id).await;
        self.fill("secret", secret).await;
        self.submit().await;
    }
}

/// A token for `resource` from realm t's token endpoint, by client_secret_basic.
async fn token(h: &Harness, id: &str, secret: &str, resource: &str, scope: &str) -> String {
    let basic = basic(id, secret);
    let a = h
        .send(
            Method::POST,
            "/realms/t/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &basic),
            ],
            &form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.json()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_operator_manages_a_realm_in_the_browser_and_the_gateway_enforces_it() {
    let Some(b) = browser().await else { return };
    let h = start(config()).await;

    // A wrong secret: an error, and nothing of the realm shown.
    b.sign_in(&h, "admin", "not-the-secret").await;
    b.told("client").await;
    assert!(
        b.c().find(Locator::Css("table")).await.is_err(),
        "no data without a token"
    );
    b.shot("sign-in-refused").await;

    b.sign_in(&h, "admin", ADMIN_SECRET).await;
    b.find("table caption").await;
    assert!(b.c().source().await.unwrap().contains("files-api"));
    // The file's resource server is shown read-only.
    b.find("span.badge.file").await;

    // An API resource with two scopes.
    b.click("Create API resource").await;
    b.fill("id", "shop").await;
    b.fill("name", "Shop API").await;
    b.fill("audience", "https://shop.test").await;
    b.fill("upstream", &h.upstream.url("")).await;
    b.submit().await;
    b.told("shop created").await;
    for (name, description) in [("shop:read", "Read the shop"), ("shop:write", "Change the shop")] {
        b.fill("scope", name).await;
        b.fill("description", description).await;
        b.click("Add scope").await;
        b.told(&format!("Scope {name} added")).await;
    }
    b.shot("api-resource").await;

    // A protected resource needing shop:read.
    b.click("Add protected resource").await;
    b.fill("id", "shop-items").await;
    b.fill("paths", "/items/**").await;
    b.tick("scopes", "shop:read").await;
    b.submit().await;
    b.told("shop-items saved").await;

    // A client for it: its id generated, its secret shown once and copied.
    b.click("Clients").await;
    b.click("Create client").await;
    b.tick("scopes", "shop:read").await;
    b.tick("scopes", "shop:write").await;
    b.tick("resource_servers", "shop").await;
    b.submit().await;
    b.told("Created").await;
    let secret = b.find("input[data-secret]").await.prop("value").await.unwrap().unwrap();
    let client_id = b.find("[data-client-id]").await.text().await.unwrap();
    b.click("Copy").await;
    b.find("span.copied").await;
    b.shot("client-created").await;

    // Outside the browser: the client's token reaches the protected resource.
    let t = token(&h, &client_id, &secret, "https://shop.test", "shop:read").await;
    assert_eq!(h.get("/items/1", &t).await.status, StatusCode::OK);

    // The match box answers as the gateway routes.
    b.click("Protected resources").await;
    b.fill("path", "/items/7").await;
    b.click("Find").await;
    let answer = b.find("[data-match='shop-items']").await.text().await.unwrap();
    assert!(answer.contains("needs all of [shop:read]"), "{answer}");
    b.shot("protected-resources").await;

    // The required scope changed in the panel: the same token is refused.
    let edit = "//tr[td[normalize-space()='shop-items']]//button[normalize-space()='Edit']";
    b.c()
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::XPath(edit))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.tick("scopes", "shop:read").await;
    b.tick("scopes", "shop:write").await;
    b.submit().await;
    b.told("shop-items saved").await;
    assert_insufficient_scope(&h.get("/items/1", &t).await, "shop:write");

    // Two operators: the panel's form is stale once another write lands; its save is a 412,
    // shown with the version the entity is at now.
    b.c()
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::XPath(edit))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.find("[name='host']").await;
    let admin = token(
        &h,
        "admin",
        ADMIN_SECRET,
        AUDIENCE,
        "read:protected_resources update:protected_resources",
    )
    .await;
    let current = h
        .send(
            Method::GET,
            "/api/v1/t/protected-resources/shop-items",
            &[("authorization", &bearer(&admin))],
            "",
        )
        .await;
    let other = h
        .send(
            Method::PATCH,
            "/api/v1/t/protected-resources/shop-items",
            &[
                ("authorization", &bearer(&admin)),
                ("content-type", "application/merge-patch+json"),
                ("if-match", current.header("etag").unwrap()),
            ],
            &json!({"max_age": "600s"}).to_string(),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    let version = other.json()["version"].clone();
    b.fill("host", "shop.test").await;
    b.submit().await;
    b.told("Someone else changed shop-items").await;
    b.told(&format!("now at version {version}")).await;
    b.shot("conflict").await;
    // The form now holds what the other operator wrote.
    let max_age = b.find("[name='max_age']").await.prop("value").await.unwrap();
    assert_eq!(max_age.as_deref(), Some("600s"));

    // Activity: the requests above, per resource server and reason; the audit log.
    b.click("Activity").await;
    b.find("svg.chart").await;
    let page = b.c().source().await.unwrap();
    assert!(page.contains("insufficient_scope"), "refusals are counted by reason");
    assert!(page.contains("Last management changes"));
    b.shot("activity").await;

    // A narrow window: nothing wider than the screen.
    b.c().set_window_size(400, 800).await.unwrap();
    b.click("API resources").await;
    b.find("table caption").await;
    let overflow: Value = b
        .c()
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(0), "the page scrolls sideways at 400 px");
    b.shot("narrow").await;

    // Signing out forgets the token: the realm's data is gone with it.
    b.c().set_window_size(1280, 800).await.unwrap();
    b.click("Sign out").await;
    b.find("form.signin").await;
    assert!(b.c().find(Locator::Css("table")).await.is_err());
    let stored: Value = b
        .c()
        .execute(
            "return [localStorage.length, sessionStorage.length, document.cookie];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(stored, json!([0, 0, ""]), "nothing kept by the browser");

    // The static admin token signs in too.
    b.c().goto(&h.url("/admin")).await.unwrap();
    b.find("select[name='how'] option[value='token']")
        .await
        .click()
        .await
        .unwrap();
    b.fill("secret", STATIC_TOKEN).await;
    b.submit().await;
    b.find("table caption").await;
    b.click("Activity").await;
    b.find("svg.chart").await;
    if let Some(c) = b.client.as_ref() {
        let _ = c.clone().close().await;
    }
}
