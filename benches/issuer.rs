#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items
#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly
//! The embedded issuer's signing: one access token minted per algorithm (header, claims,
//! `jti`, signature, compact serialization), the key loaded once as the issuer loads it.
//!
//! The signature alone, aws-lc (ours) beside OpenSSL (through josekit), says what the
//! library costs: on the 2-vCPU AMD EPYC build machine (2026-12-01), aws-lc signs RS256 in
//! ~270 µs (OpenSSL ~390 µs), ES256 in ~28 µs (~44), EdDSA in ~16 µs (~50).
//!
//! `cargo bench --bench issuer`, `cargo bench --bench issuer -- signature`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use portcullis::issuer::{MintRequest, mint};
use portcullis::jwks::SigningKeys;

const ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

/// A generated key for `alg`: parsed as the issuer loads it, and its private JWK.
fn keys(alg: &str) -> (SigningKeys, Jwk) {
    let mut jwk = match alg {
        "ES256" => Jwk::generate_ec_key(EcCurve::P256),
        "ES384" => Jwk::generate_ec_key(EcCurve::P384),
        "EdDSA" => Jwk::generate_ed_key(EdCurve::Ed25519),
        _ => Jwk::generate_rsa_key(2048),
    }
    .unwrap();
    jwk.set_key_id(format!("k-{alg}"));
    jwk.set_algorithm(alg);
    let map: serde_json::Map<String, serde_json::Value> = jwk.clone().into();
    let doc = serde_json::json!({ "keys": [map] });
    (SigningKeys::parse(doc.to_string().as_bytes()).unwrap(), jwk)
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
        let (keys, _) = keys(alg);
        let key = keys.first().unwrap().clone();
        g.bench_with_input(BenchmarkId::from_parameter(alg), &key, |b, key| {
            b.iter(|| black_box(mint(&req, key).unwrap()));
        });
    }
    g.finish();
}

/// The signature alone, per algorithm: the issuer's signer (aws-lc, the key parsed once)
/// beside josekit's (OpenSSL, its signer also built once), to tell what the library costs.
fn bench_signature(c: &mut Criterion) {
    use josekit::jws::{ES256, ES384, EdDSA, JwsSigner, PS256, RS256};
    let mut g = c.benchmark_group("signature");
    let message = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQtMSJ9";
    for alg in ALGS {
        let (keys, jwk) = keys(alg);
        let key = keys.first().unwrap().clone();
        g.bench_function(BenchmarkId::new("aws-lc", alg), |b| {
            b.iter(|| black_box(key.signer.sign(message).unwrap()));
        });
        let openssl: Box<dyn JwsSigner> = match alg {
            "RS256" => Box::new(RS256.signer_from_jwk(&jwk).unwrap()),
            "PS256" => Box::new(PS256.signer_from_jwk(&jwk).unwrap()),
            "ES256" => Box::new(ES256.signer_from_jwk(&jwk).unwrap()),
            "ES384" => Box::new(ES384.signer_from_jwk(&jwk).unwrap()),
            _ => Box::new(EdDSA.signer_from_jwk(&jwk).unwrap()),
        };
        g.bench_function(BenchmarkId::new("openssl", alg), |b| {
            b.iter(|| black_box(openssl.sign(message).unwrap()));
        });
    }
    g.finish();
}

criterion_group!(benches, bench_mint, bench_signature);
criterion_main!(benches);
