#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items
#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly
//! The embedded issuer's signing: one access token minted per algorithm (header, claims,
//! `jti`, signature, compact serialization), the key loaded once as the issuer loads it.
//!
//! `cargo bench --bench issuer`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use portcullis::issuer::{MintRequest, mint};
use portcullis::jwks::SigningKeys;

const ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

fn keys(alg: &str) -> SigningKeys {
    let mut jwk = match alg {
        "ES256" => Jwk::generate_ec_key(EcCurve::P256),
        "ES384" => Jwk::generate_ec_key(EcCurve::P384),
        "EdDSA" => Jwk::generate_ed_key(EdCurve::Ed25519),
        _ => Jwk::generate_rsa_key(2048),
    }
    .unwrap();
    jwk.set_key_id(format!("k-{alg}"));
    jwk.set_algorithm(alg);
    let map: serde_json::Map<String, serde_json::Value> = jwk.into();
    let doc = serde_json::json!({ "keys": [map] });
    SigningKeys::parse(doc.to_string().as_bytes()).unwrap()
}

fn bench_mint(c: &mut Criterion) {
    let mut g = c.benchmark_group("mint");
    let req = MintRequest {
        issuer: "https://issuer.test/realms/demo",
        audience: "https://api.test",
        subject: "client-1",
        client_id: "client-1",
        scope: "orders:read orders:write",
        now: 1_800_000_000,
        ttl: Duration::from_secs(3600),
        auth_time: 1_800_000_000,
    };
    for alg in ALGS {
        let keys = keys(alg);
        let key = keys.first().unwrap().clone();
        g.bench_with_input(BenchmarkId::from_parameter(alg), &key, |b, key| {
            b.iter(|| black_box(mint(&req, key).unwrap()));
        });
    }
    g.finish();
}

criterion_group!(benches, bench_mint);
criterion_main!(benches);
