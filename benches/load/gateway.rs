//! The gateway suite: an echo upstream and, per row, a fresh gateway on a configuration the
//! harness writes, loaded through `portcullis loadtest`.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use portcullis::issuer::{MintRequest, mint};
use portcullis::jwks::SigningKey;
use portcullis::time::Clock;

use crate::loadgen;
use crate::peers::Peer;
use crate::procs::{self, GatewayRun};
use crate::table::{self, Measured};
use crate::{BoxError, Opts, jwk_json};

/// Distinct tokens the `cache-100k` row sends, each once: the verified-token cache's
/// default capacity, for the peak RSS with a full cache.
const CACHE_FILL: usize = 100_000;

/// The suite's rows, in order.
pub(crate) const ROWS: [&str; 13] = [
    "direct",
    "nginx-proxy",
    "haproxy-proxy",
    "haproxy-jwt-rs256",
    "haproxy-jwt-es256",
    "cache-on",
    "cache-off-rs256",
    "cache-off-es256",
    "unique-rs256",
    "unique-es256",
    "jwe-rsa-oaep",
    "bad-token-401",
    "cache-100k",
];

/// The rows of other servers ([`crate::peers`]), each run once.
const PEERS: [&str; 4] = ["nginx-proxy", "haproxy-proxy", "haproxy-jwt-rs256", "haproxy-jwt-es256"];

const REALM_ISSUER: &str = "https://issuer.load";
const API_AUD: &str = "https://api.load";
const ENC_AUD: &str = "https://enc.load";

/// The realm's keys (`keys.json`), their public halves as PEM for HAProxy's `jwt_verify`
/// (`rs256.pem`, `es256.pem`), and the JWE key (`enc.json`).
fn write_keys(dir: &Path) -> Result<(), BoxError> {
    let rs = Jwk::generate_rsa_key(2048)?;
    let es = Jwk::generate_ec_key(EcCurve::P256)?;
    fs::write(
        dir.join("rs256.pem"),
        josekit::jwk::alg::rsa::RsaKeyPair::from_jwk(&rs)?.to_pem_public_key(),
    )?;
    fs::write(
        dir.join("es256.pem"),
        josekit::jwk::alg::ec::EcKeyPair::from_jwk(&es)?.to_pem_public_key(),
    )?;
    let rs = jwk_json(rs, "k-rs256", Some("RS256"), None);
    let es = jwk_json(es, "k-es256", Some("ES256"), None);
    let enc = jwk_json(Jwk::generate_rsa_key(2048)?, "e-oaep", None, Some("enc"));
    fs::write(
        dir.join("keys.json"),
        serde_json::json!({ "keys": [rs, es] }).to_string(),
    )?;
    fs::write(dir.join("enc.json"), serde_json::json!({ "keys": [enc] }).to_string())?;
    Ok(())
}

/// The suite's configuration; the store lives apart from it (`store`): the gateway watches
/// the configuration's directory, and every store write would wake the watcher.
fn config_text(store: &Path, upstream: SocketAddr, cache: bool) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
token_cache = {cache}
admin_listen = "127.0.0.1:0"

[store]
url = "sqlite://{store}"

[[realm]]
name = "load"
issuer = "{REALM_ISSUER}"
algorithms = ["RS256", "ES256"]
signing_keys = "keys.json"

[[resource_server]]
id = "api"
realm = "load"
audience = "{API_AUD}"
upstream = "http://{upstream}"
scopes = ["read"]

[[resource_server]]
id = "enc"
realm = "load"
audience = "{ENC_AUD}"
upstream = "http://{upstream}"
scopes = ["read"]
encryption = "resource_server"
encryption_jwks_file = "enc.json"
key_alg = "RSA-OAEP"

[[protected_resource]]
id = "items"
resource_server = "api"
paths = ["/items/**"]
scopes = ["read"]

[[protected_resource]]
id = "enc-items"
resource_server = "enc"
paths = ["/enc/**"]
scopes = ["read"]
"#,
        store = store.display()
    )
}

fn mint_one(key: &SigningKey, audience: &str, now: i64) -> Result<String, BoxError> {
    Ok(mint(
        &MintRequest {
            issuer: REALM_ISSUER,
            audience,
            subject: "load",
            client_id: "load",
            scope: "read",
            now,
            ttl: std::time::Duration::from_secs(3600),
            auth_time: now,
        },
        key,
    )?)
}

/// What a row sends: the config, the path, the token arguments of `loadtest`, the
/// expected status.
struct RowLoad<'a> {
    config: &'a Path,
    path: &'static str,
    tokens: Vec<String>,
    expect: u16,
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs the suite's rows and prints its table.
pub(crate) fn run(o: &Opts) -> Result<(), BoxError> {
    let rows: Vec<&str> = ROWS.iter().copied().filter(|r| o.wanted(r)).collect();
    if rows.is_empty() {
        return Err(format!("--rows matches none of {}", ROWS.join(", ")).into());
    }
    let dir = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?; // apart from the config: the gateway watches that directory
    eprintln!("load: generating keys");
    write_keys(dir.path())?;
    let (upstream, up_addr) = procs::spawn_upstream(o.pin_upstream.as_deref())?;
    eprintln!("load: upstream {} on {up_addr}", upstream.pid());
    let config_on = dir.path().join("cache-on.toml");
    let config_off = dir.path().join("cache-off.toml");
    fs::write(&config_on, config_text(&logs.path().join("store.db"), up_addr, true))?;
    fs::write(&config_off, config_text(&logs.path().join("store.db"), up_addr, false))?;

    // The same configuration, loaded in process, for the fixed tokens.
    let snap =
        portcullis::app::load_snapshot(&config_on, portcullis::time::system(), None).map_err(|e| format!("{e}"))?;
    let keys = &snap.realms.iter().next().ok_or("no realm")?.signing;
    let key = |kid: &str| {
        keys.keys()
            .iter()
            .find(|k| k.kid == kid)
            .cloned()
            .ok_or_else(|| format!("no key {kid}"))
    };
    let (rs256, es256) = (key("k-rs256")?, key("k-es256")?);
    let (_, enc) = snap.resource_server("enc").ok_or("no resource server enc")?;
    let jwe_keys = enc.jwe.clone().ok_or("enc has no JWE keys")?;
    let now = portcullis::time::SystemClock.now();
    let es_token = mint_one(&es256, API_AUD, now)?;
    let rs_token = mint_one(&rs256, API_AUD, now)?;
    let jwe_token = jwe_keys.encrypt(&mint_one(&es256, ENC_AUD, now)?)?;
    let pool = o.unique_tokens.unwrap_or((10_000.0 * o.seconds).ceil() as usize).max(2);
    let config_arg = config_on.display().to_string();
    let unique = |alg: &str, n: usize| {
        args(&[
            "--config",
            &config_arg,
            "--resource-server",
            "api",
            "--alg",
            alg,
            "--scope",
            "read",
            "--unique",
            &n.to_string(),
        ])
    };

    let mut table = Vec::new();
    if rows.contains(&"direct") {
        eprintln!("load: direct");
        let url = format!("http://{up_addr}/items/1");
        let outcome = loadgen::run(
            &o.generator(),
            &o.load_args(&url, &args(&["--token", &es_token]), None),
            200,
        )?;
        table.push(Measured::without_process("direct", outcome));
    }
    for &name in rows.iter().filter(|r| PEERS.contains(r)) {
        let peer = match name {
            "nginx-proxy" => Peer::NginxProxy,
            "haproxy-proxy" => Peer::HaproxyProxy,
            "haproxy-jwt-rs256" => Peer::HaproxyJwt {
                alg: "RS256",
                pem: dir.path().join("rs256.pem"),
            },
            _ => Peer::HaproxyJwt {
                alg: "ES256",
                pem: dir.path().join("es256.pem"),
            },
        };
        let token = if name == "haproxy-jwt-rs256" {
            &rs_token
        } else {
            &es_token
        };
        let run_dir = logs.path().join(name);
        fs::create_dir_all(&run_dir)?;
        let pin = o.pin_gateway.as_deref();
        let Some((proc, addr)) = peer.start(&run_dir, up_addr, REALM_ISSUER, API_AUD, pin)? else {
            let mut m = Measured::without_process(name, Default::default());
            m.notes.push(format!("{} not installed", peer.binary()));
            table.push(m);
            continue;
        };
        eprintln!("load: {name}");
        let load = o.load_args(&format!("http://{addr}/items/1"), &args(&["--token", token]), None);
        table.push(table::measure(name, None, &proc, || {
            loadgen::run(&o.generator(), &load, 200)
        })?);
    }
    for &workers in &o.workers {
        for &name in rows.iter().filter(|r| **r != "direct" && !PEERS.contains(r)) {
            let row = match name {
                "cache-on" => RowLoad {
                    config: &config_on,
                    path: "/items/1",
                    tokens: args(&["--token", &es_token]),
                    expect: 200,
                },
                "cache-off-rs256" => RowLoad {
                    config: &config_off,
                    path: "/items/1",
                    tokens: args(&["--token", &rs_token]),
                    expect: 200,
                },
                "cache-off-es256" => RowLoad {
                    config: &config_off,
                    path: "/items/1",
                    tokens: args(&["--token", &es_token]),
                    expect: 200,
                },
                "unique-rs256" => RowLoad {
                    config: &config_on,
                    path: "/items/1",
                    tokens: unique("RS256", pool),
                    expect: 200,
                },
                "unique-es256" => RowLoad {
                    config: &config_on,
                    path: "/items/1",
                    tokens: unique("ES256", pool),
                    expect: 200,
                },
                "cache-100k" => RowLoad {
                    config: &config_on,
                    path: "/items/1",
                    tokens: unique("ES256", CACHE_FILL),
                    expect: 200,
                },
                "jwe-rsa-oaep" => RowLoad {
                    config: &config_on,
                    path: "/enc/1",
                    tokens: args(&["--token", &jwe_token]),
                    expect: 200,
                },
                "bad-token-401" => RowLoad {
                    config: &config_on,
                    path: "/items/1",
                    tokens: args(&["--token", &es_token, "--invalid-share", "1"]),
                    expect: 401,
                },
                other => return Err(format!("unknown row {other}").into()),
            };
            eprintln!("load: {name}, --workers {workers}");
            let log = logs.path().join(format!("{name}-w{workers}.log"));
            let gw = procs::spawn_gateway(&GatewayRun {
                config: row.config,
                log: &log,
                workers,
                access_log: o.access_log,
                cpus: o.pin_gateway.as_deref(),
            })?;
            let url = format!("http://{}{}", gw.addr, row.path);
            // cache-100k sends each of its tokens once, however long that takes.
            let requests = (name == "cache-100k").then_some(CACHE_FILL as u64);
            let load = o.load_args(&url, &row.tokens, requests);
            let mut m = table::measure(name, Some(workers), &gw.proc, || {
                loadgen::run(&o.generator(), &load, row.expect)
            })?;
            if let Some(admin) = gw.admin {
                if name == "cache-100k"
                    && let Some(n) = table::metric(admin, "portcullis_token_cache_entries")
                {
                    m.notes.push(format!("{n} tokens cached"));
                }
                if let Some(spread) = table::worker_spread(admin) {
                    m.notes.push(format!("connections per worker {spread}"));
                }
            }
            drop(gw);
            let _ = fs::remove_file(&log);
            table.push(m);
        }
    }
    drop(upstream);
    table::print_header(o, "gateway suite");
    println!(
        "# cache-on, cache-off-*, bad-token-401: one repeated ES256/RS256 token; unique-*: a pool of distinct \
         tokens sent in turn (cache on, so each is a full verification plus a cache insert, until the pool \
         wraps around); jwe-rsa-oaep: one repeated RSA-OAEP JWE, so after the first request it is the \
         cache-hit path; bad-token-401: a tampered signature, answered 401; cache-100k: 100000 distinct \
         ES256 tokens, each sent once (the peak RSS of a full cache); nginx-proxy, haproxy-proxy: plain \
         reverse proxies (one worker/thread, keep-alive both ways; nginx logs to a file, HAProxy does not \
         log); haproxy-jwt-*: HAProxy 2.6 jwt_verify with the same policy on the same tokens, no cache (compare \
         cache-off-*). CPU from /proc/<pid>/stat; peak RSS is VmHWM."
    );
    table::print(&table, "direct");
    Ok(())
}
