//! The admin listener: liveness and readiness (a realm without usable keys is not ready).

use http::{Method, StatusCode};

use crate::support::*;

fn with_admin(config: &str) -> String {
    format!("[server]\nadmin_listen = \"127.0.0.1:0\"\n{config}")
}

#[tokio::test]
async fn healthz_and_readyz_with_local_keys() {
    let h = Harness::builder().config(with_admin(&default_config())).start().await;
    let admin = h.gateway.admin_addr().expect("no admin listener");
    let a = send(&h.client, Method::GET, &format!("http://{admin}/healthz"), &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(&h.client, Method::GET, &format!("http://{admin}/readyz"), &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["ready"], true);
    // The admin endpoints are not on the public port.
    let token = h.key.sign(&claims("read"));
    let a = h.get("/readyz", &token).await;
    assert_ne!(a.body, "", "the public port answered");
    assert!(!a.body.contains("\"ready\""), "{}", a.body);
}

#[tokio::test]
async fn a_realm_without_usable_keys_is_not_ready() {
    // A remote-only realm whose key server fails from the start.
    let jwks = Upstream::serving("").await;
    jwks.set(StatusCode::INTERNAL_SERVER_ERROR, "oops").await;
    let config = default_config().replace(
        "jwks_file = \"{keys}\"",
        &format!(
            "jwks_uri = \"{}\"\ndanger_allow_http_jwks = true",
            jwks.url("/jwks.json")
        ),
    );
    let h = Harness::builder().config(with_admin(&config)).start().await;
    let admin = h.gateway.admin_addr().expect("no admin listener");
    let a = send(&h.client, Method::GET, &format!("http://{admin}/readyz"), &[], "").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert_eq!(a.json()["ready"], false);
    assert_eq!(a.json()["realms"][0]["usable"], false);
    // Recovery makes it ready.
    jwks.set(StatusCode::OK, public_jwks(&[&h.key])).await;
    let keys = h.gateway.verifier().snapshot().realms[RealmRef::at(0)].keys.clone();
    keys.refresh().await.unwrap();
    let a = send(&h.client, Method::GET, &format!("http://{admin}/readyz"), &[], "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}
