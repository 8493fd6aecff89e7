//! A parsed JSON Web Key Set (RFC 7517 § 5) reduced to what signature checks need.
//!
//! NB: only asymmetric signature keys are kept. `oct` keys, keys marked `use: enc`, keys
//! whose `alg` is not an asymmetric JWS algorithm, and keys that fail to parse are skipped,
//! so a key set can never hand a verifier an HMAC secret (RFC 8725 § 2.1 key confusion).

use std::sync::Arc;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use thiserror::Error;

/// Every asymmetric JWS algorithm the product knows.
pub const ASYMMETRIC_ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Parses an algorithm name, accepting only asymmetric JWS algorithms.
pub fn parse_alg(name: &str) -> Option<Algorithm> {
    ASYMMETRIC_ALGS.iter().copied().find(|a| alg_name(*a) == name)
}

/// The JOSE name of an algorithm.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "unknown",
    }
}

/// One verification key and the algorithms it may be used with.
pub struct VerifyKey {
    /// The key's `kid`, if it has one.
    pub kid: Option<String>,
    /// Algorithms this key may verify: its `alg` alone, or every algorithm its type and
    /// curve allow when it names none.
    pub algs: Vec<Algorithm>,
    /// The key material.
    pub key: DecodingKey,
    /// The key parsed once for each of `algs` (same order; `None` where aws-lc-rs would
    /// not pre-parse it). Verifying with a parsed key skips rebuilding the RSA key or
    /// decoding the curve point on every token (`cargo bench --bench verify -- signature`:
    /// 2.7 µs of an RS256 check, 2.3 µs of an ES256 one).
    parsed: Vec<Option<ParsedPublicKey>>,
    /// A digest of the public parameters, to notice key changes across fetches.
    pub material: u64,
}

impl VerifyKey {
    /// Whether `signature` (decoded) signs `message` under `alg` with this key. The same
    /// aws-lc-rs algorithm parameters as `jsonwebtoken::crypto::verify`, which is the
    /// fallback for a key that could not be pre-parsed.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let parsed = self
            .algs
            .iter()
            .position(|a| *a == alg)
            .and_then(|i| self.parsed.get(i)?.as_ref());
        match parsed {
            Some(p) => p.verify_sig(message, signature).is_ok(),
            None => {
                let encoded = URL_SAFE_NO_PAD.encode(signature);
                matches!(
                    jsonwebtoken::crypto::verify(&encoded, message, &self.key, alg),
                    Ok(true)
                )
            }
        }
    }
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .finish()
    }
}

/// A set of verification keys.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
}

/// Why a key set document was refused as a whole.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// Not JSON, or no `keys` array.
    #[error("not a JWK set: {0}")]
    Syntax(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS document. Returns the set and a note for each key skipped.
    pub fn parse(doc: &[u8]) -> Result<(Self, Vec<String>), KeySetError> {
        let raw: RawSet = serde_json::from_slice(doc)?;
        let mut keys = Vec::with_capacity(raw.keys.len());
        let mut skipped = Vec::new();
        for (i, value) in raw.keys.into_iter().enumerate() {
            match parse_key(value) {
                Ok(k) => keys.push(Arc::new(k)),
                Err(why) => skipped.push(format!("key #{i}: {why}")),
            }
        }
        Ok((Self { keys }, skipped))
    }

    /// Builds a set from already-parsed keys.
    pub fn from_keys(keys: Vec<Arc<VerifyKey>>) -> Self {
        Self { keys }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys.
    pub fn keys(&self) -> &[Arc<VerifyKey>] {
        &self.keys
    }

    /// Keys that may verify a token with this `kid` (if any) and `alg`.
    ///
    /// With a `kid`, only keys with that exact `kid`; without one, every key whose
    /// algorithms include `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Arc<VerifyKey>> + 'a {
        self.keys.iter().filter(move |k| {
            k.algs.contains(&alg)
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }

    /// Whether any key has this `kid`, whatever its algorithm.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn parse_key(value: serde_json::Value) -> Result<VerifyKey, String> {
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let kty = field("kty").ok_or("no kty")?;
    if let Some(u) = field("use")
        && u != "sig"
    {
        return Err(format!("use is {u:?}, not \"sig\""));
    }
    if let Some(ops) = value.get("key_ops").and_then(|v| v.as_array())
        && !ops.iter().any(|o| o.as_str() == Some("verify"))
    {
        return Err("key_ops does not include \"verify\"".into());
    }
    let crv = field("crv");
    let by_type: Vec<Algorithm> = match (kty.as_str(), crv.as_deref()) {
        ("RSA", _) => ASYMMETRIC_ALGS[..6].to_vec(),
        ("EC", Some("P-256")) => vec![Algorithm::ES256],
        ("EC", Some("P-384")) => vec![Algorithm::ES384],
        ("OKP", Some("Ed25519")) => vec![Algorithm::EdDSA],
        ("oct", _) => return Err("symmetric (oct) keys are never used for verification".into()),
        (t, c) => return Err(format!("unsupported key type {t:?} / curve {c:?}")),
    };
    let algs = match field("alg") {
        None => by_type,
        Some(name) => match parse_alg(&name) {
            Some(a) if by_type.contains(&a) => vec![a],
            Some(_) => return Err(format!("alg {name:?} does not fit kty {kty:?}")),
            None => return Err(format!("alg {name:?} is not an accepted signature algorithm")),
        },
    };
    let kid = field("kid");
    let material = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for name in ["kty", "crv", "kid", "alg", "n", "e", "x", "y"] {
            field(name).hash(&mut h);
        }
        h.finish()
    };
    let parsed = algs.iter().map(|alg| parse_public(&field, *alg)).collect();
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("bad JWK: {e}"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(VerifyKey {
        kid,
        algs,
        key,
        parsed,
        material,
    })
}

/// The JWK's public key, parsed by aws-lc-rs for `alg` (RFC 7518 § 6.2.1 and § 6.3.1
/// parameters; RFC 8037 § 2 for Ed25519).
fn parse_public(field: &dyn Fn(&str) -> Option<String>, alg: Algorithm) -> Option<ParsedPublicKey> {
    let bytes = |name: &str| URL_SAFE_NO_PAD.decode(field(name)?).ok();
    let rsa = |params: &'static sig::RsaParameters| {
        let (n, e) = (bytes("n")?, bytes("e")?);
        RsaPublicKeyComponents { n: &n[..], e: &e[..] }
            .to_parsed_public_key(params)
            .ok()
    };
    let ec = |algorithm: &'static sig::EcdsaVerificationAlgorithm, size: usize| {
        let (x, y) = (bytes("x")?, bytes("y")?);
        // SEC 1 uncompressed point; RFC 7518 § 6.2.1.2 makes each coordinate full-size.
        if x.len() != size || y.len() != size {
            return None;
        }
        let point = [&[4u8][..], &x, &y].concat();
        ParsedPublicKey::new(algorithm, point).ok()
    };
    match alg {
        Algorithm::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => ec(&sig::ECDSA_P256_SHA256_FIXED, 32),
        Algorithm::ES384 => ec(&sig::ECDSA_P384_SHA384_FIXED, 48),
        Algorithm::EdDSA => ParsedPublicKey::new(&sig::ED25519, bytes("x")?).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_symmetric_encryption_and_mismatched_keys() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"h"},
            {"kty":"EC","crv":"P-256","use":"enc","kid":"e",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","crv":"P-256","alg":"ES384","kid":"m",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty":"EC","crv":"P-256","kid":"ok",
             "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}"#;
        let (set, skipped) = KeySet::parse(doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.len(), 1, "{skipped:?}");
        assert_eq!(skipped.len(), 3);
        assert_eq!(set.candidates(Some("ok"), Algorithm::ES256).count(), 1);
        assert_eq!(set.candidates(Some("ok"), Algorithm::ES384).count(), 0);
        assert_eq!(set.candidates(None, Algorithm::ES256).count(), 1);
        assert!(set.has_kid("ok"));
        assert!(!set.has_kid("h"));
    }

    /// Every algorithm verifies through its pre-parsed key and through the jsonwebtoken
    /// fallback alike, and neither accepts a changed message or another key's signature.
    #[test]
    fn parsed_and_fallback_verification_agree_for_every_algorithm() {
        use josekit::jwk::Jwk as JoseJwk;
        use josekit::jwk::alg::ec::EcCurve;
        use josekit::jwk::alg::ed::EdCurve;
        for alg in ASYMMETRIC_ALGS {
            let name = alg_name(alg);
            let generate = || {
                let mut jwk = match alg {
                    Algorithm::ES256 => JoseJwk::generate_ec_key(EcCurve::P256),
                    Algorithm::ES384 => JoseJwk::generate_ec_key(EcCurve::P384),
                    Algorithm::EdDSA => JoseJwk::generate_ed_key(EdCurve::Ed25519),
                    _ => JoseJwk::generate_rsa_key(2048),
                }
                .unwrap_or_else(|e| panic!("{e}"));
                jwk.set_algorithm(name);
                jwk.set_key_id("k");
                let private = serde_json::Value::Object(jwk.clone().into());
                let public = jwk.to_public_key().unwrap_or_else(|e| panic!("{e}"));
                (private, serde_json::Value::Object(public.into()))
            };
            let (private, public) = generate();
            let (_, other_public) = generate();
            let signing =
                crate::jwks::SigningKeys::parse(serde_json::json!({ "keys": [private] }).to_string().as_bytes())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0";
            // Signed by the issuer's signer, checked by the verifier's keys (the issuer's
            // tokens are also checked by josekit, in the mint tests).
            let signature = signing.keys()[0]
                .signer
                .sign(message)
                .unwrap_or_else(|e| panic!("{name}: {e}"));

            let mut key = parse_key(public).unwrap_or_else(|e| panic!("{name}: {e}"));
            let other = parse_key(other_public).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(key.parsed.iter().all(Option::is_some), "{name} was not pre-parsed");
            for path in ["parsed", "fallback"] {
                assert!(key.verify(alg, message, &signature), "{name} {path}");
                assert!(
                    !key.verify(alg, b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ5In0", &signature),
                    "{name} {path}"
                );
                assert!(!other.verify(alg, message, &signature), "{name} {path}");
                key.parsed.iter_mut().for_each(|p| *p = None);
            }
        }
    }

    #[test]
    fn refuses_non_sets() {
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\":3}").is_err());
    }
}
