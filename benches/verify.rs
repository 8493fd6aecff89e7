#![allow(missing_docs)] // criterion_group!/criterion_main! generate undocumented items
#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly
//! Token verification benches: each algorithm cold (cache off: full signature check), the
//! signature check alone with a pre-parsed key and with jsonwebtoken's per-call parsing,
//! the verified-token cache hit, the whole decision (route + verify + authorize), JWE
//! decrypt + verify per key-management algorithm, and routing against 10, 1 000 and
//! 10 000 protected resources.
//!
//! `cargo bench --bench verify`

mod common;

use common::NOW;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use portcullis::Verifier;
use portcullis::model::{EntityRef, RealmRef, ResourceServerRef};
use portcullis::routing::{Route, Router, normalize};
use portcullis::time::ManualClock;

const ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

fn key(alg: &str) -> serde_json::Value {
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
    serde_json::Value::Object(map)
}

struct Fixture {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<_> = ALGS.iter().map(|a| key(a)).collect();
    std::fs::write(
        dir.path().join("keys.json"),
        serde_json::json!({ "keys": keys }).to_string(),
    )
    .unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        r#"
[[realm]]
name = "bench"
issuer = "https://issuer.bench"
algorithms = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
signing_keys = "keys.json"

[[resource_server]]
id = "api"
realm = "bench"
audience = "https://api.bench"
upstream = "http://127.0.0.1:9"
scopes = ["read"]

[[protected_resource]]
id = "read"
resource_server = "api"
paths = ["/items/**"]
scopes = ["read"]
"#,
    )
    .unwrap();
    Fixture { _dir: dir, config }
}

fn verifier(fx: &Fixture, cache: bool) -> Verifier {
    let clock = ManualClock::new(NOW);
    let mut snap = portcullis::app::load_snapshot(&fx.config, clock.clone(), None).unwrap();
    snap.settings.token_cache_capacity = if cache { 100_000 } else { 0 };
    Verifier::new(snap, clock)
}

fn token(v: &Verifier, alg: &str) -> String {
    common::token(&v.snapshot(), &format!("k-{alg}"))
}

fn bench_verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fx = fixture();
    let cold = verifier(&fx, false);
    let snap = cold.snapshot();
    let mut g = c.benchmark_group("verify_cold");
    for alg in ALGS {
        let t = token(&cold, alg);
        g.bench_with_input(BenchmarkId::from_parameter(alg), &t, |b, t| {
            b.to_async(&rt)
                .iter(|| async { black_box(cold.verify_for(&snap, ResourceServerRef::at(0), t).await.unwrap()) })
        });
    }
    g.finish();

    let warm = verifier(&fx, true);
    let snap = warm.snapshot();
    let t = token(&warm, "ES256");
    rt.block_on(async { warm.verify_for(&snap, ResourceServerRef::at(0), &t).await.unwrap() });
    c.bench_function("verify_cached/ES256", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(warm.verify_for(&snap, ResourceServerRef::at(0), &t).await.unwrap()) })
    });

    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    c.bench_function("check_cached/ES256", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                warm.check(&snap, &Method::GET, Some("api.bench"), "/items/42", &headers)
                    .await
                    .unwrap_or_else(|e| panic!("{e:?}")),
            )
        })
    });
}

/// The signature check alone, per algorithm: the key as parsed once at load (what the
/// gateway uses) against `jsonwebtoken::crypto::verify`, which rebuilds it every call.
fn bench_signature(c: &mut Criterion) {
    let fx = fixture();
    let v = verifier(&fx, false);
    let snap = v.snapshot();
    let keys = snap.realms[RealmRef::at(0)].keys.view();
    let mut g = c.benchmark_group("signature");
    for alg in ALGS {
        let t = token(&v, alg);
        let (input, sig_b64) = t.rsplit_once('.').unwrap_or_else(|| panic!("not a JWS"));
        let sig = portcullis::token::jws::b64(sig_b64).unwrap();
        let a = portcullis::jwks::parse_alg(alg).unwrap_or_else(|| panic!("{alg}"));
        let kid = format!("k-{alg}");
        let key = keys
            .candidates(Some(&kid), a)
            .next()
            .unwrap_or_else(|| panic!("no key {alg}"));
        assert!(key.verify(a, input.as_bytes(), &sig));
        g.bench_function(BenchmarkId::new("parsed", alg), |b| {
            b.iter(|| black_box(key.verify(a, input.as_bytes(), &sig)))
        });
        g.bench_function(BenchmarkId::new("jsonwebtoken", alg), |b| {
            b.iter(|| black_box(jsonwebtoken::crypto::verify(sig_b64, input.as_bytes(), &key.key, a)))
        });
    }
    g.finish();
}

fn bench_routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    for n in [10usize, 1_000, 10_000] {
        let mut router = Router::new();
        let patterns: Vec<String> = (0..n)
            .map(|i| match i % 4 {
                0 => format!("/svc{i}/items/**"),
                1 => format!("/svc{i}/items/{{id}}"),
                2 => format!("/svc{i}/orders/*/lines"),
                _ => format!("/svc{i}/health"),
            })
            .collect();
        for (i, p) in patterns.iter().enumerate() {
            router
                .insert(Route {
                    resource: i,
                    host: None,
                    methods: None,
                    pattern: p,
                })
                .unwrap();
        }
        let probe = format!("/svc{}/orders/77/lines", (n / 2) / 4 * 4 + 2);
        g.bench_with_input(BenchmarkId::from_parameter(n), &probe, |b, probe| {
            b.iter(|| {
                let path = normalize(probe).unwrap();
                black_box(router.find(None, &Method::GET, &path).map(|m| m.resource))
            })
        });
    }
    g.finish();
}

/// Key-management algorithms benched for JWE (content: A128CBC-HS256, inner: ES256).
const JWE_ALGS: [&str; 8] = [
    "RSA-OAEP",
    "RSA-OAEP-256",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A256KW",
    "A128KW",
    "A256KW",
    "dir",
];

fn enc_key(alg: &str, kid: &str) -> serde_json::Value {
    let mut jwk = match alg {
        "RSA-OAEP" | "RSA-OAEP-256" => Jwk::generate_rsa_key(2048),
        "A128KW" => Jwk::generate_oct_key(16),
        "A256KW" | "dir" => Jwk::generate_oct_key(32),
        _ => Jwk::generate_ec_key(EcCurve::P256),
    }
    .unwrap();
    jwk.set_key_id(kid);
    jwk.set_key_use("enc");
    let map: serde_json::Map<String, serde_json::Value> = jwk.into();
    serde_json::Value::Object(map)
}

fn bench_jwe(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sign.json"),
        serde_json::json!({ "keys": [key("ES256")] }).to_string(),
    )
    .unwrap();
    let mut config = String::from(
        "[[realm]]\nname = \"bench\"\nissuer = \"https://issuer.bench\"\nalgorithms = [\"ES256\"]\nsigning_keys = \"sign.json\"\n",
    );
    for (i, alg) in JWE_ALGS.iter().enumerate() {
        let file = format!("enc{i}.json");
        std::fs::write(
            dir.path().join(&file),
            serde_json::json!({ "keys": [enc_key(alg, &format!("e{i}"))] }).to_string(),
        )
        .unwrap();
        config.push_str(&format!(
            "\n[[resource_server]]\nid = \"rs{i}\"\nrealm = \"bench\"\naudience = \"https://rs{i}.bench\"\nupstream = \"http://127.0.0.1:9\"\nencryption = \"resource_server\"\nencryption_jwks_file = \"{file}\"\nkey_alg = \"{alg}\"\n"
        ));
    }
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, config).unwrap();
    let clock = ManualClock::new(NOW);
    let mut snap = portcullis::app::load_snapshot(&path, clock.clone(), None).unwrap();
    snap.settings.token_cache_capacity = 0;
    let v = Verifier::new(snap, clock);
    let snap = v.snapshot();
    let key = snap.realms[RealmRef::at(0)]
        .signing
        .first()
        .unwrap_or_else(|| panic!("no key"));
    let mut g = c.benchmark_group("jwe_decrypt_verify_cold");
    for (i, alg) in JWE_ALGS.iter().enumerate() {
        let i = ResourceServerRef::at(i);
        let rs = &snap.resource_servers[i];
        let jws = common::mint_for(key, rs.audience.as_str(), "");
        let jwe = rs
            .jwe
            .as_ref()
            .unwrap_or_else(|| panic!("no jwe"))
            .encrypt(&jws)
            .unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(alg), &jwe, |b, t| {
            b.to_async(&rt)
                .iter(|| async { black_box(v.verify_for(&snap, i, t).await.unwrap()) })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_verify, bench_signature, bench_jwe, bench_routing);
criterion_main!(benches);
