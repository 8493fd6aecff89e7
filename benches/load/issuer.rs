//! The issuer suite: client_credentials token requests against the embedded issuer's token
//! endpoint, per token type (ES256, RS256, PS256, EdDSA, and JWE with each key-management
//! family) and client authentication (`client_secret_basic`, `private_key_jwt`), and the same
//! load against node `oidc-provider` on the same keys when `node` and `npm` are installed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;
use serde_json::{Value, json};

use crate::loadgen;
use crate::procs::{self, GatewayRun, Proc};
use crate::table::{self, Measured};
use crate::{BoxError, Opts, jwk_json};

const ISSUER: &str = "https://issuer.bench/realms/bench";
const BASIC_SECRET: &str = "bench-basic-secret";

/// A token type: its name, the inner signature, and the outer encryption if any
/// (key-management algorithm).
const TYPES: [(&str, &str, Option<&str>); 8] = [
    ("es256", "ES256", None),
    ("rs256", "RS256", None),
    ("ps256", "PS256", None),
    ("eddsa", "EdDSA", None),
    ("jwe-rsa-oaep", "RS256", Some("RSA-OAEP")),
    ("jwe-ecdh-es", "ES256", Some("ECDH-ES")),
    ("jwe-a128kw", "ES256", Some("A128KW")),
    ("jwe-dir", "ES256", Some("dir")),
];
const AUTHS: [&str; 2] = ["basic", "jwt"];
const CONTENT_ALG: &str = "A128CBC-HS256";

fn audience(ty: &str) -> String {
    format!("https://{ty}.bench")
}

/// The keys both issuers use: signing keys per algorithm, an encryption key per JWE type
/// (private for the gateway, which must be able to decrypt), the client's key pair.
struct Keys {
    signing: Vec<Value>,
    encryption: Vec<(String, Value)>,
    client_private: Value,
    client_public: Value,
}

impl Keys {
    /// The encryption key of JWE token type `ty`.
    fn encryption_key(&self, ty: &str) -> Result<&Value, BoxError> {
        Ok(self
            .encryption
            .iter()
            .find(|(t, _)| t == ty)
            .map(|(_, jwk)| jwk)
            .ok_or("no encryption key")?)
    }
}

fn generate() -> Result<Keys, BoxError> {
    let signing = vec![
        jwk_json(
            Jwk::generate_ec_key(EcCurve::P256)?,
            "s-es256",
            Some("ES256"),
            Some("sig"),
        ),
        jwk_json(Jwk::generate_rsa_key(2048)?, "s-rs256", Some("RS256"), Some("sig")),
        jwk_json(Jwk::generate_rsa_key(2048)?, "s-ps256", Some("PS256"), Some("sig")),
        jwk_json(
            Jwk::generate_ed_key(EdCurve::Ed25519)?,
            "s-eddsa",
            Some("EdDSA"),
            Some("sig"),
        ),
    ];
    let mut encryption = Vec::new();
    for (ty, _, enc) in TYPES {
        let Some(alg) = enc else { continue };
        let jwk = match alg {
            "RSA-OAEP" => Jwk::generate_rsa_key(2048)?,
            "ECDH-ES" => Jwk::generate_ec_key(EcCurve::P256)?,
            "A128KW" => Jwk::generate_oct_key(16)?,
            _ => Jwk::generate_oct_key(32)?,
        };
        let alg = if alg == "dir" { CONTENT_ALG } else { alg };
        encryption.push((ty.to_owned(), jwk_json(jwk, &format!("e-{ty}"), Some(alg), Some("enc"))));
    }
    let client = Jwk::generate_ec_key(EcCurve::P256)?;
    let public = client.to_public_key()?;
    Ok(Keys {
        signing,
        encryption,
        client_private: jwk_json(client, "c-1", Some("ES256"), None),
        client_public: jwk_json(public, "c-1", Some("ES256"), None),
    })
}

/// The gateway's files: signing keys, encryption keys, the client's public key, the TOML;
/// its store at `store`, apart (the gateway watches the configuration's directory).
fn write_gateway_config(dir: &Path, store: &Path, keys: &Keys) -> Result<PathBuf, BoxError> {
    fs::write(dir.join("signing.json"), json!({ "keys": keys.signing }).to_string())?;
    fs::write(
        dir.join("client.pub.json"),
        json!({ "keys": [keys.client_public] }).to_string(),
    )?;
    let hash = portcullis::issuer::hash_secret(BASIC_SECRET)?;
    let mut toml = format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
url = "sqlite://{store}"

[[realm]]
name = "bench"
issuer = "{ISSUER}"
algorithms = ["ES256", "RS256", "PS256", "EdDSA"]
signing_keys = "signing.json"
"#,
        store = store.display()
    );
    for (ty, sign, enc) in TYPES {
        toml.push_str(&format!(
            "\n[[resource_server]]\nid = \"{ty}\"\nrealm = \"bench\"\naudience = \"{}\"\nupstream = \"http://127.0.0.1:9\"\nscopes = [\"read\"]\nsigning_alg = \"{sign}\"\n",
            audience(ty)
        ));
        if let Some(alg) = enc {
            let jwk = keys.encryption_key(ty)?;
            fs::write(dir.join(format!("enc-{ty}.json")), json!({ "keys": [jwk] }).to_string())?;
            toml.push_str(&format!(
                "encryption = \"resource_server\"\nencryption_jwks_file = \"enc-{ty}.json\"\nkey_alg = \"{alg}\"\ncontent_alg = \"{CONTENT_ALG}\"\n"
            ));
        }
    }
    toml.push_str(&format!(
        r#"
[[client]]
client_id = "basic-client"
realm = "bench"
token_endpoint_auth_method = "client_secret_basic"
client_secret_hash = "{hash}"
scopes = ["read"]

[[client]]
client_id = "jwt-client"
realm = "bench"
token_endpoint_auth_method = "private_key_jwt"
jwks_file = "client.pub.json"
scopes = ["read"]
"#
    ));
    let path = dir.join("issuer.toml");
    fs::write(&path, toml)?;
    Ok(path)
}

/// oidc-provider's configuration (see benches/peers/oidc-provider/server.mjs): the same keys.
fn write_peer_config(dir: &Path, keys: &Keys) -> Result<PathBuf, BoxError> {
    let mut resources = serde_json::Map::new();
    for (ty, sign, enc) in TYPES {
        let mut rs = json!({ "sign_alg": sign });
        if let Some(alg) = enc {
            let jwk = keys.encryption_key(ty)?;
            // The issuer encrypts to the public part (all of a symmetric key).
            let public = match Jwk::from_map(jwk.as_object().cloned().unwrap_or_default())? {
                k if k.key_type() == "oct" => jwk.clone(),
                k => jwk_json(k.to_public_key()?, &format!("e-{ty}"), None, Some("enc")),
            };
            rs["encrypt"] = json!({ "alg": alg, "enc": CONTENT_ALG, "jwk": public });
        }
        resources.insert(audience(ty), rs);
    }
    let clients = json!([
        { "client_id": "basic-client", "client_secret": BASIC_SECRET, "token_endpoint_auth_method": "client_secret_basic",
          "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [] },
        { "client_id": "jwt-client", "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [keys.client_public] },
          "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [] },
    ]);
    let path = dir.join("oidc-provider.json");
    fs::write(
        &path,
        json!({ "jwks": { "keys": keys.signing }, "clients": clients, "resources": resources }).to_string(),
    )?;
    Ok(path)
}

/// oidc-provider installed under target/peers (npm, once), or why not.
fn install_peer() -> Result<PathBuf, String> {
    let has = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has("node") || !has("npm") {
        return Err("not installed (node and npm are needed)".into());
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/oidc-provider");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/oidc-provider");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for f in ["package.json", "server.mjs"] {
        fs::copy(src.join(f), dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
    }
    if !dir.join("node_modules/oidc-provider").exists() {
        eprintln!("load: npm install oidc-provider into {}", dir.display());
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("npm install oidc-provider failed".into());
        }
    }
    Ok(dir)
}

/// The `loadtest` arguments of a token request as `auth` for token type `ty`.
fn grant_args(auth: &str, ty: &str, client_key: &Path, assertion_aud: &str, premint: usize) -> Vec<String> {
    let mut a: Vec<String> = [
        "--client-credentials",
        "--scope",
        "read",
        "--resource-server",
        &audience(ty),
        "--client-id",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if auth == "basic" {
        a.extend(["basic-client".into(), "--client-secret".into(), BASIC_SECRET.into()]);
    } else {
        a.extend([
            "jwt-client".into(),
            "--client-key".into(),
            client_key.display().to_string(),
            "--assertion-audience".into(),
            assertion_aud.to_owned(),
            // Signed before the load: the generator's CPU then goes to sending.
            "--premint".into(),
            premint.to_string(),
        ]);
    }
    a
}

/// Runs the suite and prints its table.
pub(crate) fn run(o: &Opts) -> Result<(), BoxError> {
    let rows: Vec<(&str, &str)> = TYPES
        .iter()
        .flat_map(|(ty, _, _)| AUTHS.iter().map(move |a| (*ty, *a)))
        .filter(|(ty, a)| o.wanted(&format!("{ty}/{a}")))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    eprintln!("load: issuer suite: generating keys");
    let keys = generate()?;
    let config = write_gateway_config(dir.path(), &logs.path().join("store.db"), &keys)?;
    let client_key = dir.path().join("client.json");
    fs::write(&client_key, keys.client_private.to_string())?;
    let peer = install_peer();
    let peer_config = write_peer_config(dir.path(), &keys)?;

    let premint = (12_000.0 * o.seconds).ceil() as usize;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for &workers in &o.workers {
        for &(ty, auth) in &rows {
            let name = format!("{ty}/{auth}");
            eprintln!("load: issuer {name}, --workers {workers}");
            let log = logs.path().join("gateway.log");
            let gw = procs::spawn_gateway(&GatewayRun {
                config: &config,
                log: &log,
                workers,
                access_log: o.access_log,
                cpus: o.pin_gateway.as_deref(),
            })?;
            let url = format!("http://{}/realms/bench/token", gw.addr);
            let load = o.load_args(&url, &grant_args(auth, ty, &client_key, ISSUER, premint), None);
            let mut m = table::measure(&name, Some(workers), &gw.proc, || {
                loadgen::run(&o.generator(), &load, 200)
            })?;
            if let Some(spread) = gw.admin.and_then(table::worker_spread) {
                m.notes.push(format!("connections per worker {spread}"));
            }
            ours.push(m);
            drop(gw);
        }
    }
    if let Ok(peer_dir) = &peer {
        for &(ty, auth) in &rows {
            let name = format!("{ty}/{auth}");
            eprintln!("load: oidc-provider {name}");
            let port = procs::free_port()?;
            let mut node = Proc {
                name: "oidc-provider",
                child: procs::pinned(o.pin_gateway.as_deref(), Path::new("node"))
                    .arg("server.mjs")
                    .arg(port.to_string())
                    .arg(&peer_config)
                    .current_dir(peer_dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            };
            procs::wait_for_port(([127, 0, 0, 1], port).into(), "oidc-provider", &mut node)?;
            let issuer = format!("http://127.0.0.1:{port}");
            let url = format!("{issuer}/token");
            let load = o.load_args(&url, &grant_args(auth, ty, &client_key, &issuer, premint), None);
            theirs.push(table::measure(&name, None, &node, || {
                loadgen::run(&o.generator(), &load, 200)
            })?);
        }
    }
    table::print_header(o, "issuer suite (client_credentials token requests)");
    println!(
        "# each request: a client_credentials grant with `resource` naming the token type's resource server and \
         scope read; basic = client_secret_basic, jwt = private_key_jwt with a fresh ES256 assertion per request \
         (minted by the generator before the load, `--premint`). JWE types: {CONTENT_ALG} content, RS256 inner signature for RSA-OAEP, \
         ES256 for the others. oidc-provider 9.13.3 (one node process): {}",
        match &peer {
            Ok(_) => "same keys, clients and load".to_owned(),
            Err(why) => why.clone(),
        }
    );
    print(&ours, &theirs);
    Ok(())
}

fn print(ours: &[Measured], theirs: &[Measured]) {
    println!();
    println!(
        "| token / client auth | workers | portcullis tokens/s | p99 ms | CPU µs/token | oidc-provider tokens/s | p99 ms | CPU µs/token | × tokens/s | × less CPU | notes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let cpu = |m: &Measured| m.cpu_us.map_or("-".into(), |c| format!("{c:.0}"));
    for r in ours {
        let peer = theirs.iter().find(|t| t.name == r.name);
        let mut notes = r.notes.clone();
        for (who, m) in [("portcullis", Some(r)), ("oidc-provider", peer)] {
            let Some(m) = m else { continue };
            if m.outcome.errors + m.outcome.unexpected > 0 {
                notes.push(format!(
                    "{who}: {} errors, unexpected {}",
                    m.outcome.errors, m.outcome.unexpected_statuses
                ));
            }
        }
        let (p_rps, p_p99, p_cpu, ratio, cpu_ratio) = match peer {
            Some(p) => (
                format!("{:.0}", p.outcome.rps),
                format!("{:.2}", p.outcome.p99),
                cpu(p),
                if p.outcome.rps > 0.0 {
                    format!("{:.1}", r.outcome.rps / p.outcome.rps)
                } else {
                    "-".into()
                },
                match (r.cpu_us, p.cpu_us) {
                    (Some(a), Some(b)) if a > 0.0 => format!("{:.1}", b / a),
                    _ => "-".into(),
                },
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {:.0} | {:.2} | {} | {p_rps} | {p_p99} | {p_cpu} | {ratio} | {cpu_ratio} | {} |",
            r.name,
            r.workers.map_or("-".into(), |w| w.to_string()),
            r.outcome.rps,
            r.outcome.p99,
            cpu(r),
            notes.join("; "),
        );
    }
}
