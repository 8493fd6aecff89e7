//! `portcullis keygen`: generate a signing key pair as JWKs (josekit does the crypto).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::ValueEnum;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::alg::ed::EdCurve;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum KeyAlg {
    #[value(name = "ES256")]
    Es256,
    #[value(name = "ES384")]
    Es384,
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "PS256")]
    Ps256,
    #[value(name = "EdDSA")]
    EdDsa,
}

impl KeyAlg {
    fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

pub(super) fn run(alg: KeyAlg, kid: &str, out: &Path, append: bool) -> ExitCode {
    match generate(alg, kid, out, append) {
        Ok(public) => {
            println!("{public}");
            eprintln!("wrote private key {kid:?} ({}) to {}", alg.name(), out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portcullis keygen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(alg: KeyAlg, kid: &str, out: &Path, append: bool) -> Result<String, String> {
    let mut jwk = match alg {
        KeyAlg::Es256 => Jwk::generate_ec_key(EcCurve::P256),
        KeyAlg::Es384 => Jwk::generate_ec_key(EcCurve::P384),
        KeyAlg::Rs256 | KeyAlg::Ps256 => Jwk::generate_rsa_key(2048),
        KeyAlg::EdDsa => Jwk::generate_ed_key(EdCurve::Ed25519),
    }
    .map_err(|e| format!("key generation failed: {e}"))?;
    jwk.set_key_id(kid);
    jwk.set_algorithm(alg.name());
    jwk.set_key_use("sig");
    // josekit's to_public_key keeps only the key parameters and `use`.
    let mut public = jwk.to_public_key().map_err(|e| e.to_string())?;
    public.set_key_id(kid);
    public.set_algorithm(alg.name());

    let mut keys: Vec<serde_json::Value> = Vec::new();
    if out.exists() {
        if !append {
            return Err(format!("{} exists; pass --append to add the key to it", out.display()));
        }
        let text = std::fs::read(out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
        let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", out.display()))?;
        keys = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .cloned()
            .ok_or(format!("{} is not a JWK set", out.display()))?;
        if keys.iter().any(|k| k.get("kid").and_then(|v| v.as_str()) == Some(kid)) {
            return Err(format!("{} already has a key with kid {kid:?}", out.display()));
        }
    }
    let private_map: serde_json::Map<String, serde_json::Value> = jwk.into();
    keys.push(serde_json::Value::Object(private_map));
    let doc = serde_json::json!({ "keys": keys });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    write_private(out, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let public_map: serde_json::Map<String, serde_json::Value> = public.into();
    serde_json::to_string_pretty(&serde_json::json!({ "keys": [public_map] })).map_err(|e| e.to_string())
}

/// Writes with mode 0600 on Unix: it is a private key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")
}
