//! A realm's private signing keys (a private JWKS, as `portcullis keygen` writes), turned
//! into jsonwebtoken encoding keys through josekit's key handling, plus their public JWKs.

use std::sync::Arc;

use josekit::jwk::Jwk;
use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ec::EcKeyPair;
use josekit::jwk::alg::ed::EdKeyPair;
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jws::JwsSigner;
use jsonwebtoken::Algorithm;

use super::keyset::{KeySet, VerifyKey, alg_name, parse_alg};

/// One private signing key.
pub struct SigningKey {
    /// Its `kid`; required, so verifiers can select it.
    pub kid: String,
    /// Its algorithm; required, so it is used with one algorithm only (RFC 8725 § 3.1).
    pub alg: Algorithm,
    /// The private key, parsed and checked once when the key set is loaded: minting a token
    /// is then the signature alone (an RSA key re-read per token cost three signatures).
    pub signer: Box<dyn JwsSigner>,
    /// The public JWK (no private member), for publishing.
    pub public: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for SigningKey {
    // NB: never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &alg_name(self.alg))
            .finish()
    }
}

/// A realm's signing keys, in file order; the first key of an algorithm is the active one.
#[derive(Debug, Default)]
pub struct SigningKeys {
    keys: Vec<Arc<SigningKey>>,
}

impl SigningKeys {
    /// Parses a private JWKS. Every key must have `kid`, an asymmetric JWS `alg` and its
    /// private part; anything else is an error naming the key.
    pub fn parse(doc: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(doc).map_err(|e| format!("not JSON: {e}"))?;
        let items = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("not a JWK set (no \"keys\" array)")?;
        let mut keys = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let map = item.as_object().ok_or(format!("key #{i}: not an object"))?;
            let jwk = Jwk::from_map(map.clone()).map_err(|e| format!("key #{i}: {e}"))?;
            keys.push(Arc::new(signing_key(&jwk).map_err(|e| format!("key #{i}: {e}"))?));
        }
        let mut seen = std::collections::HashSet::new();
        for k in &keys {
            if !seen.insert(k.kid.as_str()) {
                return Err(format!("kid {:?} appears twice", k.kid));
            }
        }
        Ok(Self { keys })
    }

    /// The active key for `alg`.
    pub fn active(&self, alg: Algorithm) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.alg == alg)
    }

    /// The first key (the realm's default signing key).
    pub fn first(&self) -> Option<&Arc<SigningKey>> {
        self.keys.first()
    }

    /// Every key.
    pub fn keys(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The public halves as a verification key set.
    pub fn verification_keys(&self) -> Result<Vec<Arc<VerifyKey>>, String> {
        let doc = serde_json::json!({ "keys": self.keys.iter().map(|k| &k.public).collect::<Vec<_>>() });
        let (set, skipped) = KeySet::parse(doc.to_string().as_bytes()).map_err(|e| e.to_string())?;
        if let Some(why) = skipped.first() {
            return Err(why.clone());
        }
        Ok(set.keys().to_vec())
    }
}

fn signing_key(jwk: &Jwk) -> Result<SigningKey, String> {
    let kid = jwk.key_id().ok_or("no kid")?.to_owned();
    let alg_text = jwk.algorithm().ok_or("no alg")?;
    let alg = parse_alg(alg_text).ok_or(format!("alg {alg_text:?} is not an asymmetric JWS algorithm"))?;
    if jwk.parameter("d").is_none() {
        return Err("no private part (d): this is a public key".into());
    }
    let public = match (jwk.key_type(), alg) {
        (
            "RSA",
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => RsaKeyPair::from_jwk(jwk)
            .map_err(|e| e.to_string())?
            .to_jwk_public_key(),
        ("EC", Algorithm::ES256 | Algorithm::ES384) => {
            EcKeyPair::from_jwk(jwk).map_err(|e| e.to_string())?.to_jwk_public_key()
        }
        ("OKP", Algorithm::EdDSA) => EdKeyPair::from_jwk(jwk).map_err(|e| e.to_string())?.to_jwk_public_key(),
        (kty, _) => return Err(format!("kty {kty:?} does not fit alg {alg_text:?}")),
    };
    let signer = signer(alg, jwk)?;
    let mut public: serde_json::Map<String, serde_json::Value> = public.into();
    public.insert("kid".into(), kid.clone().into());
    public.insert("alg".into(), alg_text.into());
    public.insert("use".into(), "sig".into());
    // An EC key's curve must match its alg (ES256 ↔ P-256): KeySet::parse checks it.
    Ok(SigningKey {
        kid,
        alg,
        signer,
        public,
    })
}

/// josekit's signer for `alg` over `jwk`, holding the parsed private key.
fn signer(alg: Algorithm, jwk: &Jwk) -> Result<Box<dyn JwsSigner>, String> {
    use josekit::jws;
    let e = |e: josekit::JoseError| e.to_string();
    Ok(match alg {
        Algorithm::RS256 => Box::new(jws::RS256.signer_from_jwk(jwk).map_err(e)?),
        Algorithm::RS384 => Box::new(jws::RS384.signer_from_jwk(jwk).map_err(e)?),
        Algorithm::RS512 => Box::new(jws::RS512.signer_from_jwk(jwk).map_err(e)?),
        Algorithm::PS256 => Box::new(jws::PS256.signer_from_jwk(jwk).map_err(e)?),
        Algorithm::PS384 => Box::new(jws::PS384.signer_from_jwk(jwk).map_err(e)?),
        Algorithm::PS512 => Box::new(jws::PS512.signer_from_jwk(jwk).map_err(e)?),
        Algorithm::ES256 => Box::new(jws::ES256.signer_from_jwk(jwk).map_err(e)?),
        Algorithm::ES384 => Box::new(jws::ES384.signer_from_jwk(jwk).map_err(e)?),
        Algorithm::EdDSA => Box::new(jws::EdDSA.signer_from_jwk(jwk).map_err(e)?),
        other => return Err(format!("{other:?} is not an asymmetric JWS algorithm")),
    })
}
