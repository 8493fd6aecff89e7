//! Embedding the verifier in a Rust resource server: the gateway's decision without the
//! proxy. Loads the default configuration, mints a token with the demo realm's key, and
//! asks the verifier about three requests.
//!
//! ```text
//! cargo run --example embed
//! ```

use http::{HeaderMap, HeaderValue, Method, header::AUTHORIZATION};
use portcullis::issuer::{MintRequest, mint};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clock = portcullis::time::system();
    // 1. Load once: snapshot, keys (remote ones fetched and refreshed in the background).
    let verifier = portcullis::app::verifier("config/portcullis.toml".as_ref(), clock.clone()).await?;

    // (A token to try with; in real life the client brings it.)
    let snap = verifier.snapshot();
    let (_, rs) = snap.resource_server("orders").ok_or("no resource server 'orders'")?;
    let key = snap.realms[rs.realm].signing.first().ok_or("no signing key")?;
    let token = mint(
        &MintRequest {
            issuer: &snap.realms[rs.realm].issuer,
            audience: rs.audience.as_str(),
            subject: "embed-example",
            client_id: "embed-example",
            scope: "orders:read",
            now: clock.now(),
            ttl: std::time::Duration::from_secs(300),
            auth_time: clock.now(),
        },
        key,
    )?;
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}"))?);

    // 2. Per request: one snapshot, one call, a typed verdict.
    for (method, path) in [
        (Method::GET, "/orders/42"),
        (Method::POST, "/orders"),
        (Method::GET, "/nowhere"),
    ] {
        let snap = verifier.snapshot();
        match verifier.check(&snap, &method, None, path, &headers).await {
            Ok(allowed) => println!(
                "{method} {path}: allowed for {:?} by {}",
                allowed.claims().and_then(|c| c.client_id()),
                allowed.resource(&snap).id
            ),
            Err(denied) => {
                let answer = portcullis::rescue::refusal(&denied, &snap);
                println!("{method} {path}: refused ({}) → {}", denied.reason(), answer.status());
            }
        }
    }
    Ok(())
}
